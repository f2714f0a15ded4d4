"""The entity table: every entity kind, its RDF types and its fields.

This table is the single description of what a record holds. The mapping
(record <-> RDF), the JSON-LD context, the SHACL shapes, the API schemas and
the spreadsheet layout are all derived from it, so a field is added in one
place. Record keys are the JSON-LD terms of the context.

Field kinds and their record / RDF forms:

=========  ==============================  =====================================
kind       record value                    RDF object
=========  ==============================  =====================================
text       ``{"de": "...", "en": "..."}``  language-tagged literals
string     ``"..."``                       plain literal (xsd:string)
email      ``"info@example.org"``          plain literal
language   ``"de"`` (BCP 47)               plain literal
iri        ``"https://..."`` (http/https)  IRI
ref        absolute IRI of an entity       IRI
concept    notation, e.g. ``"verein"``     IRI of the concept in its scheme
date       ``"2015-06-01"``                xsd:date
datetime   ``"2026-01-31T12:00:00Z"``      xsd:dateTime
time       ``"09:30"``                     xsd:time ``09:30:00``
decimal    ``51.05`` (float)               xsd:decimal, fixed-point lexical form
boolean    ``true``                        xsd:boolean
weekday    ``"Monday"``                    schema:Monday ...
wikidata   ``"Q42"``                       the item's entity IRI (schema:sameAs)
node       dict of sub-fields              an IRI ``{entity}#{fragment}``
=========  ==============================  =====================================
"""

from __future__ import annotations

from dataclasses import dataclass, field

from rdflib import URIRef

from .namespaces import DCTERMS, EA, SCHEMA

__all__ = [
    "ENTITIES",
    "ENTITY_BY_COLLECTION",
    "Entity",
    "Field",
    "Node",
    "WEEKDAYS",
    "entity",
]

WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")

# Lengths a sane record never exceeds; the API rejects longer values.
SHORT = 300
LONG = 10_000


@dataclass(frozen=True)
class Node:
    """A nested resource with its own fragment IRI (address, geo, contact point...)."""

    fragment: str
    types: tuple[URIRef, ...]
    fields: tuple[Field, ...]


@dataclass(frozen=True)
class Field:
    key: str
    predicate: URIRef
    kind: str
    many: bool = False
    required: bool = False
    scheme: str | None = None
    node: Node | None = None
    max_length: int = SHORT
    minimum: float | None = None
    maximum: float | None = None
    # Recommended fields: a missing value is a SHACL warning, not a violation.
    recommended: bool = False
    # Set by the store, never by clients.
    read_only: bool = False
    # (min, max) count of values where "required"/"many" is not precise enough.
    cardinality: tuple[int, int] | None = None
    # Key of a sibling field this one must not exceed (an end date after its start).
    not_after: str | None = None
    doc: str = ""


@dataclass(frozen=True)
class Entity:
    kind: str
    collection: str
    types: tuple[URIRef, ...]
    fields: tuple[Field, ...] = field(default=())

    @property
    def rdf_type(self) -> URIRef:
        """The Atlas class that identifies this kind (the first of its types)."""
        return self.types[0]

    def field(self, key: str) -> Field:
        for f in self.fields:
            if f.key == key:
                return f
        raise KeyError(key)


def _text(key, predicate, **kw) -> Field:
    kw.setdefault("max_length", LONG if key in {"description", "eligibility"} else SHORT)
    return Field(key, predicate, "text", **kw)


ADDRESS = Node(
    "address",
    (SCHEMA.PostalAddress,),
    (
        Field("streetAddress", SCHEMA.streetAddress, "string"),
        Field("postalCode", SCHEMA.postalCode, "string", max_length=20),
        Field("addressLocality", SCHEMA.addressLocality, "string"),
        Field("addressRegion", SCHEMA.addressRegion, "string"),
        Field("addressCountry", SCHEMA.addressCountry, "string", max_length=2,
              doc="ISO 3166-1 alpha-2 country code"),
    ),
)

GEO = Node(
    "geo",
    (SCHEMA.GeoCoordinates,),
    (
        Field("latitude", SCHEMA.latitude, "decimal", required=True, minimum=-90, maximum=90),
        Field("longitude", SCHEMA.longitude, "decimal", required=True,
              minimum=-180, maximum=180),
    ),
)

