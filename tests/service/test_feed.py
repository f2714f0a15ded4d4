"""The LDES feed: members, pages and relations, caching, retention, formats, overload."""

from __future__ import annotations

import warnings
from datetime import datetime, timedelta

import orjson
import pytest
import rdflib
from rdflib import Graph, Literal, URIRef
from rdflib.compare import isomorphic
from sqlalchemy import select, update

from service import db, store
from service.feed import IMMUTABLE
from service.models import Change
from tests.conftest import BASE
from vocab import from_graph, normalize
from vocab.namespaces import AS, DCTERMS, LDES, PROV, RDF, TREE, XSD

PAGE_SIZE = 3
FORMATS = {"text/turtle": "turtle", "application/n-triples": "nt",
           "application/n-quads": "nquads", "application/ld+json": "json-ld"}
NT = {"Accept": "application/n-triples"}
STREAM, ROOT = URIRef(f"{BASE}/feed"), URIRef(f"{BASE}/feed/root")
ACTOR = {"name": {"de": "Nachbarschaftshilfe Pieschen", "en": "Pieschen neighbours"},
         "actorTypes": ["verein"], "email": "info@pieschen.example",
         "description": {"de": 'Zeilen\nmit "Zitat" und \\ Backslash'},
         "geo": {"latitude": 51.08, "longitude": 13.72},
         "contactPoints": [{"contactType": {"de": "Beratung"},
                            "email": "beratung@pieschen.example"},
                           {"contactType": {"de": "Presse"}, "email": "presse@pieschen.example"}]}


@pytest.fixture(autouse=True)
def _literals_as_written(monkeypatch):
    """Compare statements as written (rdflib would rewrite "Z" as "+00:00")."""
    monkeypatch.setattr(rdflib, "NORMALIZE_LITERALS", False)


@pytest.fixture
def feed(app):
    app.config["FEED_PAGE_SIZE"] = PAGE_SIZE
    return app


@pytest.fixture
def writer(client, editor_token):
    return Writer(client, editor_token)


class Writer:
    """Changes through the API, as editors make them."""

    def __init__(self, client, token: str):
        self.client, self.auth = client, {"Authorization": f"Bearer {token}"}

    def create(self, collection: str = "actors", body: dict | None = None) -> dict:
        response = self.client.post(f"/api/v1/{collection}", json=body or ACTOR,
                                    headers=self.auth)
        assert response.status_code == 201, response.get_json()
        return response.get_json()

    def rename(self, entity_id: str, name: str, collection: str = "actors") -> dict:
        current = self.client.get(f"/api/v1/{collection}/{entity_id}")
        response = self.client.patch(
            f"/api/v1/{collection}/{entity_id}", json={"name": {"de": name}},
            headers={**self.auth, "If-Match": current.headers["ETag"]})
        assert response.status_code == 200, response.get_json()
        return response.get_json()

    def delete(self, entity_id: str, collection: str = "actors") -> None:
        current = self.client.get(f"/api/v1/{collection}/{entity_id}")
        response = self.client.delete(f"/api/v1/{collection}/{entity_id}",
                                      headers={**self.auth, "If-Match": current.headers["ETag"]})
        assert response.status_code == 204


def parse(response) -> Graph:
    """The response body as a graph, in whatever feed format it came."""
    assert response.status_code == 200, response.get_data(as_text=True)
    rdflib_format = FORMATS[response.mimetype]
    with warnings.catch_warnings():
        # rdflib 7.6's own N-Quads and JSON-LD parsers use its deprecated APIs.
        warnings.filterwarnings("ignore", "Dataset.default_context is deprecated",
                                DeprecationWarning)
        warnings.filterwarnings("ignore", "ConjunctiveGraph is deprecated", DeprecationWarning)
        return Graph().parse(data=response.get_data(), format=rdflib_format)


def get_graph(client, path: str) -> Graph:
    return parse(client.get(path, headers=NT))


def version(entity_id: str, number: int, collection: str = "actors") -> URIRef:
    return URIRef(f"{BASE}/{collection}/{entity_id}/versions/{number}")


def members(graph: Graph) -> list[URIRef]:
    return sorted(graph.objects(STREAM, TREE.member))


