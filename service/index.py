"""The index service pages (issue 5 items 8, 9): search across sources, source status, entities.

Registered by `create_app` only with ``INDEX_MODE`` (``atlas index serve``), together with the
SPARQL endpoint /index/sparql (service/index_sparql.py). Every route answers HTML (templates
index_*.html) or JSON (``?format=json`` or ``Accept: application/json``, RFC 9110 §12.5.1
proactive negotiation).

Entity pages add the same-actor candidates the harvester published in the index's own graph
(`harvesters.sameas.SAME_AS_GRAPH`: owl:sameAs or skos:closeMatch, reason, shared key, name
score, a link to the other entity's page) and, for entities harvested through a trusted
intermediary index, that index (``idx:harvestedVia``). Concept values (facets, record fields)
are shown by their SKOS label — German, else English, else the notation; JSON keeps the
notations and adds the labels (``facet_labels``, ``labels``).

Reading while the harvester writes: the embedded store is never opened directly (RocksDB
has one writer, and a store that keeps writing cannot be read safely from another process,
harvesters/store/oxigraph.py); pages read the newest snapshot the harvester published
(`OxigraphStore.publish_snapshot` after each run, `latest_snapshot`), opened read-only and
reused until a newer one appears. Without a snapshot the pages say so (empty state). With a
remote store (INDEX_STORE_URL) pages query it directly. Search reads the SQLite side index
``{INDEX_STORE}.search.sqlite3`` (WAL: readers never block the harvester).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from typing import Any

import pyoxigraph as ox
from flask import (
    Blueprint,
    Flask,
    Response,
    current_app,
    g,
    jsonify,
    render_template,
    request,
    url_for,
)

from harvesters.search import FACET_KEYS, SearchIndex
from harvesters.settings import HarvestSettings
from harvesters.store import RemoteSparqlStore, latest_snapshot
from vocab import ENTITIES
from vocab.terms import concept_label

from .errors import BadRequest, NotAcceptable, NotFound
from .index_read import FACET_SCHEMES, entity_view, source_ids, source_status
from .rendering import KIND_LABELS

__all__ = ["bp", "init_app"]

bp = Blueprint("index", __name__, url_prefix="/index")
_LOCK = threading.Lock()
PER_PAGE = 20
FACET_LABELS = {"source": "Quelle", "city": "Stadt", "kind": "Art", "actorTypes": "Akteurstyp",
                "fieldsOfAction": "Handlungsfeld", "targetGroups": "Zielgruppe",
                "engagementMode": "Engagementform", "language": "Sprache", "status": "Status"}

SAME_AS_REASONS = {"wikidata": "gleiches Wikidata-Objekt",
                   "register-number": "gleicher Registereintrag",
                   "domain-name": "ähnlicher Name auf derselben Website-Domain"}


def init_app(app: Flask) -> None:
    """Register the index pages and its SPARQL endpoint (only called in INDEX_MODE)."""
    from . import index_sparql

    app.register_blueprint(bp)
    app.register_blueprint(index_sparql.bp)


def harvest_settings(app: Flask | None = None) -> HarvestSettings:
    """The harvest settings (store, registry, journal) of ``app`` or the current app."""
    app = app or current_app
    return HarvestSettings.from_mapping(app.config, app.instance_path)


def _wants_json() -> bool:
    fmt = request.args.get("format")
    if fmt:
        if fmt not in ("json", "html"):
            raise NotAcceptable(f"format {fmt!r}: use html or json")
        wanted = fmt == "json"
    else:
        best = request.accept_mimetypes.best_match(["text/html", "application/json"])
        wanted = best == "application/json"
    g.atlas_format = "json" if wanted else "html"  # errors follow the same choice (problems)
    return wanted


def _answer(template: str, data: dict[str, Any], **context: Any) -> Response:
    """JSON or HTML of ``data``; caches learn that the answer depends on Accept."""
    if _wants_json():
        response = jsonify(data)
    else:
        response = Response(render_template(template, **data, **context), mimetype="text/html")
    response.vary.add("Accept")
    return response


def _cached(key: str, stamp: Any, make: Callable[[], Any]) -> Any:
    """One object per app and ``stamp`` (a newer snapshot replaces the old one)."""
    cache = current_app.extensions.setdefault("atlas_index", {})
    with _LOCK:
        held = cache.get(key)
        if held is None or held[0] != stamp:
            cache[key] = held = (stamp, make())
        return held[1]


def _query() -> Callable[[str], Any] | None:
    """A SPARQL query function over the published index, or None before the first snapshot."""
    settings = harvest_settings()
    if settings.store_url:
        store = _cached("remote", settings.store_url, lambda: RemoteSparqlStore(
            settings.store_url, settings.update_url or settings.store_url))
        return store.query
    for _attempt in range(2):  # a snapshot pruned between resolving and opening: retry
        path = latest_snapshot(settings.store_path)
        if path is None:
            return None
        try:
            store = _cached("snapshot", str(path), lambda p=path: ox.Store.read_only(str(p)))
        except OSError:
            continue
        return store.query
    return None


def _source_names() -> dict[str, str]:
    """Source id -> the name it was registered with: pages show names (people do not know
    ids such as ``127.0.0.1-8001``); JSON keeps the ids."""
    return {s.id: s.name for s in harvest_settings().registry().all() if s.name}


def _search_index() -> SearchIndex | None:
    path = harvest_settings().search_path
    if not path.exists():
        return None
    return _cached("search", str(path), lambda: SearchIndex(str(path)))


def _page_number() -> int:
    try:
        page = int(request.args.get("page", "1"))
    except ValueError:
        raise BadRequest("page must be a positive integer") from None
    if page < 1:
        raise BadRequest("page must be a positive integer")
    return page


@bp.get("/search")
def search():
    """Full text over names and descriptions of all sources, with facets."""
    q = request.args.get("q", "").strip()
    chosen = {k: request.args.getlist(k) for k in FACET_KEYS if request.args.getlist(k)}
    page = _page_number()
    index = _search_index()
    result = index.search(q or None, chosen, page, PER_PAGE) if index else None
    total = result.total if result else 0
    items = [{"entity": h.entity, "kind": h.kind, "source": h.source, "name": h.name,
              "page": url_for("index.entity", iri=h.entity)} for h in (result.items if result
                                                                        else [])]
    facets = result.facet_counts if result else {}
    data = {"q": q, "filters": chosen, "page": page, "per_page": PER_PAGE, "total": total,
            "pages": max(1, math.ceil(total / PER_PAGE)), "items": items,
            "facets": facets, "facet_labels": facet_labels(facets, chosen),
            "available": index is not None}
    return _answer("index_search.html", data, FACET_LABELS=FACET_LABELS,
                   SOURCE_NAMES=_source_names())


def facet_labels(facets: dict[str, dict[str, int]], chosen: dict[str, list[str]]
                 ) -> dict[str, dict[str, str]]:
    """{facet key: {value: label}}: SKOS labels for concept notations (German, else English,
    else the notation), names for kinds; other values (source ids, cities, languages) as
    they are. Chosen values are labelled too, also when no hit carries them."""
    out: dict[str, dict[str, str]] = {}
    for key in {*facets, *chosen}:
        values = {*(facets.get(key) or {}), *chosen.get(key, ())}
        scheme = FACET_SCHEMES.get(key)
        if scheme:
            out[key] = {v: concept_label(scheme, v) for v in values}
        elif key == "kind":
            out[key] = {v: KIND_LABELS.get(v, v) for v in values}
        else:
            out[key] = {v: v for v in values}
    return out


@bp.get("/sources")
def sources():
    """Status per source: registration, last run and its counts, quarantined entities."""
    settings = harvest_settings()
    registered = {s.id: s for s in settings.registry().all()}
    query = _query()
    known = set(registered) | (source_ids(query) if query else set())
    rows = [source_status(query or _nothing, key, registered.get(key)) for key in sorted(known)]
    return _answer("index_sources.html", {"available": query is not None, "sources": rows})


@bp.get("/entity")
def entity():
    """An entity as harvested, with its provenance (or why it is quarantined)."""
    iri = request.args.get("iri", "").strip()
    if not iri:
        raise BadRequest("give the entity IRI: /index/entity?iri=...")
    json_wanted = _wants_json()
    query = _query()
    if query is None:
        raise NotFound("the index has not published a snapshot yet; run `atlas harvest run`")
    try:
        view = entity_view(query, iri)
    except ValueError:
        raise BadRequest(f"not an IRI: {iri!r}") from None
    if view is None:
        raise NotFound(f"the index holds nothing about {iri}")
    for candidate in view["same_as"]:
        candidate["page"] = url_for("index.entity", iri=candidate["entity"])
    if json_wanted:
        return _answer("index_entity.html", view)
    spec = ENTITIES.get(view["kind"]) if view["kind"] else None
    return _answer("index_entity.html", view, spec=spec, SAME_AS_REASONS=SAME_AS_REASONS,
                   SOURCE_NAMES=_source_names())


class _Empty(list):
    """An empty SPARQL answer: before the first snapshot the registry alone is shown."""

    variables: list = []


def _nothing(_sparql: str) -> _Empty:
    return _Empty()
