"""The fixed SKOS concepts of the Atlas, one DefinedNamespace per scheme (see data/schemes.ttl).

Code names a concept as ``ActorType.verein``; a misspelt notation fails at import time.
"""

from __future__ import annotations

from rdflib import Namespace, URIRef
from rdflib.namespace import DefinedNamespace

from .namespaces import NS_BASE

__all__ = [
    "SCHEME_CLASSES",
    "ActorStatus",
    "ActorType",
    "CooperationLevel",
    "EngagementMode",
    "FieldOfAction",
    "LegalForm",
    "OfferType",
    "SupportTopic",
    "TargetGroup",
]


class ActorType(DefinedNamespace):
    """Scheme ``actor-type``: kinds of actors."""

    _NS = Namespace(NS_BASE + "/actor-type/")
    _fail = True

    buergerstiftung: URIRef
    freiwilligenagentur: URIRef
    house_of_resources: URIRef
    innovation_lab: URIRef
    kommunales_integrationszentrum: URIRef
    mehrgenerationenhaus: URIRef
    soziokulturelles_zentrum: URIRef
    quartiersbuero: URIRef
    wohlfahrtsverband: URIRef
    umbrella_association: URIRef
    verein: URIRef
    informal_initiative: URIRef
    digital_project: URIRef
    social_enterprise: URIRef
    engaged_company: URIRef
    municipal_office: URIRef
    public_authority: URIRef
    education_provider: URIRef
    job_centre: URIRef
    network: URIRef
    foundation: URIRef
    migrant_organisation: URIRef
    research_institute: URIRef


class LegalForm(DefinedNamespace):
    """Scheme ``legal-form``: legal forms."""

    _NS = Namespace(NS_BASE + "/legal-form/")
    _fail = True

    ev: URIRef
    ggmbh: URIRef
    gmbh: URIRef
    ug: URIRef
    gug: URIRef
    gag: URIRef
    ag: URIRef
    eg: URIRef
    stiftung: URIRef
    public_body: URIRef
    informal: URIRef
    foreign: URIRef
    other: URIRef


class EngagementMode(DefinedNamespace):
    """Scheme ``engagement-mode``: digital, analogue or blended."""

    _NS = Namespace(NS_BASE + "/engagement-mode/")
    _fail = True

    digital: URIRef
    analog: URIRef
    blended: URIRef


class FieldOfAction(DefinedNamespace):
    """Scheme ``field-of-action``: thematic fields."""

    _NS = Namespace(NS_BASE + "/field-of-action/")
    _fail = True

    integration: URIRef
    education: URIRef
    language: URIRef
    employment: URIRef
    housing: URIRef
    health: URIRef
    counselling: URIRef
    culture: URIRef
    children_youth: URIRef
    seniors: URIRef
    family: URIRef
    neighbourhood: URIRef
    volunteering: URIRef
    civil_protection: URIRef
    environment: URIRef
    digitalisation: URIRef
    social_innovation: URIRef
    participation: URIRef
    anti_discrimination: URIRef
    sport: URIRef
    poverty: URIRef
    refugee_aid: URIRef


class TargetGroup(DefinedNamespace):
    """Scheme ``target-group``: audiences."""

    _NS = Namespace(NS_BASE + "/target-group/")
    _fail = True

    refugees: URIRef
    migrants: URIRef
    children: URIRef
    young_people: URIRef
    families: URIRef
    seniors: URIRef
    women: URIRef
    people_with_disabilities: URIRef
    volunteers: URIRef
    civil_society_organisations: URIRef
    municipalities: URIRef
    companies: URIRef
    students: URIRef
    jobseekers: URIRef
    startups: URIRef
    general_public: URIRef


class OfferType(DefinedNamespace):
    """Scheme ``offer-type``: kinds of offers."""

    _NS = Namespace(NS_BASE + "/offer-type/")
    _fail = True

    counselling: URIRef
    course: URIRef
    donation_matching: URIRef
    volunteering_opportunity: URIRef
    space: URIRef
    information: URIRef
    mentoring: URIRef
    funding: URIRef
    networking: URIRef
    app: URIRef
    translation: URIRef
    legal_advice: URIRef


class CooperationLevel(DefinedNamespace):
    """Scheme ``cooperation-level``: the three levels of cooperation."""

    _NS = Namespace(NS_BASE + "/cooperation-level/")
    _fail = True

    normative: URIRef
    professional: URIRef
    economic: URIRef


class ActorStatus(DefinedNamespace):
    """Scheme ``actor-status``: whether an actor or project is still active."""

    _NS = Namespace(NS_BASE + "/actor-status/")
    _fail = True

    active: URIRef
    dormant: URIRef
    ceased: URIRef


class SupportTopic(DefinedNamespace):
    """Scheme ``support-topic``: topics of digital support."""

    _NS = Namespace(NS_BASE + "/support-topic/")
    _fail = True

    data_protection_analysis: URIRef
    financing_donations: URIRef
    founding_scaling: URIRef
    petitions_campaigns: URIRef
    networking_exchange: URIRef
    impact_transparency: URIRef
    figures_studies: URIRef


SCHEME_CLASSES: dict[str, type[DefinedNamespace]] = {
    "actor-type": ActorType,
    "legal-form": LegalForm,
    "engagement-mode": EngagementMode,
    "field-of-action": FieldOfAction,
    "target-group": TargetGroup,
    "offer-type": OfferType,
    "cooperation-level": CooperationLevel,
    "actor-status": ActorStatus,
    "support-topic": SupportTopic,
}
