"""Checks: authority by URI space, grouping per entity, version members, SHACL verdicts."""

from __future__ import annotations

import copy
import logging

import pyoxigraph as ox
import pytest
from rdflib import Graph, Literal, URIRef

from harvesters import checks, validation
from harvesters.checks import (
    entity_of_version,
    group_entities,
    in_uri_space,
    normalize_uri_space,
    split_by_authority,
    split_entities,
    split_versions,
)
from harvesters.parse import ParseLimits, parse_rdf
from harvesters.validation import check_entities, check_entity
from vocab import to_graph
from vocab.namespaces import AS, DCTERMS, EA, RDF, SCHEMA, XSD

BASE = "http://node.test"
SPACE = f"{BASE}/"
P = ox.NamedNode("http://p.test/p")
ACTOR = {
    "id": "a1", "name": {"de": "Freiwilligenagentur", "en": "Volunteer agency"},
    "description": {"de": "Anlaufstelle für Engagement."},
    "actorTypes": ["freiwilligenagentur"], "legalForm": "ev", "engagementMode": "blended",
    "status": "active", "lastConfirmed": "2026-11-01", "url": "https://example.org/",
    "geo": {"latitude": 51.05, "longitude": 13.74},
    "contactPoints": [{"contactType": {"de": "Beratung"}, "email": "rat@example.org"}],
}


def actor(**changes) -> dict:
    record = copy.deepcopy(ACTOR)
    record.update(changes)
    return record


def triples(graph: Graph) -> list[ox.Triple]:
    return parse_rdf(graph.serialize(format="nt", encoding="utf-8"), "application/n-triples",
                     base_iri=None, limits=ParseLimits())


def actor_triples(record: dict) -> list[ox.Triple]:
    return triples(to_graph("actor", record, BASE))


def node(iri: str) -> ox.NamedNode:
    return ox.NamedNode(iri)


def uri(record_id: str) -> str:
    return f"{BASE}/actors/{record_id}"


# --------------------------------------------------------------------------- authority


OWN = [
    f"{BASE}/actors/a1",
    f"{BASE}/actors/a1#geo",
    f"{BASE}/actors/a1?x=1",
    f"{BASE}/",
    "HTTP://NODE.TEST/actors/a1",  # scheme and host compare case-insensitively
    "http://node.test:80/actors/a1",  # the default port is the same port
]
FOREIGN = [
    "http://other.test/actors/a1",
    "http://node.test.evil/actors/a1",
    "http://node.testevil/",
    "http://evil.test/node.test/",
    "http://node.test@evil.test/actors/a1",
    "http://user:pw@node.test/actors/a1",  # user info is refused even for our own host
    "http://node.test/actors/../../x",
    "http://node.test/actors/%2e%2E/x",
    "http://node.test/./actors/a1",
    "https://node.test/actors/a1",
    "http://node.test:8080/actors/a1",
    "http://node.test",
    "ftp://node.test/actors/a1",
    "urn:uuid:0e9f3a1c-0000-4000-8000-000000000000",
]


@pytest.mark.parametrize("iri", OWN)
def test_own_subjects_are_accepted(iri):
    assert in_uri_space(iri, SPACE)
    accepted, dropped = split_by_authority([ox.Triple(node(iri), P, ox.Literal("x"))], SPACE)
    assert len(accepted) == 1 and not dropped


@pytest.mark.parametrize("iri", FOREIGN)
def test_foreign_subjects_are_dropped(iri):
    assert not in_uri_space(iri, SPACE)
    own = ox.Triple(node(uri("a1")), P, node(iri))  # pointing at others is fine
    foreign = ox.Triple(node(iri), P, ox.Literal("x"))
    accepted, dropped = split_by_authority([own, foreign], SPACE)
    assert accepted == [own]
    assert dropped.count == 1 and dropped.examples == (f"<{iri}>",)


