"""Fast writers for a list of triples: N-Triples/N-Quads lines, Turtle, JSON-LD.

Feed pages are written many times and read by machines, so they are assembled
as text directly instead of going through rdflib's serializers (measured in
bench/feed_pages.py: several times faster for a 250-member page). The output
keeps the order of the triples given, so equal input gives equal bytes in
every worker (stable ETags). Only the default graph is written: the N-Quads
of a triple list are its N-Triples lines (RDF 1.1 N-Quads §2: the graph
label is optional).

The term writers (`nt_term`, `turtle_term` with `Names`) are also the ones the
streaming whole-dataset dumps use (`exports.dump`). Every writer is checked
against rdflib's parsers in tests/exports/test_triples.py (isomorphic graphs).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

import orjson
from rdflib import BNode, Literal, URIRef
from rdflib.namespace import RDF, XSD

__all__ = ["FORMAT_NAMES", "Names", "Triple", "nt_term", "to_jsonld", "to_ntriples", "to_turtle",
           "turtle_term", "write"]

Triple = tuple[URIRef | BNode, URIRef, URIRef | BNode | Literal]

# Registry names (exports.registry) of the formats `write` produces.
FORMAT_NAMES = ("turtle", "ntriples", "nquads", "jsonld")

# RDF 1.1 N-Triples §2.4 / Turtle §6.4: characters an IRIREF must not hold literally.
_IRI_UNSAFE = re.compile(r'[\x00-\x20<>"{}|^`\\]')
# STRING_LITERAL_QUOTE excludes '"', '\' and line breaks; they are written as ECHAR and
# every other character as itself: canonical N-Triples (RDF 1.1 N-Triples §4), which is
# also what rdflib writes, so whole-dataset dumps keep the lines of exports.ntriples.
# (Other control characters are valid as themselves, and vocab.schemas refuses them.)
_STRING_ESCAPES = str.maketrans({'"': '\\"', "\\": "\\\\", "\n": "\\n", "\r": "\\r"})
_STRING_UNSAFE = re.compile(r'["\\\n\r]')
# A conservative subset of Turtle's PN_LOCAL (§6.4): names outside it are written in full.
_LOCAL_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")


# --------------------------------------------------------------------------- terms


def _iri(value: str) -> str:
    if _IRI_UNSAFE.search(value):
        value = _IRI_UNSAFE.sub(lambda m: f"\\u{ord(m.group()):04X}", value)
    return f"<{value}>"


def _string(value: str) -> str:
    if _STRING_UNSAFE.search(value):
        value = value.translate(_STRING_ESCAPES)
    return f'"{value}"'


def nt_term(term: URIRef | BNode | Literal) -> str:
    """One term in N-Triples syntax (also valid Turtle)."""
    if isinstance(term, URIRef):
        return _iri(term)
    if isinstance(term, BNode):
        return f"_:{term}"
    if term.language:
        return f"{_string(str(term))}@{term.language}"
    if term.datatype is not None and term.datatype != XSD.string:
        return f"{_string(str(term))}^^{_iri(term.datatype)}"
    return _string(str(term))


# --------------------------------------------------------------------------- N-Triples


def to_ntriples(triples: Iterable[Triple]) -> bytes:
    """One line per triple, in the order given (also valid N-Quads, default graph)."""
    iris: dict[str, str] = {}  # subjects and predicates repeat: encode each once

    def iri(term: URIRef | BNode) -> str:
        text = iris.get(term)
        if text is None:
            text = iris[term] = nt_term(term)
        return text

    return "".join(f"{iri(s)} {iri(p)} {nt_term(o)} .\n"
                   for s, p, o in triples).encode("utf-8")


# --------------------------------------------------------------------------- Turtle


class Names:
    """Compact names for IRIs under the given prefixes (longest namespace wins).

    Remembers every IRI it was asked about: make one per document (or per record
    of a stream), not one for a whole dump.
    """

    def __init__(self, prefixes: Mapping[str, str]):
        self.prefixes = sorted(prefixes.items(), key=lambda item: -len(item[1]))
        self._cache: dict[str, str | None] = {}

    def compact(self, iri: str) -> str | None:
        """``prefix:local``, or None when no prefix gives a safe local name."""
        if iri not in self._cache:
            found = None
            for prefix, namespace in self.prefixes:
                if iri.startswith(namespace):
                    local = iri[len(namespace):]
                    if _LOCAL_NAME.fullmatch(local):
                        found = f"{prefix}:{local}"
                    break
            self._cache[iri] = found
        return self._cache[iri]


def turtle_term(term: Any, names: Names) -> str:
    """One term in Turtle syntax, IRIs (also datatypes) compacted with ``names``."""
    if isinstance(term, URIRef):
        return names.compact(term) or _iri(term)
    if isinstance(term, Literal) and not term.language and term.datatype not in (None,
                                                                                  XSD.string):
        datatype = names.compact(term.datatype) or _iri(term.datatype)
        return f"{_string(str(term))}^^{datatype}"
    return nt_term(term)


def _grouped(triples: Iterable[Triple]) -> dict[Any, dict[Any, list[Any]]]:
    subjects: dict[Any, dict[Any, list[Any]]] = {}
    for s, p, o in triples:
        objects = subjects.setdefault(s, {}).setdefault(p, [])
        if o not in objects:
            objects.append(o)
    return subjects


def to_turtle(triples: Iterable[Triple], prefixes: Mapping[str, str]) -> bytes:
    """Turtle grouped by subject (first appearance order), with the given prefixes."""
    names = Names(prefixes)
    out = [f"@prefix {prefix}: {_iri(namespace)} .\n" for prefix, namespace in prefixes.items()]
    for subject, predicates in _grouped(triples).items():
        parts = []
        for predicate, objects in predicates.items():
            verb = "a" if predicate == RDF.type else turtle_term(predicate, names)
            parts.append(f"{verb} " + ", ".join(turtle_term(o, names) for o in objects))
        out.append(f"\n{turtle_term(subject, names)} " + " ;\n    ".join(parts) + " .\n")
    return "".join(out).encode("utf-8")


# --------------------------------------------------------------------------- JSON-LD


def _node_id(term: URIRef | BNode) -> str:
    return f"_:{term}" if isinstance(term, BNode) else str(term)


def _jsonld_value(term: Any, names: Names) -> dict[str, str]:
    if isinstance(term, URIRef | BNode):
        return {"@id": _node_id(term)}
    value = {"@value": str(term)}
    if term.language:
        value["@language"] = term.language
    elif term.datatype is not None and term.datatype != XSD.string:
        value["@type"] = names.compact(term.datatype) or str(term.datatype)
    return value


def to_jsonld(triples: Iterable[Triple], prefixes: Mapping[str, str]) -> bytes:
    """Flattened JSON-LD 1.1 (#flattened-document-form): one node object per subject.

    The context holds only prefix definitions and is inlined, so no reader has to
    fetch anything (PITFALLS: parsers fetch remote contexts). Values stay explicit
    value/node objects: a plain JSON-LD processor reads them without a term table.
    """
    names = Names(prefixes)
    nodes: dict[Any, dict[str, Any]] = {}
    for subject, predicates in _grouped(triples).items():
        node: dict[str, Any] = {"@id": _node_id(subject)}
        for predicate, objects in predicates.items():
            if predicate == RDF.type and all(isinstance(o, URIRef) for o in objects):
                node["@type"] = [names.compact(o) or str(o) for o in objects]
            else:
                key = names.compact(predicate) or str(predicate)
                node[key] = [_jsonld_value(o, names) for o in objects]
        nodes[subject] = node
    return orjson.dumps({"@context": dict(prefixes), "@graph": list(nodes.values())})


# --------------------------------------------------------------------------- dispatch


def write(triples: list[Triple], format_name: str, prefixes: Mapping[str, str]) -> bytes:
    """The triples in one of `FORMAT_NAMES` (registry names); ValueError otherwise."""
    if format_name in ("ntriples", "nquads"):
        return to_ntriples(triples)
    if format_name == "turtle":
        return to_turtle(triples, prefixes)
    if format_name == "jsonld":
        return to_jsonld(triples, prefixes)
    raise ValueError(f"no triple writer for format {format_name!r}")
