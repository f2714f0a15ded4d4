"""The spreadsheet layout: columns from the entity table, rows in both directions."""

from __future__ import annotations

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from exports.tabular import (
    TabularError,
    columns,
    record_to_row,
    row_to_data,
    table,
    text_languages,
)
from vocab.fields import ENTITIES, Field
from vocab.schemas import load_record

from .strategies import expected, records


def reimport(kind: str, record: dict, names: list[str] | None = None) -> dict:
    names = names or table(kind, [record])[0]
    return load_record(kind, row_to_data(kind, dict(zip(names, record_to_row(kind, record, names),
                                                        strict=True))))


# --------------------------------------------------------------------------- layout


def test_actor_columns():
    names = columns("actor")
    assert names[:5] == ["id", "name@de", "name@en", "description@de", "description@en"]
    assert names.index("address.streetAddress") < names.index("geo.latitude")
    assert {"geo.latitude", "geo.longitude", "openingHours", "contactPoints", "alternateName",
            "created", "modified", "address.addressCountry", "wikidata"} <= set(names)
    assert not any(n.startswith(("openingHours.", "contactPoints.")) for n in names)


def test_extra_languages_follow_de_and_en_sorted():
    names = columns("actor", ["uk", "en", "ar", "de"])
    assert names[1:6] == ["name@de", "name@en", "name@ar", "name@uk", "description@de"]


@pytest.mark.parametrize("kind", sorted(ENTITIES))
def test_every_field_has_its_columns(kind):
    names = columns(kind)
    assert names[0] == "id" and len(names) == len(set(names))
    keys = {n.partition("@")[0].partition(".")[0] for n in names[1:]}
    assert keys == {f.key for f in ENTITIES[kind].fields}


def test_text_languages_of_records(actors, offer):
    assert text_languages("actor", actors) == {"de", "en", "uk"}
    assert text_languages("offer", [offer]) == {"de", "fa"}
    assert text_languages("actor", []) == set()


def test_record_to_row_cells(actor):
    names, rows = table("actor", [actor])
    row = dict(zip(names, rows[0], strict=True))
    assert row["id"] == "k7f3q2"
    assert row["name@de"] == "Nachbarschaftshilfe Pieschen e.V."
    assert row["description@uk"] == actor["description"]["uk"]
    assert row["actorTypes"] == "verein; freiwilligenagentur"
    assert row["alternateName"] == "NH Pieschen; Pieschen hilft"
    assert row["address.postalCode"] == "01127"
    assert row["address.addressRegion"] == ""
    assert float(row["geo.latitude"]) == 51.0781 and float(row["geo.longitude"]) == 13.7152
    assert orjson.loads(row["contactPoints"]) == actor["contactPoints"]
    assert orjson.loads(row["openingHours"]) == actor["openingHours"]
    assert row["created"] == "2024-03-01T10:15:00Z"
    assert row["parentOrganization"] == ""
    assert all(isinstance(cell, str) for cell in rows[0])


def test_text_without_a_column_is_left_out(actor):
    names = columns("actor")  # no "uk" column
    assert "Ми" not in "".join(record_to_row("actor", actor, names))


def test_record_to_row_rejects_unknown_columns(actor):
    with pytest.raises(TabularError) as info:
        record_to_row("actor", actor, ["id", "nickname"])
    assert info.value.column == "nickname"


# --------------------------------------------------------------------------- round trips


def test_rich_records_round_trip(actor, actors, offer):
    assert reimport("actor", actor) == expected("actor", actor)
    for record in actors:
        assert reimport("actor", record) == expected("actor", record)
    assert reimport("offer", offer) == expected("offer", offer)


def test_round_trip_through_a_shared_table(actors):
    names, rows = table("actor", actors)
    for record, row in zip(actors, rows, strict=True):
        data = row_to_data("actor", dict(zip(names, row, strict=True)))
        assert load_record("actor", data) == expected("actor", record)


@pytest.mark.parametrize("kind", sorted(ENTITIES))
@settings(max_examples=60, database=None, deadline=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_any_valid_record_round_trips(kind, data):
    record = data.draw(records(kind))
    assert reimport(kind, record) == expected(kind, record)


# --------------------------------------------------------------------------- rows -> data


def test_row_to_data_builds_nested_data_and_drops_empty_cells():
    row = {
        "id": "ignored", "created": "2024-01-01T00:00:00Z", "modified": "",
        "name@de": "  Tafel Dresden ", "name@en": "", "actorTypes": " verein ;; network; ",
        "geo.latitude": "51,05", "geo.longitude": "13.7", "address.postalCode": "",
        "address.addressLocality": "Dresden", "alternateName": "",
        "contactPoints": '[{"contactType": {"de": "Büro"}, "consentRecorded": true}]',
        "openingHours": " ",
    }
    assert row_to_data("actor", row) == {
        "name": {"de": "Tafel Dresden"},
        "actorTypes": ["verein", "network"],
        "geo": {"latitude": 51.05, "longitude": 13.7},
        "address": {"addressLocality": "Dresden"},
        "contactPoints": [{"contactType": {"de": "Büro"}, "consentRecorded": True}],
    }


@pytest.mark.parametrize(("cell", "value"), [
    ("true", True), ("TRUE", True), ("1", True), ("ja", True), ("WAHR", True),
    ("false", False), ("0", False), ("Nein", False), ("FALSCH", False),
])
def test_booleans_as_spreadsheets_write_them(cell, value):
    # booleans live inside contact points; a hypothetical flat boolean column parses alike
    from exports.tabular import _parse_scalar

    assert _parse_scalar(Field("x", None, "boolean"), cell, "x") is value


@pytest.mark.parametrize(("cell", "value"), [
    ("51.05", 51.05), ("51,05", 51.05), ("-0.5", -0.5), ("13", 13.0), ("1e3", 1000.0),
])
def test_numbers_as_spreadsheets_write_them(cell, value):
    assert row_to_data("actor", {"geo.latitude": cell})["geo"]["latitude"] == value


@pytest.mark.parametrize(("row", "column", "message"), [
    ({"nickname": "x"}, "nickname", "unknown column"),
    ({"address.planet": "Mars"}, "address.planet", "unknown column"),
    ({"name": "Tafel"}, "name", "one column per language"),
    ({"name@": "Tafel"}, "name@", "one column per language"),
    ({"url@de": "https://a.example"}, "url@de", "has no languages"),
    ({"geo.latitude": "51.0.5"}, "geo.latitude", "not a number"),
    ({"geo.latitude": "1_000"}, "geo.latitude", "not a number"),
    ({"geo.latitude": "nan"}, "geo.latitude", "not a number"),
    ({"contactPoints": "[{"}, "contactPoints", "not valid JSON"),
    ({"openingHours": '{"opens": "09:00"}'}, "openingHours", "JSON array of objects"),
    ({"openingHours": "[1, 2]"}, "openingHours", "JSON array of objects"),
])
def test_cells_that_cannot_become_data(row, column, message):
    with pytest.raises(TabularError, match=message) as info:
        row_to_data("actor", row)
    assert info.value.column == column


def test_the_wrong_kinds_columns_are_unknown():
    with pytest.raises(TabularError) as info:
        row_to_data("offer", {"actorTypes": "verein"})
    assert info.value.column == "actorTypes" and "offer" in str(info.value)


def test_invalid_values_are_left_to_load_record():
    data = row_to_data("actor", {"name@de": "X", "actorTypes": "no_such_type",
                                 "email": "not-an-address"})
    assert data["actorTypes"] == ["no_such_type"]