@pytest.mark.parametrize("iri", ["http://node.test\\@evil.test/", "http://node.test\\..\\x",
                                 "http://node.test/a b", "http://node.test:99999/",
                                 "http://[::1/"])
def test_odd_iris_are_outside(iri):
    assert not in_uri_space(iri, SPACE)


def test_a_space_with_a_path_is_a_path_prefix():
    space = "https://portal.test/atlas/"
    assert in_uri_space("https://portal.test/atlas/actors/1", space)
    assert not in_uri_space("https://portal.test/atlas-evil/actors/1", space)
    assert not in_uri_space("https://portal.test/atlas", space)
    assert not in_uri_space("https://portal.test/atlas/../other/1", space)


@pytest.mark.parametrize("space, normal", [
    ("http://node.test/", "http://node.test/"),
    ("HTTP://Node.Test:80/", "http://node.test/"),
    ("https://portal.test:8443/atlas/", "https://portal.test:8443/atlas/"),
    ("http://[::1]:5000/", "http://[::1]:5000/"),
])
def test_uri_space_normal_form(space, normal):
    assert normalize_uri_space(space) == normal


@pytest.mark.parametrize("space", [
    "http://node.test", "http://node.test/atlas", "ftp://node.test/", "http://u@node.test/",
    "http://node.test/a/../", "http://node.test/?q=1", "http://node.test/#x", "node.test/",
])
def test_unusable_uri_spaces_are_refused(space):
    with pytest.raises(ValueError):
        normalize_uri_space(space)
    with pytest.raises(ValueError):
        split_by_authority([], space)


def test_blank_nodes_count_only_when_reachable_from_an_own_subject():
    own_blank, orphan, foreign_blank, deep = (ox.BlankNode() for _ in range(4))
    data = [
        ox.Triple(node(uri("a1")), P, own_blank),
        ox.Triple(own_blank, P, deep),
        ox.Triple(deep, P, ox.Literal("kept, two hops away")),
        ox.Triple(orphan, P, ox.Literal("nobody points here")),
        ox.Triple(node("http://evil.test/x"), P, foreign_blank),
        ox.Triple(foreign_blank, P, ox.Literal("reachable only from a foreign subject")),
    ]
    accepted, dropped = split_by_authority(data, SPACE)
    assert set(accepted) == set(data[:3])
    assert dropped.count == 3
    assert "3 statements" in str(dropped) and "http://evil.test/x" in str(dropped)


def test_a_source_cannot_state_things_about_another_sources_actor():
    mine = actor_triples(actor())
    theirs = triples(to_graph("actor", actor(id="b9"), "http://other.test"))
    accepted, dropped = split_by_authority(mine + theirs, SPACE)
    assert set(accepted) == set(mine)
    assert dropped.count == len(theirs)
    assert "<http://other.test/actors/b9>" in dropped.examples


# --------------------------------------------------------------------------- grouping


def test_grouping_collects_fragments_and_blank_nodes_per_entity():
    a1, a2 = actor_triples(actor()), actor_triples(actor(id="a2"))
    blank = ox.BlankNode()
    extra = [ox.Triple(node(uri("a2") + "#geo"), P, blank), ox.Triple(blank, P, ox.Literal("b"))]
    feed = [ox.Triple(node(f"{BASE}/feed"), node(str(RDF.type)),
                      node("https://w3id.org/ldes#EventStream"))]
    outside = triples(to_graph("actor", actor(id="z"), "http://other.test"))
    groups, rest = split_entities(a1 + a2 + extra + feed + outside, SPACE)
    assert set(groups) == {uri("a1"), uri("a2")}
    assert set(groups[uri("a1")]) == set(a1)
    assert set(groups[uri("a2")]) == set(a2 + extra)
    assert any(t.subject.value == uri("a1") + "#geo" for t in groups[uri("a1")])
    assert set(rest) == set(feed + outside)
    assert group_entities(a1 + a2, SPACE).keys() == groups.keys()


