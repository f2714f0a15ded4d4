"""The node's SPARQL 1.1 endpoint at ``/sparql``: read-only and bounded.

Queries arrive as the SPARQL 1.1 Protocol (§2.1) allows — GET ``?query=``, POST
form-encoded, POST ``application/sparql-query`` — with ``default-graph-uri`` /
``named-graph-uri`` choosing graphs of the store (never fetched). They are answered
from the SPARQL mirror of the SQL records (`service.sparql_store`, one named graph
per entity, their union as the default graph), each in a guarded process of its
own (`service.sparql_query`). Updates, SERVICE and LOAD are refused.

Without a query, ``/sparql`` answers with a SPARQL 1.1 Service Description (RDF)
or, for browsers, a page with a query form and examples.

The steps (`begin`, `make_job`, `run_limited`, `respond`, `describe`, `cors`) are shared
with the index's endpoint /index/sparql (service/index_sparql.py), whose query processes
open the index's published snapshot instead of this mirror.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from flask import Blueprint, Response, current_app, g, render_template, request
from pyoxigraph import NamedNode
from rdflib import BNode, Graph, Literal, Namespace, URIRef
from rdflib.namespace import DCTERMS, RDF, RDFS
from werkzeug.datastructures import CombinedMultiDict, MIMEAccept, MultiDict
from werkzeug.http import parse_accept_header

import exports

from . import db, sparql_store
from .errors import (
    AtlasError,
    BadRequest,
    Forbidden,
    NotAcceptable,
    PayloadTooLarge,
    UnsupportedMediaType,
)
from .sparql_query import QueryJob, QueryResult, TooManyQueries, run, warm_up
from .sparql_results import GRAPH_FORMATS, RESULTS_FORMATS

__all__ = ["EXAMPLES", "begin", "bp", "cors", "describe", "make_job", "respond", "run_limited",
           "service_description"]

bp = Blueprint("sparql", __name__)

SD = Namespace("http://www.w3.org/ns/sparql-service-description#")
FORMATS = Namespace("http://www.w3.org/ns/formats/")
ENTAILMENT = Namespace("http://www.w3.org/ns/entailment/")
# Formats of the service description (registry names) and rdflib's names for them.
_SD_FORMATS = {"turtle": "turtle", "ntriples": "nt", "rdfxml": "xml", "jsonld": "json-ld"}
_RESULT_FORMAT_IRIS = ("SPARQL_Results_JSON", "SPARQL_Results_XML", "SPARQL_Results_CSV",
                       "SPARQL_Results_TSV", "Turtle", "N-Triples", "RDF_XML", "JSON-LD")
# Short names of the ``format`` parameter that mean one format per query form.
_FORMAT_ALIASES = {"json": ("json", "jsonld"), "xml": ("xml", "rdfxml")}
_LABELS = {"json": "JSON", "xml": "XML", "csv": "CSV", "tsv": "TSV", "turtle": "Turtle",
           "ntriples": "N-Triples", "rdfxml": "RDF/XML", "jsonld": "JSON-LD"}
_DIRECT, _FORM = "application/sparql-query", "application/x-www-form-urlencoded"
_SLOTS = "atlas_sparql_slots"

_PREFIXES = """PREFIX ea: <https://w3id.org/engagement-atlas/ns#>
PREFIX schema: <https://schema.org/>
"""
EXAMPLES = {
    "actors-by-type": ("Akteur*innen nach Typ", _PREFIXES + """
SELECT ?type ?actor ?name WHERE {
  ?actor a ea:Actor ;
         ea:actorType ?type ;
         schema:name ?name .
  # Only one type, e.g. associations:
  # VALUES ?type { <https://w3id.org/engagement-atlas/ns/actor-type/verein> }
}
ORDER BY ?type ?name
"""),
    "cooperation-partners": ("Kooperationspartner*innen mit Ebenen", _PREFIXES + """
SELECT ?actor ?partner ?cooperation ?level ?since WHERE {
  # The shortcut for simple questions: who cooperates with whom.
  ?actor ea:cooperatesWith ?partner .
  # The qualified cooperation: its levels (normative, professional, economic), since when.
  OPTIONAL {
    ?cooperation a ea:Cooperation ;
                 ea:partner ?actor , ?partner ;
                 ea:cooperationLevel ?level .
    OPTIONAL { ?cooperation ea:since ?since }
  }
}
ORDER BY ?actor ?partner ?level
"""),
    "funding-open-now": ("Förderprogramme mit offener Bewerbungsfrist", _PREFIXES + """\
PREFIX xsd: <http://www.w3.org/2001/XMLSchema#>

