"""The index's entry URL and catalog, so another index can register and harvest it.

Registered only in INDEX_MODE. ``/index`` (and ``/index/``) describes the index for
machines (RDF by content negotiation: Turtle by default, N-Triples, JSON-LD, RDF/XML;
`exports.index.index_graph`) and sends people (an Accept that prefers HTML) to the search
page with a 303. ``/index/catalog`` is its DCAT-AP.de catalog
(`exports.index.index_catalog_graph`). Both read the facts from the configuration, the
source registry and the change journal (harvesters/journal.py), never from the store.

Aggregated sources: every registered source harvested directly, and the origins of every
trusted index source (as fixed at its registration), so an index harvesting this one
learns the ORIGINAL sources, whatever chain they came through.
"""

from __future__ import annotations

from flask import Blueprint, Flask, Response, current_app, redirect, request, url_for

import exports
from exports.index import IndexInfo, OriginInfo, index_catalog_graph, index_graph
from exports.node import NodeInfo
from harvesters.sources import origins_of
from vocab import VOCAB_VERSION

from . import __version__
from .catalog import choose_rdf_format, rdf_response
from .index import harvest_settings
from .index_feed import open_journal

__all__ = ["bp", "index_info"]

bp = Blueprint("index_entry", __name__)


def index_info(app: Flask | None = None) -> IndexInfo:
    """What the index says about itself (module docstring)."""
    app = app or current_app
    config = app.config
    settings = harvest_settings(app)
    node = NodeInfo(
        base=f"{config['BASE_URL']}/index", name=config["NODE_NAME"],
        description=str(config.get("NODE_DESCRIPTION") or ""), license=config["LICENSE"],
        contact_email=config["CONTACT_EMAIL"], publisher_name=config["PUBLISHER_NAME"],
        publisher_url=config["PUBLISHER_URL"], software_version=__version__,
        vocab_version=VOCAB_VERSION, mode="index")
    counts, modified = {}, None
    journal = open_journal(app)
    if journal is not None:
        try:
            counts = journal.counts()
            latest = journal.latest_seq()
            newest = journal.entries_between(latest, latest) if latest else []
            modified = newest[0].published if newest else None
        finally:
            journal.close()
    origins: dict[str, OriginInfo] = {}
    for source in sorted(settings.registry().all(), key=lambda s: s.id):
        if source.kind == "index":
            items = [(o.entry_url, o.uri_space, o.name) for o in origins_of(source).values()]
        else:
            items = [(source.entry_url, source.uri_space, source.name)]
        for entry, space, name in items:
            origins.setdefault(entry, OriginInfo(entry, space, name, counts.get(entry, 0)))
    return IndexInfo(node, tuple(origins[k] for k in sorted(origins)), modified)


@bp.get("/index")
@bp.get("/index/")
def entry():
    """The index's self-description (RDF), or for a browser the search page."""
    accept = request.headers.get("Accept") or ""
    if request.args.get("format") is None and accept.strip() not in ("", "*/*"):
        best = exports.negotiate(accept, ["html", "turtle", "ntriples", "jsonld", "rdfxml"])
        if best is not None and best.name == "html":
            response = redirect(url_for("index.search"), code=303)
            response.vary.add("Accept")
            return response
    return _describe("entry", index_graph)


@bp.get("/index/catalog")
def catalog():
    """The DCAT-AP.de catalog: one dataset per aggregated source."""
    return _describe("catalog", index_catalog_graph)


def _describe(name: str, build) -> Response:
    fmt, negotiated = choose_rdf_format(None)
    info = index_info()
    return rdf_response(fmt, negotiated, info, name, lambda: build(info))
