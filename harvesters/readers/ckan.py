"""Read a DCAT catalog of a CKAN-style portal: each dcat:Dataset becomes an index entry.

Why: portals such as GovData publish what they hold as DCAT (ckanext-dcat's catalog
endpoint, ``/catalog.ttl``), not as an Atlas feed; the index lists their datasets next to
the nodes' entities (issue 5 item 4).

How: the catalog URL is option ``catalog_url`` (default: ``source.entry_url``). Each page is
fetched with `Fetcher` and parsed by `harvesters.parse` (Turtle, N-Triples, JSON-LD with
bundled contexts only; RDF/XML only with option ``allow_rdfxml``, never with a DTD).
Pages are followed through ``hydra:next`` (Hydra Core: the ``hydra:PartialCollectionView``
ckanext-dcat writes; also the older ``hydra:nextPage``) with a visited set, only on the
catalog's origin and at most option ``max_pages`` pages. Statements about subjects outside
``source.uri_space`` are dropped and counted (`checks.split_by_authority`).

A member per dataset: entity = the dataset IRI (inside the URI space); triples = its own
statements, those of the blank nodes it reaches, and those of the resources it points to
inside the URI space that are not datasets, catalogs or data services themselves
(distributions, contact points, publishers: one hop). ``timestamp`` = its dct:modified.

The catalog is a snapshot (model.py): pages share a ``snapshot`` id, the last one has
``full_replace``. Cursor ``{"v": 1, "reader": "ckan", "catalog": {"url", "etag",
"last_modified", "pages"}}``: a single-page catalog is fetched conditionally next time
(304: no pages); a paged one is read in full, since one page's validators say nothing
about the others. Intermediate pages carry the starting cursor: an interrupted read starts over.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator

import pyoxigraph as ox

from vocab.namespaces import DCAT, DCTERMS, RDF

from ..checks import closure, in_uri_space, split_by_authority
from ..errors import HarvestError
from ..fetch import Fetcher
from ..model import Member, Page, Source
from ..parse import parse_rdf
from ._shared import add_dropped, last_marked, new_snapshot, option, parse_limits, same_origin

__all__ = ["read_ckan"]

HYDRA = "http://www.w3.org/ns/hydra/core#"
_NEXT = {HYDRA + "next", HYDRA + "nextPage"}
_TYPE, _MODIFIED = ox.NamedNode(str(RDF.type)), ox.NamedNode(str(DCTERMS.modified))
_DATASET = ox.NamedNode(str(DCAT.Dataset))
_NOT_PARTS = {ox.NamedNode(str(c)) for c in (DCAT.Dataset, DCAT.Catalog, DCAT.DataService)}
ACCEPT = "text/turtle, application/n-triples;q=0.9, application/ld+json;q=0.8"


def read_ckan(source: Source, cursor: dict | None, fetcher: Fetcher) -> Iterator[Page]:
    """The datasets of the source's DCAT catalog as one snapshot (module docstring)."""
    url = option(source, "catalog_url", source.entry_url)
    cursor = cursor or {}
    saved = cursor.get("catalog") if cursor.get("reader") == "ckan" else None
    single = isinstance(saved, dict) and saved.get("url") == url and saved.get("pages") == 1
    snapshot = new_snapshot("ckan")
    first: dict = {}
    count = 0

    def pages() -> Iterator[Page]:
        nonlocal count
        limits, allow_xml = parse_limits(source), bool(option(source, "allow_rdfxml", False))
        accept = ACCEPT + (", application/rdf+xml;q=0.3" if allow_xml else "")
        max_pages = int(option(source, "max_pages", 1000))
        visited: set[str] = set()
        next_url: str | None = url
        while next_url:
            if len(visited) >= max_pages:
                raise HarvestError(f"more than {max_pages} catalog pages (option max_pages)",
                                   reason="too-many-pages")
            visited.add(next_url)
            conditional = single and not count
            resp = fetcher.fetch(next_url, accept=accept,
                                 etag=saved.get("etag") if conditional else None,
                                 last_modified=saved.get("last_modified") if conditional else None)
            if resp.not_modified:
                return
            if not count:
                first.update(etag=resp.etag, last_modified=resp.last_modified)
            count += 1
            triples = parse_rdf(resp.body, resp.headers.get("content-type"),
                                base_iri=resp.url, limits=limits, allow_rdfxml=allow_xml)
            page = Page(next_url, [], dict(cursor), snapshot=snapshot)
            next_url = None
            for target in _next_pages(triples):
                if not same_origin(target, url):
                    page.rejected.append(f"hydra:next {target} ignored (another origin)")
                elif target in visited:
                    page.rejected.append(f"hydra:next {target} was read already (loop)")
                else:
                    next_url = target
                    break
            accepted, dropped = split_by_authority(triples, source.uri_space)
            page.members = _datasets(accepted, source.uri_space)
            add_dropped(page, dropped)
            yield page

    for page, last in last_marked(pages()):
        if last:
            page.full_replace = True
            page.cursor = {"v": 1, "reader": "ckan",
                           "catalog": {"url": url, "pages": count, **first}}
        yield page


def _next_pages(triples: list[ox.Triple]) -> list[str]:
    """hydra:next targets in document order, whatever their subject: ckanext-dcat names
    the view by the page URL with its query, which may differ from the one requested."""
    return list(dict.fromkeys(t.object.value for t in triples if t.predicate.value in _NEXT
                              and type(t.object) is ox.NamedNode))


def _datasets(triples: list[ox.Triple], uri_space: str) -> list[Member]:
    by_subject: dict = defaultdict(list)
    for t in triples:
        by_subject[t.subject].append(t)
    types = {s: {t.object for t in ts if t.predicate == _TYPE} for s, ts in by_subject.items()}
    members = []
    for subject, statements in by_subject.items():
        if type(subject) is not ox.NamedNode or _DATASET not in types[subject]:
            continue
        parts = {t.object for t in statements if type(t.object) is ox.NamedNode
                 and t.object != subject and in_uri_space(t.object.value, uri_space)
                 and not (types.get(t.object, set()) & _NOT_PARTS)}
        own = closure([subject, *sorted(parts, key=str)], by_subject)
        modified = next((t.object.value for t in statements if t.predicate == _MODIFIED
                         and type(t.object) is ox.Literal), None)
        members.append(Member(subject.value, None, modified, False, own))
    return members
