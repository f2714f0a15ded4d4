"""Look-ups in the concept schemes: which notations exist, and their labels."""

from __future__ import annotations

from functools import cache

from rdflib import Literal

from .namespaces import SKOS, concept_uri, scheme_uri
from .resources import schemes

__all__ = ["concept_label", "notations", "scheme_names"]


@cache
def scheme_names() -> tuple[str, ...]:
    """Names of all concept schemes, e.g. ``("actor-cooperation", ...)``."""
    prefix = str(scheme_uri(""))
    return tuple(
        sorted(str(s)[len(prefix):] for s in schemes().subjects(None, SKOS.ConceptScheme))
    )


@cache
def notations(scheme: str) -> frozenset[str]:
    """The notations of one scheme (empty for an unknown scheme)."""
    g = schemes()
    return frozenset(
        str(n)
        for c in g.subjects(SKOS.inScheme, scheme_uri(scheme))
        for n in g.objects(c, SKOS.notation)
    )


@cache
def concept_label(scheme: str, notation: str, lang: str = "de") -> str:
    """The preferred label of a concept in ``lang`` (falling back to the notation)."""
    labels = {
        o.language: str(o)
        for o in schemes().objects(concept_uri(scheme, notation), SKOS.prefLabel)
        if isinstance(o, Literal)
    }
    return labels.get(lang) or labels.get("en") or notation
