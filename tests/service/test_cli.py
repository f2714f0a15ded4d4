"""The `atlas` command: init, tokens, export, db upgrade (through click's runner)."""

from __future__ import annotations

import io
import json
import re
import tomllib
import warnings

import openpyxl
import orjson
import pytest
import rdflib

from service import create_app, db, store
from service.cli import main
from service.config import DEFAULTS
from vocab import load_record
from vocab.context import inline_contexts

INIT_ARGS = ["init", "--name", 'Atlas "Dresden" – Test', "--base-url", "https://atlas.example/",
             "--city", "Dresden", "--municipality-key", "14612000", "--wikidata", "Q1731",
             "--contact-email", "atlas@example.org"]


@pytest.fixture
def fresh_app(tmp_path, monkeypatch):
    """An app on an empty SQLite file: `init` has to create the schema itself."""
    monkeypatch.setenv("ATLAS_INSTANCE", str(tmp_path / "instance"))
    app = create_app({"TESTING": True,
                      "DATABASE_URL": f"sqlite:///{tmp_path}/fresh.sqlite3"})
    yield app
    db.engine(app).dispose()


def _invoke(app, args):
    return app.test_cli_runner().invoke(main, args)


# --------------------------------------------------------------------------- init


def test_init_writes_config_and_creates_schema(fresh_app, tmp_path):
    assert not db.is_current(fresh_app)
    result = _invoke(fresh_app, INIT_ARGS)
    assert result.exit_code == 0, result.output
    path = tmp_path / "instance" / "atlas.toml"
    config = tomllib.loads(path.read_text(encoding="utf-8"))
    assert set(config) <= set(DEFAULTS)
    assert config["NODE_NAME"] == 'Atlas "Dresden" – Test'
    assert config["BASE_URL"] == "https://atlas.example"
    assert config["MUNICIPALITY_KEY"] == "14612000"
    assert config["CONTACT_EMAIL"] == "atlas@example.org"
    assert db.is_current(fresh_app)
    # A new app reads the file (the instance folder is the same).
    reloaded = create_app({"DATABASE_URL": f"sqlite:///{tmp_path}/fresh.sqlite3"})
    assert reloaded.config["CITY"] == "Dresden"
    assert reloaded.config["WIKIDATA"] == "Q1731"
    db.engine(reloaded).dispose()


def test_init_refuses_to_overwrite_without_force(fresh_app, tmp_path):
    assert _invoke(fresh_app, INIT_ARGS).exit_code == 0
    path = tmp_path / "instance" / "atlas.toml"
    before = path.read_text(encoding="utf-8")
    again = _invoke(fresh_app, ["init", "--name", "Other", "--base-url", "http://other.example"])
    assert again.exit_code == 1
    assert "--force" in again.output
    assert path.read_text(encoding="utf-8") == before
    forced = _invoke(fresh_app, ["init", "--name", "Other", "--base-url",
                                 "http://other.example", "--force"])
    assert forced.exit_code == 0, forced.output
    assert tomllib.loads(path.read_text(encoding="utf-8"))["NODE_NAME"] == "Other"


@pytest.mark.parametrize("bad", [
    ["--base-url", "ftp://atlas.example"],
    ["--base-url", "https://atlas.example/?x=1"],
    ["--base-url", "https://atlas.example/#top"],
    ["--base-url", "atlas.example"],
    ["--base-url", "https://atlas.example", "--municipality-key", "1461200"],
    ["--base-url", "https://atlas.example", "--municipality-key", "1461200x"],
    ["--base-url", "https://atlas.example", "--contact-email", "not-an-address"],
    ["--base-url", "https://atlas.example", "--wikidata", "1731"],
    ["--base-url", "https://atlas.example", "--license", "javascript:alert(1)"],
])
def test_init_validates_options(fresh_app, tmp_path, bad):
    result = _invoke(fresh_app, ["init", "--name", "X", *bad])
    assert result.exit_code == 2, result.output
    assert not (tmp_path / "instance" / "atlas.toml").exists()


