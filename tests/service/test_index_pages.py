"""The index service pages (issue 5 item 8): search across sources with facets, the source
status page, entity pages with provenance, their JSON, and absence outside INDEX_MODE.

The index is built for real: harvesters.pipeline over pages of vocab.to_graph records of two
fake sources into an OxigraphStore plus SearchIndex, the same-actor candidates published into
the index's own graph (`harvesters.run.publish_same_as`), then a published snapshot, which
the app reads while the store stays open for writing (as beside a running harvester).
"""

from __future__ import annotations

import copy
import re
from urllib.parse import unquote

import pyoxigraph as ox
import pytest

from harvesters.model import Member, Page, Source
from harvesters.parse import parse_rdf
from harvesters.pipeline import harvest
from harvesters.run import publish_same_as
from harvesters.search import SearchIndex
from harvesters.settings import HarvestSettings
from harvesters.store import STATE_NS, Batch, OxigraphStore
from service import create_app
from vocab import to_graph

A, B = "http://a.test", "http://b.test"
ACTOR = {"description": {"de": "Anlaufstelle für Engagement."},
         "actorTypes": ["freiwilligenagentur"], "status": "active", "url": "https://example.org/"}


def source(base: str, city: str) -> Source:
    host = base.split("//")[1]
    return Source(host, base + "/", base + "/", base + "/feed", None, name=f"Knoten {city}",
                  options={"city": city})


def member(base: str, n: int, name: str, **changes) -> Member:
    record = {**copy.deepcopy(ACTOR), "id": f"a{n}", "name": {"de": name}, **changes}
    data = to_graph("actor", record, base).serialize(format="nt", encoding="utf-8")
    entity = f"{base}/actors/a{n}"
    return Member(entity, f"{entity}/versions/1", "2026-01-01T10:00:00Z", False,
                  parse_rdf(data, "application/n-triples", base_iri=None))


@pytest.fixture
def index_store(tmp_path):
    """An index of two sources (one quarantined entity in b.test), snapshot published."""
    path = tmp_path / "index"
    settings = HarvestSettings.from_mapping({"INDEX_STORE": str(path)})
    registry = settings.registry()
    sa, sb = source(A, "Halle"), source(B, "Gießen")
    registry.add(sa)
    registry.add(sb)
    with OxigraphStore(path) as store:
        search = SearchIndex(str(settings.search_path))
        try:
            harvest(sa, [Page(A + "/feed/0", [member(A, 1, "Tafel Halle", wikidata="Q42"),
                                              member(A, 2, "Sportverein Halle",
                                                     actorTypes=["verein"],
                                                     registerNumber="VR 7")], {"p": 0})],
                    store, search=search)
            harvest(sb, [Page(B + "/feed/0", [member(B, 1, "Tafel Gießen", wikidata="Q42"),
                                              member(B, 2, "Böse", url="javascript:x"),
                                              member(B, 3, "SV Halle", registerNumber="VR7",
                                                     status="ceased")],
                              {"p": 0})], store, search=search)
            publish_same_as(store, search)
        finally:
            search.close()
        store.publish_snapshot()
        yield path  # the writer stays open: pages read the snapshot


def make_app(tmp_path, store_path, mode=True):
    return create_app({"TESTING": True, "INDEX_MODE": mode, "INDEX_STORE": str(store_path),
                       "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}"})


@pytest.fixture
def client(tmp_path, index_store, monkeypatch):
    monkeypatch.setenv("ATLAS_INSTANCE", str(tmp_path / "instance"))
    return make_app(tmp_path, index_store).test_client()


def test_search_finds_across_sources_and_by_facet(client):
    page = client.get("/index/search?q=tafel", headers={"Accept": "text/html"})
    assert page.status_code == 200 and page.mimetype == "text/html"
    html = page.get_data(as_text=True)
    assert "Tafel Halle" in html and "Tafel Gießen" in html and "Sportverein" not in html
    links = {unquote(h) for h in re.findall(r'href="/index/entity\?iri=([^"]+)"', html)}
    assert links == {A + "/actors/a1", B + "/actors/a1"}

    data = client.get("/index/search?q=tafel&city=Halle&format=json").get_json()
    assert data["total"] == 1 and data["items"][0]["entity"] == A + "/actors/a1"
    assert data["items"][0]["source"] == "a.test"
    facet = client.get("/index/search?actorTypes=verein",
                       headers={"Accept": "application/json"}).get_json()
    assert [i["entity"] for i in facet["items"]] == [A + "/actors/a2"]
    everything = client.get("/index/search?format=json").get_json()
    assert everything["total"] == 4  # the quarantined entity is not searchable
    assert everything["facets"]["source"] == {"a.test": 2, "b.test": 2}


