"""Readers against small hostile or foreign servers on 127.0.0.1 (no node process).

Feeds whose pages link in a cycle or without end, links to other hosts, catalogs whose
hydra:next loops, CSV files with bad rows, dumps in foreign order and gzip bombs.
"""

from __future__ import annotations

import gzip

import pytest

from harvesters.errors import HarvestError, ResponseTooLarge
from harvesters.model import Source
from harvesters.readers import read_ckan, read_csv, read_dump, read_feed
from harvesters.validation import check_entities

from .test_fetch import reply, serve
from .test_readers_support import CountingFetcher

NT = {"Content-Type": "application/n-triples"}
TREE, LDES = "https://w3id.org/tree#", "https://w3id.org/ldes#"
RDF_TYPE = "<http://www.w3.org/1999/02/22-rdf-syntax-ns#type>"
ACTOR = "<https://w3id.org/engagement-atlas/ns#Actor>"
NAME = "<https://schema.org/name>"


def member(base: str, entity: str, n: int, when: str, name: str) -> str:
    v = f"{base}/actors/{entity}/versions/{n}"
    return (f"<{base}/feed> <{TREE}member> <{v}> .\n"
            f"<{v}> <http://purl.org/dc/terms/isVersionOf> <{base}/actors/{entity}> .\n"
            f'<{v}> <http://www.w3.org/ns/prov#generatedAtTime> "{when}"^^'
            f"<http://www.w3.org/2001/XMLSchema#dateTime> .\n"
            f"<{v}> {RDF_TYPE} {ACTOR} .\n<{v}> {NAME} \"{name}\"@de .\n")


def relation(page: str, target: str, name: str) -> str:
    r = f"{page}#{name}"
    return (f"<{page}> <{TREE}relation> <{r}> .\n<{r}> {RDF_TYPE} <{TREE}Relation> .\n"
            f"<{r}> <{TREE}node> <{target}> .\n")


def static(documents: dict[str, str]):
    """A handler serving fixed N-Triples documents with ETags (304 on a match)."""
    def handle(h):
        body = documents.get(h.path)
        if body is None:
            reply(h, 404)
            return
        etag = f'"{hash(body) & 0xffffffff:x}"'
        if h.headers.get("If-None-Match") == etag:
            reply(h, 304, b"", {"ETag": etag})
            return
        reply(h, 200, body.encode(), {**NT, "ETag": etag, "Cache-Control": "max-age=60"})
    return handle


def feed_source(base: str, **options) -> Source:
    return Source("s", base + "/", base + "/", base + "/feed", None, options=options)


def test_a_paging_cycle_ends_and_each_page_is_read_once():
    docs: dict[str, str] = {}
    with serve(static(docs)) as srv:
        b = srv.url
        docs["/feed"] = (f"<{b}/feed> {RDF_TYPE} <{LDES}EventStream> .\n"
                         f"<{b}/feed> <{TREE}view> <{b}/root> .\n")
        docs["/root"] = relation(f"{b}/root", f"{b}/a", "r1")
        docs["/a"] = (relation(f"{b}/a", f"{b}/b", "r2")
                      + member(b, "a1", 1, "2025-01-01T10:00:00Z", "A"))
        docs["/b"] = (relation(f"{b}/b", f"{b}/a", "r3") + relation(f"{b}/b", f"{b}/root", "r4")
                      + relation(f"{b}/b", "http://elsewhere.example/x", "r5")
                      + member(b, "b1", 1, "2025-01-01T11:00:00Z", "B"))
        fetcher = CountingFetcher()
        pages = list(read_feed(feed_source(b), None, fetcher))
        assert sorted(url for url, _s in fetcher.log) == sorted(
            f"{b}{p}" for p in ("/feed", "/root", "/a", "/b"))
        assert [m.entity for p in pages for m in p.members] == [f"{b}/actors/a1",
                                                                f"{b}/actors/b1"]
        assert any("http://elsewhere.example/x" in r and "another origin" in r
                   for p in pages for r in p.rejected)
        loops = sorted(r for p in pages for r in p.rejected if "paging loop" in r)
        assert [r.split(" not followed")[0] for r in loops] == [
            f"{b}/b: link to {b}/a", f"{b}/b: link to {b}/root"]
        cursor = pages[-1].cursor
        assert cursor["complete"] and pages[-1].full_replace  # a first walk is a snapshot
        fetcher.log.clear()  # resumed: every page is polled once more, all unchanged
        assert list(read_feed(feed_source(b), cursor, fetcher)) == []
        assert sorted(fetcher.log) == sorted((f"{b}{p}", 304)
                                             for p in ("/feed", "/root", "/a", "/b"))
        docs["/b"] += member(b, "b1", 2, "2025-01-01T12:00:00Z", "B2")
        more = list(read_feed(feed_source(b), cursor, fetcher))
        assert [(m.entity, m.version) for p in more for m in p.members] == [
            (f"{b}/actors/b1", f"{b}/actors/b1/versions/2")]