OPENING_HOURS = Node(
    "hours",
    (SCHEMA.OpeningHoursSpecification,),
    (
        Field("dayOfWeek", SCHEMA.dayOfWeek, "weekday", many=True, required=True),
        Field("opens", SCHEMA.opens, "time", required=True),
        Field("closes", SCHEMA.closes, "time", required=True),
    ),
)

CONTACT_POINT = Node(
    "contact",
    (EA.ContactPoint, SCHEMA.ContactPoint),
    (
        _text("contactType", SCHEMA.contactType, required=True,
              doc="the role or function, e.g. counselling desk"),
        Field("email", SCHEMA.email, "email"),
        Field("telephone", SCHEMA.telephone, "string", max_length=40),
        Field("url", SCHEMA.url, "iri", max_length=2000),
        Field("availableLanguage", SCHEMA.availableLanguage, "language", many=True),
        Field("personName", SCHEMA.name, "string",
              doc="a named person; allowed only when consentRecorded is true"),
        Field("consentRecorded", EA.consentRecorded, "boolean"),
    ),
)

# Fields every entity carries.
_LIFECYCLE = (
    Field("created", DCTERMS.created, "datetime", read_only=True),
    Field("modified", DCTERMS.modified, "datetime", read_only=True),
    Field("lastConfirmed", EA.lastConfirmed, "date", recommended=True,
          doc="the day a person last verified this entry"),
    Field("license", DCTERMS.license, "iri", max_length=2000),
)

_DESCRIBED = (
    _text("name", SCHEMA.name, required=True),
    _text("description", SCHEMA.description, recommended=True),
    Field("url", SCHEMA.url, "iri", max_length=2000),
)

_AUDIENCE = (
    Field("fieldsOfAction", EA.fieldOfAction, "concept", many=True, scheme="field-of-action"),
    Field("targetGroups", EA.targetGroup, "concept", many=True, scheme="target-group"),
)

_LOCATED = (
    Field("address", SCHEMA.address, "node", node=ADDRESS),
    Field("geo", SCHEMA.geo, "node", node=GEO),
)

ACTOR = Entity(
    "actor",
    "actors",
    (EA.Actor, SCHEMA.Organization),
    (
        *_DESCRIBED,
        Field("alternateName", SCHEMA.alternateName, "string", many=True),
        Field("actorTypes", EA.actorType, "concept", many=True, required=True,
              scheme="actor-type"),
        Field("legalForm", EA.legalForm, "concept", scheme="legal-form"),
        Field("engagementMode", EA.engagementMode, "concept", scheme="engagement-mode",
              recommended=True),
        *_AUDIENCE,
        Field("supportTopics", EA.supportTopic, "concept", many=True, scheme="support-topic"),
        Field("status", EA.status, "concept", scheme="actor-status", recommended=True),
        Field("email", SCHEMA.email, "email"),
        Field("telephone", SCHEMA.telephone, "string", max_length=40),
        *_LOCATED,
        Field("openingHours", SCHEMA.openingHoursSpecification, "node", many=True,
              node=OPENING_HOURS),
        Field("contactPoints", SCHEMA.contactPoint, "node", many=True, node=CONTACT_POINT),
        Field("languages", SCHEMA.knowsLanguage, "language", many=True),
        Field("areaServed", SCHEMA.areaServed, "string", many=True),
        Field("parentOrganization", SCHEMA.parentOrganization, "ref"),
        Field("memberOf", SCHEMA.memberOf, "ref", many=True),
        Field("participatesIn", EA.participatesIn, "ref", many=True),
        Field("fundedBy", SCHEMA.funder, "ref", many=True),
        Field("foundingDate", SCHEMA.foundingDate, "date", not_after="dissolutionDate"),
        Field("dissolutionDate", SCHEMA.dissolutionDate, "date"),
        Field("registerCourt", EA.registerCourt, "string"),
        Field("registerNumber", EA.registerNumber, "string", max_length=40),
        Field("wikidata", SCHEMA.sameAs, "wikidata",
              doc="Wikidata item id, e.g. Q42; published as its entity IRI"),
        *_LIFECYCLE,
    ),
)

