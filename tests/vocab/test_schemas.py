"""marshmallow rules for client input: the same rules the shapes state, before storage."""

from __future__ import annotations

import pytest

from vocab import InvalidRecord, load_record

VALID = {"name": {"de": "Verein"}, "actorTypes": ["verein"]}


def test_valid_input_becomes_a_canonical_record():
    record = load_record("actor", {**VALID, "name": {"DE": "  Verein  "},
                                   "languages": ["AR", "de"], "actorTypes": ["verein", "network"]})
    assert record == {"name": {"de": "Verein"}, "actorTypes": ["network", "verein"],
                      "languages": ["ar", "de"]}


def test_datetimes_are_written_in_xsd_form():
    record = load_record("event", {"name": {"de": "Fest"}, "startDate": "2026-06-01T14:00+02:00"})
    assert record["startDate"] == "2026-06-01T14:00:00+02:00"


BAD = [
    ({"name": 5}, "name"),
    ({"name": {}}, "name"),
    ({"name": {"deutsch!": "x"}}, "name"),
    ({"name": {"de": "x" * 301}}, "name"),
    ({"url": "javascript:alert(1)"}, "url"),
    ({"url": "data:text/html,<b>hi</b>"}, "url"),
    ({"email": "nope"}, "email"),
    ({"geo": {"latitude": 123, "longitude": 10}}, "geo"),
    ({"actorTypes": ["pirate_ship"]}, "actorTypes"),
    ({"languages": ["not a tag"]}, "languages"),
    ({"foundingDate": "2015-13-01"}, "foundingDate"),
    ({"foundingDate": "2016-01-01", "dissolutionDate": "2015-01-01"}, "dissolutionDate"),
    ({"created": "2020-01-01T00:00:00Z"}, "created"),
    ({"colour": "blue"}, "colour"),
    ({"wikidata": "42"}, "wikidata"),
    ({"description": {"de": "a\x00b"}}, "description"),
    ({"contactPoints": [{"contactType": {"de": "Leitung"}, "personName": "A. B."}]},
     "contactPoints"),
]


@pytest.mark.parametrize("changes, field", BAD, ids=[b[1] + str(i) for i, b in enumerate(BAD)])
def test_bad_input_names_the_field(changes, field):
    with pytest.raises(InvalidRecord) as info:
        load_record("actor", {**VALID, **changes})
    assert field in info.value.errors


def test_missing_required_fields_are_named():
    with pytest.raises(InvalidRecord) as info:
        load_record("actor", {})
    assert {"name", "actorTypes"} <= set(info.value.errors)


def test_partial_input_skips_required_checks():
    assert load_record("actor", {"url": "https://example.org/"}, partial=True) == {
        "url": "https://example.org/"}


def test_cooperation_needs_two_different_partners():
    one = {"partners": ["http://a.test/actors/1"], "levels": ["normative"]}
    with pytest.raises(InvalidRecord) as info:
        load_record("cooperation", one)
    assert "partners" in info.value.errors
    same = {"partners": ["http://a.test/actors/1"] * 2, "levels": ["normative"]}
    with pytest.raises(InvalidRecord):
        load_record("cooperation", same)


def test_non_objects_are_refused():
    with pytest.raises(InvalidRecord):
        load_record("actor", ["not", "an", "object"])


def test_datetimes_need_a_time_zone():
    with pytest.raises(InvalidRecord) as info:
        load_record("event", {"name": {"de": "Fest"}, "startDate": "2026-06-01T14:00"})
    assert "startDate" in info.value.errors
