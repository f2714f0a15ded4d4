"""A fast SHACL check of the common case, derived from the entity table like the shapes.

Why: pyshacl costs 2.4-5 ms per entity, most of a first harvest's time (bench/RESULTS.md).
`vocab.shapes.build_shapes` writes the shapes from the entity table (vocab/fields.py);
this module reads the same table and evaluates the same constraints — sh:minCount,
sh:maxCount, sh:datatype (ill-typed literals fail, as pyshacl reads them through rdflib),
sh:uniqueLang, sh:maxLength, sh:pattern, sh:nodeKind, sh:in, sh:minInclusive /
sh:maxInclusive, sh:lessThanOrEquals, sh:node with the contact point's consent rule —
directly on pyoxigraph triples.

It only ever DECIDES that an entity conforms: `conforming` returns the entity's results
(its warnings: recommended fields missing, which are exact) when every violation-level
constraint certainly holds, and None otherwise — a possible violation, or input whose
reading by pyshacl is subtle (blank nodes, rdfs:subClassOf, statements about other
subjects). `validation.check_entities` hands those to pyshacl, which stays the reference: the
verdicts are pyshacl's by construction, and tests/harvesters/test_fastcheck.py compares
both over valid and corrupted entities.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, time
from decimal import Decimal
from functools import lru_cache

import pyoxigraph as ox
from rdflib import Literal, URIRef

from vocab.fields import ENTITIES, WEEKDAYS, Field
from vocab.namespaces import EA, RDF, RDFS, SCHEMA, XSD, concept_uri
from vocab.shapes import (
    BCP47_PATTERN,
    EMAIL_PATTERN,
    HTTP_PATTERN,
    WIKIDATA_PATTERN,
    ValidationResult,
)
from vocab.terms import notations

from .parse import quiet_ill_typed

__all__ = ["conforming", "simple"]

_XSD_STRING, _LANG_STRING = str(XSD.string), str(RDF.langString)
_RDF_TYPE = ox.NamedNode(str(RDF.type))
_SUBCLASS = ox.NamedNode(str(RDFS.subClassOf))
_TRUE = ox.Literal("true", datatype=ox.NamedNode(str(XSD.boolean)))
# vocab/shapes.py _DATATYPE, and the Python type pyshacl expects of rdflib's value
_DATATYPE = {"string": _XSD_STRING, "email": _XSD_STRING, "language": _XSD_STRING,
             "date": str(XSD.date), "datetime": str(XSD.dateTime), "time": str(XSD.time),
             "decimal": str(XSD.decimal), "boolean": str(XSD.boolean)}
_VALUE_TYPE = {str(XSD.date): date, str(XSD.dateTime): datetime, str(XSD.time): time,
               str(XSD.decimal): Decimal, str(XSD.boolean): bool}
_PATTERN = {"email": EMAIL_PATTERN, "language": BCP47_PATTERN, "iri": HTTP_PATTERN,
            "ref": HTTP_PATTERN, "wikidata": WIKIDATA_PATTERN}


class _Unsure(Exception):
    """A constraint may not hold: pyshacl decides."""


@dataclass(frozen=True)
class _Property:
    """One field's property shape (vocab/shapes.py `_add_properties` + `_constrain`)."""

    key: str
    predicate: ox.NamedNode
    low: int
    high: int | None
    datatype: str | None
    lang: bool  # rdf:langString + sh:uniqueLang
    max_length: int | None
    pattern: re.Pattern | None
    iri: bool  # sh:nodeKind sh:IRI
    allowed: frozenset[str] | None  # sh:in
    minimum: float | None
    maximum: float | None
    node: tuple[_Property, ...] | None
    consent: bool  # the node is a contact point (sh:or personName / consentRecorded)
    not_after: ox.NamedNode | None  # sh:lessThanOrEquals
    recommended: bool


def _compile(fields: Sequence[Field]) -> tuple[_Property, ...]:
    out = []
    for f in fields:
        low, high = f.cardinality or ((1 if f.required else 0), (None if f.many else 1))
        kind = f.kind
        allowed = None
        if kind == "concept":
            allowed = frozenset(str(concept_uri(f.scheme, n)) for n in notations(f.scheme))
        elif kind == "weekday":
            allowed = frozenset(str(SCHEMA[d]) for d in WEEKDAYS)
        other = next((x for x in fields if x.key == f.not_after), None) if f.not_after else None
        out.append(_Property(
            key=f.key, predicate=ox.NamedNode(str(f.predicate)), low=low,
            high=None if kind == "text" else high,
            datatype=_LANG_STRING if kind == "text" else _DATATYPE.get(kind),
            lang=kind == "text",
            max_length=f.max_length if kind in {"text", "string", "email", "language"} else None,
            pattern=re.compile(_PATTERN[kind]) if kind in _PATTERN else None,
            iri=kind in {"iri", "ref", "node"}, allowed=allowed,
            minimum=f.minimum if kind == "decimal" else None,
            maximum=f.maximum if kind == "decimal" else None,
            node=_compile(f.node.fields) if kind == "node" else None,
            consent=kind == "node" and f.node.fragment == "contact",
            not_after=ox.NamedNode(str(other.predicate)) if other else None,
            recommended=f.recommended))
    return tuple(out)


