"""The public read side: cool URIs, content negotiation, collection pages.

Every entity answers at ``{BASE_URL}/{collection}/{id}`` in every registered
format. The format is chosen by extension (``/actors/x.ttl``), then by
``?format=``, then by the Accept header (RFC 9110 §12.5.1, decided by
`exports.negotiate`, nothing else). Responses carry validators (weak ETag,
Last-Modified) and answer conditional requests with 304.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from functools import cache
from typing import Any
from urllib.parse import urlencode

from flask import Blueprint, Response, current_app, g, redirect, render_template, request, url_for
from rdflib import Graph
from sqlalchemy import func, select
from werkzeug.http import http_date

import exports
from exports.node import node_graph, rdf_format_names, serialize
from vocab import ENTITIES, entity_uri
from vocab.context import context
from vocab.fields import ENTITY_BY_COLLECTION, Entity
from vocab.resources import ontology, read_text, schemes

from . import catalog, db, store
from .errors import BadRequest, NotAcceptable, NotFound
from .models import EntityRow
from .rendering import INBOUND, alternates, facet_form, outbound_refs

__all__ = ["bp"]

bp = Blueprint("public", __name__)

# Formats of entity and collection pages, when registered (xlsx is for downloads).
PAGE_FORMATS = ("html", "jsonld", "turtle", "ntriples", "rdfxml", "csv", "geojson", "xlsx")
# Pages may be up to a minute stale in any cache: that absorbs bursts of crawlers,
# and an edit or deletion (GDPR) reaches every reader within a minute; the ETag
# keeps revalidation cheap after that.
PAGE_CACHE = "public, max-age=60"
# The context and the vocabulary change only with a new release of the software.
STATIC_CACHE = "public, max-age=86400"
RELATED_LIMIT = 50
_RDFLIB_FORMATS = {"turtle": "turtle", "ntriples": "nt", "rdfxml": "xml", "jsonld": "json-ld"}


# --------------------------------------------------------------------------- routes


@bp.get("/")
def home():
    """The entry URL: the front page for people, the node description (RDF) for machines."""
    fmt, negotiated = _choose_format(None, ("html", *rdf_format_names()))
    info = catalog.node_info(current_app, db.session())
    digest = catalog.info_digest(info, "home", fmt.name)
    if fmt.name != "html":
        return _answer(fmt, negotiated, digest, info.modified,
                       lambda: serialize(node_graph(info), fmt.name),
                       location=f"{_base()}/?format={fmt.name}")
    formats = [exports.get(name) for name in rdf_format_names()]
    return _answer(fmt, negotiated, digest, info.modified, lambda: render_template(
        "home.html", info=info, rdf_formats=formats).encode("utf-8"))


@bp.get("/favicon.ico")
def favicon():
    """Browsers ask for /favicon.ico on documents without ``<link rel=icon>`` (feeds,
    SPARQL results, Turtle): point them at the icon the pages link."""
    return redirect(url_for("static", filename="favicon.svg"), code=301)


@bp.get("/<name>")
def collection(name: str):
    """One page of a collection, filtered by facets (repeatable) and ``q``. May 404."""
    collection_name, ext = _split_extension(name)
    spec = _spec_or_404(collection_name)
    fmt, negotiated = _choose_format(ext, PAGE_FORMATS)
    filters, q, page, per_page = _page_query(spec)
    result = store.list_page(db.session(), spec.kind, filters=filters, q=q, page=page,
                             per_page=per_page)
    if page > result.pages:
        raise NotFound(f"page {page} does not exist; the last page is {result.pages}")

    def page_url(number: int, path: str = request.path) -> str:
        params = [(k, v) for k in filters for v in filters[k]] + ([("q", q)] if q else [])
        if per_page != current_app.config["PAGE_SIZE"]:
            params.append(("per_page", str(per_page)))
        if ext is None and request.args.get("format"):
            params.append(("format", request.args["format"]))
        params += [("page", str(number))] if number > 1 else []
        return _base() + path + ("?" + urlencode(params) if params else "")

    records = [state.record for state in result.items]
    pager = _pager(page, result.pages, page_url)
    extra: dict[str, Any] = {}
    if fmt.name == "html":
        refs = _resolve_refs(uri for r in records for uri in r.get("partners", ()))
        extra = {"refs": refs, "q": q or "", "per_page": per_page, "total": result.total,
                 "facets": facet_form(spec, filters, store.facet_keys(spec.kind)),
                 "page": page, "pages": result.pages, "offset": (page - 1) * per_page,
                 "pager": pager, "alternates": alternates(
                     fmt, PAGE_FORMATS, lambda e: page_url(page, f"/{spec.collection}.{e}"))}
    etag = _digest([fmt.name, page_url(page), result.total,
                    [(s.id, s.version) for s in result.items],
                    sorted((uri, ref["version"]) for uri, ref in extra.get("refs", {}).items())])
    payload = exports.Payload(kind=spec.kind, records=records, base=_base(), single=False,
                              page_url=page_url(page), extra=extra)
    return _answer(fmt, negotiated, etag, _newest([spec.kind]), lambda: fmt.render(payload),
                   link=", ".join(f'<{url}>; rel="{rel}"' for rel, url in pager),
                   location=page_url(page, f"{request.path}.{fmt.extensions[0]}"),
                   filename=spec.collection)


@bp.get("/<collection_name>/<name>")
def entity_page(collection_name: str, name: str):
    """One entity in any format; 404 for unknown ids, 410 with a tombstone once deleted."""
    spec = _spec_or_404(collection_name)
    entity_id, ext = _split_extension(name)
    fmt, negotiated = _choose_format(ext, PAGE_FORMATS)
    state = store.get(db.session(), spec.kind, entity_id)
    uri = str(entity_uri(_base(), spec.kind, entity_id))
    extra: dict[str, Any] = {}
    etag, last_modified = f"{state.version}-{fmt.name}", state.modified
    if fmt.name == "html":
        related = _related(uri)
        partners = [p for group in related for item in group["items"]
                    for p in item.get("partners", ())]
        refs = _resolve_refs([*outbound_refs(spec, state.record), *partners])
        extra = {"uri": uri, "refs": refs, "related": related,
                 "alternates": alternates(fmt, PAGE_FORMATS, lambda e: f"{uri}.{e}")}
        etag += "-" + _digest([sorted((u, r["version"]) for u, r in refs.items()),
                               [(g["key"], g["total"], [(i["id"], i["version"])
                                                        for i in g["items"]])
                                for g in related]])
        # The page also shows other entities; a relation that went away leaves no
        # trace in what we list, so the page counts as changed with any change.
        last_modified = max(last_modified, _newest(ENTITIES) or last_modified)
    payload = exports.Payload(kind=spec.kind, records=[state.record], base=_base(),
                              single=True, extra=extra)
    return _answer(fmt, negotiated, etag, last_modified, lambda: fmt.render(payload),
                   location=f"{_base()}{request.path}.{fmt.extensions[0]}",
                   filename=f"{spec.kind}-{entity_id}")


@bp.get("/ns/context-v1.jsonld")
def context_document():
    """The bundled JSON-LD context: the copy behind CONTEXT_URL, never fetched elsewhere."""
    return _static(_context_bytes(), "application/ld+json", False)


@bp.get("/vocab")
def vocabulary_page():
    """The generated human documentation of the vocabulary."""
    return _static(read_text("vocabulary.html").encode("utf-8"), "text/html; charset=utf-8",
                   False)


@bp.get("/ns")
@bp.get("/ns.<ext>")
def namespace(ext: str | None = None):
    """The ontology and the concept schemes; Turtle unless the client asks otherwise."""
    names = [f.name for f in exports.formats() if f.rdf and f.name in _RDFLIB_FORMATS]
    accept = (request.headers.get("Accept") or "").strip()
    if ext is None and "format" not in request.args and accept in {"", "*/*"}:
        # A bare request (curl, a vocabulary tool) gets Turtle, the vocabulary's source form.
        fmt, negotiated = exports.get("turtle"), True
    else:
        fmt, negotiated = _choose_format(ext, ["html", *names])
    if fmt.name == "html":
        # People asking for the namespace are sent to its documentation (303 See Other).
        response = redirect(url_for("public.vocabulary_page"), code=303)
        response.headers["Vary"] = "Accept"
        return response
    return _static(_namespace_bytes(fmt.name), exports.content_type(fmt), negotiated)


# --------------------------------------------------------------------------- format choice


def _split_extension(name: str) -> tuple[str, str | None]:
    """``"x.ttl"`` -> ``("x", "ttl")``. Ids and collection names never contain a dot."""
    stem, dot, ext = name.rpartition(".")
    return (stem, ext) if dot else (name, None)


def _spec_or_404(collection_name: str) -> Entity:
    """The entity spec of a collection; raises NotFound for unknown collections."""
    spec = ENTITY_BY_COLLECTION.get(collection_name)
    if spec is None:
        raise NotFound(f"no collection {collection_name!r}")
    return spec


def _choose_format(ext: str | None, allowed: Iterable[str]) -> tuple[exports.Format, bool]:
    """The response format and whether it was negotiated; raises NotAcceptable (406).

    Precedence: extension, then ``?format=`` (name, extension or media type), then Accept.
    """
    fmt, negotiated = _pick_format(ext, allowed)
    # Errors raised later (404, 410) answer in the format the client asked for.
    g.atlas_format = fmt.name
    return fmt, negotiated


def _pick_format(ext: str | None, allowed: Iterable[str]) -> tuple[exports.Format, bool]:
    allowed = set(allowed)
    available = [f for f in exports.formats() if f.name in allowed]
    if ext is not None:
        fmt = exports.get(ext)
        if fmt is None or fmt not in available or ext.lower() not in fmt.extensions:
            raise _not_acceptable(f"unknown extension {ext!r}", available, vary=False)
        return fmt, False
    requested = request.args.get("format")
    if requested is not None:
        fmt = exports.get(requested)
        if fmt is None or fmt not in available:
            raise _not_acceptable(f"unknown format {requested!r}", available, vary=False)
        return fmt, False
    fmt = exports.negotiate(request.headers.get("Accept"), [f.name for f in available])
    if fmt is None:
        raise _not_acceptable("none of the available media types is acceptable", available,
                              vary=True)
    return fmt, True


def _not_acceptable(detail: str, available: list[exports.Format], vary: bool) -> NotAcceptable:
    error = NotAcceptable(detail, formats=[f.name for f in available],
                          media_types=[f.media_types[0] for f in available],
                          extensions=[f.extensions[0] for f in available if f.extensions])
    if vary:
        error.headers["Vary"] = "Accept"
    return error


# --------------------------------------------------------------------------- query


def _page_query(spec: Entity) -> tuple[dict[str, list[str]], str | None, int, int]:
    """Filters, free text, page and page size from the query string; may raise BadRequest.

    Unknown parameters are ignored: shared links collect tracking parameters (fbclid...).
    """
    args = request.args
    filters = {key: values for key in store.facet_keys(spec.kind)
               if (values := [v.strip() for v in args.getlist(key) if v.strip()])}
    q = (args.get("q") or "").strip() or None
    page = _int_arg("page", 1, 1, 10**6)
    per_page = _int_arg("per_page", current_app.config["PAGE_SIZE"], 1,
                        current_app.config["MAX_PAGE_SIZE"])
    return filters, q, page, per_page


def _int_arg(name: str, default: int, low: int, high: int) -> int:
    raw = request.args.get(name)
    if raw is None or raw == "":
        return default
    if not raw.isdigit() or not low <= int(raw) <= high:
        raise BadRequest(f"{name} must be a whole number from {low} to {high}")
    return int(raw)


def _pager(page: int, pages: int, page_url) -> list[tuple[str, str]]:
    """(rel, url) pairs of RFC 8288 links: first, prev, next, last."""
    links = [("first", page_url(1))]
    if page > 1:
        links.append(("prev", page_url(page - 1)))
    if page < pages:
        links.append(("next", page_url(page + 1)))
    links.append(("last", page_url(pages)))
    return links


# --------------------------------------------------------------------------- related data


def _related(uri: str) -> list[dict[str, Any]]:
    """Entities whose references point at ``uri``, found through the facets."""
    found = store.referrers(db.session(), uri, [(kind, key) for kind, key, _ in INBOUND],
                            RELATED_LIMIT)
    groups = []
    for kind, key, heading in INBOUND:
        if (kind, key) not in found:
            continue
        total, items = found[(kind, key)]
        collection_name = ENTITIES[kind].collection
        groups.append({
            "key": f"{kind}.{key}", "heading": heading, "kind": kind, "total": total,
            "more": f"{url_for('public.collection', name=collection_name)}?"
                    + urlencode({key: uri}),
            "items": [{"id": s.id, "version": s.version,
                       "uri": str(entity_uri(_base(), kind, s.id)), **s.record}
                      for s in items],
        })
    return groups


def _resolve_refs(uris: Iterable[str]) -> dict[str, dict[str, Any]]:
    """Names of local entities among ``uris`` (one query per kind); external ones are left out."""
    prefix = _base() + "/"
    wanted: dict[str, dict[str, str]] = {}
    for uri in set(uris):
        if not uri.startswith(prefix):
            continue
        collection_name, _, entity_id = uri[len(prefix):].partition("/")
        spec = ENTITY_BY_COLLECTION.get(collection_name)
        if spec is not None and entity_id and "/" not in entity_id:
            wanted.setdefault(spec.kind, {})[entity_id] = uri
    out = {}
    session = db.session()
    for kind, ids in wanted.items():
        rows = session.execute(select(EntityRow.id, EntityRow.data, EntityRow.version,
                                      EntityRow.deleted)
                               .where(EntityRow.kind == kind, EntityRow.id.in_(list(ids))))
        for row in rows:
            out[ids[row.id]] = {"name": None if row.deleted else row.data.get("name"),
                                "deleted": row.deleted is not None, "version": row.version}
    return out


# --------------------------------------------------------------------------- HTTP caching


def _base() -> str:
    return current_app.config["BASE_URL"]


def _digest(parts: Any) -> str:
    text = json.dumps(parts, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:20]


def _newest(kinds: Iterable[str]) -> datetime | None:
    """The latest change to entities of these kinds, deletions included (their tombstones
    keep the time of deletion as ``modified``)."""
    value = db.session().scalar(select(func.max(EntityRow.modified))
                                .where(EntityRow.kind.in_(list(kinds))))
    if isinstance(value, str):  # SQLite's max() over DATETIME answers with text
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=UTC) if value and value.tzinfo is None else value


def _answer(fmt: exports.Format, negotiated: bool, opaque: str,
            last_modified: datetime | None, render: Callable[[], bytes], *,
            link: str | None = None, location: str | None = None,
            filename: str = "download") -> Response:
    """The representation with its validators, or 304 when the client's copy is current."""
    # Weak: equal ETags mean equivalent content, not identical bytes (RFC 9110 §8.8.1);
    # the same data serialized by another rdflib release may differ byte by byte.
    headers = {"ETag": f'W/"{opaque}"', "Cache-Control": PAGE_CACHE,
               # Public open data: any web page may read it (Fetch standard CORS).
               "Access-Control-Allow-Origin": "*"}
    if last_modified is not None:
        headers["Last-Modified"] = http_date(last_modified)
    if link:
        headers["Link"] = link
    if negotiated:
        headers["Vary"] = "Accept"
        if location:  # the URL of the chosen representation (RFC 9110 §8.7)
            headers["Content-Location"] = location
    if _not_modified(opaque, last_modified):
        return Response(status=304, headers=headers)
    response = Response(render(), headers=headers, content_type=exports.content_type(fmt))
    if not fmt.text:  # binary downloads (spreadsheets) are saved, not displayed
        response.headers["Content-Disposition"] = (
            f'attachment; filename="{filename}.{fmt.extensions[0]}"')
    return response