SELECT ?programme ?name ?start ?end WHERE {
  ?programme a ea:FundingProgramme ;
             schema:name ?name .
  OPTIONAL { ?programme ea:applicationStart ?start }
  OPTIONAL { ?programme ea:applicationEnd ?end }
  BIND (xsd:date(NOW()) AS ?today)
  FILTER (BOUND(?start) || BOUND(?end))
  FILTER (!BOUND(?start) || ?start <= ?today)
  FILTER (!BOUND(?end) || ?end >= ?today)
}
ORDER BY ?end ?name
"""),
}


class URITooLong(AtlasError):
    status, title = 414, "URI Too Long"


@bp.record_once
def _setup(state) -> None:
    # Per process: gunicorn workers each have their own app (or their own copy of it).
    slots = max(1, int(state.app.config["SPARQL_MAX_CONCURRENT"]))
    state.app.extensions[_SLOTS] = threading.BoundedSemaphore(slots)


@bp.after_request
def _cors(response: Response) -> Response:
    return cors(response)


@bp.route("/sparql", methods=["GET", "POST"])
def endpoint():
    """Answer a query (SPARQL 1.1 Protocol §2.1), or describe the service."""
    query, params = begin()
    if query is None:
        return describe(params)
    base = current_app.config["BASE_URL"]
    folder = sparql_store.mirror_folder(current_app.instance_path)
    job = make_job(query, params, f"{base}/sparql", mirror=str(folder))

    def synced_run() -> QueryResult:
        sparql_store.sync(db.session(), folder, base, wait=job.timeout)
        return run(job)

    return respond(run_limited(synced_run), job)


# The steps of an endpoint, shared with the index's /index/sparql (service/index_sparql.py).


def begin() -> tuple[str | None, MultiDict]:
    """Negotiate how errors are shown, start the fork server, read the protocol request:
    the query (None when there is none) and the request's parameters."""
    # Errors go to people as HTML only when they ask for HTML (the query form);
    # protocol clients, with or without an Accept header, get problem+json.
    accept = request.headers.get("Accept")
    preferred = exports.negotiate(accept) if accept else None
    g.atlas_format = "html" if preferred is not None and preferred.name == "html" else "problem"
    # Clients look at the description (or the form) first: have the query processes' fork
    # server booting meanwhile. A node never asked for SPARQL never starts one.
    warm_up()
    return _operation()


def make_job(query: str, params: MultiDict, endpoint_url: str, **target: Any) -> QueryJob:
    """The guarded job for ``query``: formats, dataset and the configured limits; ``target``
    names what the child opens (``mirror=`` or ``index_store=``, see `QueryJob`)."""
    results_format, graph_format = _formats(params)
    if results_format is None and graph_format is None:
        raise NotAcceptable("no result format matches the Accept header; offered: " + ", ".join(
            types[0] for types in (RESULTS_FORMATS | GRAPH_FORMATS).values()))
    defaults, named = _dataset(params)
    config = current_app.config
    target.setdefault("mirror", "")
    return QueryJob(
        query=query, base_iri=endpoint_url, results_format=results_format,
        graph_format=graph_format, default_graphs=defaults, named_graphs=named,
        limits_url=f"{endpoint_url}#limits", timeout=float(config["SPARQL_TIMEOUT"]),
        memory_mb=int(config["SPARQL_MEMORY_MB"]), max_rows=int(config["SPARQL_MAX_ROWS"]),
        max_bytes=int(config["SPARQL_MAX_RESULT_BYTES"]), **target)


def run_limited(call: Callable[[], QueryResult]) -> QueryResult:
    """``call()`` while holding one of this process's SPARQL_MAX_CONCURRENT slots (else 429)."""
    slots = current_app.extensions[_SLOTS]
    if not slots.acquire(blocking=False):
        raise TooManyQueries(retry_after=1)
    try:
        return call()
    finally:
        slots.release()


def respond(result: QueryResult, job: QueryJob) -> Response:
    """The HTTP response of a query result (with the cut-off headers when truncated)."""
    response = Response(result.body, content_type=_content_type(result.media_type))
    response.vary.add("Accept")
    if result.truncated:
        # The header Virtuoso sends when it cuts a result (clients know it), and a
        # link to the explanation; the result documents carry that link too.
        response.headers["X-SPARQL-MaxRows"] = str(result.rows)
        response.headers["Link"] = f'<{job.limits_url}>; rel="describedby"'
    return response


def cors(response: Response) -> Response:
    """Public, read-only data without credentials: any web page may query it (Fetch
    standard, CORS protocol), also with a direct POST, which needs a preflight."""
    response.headers["Access-Control-Allow-Origin"] = "*"
    if request.method == "OPTIONS":
        response.headers["Access-Control-Allow-Methods"] = "GET, POST"
        response.headers["Access-Control-Allow-Headers"] = "Content-Type, Accept"
        response.headers["Access-Control-Max-Age"] = "86400"
    return response


