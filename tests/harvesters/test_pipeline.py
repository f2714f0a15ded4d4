"""The harvest pipeline over an embedded Oxigraph store in tmp (issue 5 items 5 and 6).

Pages are built from realistic records (vocab.to_graph, parsed by harvesters.parse) the way
the readers hand them over. What must hold: each page is one atomic step with its cursor;
an update or delete touches only that entity; violators are quarantined with reasons while
the rest loads; a failing reader leaves the applied pages and the right cursor, and the next
run resumes; a SIGKILLed harvest leaves a consistent store; one failing source never stops
the others; runs are recorded as prov:Activity in the source's bookkeeping graph. Finally a
real node process is registered and harvested through the readers (first load, edits and
deletes made through its API, a no-change run).
"""

from __future__ import annotations

import copy
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pyoxigraph as ox
import pytest
import requests

from harvesters.errors import FetchError, ParseError
from harvesters.fetch import Fetcher, FetchPolicy
from harvesters.model import Member, Page, Source
from harvesters.parse import parse_rdf
from harvesters.pipeline import RUN_HISTORY, harvest, harvest_all
from harvesters.readers import read
from harvesters.sources import register
from harvesters.store import OxigraphStore, source_graph
from tests.e2e.conftest import cli_command, cli_env, descendants, free_port_block
from vocab import to_graph

REPO = Path(__file__).resolve().parents[2]
PROV = "http://www.w3.org/ns/prov#"
NAME = ox.NamedNode("https://schema.org/name")
ACTOR = {
    "name": {"de": "Freiwilligenagentur Halle", "en": "Volunteer agency Halle"},
    "description": {"de": "Anlaufstelle für Engagement in der Stadt."},
    "actorTypes": ["freiwilligenagentur"], "legalForm": "ev", "engagementMode": "blended",
    "status": "active", "lastConfirmed": "2026-11-01", "url": "https://example.org/",
    "geo": {"latitude": 51.48, "longitude": 11.97},
    "contactPoints": [{"contactType": {"de": "Beratung"}, "email": "rat@example.org"}],
}


def source(host: str = "node.test") -> Source:
    base = f"http://{host}"
    return Source(host, base + "/", base + "/", base + "/feed", base + "/dumps/all.nt.gz")


def triples(kind: str, record: dict, base: str) -> list[ox.Triple]:
    data = to_graph(kind, record, base).serialize(format="nt", encoding="utf-8")
    return parse_rdf(data, "application/n-triples", base_iri=None)


def actor(n: int, base: str = "http://node.test", version: int = 1, **changes) -> Member:
    record = {**copy.deepcopy(ACTOR), "id": f"a{n}", **changes}
    record["name"] = changes.get("name", {"de": f"Verein {n}"})
    entity = f"{base}/actors/a{n}"
    return Member(entity, f"{entity}/versions/{version}", f"2026-01-0{version}T10:00:00Z",
                  False, triples("actor", record, base))


def deleted(n: int, base: str = "http://node.test", version: int = 9) -> Member:
    entity = f"{base}/actors/a{n}"
    return Member(entity, f"{entity}/versions/{version}", "2026-02-01T10:00:00Z", True, [])


def project(n: int, base: str = "http://node.test") -> Member:
    entity = f"{base}/projects/p{n}"
    return Member(entity, None, None, False,
                  triples("project", {"id": f"p{n}", "name": {"de": f"Projekt {n}"}}, base))


def page(n: int, members: list[Member], **kw) -> Page:
    return Page(f"http://node.test/feed/{n}", members, {"page": n}, **kw)


def reader(pages: list[Page], fail_at: int | None = None, error: Exception | None = None):
    """A resumable reader over fixed pages: resumes after ``cursor["page"]``."""
    def read(_source: Source, cursor: dict | None):
        for i in range(0 if cursor is None else cursor["page"] + 1, len(pages)):
            if i == fail_at:
                raise error or FetchError("connection reset", reason="connection-failed")
            yield pages[i]
    return read


def graph(store: OxigraphStore, iri: str) -> set[ox.Triple]:
    return set(store.query(f"CONSTRUCT {{ ?s ?p ?o }} WHERE {{ GRAPH <{iri}> {{ ?s ?p ?o }} }}"))