def test_the_status_page_shows_runs_counts_and_quarantine(client):
    html = client.get("/index/sources").get_data(as_text=True)
    assert A + "/" in html and "Knoten Gießen" in html
    assert B + "/actors/a2" in html and "url: at most one value" in html  # the reason
    data = client.get("/index/sources?format=json").get_json()
    by_id = {s["id"]: s for s in data["sources"]}
    a, b = by_id["a.test"], by_id["b.test"]
    assert a["entry_url"] == A + "/" and a["uri_space"] == A + "/" and a["entities"] == 2
    assert a["last_run"]["ok"] and a["last_run"]["counts"]["membersApplied"] == 2
    assert a["last_run"]["started"] <= a["last_run"]["ended"]
    assert b["entities"] == 2 and b["last_run"]["counts"]["quarantinedCount"] == 1
    [q] = b["quarantined"]
    assert q["entity"] == B + "/actors/a2" and any(r.startswith("url:") for r in q["reasons"])


def test_the_entity_page_shows_the_record_and_its_provenance(client):
    iri = A + "/actors/a1"
    html = client.get("/index/entity", query_string={"iri": iri}).get_data(as_text=True)
    assert "Tafel Halle" in html and "Anlaufstelle" in html
    assert iri + "/versions/1" in html and A + "/" in html and "Herkunft" in html
    data = client.get("/index/entity", query_string={"iri": iri, "format": "json"}).get_json()
    assert data["source"] == "a.test" and data["kind"] == "actor"
    assert data["record"]["name"] == {"de": "Tafel Halle"}
    assert data["provenance"]["version"] == iri + "/versions/1"
    assert data["provenance"]["source_entry"] == A + "/" and data["provenance"]["retrieved"]
    quarantined = client.get("/index/entity", query_string={"iri": B + "/actors/a2",
                                                            "format": "json"}).get_json()
    assert quarantined["record"] is None and quarantined["quarantine"]["reasons"]


@pytest.mark.parametrize("path", ["/index/search", "/index/sources",
                                  "/index/entity?iri=" + A + "/actors/a1", "/index/sparql"])
def test_index_pages_head_with_the_index_not_the_node_collections(client, path):
    html = client.get(path, headers={"Accept": "text/html"}).get_data(as_text=True)
    header = html.split('<header class="site-header">', 1)[1].split("</header>", 1)[0]
    assert 'href="/index/search"' in header and 'href="/index/sparql"' in header
    assert 'href="/actors"' not in header and 'aria-label="Sammlungen"' not in header


def test_unknown_and_invalid_entities(client):
    assert client.get("/index/entity?iri=http://a.test/actors/zz&format=json").status_code == 404
    assert client.get("/index/entity?iri=not%20an%20iri&format=json").status_code == 400
    assert client.get("/index/entity?iri=http://a.test/x%3E%20%3Fs&format=json"
                      ).status_code == 400
    assert client.get("/index/search?page=0&format=json").status_code == 400


def test_without_a_snapshot_the_pages_explain(tmp_path, monkeypatch):
    monkeypatch.setenv("ATLAS_INSTANCE", str(tmp_path / "instance"))
    client = make_app(tmp_path, tmp_path / "empty").test_client()
    assert "noch leer" in client.get("/index/search").get_data(as_text=True)
    assert "Noch kein Stand" in client.get("/index/sources").get_data(as_text=True)
    assert client.get("/index/sources?format=json").get_json() == {"available": False,
                                                                    "sources": []}
    assert client.get("/index/entity?iri=http://a.test/actors/a1").status_code == 404


def test_the_routes_are_absent_without_index_mode(tmp_path, index_store, monkeypatch):
    monkeypatch.setenv("ATLAS_INSTANCE", str(tmp_path / "instance"))
    app = make_app(tmp_path, index_store, mode=False)
    assert not any(r.rule.startswith("/index") for r in app.url_map.iter_rules())
    assert app.test_client().get("/index/search?format=json").status_code == 404


def test_index_mode_from_an_environment_string(tmp_path, index_store, monkeypatch):
    monkeypatch.setenv("ATLAS_INSTANCE", str(tmp_path / "instance"))
    monkeypatch.setenv("ATLAS_INDEX_MODE", "true")
    app = create_app({"TESTING": True, "INDEX_STORE": str(index_store),
                      "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}"})
    assert app.test_client().get("/index/search?format=json").status_code == 200


def test_index_serve_runs_the_app_in_index_mode(tmp_path, monkeypatch):
    from service.cli import main

    monkeypatch.setenv("ATLAS_INSTANCE", str(tmp_path / "instance"))
    ran = {}

    def fake_run(host, port, app, **_kw):
        ran.update(host=host, port=port, rules=[r.rule for r in app.url_map.iter_rules()])

    monkeypatch.setattr("werkzeug.serving.run_simple", fake_run)
    app = make_app(tmp_path, tmp_path / "index", mode=False)
    result = app.test_cli_runner().invoke(main, ["index", "serve", "--port", "5123"])
    assert result.exit_code == 0, result.output
    assert ran["host"] == "127.0.0.1" and ran["port"] == 5123
    assert "/index/search" in ran["rules"]


def test_a_snapshot_is_not_the_open_store(index_store):
    """The app never opens the writer's directory (RocksDB lock held by the harvester)."""
    with pytest.raises(OSError):
        ox.Store(str(index_store))


