"""The fast SHACL check against pyshacl, the reference: same verdicts, valid or corrupted."""

from __future__ import annotations

import pyoxigraph as ox
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harvesters import checks, fastcheck
from harvesters.parse import ParseLimits, parse_rdf
from harvesters.validation import check_entities
from tests.vocab.strategies import BASE, records
from vocab import ENTITIES, to_graph
from vocab.fields import Field
from vocab.mapping import iter_fields
from vocab.namespaces import EA, RDFS, SCHEMA, XSD, concept_uri
from vocab.terms import notations

KINDS = sorted(ENTITIES)
_N, _L = ox.NamedNode, ox.Literal


def _dt(name: str) -> ox.NamedNode:
    return _N(str(XSD[name]))


FIELDS: list[Field] = [f for spec in ENTITIES.values() for f in iter_fields(spec.fields)]
PREDICATES = sorted({str(f.predicate) for f in FIELDS} | {str(EA.consentRecorded)})
# Values that break (or only just keep) one constraint or another.
ODD_OBJECTS = [
    _L("x"), _L(""), _L("de\n"), _L("a" * 301), _L("a" * 301, language="de"),
    _L("x", language="de"), _L("y", language="de"), _L("z", language="DE"),
    _L("2020-13-45", datatype=_dt("date")), _L("1999-01-01", datatype=_dt("date")),
    _L("3000-01-01", datatype=_dt("date")), _L("2020-01-01Z", datatype=_dt("date")),
    _L("2020-01-01T00:00:00", datatype=_dt("dateTime")),
    _L("2020-01-01T00:00:00Z", datatype=_dt("dateTime")),
    _L("2999-01-01T00:00:00+02:00", datatype=_dt("dateTime")),
    _L("09:30:00", datatype=_dt("time")), _L("25:00:00", datatype=_dt("time")),
    _L("abc", datatype=_dt("decimal")), _L("91.5", datatype=_dt("decimal")),
    _L("-90", datatype=_dt("decimal")), _L("1E3", datatype=_dt("decimal")),
    _L("45", datatype=_dt("integer")), _L("12.5", datatype=_dt("decimal")),
    _L("1", datatype=_dt("boolean")), _L("true", datatype=_dt("boolean")),
    _L("maybe", datatype=_dt("boolean")), _L("info@example.org"), _L("not an email"),
    _L("de-CH"), _L("x-toolong-tag"), _L("http://www.wikidata.org/entity/Q5"),
    _L("https://example.org/", datatype=_dt("anyURI")),
    _N("https://example.org/"), _N("http://www.wikidata.org/entity/Q7"),
    _N("urn:x:y"), _N(str(SCHEMA.Monday)), _N(str(SCHEMA.Funday)),
    _N(str(concept_uri("actor-type", sorted(notations("actor-type"))[0]))),
    _N(str(concept_uri("target-group", sorted(notations("target-group"))[0]))),
    _N(str(concept_uri("actor-type", "no-such-concept"))),
]


def _triples(kind: str, record: dict) -> list[ox.Triple]:
    text = to_graph(kind, record, BASE).serialize(format="nt", encoding="utf-8")
    triples = parse_rdf(text, "application/n-triples", base_iri=None, limits=ParseLimits())
    iri = f"{BASE}/{ENTITIES[kind].collection}/{record['id']}"
    # what the pipeline keeps: statements about the entity and its #fragments
    return [t for t in triples if t.subject.value.split("#", 1)[0] == iri]


@st.composite
def entities(draw, corrupt: bool) -> tuple[str, list[ox.Triple]]:
    kind = draw(st.sampled_from(KINDS))
    record = draw(records(kind))
    triples = _triples(kind, record)
    iri = next(t.subject.value for t in triples if "#" not in t.subject.value)
    if not corrupt:
        return iri, triples
    subjects = sorted({t.subject.value for t in triples}) + [iri + "#contact-9", iri + "#geo"]
    for _ in range(draw(st.integers(1, 4))):
        action = draw(st.sampled_from(["drop", "object", "add", "predicate", "odd"]))
        i = draw(st.integers(0, max(len(triples) - 1, 0)))
        if action == "drop" and triples:
            triples.pop(i)
        elif action == "object" and triples:
            t = triples[i]
            triples[i] = ox.Triple(t.subject, t.predicate, draw(st.sampled_from(ODD_OBJECTS)))
        elif action == "predicate" and triples:
            t = triples[i]
            triples[i] = ox.Triple(t.subject, _N(draw(st.sampled_from(PREDICATES))), t.object)
        elif action == "add":
            triples.append(ox.Triple(_N(draw(st.sampled_from(subjects))),
                                     _N(draw(st.sampled_from(PREDICATES))),
                                     draw(st.sampled_from(ODD_OBJECTS + [
                                         _N(s) for s in subjects]))))
        else:  # input only pyshacl reads: blank nodes, classes, other entities' subjects
            extra = draw(st.sampled_from([
                ox.Triple(_N(iri), _N(str(SCHEMA.subjectOf)), ox.BlankNode("b1")),
                ox.Triple(_N(iri + "#x"), _N(str(RDFS.subClassOf)), _N(str(EA.Actor))),
                ox.Triple(_N(BASE + "/actors/other"), _N(str(SCHEMA.name)), _L("x")),
            ]))
            triples.append(extra)
    return iri, triples


def _same_verdicts(groups: dict) -> dict:
    fast = check_entities(groups)
    reference = check_entities(groups, fast=False)
    assert fast == reference
    return fast


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(entities(corrupt=False), min_size=1, max_size=4, unique_by=lambda e: e[0]))
def test_valid_entities_get_pyshacls_verdicts(items):
    groups = dict(items)
    verdicts = _same_verdicts(groups)
    for iri, triples in groups.items():  # the fast path decided every conforming one
        assert fastcheck.simple(iri, triples)
        assert (fastcheck.conforming(triples) is not None) == verdicts[iri].accepted


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(entities(corrupt=True), min_size=1, max_size=3, unique_by=lambda e: e[0]))
def test_corrupted_entities_get_pyshacls_verdicts(items):
    _same_verdicts(dict(items))


def test_warnings_are_decided_without_pyshacl():
    record = {"id": "w1", "name": {"de": "Nur ein Name"}, "actorTypes": ["verein"]}
    triples = _triples("actor", record)
    found = fastcheck.conforming(triples)
    assert found is not None and {r.field for r in found} >= {"description", "status"}
    assert all(r.severity == "Warning" for r in found)
    iri = f"{BASE}/actors/w1"
    assert check_entities({iri: triples})[iri].warnings == found


SPACES = ["http://node.test/", "http://127.0.0.1:5000/n001/", "https://example.org/atlas/"]
_IRI_PARTS = st.sampled_from(["a", "actors", "/", ".", "..", "%2e", "%2E%2e", "?", "#", "\\",
                              " ", "\u3000", "@", ":", "x.y", "%", "%41", "Z", "é"])


@settings(max_examples=500, deadline=None)
@given(st.sampled_from(SPACES), st.lists(_IRI_PARTS, max_size=8), st.booleans())
def test_the_uri_space_fast_path_agrees_with_parsing(space, parts, shouted):
    iri = space + "".join(parts)
    if shouted:  # not the canonical prefix: the parsing path decides
        iri = iri.replace("http", "HTTP", 1)
    key, wanted = checks._iri_key(iri), checks._iri_key(space)
    reference = key is not None and key[:3] == wanted[:3] and key[3].startswith(wanted[3])
    assert checks.in_uri_space(iri, space) == reference