def test_every_entity_kind_is_grouped():
    graph = Graph()
    to_graph("offer", {"id": "o1", "name": {"de": "Kurs"}, "offerTypes": ["course"],
                       "provider": uri("a1")}, BASE, graph)
    to_graph("event", {"id": "e1", "name": {"de": "Fest"},
                       "startDate": "2026-06-01T14:00:00Z"}, BASE, graph)
    assert set(group_entities(triples(graph), SPACE)) == {f"{BASE}/offers/o1",
                                                         f"{BASE}/events/e1"}


def test_duplicate_statements_from_several_graphs_count_once():
    quads = b"".join(line[:-2] + b" <http://node.test/g%d> .\n" % i
                     for i in range(2)
                     for line in to_graph("actor", actor(), BASE).serialize(
                         format="nt", encoding="utf-8").splitlines() if line.strip())
    data = parse_rdf(quads, "application/n-quads", base_iri=None, limits=ParseLimits())
    assert len(group_entities(data, SPACE)[uri("a1")]) == len(data) // 2


# --------------------------------------------------------------------------- versions


def version_graph(record: dict, number: int) -> Graph:
    """A version member as the node publishes it: {entity}/versions/{n}, fragments below it."""
    entity_graph = to_graph("actor", record, BASE)
    version = f"{uri(record['id'])}/versions/{number}"
    out = Graph()
    for triple in entity_graph:
        out.add(tuple(URIRef(str(t).replace(uri(record["id"]), version, 1))
                      if isinstance(t, URIRef) and str(t).startswith(uri(record["id"]))
                      else t for t in triple))
    out.add((URIRef(version), DCTERMS.isVersionOf, URIRef(uri(record["id"]))))
    out.add((URIRef(version), DCTERMS.modified,
             Literal("2026-11-02T10:00:00Z", datatype=XSD.dateTime, normalize=False)))
    return out


def test_entity_of_version():
    assert entity_of_version(f"{uri('a1')}/versions/12") == (uri("a1"), 12)
    assert entity_of_version(f"{uri('a1')}/versions/12#geo") is None
    assert entity_of_version(uri("a1")) is None
    assert entity_of_version(f"{uri('a1')}/versions/x") is None


def test_version_members_map_back_to_their_entities():
    page = version_graph(actor(), 3) + version_graph(actor(id="a2"), 7)
    deletion = URIRef(f"{uri('a3')}/versions/2")
    page.add((deletion, RDF.type, AS.Delete))
    page.add((deletion, DCTERMS.isVersionOf, URIRef(uri("a3"))))
    # claims to be a version of a2 but is not under a2's IRI: not a member
    page.add((URIRef(f"{uri('a1')}/versions/9"), DCTERMS.isVersionOf, URIRef(uri("a2"))))
    page.add((URIRef(f"{BASE}/feed"), URIRef("https://w3id.org/tree#member"),
              URIRef(f"{uri('a1')}/versions/3")))
    members, rest = split_versions(triples(page), SPACE)
    by_entity = {m.entity: m for m in members}
    assert set(by_entity) == {uri("a1"), uri("a2"), uri("a3")}
    first = by_entity[uri("a1")]
    assert (first.version, first.iri, first.deleted) == (3, f"{uri('a1')}/versions/3", False)
    expected = set(actor_triples(actor())) | {ox.Triple(
        node(uri("a1")), node(str(DCTERMS.modified)),
        ox.Literal("2026-11-02T10:00:00Z", datatype=node(str(XSD.dateTime))))}
    assert set(first.triples) == expected  # fragments rewritten, isVersionOf left out
    assert by_entity[uri("a3")].deleted
    assert {str(t.subject) for t in rest} == {f"<{uri('a1')}/versions/9>", f"<{BASE}/feed>"}
    verdict = check_entity(first.entity, first.triples)
    assert verdict.accepted and not verdict.warnings


