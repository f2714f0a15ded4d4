"""SHACL: valid records conform; each kind of bad record fails naming its field."""

from __future__ import annotations

import pytest
from rdflib import Graph

from vocab import EA, to_graph
from vocab.mapping import entity_uri
from vocab.namespaces import concept_uri
from vocab.shapes import validate

BASE = "http://node.test"

GOOD = {
    "actor": {"id": "a1", "name": {"de": "Freiwilligenagentur", "en": "Volunteer agency"},
              "description": {"de": "Anlaufstelle für Engagement."},
              "actorTypes": ["freiwilligenagentur"], "legalForm": "ev",
              "engagementMode": "blended", "status": "active", "lastConfirmed": "2026-11-01",
              "url": "https://example.org/", "email": "info@example.org",
              "geo": {"latitude": 51.05, "longitude": 13.74},
              "address": {"addressLocality": "Dresden", "addressCountry": "DE"},
              "openingHours": [{"dayOfWeek": ["Monday"], "opens": "09:00", "closes": "12:00"}],
              "contactPoints": [{"contactType": {"de": "Beratung"}, "email": "rat@example.org"},
                                {"contactType": {"de": "Leitung"}, "personName": "A. B.",
                                 "consentRecorded": True}],
              "languages": ["de", "ar"], "wikidata": "Q42", "foundingDate": "2015-06-01"},
    "offer": {"id": "o1", "name": {"de": "Sprachcafé"}, "offerTypes": ["course"],
              "provider": f"{BASE}/actors/a1"},
    "event": {"id": "e1", "name": {"de": "Fest"}, "startDate": "2026-06-01T14:00:00Z",
              "endDate": "2026-06-01T18:00:00Z"},
    "project": {"id": "p1", "name": {"de": "App"}, "operatedBy": [f"{BASE}/actors/a1"]},
    "funding-programme": {"id": "f1", "name": {"de": "Preis"}, "amount": 48000.0,
                          "currency": "EUR", "applicationStart": "2026-03-01",
                          "applicationEnd": "2026-05-31"},
    "cooperation": {"id": "c1", "partners": [f"{BASE}/actors/a1", f"{BASE}/actors/a2"],
                    "levels": ["professional", "economic"], "since": "2016-01-01"},
}


@pytest.mark.parametrize("kind", sorted(GOOD))
def test_good_records_have_no_violations(kind):
    results = validate(to_graph(kind, GOOD[kind], BASE))
    assert [r for r in results if r.severity == "Violation"] == []


def test_missing_recommended_fields_are_warnings_not_violations():
    results = validate(to_graph("project", GOOD["project"], BASE))
    assert results and {r.severity for r in results} == {"Warning"}
    assert "description" in {r.field for r in results}


def _bad(kind: str, **changes) -> Graph:
    record = {**GOOD[kind], **changes}
    return to_graph(kind, {k: v for k, v in record.items() if v is not None}, BASE)


BAD = [
    ("missing name", "actor", {"name": None}, "name"),
    ("javascript URL", "actor", {"url": "javascript:alert(1)"}, "url"),
    ("data URL", "actor", {"url": "data:text/html,hi"}, "url"),
    ("latitude 123", "actor", {"geo": {"latitude": 123.0, "longitude": 13.0}}, "latitude"),
    ("unknown actor type", "actor", {"actorTypes": ["pirate_ship"]}, "actorTypes"),
    ("malformed email", "actor", {"email": "not-an-address"}, "email"),
    ("bad language tag", "actor", {"languages": ["deutsch!"]}, "languages"),
    ("missing actor type", "actor", {"actorTypes": None}, "actorTypes"),
    ("end before start", "event", {"endDate": "2026-05-01T00:00:00Z"}, "startDate"),
    ("one partner", "cooperation", {"partners": [f"{BASE}/actors/a1"]}, "partners"),
    ("person without consent", "actor", {"contactPoints": [
        {"contactType": {"de": "Leitung"}, "personName": "A. B."}]}, "personName"),
    ("offer without provider", "offer", {"provider": None}, "provider"),
]


@pytest.mark.parametrize("label, kind, changes, field", BAD, ids=[b[0] for b in BAD])
def test_bad_records_fail_naming_the_field(label, kind, changes, field):
    _assert_violation(_bad(kind, **changes), field)


def test_a_single_valued_field_with_two_values_fails():
    graph = _bad("actor")
    graph.add((entity_uri(BASE, "actor", "a1"), EA.legalForm, concept_uri("legal-form", "ug")))
    _assert_violation(graph, "legalForm")


def _assert_violation(graph: Graph, field: str) -> None:
    violations = [r for r in validate(graph) if r.severity == "Violation"]
    assert field in {r.field for r in violations}, violations
    assert any(r.message.startswith(f"{field}:") for r in violations), violations