OFFER = Entity(
    "offer",
    "offers",
    (EA.Offer, SCHEMA.Service),
    (
        *_DESCRIBED,
        Field("offerTypes", EA.offerType, "concept", many=True, required=True,
              scheme="offer-type"),
        Field("provider", SCHEMA.provider, "ref", required=True),
        Field("engagementMode", EA.engagementMode, "concept", scheme="engagement-mode"),
        *_AUDIENCE,
        Field("availableLanguage", SCHEMA.availableLanguage, "language", many=True),
        Field("areaServed", SCHEMA.areaServed, "string", many=True),
        *_LOCATED,
        *_LIFECYCLE,
    ),
)

EVENT = Entity(
    "event",
    "events",
    (EA.Event, SCHEMA.Event),
    (
        *_DESCRIBED,
        Field("startDate", SCHEMA.startDate, "datetime", required=True, not_after="endDate"),
        Field("endDate", SCHEMA.endDate, "datetime"),
        Field("organizer", SCHEMA.organizer, "ref", many=True, recommended=True),
        Field("engagementMode", EA.engagementMode, "concept", scheme="engagement-mode"),
        *_AUDIENCE,
        Field("inLanguage", SCHEMA.inLanguage, "language", many=True),
        *_LOCATED,
        *_LIFECYCLE,
    ),
)

PROJECT = Entity(
    "project",
    "projects",
    (EA.Project, SCHEMA.Project),
    (
        *_DESCRIBED,
        Field("operatedBy", EA.operatedBy, "ref", many=True, recommended=True),
        Field("engagementMode", EA.engagementMode, "concept", scheme="engagement-mode",
              recommended=True),
        *_AUDIENCE,
        Field("status", EA.status, "concept", scheme="actor-status", recommended=True),
        Field("availableLanguage", SCHEMA.availableLanguage, "language", many=True),
        Field("fundedBy", SCHEMA.funder, "ref", many=True),
        Field("foundingDate", SCHEMA.foundingDate, "date", not_after="dissolutionDate"),
        Field("dissolutionDate", SCHEMA.dissolutionDate, "date"),
        Field("areaServed", SCHEMA.areaServed, "string", many=True),
        *_LIFECYCLE,
    ),
)

FUNDING_PROGRAMME = Entity(
    "funding-programme",
    "funding-programmes",
    (EA.FundingProgramme, SCHEMA.MonetaryGrant),
    (
        *_DESCRIBED,
        Field("funder", SCHEMA.funder, "ref", many=True, recommended=True),
        Field("amount", SCHEMA.amount, "decimal", minimum=0, doc="total endowment"),
        Field("currency", SCHEMA.currency, "string", max_length=3, doc="ISO 4217 code"),
        Field("applicationStart", EA.applicationStart, "date", not_after="applicationEnd"),
        Field("applicationEnd", EA.applicationEnd, "date"),
        _text("applicationPeriod", EA.applicationPeriod,
              doc="recurring application window in words, e.g. every spring"),
        _text("eligibility", EA.eligibility),
        *_AUDIENCE,
        *_LIFECYCLE,
    ),
)

COOPERATION = Entity(
    "cooperation",
    "cooperations",
    (EA.Cooperation,),
    (
        Field("partners", EA.partner, "ref", many=True, required=True, cardinality=(2, 2),
              doc="exactly two actors"),
        Field("levels", EA.cooperationLevel, "concept", many=True, required=True,
              scheme="cooperation-level"),
        _text("description", SCHEMA.description),
        Field("since", EA.since, "date", not_after="until"),
        Field("until", EA.until, "date"),
        *_LIFECYCLE,
    ),
)

ENTITIES: dict[str, Entity] = {
    e.kind: e for e in (ACTOR, OFFER, EVENT, PROJECT, FUNDING_PROGRAMME, COOPERATION)
}
ENTITY_BY_COLLECTION: dict[str, Entity] = {e.collection: e for e in ENTITIES.values()}


def entity(kind: str) -> Entity:
    """The entity spec of a kind ("actor") or collection ("actors"); KeyError if unknown."""
    return ENTITIES.get(kind) or ENTITY_BY_COLLECTION[kind]
