"""The search side index reads records without an rdflib Graph: the same rows as with one."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rdflib import Graph

from harvesters import search
from tests.harvesters.test_fastcheck import entities
from vocab import ENTITIES, from_graph
from vocab.namespaces import RDF


def _reference(entity_iri: str, triples) -> tuple[str, dict] | None:
    """`search.records_from_triples` as it was: every statement in an rdflib Graph."""
    graph, types = Graph(), set()
    for triple in triples:
        try:
            s, p, o = (search._term(t) for t in triple)
        except (TypeError, ValueError):
            continue
        graph.add((s, p, o))
        if p == RDF.type and str(s) == entity_iri:
            types.add(str(o))
    base, collection, local_id = ["", "", *entity_iri.rsplit("/", 2)][-3:]
    for spec in ENTITIES.values():
        if str(spec.rdf_type) in types and collection == spec.collection:
            return next(((spec.kind, r) for r in from_graph(graph, spec.kind, base)
                         if r["id"] == local_id), None)
    return None


def _rows(found: tuple[str, dict] | None):
    return None if found is None else (found[0], search._row("src", *found))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(entities(corrupt=False))
def test_valid_entities_give_the_same_rows(item):
    iri, triples = item
    wanted = _rows(_reference(iri, triples))
    assert wanted is not None
    assert _rows(search.records_from_triples(iri, triples, indexed_only=True)) == wanted
    assert _rows(search._direct_record(iri, triples)) == wanted  # read directly, no fallback


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(entities(corrupt=True), st.booleans())
def test_corrupted_entities_give_the_same_rows(item, shuffled):
    iri, triples = item
    triples = list(reversed(triples)) if shuffled else triples
    wanted = _rows(_reference(iri, triples))
    assert _rows(search.records_from_triples(iri, triples, indexed_only=True)) == wanted
    assert _rows(search.indexed_record(iri, triples)) == wanted
