"""The index's SPARQL endpoint /index/sparql (issue 5 items 8 and 9).

A real index: harvesters.pipeline over vocab.to_graph records of two sources into an
OxigraphStore and SearchIndex, the same-actor candidates published into the index's own
graph (`harvesters.run.publish_same_as`), then a published snapshot. Queries run in the
guarded child process of service/sparql_query.py, which opens that snapshot read-only while
the writer keeps the store open. The remote-store variant forwards to a real `oxigraph serve`.
"""

from __future__ import annotations

import csv
import io
import subprocess
import time

import pyoxigraph as ox
import pytest
import requests
from rdflib import Graph, Namespace, URIRef

from harvesters.model import Member, Page
from harvesters.pipeline import harvest
from harvesters.run import publish_same_as
from harvesters.sameas import SAME_AS_GRAPH
from harvesters.search import SearchIndex
from harvesters.settings import HarvestSettings
from harvesters.store import OxigraphStore, RemoteSparqlStore, latest_snapshot

from ..harvesters.test_store import OXIGRAPH_CLI, free_port
from .test_index_pages import A, B, make_app, member, source
from .test_sparql_endpoint import COUNT_BOMB

SD = Namespace("http://www.w3.org/ns/sparql-service-description#")
JSON = "application/sparql-results+json"
DIRECT = "application/sparql-query"
PROV = "http://www.w3.org/ns/prov#"
ENTITIES_PER_SOURCE = (
    "PREFIX idx: <https://w3id.org/engagement-atlas/ns/index#>\n"
    "PREFIX prov: <http://www.w3.org/ns/prov#>\n"
    "SELECT ?source ?entity WHERE { ?sg idx:sourceId ?source . ?entity idx:inSource ?sg ; "
    "prov:wasDerivedFrom ?entry } ORDER BY ?source ?entity")


def build(path, settings, pages_a, pages_b):
    """Harvest the pages into the store at ``path``, publish candidates and a snapshot."""
    registry = settings.registry()
    sa, sb = source(A, "Halle"), source(B, "Gießen")
    if not registry.get(sa.id):
        registry.add(sa)
        registry.add(sb)
    with OxigraphStore(path) as store:
        search = SearchIndex(str(settings.search_path))
        try:
            if pages_a:
                harvest(sa, pages_a, store, search=search)
            if pages_b:
                harvest(sb, pages_b, store, search=search)
            publish_same_as(store, search)
        finally:
            search.close()
        return store.publish_snapshot()


def first_pages():
    return ([Page(A + "/feed/0", [member(A, 1, "Tafel Halle", wikidata="Q1"),
                                  member(A, 2, "Sportverein Halle", actorTypes=["verein"])],
                  {"p": 0})],
            [Page(B + "/feed/0", [member(B, 1, "Die Tafel", wikidata="Q1"),
                                  member(B, 3, "Kulturverein Gießen")], {"p": 0})])


@pytest.fixture
def index(tmp_path):
    path = tmp_path / "index"
    settings = HarvestSettings.from_mapping({"INDEX_STORE": str(path)})
    build(path, settings, *first_pages())
    return path, settings


@pytest.fixture
def app(tmp_path, index, monkeypatch):
    monkeypatch.setenv("ATLAS_INSTANCE", str(tmp_path / "instance"))
    return make_app(tmp_path, index[0])


@pytest.fixture
def client(app):
    return app.test_client()


def query(client, text, accept=JSON, **params):
    return client.post("/index/sparql", data={"query": text, **params},
                       headers={"Accept": accept})


def rows(response):
    assert response.status_code == 200, response.get_data(as_text=True)
    data = response.get_json(force=True)
    return [{k: v["value"] for k, v in b.items()} for b in data["results"]["bindings"]]


def problem(response, status):
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/problem+json"
    return response.get_json(force=True)


# --------------------------------------------------------------------------- answers


def test_select_over_the_union_of_entity_provenance_and_same_as_graphs(client):
    found = rows(query(client, ENTITIES_PER_SOURCE))
    assert [(r["source"], r["entity"]) for r in found] == [
        ("a.test", A + "/actors/a1"), ("a.test", A + "/actors/a2"),
        ("b.test", B + "/actors/a1"), ("b.test", B + "/actors/a3")]
    # entity triples, provenance and candidates are all in the default graph (no GRAPH)
    names = rows(query(client, f"SELECT ?n WHERE {{ <{A}/actors/a1> <https://schema.org/name> "
                               "?n }"))
    assert names == [{"n": "Tafel Halle"}]
    same = rows(query(client, "SELECT ?x WHERE { ?x <http://www.w3.org/2002/07/owl#sameAs> "
                              "?y }"))
    assert same == [{"x": A + "/actors/a1"}]