def member_graph(graph: Graph, member: URIRef) -> Graph:
    """TREE member extraction as our shape describes it: the member and its #fragments."""
    out = Graph()
    for s, p, o in graph:
        if s == member or str(s).startswith(f"{member}#"):
            out.add((s, p, o))
    return out


def as_entity(member: Graph, member_iri: URIRef) -> Graph:
    """The member's state under the entity's own IRI (what a replica stores)."""
    entity = str(member.value(member_iri, DCTERMS.isVersionOf))
    out = Graph()

    def back(term):
        if isinstance(term, URIRef) and str(term).startswith(str(member_iri)):
            return URIRef(entity + str(term)[len(str(member_iri)):])
        return term

    for s, p, o in member:
        if p not in (DCTERMS.isVersionOf, PROV.generatedAtTime):
            out.add((back(s), p, back(o)))
    return out


def timestamps(graph: Graph) -> list[datetime]:
    return sorted(datetime.fromisoformat(str(graph.value(m, PROV.generatedAtTime)))
                  for m in members(graph))


def times_in_log_order(client, path: str) -> list[datetime]:
    """Member timestamps in the order the page lists its members (N-Triples lines)."""
    body = client.get(path, headers=NT).get_data(as_text=True)
    order = [line.split()[2][1:-1] for line in body.splitlines()
             if line.startswith(f"<{STREAM}> <{TREE.member}>")]
    graph = Graph().parse(data=body, format="nt")
    return [datetime.fromisoformat(str(graph.value(URIRef(m), PROV.generatedAtTime)))
            for m in order]


def relations(root: Graph) -> dict[str, dict[URIRef, Literal]]:
    """page URL -> {relation type: tree:value} from the root node."""
    found: dict[str, dict[URIRef, Literal]] = {}
    for relation in root.objects(ROOT, TREE.relation):
        node = str(root.value(relation, TREE.node))
        kind = root.value(relation, RDF.type)
        found.setdefault(node, {})[kind] = root.value(relation, TREE.value)
        if kind != TREE.Relation:
            assert root.value(relation, TREE.path) == PROV.generatedAtTime
            assert root.value(relation, TREE.value).datatype == XSD.dateTime
    return found


# --------------------------------------------------------------------------- members


def test_each_change_is_a_member_with_the_full_state(feed, client, writer):
    created = writer.create()
    renamed = writer.rename(created["id"], "Nachbarschaftshilfe Pieschen e. V.")
    page = get_graph(client, "/feed/1")
    assert members(page) == [version(created["id"], 1), version(created["id"], 2)]
    for number, record in ((1, created), (2, renamed)):
        member = version(created["id"], number)
        state = member_graph(page, member)
        assert state.value(member, DCTERMS.isVersionOf) == URIRef(
            f"{BASE}/actors/{created['id']}")
        assert state.value(member, PROV.generatedAtTime).datatype == XSD.dateTime
        # nested resources are fragments of the version, never of the entity
        assert (member, URIRef("https://schema.org/geo"), URIRef(f"{member}#geo")) in state
        assert from_graph(as_entity(state, member), "actor", BASE) == [
            normalize("actor", record)]


def test_a_deletion_is_a_delete_member(feed, client, writer):
    created = writer.create()
    writer.delete(created["id"])
    page = get_graph(client, "/feed/1")
    gone = version(created["id"], 2)
    assert set(page.predicate_objects(gone)) == {
        (RDF.type, AS.Delete),
        (DCTERMS.isVersionOf, URIRef(f"{BASE}/actors/{created['id']}")),
        (PROV.generatedAtTime, page.value(gone, PROV.generatedAtTime))}
    stream = get_graph(client, "/feed")
    assert stream.value(STREAM, LDES.versionDeleteObject) == AS.Delete
    assert stream.value(STREAM, LDES.versionDeletePath) == RDF.type


