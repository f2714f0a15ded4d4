"""SHACL shapes for every entity, derived from the entity table, and validation.

`build_shapes()` writes one sh:NodeShape per entity kind and nested resource.
Required fields are sh:Violation, recommended ones sh:Warning; every message
starts with the record key it concerns, so people see which field to fix.
The bundled ``data/shapes.ttl`` is this graph written out (``python -m vocab
build``); nodes check records with it before publishing and harvesters check
what they fetch.
"""

from __future__ import annotations

from dataclasses import dataclass

from rdflib import BNode, Graph, Literal, Namespace, URIRef
from rdflib.collection import Collection

from .fields import ENTITIES, WEEKDAYS, Field, Node
from .namespaces import EA, NS_BASE, RDF, SCHEMA, SH, XSD, concept_uri
from .resources import shapes as bundled_shapes
from .terms import notations

__all__ = ["SHAPES", "ValidationResult", "build_shapes", "validate"]

SHAPES = Namespace(NS_BASE + "/shapes#")

# Deliberately simple: what real addresses look like, not RFC 5322's full grammar.
EMAIL_PATTERN = r"^[^@\s<>\"]+@[^@\s<>\"]+\.[^@\s<>\"]+$"
HTTP_PATTERN = r"^https?://[^\s<>\"{}|\\^`]+$"
# BCP 47 language tag (RFC 5646 §2.1), the common subset: language, script, region, variants.
BCP47_PATTERN = r"^[a-zA-Z]{2,3}(-[a-zA-Z]{4})?(-([a-zA-Z]{2}|[0-9]{3}))?(-[a-zA-Z0-9]{5,8})*$"
WIKIDATA_PATTERN = r"^http://www\.wikidata\.org/entity/Q[0-9]+$"

_DATATYPE = {
    "string": XSD.string,
    "email": XSD.string,
    "language": XSD.string,
    "date": XSD.date,
    "datetime": XSD.dateTime,
    "time": XSD.time,
    "decimal": XSD.decimal,
    "boolean": XSD.boolean,
}


def build_shapes() -> Graph:
    g = Graph()
    g.bind("sh", SH)
    g.bind("ea", EA._NS)
    g.bind("schema", SCHEMA)
    g.bind("eash", SHAPES)
    for spec in ENTITIES.values():
        shape = SHAPES[_shape_name(spec.rdf_type)]
        g.add((shape, RDF.type, SH.NodeShape))
        g.add((shape, SH.targetClass, spec.rdf_type))
        _add_properties(g, shape, spec.fields)
    return g


def _shape_name(rdf_type: URIRef) -> str:
    return str(rdf_type).rsplit("#", 1)[-1].rsplit("/", 1)[-1] + "Shape"


def _node_shape(g: Graph, node: Node) -> URIRef:
    shape = SHAPES[f"{node.fragment.capitalize()}Shape"]
    if (shape, RDF.type, SH.NodeShape) not in g:
        g.add((shape, RDF.type, SH.NodeShape))
        _add_properties(g, shape, node.fields)
        if node.fragment == "contact":
            _add_consent_rule(g, shape)
    return shape


def _property(g: Graph, shape: URIRef, f: Field, suffix: str = "") -> URIRef:
    prop = SHAPES[f"{str(shape).rsplit('#', 1)[1][:-5]}-{f.key}{suffix}"]
    g.add((shape, SH.property, prop))
    g.add((prop, SH.path, f.predicate))
    g.add((prop, SH.name, Literal(f.key)))
    return prop


def _add_properties(g: Graph, shape: URIRef, fields: tuple[Field, ...]) -> None:
    for f in fields:
        prop = _property(g, shape, f)
        g.add((prop, SH.severity, SH.Violation))
        messages = []
        low, high = f.cardinality or ((1 if f.required else 0), (None if f.many else 1))
        if low:
            g.add((prop, SH.minCount, Literal(low)))
            messages.append("required" if low == 1 else f"needs {low} values")
        if f.kind == "text":
            g.add((prop, SH.datatype, RDF.langString))
            g.add((prop, SH.uniqueLang, Literal(True)))
            g.add((prop, SH.maxLength, Literal(f.max_length)))
            messages.append(f"language-tagged text, one per language, up to {f.max_length} "
                            "characters")
        elif high is not None:
            g.add((prop, SH.maxCount, Literal(high)))
            messages.append("at most one value" if high == 1 else f"at most {high} values")
        messages.append(_constrain(g, prop, f))
        g.add((prop, SH.message, Literal(f"{f.key}: " + "; ".join(m for m in messages if m))))
        if f.recommended:
            warn = _property(g, shape, f, "-recommended")
            g.add((warn, SH.minCount, Literal(1)))
            g.add((warn, SH.severity, SH.Warning))
            g.add((warn, SH.message, Literal(f"{f.key}: recommended but missing")))
        if f.not_after:
            other = next(x for x in fields if x.key == f.not_after)
            g.add((prop, SH.lessThanOrEquals, other.predicate))


