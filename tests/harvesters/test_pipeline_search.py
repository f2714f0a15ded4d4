"""The pipeline feeds the search side index (issue 5 item 8): harvested entities are found
by name, deletes and quarantines remove them, and the source's city becomes a facet."""

from __future__ import annotations

import pytest

from harvesters.model import Source
from harvesters.pipeline import harvest, harvest_all
from harvesters.search import SearchIndex
from harvesters.store import OxigraphStore
from tests.harvesters.test_pipeline import actor, deleted, page, project, source


@pytest.fixture
def stores(tmp_path):
    with OxigraphStore(tmp_path / "index") as store:
        search = SearchIndex(str(tmp_path / "index.search.sqlite3"))
        yield store, search
        search.close()


def names(search: SearchIndex, q: str | None = None, **facets) -> list[str]:
    return sorted(h.entity for h in search.search(q, facets, per_page=100).items)


def test_harvested_entities_are_found_by_name_and_a_delete_removes_them(stores):
    store, search = stores
    src = Source(**{**source().__dict__, "name": "Node", "options": {"city": "Halle"}})
    report = harvest(src, [page(0, [actor(1), actor(2), project(1)])], store, search=search)
    assert report.ok and report.members_applied == 3
    assert names(search, "Verein 1") == [actor(1).entity]
    assert names(search, "projekt") == [project(1).entity]
    assert names(search, city=["Halle"]) == sorted(m.entity for m in (actor(1), actor(2),
                                                                       project(1)))
    assert names(search, kind=["actor"]) == [actor(1).entity, actor(2).entity]

    report = harvest(src, [page(1, [deleted(1)])], store, search=search)
    assert report.ok and report.deletes == 1
    assert names(search, "Verein 1") == []
    assert names(search, "Verein") == [actor(2).entity]


def test_a_quarantined_entity_leaves_the_search_index(stores):
    store, search = stores
    harvest(source(), [page(0, [actor(1)])], store, search=search)
    bad = actor(1, version=2, url="javascript:alert(1)")
    report = harvest(source(), [page(1, [bad])], store, search=search)
    assert report.quarantined_count == 1
    assert names(search, "Verein") == []


def test_harvest_all_passes_the_search_index_on(stores):
    store, search = stores
    other = source("other.test")
    reports = harvest_all([source(), other], lambda s, _c: [page(0, [
        actor(1, base=s.entry_url.rstrip("/"))])], store, search=search)
    assert all(r.ok for r in reports)
    assert names(search, "Verein 1") == ["http://node.test/actors/a1",
                                         "http://other.test/actors/a1"]
    assert names(search, source=["other.test"]) == ["http://other.test/actors/a1"]


def test_run_once_fills_the_search_index_beside_the_store(tmp_path):
    from harvesters.run import run_once
    from tests.harvesters.test_run import FETCHER, FakeReader, settings_for
    from tests.harvesters.test_run import page as run_page

    settings = settings_for(tmp_path, "a", city="Leipzig")
    [report] = run_once(settings, read=FakeReader({"a": [run_page("a", 1)]}), fetcher=FETCHER)
    assert report.ok
    search = SearchIndex(str(settings.search_path))
    try:
        assert settings.search_path == tmp_path / "index.search.sqlite3"
        assert names(search, "Verein 10", city=["Leipzig"]) == ["http://a.test/actors/a10"]
    finally:
        search.close()