def test_a_walk_stopped_half_way_resumes_without_repeating_members():
    docs: dict[str, str] = {}
    with serve(static(docs)) as srv:
        b = srv.url
        docs["/feed"] = f"<{b}/feed> <{TREE}view> <{b}/root> .\n"
        docs["/root"] = (relation(f"{b}/root", f"{b}/a", "a")
                         + relation(f"{b}/root", f"{b}/b", "b"))
        docs["/a"] = member(b, "x", 1, "2025-01-01T10:00:00Z", "X")
        docs["/b"] = member(b, "y", 1, "2025-01-01T11:00:00Z", "Y")
        source, fetcher = feed_source(b), CountingFetcher()
        first = list(read_feed(source, None, fetcher))
        # a first walk is a snapshot: unfinished, it would start over
        assert [p.cursor.get("state") for p in first] == ["snapshot", None]
        docs["/a"] += member(b, "x", 2, "2025-01-02T10:00:00Z", "X2")
        docs["/b"] += member(b, "y", 2, "2025-01-02T11:00:00Z", "Y2")
        second = list(read_feed(source, first[-1].cursor, fetcher))
        assert [p.url for p in second] == [f"{b}/a", f"{b}/b"]
        assert second[0].cursor["complete"] is False
        # the run stopped after applying page a: the next one yields only what b added
        resumed = list(read_feed(source, second[0].cursor, fetcher))
        assert [m.version for p in resumed for m in p.members] == [f"{b}/actors/y/versions/2"]
        assert resumed[-1].cursor["complete"] is True


def test_an_endless_chain_of_pages_stops_at_the_page_cap():
    def handle(h):
        n = int(h.path.rsplit("/", 1)[1] or 0) if h.path.startswith("/p/") else 0
        page = f"{srv.url}/p/{n}"
        reply(h, 200, relation(page, f"{srv.url}/p/{n + 1}", "next").encode(), NT)

    with serve(handle) as srv:
        source = Source("s", srv.url + "/", srv.url + "/", srv.url + "/p/0", None,
                        options={"max_pages": 25})
        with pytest.raises(HarvestError) as err:
            list(read_feed(source, None, CountingFetcher()))
        assert err.value.reason == "too-many-pages"
        assert len(srv.seen) == 25


DCAT_PAGE = """@prefix dcat: <http://www.w3.org/ns/dcat#> .
@prefix dct: <http://purl.org/dc/terms/> .
@prefix hydra: <http://www.w3.org/ns/hydra/core#> .
<{b}/catalog> a dcat:Catalog ; dcat:dataset <{b}/dataset/{d}> .
<{b}/dataset/{d}> a dcat:Dataset ; dct:title "Datensatz {d}"@de ;
    dct:modified "2025-02-01T00:00:00Z" ; dcat:distribution <{b}/dataset/{d}/csv> ;
    dcat:contactPoint [ <http://www.w3.org/2006/vcard/ns#fn> "Amt {d}" ] .
<{b}/dataset/{d}/csv> a dcat:Distribution ; dcat:downloadURL <{b}/files/{d}.csv> .
<http://other.example/dataset/{d}> a dcat:Dataset ; dct:title "Fremd" .
<{b}/catalog?page={n}> a hydra:PartialCollectionView ; hydra:next <{b}/catalog?page={next}> .
"""


def test_a_catalog_with_a_hydra_loop_is_read_once():
    def handle(h):
        n = 2 if h.path.endswith("page=2") else 1
        body = DCAT_PAGE.format(b=srv.url, d=f"d{n}", n=n, next=1 if n == 2 else 2)
        reply(h, 200, body.encode(), {"Content-Type": "text/turtle", "ETag": '"x"'})

    with serve(handle) as srv:
        source = Source("ckan", srv.url + "/catalog?page=1", srv.url + "/", None, None,
                        kind="ckan")
        pages = list(read_ckan(source, None, CountingFetcher()))
        assert len(srv.seen) == 2 and [p.full_replace for p in pages] == [False, True]
        assert len({p.snapshot for p in pages}) == 1
        members = {m.entity: m for p in pages for m in p.members}
        assert sorted(members) == [f"{srv.url}/dataset/d1", f"{srv.url}/dataset/d2"]
        d1 = members[f"{srv.url}/dataset/d1"]
        assert d1.timestamp == "2025-02-01T00:00:00Z"
        values = {t.object.value for t in d1.triples}
        assert {"Datensatz d1", f"{srv.url}/files/d1.csv", "Amt d1"} <= values
        assert all(p.dropped == 2 and "http://other.example/dataset/" in p.examples[0]
                   for p in pages)
        assert any("loop" in r for r in pages[-1].rejected)
        # a paged catalog is read in full every time (one page's ETag says nothing of the rest)
        assert len(list(read_ckan(source, pages[-1].cursor, CountingFetcher()))) == 2