def test_the_same_actor_example_lists_the_candidate_with_its_reason(client):
    from service.index_sparql import INDEX_EXAMPLES

    found = rows(query(client, INDEX_EXAMPLES["same-actor-candidates"][1]))
    assert found == [{"a": A + "/actors/a1", "b": B + "/actors/a1",
                      "relation": "http://www.w3.org/2002/07/owl#sameAs",
                      "reason": "wikidata", "key": "Q1", "score": "1"}]
    per_source = rows(query(client, INDEX_EXAMPLES["entities-per-source"][1]))
    assert {r["entity"] for r in per_source} == {A + "/actors/a1", A + "/actors/a2",
                                                 B + "/actors/a1", B + "/actors/a3"}
    assert all(r["entry"] in (A + "/", B + "/") and r["retrieved"] for r in per_source)
    assert {r["name"] for r in per_source} >= {"Tafel Halle", "Die Tafel"}
    runs = rows(query(client, INDEX_EXAMPLES["sources-and-runs"][1]))
    assert {r["source"] for r in runs} == {"a.test", "b.test"}
    for key, (_title, text) in INDEX_EXAMPLES.items():  # every example runs
        assert query(client, text).status_code == 200, key


def test_construct_ask_and_formats(client):
    iri = A + "/actors/a1"
    response = query(client, f"CONSTRUCT {{ ?s ?p ?o }} WHERE {{ GRAPH <{iri}> {{ ?s ?p ?o }} }}",
                     accept="text/turtle")
    assert response.status_code == 200 and response.mimetype == "text/turtle"
    graph = Graph().parse(data=response.get_data(as_text=True), format="turtle")
    assert (URIRef(iri), URIRef("https://schema.org/name"), None) in graph
    nt = query(client, f"CONSTRUCT WHERE {{ <{iri}> ?p ?o }}", format="ntriples")
    assert nt.mimetype == "application/n-triples" and f"<{iri}>" in nt.get_data(as_text=True)
    ask = query(client, f"ASK {{ <{iri}> <{PROV}wasDerivedFrom> <{A}/> }}")
    assert ask.get_json(force=True)["boolean"] is True
    table = query(client, ENTITIES_PER_SOURCE, accept="text/csv")
    assert table.mimetype == "text/csv"
    assert list(csv.reader(io.StringIO(table.get_data(as_text=True))))[0] == ["source", "entity"]
    get = client.get("/index/sparql", query_string={"query": "ASK { <urn:x> ?p ?o }"},
                     headers={"Accept": "application/sparql-results+xml"})
    assert get.status_code == 200 and b"<boolean>false</boolean>" in get.data
    direct = client.post("/index/sparql", data="ASK { ?s ?p ?o }",
                         headers={"Content-Type": DIRECT, "Accept": JSON})
    assert direct.get_json(force=True)["boolean"] is True
    assert direct.headers["Access-Control-Allow-Origin"] == "*"


def test_the_protocol_dataset_selects_index_graphs(client):
    sg = "urn:x-engagement-atlas:source:a.test"
    found = rows(query(client, "SELECT DISTINCT ?e WHERE { ?e ?p ?sg } ORDER BY ?e",
                       **{"default-graph-uri": sg}))
    assert {r["e"] for r in found} >= {A + "/actors/a1", A + "/actors/a2"}
    assert not any(r["e"].startswith(B) for r in found)


# --------------------------------------------------------------------------- description


def test_the_service_description_says_union_default_graph(client):
    response = client.get("/index/sparql", headers={"Accept": "text/turtle"})
    assert response.status_code == 200 and response.mimetype == "text/turtle"
    graph = Graph().parse(data=response.get_data(as_text=True), format="turtle")
    service = URIRef("http://127.0.0.1:5000/index/sparql")
    assert (service, SD.endpoint, service) in graph
    assert (service, SD.feature, SD.UnionDefaultGraph) in graph
    comments = " ".join(str(o) for o in graph.objects(None, URIRef(
        "http://www.w3.org/2000/01/rdf-schema#comment")))
    assert SAME_AS_GRAPH in comments and "PROV-O" in comments and "union" in comments


