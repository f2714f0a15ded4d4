"""THE mapping between plain records and RDF, in both directions.

A record is a dict keyed by the fields of `vocab.fields` plus ``"id"``, the
entity's opaque local id. Its subject IRI is ``{base}/{collection}/{id}``;
nested resources (address, geo, contact points, opening hours) get fragment
IRIs of that subject, so everything a node states sits inside its own URI
space and no blank nodes are needed.

`to_graph` and `to_jsonld` are the forward direction (the JSON-LD document is
the same statements, compacted with the Atlas context, built directly because
rdflib's compaction is slow); `from_graph` is the reverse. Lists come back in
a canonical order (`normalize` puts records into that order), so
``from_graph(to_graph(r)) == normalize(r)``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from decimal import Decimal
from typing import Any

from rdflib import Graph, Literal, URIRef
from rdflib.term import Node as RDFNode

from .fields import WEEKDAYS, Field, Node, entity
from .namespaces import EA, RDF, SCHEMA, XSD, concept_uri, scheme_uri

__all__ = [
    "CONTEXT_URL",
    "entity_id",
    "entity_uri",
    "from_graph",
    "normalize",
    "to_graph",
    "to_jsonld",
]

CONTEXT_URL = "https://w3id.org/engagement-atlas/ns/context-v1.jsonld"
WIKIDATA = "http://www.wikidata.org/entity/"
_SCHEMA_HTTP = "http://schema.org/"

Record = dict[str, Any]


def entity_uri(base: str, kind: str, entity_id: str) -> URIRef:
    """The IRI of an entity: ``{base}/{collection}/{id}``. It never changes."""
    return URIRef(f"{base.rstrip('/')}/{entity(kind).collection}/{entity_id}")


def entity_id(base: str, kind: str, uri: str) -> str | None:
    """The local id of ``uri`` if it is an entity of this kind under ``base``, else None."""
    prefix = f"{base.rstrip('/')}/{entity(kind).collection}/"
    if not uri.startswith(prefix):
        return None
    rest = uri[len(prefix):]
    return rest if rest and "/" not in rest and "#" not in rest else None


# --------------------------------------------------------------------------- values


def decimal_lexical(value: float | int | str) -> str:
    """Canonical xsd:decimal lexical form (XSD 1.0 §3.2.3.2): no exponent, a point
    with at least one digit on each side — also what Turtle's shorthand writes."""
    text = format(Decimal(str(value)), "f")
    if "." in text:
        text = text.rstrip("0")
    else:
        text += "."
    if text.endswith("."):
        text += "0"
    return "0.0" if text == "-0.0" else text


def _to_object(f: Field, value: Any) -> RDFNode:
    kind = f.kind
    if kind in {"string", "email", "language"}:
        return Literal(value)
    if kind in {"iri", "ref"}:
        return URIRef(value)
    if kind == "concept":
        return concept_uri(f.scheme, value)
    # Typed literals keep our canonical lexical form (rdflib would rewrite "Z" as
    # "+00:00"), so the JSON-LD document and the graph state the very same literal.
    if kind == "date":
        return Literal(value, datatype=XSD.date, normalize=False)
    if kind == "datetime":
        return Literal(value, datatype=XSD.dateTime, normalize=False)
    if kind == "time":
        return Literal(f"{value}:00", datatype=XSD.time, normalize=False)
    if kind == "decimal":
        return Literal(decimal_lexical(value), datatype=XSD.decimal, normalize=False)
    if kind == "boolean":
        return Literal(bool(value))
    if kind == "weekday":
        return SCHEMA[value]
    if kind == "wikidata":
        return URIRef(WIKIDATA + value)
    raise ValueError(f"no RDF form for field kind {kind!r}")


def _from_object(f: Field, obj: RDFNode) -> Any:
    """The record value of one RDF object, or None when it does not fit the field."""
    kind = f.kind
    if kind in {"string", "email"}:
        return str(obj) if isinstance(obj, Literal) and obj.language is None else None
    if kind == "language":
        return str(obj).lower() if isinstance(obj, Literal) and obj.language is None else None
    if kind in {"iri", "ref"}:
        return str(obj) if isinstance(obj, URIRef) else None
    if kind == "concept":
        prefix = f"{scheme_uri(f.scheme)}/"
        text = str(obj)
        if isinstance(obj, URIRef) and text.startswith(prefix) and "/" not in text[len(prefix):]:
            return text[len(prefix):]
        return None
    if not isinstance(obj, (Literal, URIRef)):
        return None
    if kind == "date":
        return str(obj) if isinstance(obj, Literal) else None
    if kind == "datetime":
        return _utc_z(str(obj)) if isinstance(obj, Literal) else None
    if kind == "time":
        return str(obj)[:5] if isinstance(obj, Literal) else None
    if kind == "decimal":
        try:
            return float(str(obj)) if isinstance(obj, Literal) else None
        except ValueError:
            return None
    if kind == "boolean":
        return str(obj) in {"true", "1"} if isinstance(obj, Literal) else None
    if kind == "weekday":
        name = str(obj).removeprefix(str(SCHEMA)).removeprefix(_SCHEMA_HTTP)
        return name if name in WEEKDAYS else None
    if kind == "wikidata":
        text = str(obj)
        return text[len(WIKIDATA):] if re.fullmatch(re.escape(WIKIDATA) + r"Q\d+", text) else None
    return None


