"""The index's own feed, entry description and catalog (service/index_feed.py, index_entry.py).

Built for real: harvesters.pipeline loads two sources (one directly, one through a trusted
index) into an OxigraphStore and writes the change journal; the app in INDEX_MODE serves
the journal. What must hold: the feed has the node feed's shape; members keep the ORIGINAL
entity IRIs and sources; another index's reader maps the members back to graphs equal to
the index's own; compaction never makes a page immutable and a compacted member is 410;
validators answer 304; the entry states what registration needs; the catalog conforms to
the DCAT-AP.de shapes the node's catalog is tested with.
"""

from __future__ import annotations

from pathlib import Path

import pyoxigraph as ox
import pytest
from pyshacl import validate
from rdflib import Graph, Literal, URIRef

from harvesters.checks import split_by_authority
from harvesters.journal import Journal
from harvesters.model import Member, Origin, Page, Source
from harvesters.parse import parse_rdf
from harvesters.pipeline import harvest
from harvesters.readers.index import index_members
from harvesters.settings import HarvestSettings
from harvesters.sources import origins_of
from harvesters.store import OxigraphStore
from service import create_app
from vocab import to_graph
from vocab.namespaces import DCAT, LDES, PROV, RDF, TREE

A, C = "http://a.test", "http://c.test"
BASE = "http://idx.test"
UPSTREAM = "http://up.test/index"
NT = "application/n-triples"
SHAPES = Path(__file__).parents[1] / "exports" / "dcat_ap_de_mandatory.ttl"


def member(base: str, n: int, name: str, *, version: int = 1, deleted: bool = False,
           origin: Origin | None = None) -> Member:
    entity = f"{base}/actors/a{n}"
    record = {"id": f"a{n}", "name": {"de": name}, "actorTypes": ["verein"], "status": "active",
              "address": {"addressLocality": "Halle", "postalCode": "06108"}}
    data = to_graph("actor", record, base).serialize(format="nt", encoding="utf-8")
    state = [] if deleted else parse_rdf(data, NT, base_iri=None)
    return Member(entity, f"{entity}/versions/{version}", "2026-01-01T10:00:00Z", deleted,
                  state, origin)


@pytest.fixture
def index(tmp_path):
    """Index at BASE: source a.test directly; c.test through the trusted index UPSTREAM."""
    path = tmp_path / "index"
    settings = HarvestSettings.from_mapping({"INDEX_STORE": str(path)})
    direct = Source("a.test", A + "/", A + "/", A + "/feed", None, name="Knoten A")
    via = Source("up.test-index", UPSTREAM, "http://up.test/index/", UPSTREAM + "/feed", None,
                 kind="index", name="Upstream", options={"origins": [
                     {"entry_url": C + "/", "uri_space": C + "/", "name": "Knoten C"}]})
    settings.registry().add(direct)
    settings.registry().add(via)
    c_origin = Origin(C + "/", C + "/", "Knoten C", f"{C}/actors/a1/versions/7")
    with OxigraphStore(path) as store, Journal(settings.journal_path) as journal:
        assert harvest(direct, [Page(A + "/feed/1", [member(A, 1, "Eins"), member(A, 2, "Zwei"),
                                                     member(A, 3, "Drei")], {"p": 1})],
                       store, journal=journal).ok
        assert harvest(via, [Page(UPSTREAM + "/feed/1", [member(C, 1, "Cee", origin=c_origin)],
                                  {"p": 1})], store, journal=journal).ok
        assert harvest(direct, [Page(A + "/feed/1", [
            member(A, 1, "Eins neu", version=2), member(A, 3, "", version=2, deleted=True)],
            {"p": 2})], store, journal=journal).ok
        graphs = {}
        for row in store.query("SELECT ?g ?s ?p ?o WHERE { GRAPH ?g { ?s ?p ?o } "
                               "FILTER(!STRSTARTS(STR(?g), 'urn:')) }"):
            graphs.setdefault(row["g"].value, []).append(
                ox.Triple(row["s"], row["p"], row["o"]))
    app = create_app({"TESTING": True, "INDEX_MODE": True, "INDEX_STORE": str(path),
                      "BASE_URL": BASE, "FEED_PAGE_SIZE": 2, "NODE_NAME": "Test-Index",
                      "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}"})
    return app.test_client(), graphs


def parse(response) -> list[ox.Triple]:
    assert response.status_code == 200, response.data
    return parse_rdf(response.data, response.headers["Content-Type"], base_iri=None)