def test_version_members_outside_the_space_are_not_members():
    page = version_graph(actor(), 3)
    members, _rest = split_versions(triples(page), "http://node.test/actors/a1/")
    assert members == []


# --------------------------------------------------------------------------- SHACL


def test_a_valid_entity_is_accepted_without_findings():
    verdict = check_entity(uri("a1"), actor_triples(actor()))
    assert verdict.accepted and verdict.violations == [] and verdict.warnings == []


def test_a_warning_only_entity_is_accepted_and_reported():
    record = {"id": "a1", "name": {"de": "Verein"}, "actorTypes": ["verein"]}
    verdict = check_entity(uri("a1"), actor_triples(record))
    assert verdict.accepted and not verdict.violations
    assert {w.field for w in verdict.warnings} == {"description", "engagementMode",
                                                   "lastConfirmed", "status"}
    assert all(w.severity == "Warning" for w in verdict.warnings)


@pytest.mark.parametrize("change, field", [
    ({"url": "javascript:alert(1)"}, "url"),
    ({"geo": {"latitude": 123, "longitude": 13.74}}, "latitude"),
    ({"actorTypes": ["no-such-concept"]}, "actorTypes"),
    ({"name": {}}, "name"),
])
def test_violating_entities_are_quarantined_with_reasons(change, field):
    verdict = check_entity(uri("a1"), actor_triples(actor(**change)))
    assert not verdict.accepted
    assert field in {v.field for v in verdict.violations}
    assert any(reason.startswith(f"{field}:") for reason in verdict.reasons)


def test_an_ill_typed_literal_is_a_violation_and_does_not_flood_the_log(caplog):
    text = to_graph("actor", actor(), BASE).serialize(format="nt", encoding="utf-8")
    text = text.replace(b'"51.05"^^', b'"north"^^')  # xsd:decimal latitude
    with caplog.at_level(logging.WARNING, logger="rdflib.term"):
        data = parse_rdf(text, "application/n-triples", base_iri=None, limits=ParseLimits())
        verdict = check_entity(uri("a1"), data)
    assert not verdict.accepted and "latitude" in {v.field for v in verdict.violations}
    assert not [r for r in caplog.records if r.name == "rdflib.term"]


def test_caps_per_entity_are_violations():
    data = actor_triples(actor())
    verdict = check_entity(uri("a1"), data, limits=ParseLimits(max_triples_per_entity=10))
    assert not verdict.accepted and "max_triples_per_entity" in verdict.reasons[0]
    blanks = [ox.Triple(node(uri("a1")), P, ox.BlankNode()) for _ in range(3)]
    verdict = check_entity(uri("a1"), data + blanks,
                           limits=ParseLimits(max_blank_nodes_per_entity=2))
    assert not verdict.accepted and "max_blank_nodes_per_entity" in verdict.reasons[0]


def test_nested_resources_must_be_the_entitys_own_fragments():
    data = actor_triples(actor()) + [
        ox.Triple(node(uri("a1")), node(str(SCHEMA.address)), node(uri("a2") + "#address"))]
    verdict = check_entity(uri("a1"), data)
    assert not verdict.accepted
    assert verdict.reasons == [f"address: must be a fragment IRI of {uri('a1')}"]


def test_a_batch_splits_results_by_focus_node():
    bad_geo = actor(id="a2", geo={"latitude": 123, "longitude": 13.74})
    offer_node = ox.BlankNode()
    sneaky = actor_triples(actor(id="a3")) + [  # a blank node of a3 is itself validated
        ox.Triple(node(uri("a3")), node(str(SCHEMA.subjectOf)), offer_node),
        ox.Triple(offer_node, node(str(RDF.type)), node(str(EA.Offer))),
    ]
    groups = {uri("a1"): actor_triples(actor()), uri("a2"): actor_triples(bad_geo),
              uri("a3"): sneaky,
              uri("a4"): actor_triples(actor(id="a4", actorTypes=["no-such-concept"]))}
    verdicts = check_entities(groups, batch_size=3)
    assert verdicts[uri("a1")].accepted and not verdicts[uri("a1")].warnings
    assert {v.field for v in verdicts[uri("a2")].violations} == {"geo", "latitude"}
    assert not verdicts[uri("a3")].accepted
    assert {v.focus for v in verdicts[uri("a3")].violations} == {offer_node.value}
    assert {v.field for v in verdicts[uri("a4")].violations} == {"actorTypes"}
    singles = {iri: check_entity(iri, data) for iri, data in groups.items()}
    assert singles == verdicts