def test_cooperation_shortcuts_about_partners_stay_out_of_the_member(feed, client, writer):
    a, b = writer.create()["id"], writer.create()["id"]
    coop = writer.create("cooperations", {"partners": [f"{BASE}/actors/{a}", f"{BASE}/actors/{b}"],
                                          "levels": ["professional"]})
    page = get_graph(client, "/feed/1")
    member = version(coop["id"], 1, "cooperations")
    assert from_graph(as_entity(member_graph(page, member), member), "cooperation", BASE) == [
        normalize("cooperation", coop)]
    assert not set(page.subjects(URIRef("https://w3id.org/engagement-atlas/ns#cooperatesWith")))


def test_version_members_dereference_in_every_format(feed, client, writer):
    created = writer.create()
    writer.rename(created["id"], "Neu")
    in_page = member_graph(get_graph(client, "/feed/1"), version(created["id"], 1))
    path = f"/actors/{created['id']}/versions/1"
    graphs = [parse(client.get(path, headers={"Accept": t})) for t in FORMATS]
    assert all(isomorphic(g, in_page) for g in graphs)
    response = client.get(path)
    assert response.headers["Cache-Control"] == IMMUTABLE
    assert client.get(path, headers={"If-None-Match": response.headers["ETag"]}).status_code == 304
    assert client.get(f"/actors/{created['id']}/versions/3").status_code == 404
    assert client.get("/actors/nothing/versions/1").status_code == 404
    assert client.get(f"/nowhere/{created['id']}/versions/1").status_code == 404


# --------------------------------------------------------------------------- pages


def test_the_root_is_the_streams_one_view_and_links_every_page(feed, client, writer):
    ids = [writer.create()["id"] for _ in range(4)]
    for entity_id in ids[:3]:
        writer.rename(entity_id, "Umbenannt")  # 7 changes: pages 1, 2 full, 3 filling
    stream = get_graph(client, "/feed")
    assert (STREAM, RDF.type, LDES.EventStream) in stream
    assert list(stream.objects(STREAM, TREE.view)) == [ROOT]
    assert stream.value(STREAM, LDES.timestampPath) == PROV.generatedAtTime
    assert stream.value(STREAM, LDES.versionOfPath) == DCTERMS.isVersionOf
    assert stream.value(STREAM, LDES.pollingInterval) == Literal(60, datatype=XSD.integer)
    root = get_graph(client, "/feed/root")
    links = relations(root)
    assert sorted(links) == [f"{BASE}/feed/{n}" for n in (1, 2, 3)]
    seen = []
    for number in (1, 2, 3):
        page = get_graph(client, f"/feed/{number}")
        bounds, times = links[f"{BASE}/feed/{number}"], timestamps(page)
        seen += members(page)
        lower = datetime.fromisoformat(str(bounds[TREE.GreaterThanOrEqualToRelation]))
        assert all(t >= lower for t in times)
        if number < 3:
            upper = datetime.fromisoformat(str(bounds[TREE.LessThanRelation]))
            assert len(times) == PAGE_SIZE and all(t < upper for t in times)
            assert page.value(URIRef(f"{BASE}/feed/{number}"), LDES.immutable) == Literal(True)
        else:
            assert TREE.LessThanRelation not in bounds and len(times) == 1
            assert (URIRef(f"{BASE}/feed/3"), LDES.immutable, None) not in page
    assert len(seen) == len(set(seen)) == 7
    assert client.get("/feed/4").status_code == 404
    assert client.get("/feed/0").status_code == 404


def test_an_empty_feed_links_its_first_page_without_bounds(feed, client):
    links = relations(get_graph(client, "/feed/root"))
    assert links == {f"{BASE}/feed/1": {TREE.Relation: None}}
    assert members(get_graph(client, "/feed/1")) == []


def test_published_timestamps_never_go_back(feed, app, client, writer):
    """Two writers may commit in the other order than they read the clock (LDES §2)."""
    ids = [writer.create()["id"] for _ in range(5)]
    with app.app_context():
        session = db.session()
        first = session.scalar(select(Change.at).where(Change.seq == 1))
        # the 4th change (first of page 2) claims to be older than everything before it
        session.execute(update(Change).where(Change.seq == 4).values(
            at=first - timedelta(hours=1)))
        session.commit()
    times = [t for n in (1, 2) for t in times_in_log_order(client, f"/feed/{n}")]
    assert len(times) == 5 and times == sorted(times)
    bounds = relations(get_graph(client, "/feed/root"))[f"{BASE}/feed/2"]
    assert all(t >= datetime.fromisoformat(str(bounds[TREE.GreaterThanOrEqualToRelation]))
               for t in times[3:])
    member = version(ids[3], 1)
    dereferenced = get_graph(client, f"/actors/{ids[3]}/versions/1")
    assert datetime.fromisoformat(str(dereferenced.value(member, PROV.generatedAtTime))) == times[3]


