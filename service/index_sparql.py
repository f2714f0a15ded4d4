"""The index's SPARQL 1.1 endpoint at ``/index/sparql`` (issue 5 item 8): read-only, bounded.

The node's hardened machinery (service/sparql.py for the protocol, service/sparql_query.py
for the guarded query process), pointed at the index:

- Embedded store (default): each query runs in its own killable child process (deadline,
  memory, rows, bytes; no network; SERVICE, LOAD and updates refused; FROM never fetches)
  that opens the newest snapshot the harvester published
  (`harvesters.store.latest_snapshot(INDEX_STORE)`, read-only; a snapshot pruned between
  resolving and opening is resolved again). The default graph is the union of all graphs:
  the entity graphs, the per-source bookkeeping graphs with their PROV-O provenance and the
  index's same-as graph (`harvesters.sameas.SAME_AS_GRAPH`) — the service description says
  so with ``sd:feature sd:UnionDefaultGraph``. Before the first snapshot: 503 with
  Retry-After ("run atlas harvest run").
- Remote store (INDEX_STORE_URL): the query is checked by the same guarded child (parse,
  SERVICE/update refusal, result format), then FORWARDED to the remote query endpoint
  (SPARQL 1.1 Protocol §2.1.3, direct POST; ``default-graph-uri``/``named-graph-uri`` as
  URL parameters) with SPARQL_TIMEOUT as connect, read and overall deadline; the answer is
  parsed lazily and re-serialized here under the same row and byte limits. Past the
  deadline the request is dropped (503) — the remote server may keep computing: give it a
  timeout of its own (``oxigraph serve --timeout-s``). The default graph is then the
  server's: the description does not claim a union default graph (run ``oxigraph serve
  --union-default-graph`` or set Fuseki's ``tdb2:unionDefaultGraph`` for one).
"""

from __future__ import annotations

import math
import time
from urllib.parse import urlencode

from flask import Blueprint, Response, current_app

from harvesters.errors import StoreError
from harvesters.sameas import SAME_AS_GRAPH
from harvesters.settings import HarvestSettings
from harvesters.store import STATE_NS, RemoteSparqlStore, latest_snapshot

from . import sparql
from .errors import AtlasError, BadRequest
from .index import harvest_settings
from .sparql_query import NoSnapshot, QueryJob, QueryLimitExceeded, QueryResult, run
from .sparql_results import Limits, media_type, serialize

__all__ = ["INDEX_EXAMPLES", "bp"]

bp = Blueprint("index_sparql", __name__, url_prefix="/index")

_PREFIXES = f"""PREFIX idx: <{STATE_NS}>
PREFIX prov: <http://www.w3.org/ns/prov#>
PREFIX schema: <https://schema.org/>
"""
INDEX_EXAMPLES = {
    "entities-per-source": ("Einträge je Quelle mit Herkunft", _PREFIXES + """
SELECT ?source ?entity ?name ?retrieved ?entry ?version WHERE {
  # Each source's bookkeeping graph lists its entities with their provenance (PROV-O).
  GRAPH ?sourceGraph {
    ?sourceGraph idx:sourceId ?source .
    ?entity idx:inSource ?sourceGraph ;
            prov:wasDerivedFrom ?entry .
    OPTIONAL { ?entity prov:generatedAtTime ?retrieved }
    OPTIONAL { ?entity prov:hadPrimarySource ?version }
  }
  # The entity's own graph is named by its IRI.
  OPTIONAL { GRAPH ?entity { ?entity schema:name ?name } }
}
ORDER BY ?source ?name
LIMIT 1000
"""),
    "same-actor-candidates": ("Kandidaten für dieselbe Akteur*in in mehreren Quellen", _PREFIXES
                              + f"""\
PREFIX rdf: <http://www.w3.org/1999/02/22-rdf-syntax-ns#>

SELECT ?a ?relation ?b ?reason ?key ?score WHERE {{
  # The index's own graph: owl:sameAs / skos:closeMatch candidates, never the sources' data.
  GRAPH <{SAME_AS_GRAPH}> {{
    ?note a rdf:Statement ;
          rdf:subject ?a ; rdf:predicate ?relation ; rdf:object ?b ;
          idx:matchReason ?reason ; idx:matchKey ?key ; idx:matchScore ?score .
  }}
}}
ORDER BY DESC(?score) ?a ?b
"""),
    "sources-and-runs": ("Quellen und ihre letzten Ernten", _PREFIXES + """
SELECT ?source ?run ?started ?ended ?ok ?applied WHERE {
  GRAPH ?sourceGraph {
    ?sourceGraph idx:sourceId ?source .
    ?run a prov:Activity ;
         prov:startedAtTime ?started ;
         prov:endedAtTime ?ended .
    OPTIONAL { ?run idx:succeeded ?ok }
    OPTIONAL { ?run idx:membersApplied ?applied }
  }
}
ORDER BY ?source DESC(?ended)
"""),
    **sparql.EXAMPLES,
}
_DATASET = ("One named graph per harvested entity, named by the entity's IRI; one graph per "
            "source (urn:x-engagement-atlas:source:{id}) with its entities' provenance (PROV-O) "
            f"and harvest runs; the index's own graph {SAME_AS_GRAPH} with same-actor "
            "candidates (owl:sameAs, skos:closeMatch). ")