# --------------------------------------------------------------------------- the request


def _operation() -> tuple[str | None, MultiDict]:
    """The query (None when there is none) and the request's protocol parameters."""
    cap = int(current_app.config["SPARQL_MAX_QUERY_BYTES"])
    if request.method == "GET":
        params = request.args
        _refuse_update(params)
        queries = params.getlist("query")
        if not queries:
            return None, params
        if len(queries[0].encode("utf-8")) > cap:
            raise URITooLong(f"the query is longer than {cap} bytes (SPARQL_MAX_QUERY_BYTES); "
                             "shorten it")
    elif request.mimetype == _FORM:  # §2.1.2
        _limit_body(3 * cap + 4096)  # percent-encoding triples a byte at most
        params = CombinedMultiDict([request.args, request.form])
        _refuse_update(params)
        queries = params.getlist("query")
    elif request.mimetype == _DIRECT:  # §2.1.3
        _limit_body(cap)
        charset = request.mimetype_params.get("charset", "utf-8").lower()
        if charset not in ("utf-8", "utf8"):
            raise UnsupportedMediaType(f"charset {charset!r}: UTF-8 is the only valid charset "
                                       "of application/sparql-query (SPARQL 1.1 Protocol "
                                       "§2.1.3)")
        params = request.args
        _refuse_update(params)
        try:
            text = request.get_data(cache=False).decode("utf-8")
        except UnicodeDecodeError:
            raise BadRequest("the query is not valid UTF-8") from None
        queries = [text.removeprefix("\ufeff"), *params.getlist("query")]
    elif request.mimetype == "application/sparql-update":
        raise _update_refused()
    else:
        error = UnsupportedMediaType(
            (f"Content-Type {request.mimetype!r} is not accepted" if request.mimetype
             else "a POST needs a Content-Type") + f"; send {_FORM} with a query parameter, "
            f"or the query itself as {_DIRECT}")
        # RFC 9110 §12.5.1: Accept in a response lists the media types we would take.
        error.headers["Accept"] = f"{_DIRECT}, {_FORM}"
        raise error
    if len(queries) != 1:
        raise BadRequest("give exactly one query (SPARQL 1.1 Protocol §2.1); this request has "
                         f"{len(queries)}")
    query = queries[0]
    if len(query.encode("utf-8")) > cap:
        raise PayloadTooLarge(f"the query is longer than {cap} bytes (SPARQL_MAX_QUERY_BYTES)")
    if not query.strip():
        raise BadRequest("the query is empty")
    return query, params


def _refuse_update(params: MultiDict) -> None:
    if "update" in params:
        raise _update_refused()


def _update_refused() -> Forbidden:
    return Forbidden("this endpoint is read-only: SPARQL Update is not accepted. Changes are "
                     "made through the node's API.")


def _limit_body(limit: int) -> None:
    """413 for bodies over ``limit``. A body up to MAX_CONTENT_LENGTH is read and
    dropped first, so the client reliably gets the answer instead of a reset."""
    length = request.content_length
    if length is not None and length > limit:
        if length <= (current_app.config.get("MAX_CONTENT_LENGTH") or 0):
            while request.stream.read(64 * 1024):
                pass
        cap = current_app.config["SPARQL_MAX_QUERY_BYTES"]
        raise PayloadTooLarge(f"the request is larger than a query may be ({cap} bytes, "
                              "SPARQL_MAX_QUERY_BYTES)")
    request.max_content_length = limit  # bodies without Content-Length stop there too


def _dataset(params: MultiDict) -> tuple[tuple[str, ...] | None, tuple[str, ...] | None]:
    """The protocol's RDF dataset (§2.1.4): IRIs of graphs in the store, never fetched."""
    found = []
    for name in ("default-graph-uri", "named-graph-uri"):
        iris = tuple(params.getlist(name))
        for iri in iris:
            try:
                NamedNode(iri)
            except ValueError:
                raise BadRequest(f"{name} {iri!r} is not an absolute IRI") from None
        found.append(iris)
    defaults, named = found
    if not defaults and not named:
        return None, None
    return defaults, named


def _formats(params: MultiDict) -> tuple[str | None, str | None]:
    """The result format for SELECT/ASK and the one for CONSTRUCT/DESCRIBE: from the
    ``format`` parameter (a name or media type), else the Accept header (RFC 9110 §12.5.1)."""
    requested = (params.get("format") or "").strip().lower()
    if requested:
        results, graph = _FORMAT_ALIASES.get(requested, (requested, requested))
        results, graph = _lookup(RESULTS_FORMATS, results), _lookup(GRAPH_FORMATS, graph)
        if results is None and graph is None:
            raise BadRequest(f"unknown format {requested!r}; use one of " + ", ".join(
                [*_FORMAT_ALIASES, *RESULTS_FORMATS, *GRAPH_FORMATS]))
        return results, graph
    accept = request.headers.get("Accept", "").strip()
    return _negotiate(accept, RESULTS_FORMATS), _negotiate(accept, GRAPH_FORMATS)