def test_the_form_shows_the_index_examples(client):
    page = client.get("/index/sparql", headers={"Accept": "text/html"})
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and 'action="/index/sparql"' in html
    assert "Einträge je Quelle mit Herkunft" in html and "dieselbe Akteur*in" in html
    assert SAME_AS_GRAPH in html and "Vereinigung aller Graphen" in html
    chosen = client.get("/index/sparql?example=same-actor-candidates",
                        headers={"Accept": "text/html"}).get_data(as_text=True)
    assert "idx:matchReason ?reason" in chosen.split("</textarea>")[0]
    assert 'href="/index/sparql"' in client.get("/index/search").get_data(as_text=True)


# --------------------------------------------------------------------------- refusals


@pytest.mark.parametrize("text", [
    "SELECT * WHERE { SERVICE <http://127.0.0.1:1/sparql> { ?s ?p ?o } }",
    "ASK { OPTIONAL { SERVICE SILENT <http://169.254.169.254/> { ?s ?p ?o } } }",
])
def test_service_is_refused(client, text):
    assert "SERVICE" in problem(query(client, text), 403)["detail"]


def test_updates_and_load_are_refused(client):
    for response in (
        client.post("/index/sparql", data="DROP ALL",
                    headers={"Content-Type": "application/sparql-update"}),
        client.post("/index/sparql", data={"update": "DROP ALL"}),
        client.get("/index/sparql", query_string={"update": "CLEAR ALL"}),
        query(client, "LOAD <http://127.0.0.1:1/x.ttl>"),
        query(client, f"DROP GRAPH <{A}/actors/a1>"),
    ):
        assert response.status_code == 403, response.get_data(as_text=True)
    assert rows(query(client, f"SELECT ?p WHERE {{ <{A}/actors/a1> ?p ?o }} LIMIT 1"))


def test_a_cross_join_bomb_is_killed_at_the_time_limit(app, client):
    app.config["SPARQL_TIMEOUT"] = 1
    response = query(client, COUNT_BOMB)
    body = problem(response, 503)
    assert "SPARQL_TIMEOUT" in body["detail"] and int(response.headers["Retry-After"]) >= 1
    assert query(client, "ASK {}").status_code == 200  # and the endpoint goes on


def test_malformed_queries_are_400(client):
    assert problem(query(client, "SELECT ?x WHERE {"), 400)["detail"]


# --------------------------------------------------------------------------- snapshots


def test_before_the_first_snapshot_a_503_says_what_to_do(tmp_path, monkeypatch):
    monkeypatch.setenv("ATLAS_INSTANCE", str(tmp_path / "instance"))
    client = make_app(tmp_path, tmp_path / "nothing-yet").test_client()
    response = query(client, "ASK {}")
    body = problem(response, 503)
    assert "atlas harvest run" in body["detail"] and body["type"].endswith("/no-snapshot")
    assert int(response.headers["Retry-After"]) > 0
    # the description and the form still answer
    assert client.get("/index/sparql", headers={"Accept": "text/turtle"}).status_code == 200


def test_a_deleted_entity_is_gone_after_the_next_snapshot(tmp_path, index, client):
    path, settings = index
    old = latest_snapshot(path)
    gone = A + "/actors/a2"
    assert rows(query(client, f"SELECT ?p WHERE {{ GRAPH <{gone}> {{ ?s ?p ?o }} }} LIMIT 1"))
    deletion = Member(gone, None, "2026-01-02T10:00:00Z", True, [])
    build(path, settings, [Page(A + "/feed/1", [deletion], {"p": 1})], [])
    assert latest_snapshot(path) != old
    assert not rows(query(client, f"SELECT ?p WHERE {{ GRAPH <{gone}> {{ ?s ?p ?o }} }}"))
    assert not rows(query(client, f"SELECT ?p WHERE {{ <{gone}> ?p ?o }}"))
    assert [r["entity"] for r in rows(query(client, ENTITIES_PER_SOURCE))] == [
        A + "/actors/a1", B + "/actors/a1", B + "/actors/a3"]
    # the previous snapshot, still on disk, was left as it was
    assert bool(ox.Store.read_only(str(old)).query(f"ASK {{ GRAPH <{gone}> {{ ?s ?p ?o }} }}"))


def test_the_endpoint_is_absent_without_index_mode(tmp_path, index, monkeypatch):
    monkeypatch.setenv("ATLAS_INSTANCE", str(tmp_path / "instance"))
    client = make_app(tmp_path, index[0], mode=False).test_client()
    assert client.get("/index/sparql").status_code == 404
    assert client.get("/sparql", headers={"Accept": "text/turtle"}).status_code == 200


# --------------------------------------------------------------------------- remote store


