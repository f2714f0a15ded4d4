"""Ontology, schemes, shapes and context: they parse everywhere, are complete and consistent."""

from __future__ import annotations

import json

import owlrl
import pyoxigraph as ox
import pytest
from rdflib import Graph, Literal, URIRef

from vocab import ENTITIES
from vocab.build import stale_files
from vocab.concepts import SCHEME_CLASSES
from vocab.context import build_context, context
from vocab.mapping import iter_fields, to_graph
from vocab.namespaces import EA, OWL, RDF, RDFS, SKOS, scheme_uri
from vocab.resources import data_path, ontology, read_text, schemes, shapes
from vocab.terms import notations, scheme_names

TURTLE = ["ontology.ttl", "schemes.ttl", "shapes.ttl"]


@pytest.mark.parametrize("name", TURTLE)
def test_turtle_parses_in_rdflib_and_pyoxigraph_alike(name):
    text = read_text(name)
    graph = Graph().parse(data=text, format="turtle")
    store = ox.Store()
    store.load(text.encode(), format=ox.RdfFormat.TURTLE)
    assert len(store) == len(graph) > 0


def test_every_term_has_labels_and_comments_in_german_and_english():
    g = ontology()
    missing = []
    for name in EA.__annotations__:
        term = EA[name]
        for prop in (RDFS.label, RDFS.comment):
            langs = {o.language for o in g.objects(term, prop) if isinstance(o, Literal)}
            missing += [f"{name} {prop.fragment}@{lang}" for lang in ("de", "en")
                        if lang not in langs]
    assert missing == []


def test_ontology_declares_every_ea_term_it_uses_and_no_more():
    declared = {s for s in ontology().subjects(RDFS.label, None)
                if isinstance(s, URIRef) and str(s).startswith(str(EA._NS))}
    assert declared == {EA[name] for name in EA.__annotations__}


def test_ontology_is_versioned():
    g = ontology()
    onto = URIRef("https://w3id.org/engagement-atlas/ns")
    assert (onto, RDF.type, OWL.Ontology) in g
    assert g.value(onto, OWL.versionInfo) is not None
    assert g.value(onto, OWL.versionIRI) is not None


def test_every_predicate_the_mapping_writes_is_declared_or_established():
    declared = set(ontology().subjects())
    for spec in ENTITIES.values():
        for f in iter_fields(spec.fields):
            if str(f.predicate).startswith(str(EA._NS)):
                assert f.predicate in declared, f.key


def test_every_concept_is_complete():
    g = schemes()
    problems = []
    for scheme in scheme_names():
        for concept in g.subjects(SKOS.inScheme, scheme_uri(scheme)):
            for prop in (SKOS.prefLabel, SKOS.definition):
                langs = [o.language for o in g.objects(concept, prop)]
                if sorted(set(langs) & {"de", "en"}) != ["de", "en"]:
                    problems.append(f"{concept} {prop.fragment}")
            if len(list(g.objects(concept, SKOS.notation))) != 1:
                problems.append(f"{concept} notation")
            if (concept, RDF.type, SKOS.Concept) not in g:
                problems.append(f"{concept} type")
    assert problems == []


def test_the_schemes_the_fields_need_exist():
    needed = {f.scheme for spec in ENTITIES.values() for f in iter_fields(spec.fields)
              if f.kind == "concept"}
    assert needed <= set(scheme_names())


@pytest.mark.parametrize("scheme", sorted(SCHEME_CLASSES))
def test_python_terms_match_the_turtle(scheme):
    assert set(SCHEME_CLASSES[scheme].__annotations__) == notations(scheme)


def test_section_9_1_actor_types_are_all_there():
    assert {"buergerstiftung", "freiwilligenagentur", "house_of_resources", "innovation_lab",
            "kommunales_integrationszentrum", "mehrgenerationenhaus",
            "soziokulturelles_zentrum", "quartiersbuero", "wohlfahrtsverband"} <= notations(
        "actor-type")
    assert notations("cooperation-level") == {"normative", "professional", "economic"}
    assert notations("engagement-mode") == {"digital", "analog", "blended"}


def test_owl_rl_closure_is_consistent():
    g = Graph()
    g += ontology()
    g += schemes()
    sample = {"id": "a", "name": {"de": "A"}, "actorTypes": ["verein"], "legalForm": "ev",
              "memberOf": ["http://node.test/actors/b"]}
    to_graph("actor", sample, "http://node.test", graph=g)
    to_graph("cooperation", {"id": "c", "partners": ["http://node.test/actors/a",
                                                     "http://node.test/actors/b"],
                             "levels": ["professional"]}, "http://node.test", graph=g)
    owlrl.DeductiveClosure(owlrl.OWLRL_Semantics).expand(g)
    assert list(g.subjects(RDF.type, OWL.Nothing)) == []
    assert not [p for p in set(g.predicates()) if "error" in str(p).lower()]
    # symmetry of the shortcut is inferred
    assert (URIRef("http://node.test/actors/b"), EA.cooperatesWith,
            URIRef("http://node.test/actors/a")) in g


def test_bundled_context_is_the_built_one_and_derived_files_are_fresh():
    assert context() == build_context()
    assert stale_files() == [], "run: python -m vocab build"


def test_context_is_valid_json_with_versioned_name():
    assert data_path("context-v1.jsonld").name.endswith("-v1.jsonld")
    assert json.loads(read_text("context-v1.jsonld"))["@context"]["@version"] == 1.1


def test_shapes_cover_every_entity_kind():
    from vocab.namespaces import SH

    targets = set(shapes().objects(None, SH.targetClass))
    assert targets == {spec.rdf_type for spec in ENTITIES.values()}