def bookkeeping(store: OxigraphStore, subject: str, src: str = "node.test") -> dict[str, list]:
    found: dict[str, list] = {}
    for t in store.query(f"CONSTRUCT {{ <{subject}> ?p ?o }} WHERE {{ GRAPH "
                         f"<{source_graph(src)}> {{ <{subject}> ?p ?o }} }}"):
        found.setdefault(t.predicate.value.rsplit("#", 1)[-1], []).append(t.object.value)
    return found


@pytest.fixture
def store(tmp_path):
    with OxigraphStore(tmp_path / "index") as s:
        yield s


# --------------------------------------------------------------------------- loading


def test_first_load_applies_each_page_with_provenance_and_cursor(store):
    src = source()
    members = [actor(1), actor(2), project(1)]
    report = harvest(src, [page(0, members[:2]), page(1, members[2:])], store)
    assert report.ok and report.errors == [] and report.pages == 2
    assert report.members_applied == 3 and report.deletes == 0 and report.quarantined == []
    assert store.graphs_of(src.id) == {m.entity for m in members}
    for m in members:
        assert graph(store, m.entity) == set(m.triples)
    assert store.cursor(src.id) == {"page": 1} == report.cursor
    prov = bookkeeping(store, members[0].entity)
    assert prov["wasDerivedFrom"] == [src.entry_url]
    assert prov["hadPrimarySource"] == [members[0].version]
    assert prov["wasGeneratedBy"] == [report.run] and len(prov["generatedAtTime"]) == 1
    assert prov["versionTimestamp"] == ["2026-01-01T10:00:00Z"]
    assert "hadPrimarySource" not in bookkeeping(store, members[2].entity)  # no version known
    run = bookkeeping(store, report.run)
    assert run["type"] == [PROV + "Activity"] and run["used"] == [src.entry_url]
    assert run["succeeded"] == ["true"] and run["pages"] == ["2"]
    assert run["membersApplied"] == ["3"] and "startedAtTime" in run and "endedAtTime" in run


def test_an_update_replaces_only_that_entitys_graph(store):
    src = source()
    harvest(src, [page(0, [actor(1), actor(2), project(1)])], store)
    before = {e: graph(store, e) for e in store.graphs_of(src.id)}
    renamed = actor(1, version=2, name={"de": "Neuer Name"})
    report = harvest(src, [page(1, [renamed])], store)
    assert report.ok and report.members_applied == 1
    assert graph(store, renamed.entity) == set(renamed.triples)
    assert ox.Literal("Verein 1", language="de") not in {t.object for t in
                                                          graph(store, renamed.entity)}
    for entity, old in before.items():
        if entity != renamed.entity:
            assert graph(store, entity) == old
    assert bookkeeping(store, renamed.entity)["hadPrimarySource"] == [renamed.version]


def test_the_last_member_of_an_entity_in_a_page_wins(store):
    src = source()
    final = actor(1, version=3, name={"de": "Dritter Name"})
    harvest(src, [page(0, [actor(1), deleted(1, version=2), final])], store)
    assert graph(store, final.entity) == set(final.triples)
    harvest(src, [page(1, [actor(1, version=4), deleted(1, version=5)])], store)
    assert store.graphs_of(src.id) == set()


def test_a_delete_drops_the_entity_and_its_provenance(store):
    src = source()
    harvest(src, [page(0, [actor(1), actor(2)])], store)
    keep = graph(store, actor(2).entity)
    report = harvest(src, [page(1, [deleted(1)])], store)
    assert report.ok and report.deletes == 1 and report.members_applied == 0
    assert store.graphs_of(src.id) == {actor(2).entity}
    assert graph(store, actor(1).entity) == set() and bookkeeping(store, actor(1).entity) == {}
    assert graph(store, actor(2).entity) == keep


def test_a_violating_entity_is_quarantined_with_reasons_while_others_load(store):
    src = source()
    harvest(src, [page(0, [actor(1), actor(2)])], store)
    bad = actor(1, version=2, url="javascript:alert(1)")
    report = harvest(src, [page(1, [bad, actor(3)])], store)
    assert report.ok and report.members_applied == 1 and report.quarantined_count == 1
    [(entity, reasons)] = report.quarantined
    assert entity == bad.entity and any(r.startswith("url:") for r in reasons)
    # not loaded, and the earlier version does not linger
    assert store.graphs_of(src.id) == {actor(2).entity, actor(3).entity}
    assert graph(store, bad.entity) == set()
    kept = bookkeeping(store, bad.entity)
    assert kept["quarantineReason"] == reasons and kept["hadPrimarySource"] == [bad.version]
    assert bookkeeping(store, report.run)["quarantined"] == [bad.entity]
    # a later valid version loads and clears the quarantine record
    fixed = actor(1, version=3)
    assert harvest(src, [page(2, [fixed])], store).quarantined == []
    assert graph(store, fixed.entity) == set(fixed.triples)
    assert "quarantineReason" not in bookkeeping(store, fixed.entity)


