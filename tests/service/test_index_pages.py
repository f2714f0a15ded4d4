"""The index service pages (issue 5 item 8): search across sources with facets, the source
status page, entity pages with provenance, their JSON, and absence outside INDEX_MODE.

The index is built for real: harvesters.pipeline over pages of vocab.to_graph records of two
fake sources into an OxigraphStore plus SearchIndex, then a published snapshot, which the
app reads while the store stays open for writing (as beside a running harvester).
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
from harvesters.search import SearchIndex
from harvesters.settings import HarvestSettings
from harvesters.store import OxigraphStore
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
            harvest(sa, [Page(A + "/feed/0", [member(A, 1, "Tafel Halle"),
                                              member(A, 2, "Sportverein Halle",
                                                     actorTypes=["verein"])], {"p": 0})],
                    store, search=search)
            harvest(sb, [Page(B + "/feed/0", [member(B, 1, "Tafel Gießen"),
                                              member(B, 2, "Böse", url="javascript:x")],
                              {"p": 0})], store, search=search)
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
    assert everything["total"] == 3  # the quarantined entity is not searchable
    assert everything["facets"]["source"] == {"a.test": 2, "b.test": 1}


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
    assert b["entities"] == 1 and b["last_run"]["counts"]["quarantinedCount"] == 1
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

    def fake_run(self, host=None, port=None, **_kw):
        ran.update(host=host, port=port, rules=[r.rule for r in self.url_map.iter_rules()])

    monkeypatch.setattr("flask.Flask.run", fake_run)
    app = make_app(tmp_path, tmp_path / "index", mode=False)
    result = app.test_cli_runner().invoke(main, ["index", "serve", "--port", "5123"])
    assert result.exit_code == 0, result.output
    assert ran["host"] == "127.0.0.1" and ran["port"] == 5123
    assert "/index/search" in ran["rules"]


def test_a_snapshot_is_not_the_open_store(index_store):
    """The app never opens the writer's directory (RocksDB lock held by the harvester)."""
    with pytest.raises(OSError):
        ox.Store(str(index_store))
