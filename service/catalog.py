"""Discovery documents for harvesters and CKAN portals: /catalog and /.well-known/void.

Both are built by `exports` from one `exports.node.NodeInfo` that `node_info`
gathers here (configuration, counts, dates, dumps, peers); the entry URL
(`service.public.home`) describes the node from the same facts. Turtle is
the default; RDF/XML, JSON-LD and N-Triples by content negotiation (RFC 9110
§12.5.1, decided by `exports.negotiate`), ``?format=`` or an extension
(``/catalog.ttl``). Responses carry a weak ETag and Last-Modified and answer
conditional requests with 304.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Any

from flask import Blueprint, Flask, Response, current_app, g, request
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from werkzeug.http import http_date

import exports
from exports.dcat import catalog_graph
from exports.index import IndexInfo
from exports.node import (
    CollectionInfo,
    DumpLink,
    NodeInfo,
    PeerInfo,
    rdf_format_names,
    serialize,
)
from exports.void import void_graph
from vocab import ENTITIES, VOCAB_VERSION, to_graph

from . import __version__, changes, db, dumps
from .errors import NotAcceptable
from .models import Change, EntityRow, Peer
from .store import EntityState

__all__ = ["bp", "choose_rdf_format", "info_digest", "node_info", "rdf_response"]

bp = Blueprint("catalog", __name__)

# Catalogs are re-read by portals every few hours; a minute of staleness is harmless
# and the ETag keeps revalidation cheap (as for pages).
CACHE = "public, max-age=60"
_TRIPLE_BATCH = 500


@bp.get("/catalog")
@bp.get("/catalog.<ext>")
def catalog(ext: str | None = None):
    """The DCAT-AP.de catalog of this node."""
    fmt, negotiated = choose_rdf_format(ext)
    info = node_info(current_app, db.session())
    return rdf_response(fmt, negotiated, info, "catalog", lambda: catalog_graph(info))


@bp.get("/.well-known/void")
def void_description():
    """The VoID description: URI space, endpoint, dumps, statistics, subsets."""
    fmt, negotiated = choose_rdf_format(None)
    session = db.session()
    info = node_info(current_app, session, triples=True)
    return rdf_response(fmt, negotiated, info, "void", lambda: void_graph(info))


# --------------------------------------------------------------------------- facts


def node_info(app: Flask, session: Session, *, triples: bool = False) -> NodeInfo:
    """What this node says about itself, from its configuration and its tables.

    ``triples`` adds the number of statements per collection (for VoID), computed
    from the mapping of every live record and cached until the next change.
    """
    config = app.config
    base = config["BASE_URL"]
    counts: dict[str, int] = dict(session.execute(
        select(EntityRow.kind, func.count()).where(EntityRow.deleted.is_(None))
        .group_by(EntityRow.kind)).all())
    # Deletions count as changes: tombstones keep the time of deletion as "modified".
    newest = {kind: _utc(value) for kind, value in session.execute(
        select(EntityRow.kind, func.max(EntityRow.modified)).group_by(EntityRow.kind)).all()}
    counted = _triple_counts(app, session) if triples else {}
    collections = tuple(
        CollectionInfo(collection=spec.collection, kind=kind, entities=counts.get(kind, 0),
                       modified=newest.get(kind), triples=counted.get(kind))
        for kind, spec in ENTITIES.items())
    first = _utc(session.scalar(select(func.min(Change.at))))
    return NodeInfo(
        base=base,
        name=config["NODE_NAME"],
        description=str(config["NODE_DESCRIPTION"] or ""),
        city=config["CITY"],
        municipality_key=str(config["MUNICIPALITY_KEY"] or ""),
        wikidata=str(config["WIKIDATA"] or ""),
        license=config["LICENSE"],
        contact_email=config["CONTACT_EMAIL"],
        publisher_name=config["PUBLISHER_NAME"],
        publisher_url=config["PUBLISHER_URL"],
        contributor_id=config["CONTRIBUTOR_ID"],
        modified=changes.last_change_at(session),
        issued=first,
        collections=collections,
        dumps=_dumps(app),
        peers=tuple(PeerInfo(p.id, p.url, p.kind, p.name)
                    for p in session.scalars(select(Peer).order_by(Peer.id))),
        software_version=__version__,
        vocab_version=VOCAB_VERSION,
    )


def info_digest(info: NodeInfo | IndexInfo, *parts: Any) -> str:
    """An opaque validator of everything a description states (and ``parts``)."""
    text = json.dumps([repr(info), parts], default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:20]


def _dumps(app: Flask) -> tuple[DumpLink, ...]:
    """The dump files, with size and date of the latest build when it is current."""
    links = []
    for item in dumps.dump_info(app):
        fmt = exports.get(item.format)
        links.append(DumpLink(
            collection=item.collection, extension=fmt.extensions[0], url=item.url,
            byte_size=item.byte_size if item.fresh else None,
            modified=item.modified if item.fresh else None))
    return tuple(links)


def _triple_counts(app: Flask, session: Session) -> dict[str, int]:
    """Statements per kind in the mapping of all live records, cached by change seq.

    The count is what a dump contains (nested fragment nodes included). It costs one
    pass over the live records, done once per change of the data and process.
    """
    seq = changes.latest_seq(session)
    cached = app.extensions.get("atlas_triple_counts")
    if cached is not None and cached[0] == (seq, app.config["BASE_URL"]):
        return cached[1]
    base = app.config["BASE_URL"]
    counts = dict.fromkeys(ENTITIES, 0)
    rows = session.execute(select(EntityRow).where(EntityRow.deleted.is_(None))
                           .execution_options(yield_per=_TRIPLE_BATCH))
    for row in rows.scalars():
        counts[row.kind] += len(to_graph(row.kind, EntityState.from_row(row).record, base))
    app.extensions["atlas_triple_counts"] = ((seq, base), counts)
    return counts


def _utc(value: datetime | str | None) -> datetime | None:
    if isinstance(value, str):  # SQLite's max() over DATETIME answers with text
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=UTC) if value and value.tzinfo is None else value


# --------------------------------------------------------------------------- responses


def choose_rdf_format(ext: str | None) -> tuple[exports.Format, bool]:
    """The RDF format of a discovery document and whether it was negotiated.

    Extension first, then ``?format=``, then Accept. Turtle is the default: for no
    Accept header and for wildcards (a browser's ``*/*``); a format the client
    names explicitly wins. Raises NotAcceptable (406).
    """
    names = [f.name for f in exports.formats() if f.name in rdf_format_names()]
    g.atlas_format = "turtle"  # errors raised later answer as problem+json, not HTML
    chosen = ext if ext is not None else request.args.get("format")
    if chosen is not None:
        fmt = exports.get(chosen)
        if fmt is None or fmt.name not in names or (ext is not None
                                                     and ext.lower() not in fmt.extensions):
            raise _not_acceptable(f"unknown format {chosen!r}", names)
        return fmt, False
    accept = request.headers.get("Accept")
    fmt = exports.negotiate(accept, names)
    if fmt is None:
        error = _not_acceptable("none of the available media types is acceptable", names)
        error.headers["Vary"] = "Accept"
        raise error
    named = {r.split(";", 1)[0].strip().lower() for r in (accept or "").split(",")}
    if fmt.name != "turtle" and not named & set(fmt.media_types) \
            and exports.negotiate(accept, ["turtle"]) is not None:
        fmt = exports.get("turtle")
    return fmt, True


def _not_acceptable(detail: str, names: list[str]) -> NotAcceptable:
    formats = [exports.get(n) for n in names]
    return NotAcceptable(detail, formats=names, media_types=[f.media_types[0] for f in formats],
                         extensions=[f.extensions[0] for f in formats])


def rdf_response(fmt: exports.Format, negotiated: bool, info: NodeInfo | IndexInfo, name: str,
                 build) -> Response:
    """The document in ``fmt`` with validators, or 304 when the client's copy is current."""
    opaque = info_digest(info, name, fmt.name)
    headers = {"ETag": f'W/"{opaque}"', "Cache-Control": CACHE,
               "Access-Control-Allow-Origin": "*"}
    if info.modified is not None:
        headers["Last-Modified"] = http_date(info.modified)
    if negotiated:
        headers["Vary"] = "Accept"
    # RFC 9110 §13.2.2: If-None-Match decides when present, else If-Modified-Since.
    if "If-None-Match" in request.headers:
        fresh = request.if_none_match.contains_weak(opaque)
    else:
        since = request.if_modified_since
        fresh = bool(since and info.modified and info.modified.replace(microsecond=0) <= since)
    if fresh:
        return Response(status=304, headers=headers)
    return Response(serialize(build(), fmt.name), headers=headers,
                    content_type=exports.content_type(fmt))