def test_init_without_base_url_does_not_prompt_when_not_interactive(fresh_app, tmp_path):
    result = _invoke(fresh_app, ["init", "--name", "X", "--city", "Y"])
    assert result.exit_code == 2
    assert "--base-url" in result.output
    assert not (tmp_path / "instance" / "atlas.toml").exists()


def test_init_prompts_on_a_terminal(fresh_app, tmp_path, monkeypatch):
    monkeypatch.setattr("service.cli._interactive", lambda: True)
    answers = "Atlas Gießen\nftp://wrong.example\nhttps://atlas.giessen.example\nGießen\n"
    result = fresh_app.test_cli_runner().invoke(main, ["init"], input=answers)
    assert result.exit_code == 0, result.output
    assert "http:// or https://" in result.output  # the bad answer was refused, then re-asked
    config = tomllib.loads((tmp_path / "instance" / "atlas.toml").read_text(encoding="utf-8"))
    assert (config["NODE_NAME"], config["BASE_URL"], config["CITY"]) == (
        "Atlas Gießen", "https://atlas.giessen.example", "Gießen")


def test_db_upgrade_is_idempotent(fresh_app):
    for _ in range(2):
        result = _invoke(fresh_app, ["db", "upgrade"])
        assert result.exit_code == 0, result.output
        assert db.is_current(fresh_app)


# --------------------------------------------------------------------------- tokens


def _token_ids(output: str) -> list[str]:
    return [line.split()[0] for line in output.splitlines()[1:]]


def test_token_create_list_revoke(app, runner):
    created = runner.invoke(main, ["token", "create", "--name", "Redaktion", "--role", "editor"])
    assert created.exit_code == 0, created.output
    plain = re.search(r"atl_([0-9a-f]+)_\S+", created.output)
    assert plain
    token_id = plain.group(1)

    listed = runner.invoke(main, ["token", "list"])
    assert listed.exit_code == 0
    assert token_id in _token_ids(listed.output)
    assert "Redaktion" in listed.output and "editor" in listed.output
    assert plain.group(0) not in listed.output
    assert plain.group(0).split("_", 2)[2] not in listed.output

    revoked = runner.invoke(main, ["token", "revoke", token_id])
    assert revoked.exit_code == 0, revoked.output
    line = next(li for li in runner.invoke(main, ["token", "list"]).output.splitlines()
                if li.startswith(token_id))
    assert not line.rstrip().endswith("-")  # the REVOKED column holds a date

    unknown = runner.invoke(main, ["token", "revoke", "ffffffff"])
    assert unknown.exit_code == 1
    assert "no token" in unknown.output


def test_token_role_is_checked(runner):
    result = runner.invoke(main, ["token", "create", "--name", "x", "--role", "owner"])
    assert result.exit_code == 2


def _write_route(app) -> str | None:
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith("/api/v1/") and "POST" in rule.methods and "actors" in rule.rule:
            return rule.rule
    return None


def test_revoked_token_is_refused_by_the_api(app, runner, client):
    route = _write_route(app)
    if route is None:
        pytest.skip("the write API has no POST route for actors yet")
    plain = runner.invoke(main, ["token", "create", "--name", "x", "--role", "admin"]
                          ).output.split()[-1]
    body = {"name": {"de": "Verein"}, "actorTypes": ["verein"]}
    headers = {"Authorization": f"Bearer {plain}"}
    assert client.post(route, json=body, headers=headers).status_code != 401
    token_id = plain.split("_")[1]
    assert runner.invoke(main, ["token", "revoke", token_id]).exit_code == 0
    assert client.post(route, json=body, headers=headers).status_code == 401


# --------------------------------------------------------------------------- export