def _utc_z(lexical: str) -> str:
    """xsd:dateTime in our canonical form: UTC written as "Z"."""
    return lexical[:-6] + "Z" if lexical.endswith(("+00:00", "-00:00")) else lexical


def _sort_key(f: Field):
    if f.kind == "weekday":
        return WEEKDAYS.index
    return None


# --------------------------------------------------------------------------- forward


def to_graph(kind: str, record: Record, base: str, graph: Graph | None = None) -> Graph:
    """The RDF statements of one record (added to ``graph`` if given)."""
    spec = entity(kind)
    g = graph if graph is not None else Graph()
    subject = entity_uri(base, kind, record["id"])
    for rdf_type in spec.types:
        g.add((subject, RDF.type, rdf_type))
    _add_fields(g, subject, spec.fields, record)
    if spec.kind == "cooperation":
        _add_cooperation_shortcut(g, record.get("partners", ()), base)
    return g


def _add_fields(g: Graph, subject: URIRef, fields: Iterable[Field], record: Record) -> None:
    for f in fields:
        value = record.get(f.key)
        if value is None or value == [] or value == {}:
            continue
        if f.kind == "text":
            for lang, text in value.items():
                g.add((subject, f.predicate, Literal(text, lang=lang)))
        elif f.kind == "node":
            items = value if f.many else [value]
            for index, item in enumerate(items, start=1):
                node = _node_uri(subject, f.node, index if f.many else None)
                g.add((subject, f.predicate, node))
                for rdf_type in f.node.types:
                    g.add((node, RDF.type, rdf_type))
                _add_fields(g, node, f.node.fields, item)
        else:
            for item in value if f.many else [value]:
                g.add((subject, f.predicate, _to_object(f, item)))


def _node_uri(subject: URIRef, node: Node, index: int | None) -> URIRef:
    return URIRef(f"{subject}#{node.fragment}" + (f"-{index}" if index else ""))


def _cooperation_shortcuts(partners: list[str], base: str) -> Iterator[tuple[str, str]]:
    """The ea:cooperatesWith pairs a cooperation implies, for our own subjects only.

    A node may only state things about IRIs under its own base (authority), so
    the shortcut is written from each local partner towards the other one.
    """
    prefix = base.rstrip("/") + "/"
    for partner in partners:
        if partner.startswith(prefix):
            for other in partners:
                if other != partner:
                    yield partner, other


def _add_cooperation_shortcut(g: Graph, partners: list[str], base: str) -> None:
    for partner, other in _cooperation_shortcuts(partners, base):
        g.add((URIRef(partner), EA.cooperatesWith, URIRef(other)))


# --------------------------------------------------------------------------- reverse


def from_graph(graph: Graph, kind: str, base: str) -> list[Record]:
    """All records of ``kind`` under ``base`` in ``graph``, each in canonical form.

    Subjects outside ``base`` are ignored: a source describes only its own entities.
    """
    spec = entity(kind)
    records = []
    for subject in sorted(set(graph.subjects(RDF.type, spec.rdf_type)), key=str):
        local_id = entity_id(base, kind, str(subject))
        if local_id is None:
            continue
        record = {"id": local_id}
        record.update(_read_fields(graph, subject, spec.fields))
        records.append(record)
    return records


def _read_fields(g: Graph, subject: RDFNode, fields: Iterable[Field]) -> Record:
    record: Record = {}
    for f in fields:
        objects = list(g.objects(subject, f.predicate))
        if not objects:
            continue
        if f.kind == "text":
            texts = {
                (o.language or "und").lower(): str(o)
                for o in sorted(objects) if isinstance(o, Literal)
            }
            if texts:
                record[f.key] = dict(sorted(texts.items()))
            continue
        if f.kind == "node":
            nodes = sorted((o for o in objects if isinstance(o, URIRef)), key=_node_order)
            items = [_read_fields(g, o, f.node.fields) for o in nodes]
            if items:
                record[f.key] = items if f.many else items[0]
            continue
        values = [v for v in (_from_object(f, o) for o in objects) if v is not None]
        if not values:
            continue
        if f.many:
            record[f.key] = sorted(set(values), key=_sort_key(f))
        else:
            record[f.key] = min(values, key=_sort_key(f)) if len(values) > 1 else values[0]
    return record