_UNION = "The default graph is the union of all these graphs."
_REMOTE = ("The default graph is the one the index's SPARQL server provides; GRAPH ?g reaches "
           "every graph.")


class BadGateway(AtlasError):
    status, title = 502, "Bad Gateway"


@bp.after_request
def _cors(response: Response) -> Response:
    return sparql.cors(response)


@bp.route("/sparql", methods=["GET", "POST"])
def endpoint():
    """Answer a query over the whole index (SPARQL 1.1 Protocol §2.1), or describe it."""
    query, params = sparql.begin()
    settings = harvest_settings()
    base, union = current_app.config["BASE_URL"], not settings.store_url
    if query is None:
        return sparql.describe(
            params, endpoint="index_sparql.endpoint", examples=INDEX_EXAMPLES, index=True,
            union=union, same_as_graph=SAME_AS_GRAPH,
            graph=lambda: sparql.service_description(
                base, f"Index {current_app.config['NODE_NAME']}", path="/index/sparql",
                union=union, dataset=_DATASET + (_UNION if union else _REMOTE)))
    url = f"{base}/index/sparql"
    if settings.store_url:
        job = sparql.make_job(query, params, url, check_only=True)
        result = sparql.run_limited(lambda: _forward(job, settings))
    else:
        retry = max(1, math.ceil(settings.interval))
        if latest_snapshot(settings.store_path) is None:
            raise NoSnapshot(retry)
        job = sparql.make_job(query, params, url, index_store=str(settings.store_path))
        try:
            result = sparql.run_limited(lambda: run(job))
        except NoSnapshot as exc:  # every snapshot vanished meanwhile (the store was reset)
            raise NoSnapshot(retry) from exc
    return sparql.respond(result, job)


def _forward(job: QueryJob, settings: HarvestSettings) -> QueryResult:
    """Check ``job`` in the guarded child, then let the remote store answer (docstring)."""
    started = time.monotonic()
    checked = run(job)
    remaining = job.timeout - (time.monotonic() - started)
    if remaining <= 0:
        raise _too_slow(job)
    fmt = job.results_format if checked.form in ("SELECT", "ASK") else job.graph_format
    dataset = [("default-graph-uri", g) for g in job.default_graphs or ()]
    dataset += [("named-graph-uri", g) for g in job.named_graphs or ()]
    url = settings.store_url
    if dataset:
        url += ("&" if "?" in url else "?") + urlencode(dataset)
    store = RemoteSparqlStore(url, settings.update_url or url, timeout=remaining,
                              connect_timeout=min(5.0, remaining))
    try:
        results = store.query(job.query, timeout=remaining)
        body, rows, truncated = serialize(checked.form, results, fmt,
                                          Limits(job.max_rows, job.max_bytes, job.limits_url))
    except StoreError as exc:
        if exc.reason == "store-timeout":
            raise _too_slow(job) from exc
        if exc.reason == "bad-query":
            raise BadRequest(f"the index's SPARQL server refused the query: {exc}") from exc
        raise BadGateway(f"the index's SPARQL server failed: {exc}") from exc
    except (OSError, SyntaxError, ValueError) as exc:  # raised while the answer is parsed
        cause = exc.__cause__ or exc.__context__
        if isinstance(cause, StoreError) and cause.reason == "store-timeout":
            raise _too_slow(job) from exc
        if time.monotonic() - started >= job.timeout:
            raise _too_slow(job) from exc
        raise BadGateway(f"unreadable answer from the index's SPARQL server: {exc}") from exc
    finally:
        store.close()
    return QueryResult(body, media_type(fmt), checked.form, rows, truncated)


def _too_slow(job: QueryJob) -> QueryLimitExceeded:
    return QueryLimitExceeded(f"the query was stopped after {job.timeout:g} s (SPARQL_TIMEOUT)",
                              retry_after=math.ceil(job.timeout))