def test_warnings_are_loaded_and_counted(store):
    src = source()
    sparse = Member("http://node.test/actors/w1", None, None, False, triples(
        "actor", {"id": "w1", "name": {"de": "Verein"}, "actorTypes": ["verein"]},
        "http://node.test"))
    report = harvest(src, [page(0, [sparse, actor(1)])], store)
    assert report.ok and report.members_applied == 2 and report.warnings == 4
    assert graph(store, sparse.entity) == set(sparse.triples)
    warnings = bookkeeping(store, sparse.entity)["warning"]
    assert {w.split(":")[0] for w in warnings} == {"description", "engagementMode",
                                                    "lastConfirmed", "status"}
    assert bookkeeping(store, report.run)["warnings"] == ["4"]


def test_statements_outside_the_entity_or_the_uri_space_are_dropped(store):
    src = source()
    foreign = actor(1, base="http://other.test")
    sneaky = actor(2)
    sneaky.triples.append(ox.Triple(ox.NamedNode(actor(3).entity), NAME, ox.Literal("x")))
    report = harvest(src, [page(0, [foreign, sneaky], dropped=5, examples=["http://x.test/"])],
                     store)
    assert store.graphs_of(src.id) == {sneaky.entity}
    assert graph(store, sneaky.entity) == set(sneaky.triples[:-1])
    assert report.dropped == 5 + len(foreign.triples) + 1
    assert report.dropped_examples[:2] == ["http://x.test/", foreign.entity]


# --------------------------------------------------------------------------- snapshots


def test_a_full_replace_snapshot_deletes_what_it_did_not_contain(store):
    src = source()
    harvest(src, [page(0, [actor(1), actor(2), actor(3), actor(4, url="javascript:x")])], store)
    assert bookkeeping(store, actor(4).entity)["quarantineReason"]
    pages = [page(0, []), page(1, [actor(1)], snapshot="dump:1"),
             page(2, [actor(2, version=2)], snapshot="dump:1", full_replace=True)]
    interrupted = harvest(src, reader(pages, fail_at=2)(src, {"page": 0}), store)
    assert not interrupted.ok and len(store.graphs_of(src.id)) == 3  # nothing deleted yet
    report = harvest(src, reader(pages)(src, {"page": 0}), store)
    assert report.ok and report.deletes == 1
    assert store.graphs_of(src.id) == {actor(1).entity, actor(2).entity}
    assert bookkeeping(store, actor(3).entity) == {}
    assert bookkeeping(store, actor(4).entity) == {}  # its quarantine record went too


# --------------------------------------------------------------------------- failures


@pytest.mark.parametrize("error", [FetchError("reset", reason="connection-failed"),
                                   ParseError("bad turtle", reason="syntax")])
def test_a_failing_reader_keeps_applied_pages_and_the_next_run_resumes(store, error):
    src = source()
    pages = [page(n, [actor(2 * n), actor(2 * n + 1)]) for n in range(4)]
    first = harvest(src, reader(pages, fail_at=2, error=error)(src, None), store)
    assert not first.ok and first.pages == 2 and first.cursor == {"page": 1}
    assert first.errors == [f"{error.reason}: {error}"]
    assert store.cursor(src.id) == {"page": 1}
    assert store.graphs_of(src.id) == {actor(n).entity for n in range(4)}
    run = bookkeeping(store, first.run)
    assert run["succeeded"] == ["false"] and run["error"] == first.errors
    second = harvest(src, reader(pages)(src, store.cursor(src.id)), store)
    assert second.ok and second.pages == 2 and store.cursor(src.id) == {"page": 3}
    assert store.graphs_of(src.id) == {actor(n).entity for n in range(8)}