CSV = ("ID,Name,Webseite,Typ\n"
       "1,Nachbarschaftshilfe,https://nh.example,Verein\n"
       '2,Tafel,https://tafel.example,"Verein; Stiftung"\n'
       "3,,https://leer.example,Verein\n"
       "bad id,Ungültig,,Verein\n"
       "1,Doppelt,,Verein\n"
       "4,Kulturbüro,nicht-url,Verein\n")
MAPPING = {"id": "ID", "name@de": "Name", "url": "Webseite", "actorTypes": "Typ"}


def test_a_csv_file_with_a_column_mapping():
    def handle(h):
        if h.headers.get("If-None-Match") == '"c1"':
            reply(h, 304, b"", {"ETag": '"c1"'})
        else:
            reply(h, 200, CSV.encode(), {"Content-Type": "text/csv", "ETag": '"c1"'})

    with serve(handle) as srv:
        source = Source("city", srv.url + "/vereine.csv", srv.url + "/atlas/", None, None,
                        kind="csv", options={"kind": "actor", "columns": MAPPING,
                                             "values": {"actorTypes": {"Verein": "verein",
                                                                       "Stiftung": "foundation"}},
                                             "base": srv.url + "/atlas"})
        pages = list(read_csv(source, None, CountingFetcher()))
        assert len(pages) == 1 and pages[0].full_replace and pages[0].snapshot
        members = {m.entity: m for m in pages[0].members}
        assert sorted(members) == [f"{srv.url}/atlas/actors/1", f"{srv.url}/atlas/actors/2"]
        assert [r.split(":")[0] for r in pages[0].rejected] == ["row 4", "row 5", "row 6",
                                                                 "row 7"]
        assert "name" in pages[0].rejected[0] and "occurs more than once" in pages[0].rejected[2]
        verdicts = check_entities({e: m.triples for e, m in members.items()})
        assert all(v.accepted for v in verdicts.values())
        names = {t.object.value for t in members[f"{srv.url}/atlas/actors/2"].triples}
        assert {"Tafel", "https://tafel.example",
                "https://w3id.org/engagement-atlas/ns/actor-type/foundation"} <= names
        assert list(read_csv(source, pages[0].cursor, CountingFetcher())) == []  # 304
        broken = Source("city", source.entry_url, source.uri_space, None, None, kind="csv",
                        options={**source.options, "columns": {"id": "ID", "url": "Typ"}})
        with pytest.raises(HarvestError) as err:  # a mapping that fits no row empties nothing
            list(read_csv(broken, None, CountingFetcher()))
        assert err.value.reason == "csv-no-valid-rows"


def test_a_dump_in_foreign_order_is_regrouped_on_disk():
    def entity(b, n, name):
        return f"<{b}/actors/{n}> {RDF_TYPE} {ACTOR} .\n<{b}/actors/{n}> {NAME} \"{name}\"@de .\n"

    def handle(h):
        b = srv.url
        text = (entity(b, "a", "A") + entity(b, "b", "B")
                + f"<{b}/actors/a#geo> <https://schema.org/latitude> \"51.0\" .\n"
                + f"<{b}/actors/b> <https://schema.org/address> _:x .\n"
                + "_:x <https://schema.org/postalCode> \"01067\" .\n"
                + f"<http://other.example/actors/z> {NAME} \"Z\" .\n")
        reply(h, 200, gzip.compress(text.encode()), {"Content-Type": "application/gzip"})

    with serve(handle) as srv:
        source = Source("d", srv.url + "/", srv.url + "/", None, srv.url + "/dumps/all.nt.gz")
        pages = list(read_dump(source, None, CountingFetcher()))
        assert len(srv.seen) == 2  # read once grouped, then again sorted on disk
        members = {m.entity: m for p in pages for m in p.members}
        assert sorted(members) == [f"{srv.url}/actors/a", f"{srv.url}/actors/b"]
        assert {t.object.value for t in members[f"{srv.url}/actors/a"].triples} >= {"A", "51.0"}
        assert {t.object.value for t in members[f"{srv.url}/actors/b"].triples} >= {"B", "01067"}
        assert pages[-1].full_replace and sum(p.dropped for p in pages) == 1


def test_a_gzip_bomb_dump_stops_at_the_inflated_cap():
    bomb = gzip.compress(b"# " + b"0" * (8 << 20))

    with serve(lambda h: reply(h, 200, bomb, {"Content-Type": "application/gzip"})) as srv:
        source = Source("d", srv.url + "/", srv.url + "/", None, srv.url + "/dumps/all.nt.gz",
                        options={"dump_max_inflated": 1 << 20})
        with pytest.raises(ResponseTooLarge) as err:
            list(read_dump(source, None, CountingFetcher()))
        assert err.value.reason == "too-large-decompressed"