ACTORS = [
    {"name": {"de": "Afeefa", "en": "Afeefa"}, "actorTypes": ["digital_project"],
     "url": "https://afeefa.de", "wikidata": "Q1000001",
     "geo": {"latitude": 51.05, "longitude": 13.74}},
    {"name": {"de": "Dresden für Alle"}, "actorTypes": ["network", "informal_initiative"],
     "address": {"postalCode": "01067", "addressLocality": "Dresden"}},
]


@pytest.fixture
def actors(app):
    with app.app_context():
        return [store.create(db.session(), "actor", load_record("actor", a)).id for a in ACTORS]


def _parse(fmt: str, body: bytes) -> rdflib.Graph:
    if fmt != "jsonld":
        rdf_format = {"ntriples": "nt", "rdfxml": "xml"}.get(fmt, "turtle")
        return rdflib.Graph().parse(data=body, format=rdf_format)
    # The bundled context, never fetched; rdflib 7.6's JSON-LD parser still builds a
    # ConjunctiveGraph inside.
    doc = orjson.dumps(inline_contexts(orjson.loads(body)))
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "ConjunctiveGraph is deprecated", DeprecationWarning)
        return rdflib.Graph().parse(data=doc, format="json-ld")


@pytest.mark.parametrize("fmt", ["jsonld", "turtle", "ttl", "ntriples", "rdfxml",
                                 "text/turtle"])
def test_export_rdf_formats_parse(app, runner, actors, fmt):
    result = runner.invoke(main, ["export", "--format", fmt])
    assert result.exit_code == 0, result.output
    graph = _parse(fmt, result.stdout_bytes)
    subjects = {str(s) for s in graph.subjects()}
    for entity_id in actors:
        assert f"{app.config['BASE_URL']}/actors/{entity_id}" in subjects


def test_export_csv_and_xlsx_to_files(app, runner, actors, tmp_path):
    csv_path, xlsx_path = tmp_path / "a.csv", tmp_path / "a.xlsx"
    assert runner.invoke(main, ["export", "--format", "csv", "-o", str(csv_path)]).exit_code == 0
    text = csv_path.read_text(encoding="utf-8")
    assert text.startswith("id,")
    assert all(entity_id in text for entity_id in actors)
    assert runner.invoke(main, ["export", "--format", "xlsx", "-o", str(xlsx_path)]
                         ).exit_code == 0
    sheet = openpyxl.load_workbook(io.BytesIO(xlsx_path.read_bytes())).worksheets[0]
    ids = {row[0] for row in sheet.iter_rows(min_row=2, values_only=True)}
    assert ids == set(actors)


def test_export_geojson(app, runner, actors):
    result = runner.invoke(main, ["export", "--format", "geojson"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout_bytes)
    assert doc["type"] == "FeatureCollection"
    assert len(doc["features"]) >= 1  # only actors with coordinates are features


def test_export_pages_through_the_store(app, actors):
    from service.importer import live_entities

    with app.app_context():
        assert sorted(s.id for s in live_entities(db.session(), "actor", per_page=1)) \
            == sorted(actors)


def test_export_of_other_kinds_and_unknown_format(app, runner, actors):
    assert runner.invoke(main, ["export", "--format", "csv", "--kind", "offers"]).exit_code == 0
    assert runner.invoke(main, ["export", "--format", "csv", "--kind", "nonsense"]
                         ).exit_code == 2
    for name in ("docx", "html"):  # html pages need a request: not an export format
        bad = runner.invoke(main, ["export", "--format", name])
        assert bad.exit_code == 2
        assert "csv" in bad.output  # names the known formats


def test_export_leaves_out_deleted_entities(app, runner, actors):
    with app.app_context():
        store.delete_entity(db.session(), "actor", actors[0], expected_version=None)
    result = runner.invoke(main, ["export", "--format", "csv"])
    assert actors[0] not in result.stdout_bytes.decode()
    assert actors[1] in result.stdout_bytes.decode()