def _lookup(table: dict[str, tuple[str, ...]], key: str) -> str | None:
    return next((name for name, types in table.items() if key == name or key in types), None)


def _negotiate(accept: str, table: dict[str, tuple[str, ...]]) -> str | None:
    if not accept:
        return next(iter(table))
    best = parse_accept_header(accept, MIMEAccept).best_match(
        [media for types in table.values() for media in types])
    return _lookup(table, best) if best else None


def _content_type(media_type: str) -> str:
    return f"{media_type}; charset=utf-8" if media_type.startswith("text/") else media_type


# --------------------------------------------------------------------------- description


def describe(params: MultiDict, *, endpoint: str = "sparql.endpoint",
             examples: dict[str, tuple[str, str]] = EXAMPLES,
             graph: Callable[[], Graph] | None = None, **page: Any) -> Response:
    """Without a query: the query form (HTML) or the service description (RDF).

    ``endpoint`` is the view's name (the form posts there), ``graph`` makes the description
    (default: the node's), ``page`` adds variables for sparql.html (``index=True``).
    """
    fmt = exports.negotiate(request.headers.get("Accept"), ("html", *_SD_FORMATS))
    if fmt is None:
        raise NotAcceptable("without a query, this endpoint describes itself in HTML, Turtle, "
                            "N-Triples, RDF/XML or JSON-LD; give a query to get results")
    if fmt.name == "html":
        config = current_app.config
        example = params.get("example")
        html = render_template(
            "sparql.html", examples=examples, endpoint=endpoint,
            query=examples.get(example, next(iter(examples.values())))[1].strip(),
            results_formats=RESULTS_FORMATS, graph_formats=GRAPH_FORMATS, labels=_LABELS,
            timeout=float(config["SPARQL_TIMEOUT"]), max_rows=int(config["SPARQL_MAX_ROWS"]),
            max_query_bytes=int(config["SPARQL_MAX_QUERY_BYTES"]),
            max_concurrent=int(config["SPARQL_MAX_CONCURRENT"]), **page)
        response = Response(html, content_type="text/html; charset=utf-8")
    else:
        made = graph() if graph else service_description(current_app.config["BASE_URL"],
                                                         current_app.config["NODE_NAME"])
        response = Response(made.serialize(format=_SD_FORMATS[fmt.name], encoding="utf-8"),
                            content_type=exports.content_type(fmt))
    response.vary.add("Accept")
    return response


_NODE_DATASET = ("One named graph per entity of this node, named by the entity's IRI; the "
                 "default graph is their union.")


def service_description(base: str, name: str, *, path: str = "/sparql", union: bool = True,
                        dataset: str = _NODE_DATASET) -> Graph:
    """SPARQL 1.1 Service Description of the endpoint at ``{base}{path}``: what it speaks and
    returns; ``union``: the default graph is the union of all named graphs (sd:feature
    sd:UnionDefaultGraph); ``dataset`` says in English what the graphs are."""
    g = Graph(bind_namespaces="core")
    g.bind("sd", SD)
    g.bind("formats", FORMATS)
    g.bind("dct", DCTERMS)
    service = URIRef(f"{base}{path}")
    g.add((service, RDF.type, SD.Service))
    g.add((service, SD.endpoint, service))
    g.add((service, DCTERMS.title, Literal(f"SPARQL – {name}")))
    g.add((service, SD.supportedLanguage, SD.SPARQL11Query))
    for fmt in _RESULT_FORMAT_IRIS:
        g.add((service, SD.resultFormat, FORMATS[fmt]))
    if union:  # the default graph is the union of all named graphs
        g.add((service, SD.feature, SD.UnionDefaultGraph))
    g.add((service, SD.defaultEntailmentRegime, ENTAILMENT.Simple))
    dataset_text, (dataset, default_graph) = dataset, (BNode(), BNode())
    g.add((service, SD.defaultDataset, dataset))
    g.add((dataset, RDF.type, SD.Dataset))
    g.add((dataset, SD.defaultGraph, default_graph))
    g.add((default_graph, RDF.type, SD.Graph))
    g.add((dataset, RDFS.comment, Literal(dataset_text, lang="en")))
    g.add((service, RDFS.comment, Literal(
        "Read-only. SERVICE, LOAD and updates are refused; FROM and FROM NAMED select graphs "
        "of this store and never fetch anything. Queries have a time limit and a row limit: "
        f"{base}{path}#limits", lang="en")))
    return g