# --------------------------------------------------------------------------- caching


def test_root_and_filling_page_revalidate_and_are_never_immutable(feed, client, writer):
    writer.create()
    for path in ("/feed", "/feed/root", "/feed/1"):
        response = client.get(path)
        cache = response.headers["Cache-Control"]
        assert "immutable" not in cache and "max-age=60" in cache
        etag = response.headers["ETag"]
        assert etag.startswith('W/"')
        for tag in (etag, etag[2:], f'"other", {etag}', "*"):
            again = client.get(path, headers={"If-None-Match": tag})
            assert again.status_code == 304 and again.headers["ETag"] == etag
        assert client.get(path, headers={"If-None-Match": '"other"'}).status_code == 200
    root_tag = client.get("/feed/root").headers["ETag"]
    page_tag = client.get("/feed/1").headers["ETag"]
    writer.create()
    # a new member: the filling page changed, the root did not (its bounds stand)
    assert client.get("/feed/1", headers={"If-None-Match": page_tag}).status_code == 200
    assert client.get("/feed/root", headers={"If-None-Match": root_tag}).status_code == 304
    writer.create()  # page 1 is full now: the root links page 2
    assert client.get("/feed/root", headers={"If-None-Match": root_tag}).status_code == 200


def test_full_pages_are_immutable(feed, client, writer):
    for _ in range(PAGE_SIZE):
        writer.create()
    response = client.get("/feed/1", headers=NT)
    assert response.headers["Cache-Control"] == IMMUTABLE
    assert "Vary" in response.headers and response.headers["ETag"]
    assert client.get("/feed/1", headers={**NT, "If-None-Match": response.headers["ETag"]}
                      ).status_code == 304
    writer.create()
    assert client.get("/feed/1", headers=NT).get_data() == response.get_data()


# --------------------------------------------------------------------------- retention


def test_full_history_is_declared(feed, client):
    root = get_graph(client, "/feed/root")
    policy = root.value(ROOT, LDES.retentionPolicy)
    assert policy == URIRef(f"{BASE}/feed#retention")
    assert (policy, RDF.type, LDES.RetentionPolicy) in root
    assert root.value(policy, LDES.startingFrom) == Literal("1970-01-01T00:00:00Z",
                                                            datatype=XSD.dateTime)
    assert root.value(policy, LDES.versionAmount) is None


def test_compaction_keeps_latest_versions_and_deletions(feed, app, client, writer):
    app.config.update(FEED_RETENTION="latest", FEED_KEEP_DELETES_DAYS=30)
    a, b, c = (writer.create()["id"] for _ in range(3))
    writer.rename(a, "A2")
    writer.delete(b)
    writer.rename(a, "A3")  # 6 changes: page 1 = a1 b1 c1, page 2 = a2 b2(delete) a3
    root = get_graph(client, "/feed/root")
    policy = root.value(ROOT, LDES.retentionPolicy)
    assert (policy, RDF.type, LDES.LatestVersionSubset) in root
    assert root.value(policy, LDES.versionAmount) == Literal(1, datatype=XSD.integer)
    assert root.value(policy, LDES.amount) == Literal(1, datatype=XSD.integer)
    assert root.value(policy, LDES.versionDeleteDuration) == Literal("P30D",
                                                                     datatype=XSD.duration)
    pages = {n: get_graph(client, f"/feed/{n}") for n in (1, 2)}
    assert members(pages[1]) == [version(c, 1)]
    assert members(pages[2]) == sorted([version(b, 2), version(a, 3)])
    assert (version(b, 2), RDF.type, AS.Delete) in pages[2]
    # compaction changes full pages: none is immutable
    response = client.get("/feed/1")
    assert "immutable" not in response.headers["Cache-Control"]
    assert (URIRef(f"{BASE}/feed/1"), LDES.immutable, None) not in pages[1]
    # a superseded version is gone; the latest is there
    assert client.get(f"/actors/{a}/versions/1").status_code == 410
    assert client.get(f"/actors/{a}/versions/3").status_code == 200
    # deletions leave after FEED_KEEP_DELETES_DAYS; their page stays
    etag = client.get("/feed/2").headers["ETag"]
    with app.app_context():
        db.session().execute(update(Change).where(Change.op == "delete").values(
            at=store.now() - timedelta(days=31)))
        db.session().commit()
    response = client.get("/feed/2", headers={"If-None-Match": etag})
    assert response.status_code == 200
    assert members(parse(client.get("/feed/2", headers=NT))) == [version(a, 3)]
    assert client.get(f"/actors/{b}/versions/2").status_code == 410