_SHAPES = {ox.NamedNode(str(spec.rdf_type)): _compile(spec.fields) for spec in ENTITIES.values()}
_PERSON_NAME, _CONSENT = ox.NamedNode(str(SCHEMA.name)), ox.NamedNode(str(EA.consentRecorded))


def simple(iri: str, triples: Sequence[ox.Triple]) -> bool:
    """Whether the entity's statements are all about ``iri`` or its ``#fragments``, with no
    blank nodes and no rdfs:subClassOf: the input `conforming` reads exactly as pyshacl."""
    if "#" in iri:
        return False
    own = iri + "#"
    for t in triples:
        s = t.subject
        if (type(s) is not ox.NamedNode or type(t.object) is ox.BlankNode
                or t.predicate == _SUBCLASS or not ((v := s.value) == iri or v.startswith(own))):
            return False
    return True


def conforming(triples: Sequence[ox.Triple]) -> list[ValidationResult] | None:
    """The results pyshacl gives a `simple` entity when they are only warnings; None when
    a violation is possible (then pyshacl must decide)."""
    by: dict[ox.NamedNode, dict[ox.NamedNode, list]] = {}
    for t in triples:
        values = by.setdefault(t.subject, {}).setdefault(t.predicate, [])
        if (o := t.object) not in values:
            values.append(o)
    found: list[ValidationResult] = []
    try:
        for subject, statements in by.items():
            for rdf_type in statements.get(_RDF_TYPE, ()):
                shape = _SHAPES.get(rdf_type)
                if shape is not None:
                    _focus(subject, shape, by, found)
    except _Unsure:
        return None
    return sorted(found, key=lambda r: (r.focus, r.field or "", r.message))


def _focus(subject: ox.NamedNode, shape: tuple[_Property, ...], by: dict,
           found: list[ValidationResult] | None) -> None:
    statements = by.get(subject, {})
    for prop in shape:
        values = statements.get(prop.predicate, ())
        if prop.recommended and not values:
            if found is None:  # a nested shape with a result does not conform
                raise _Unsure
            found.append(ValidationResult(subject.value, prop.key, "Warning",
                                          f"{prop.key}: recommended but missing"))
        _check(prop, values, statements, by)


def _check(prop: _Property, values: Sequence, statements: dict, by: dict) -> None:
    count = len(values)
    if count < prop.low or (prop.high is not None and count > prop.high):
        raise _Unsure
    if prop.low > 1 and any(type(v) is not ox.NamedNode for v in values):
        raise _Unsure  # rdflib might merge two literals: let pyshacl count
    langs: set[str] = set()
    for v in values:
        if prop.datatype is not None and not _typed(v, prop.datatype):
            raise _Unsure
        if prop.lang:
            lang = v.language.lower()
            if lang in langs:
                raise _Unsure
            langs.add(lang)
        if prop.max_length is not None and len(v.value) > prop.max_length:
            raise _Unsure
        if prop.pattern is not None and not prop.pattern.search(v.value):
            raise _Unsure
        if prop.iri and type(v) is not ox.NamedNode:
            raise _Unsure
        if prop.allowed is not None and (type(v) is not ox.NamedNode
                                         or v.value not in prop.allowed):
            raise _Unsure
        if prop.minimum is not None or prop.maximum is not None:
            number = Decimal(v.value)  # well-typed xsd:decimal (datatype checked above)
            if (prop.minimum is not None and number < prop.minimum) or (
                    prop.maximum is not None and number > prop.maximum):
                raise _Unsure
        if prop.node is not None:
            _focus(v, prop.node, by, None)
            if prop.consent:
                nested = by.get(v, {})
                if nested.get(_PERSON_NAME) and _TRUE not in nested.get(_CONSENT, ()):
                    raise _Unsure
        if prop.not_after is not None:
            for other in statements.get(prop.not_after, ()):
                if not _not_after(v, other):
                    raise _Unsure


def _typed(v, datatype: str) -> bool:
    """sh:datatype as pyshacl decides it on the rdflib form (harvesters.parse.to_rdflib)."""
    if type(v) is not ox.Literal:
        return False
    if datatype == _LANG_STRING:
        return bool(v.language)
    if v.language or v.datatype.value != datatype:
        return False
    return datatype == _XSD_STRING or _python_value(v.value, datatype) is not None


@lru_cache(maxsize=65536)
def _python_value(lexical: str, datatype: str):
    """rdflib's value of a typed literal when it is well typed, else None."""
    with quiet_ill_typed():
        literal = Literal(lexical, datatype=URIRef(datatype), normalize=False)
    if getattr(literal, "ill_typed", None) is True:
        return None
    value = literal.value
    return value if isinstance(value, _VALUE_TYPE[datatype]) else None


def _not_after(a, b) -> bool:
    """``a <= b`` certainly holds for pyshacl (sh:lessThanOrEquals on dates/times)."""
    if type(a) is not ox.Literal or type(b) is not ox.Literal or a.language or b.language:
        return False
    kind = a.datatype.value
    if kind != b.datatype.value or kind not in (str(XSD.date), str(XSD.dateTime)):
        return False
    x, y = _python_value(a.value, kind), _python_value(b.value, kind)
    if x is None or y is None or type(x) is not type(y):
        return False
    if isinstance(x, datetime) and (x.tzinfo is None) != (y.tzinfo is None):
        return False
    return x <= y