@pytest.fixture(scope="module")
def remote_server(tmp_path_factory):
    """`oxigraph serve` with its own query timeout (a forwarded query we gave up on must
    not keep the server busy), holding a small index written through RemoteSparqlStore."""
    assert OXIGRAPH_CLI, "the oxigraph CLI (PyPI package `oxigraph`) is not installed"
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen([OXIGRAPH_CLI, "serve", "--location",
                             str(tmp_path_factory.mktemp("remote-index")), "--bind",
                             f"127.0.0.1:{port}", "--timeout-s", "3"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(150):
            assert proc.poll() is None, "oxigraph serve exited"
            try:
                requests.get(f"{base}/query", params={"query": "ASK {}"}, timeout=1)
                break
            except requests.ConnectionError:
                time.sleep(0.1)  # polling for the port, not a timing threshold
        store = RemoteSparqlStore(f"{base}/query", f"{base}/update", f"{base}/store")
        a, b = first_pages()
        harvest(source(A, "Halle"), a, store)
        harvest(source(B, "Gießen"), b, store)
        store.close()
        yield base
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.fixture
def remote_client(tmp_path, remote_server, monkeypatch):
    monkeypatch.setenv("ATLAS_INSTANCE", str(tmp_path / "instance"))
    app = make_app(tmp_path, tmp_path / "unused")
    app.config.update(INDEX_STORE_URL=f"{remote_server}/query",
                      INDEX_UPDATE_URL=f"{remote_server}/update")
    return app


def test_with_a_remote_store_checked_queries_are_forwarded(remote_client):
    client = remote_client.test_client()
    found = rows(query(client, "SELECT ?source ?entity WHERE { GRAPH ?sg { ?sg "
                       "<https://w3id.org/engagement-atlas/ns/index#sourceId> ?source . ?entity "
                       "<https://w3id.org/engagement-atlas/ns/index#inSource> ?sg } } "
                       "ORDER BY ?source ?entity"))
    assert [r["entity"] for r in found] == [A + "/actors/a1", A + "/actors/a2",
                                            B + "/actors/a1", B + "/actors/a3"]
    ttl = query(client, f"CONSTRUCT {{ ?s ?p ?o }} WHERE {{ GRAPH <{A}/actors/a1> {{ ?s ?p ?o "
                        "} }", accept="text/turtle")
    assert ttl.status_code == 200, ttl.get_data(as_text=True)
    assert ttl.mimetype == "text/turtle" and "Tafel Halle" in ttl.get_data(as_text=True)
    assert query(client, "ASK { GRAPH ?g { ?s ?p ?o } }").get_json(force=True)["boolean"]
    named = rows(query(client, "SELECT ?n WHERE { GRAPH ?g { ?s <https://schema.org/name> ?n } }",
                       **{"named-graph-uri": A + "/actors/a1"}))
    assert named == [{"n": "Tafel Halle"}]
    remote_client.config["SPARQL_MAX_ROWS"] = 2
    cut = query(client, "SELECT * WHERE { GRAPH ?g { ?s ?p ?o } }")
    assert len(rows(cut)) == 2 and cut.headers["X-SPARQL-MaxRows"] == "2"


def test_with_a_remote_store_refusals_and_limits_hold(remote_client):
    client = remote_client.test_client()
    assert problem(query(client, "SELECT * { SERVICE <http://127.0.0.1:1/> { ?s ?p ?o } }"),
                   403)
    assert query(client, "DROP ALL").status_code == 403
    assert problem(query(client, "SELECT ?x WHERE {"), 400)
    remote_client.config["SPARQL_TIMEOUT"] = 1
    response = query(client, COUNT_BOMB)
    assert "SPARQL_TIMEOUT" in problem(response, 503)["detail"]
    remote_client.config["SPARQL_TIMEOUT"] = 10
    assert rows(query(client, "SELECT ?s WHERE { GRAPH ?g { ?s ?p ?o } } LIMIT 1"))
    description = client.get("/index/sparql", headers={"Accept": "text/turtle"})
    graph = Graph().parse(data=description.get_data(as_text=True), format="turtle")
    assert (None, SD.feature, SD.UnionDefaultGraph) not in graph


def test_with_an_unreachable_remote_store_the_answer_is_502(tmp_path, monkeypatch):
    monkeypatch.setenv("ATLAS_INSTANCE", str(tmp_path / "instance"))
    app = make_app(tmp_path, tmp_path / "unused")
    dead = f"http://127.0.0.1:{free_port()}"
    app.config.update(INDEX_STORE_URL=f"{dead}/query", INDEX_UPDATE_URL=f"{dead}/update")
    assert problem(query(app.test_client(), "ASK {}"), 502)["detail"]
