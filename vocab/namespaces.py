"""Namespaces of the Atlas vocabulary and of the established vocabularies it reuses.

`EA` is the one fixed namespace of our own terms; concepts of the SKOS schemes
live under `NS_BASE` + scheme name + "/" + notation (see `concept_uri`).
"""

from __future__ import annotations

from rdflib import Namespace, URIRef
from rdflib.namespace import (
    DCAT,
    DCTERMS,
    FOAF,
    ORG,
    OWL,
    PROV,
    RDF,
    RDFS,
    SKOS,
    XSD,
    DefinedNamespace,
)

__all__ = [
    "AS",
    "DCAT",
    "DCTERMS",
    "EA",
    "FOAF",
    "LDES",
    "NS_BASE",
    "ORG",
    "OWL",
    "PROV",
    "RDF",
    "RDFS",
    "SCHEMA",
    "SH",
    "SKOS",
    "TREE",
    "VOCAB_VERSION",
    "XSD",
    "concept_uri",
    "scheme_uri",
]

NS_BASE = "https://w3id.org/engagement-atlas/ns"
VOCAB_VERSION = "1.0.0"

SCHEMA = Namespace("https://schema.org/")
SH = Namespace("http://www.w3.org/ns/shacl#")
AS = Namespace("https://www.w3.org/ns/activitystreams#")
LDES = Namespace("https://w3id.org/ldes#")
TREE = Namespace("https://w3id.org/tree#")


class EA(DefinedNamespace):
    """Terms of the Atlas ontology (vocab/data/ontology.ttl declares each one)."""

    _NS = Namespace(NS_BASE + "#")
    _fail = True

    # classes
    Actor: URIRef
    Offer: URIRef
    Event: URIRef
    Project: URIRef
    FundingProgramme: URIRef
    Cooperation: URIRef
    ContactPoint: URIRef

    # actor properties
    actorType: URIRef
    legalForm: URIRef
    engagementMode: URIRef
    fieldOfAction: URIRef
    targetGroup: URIRef
    supportTopic: URIRef
    status: URIRef
    lastConfirmed: URIRef
    registerCourt: URIRef
    registerNumber: URIRef
    participatesIn: URIRef
    operatedBy: URIRef
    cooperatesWith: URIRef
    # offers
    offerType: URIRef
    # funding programmes
    applicationStart: URIRef
    applicationEnd: URIRef
    applicationPeriod: URIRef
    eligibility: URIRef
    # cooperations
    partner: URIRef
    cooperationLevel: URIRef
    since: URIRef
    until: URIRef
    # contact points
    consentRecorded: URIRef


def scheme_uri(scheme: str) -> URIRef:
    """IRI of a SKOS concept scheme, e.g. ``scheme_uri("actor-type")``."""
    return URIRef(f"{NS_BASE}/{scheme}")


def concept_uri(scheme: str, notation: str) -> URIRef:
    """IRI of one concept: the scheme IRI, a slash, and the concept's notation."""
    return URIRef(f"{NS_BASE}/{scheme}/{notation}")