def test_facets_and_entity_pages_show_skos_labels(client):
    html = client.get("/index/search", headers={"Accept": "text/html"}).get_data(as_text=True)
    assert "> Freiwilligenagentur (3)" in html and "> freiwilligenagentur (" not in html
    assert "> Aktiv (3)" in html and "> Beendet (1)" in html and "> active (" not in html
    assert "> Akteur*in (4)" in html and "> actor (" not in html  # kinds by their name
    data = client.get("/index/search?format=json&status=ceased").get_json()
    assert data["facets"]["status"] == {"ceased": 1}  # values stay notations...
    labels = data["facet_labels"]
    assert labels["status"] == {"ceased": "Beendet"}  # ...and carry their labels
    assert labels["source"]["b.test"] == "b.test" and labels["kind"]["actor"] == "Akteur*in"

    iri = A + "/actors/a2"
    page = client.get("/index/entity", query_string={"iri": iri}).get_data(as_text=True)
    assert "Verein" in page and "Aktiv" in page
    entity = client.get("/index/entity", query_string={"iri": iri, "format": "json"}).get_json()
    assert entity["record"]["actorTypes"] == ["verein"] and entity["record"]["status"] == "active"
    assert entity["labels"]["actorTypes"] == {"verein": "Verein"}
    assert entity["labels"]["status"] == {"active": "Aktiv"}


def test_concept_labels_fall_back_to_english_then_the_notation():
    from service.index_read import concept_labels

    labels = concept_labels({"actorTypes": ["verein", "no-such-type"], "name": {"de": "x"}})
    assert labels == {"actorTypes": {"verein": "Verein", "no-such-type": "no-such-type"}}
    assert concept_labels({"status": "active"}, lang="en") == {"status": {"active": "Active"}}
    assert concept_labels({"status": "active"}, lang="fr") == {"status": {"active": "Active"}}
    assert concept_labels(None) == {}


def test_entity_pages_show_same_actor_candidates(client):
    a1, b1 = A + "/actors/a1", B + "/actors/a1"
    data = client.get("/index/entity", query_string={"iri": a1, "format": "json"}).get_json()
    [candidate] = data["same_as"]
    assert candidate["entity"] == b1 and candidate["relation"] == "sameAs"
    assert candidate["predicate"] == "http://www.w3.org/2002/07/owl#sameAs"
    assert candidate["reason"] == "wikidata" and candidate["key"] == "Q42"
    assert candidate["score"] == 1.0 and candidate["source"] == "b.test"
    assert candidate["names"] == ["Tafel Gießen"]
    assert unquote(candidate["page"]) == f"/index/entity?iri={b1}"
    # the pair is shown from both sides
    back = client.get("/index/entity", query_string={"iri": b1, "format": "json"}).get_json()
    assert [c["entity"] for c in back["same_as"]] == [a1]

    html = client.get("/index/entity", query_string={"iri": a1}).get_data(as_text=True)
    assert "Dieselbe Akteur*in in anderen Quellen?" in html and "owl:sameAs" in html
    assert "gleiches Wikidata-Objekt" in html and "Tafel Gießen" in html
    assert {unquote(h) for h in re.findall(r'href="/index/entity\?iri=([^"]+)"', html)} == {b1}

    # a register number without court on one side: only skos:closeMatch
    close = client.get("/index/entity", query_string={"iri": A + "/actors/a2",
                                                      "format": "json"}).get_json()["same_as"]
    assert [(c["entity"], c["relation"], c["reason"]) for c in close] == [
        (B + "/actors/a3", "closeMatch", "register-number")]
    page = client.get("/index/entity", query_string={"iri": A + "/actors/a2"}).get_data(
        as_text=True)
    assert "skos:closeMatch" in page and "gleicher Registereintrag" in page
    lonely = client.get("/index/entity", query_string={"iri": B + "/actors/a2",
                                                       "format": "json"}).get_json()
    assert lonely["same_as"] == [] and lonely["provenance"]["via"] is None


def test_entity_pages_name_the_intermediary_index(tmp_path, monkeypatch):
    """idx:harvestedVia (helper B's pipeline term): harvested through a trusted index."""
    monkeypatch.setenv("ATLAS_INSTANCE", str(tmp_path / "instance"))
    path, e = tmp_path / "chained", A + "/actors/a9"
    via, origin = "http://index-a.test/index", A + "/"
    prov = "http://www.w3.org/ns/prov#"
    triples = list(member(A, 9, "Über einen Index").triples)
    with OxigraphStore(path) as store:
        store.apply(Batch("index-a.test", {e: triples}, provenance=[
            (ox.NamedNode(e), ox.NamedNode(prov + "wasDerivedFrom"), ox.NamedNode(origin)),
            (ox.NamedNode(e), ox.NamedNode(STATE_NS + "harvestedVia"), ox.NamedNode(via))]))
        store.publish_snapshot()
    client = make_app(tmp_path, path).test_client()
    data = client.get("/index/entity", query_string={"iri": e, "format": "json"}).get_json()
    assert data["provenance"]["via"] == via and data["provenance"]["source_entry"] == origin
    html = client.get("/index/entity", query_string={"iri": e}).get_data(as_text=True)
    assert "Geerntet über" in html and f'href="{via}"' in html