def _not_modified(opaque: str, last_modified: datetime | None) -> bool:
    """RFC 9110 §13.2.2: If-None-Match (weak comparison) decides when present,
    otherwise If-Modified-Since (at the one-second precision of HTTP dates)."""
    if "If-None-Match" in request.headers:
        return request.if_none_match.contains_weak(opaque)
    since = request.if_modified_since
    if since is None or last_modified is None:
        return False
    return last_modified.replace(microsecond=0) <= since


def _static(body: bytes, content_type: str, negotiated: bool) -> Response:
    """A document that changes only with a release: strong ETag, long cache."""
    opaque = hashlib.sha256(body).hexdigest()[:20]
    headers = {"ETag": f'"{opaque}"', "Cache-Control": STATIC_CACHE,
               "Access-Control-Allow-Origin": "*"}
    if negotiated:
        headers["Vary"] = "Accept"
    if "If-None-Match" in request.headers and request.if_none_match.contains_weak(opaque):
        return Response(status=304, headers=headers)
    return Response(body, headers=headers, content_type=content_type)


@cache
def _context_bytes() -> bytes:
    return json.dumps(context(), ensure_ascii=False, indent=2).encode("utf-8")


@cache
def _namespace_bytes(format_name: str) -> bytes:
    graph = Graph(bind_namespaces="core")
    for source in (ontology(), schemes()):
        for prefix, namespace in source.namespaces():
            graph.bind(prefix, namespace, override=False)
        graph += source
    return graph.serialize(format=_RDFLIB_FORMATS[format_name], encoding="utf-8")
