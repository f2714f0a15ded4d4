"""Spreadsheet import: round trips through the exports, matching, dry runs, bad files."""

from __future__ import annotations

import csv
from pathlib import Path

import openpyxl
import pytest
from sqlalchemy import func, select

from service import db, store
from service.cli import main
from service.importer import ImportFileError, plan_import
from service.models import Change, EntityRow
from vocab import load_record

ACTORS = {
    "afeefa": {"name": {"de": "Afeefa", "en": "Afeefa"}, "actorTypes": ["digital_project"],
               "url": "https://afeefa.de", "wikidata": "Q1000001",
               "fieldsOfAction": ["integration", "refugee_aid"],
               "geo": {"latitude": 51.0504, "longitude": 13.7373},
               "contactPoints": [{"contactType": {"de": "Redaktion"},
                                  "email": "info@afeefa.de"}]},
    "dfa": {"name": {"de": "Dresden für Alle"}, "actorTypes": ["network"],
            "alternateName": ["DfA"], "address": {"postalCode": "01067",
                                                   "addressLocality": "Dresden"}},
    "sab": {"name": {"de": "Sächsische Aufbaubank", "fr": "Banque"},
            "actorTypes": ["public_authority"], "registerNumber": "HRB 123"},
}


@pytest.fixture
def actors(app):
    with app.app_context():
        for entity_id, data in ACTORS.items():
            store.create(db.session(), "actor", load_record("actor", data), entity_id=entity_id)
    return list(ACTORS)


def snapshot(app) -> tuple:
    """Everything an import could change: entities with versions, and the change log."""
    with app.app_context():
        session = db.session()
        rows = session.execute(select(EntityRow.kind, EntityRow.id, EntityRow.version,
                                      EntityRow.deleted, EntityRow.data)
                               .order_by(EntityRow.kind, EntityRow.id)).all()
        return [tuple(r) for r in rows], session.scalar(select(func.count()).select_from(Change))


def versions(app) -> dict[str, int]:
    with app.app_context():
        return dict(db.session().execute(
            select(EntityRow.id, EntityRow.version).where(EntityRow.kind == "actor")).all())


def state(app, entity_id: str) -> store.EntityState:
    with app.app_context():
        return store.get(db.session(), "actor", entity_id)


def export(runner, path: Path, fmt: str) -> Path:
    result = runner.invoke(main, ["export", "--format", fmt, "-o", str(path)])
    assert result.exit_code == 0, result.output
    return path


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