def test_a_validator_failure_quarantines_only_that_entity(monkeypatch):
    real = validation.validate

    def flaky(graph, shapes=None):
        if (URIRef(uri("a2")), None, None) in graph:
            raise RuntimeError("validator bug")
        return real(graph, shapes)

    monkeypatch.setattr(validation, "validate", flaky)
    verdicts = check_entities({uri("a1"): actor_triples(actor()),  # pyshacl for both
                               uri("a2"): actor_triples(actor(id="a2"))}, fast=False)
    assert verdicts[uri("a1")].accepted
    assert not verdicts[uri("a2")].accepted
    assert verdicts[uri("a2")].reasons == ["entity: validation failed"]


def _runs(statements: list[ox.Triple]) -> list[tuple[str, list[ox.Triple]]]:
    """Consecutive statements per subject key, as the dump reader groups them."""
    runs: dict[str, list[ox.Triple]] = {}
    for t in statements:
        runs.setdefault(t.subject.value.split("#", 1)[0], []).append(t)
    return list(runs.items())


def test_split_grouped_equals_authority_then_entities():
    """The dump reader's shortcut gives exactly what split_by_authority + split_entities
    give: same entities, same statement order, same dropped count and examples."""
    statements = []
    for n in range(6):
        statements += actor_triples(actor(id=f"a{n}"))
    foreign = [ox.Triple(node(f"http://evil.test/x{n}"), P, ox.Literal("x")) for n in range(7)]
    untyped = [ox.Triple(node(f"{BASE}/actors/u1"), P, ox.Literal("no type")),
               ox.Triple(node(f"{BASE}/actors/u1#frag"), P, ox.Literal("f"))]
    fragment_first = [t for t in actor_triples(actor(id="f1")) if "#" in t.subject.value]
    fragment_first += [t for t in actor_triples(actor(id="f1")) if "#" not in t.subject.value]
    repeated = actor_triples(actor(id="r1"))
    dotted = [ox.Triple(node(f"{BASE}/x/../actors/a9"), P, ox.Literal("dots"))]
    for extra in ([], foreign[:3], untyped, fragment_first, repeated + repeated[:5], dotted):
        together = statements[:90] + extra + statements[90:] + foreign[3:]
        runs = _runs(together)
        together = [t for _key, run in runs for t in run]
        accepted, dropped = split_by_authority(together, SPACE)
        expected, _rest = split_entities(accepted, SPACE)
        got, got_dropped = checks.split_grouped(runs, SPACE)
        assert list(got) == list(expected) and got == expected
        assert got_dropped == dropped


def test_split_grouped_leaves_blank_nodes_and_ungrouped_runs_to_the_general_path():
    statements = actor_triples(actor())
    blank = ox.BlankNode()
    with_blank = [*statements, ox.Triple(node(uri("a1")), P, blank),
                  ox.Triple(blank, P, ox.Literal("b"))]
    assert checks.split_grouped(_runs(with_blank), SPACE) is None
    assert checks.split_grouped([("http://node.test/actors/other", statements)], SPACE) is None
    twice = _runs(statements)
    assert checks.split_grouped(twice + twice, SPACE) is None
    untyped = [ox.Triple(node(f"{BASE}/actors/u1"), P, ox.Literal("no type"))]
    assert checks.split_grouped([(f"{BASE}/actors/u1", untyped)] * 2, SPACE) is None
