"""SPARQL results as bytes: the four results formats and four RDF formats of /sparql.

SELECT rows are written here (SPARQL 1.1 Query Results JSON, XML, CSV and TSV)
rather than by pyoxigraph's serializer, because a result must stop at a row and
byte limit and then say so: JSON and XML results carry a ``link`` to the
explanation in their head (the formats' place for metadata links), Turtle,
N-Triples and RDF/XML a comment. CSV and TSV have no place for it; the response
header says it for every format. Runs inside the query process.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import islice
from typing import Any
from xml.sax.saxutils import escape, quoteattr

import orjson
import pyoxigraph as ox

from vocab.namespaces import DCTERMS, EA, ORG, RDF, RDFS, SCHEMA, SKOS, XSD

__all__ = ["GRAPH_FORMATS", "RESULTS_FORMATS", "Limits", "media_type", "serialize"]

# name -> media types; the first is the Content-Type we answer with.
RESULTS_FORMATS: dict[str, tuple[str, ...]] = {  # SELECT and ASK
    "json": ("application/sparql-results+json", "application/json"),
    "xml": ("application/sparql-results+xml", "application/xml", "text/xml"),
    "csv": ("text/csv",),
    "tsv": ("text/tab-separated-values",),
}
GRAPH_FORMATS: dict[str, tuple[str, ...]] = {  # CONSTRUCT and DESCRIBE
    "turtle": ("text/turtle", "application/x-turtle"),
    "ntriples": ("application/n-triples",),
    "rdfxml": ("application/rdf+xml",),
    "jsonld": ("application/ld+json", "application/json"),
}
_OX_RESULTS = {"json": ox.QueryResultsFormat.JSON, "xml": ox.QueryResultsFormat.XML,
               "csv": ox.QueryResultsFormat.CSV, "tsv": ox.QueryResultsFormat.TSV}
_OX_GRAPH = {"turtle": ox.RdfFormat.TURTLE, "ntriples": ox.RdfFormat.N_TRIPLES,
             "rdfxml": ox.RdfFormat.RDF_XML, "jsonld": ox.RdfFormat.JSON_LD}
_PREFIXES = {"ea": str(EA._NS), "schema": str(SCHEMA), "dct": str(DCTERMS), "org": str(ORG),
             "skos": str(SKOS), "rdf": str(RDF), "rdfs": str(RDFS), "xsd": str(XSD)}


@dataclass(frozen=True)
class Limits:
    max_rows: int
    max_bytes: int
    url: str  # where the limits are explained


def media_type(fmt: str) -> str:
    return (RESULTS_FORMATS | GRAPH_FORMATS)[fmt][0]


def serialize(form: str, results: Any, fmt: str, limits: Limits
              ) -> tuple[bytes, int, str | None]:
    """The body of a result in format ``fmt``, its rows (or triples) and why it was
    cut: None, "rows" or "bytes"."""
    if form == "ASK":
        return results.serialize(format=_OX_RESULTS[fmt]), 1, None
    if form == "SELECT":
        return _solutions(results, fmt, limits)
    return _triples(results, fmt, limits)


def _solutions(solutions: Any, fmt: str, limits: Limits) -> tuple[bytes, int, str | None]:
    names = [v.value for v in solutions.variables]
    write_row = _ROW_WRITERS[fmt]
    rows, size, truncated = [], 0, None
    for solution in islice(solutions, limits.max_rows + 1):
        if len(rows) == limits.max_rows:
            truncated = "rows"
            break
        row = write_row(names, list(solution))
        if size + len(row) > limits.max_bytes:
            truncated = "bytes"
            break
        rows.append(row)
        size += len(row)
    link = limits.url if truncated else None
    return _DOCUMENTS[fmt](names, rows, link), len(rows), truncated


def _json_term(term: Any) -> dict[str, Any]:
    """SPARQL 1.1 Query Results JSON §3.2.2 (and RDF-star triple terms)."""
    if isinstance(term, ox.NamedNode):
        return {"type": "uri", "value": term.value}
    if isinstance(term, ox.BlankNode):
        return {"type": "bnode", "value": term.value}
    if isinstance(term, ox.Triple):
        return {"type": "triple", "value": {"subject": _json_term(term.subject),
                                            "predicate": _json_term(term.predicate),
                                            "object": _json_term(term.object)}}
    out = {"type": "literal", "value": term.value}
    if term.language:
        out["xml:lang"] = term.language
    elif term.datatype.value != str(XSD.string):
        out["datatype"] = term.datatype.value
    return out


def _xml_term(term: Any) -> str:
    """SPARQL Query Results XML Format §2.3.1."""
    if isinstance(term, ox.NamedNode):
        return f"<uri>{escape(term.value)}</uri>"
    if isinstance(term, ox.BlankNode):
        return f"<bnode>{escape(term.value)}</bnode>"
    if isinstance(term, ox.Triple):
        return (f"<triple><subject>{_xml_term(term.subject)}</subject><predicate>"
                f"{_xml_term(term.predicate)}</predicate><object>{_xml_term(term.object)}"
                "</object></triple>")
    if term.language:
        return f"<literal xml:lang={quoteattr(term.language)}>{escape(term.value)}</literal>"
    if term.datatype.value != str(XSD.string):
        return (f"<literal datatype={quoteattr(term.datatype.value)}>{escape(term.value)}"
                "</literal>")
    return f"<literal>{escape(term.value)}</literal>"


def _csv_field(term: Any) -> str:
    """SPARQL 1.1 Query Results CSV §2: plain values, quoted as RFC 4180 requires."""
    if term is None:
        return ""
    text = f"_:{term.value}" if isinstance(term, ox.BlankNode) else (
        str(term) if isinstance(term, ox.Triple) else term.value)
    if any(c in text for c in '",\r\n'):
        return '"' + text.replace('"', '""') + '"'
    return text


def _tsv_field(term: Any) -> str:
    """SPARQL 1.1 Query Results TSV §3: terms in Turtle syntax; tabs escaped."""
    return "" if term is None else str(term).replace("\t", "\\t")


_ROW_WRITERS = {
    "json": lambda names, row: orjson.dumps(
        {n: _json_term(t) for n, t in zip(names, row, strict=True) if t is not None}),
    "xml": lambda names, row: ("<result>" + "".join(
        f"<binding name={quoteattr(n)}>{_xml_term(t)}</binding>"
        for n, t in zip(names, row, strict=True) if t is not None) + "</result>\n").encode("utf-8"),
    "csv": lambda names, row: (",".join(map(_csv_field, row)) + "\r\n").encode("utf-8"),
    "tsv": lambda names, row: ("\t".join(map(_tsv_field, row)) + "\n").encode("utf-8"),
}


def _json_document(names: list[str], rows: list[bytes], link: str | None) -> bytes:
    head = {"vars": names, **({"link": [link]} if link else {})}
    return (b'{"head":' + orjson.dumps(head) + b',"results":{"bindings":['
            + b",".join(rows) + b"]}}")


def _xml_document(names: list[str], rows: list[bytes], link: str | None) -> bytes:
    head = "".join(f"<variable name={quoteattr(n)}/>" for n in names)
    if link:
        head += f"<link href={quoteattr(link)}/>"
    return (('<?xml version="1.0" encoding="UTF-8"?>\n'
             '<sparql xmlns="http://www.w3.org/2005/sparql-results#">\n'
             f"<head>{head}</head>\n<results>\n").encode()
            + b"".join(rows) + b"</results>\n</sparql>\n")


_DOCUMENTS = {
    "json": _json_document,
    "xml": _xml_document,
    "csv": lambda names, rows, link: (",".join(names) + "\r\n").encode("utf-8") + b"".join(rows),
    "tsv": lambda names, rows, link: ("\t".join(f"?{n}" for n in names) + "\n").encode("utf-8")
    + b"".join(rows),
}


def _triples(triples: Any, fmt: str, limits: Limits) -> tuple[bytes, int, str | None]:
    kept, size, truncated = [], 0, None
    for triple in islice(triples, limits.max_rows + 1):
        if len(kept) == limits.max_rows:
            truncated = "rows"
            break
        size += len(str(triple)) + 3  # its N-Triples line: a fair measure in every format
        if size > limits.max_bytes:
            truncated = "bytes"
            break
        kept.append(triple)
    body = ox.serialize(kept, format=_OX_GRAPH[fmt], prefixes=_PREFIXES)
    if truncated and fmt in ("turtle", "ntriples"):
        body = f"# Truncated after {len(kept)} triples: {limits.url}\n".encode() + body
    elif truncated and fmt == "rdfxml":
        declaration, _, rest = body.partition(b"\n")
        body = (declaration + f"\n<!-- Truncated after {len(kept)} triples: "
                f"{limits.url} -->\n".encode() + rest)
    return body, len(kept), truncated