def write_csv(path: Path, rows: list[dict[str, str]], header: list[str] | None = None) -> Path:
    header = header or list(dict.fromkeys(key for row in rows for key in row))
    with path.open("w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, header)
        writer.writeheader()
        writer.writerows(rows)
    return path


def import_(runner, path: Path, *options: str):
    return runner.invoke(main, ["import", str(path), *options])


# --------------------------------------------------------------------------- round trips


def test_csv_round_trip_updates_only_edited_rows(app, runner, actors, tmp_path):
    path = export(runner, tmp_path / "actors.csv", "csv")
    rows = {row["id"]: row for row in read_csv(path)}
    rows["afeefa"]["name@de"] = "Afeefa – Alle für einen"
    rows["dfa"]["actorTypes"] = "network; informal_initiative"
    write_csv(path, list(rows.values()))

    result = import_(runner, path)
    assert result.exit_code == 0, result.output
    assert "change afeefa (row" in result.output and "): name" in result.output
    assert "): actorTypes" in result.output
    assert "0 created, 2 changed, 1 unchanged" in result.output
    assert versions(app) == {"afeefa": 2, "dfa": 2, "sab": 1}
    assert state(app, "afeefa").data["name"] == {"de": "Afeefa – Alle für einen",
                                                 "en": "Afeefa"}
    assert state(app, "dfa").data["actorTypes"] == ["informal_initiative", "network"]
    # Everything else came back as it was, nested nodes and other languages included.
    assert state(app, "afeefa").data["contactPoints"] == ACTORS["afeefa"]["contactPoints"]
    assert state(app, "sab").data["name"]["fr"] == "Banque"


def test_xlsx_round_trip_updates_only_edited_rows(app, runner, actors, tmp_path):
    path = export(runner, tmp_path / "actors.xlsx", "xlsx")
    book = openpyxl.load_workbook(path)
    sheet = book.worksheets[0]
    header = [c.value for c in sheet[1]]
    for row in sheet.iter_rows(min_row=2):
        if row[0].value == "sab":
            row[header.index("name@de")].value = "SAB Förderbank"
            row[header.index("actorTypes")].value = "public_authority; foundation"
    book.save(path)

    result = import_(runner, path)
    assert result.exit_code == 0, result.output
    assert "0 created, 1 changed, 2 unchanged" in result.output
    assert "change sab (row" in result.output and "actorTypes, name" in result.output
    assert versions(app) == {"afeefa": 1, "dfa": 1, "sab": 2}
    assert state(app, "sab").data["name"] == {"de": "SAB Förderbank", "fr": "Banque"}


@pytest.mark.parametrize("fmt", ["csv", "xlsx"])
def test_reimporting_an_export_writes_nothing(app, runner, actors, tmp_path, fmt):
    path = export(runner, tmp_path / f"actors.{fmt}", fmt)
    before = snapshot(app)
    result = import_(runner, path)
    assert result.exit_code == 0, result.output
    assert "0 created, 0 changed, 3 unchanged" in result.output
    assert snapshot(app) == before


def test_match_by_wikidata_without_id(app, runner, actors, tmp_path):
    path = write_csv(tmp_path / "a.csv", [
        {"name@de": "Afeefa (neu)", "actorTypes": "digital_project", "wikidata": "Q1000001"},
        {"name@de": "SAB", "actorTypes": "public_authority", "registerNumber": "HRB 123"},
    ])
    result = import_(runner, path)
    assert result.exit_code == 0, result.output
    assert "0 created, 2 changed" in result.output
    assert versions(app) == {"afeefa": 2, "dfa": 1, "sab": 2}
    assert state(app, "afeefa").data["name"]["de"] == "Afeefa (neu)"
    # Columns the file does not have keep their values.
    assert state(app, "afeefa").data["url"] == "https://afeefa.de"


def test_ids_from_the_file_are_kept_only_when_valid_and_unused(app, runner, actors, tmp_path):
    with app.app_context():
        store.delete_entity(db.session(), "actor", "dfa", expected_version=None)
    path = write_csv(tmp_path / "a.csv", [
        {"id": "welcome-app", "name@de": "Welcome App", "actorTypes": "digital_project"},
        {"id": "Not Valid!", "name@de": "Verein A", "actorTypes": "verein"},
        {"id": "x" * 65, "name@de": "Verein B", "actorTypes": "verein"},
    ])
    result = import_(runner, path)
    assert result.exit_code == 0, result.output
    assert "3 created" in result.output
    ids = set(versions(app))
    assert "welcome-app" in ids
    assert "Not Valid!" not in ids and "x" * 65 not in ids
    assert len(ids) == 6  # three old (one a tombstone), three new


def test_a_deleted_id_is_an_error(app, runner, actors, tmp_path):
    with app.app_context():
        store.delete_entity(db.session(), "actor", "dfa", expected_version=None)
    path = write_csv(tmp_path / "a.csv", [{"id": "dfa", "name@de": "DfA",
                                           "actorTypes": "network"}])
    before = snapshot(app)
    result = import_(runner, path)
    assert result.exit_code == 1
    assert "row 2, column 'id'" in result.output and "deleted" in result.output
    assert snapshot(app) == before


def test_two_rows_for_one_entity_are_an_error(app, runner, actors, tmp_path):
    path = write_csv(tmp_path / "a.csv", [
        {"id": "afeefa", "name@de": "Afeefa 1", "wikidata": ""},
        {"id": "", "name@de": "Afeefa 2", "wikidata": "Q1000001"},
    ], header=["id", "name@de", "wikidata"])
    result = import_(runner, path)
    assert result.exit_code == 1
    assert "row 3, column 'id'" in result.output and "row 2" in result.output


# --------------------------------------------------------------------------- dry run, deletes


def test_dry_run_reports_and_changes_nothing(app, runner, actors, tmp_path):
    path = export(runner, tmp_path / "actors.csv", "csv")
    rows = read_csv(path)
    afeefa = next(r for r in rows if r["id"] == "afeefa")
    afeefa["email"] = "kontakt@afeefa.de"
    rows = [afeefa, {**afeefa, "id": "", "wikidata": "", "url": "", "name@de": "Neu e.V.",
                     "name@en": ""}]
    write_csv(path, rows)
    before = snapshot(app)
    result = import_(runner, path, "--dry-run")
    assert result.exit_code == 0, result.output
    assert "would change afeefa (row 2): email" in result.output
    assert "would create" in result.output and "(row 3)" in result.output
    assert "would delete" not in result.output
    assert "1 created, 1 changed, 0 unchanged, 0 deleted" in result.output
    assert snapshot(app) == before

    deleting = import_(runner, path, "--dry-run", "--delete-missing")
    assert "would delete dfa" in deleting.output and "would delete sab" in deleting.output
    assert snapshot(app) == before


def test_delete_missing(app, runner, actors, tmp_path):
    path = write_csv(tmp_path / "a.csv", [{"id": "afeefa", "name@de": "Afeefa"}])
    result = import_(runner, path, "--delete-missing")
    assert result.exit_code == 0, result.output
    assert "2 deleted" in result.output
    with app.app_context():
        assert [s.id for s in store.list_page(db.session(), "actor").items] == ["afeefa"]


# --------------------------------------------------------------------------- bad files

NEW = {"id": "", "name@de": "Neuer Verein", "actorTypes": "verein", "url": ""}
BAD_CSV = {
    "unknown column": (b"id,name@de,actorTypes,nickname\r\n,Verein,verein,V\r\n",
                       "row 1, column 'nickname'"),
    "columns of offers": (b"id,name@de,offerTypes,provider\r\n,Kurs,course,"
                          b"http://node.test/actors/a\r\n", "row 1, column 'offerTypes'"),
    "text without language": (b"id,name,actorTypes\r\n,Verein,verein\r\n",
                              "row 1, column 'name'"),
    "latin-1 bytes": ("id,name@de,actorTypes\r\n,Bürgerverein,verein\r\n".encode("latin-1"),
                      "UTF-8"),
    "empty file": (b"", "empty"),
    "short row": (b"id,name@de,actorTypes\r\n,Verein\r\n", "row 2"),
}
BAD_ROWS = {
    "bad concept": ({"actorTypes": "verein; bogus"}, "row 3, column 'actorTypes'",
                    "Unknown concept 'bogus'"),
    "javascript URL": ({"url": "javascript:alert(1)"}, "row 3, column 'url'", "http"),
    "too long text": ({"name@de": "x" * 301}, "row 3, column 'name@de'", "300"),
    "missing name": ({"name@de": ""}, "row 3, column 'name'", "Missing"),
}


@pytest.mark.parametrize("case", list(BAD_CSV))
def test_malformed_files_change_nothing(app, runner, actors, tmp_path, case):
    body, where = BAD_CSV[case]
    path = tmp_path / "bad.csv"
    path.write_bytes(body)
    before = snapshot(app)
    for options in ([], ["--skip-invalid"]):
        result = import_(runner, path, *options)
        assert result.exit_code == 1, result.output
        assert where in result.output
        assert snapshot(app) == before


@pytest.mark.parametrize("case", list(BAD_ROWS))
def test_a_bad_row_stops_the_whole_file(app, runner, actors, tmp_path, case):
    cells, where, message = BAD_ROWS[case]
    path = write_csv(tmp_path / "bad.csv", [NEW, {**NEW, "name@de": "Zweiter", **cells},
                                            {**NEW, "name@de": "Dritter"}])
    before = snapshot(app)
    result = import_(runner, path)
    assert result.exit_code == 1
    assert where in result.output and message in result.output
    assert "nothing was changed" in result.output
    assert snapshot(app) == before


def test_skip_invalid_imports_the_good_rows_and_reports_the_others(app, runner, actors,
                                                                     tmp_path):
    path = write_csv(tmp_path / "mixed.csv", [
        NEW,
        {**NEW, "name@de": "Böse", "url": "javascript:alert(1)"},
        {**NEW, "name@de": "Auch gut", "actorTypes": "foundation"},
        {**NEW, "name@de": "Falsch", "actorTypes": "bogus"},
    ])
    result = import_(runner, path, "--skip-invalid")
    assert result.exit_code == 0, result.output
    assert "row 3, column 'url'" in result.output
    assert "row 5, column 'actorTypes'" in result.output
    assert "2 created, 0 changed, 0 unchanged, 0 deleted, 2 rows skipped (3, 5)." \
        in result.output
    with app.app_context():
        names = {s.data["name"]["de"] for s in store.list_page(db.session(), "actor").items}
    assert {"Neuer Verein", "Auch gut"} <= names and "Böse" not in names


def test_skip_invalid_never_deletes(app, runner, actors, tmp_path):
    path = write_csv(tmp_path / "a.csv", [
        {"id": "afeefa", "name@de": "Afeefa", "url": ""},
        {"id": "dfa", "name@de": "DfA", "url": "javascript:x"},
    ])
    result = import_(runner, path, "--skip-invalid", "--delete-missing")
    assert result.exit_code == 0, result.output
    assert "0 deleted" in result.output
    assert len(versions(app)) == 3 and all(not state(app, i).deleted for i in actors)


def test_too_big_files_are_refused(app, runner, tmp_path):
    app.config["MAX_IMPORT_BYTES"] = 10
    path = write_csv(tmp_path / "a.csv", [NEW])
    result = import_(runner, path)
    assert result.exit_code == 1 and "MAX_IMPORT_BYTES" in result.output


def test_unknown_file_type(app, runner, tmp_path):
    path = tmp_path / "a.ods"
    path.write_bytes(b"whatever")
    result = import_(runner, path)
    assert result.exit_code == 1 and ".csv or .xlsx" in result.output


# --------------------------------------------------------------------------- the planner


def test_plan_import_sorts_rows_into_creates_updates_unchanged(app, actors):
    header = ["id", "name@de", "name@en"]
    rows = [{"id": "afeefa", "name@de": "Afeefa", "name@en": "Afeefa"},
            {"id": "dfa", "name@de": "DfA", "name@en": ""},
            {"id": "neu", "name@de": "Neu", "name@en": ""}]
    with app.app_context():
        plan = plan_import(db.session(), "actors", header, enumerate(rows, start=2))
    assert [p.entity_id for p in plan.unchanged] == ["afeefa"]
    assert [(p.entity_id, p.changed, p.version) for p in plan.updates] == [("dfa", ("name",), 1)]
    assert [p.row for p in plan.errors] == [4]  # a new actor needs actorTypes
    assert plan.creates == [] and plan.deletes == []


def test_plan_import_refuses_a_bad_header(app):
    with app.app_context(), pytest.raises(ImportFileError) as caught:
        plan_import(db.session(), "actor", ["id", "name@de", "colour", "size"], [])
    assert [(e.row, e.column) for e in caught.value.errors] == [(1, "colour"), (1, "size")]


def test_row_numbers_count_blank_lines(app, runner, tmp_path):
    path = tmp_path / "gaps.csv"
    path.write_bytes(b"name@de,actorTypes\r\nA,verein\r\n\r\n,,\r\nB,bogus\r\n")
    result = import_(runner, path)
    assert result.exit_code == 1
    assert "row 5, column 'actorTypes'" in result.output


def test_csv_with_semicolons_and_bom_from_german_excel(app, runner, actors, tmp_path):
    path = tmp_path / "excel.csv"
    text = "id;name@de;actorTypes\r\nafeefa;Afeefa e.V.;digital_project\r\n"
    path.write_bytes(b"\xef\xbb\xbf" + text.encode("utf-8"))
    result = import_(runner, path)
    assert result.exit_code == 0, result.output
    assert "change afeefa (row 2): name" in result.output