def test_a_page_the_store_refuses_is_not_applied_at_all(store):
    owner, intruder = source(), Source("intruder", "http://node.test/x/", "http://node.test/",
                                       None, None)
    harvest(owner, [page(0, [actor(1)])], store)
    report = harvest(intruder, [page(0, [actor(5)]), page(1, [actor(6), actor(1, version=2)])],
                     store)
    assert not report.ok and report.pages == 1 and "graph-owned-by-other-source" in report.errors[0]
    assert store.graphs_of("intruder") == {actor(5).entity}  # nothing of page 1
    assert store.cursor("intruder") == {"page": 0}
    assert graph(store, actor(1).entity) == set(actor(1).triples)


def test_only_the_newest_runs_are_kept(store):
    src = source()
    runs = [harvest(src, [], store).run for _ in range(RUN_HISTORY + 3)]
    kept = {row["r"].value for row in store.query(
        f"SELECT ?r WHERE {{ GRAPH <{source_graph(src.id)}> {{ ?r a <{PROV}Activity> }} }}")}
    assert kept == set(runs[-RUN_HISTORY:])


def test_harvest_all_isolates_a_failing_source(store):
    hosts = ["a.test", "b.test", "c.test", "d.test"]
    srcs = [source(h) for h in hosts]
    pages = {h: [page(n, [actor(n, base=f"http://{h}")]) for n in range(3)] for h in hosts}

    def reader_for(src: Source, cursor):
        if src.id == "c.test":
            raise FetchError("no route", reason="connection-failed")
        return reader(pages[src.id], fail_at=1 if src.id == "b.test" else None)(src, cursor)

    reports = harvest_all(srcs, reader_for, store, workers=3)
    assert [r.source_id for r in reports] == hosts
    assert [r.ok for r in reports] == [True, False, False, True]
    assert store.graphs_of("a.test") == {actor(n, base="http://a.test").entity for n in range(3)}
    assert store.graphs_of("b.test") == {actor(0, base="http://b.test").entity}
    assert store.graphs_of("c.test") == set() and "connection-failed" in reports[2].errors[0]
    assert len(store.graphs_of("d.test")) == 3


# --------------------------------------------------------------------------- crash safety

CHILD = textwrap.dedent("""
    import sys
    from functools import partial
    from harvesters import pipeline
    from harvesters.pipeline import harvest
    from harvesters.store import OxigraphStore
    from tests.harvesters.test_pipeline import crash_pages, source

    # pyshacl for every entity: pages slow enough (~50 ms) for the kill to land mid-run
    pipeline.check_entities = partial(pipeline.check_entities, fast=False)

    def announced(pages):
        for p in pages:
            yield p
            print("applied", p.cursor["page"], flush=True)  # resumed: p is in the store

    store = OxigraphStore(sys.argv[1])
    harvest(source(), announced(crash_pages()), store)
    print("done", flush=True)
""")


def crash_pages(start: int = 0) -> list[Page]:
    """30 pages of 12 actors; page n also renames an actor of page n - 1 (an update)."""
    out = []
    for n in range(start, 30):
        members = [actor(12 * n + i) for i in range(12)]
        if n:
            members.append(actor(12 * n - 1, version=2, name={"de": f"Umbenannt {n}"}))
        out.append(page(n, members))
    return out