def test_feed_pages_publish_latest_members_with_original_sources(index):
    client, graphs = index
    stream = Graph().parse(data=client.get("/index/feed").data, format="turtle")
    root = URIRef(BASE + "/index/feed/root")
    assert (URIRef(BASE + "/index/feed"), TREE.view, root) in stream
    policy = next(stream.objects(root, LDES.retentionPolicy))
    assert (policy, RDF.type, LDES.LatestVersionSubset) in stream
    # Entries: 1 a1, 2 a2, 3 a3, 4 c1, 5 a1 (new), 6 a3 deleted; compaction left 2, 4, 5, 6.
    members = {}
    for number in (1, 2, 3):
        response = client.get(f"/index/feed/{number}", headers={"Accept": NT})
        assert "immutable" not in response.headers["Cache-Control"]
        page = parse(response)
        assert not any(t.predicate.value == str(LDES.immutable) for t in page)
        for t in page:
            if t.predicate.value == str(TREE.member):
                members[t.object.value.rsplit("/", 1)[1]] = page
    assert sorted(members, key=int) == ["2", "4", "5", "6"]
    assert client.get("/index/feed/4").status_code == 200  # the page filling next (empty)
    assert client.get("/index/feed/5").status_code == 404

    def about(seq: str, predicate) -> set[str]:
        iri = ox.NamedNode(f"{BASE}/index/feed/members/{seq}")
        return {t.object.value for t in members[seq] if t.subject == iri
                and t.predicate.value == str(predicate)}

    assert about("4", "http://purl.org/dc/terms/isVersionOf") == {f"{C}/actors/a1"}
    assert about("4", PROV.wasDerivedFrom) == {C + "/"}  # the original source, not UPSTREAM
    assert about("4", PROV.hadPrimarySource) == {f"{C}/actors/a1/versions/7"}
    assert about("5", PROV.hadPrimarySource) == {f"{A}/actors/a1/versions/2"}
    assert about("6", RDF.type) == {"https://www.w3.org/ns/activitystreams#Delete"}

    # Another index's reader maps the members back: the same graphs as this index holds.
    space = BASE + "/index/"
    origins = origins_of(Source("x", BASE + "/index", space, None, None, kind="index",
                                options={"origins": [
                                    {"entry_url": A + "/", "uri_space": A + "/"},
                                    {"entry_url": C + "/", "uri_space": C + "/"}]}))
    everything = [t for page in {id(p): p for p in members.values()}.values() for t in page]
    accepted, dropped = split_by_authority(everything, space)
    found, origin_of, refused = index_members(accepted, space, origins)
    assert not dropped and not refused
    got = {m.entity: m for m in found}
    assert set(got) == {f"{A}/actors/a1", f"{A}/actors/a2", f"{A}/actors/a3", f"{C}/actors/a1"}
    assert got[f"{A}/actors/a3"].deleted
    stamp = "http://www.w3.org/ns/prov#generatedAtTime"
    for entity in (f"{A}/actors/a1", f"{A}/actors/a2", f"{C}/actors/a1"):
        mine = Graph()
        for t in got[entity].triples:
            if t.predicate.value != stamp:
                mine.parse(data=str(t) + " .", format="nt")
        theirs = Graph()
        for t in graphs[entity]:
            theirs.parse(data=str(t) + " .", format="nt")
        from rdflib.compare import isomorphic
        assert isomorphic(mine, theirs), entity
    assert origin_of[f"{BASE}/index/feed/members/4"].entry_url == C + "/"


def test_root_members_and_validators(index):
    client, _graphs = index
    root = client.get("/index/feed/root", headers={"Accept": NT})
    triples = parse(root)
    nodes = {t.object.value for t in triples if t.predicate.value == str(TREE.node)}
    # pages 1-3 keep members after compaction; page 4 is the one filling next
    assert nodes == {f"{BASE}/index/feed/{n}" for n in (1, 2, 3, 4)}
    again = client.get("/index/feed/root", headers={"Accept": NT,
                                                    "If-None-Match": root.headers["ETag"]})
    assert again.status_code == 304
    assert client.get("/index/feed/members/1").status_code == 410  # compacted
    assert client.get("/index/feed/members/99").status_code == 404
    one = client.get("/index/feed/members/4", headers={"Accept": "application/ld+json"})
    assert one.headers["Content-Type"].startswith("application/ld+json")
    got = {(t.subject.value, t.predicate.value, t.object.value) for t in parse(one)}
    iri = f"{BASE}/index/feed/members/4"
    assert (iri, "http://purl.org/dc/terms/isVersionOf", f"{C}/actors/a1") in got
    assert (iri, "https://schema.org/name", "Cee") in got  # the state, on the member
    assert "immutable" not in one.headers["Cache-Control"]


def test_entry_states_what_registration_needs_and_sends_browsers_to_search(index):
    client, _graphs = index
    browser = client.get("/index", headers={"Accept": "text/html,*/*;q=0.8"})
    assert browser.status_code == 303 and browser.headers["Location"].endswith("/index/search")
    graph = Graph().parse(data=client.get("/index").data, format="turtle")
    me = URIRef(BASE + "/index/")
    void = "http://rdfs.org/ns/void#"
    assert (me, URIRef(void + "uriSpace"), Literal(BASE + "/index/")) in graph
    assert (me, URIRef("https://schema.org/dataset"), URIRef(BASE + "/index/feed")) in graph
    subsets = {(str(graph.value(s, URIRef("https://schema.org/url"))),
                str(graph.value(s, URIRef(void + "uriSpace"))))
               for s in graph.objects(me, URIRef(void + "subset"))}
    assert subsets == {(A + "/", A + "/"), (C + "/", C + "/")}  # the ORIGINAL sources
    # Everything is said about IRIs in the index's own space (authority at registration).
    assert all(str(s).startswith(BASE + "/index/") for s in graph.subjects())
    assert client.get("/index/", headers={"Accept": NT}).status_code == 200


def test_catalog_is_dcat_ap_de_with_one_dataset_per_source(index):
    client, _graphs = index
    response = client.get("/index/catalog")
    graph = Graph().parse(data=response.data, format="turtle")
    datasets = set(graph.subjects(RDF.type, DCAT.Dataset))
    assert len(datasets) == 2
    assert {str(graph.value(d, PROV.wasDerivedFrom)) for d in datasets} == {A + "/", C + "/"}
    ok, _report, text = validate(graph, shacl_graph=Graph().parse(SHAPES, format="turtle"),
                                 inference="none")
    assert ok, text
    assert client.get("/index/catalog", headers={
        "If-None-Match": response.headers["ETag"]}).status_code == 304


def test_no_index_feed_outside_index_mode(tmp_path):
    app = create_app({"TESTING": True, "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}"})
    client = app.test_client()
    assert client.get("/index/feed").status_code == 404
    assert client.get("/index/catalog").status_code == 404
