"""The Atlas JSON-LD context: built from the entity table, bundled, never fetched.

`build_context()` derives the context from `vocab.fields`; the bundled file
``data/context-v1.jsonld`` is its written form (``python -m vocab build``
refreshes it and a test fails when it is stale). `document_loader` and
`inline_contexts` let PyLD and rdflib read our JSON-LD without the network and
refuse any other remote context (PITFALLS: both fetch contexts by default).
"""

from __future__ import annotations

import json
from functools import cache
from typing import Any

from .errors import RemoteContextRefused
from .fields import ENTITIES, Field
from .mapping import CONTEXT_URL, WIKIDATA, iter_fields
from .namespaces import EA, NS_BASE, SCHEMA, XSD

__all__ = [
    "CONTEXT_FILE",
    "CONTEXT_URL",
    "build_context",
    "context",
    "document_loader",
    "inline_contexts",
]

CONTEXT_FILE = "context-v1.jsonld"

_DATATYPES = {
    "date": "xsd:date",
    "datetime": "xsd:dateTime",
    "time": "xsd:time",
    "decimal": "xsd:decimal",
}


def _term(f: Field) -> dict[str, Any]:
    definition: dict[str, Any] = {"@id": _compact(str(f.predicate))}
    if f.kind == "text":
        definition["@container"] = "@language"
        return definition
    if f.kind in {"iri", "ref", "node"}:
        definition["@type"] = "@id"
    elif f.kind == "concept":
        # JSON-LD 1.1 §4.1.8 scoped contexts: plain notations expand within the scheme.
        definition["@type"] = "@vocab"
        definition["@context"] = {"@vocab": f"{NS_BASE}/{f.scheme}/"}
    elif f.kind == "weekday":
        definition["@type"] = "@vocab"
        definition["@context"] = {"@vocab": str(SCHEMA)}
    elif f.kind == "wikidata":
        definition["@type"] = "@vocab"
        definition["@context"] = {"@vocab": WIKIDATA}
    elif f.kind in _DATATYPES:
        definition["@type"] = _DATATYPES[f.kind]
    if f.many:
        definition["@container"] = "@set"
    return definition


def _compact(iri: str) -> str:
    for prefix, ns in (("ea", str(EA._NS)), ("schema", str(SCHEMA)), ("xsd", str(XSD))):
        if iri.startswith(ns):
            return f"{prefix}:{iri[len(ns):]}"
    if iri.startswith("http://purl.org/dc/terms/"):
        return "dct:" + iri[len("http://purl.org/dc/terms/"):]
    return iri


def build_context() -> dict[str, Any]:
    """The context derived from the entity table; a key has one meaning everywhere."""
    terms: dict[str, Any] = {
        "@version": 1.1,
        "@protected": True,
        "id": "@id",
        "type": "@type",
        "ea": str(EA._NS),
        "schema": str(SCHEMA),
        "dct": "http://purl.org/dc/terms/",
        "xsd": str(XSD),
        "skos": "http://www.w3.org/2004/02/skos/core#",
    }
    for spec in ENTITIES.values():
        for rdf_type in spec.types:
            if str(rdf_type).startswith(str(EA._NS)):
                terms[str(rdf_type).rsplit("#", 1)[1]] = _compact(str(rdf_type))
        for f in iter_fields(spec.fields):
            definition = _term(f)
            if f.key in terms and terms[f.key] != definition:
                raise ValueError(f"field {f.key!r} has two meanings in the entity table")
            terms[f.key] = definition
    terms["ContactPoint"] = "ea:ContactPoint"
    # Not a record field: the shortcut a cooperation states about its partners.
    terms["cooperatesWith"] = {"@id": "ea:cooperatesWith", "@type": "@id", "@container": "@set"}
    return {"@context": terms}


@cache
def context() -> dict[str, Any]:
    """The bundled context document (as served by nodes)."""
    from .resources import read_text

    return json.loads(read_text(CONTEXT_FILE))


def document_loader(url: str, options: dict | None = None) -> dict[str, Any]:
    """A PyLD document loader that serves the bundled context and nothing else."""
    if url != CONTEXT_URL:
        raise RemoteContextRefused(url)
    return {"contentType": "application/ld+json", "contextUrl": None,
            "documentUrl": url, "document": context()}


def inline_contexts(document: Any) -> Any:
    """Replace references to our context by the bundled copy; refuse any other.

    rdflib's JSON-LD parser would fetch a string ``@context`` (even ``file:``),
    so untrusted documents pass through here first.
    """
    if isinstance(document, list):
        return [inline_contexts(item) for item in document]
    if not isinstance(document, dict):
        return document
    out = {}
    for key, value in document.items():
        if key == "@context":
            out[key] = _inline_one(value)
        else:
            out[key] = inline_contexts(value)
    return out


def _inline_one(value: Any) -> Any:
    if isinstance(value, str):
        if value != CONTEXT_URL:
            raise RemoteContextRefused(value)
        return context()["@context"]
    if isinstance(value, list):
        return [_inline_one(v) for v in value]
    if isinstance(value, dict):
        # a context object may itself carry nested (scoped) contexts or @import
        if "@import" in value:
            raise RemoteContextRefused(str(value["@import"]))
        return {k: (_inline_one(v) if k == "@context" else inline_contexts(v))
                for k, v in value.items()}
    return value