def _constrain(g: Graph, prop: URIRef, f: Field) -> str:
    """Value constraints of one field; returns the phrase for its message."""
    if f.kind in _DATATYPE:
        g.add((prop, SH.datatype, _DATATYPE[f.kind]))
    if f.kind in {"string", "email", "language"}:
        g.add((prop, SH.maxLength, Literal(f.max_length)))
    if f.kind == "email":
        g.add((prop, SH.pattern, Literal(EMAIL_PATTERN)))
        return "an e-mail address"
    if f.kind == "language":
        g.add((prop, SH.pattern, Literal(BCP47_PATTERN)))
        return "a BCP 47 language tag such as de or ar-SY"
    if f.kind in {"iri", "ref"}:
        g.add((prop, SH.nodeKind, SH.IRI))
        g.add((prop, SH.pattern, Literal(HTTP_PATTERN)))
        return "an http or https IRI"
    if f.kind == "concept":
        concepts = sorted(concept_uri(f.scheme, n) for n in notations(f.scheme))
        _in(g, prop, concepts)
        return f"a concept of the scheme {f.scheme}"
    if f.kind == "weekday":
        _in(g, prop, [SCHEMA[d] for d in WEEKDAYS])
        return "a schema.org day of the week"
    if f.kind == "wikidata":
        g.add((prop, SH.pattern, Literal(WIKIDATA_PATTERN)))
        return "a Wikidata entity IRI"
    if f.kind == "decimal":
        if f.minimum is not None:
            g.add((prop, SH.minInclusive, Literal(f.minimum)))
        if f.maximum is not None:
            g.add((prop, SH.maxInclusive, Literal(f.maximum)))
        if f.minimum is not None and f.maximum is not None:
            return f"a number from {f.minimum:g} to {f.maximum:g}"
        return "a number" + (f" of at least {f.minimum:g}" if f.minimum is not None else "")
    if f.kind == "node":
        g.add((prop, SH.nodeKind, SH.IRI))
        g.add((prop, SH.node, _node_shape(g, f.node)))
        return f"a {f.node.fragment} resource"
    if f.kind in {"date", "datetime", "time"}:
        return {"date": "an xsd:date", "datetime": "an xsd:dateTime", "time": "an xsd:time"}[
            f.kind
        ] + (f" not after {f.not_after}" if f.not_after else "")
    return ""


def _in(g: Graph, prop: URIRef, values: list) -> None:
    head = BNode()
    Collection(g, head, values)
    g.add((prop, SH["in"], head))


def _add_consent_rule(g: Graph, shape: URIRef) -> None:
    """GDPR: a contact point names a person only with recorded consent."""
    no_name, consent = BNode(), BNode()
    g.add((no_name, SH.path, SCHEMA.name))
    g.add((no_name, SH.maxCount, Literal(0)))
    g.add((consent, SH.path, EA.consentRecorded))
    g.add((consent, SH.hasValue, Literal(True)))
    alternatives = BNode()
    wrap_a, wrap_b = BNode(), BNode()
    g.add((wrap_a, SH.property, no_name))
    g.add((wrap_b, SH.property, consent))
    Collection(g, alternatives, [wrap_a, wrap_b])
    g.add((shape, SH["or"], alternatives))
    g.add((shape, SH.message, Literal(
        "personName: a contact point names a person only when consentRecorded is true")))


# --------------------------------------------------------------------------- validation


@dataclass(frozen=True)
class ValidationResult:
    focus: str
    field: str | None
    severity: str  # "Violation" | "Warning" | "Info"
    message: str


def validate(data: Graph, shapes: Graph | None = None) -> list[ValidationResult]:
    """Check ``data`` against the shapes; returns every result (empty if it conforms)."""
    from pyshacl import validate as shacl_validate

    _conforms, report, _text = shacl_validate(
        data, shacl_graph=shapes if shapes is not None else bundled_shapes(),
        inference="none", advanced=False, allow_warnings=True,
    )
    results = []
    for r in report.subjects(RDF.type, SH.ValidationResult):
        source = report.value(r, SH.sourceShape)
        name = report.value(source, SH.name) if source is not None else None
        severity = str(report.value(r, SH.resultSeverity)).rsplit("#", 1)[-1]
        message = str(report.value(r, SH.resultMessage) or "")
        results.append(ValidationResult(
            focus=str(report.value(r, SH.focusNode)),
            field=str(name) if name is not None else message.split(":", 1)[0] or None,
            severity=severity,
            message=message,
        ))
    return sorted(results, key=lambda r: (r.focus, r.field or "", r.message))