def _node_order(node: URIRef) -> tuple[int, str]:
    match = re.search(r"-(\d+)$", str(node))
    return (int(match.group(1)) if match else 0, str(node))


# --------------------------------------------------------------------------- canonical form


def normalize(kind: str, record: Record) -> Record:
    """The record in canonical form: empty values dropped, lists sorted and unique,
    language tags lower-cased (BCP 47 tags are case-insensitive; RDF and JSON-LD
    processors hand them back in lower case)."""
    return _normalize_fields(entity(kind).fields, record, keep_id=True)


def _normalize_fields(fields: Iterable[Field], record: Record, keep_id: bool = False) -> Record:
    out: Record = {"id": record["id"]} if keep_id and "id" in record else {}
    for f in fields:
        value = record.get(f.key)
        if value is None or value == [] or value == {} or value == "":
            continue
        if f.kind == "text":
            out[f.key] = dict(sorted((lang.lower(), text) for lang, text in value.items()))
        elif f.kind == "language":
            out[f.key] = sorted({v.lower() for v in value}) if f.many else value.lower()
        elif f.kind == "node":
            items = [_normalize_fields(f.node.fields, v) for v in (value if f.many else [value])]
            items = [i for i in items if i]
            if items:
                out[f.key] = items if f.many else items[0]
        elif f.many:
            out[f.key] = sorted(set(value), key=_sort_key(f))
        elif f.kind == "decimal":
            out[f.key] = float(value)
        else:
            out[f.key] = value
    return out


# --------------------------------------------------------------------------- JSON-LD


def to_jsonld(kind: str, record: Record, base: str, context: Any = CONTEXT_URL) -> dict:
    """The record as a JSON-LD document compacted with the Atlas context.

    It states exactly what `to_graph` states (tests check this with a JSON-LD
    processor); a cooperation's shortcut statements about its partners travel
    in an ``@included`` block (JSON-LD 1.1 §4.7), so they stay in the same graph.
    """
    spec = entity(kind)
    subject = entity_uri(base, kind, record["id"])
    doc: dict[str, Any] = {"@context": context, "id": str(subject)}
    doc["type"] = [_type_term(t) for t in spec.types]
    doc.update(_jsonld_fields(str(subject), spec.fields, record))
    if spec.kind == "cooperation":
        shortcuts: dict[str, list[str]] = {}
        for partner, other in _cooperation_shortcuts(record.get("partners", []), base):
            shortcuts.setdefault(partner, []).append(other)
        if shortcuts:
            doc["@included"] = [{"id": p, "cooperatesWith": sorted(o)}
                                for p, o in sorted(shortcuts.items())]
    return doc


def _jsonld_fields(subject: str, fields: Iterable[Field], record: Record) -> dict:
    out: dict[str, Any] = {}
    for f in fields:
        value = record.get(f.key)
        if value is None or value == [] or value == {}:
            continue
        if f.kind == "text":
            out[f.key] = dict(value)
        elif f.kind == "node":
            items = []
            for index, item in enumerate(value if f.many else [value], start=1):
                node = {"id": str(_node_uri(URIRef(subject), f.node, index if f.many else None))}
                node["type"] = [_type_term(t) for t in f.node.types]
                node.update(_jsonld_fields(subject, f.node.fields, item))
                items.append(node)
            out[f.key] = items if f.many else items[0]
        else:
            values = [_jsonld_value(f, v) for v in (value if f.many else [value])]
            out[f.key] = values if f.many else values[0]
    return out


def _jsonld_value(f: Field, value: Any) -> Any:
    if f.kind == "decimal":
        return decimal_lexical(value)
    if f.kind == "time":
        return f"{value}:00"
    if f.kind == "boolean":
        return bool(value)
    return value


def _type_term(rdf_type: URIRef) -> str:
    """Compact form of a class IRI: our classes by name, schema.org ones prefixed."""
    text = str(rdf_type)
    if text.startswith(str(SCHEMA)):
        return "schema:" + text[len(str(SCHEMA)):]
    return text.rsplit("#", 1)[-1]


def iter_fields(fields: Iterable[Field]) -> Iterator[Field]:
    """Every field, nested node fields included (each once per node)."""
    for f in fields:
        yield f
        if f.node is not None:
            yield from iter_fields(f.node.fields)
