"""The record <-> RDF mapping: round trips, JSON-LD equivalence, refusal of remote contexts."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from pyld import jsonld
from rdflib import Dataset, Graph, URIRef
from rdflib.compare import isomorphic

from vocab import ENTITIES, from_graph, normalize, to_graph, to_jsonld
from vocab.context import CONTEXT_URL, document_loader, inline_contexts
from vocab.errors import RemoteContextRefused
from vocab.mapping import decimal_lexical, entity_id, entity_uri

from .strategies import BASE, records

KINDS = sorted(ENTITIES)
_settings = settings(max_examples=40, deadline=None,
                     suppress_health_check=[HealthCheck.too_slow])


def _pyld_graph(doc: dict) -> Graph:
    nquads = jsonld.to_rdf(doc, {"format": "application/n-quads",
                                 "documentLoader": document_loader})
    return Graph().parse(data=nquads, format="nt")


@pytest.mark.parametrize("kind", KINDS)
def test_record_rdf_record_is_identical(kind):
    @_settings
    @given(records(kind))
    def check(record):
        assert from_graph(to_graph(kind, record, BASE), kind, BASE) == [record]

    check()


@pytest.mark.parametrize("kind", KINDS)
def test_rdf_record_rdf_is_isomorphic(kind):
    @_settings
    @given(records(kind))
    def check(record):
        graph = to_graph(kind, record, BASE)
        (back,) = from_graph(graph, kind, BASE)
        assert isomorphic(to_graph(kind, back, BASE), graph)

    check()


@pytest.mark.parametrize("kind", KINDS)
def test_jsonld_states_what_the_graph_states(kind):
    """PyLD (bundled context only) and rdflib's Turtle give the same graph."""

    @settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(records(kind))
    def check(record):
        graph = to_graph(kind, record, BASE)
        turtle = Graph().parse(data=graph.serialize(format="turtle"), format="turtle")
        assert isomorphic(_pyld_graph(to_jsonld(kind, record, BASE)), turtle)

    check()


def test_rdflib_reads_our_jsonld_with_the_bundled_context():
    record = {"id": "x1", "name": {"de": "Verein", "en": "Club"}, "actorTypes": ["verein"],
              "geo": {"latitude": 51.05, "longitude": 13.74}}
    doc = inline_contexts(to_jsonld("actor", record, BASE))
    graph = Graph().parse(data=json.dumps(doc), format="json-ld")
    assert isomorphic(graph, to_graph("actor", record, BASE))


def test_remote_context_is_refused_not_fetched():
    evil = {"@context": "http://127.0.0.1:9/never-fetched.jsonld", "name": "x"}
    with pytest.raises(RemoteContextRefused):
        inline_contexts(evil)
    with pytest.raises(jsonld.JsonLdError) as info:
        jsonld.expand(evil, {"documentLoader": document_loader})
    assert "never-fetched" in repr(info.value.__cause__ or info.value)


def test_scoped_remote_context_inside_a_context_is_refused():
    sneaky = {"@context": [CONTEXT_URL, {"x": {"@id": "ex:x", "@context": "file:///etc/passwd"}}]}
    with pytest.raises(RemoteContextRefused):
        inline_contexts(sneaky)


def test_subjects_outside_the_base_are_ignored():
    record = {"id": "a", "name": {"de": "A"}, "actorTypes": ["verein"]}
    graph = to_graph("actor", record, "http://other.test")
    assert from_graph(graph, "actor", BASE) == []


def test_entity_uri_and_id_are_inverse():
    uri = entity_uri(BASE + "/", "funding-programme", "p1")
    assert uri == URIRef("http://node.test/funding-programmes/p1")
    assert entity_id(BASE, "funding-programme", str(uri)) == "p1"
    assert entity_id(BASE, "funding-programme", str(uri) + "#geo") is None
    assert entity_id(BASE, "actor", str(uri)) is None


@pytest.mark.parametrize("value, lexical", [
    (51.05, "51.05"), (1e-05, "0.00001"), (-0.0, "0.0"), (48000, "48000.0"), (12.50, "12.5"),
    (-7.25, "-7.25")])
def test_decimal_lexical_form_has_no_exponent(value, lexical):
    assert decimal_lexical(value) == lexical


def test_normalize_sorts_and_drops_empty_values():
    messy = {"id": "a", "name": {"en": "B", "de": "A"}, "actorTypes": ["verein", "network",
             "verein"], "description": {}, "languages": [], "url": None,
             "openingHours": [{"dayOfWeek": ["Friday", "Monday"], "opens": "09:00",
                               "closes": "12:00"}]}
    assert normalize("actor", messy) == {
        "id": "a", "name": {"de": "A", "en": "B"}, "actorTypes": ["network", "verein"],
        "openingHours": [{"dayOfWeek": ["Monday", "Friday"], "opens": "09:00",
                          "closes": "12:00"}]}


def test_plain_schema_org_query_finds_actors_without_reasoning():
    """A generic consumer that knows only schema.org finds names, addresses and websites."""
    import pyoxigraph as ox

    record = {"id": "afeefa", "name": {"de": "Afeefa"}, "actorTypes": ["digital_project"],
              "url": "https://afeefa.de/", "address": {"addressLocality": "Dresden",
                                                       "addressCountry": "DE"}}
    store = ox.Store()
    store.load(to_graph("actor", record, BASE).serialize(format="nt").encode(),
               format=ox.RdfFormat.N_TRIPLES)
    rows = list(store.query("""
        PREFIX schema: <https://schema.org/>
        SELECT ?org ?name ?city ?web WHERE {
          ?org a schema:Organization ; schema:name ?name ; schema:url ?web ;
               schema:address [ schema:addressLocality ?city ] .
        }"""))
    assert len(rows) == 1
    assert rows[0]["name"].value == "Afeefa"
    assert rows[0]["city"].value == "Dresden"
    assert rows[0]["web"].value == "https://afeefa.de/"
    assert rows[0]["org"].value == f"{BASE}/actors/afeefa"


def test_dataset_keeps_one_graph_per_entity():
    """Callers may collect entities in named graphs (as harvesters do)."""
    ds = Dataset()
    for i in range(3):
        rec = {"id": f"a{i}", "name": {"de": f"A{i}"}, "actorTypes": ["verein"]}
        to_graph("actor", rec, BASE, graph=ds.graph(URIRef(f"{BASE}/actors/a{i}")))
    assert len(list(ds.graphs())) == 4  # three named graphs plus the default graph