def test_compaction_keeps_deletions_forever_by_default(feed, app, client, writer):
    app.config.update(FEED_RETENTION="latest")
    gone = writer.create()["id"]
    writer.delete(gone)
    with app.app_context():
        db.session().execute(update(Change).values(at=store.now() - timedelta(days=3650)))
        db.session().commit()
    assert members(get_graph(client, "/feed/1")) == [version(gone, 2)]
    policy = get_graph(client, "/feed/root")
    assert not list(policy.objects(None, LDES.versionDeleteDuration))


def test_bad_feed_settings_stop_the_app(tmp_path):
    from service import create_app

    with pytest.raises(ValueError, match="FEED_RETENTION"):
        create_app({"TESTING": True, "DATABASE_URL": f"sqlite:///{tmp_path}/x.sqlite3",
                    "FEED_RETENTION": "some"})


# --------------------------------------------------------------------------- formats


def test_every_document_parses_the_same_in_every_format(feed, client, writer):
    created = writer.create()
    writer.delete(created["id"])
    for path in ("/feed", "/feed/root", "/feed/1", f"/actors/{created['id']}/versions/2"):
        graphs = []
        for media_type in FORMATS:
            response = client.get(path, headers={"Accept": media_type})
            assert response.mimetype == media_type and response.headers["Vary"] == "Accept"
            graphs.append(parse(response))
        assert len(graphs[0]) > 0
        assert all(isomorphic(graphs[0], g) for g in graphs[1:]), path
    doc = orjson.loads(client.get("/feed/1", headers={"Accept": "application/ld+json"}).data)
    assert isinstance(doc["@context"], dict)  # inline: nothing to fetch
    assert client.get("/feed/1?format=nq").mimetype == "application/n-quads"


@pytest.mark.parametrize("accept", ["", "*/*", "text/html,application/xhtml+xml,*/*;q=0.8"])
def test_browsers_and_bare_requests_get_turtle(feed, client, accept):
    assert client.get("/feed/root", headers={"Accept": accept}).mimetype == "text/turtle"


@pytest.mark.parametrize("accept", ["application/rdf+xml", "text/html", "text/csv"])
def test_other_media_types_are_not_acceptable(feed, client, accept):
    response = client.get("/feed", headers={"Accept": accept})
    assert response.status_code == 406
    assert response.mimetype == "application/problem+json"
    assert "application/n-quads" in response.get_json()["media_types"]
    assert client.get("/feed?format=rdf").status_code == 406


# --------------------------------------------------------------------------- overload


def test_too_many_feed_requests_at_once_get_429(feed, app, client):
    gate = app.extensions["atlas_feed_gate"]
    taken = 0
    while gate.acquire(blocking=False):
        taken += 1
    try:
        assert taken == app.config["FEED_MAX_CONCURRENT"] == 8
        for path in ("/feed", "/feed/root", "/feed/1"):
            response = client.get(path, headers={"Accept": "text/html"})
            assert response.status_code == 429
            assert response.mimetype == "application/problem+json"
            assert int(response.headers["Retry-After"]) >= 1
        assert client.get("/actors").status_code == 200  # the rest of the node is not gated
    finally:
        for _ in range(taken):
            gate.release()
    assert client.get("/feed").status_code == 200