def test_a_sigkilled_harvest_leaves_a_consistent_store_and_resume_converges(tmp_path):
    path = tmp_path / "index"
    env = {**os.environ,
           "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(path)], cwd=REPO, env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while True:  # bounded: the deadline, or the child's output ends
            line = child.stdout.readline()
            assert line and time.monotonic() < deadline, child.stderr.read()
            if line.split() == ["applied", "4"]:
                break
        time.sleep(random.uniform(0.0, 0.3))  # land anywhere in the next pages' work
        child.send_signal(signal.SIGKILL)
    finally:
        child.kill()
        child.wait(30)
        child.stdout.close()
        child.stderr.close()
    expected = {m.entity: m for p in crash_pages() for m in p.members}  # last version wins
    with OxigraphStore(path) as store:
        cursor = store.cursor("node.test")
        assert cursor is not None and 4 <= cursor["page"] < 29
        applied = [m for p in crash_pages()[:cursor["page"] + 1] for m in p.members]
        state = {m.entity: m for m in applied}
        assert store.graphs_of("node.test") == set(state)  # exactly the applied pages
        for entity, member in state.items():  # every graph complete, in its latest version
            assert graph(store, entity) == set(member.triples), entity
        report = harvest(source(), crash_pages(cursor["page"] + 1), store)
        assert report.ok and store.cursor("node.test") == {"page": 29}
        assert store.graphs_of("node.test") == set(expected)
        for entity in random.sample(sorted(expected), 40):
            assert graph(store, entity) == set(expected[entity].triples)


# --------------------------------------------------------------------------- a real node


@pytest.fixture
def real_node(tmp_path):
    """A node process (``service.cli serve``) with an editor token, on a loopback port."""
    port = free_port_block(1)
    base = f"http://127.0.0.1:{port}"
    env = {**cli_env(tmp_path / "instance"), "ATLAS_BASE_URL": base,
           "ATLAS_DATABASE_URL": f"sqlite:///{tmp_path}/atlas.sqlite3",
           "ATLAS_FEED_PAGE_SIZE": "20"}
    run = dict(env=env, cwd=tmp_path, check=True, capture_output=True, text=True, timeout=120)
    subprocess.run(cli_command("db", "upgrade"), **run)
    token = subprocess.run(cli_command("token", "create", "--name", "h", "--role", "editor"),
                           **run).stdout.strip().splitlines()[-1]
    log = (tmp_path / "serve.log").open("w")
    proc = subprocess.Popen(cli_command("serve", "--host", "127.0.0.1", "--port", str(port)),
                            env=env, cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT)
    http = requests.Session()
    http.headers["Authorization"] = f"Bearer {token}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if http.get(base + "/feed", timeout=2).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            assert time.monotonic() < deadline, "the node did not come up"
            time.sleep(0.2)
        yield base, http
    finally:
        below = descendants(proc.pid)
        proc.kill()
        proc.wait(30)
        for pid in below:
            subprocess.run(["kill", "-9", str(pid)], capture_output=True, check=False)
        log.close()
        http.close()


def test_a_real_node_harvested_with_the_readers(real_node, tmp_path):
    base, http = real_node
    etags: dict[str, str] = {}

    def create(collection: str, body: dict) -> str:
        response = http.post(f"{base}/api/v1/{collection}", json=body, timeout=30)
        assert response.status_code == 201, response.text
        etags[response.headers["Location"]] = response.headers["ETag"]
        return response.headers["Location"]

    def api(uri: str) -> str:
        return base + "/api/v1" + uri[len(base):]

    actors = [create("actors", {**{k: v for k, v in ACTOR.items() if k != "url"},
                                "name": {"de": f"Verein {n}"}}) for n in range(30)]
    projects = [create("projects", {"name": {"de": f"Projekt {n}"}}) for n in range(5)]
    fetcher = Fetcher(FetchPolicy(allow_private=True, deadline=30))
    src = register(base, fetcher)
    assert src.uri_space == base + "/"
    with OxigraphStore(tmp_path / "index") as store:
        def run():
            return harvest_all([src], lambda s, c: read(s, c, fetcher), store)[0]

        first = run()
        assert first.ok, first.errors
        assert store.graphs_of(src.id) == set(actors + projects)
        assert first.quarantined == [] and first.dropped == 0
        name = {t.object for t in graph(store, actors[0]) if t.predicate == NAME}
        assert name == {ox.Literal("Verein 0", language="de")}
        before = {e: graph(store, e) for e in actors + projects}
        for uri in actors[:3]:
            response = http.patch(api(uri), json={"name": {"de": "Umbenannt"}}, timeout=30,
                                  headers={"If-Match": etags[uri]})
            assert response.status_code == 200, response.text
        for uri in actors[3:5]:
            assert http.delete(api(uri), headers={"If-Match": etags[uri]},
                               timeout=30).status_code == 204
        second = run()
        assert second.ok and second.members_applied == 3 and second.deletes == 2
        assert store.graphs_of(src.id) == set(actors + projects) - set(actors[3:5])
        for uri in actors[:3]:
            assert ox.Literal("Umbenannt", language="de") in {t.object for t in graph(store, uri)}
        for uri in actors[5:] + projects:
            assert graph(store, uri) == before[uri]  # nothing else changed
        third = run()
        assert third.ok and third.members_applied == 0 and third.deletes == 0
        assert bookkeeping(store, actors[0], src.id)["wasDerivedFrom"] == [src.entry_url]
