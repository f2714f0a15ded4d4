"""/dumps/: whole-dataset files that parse, hold exactly the live records, are
rebuilt only when the data change, revalidate with 304, and survive concurrency."""

from __future__ import annotations

import fcntl
import gc
import gzip
import os
import threading
import time
import tracemalloc
from datetime import UTC, datetime

import orjson
import pytest
import rdflib
from flask.testing import FlaskClient
from rdflib.compare import isomorphic

import service.dumps as dumps_module
from exports.tabular import read_table, table
from service import changes, db, store
from service.cli import main
from service.dumps import dump_info, dumps, dumps_dir
from tests.rdf_helpers import graph_of, parse_output
from vocab import ENTITIES, load_record
from vocab.fields import ENTITY_BY_COLLECTION

from ..conftest import BASE

RECORDS = {
    "actor": [{"name": {"de": "Nachbarschaftshilfe Pieschen", "en": "Pieschen aid"},
               "actorTypes": ["verein"], "description": {"de": 'Sagt "hallo"\nund mehr'},
               "geo": {"latitude": 51.08, "longitude": 13.72},
               "contactPoints": [{"contactType": {"de": "Beratung"},
                                  "email": "beratung@pieschen.example"}]},
              {"name": {"de": "Code Door"}, "actorTypes": ["digital_project"]},
              {"name": {"de": "Wird gelöscht"}, "actorTypes": ["verein"]}],
    "offer": [{"name": {"de": "Sprachcafé", "ar": "مقهى اللغة"}, "offerTypes": ["course"],
               "provider": f"{BASE}/actors/abc234"}],
    "event": [{"name": {"de": "Stadtteilfest"}, "startDate": "2026-06-01T14:00:00Z"}],
    "cooperation": [{"partners": [f"{BASE}/actors/abc234", "https://other.example/actors/x9"],
                     "levels": ["professional"]}],
}


@pytest.fixture(autouse=True)
def _literals_as_written(monkeypatch):
    monkeypatch.setattr(rdflib, "NORMALIZE_LITERALS", False)


class _BufferedClient(FlaskClient):
    """Reads and closes every response: a dump is an open file that the WSGI server
    closes (PEP 3333), which the test client does only for buffered responses."""

    def open(self, *args, **kwargs):
        kwargs.setdefault("buffered", True)
        return super().open(*args, **kwargs)


@pytest.fixture(autouse=True)
def _buffered(app):
    app.test_client_class = _BufferedClient


@pytest.fixture
def node(app):
    """Records of several kinds, one of them deleted; returns the deleted actor's URI."""
    with app.app_context():
        session = db.session()
        created = [store.create(session, kind, load_record(kind, data))
                   for kind, items in RECORDS.items() for data in items]
        gone = created[2]
        store.delete_entity(session, "actor", gone.id, expected_version=None)
    return f"{BASE}/actors/{gone.id}"


def live(app, kind: str | None = None) -> list[tuple[str, dict]]:
    from service.importer import live_entities

    with app.app_context():
        kinds = [kind] if kind else list(ENTITIES)
        return [(k, s.record) for k in kinds for s in live_entities(db.session(), k)]


def file_of(app, name: str):
    return dumps_dir(app) / name


# --------------------------------------------------------------------------- contents


def test_every_dump_holds_exactly_the_live_records(app, client, node):
    names = []
    for dump in dumps():
        response = client.get(f"/dumps/{dump.name}")
        assert response.status_code == 200, dump.name
        body = gzip.decompress(response.data)
        pairs = live(app, dump.kind)
        names.append(dump.name)
        if dump.format.name == "csv":
            ids = [row["id"] for row in read_table(body, "csv")[1]]
            header, rows = read_table(body, "csv") if body.strip() else ([], [])
            columns, cells = table(dump.kind, [r for _k, r in pairs])
            assert header == columns
            assert rows == [dict(zip(columns, c, strict=True))  # the dump is in pk order
                            for c in sorted(cells, key=lambda c: ids.index(c[0]))]
            continue
        graph = parse_output(dump.format.name, body)
        assert isomorphic(graph, graph_of(pairs, BASE)), dump.name
        assert rdflib.URIRef(node) not in set(graph.subjects()), dump.name
    assert "all.nt.gz" in names and "all.csv.gz" not in names
    assert len(names) == 3 + 4 * len(ENTITY_BY_COLLECTION)


def test_the_all_dump_is_the_union_of_every_kind(app, client, node):
    graph = parse_output("ntriples", gzip.decompress(client.get("/dumps/all.nt.gz").data))
    assert isomorphic(graph, graph_of(live(app), BASE))
    assert len({k for k, _r in live(app)}) == 4


def test_small_batches_page_through_everything(app, client, node):
    app.config["DUMP_BATCH_SIZE"] = 2
    body = gzip.decompress(client.get("/dumps/all.jsonld.gz").data)
    assert len(orjson.loads(body)["@graph"]) == len(live(app)) == 5


@pytest.mark.parametrize("name", ["all.csv.gz", "actors.json.gz", "actors.nt", "people.nt.gz",
                                  "actors.rdf.gz", "actors.NT.gz", "..%2Fatlas.sqlite3"])
def test_unknown_dumps_are_404(client, name):
    response = client.get(f"/dumps/{name}", headers={"Accept": "application/json"})
    assert response.status_code == 404
    assert response.mimetype == "application/problem+json"


# --------------------------------------------------------------------------- HTTP


def test_headers_describe_a_gzip_file(app, client, node):
    response = client.get("/dumps/actors.ttl.gz")
    assert response.headers["Content-Type"] == "application/gzip"
    assert "Content-Encoding" not in response.headers
    assert response.headers["Content-Disposition"] == "attachment; filename=actors.ttl.gz"
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    assert response.headers["Accept-Ranges"] == "bytes"
    assert int(response.headers["Content-Length"]) == len(response.data)
    with app.app_context():
        seq = changes.latest_seq(db.session())
        last = changes.last_change_at(db.session())
    etag, weak = response.get_etag()
    assert not weak and etag.startswith(f"{seq}-turtle-")
    assert response.last_modified == last.replace(microsecond=0)
    assert "max-age=60" in response.headers["Cache-Control"]


def test_revalidation_answers_304(client, node):
    first = client.get("/dumps/offers.nt.gz")
    again = client.get("/dumps/offers.nt.gz", headers={"If-None-Match": first.headers["ETag"]})
    assert again.status_code == 304 and again.data == b""
    assert again.headers["ETag"] == first.headers["ETag"]
    since = client.get("/dumps/offers.nt.gz",
                       headers={"If-Modified-Since": first.headers["Last-Modified"]})
    assert since.status_code == 304
    other = client.get("/dumps/offers.nt.gz", headers={"If-None-Match": '"0-ntriples-x"'})
    assert other.status_code == 200


def test_head_and_range(client, node):
    full = client.get("/dumps/all.ttl.gz")
    head = client.head("/dumps/all.ttl.gz")
    assert head.status_code == 200 and head.data == b""
    assert head.headers["Content-Length"] == full.headers["Content-Length"]
    assert head.headers["ETag"] == full.headers["ETag"]
    part = client.get("/dumps/all.ttl.gz", headers={"Range": "bytes=10-19"})
    assert part.status_code == 206
    assert part.data == full.data[10:20]
    assert part.headers["Content-Range"] == f"bytes 10-19/{len(full.data)}"
    stale = client.get("/dumps/all.ttl.gz", headers={"Range": "bytes=0-9", "If-Range": '"1-x"'})
    assert stale.status_code == 200 and stale.data == full.data


# --------------------------------------------------------------------------- rebuilding


def test_unchanged_data_do_not_rebuild_and_a_change_does(app, client, node):
    first = client.get("/dumps/actors.nt.gz")
    path = file_of(app, "actors.nt.gz")
    stat = path.stat()
    second = client.get("/dumps/actors.nt.gz")
    assert second.headers["ETag"] == first.headers["ETag"]
    assert path.stat().st_mtime_ns == stat.st_mtime_ns and path.stat().st_ino == stat.st_ino

    with app.app_context():
        created = store.create(db.session(), "actor",
                               load_record("actor", {"name": {"de": "Neu"},
                                                     "actorTypes": ["verein"]}))
    third = client.get("/dumps/actors.nt.gz")
    assert third.headers["ETag"] != first.headers["ETag"]
    assert path.stat().st_ino != stat.st_ino
    assert f"/actors/{created.id}>".encode() in gzip.decompress(third.data)
    # The client's old copy is no longer current.
    assert client.get("/dumps/actors.nt.gz",
                      headers={"If-None-Match": first.headers["ETag"]}).status_code == 200


def test_a_deletion_leaves_the_next_dump(app, client, node):
    client.get("/dumps/all.nt.gz")
    (kind, record), *_ = live(app, "event")
    with app.app_context():
        store.delete_entity(db.session(), kind, record["id"], expected_version=None)
    body = gzip.decompress(client.get("/dumps/all.nt.gz").data)
    assert f"/events/{record['id']}>".encode() not in body


def test_a_new_software_version_rebuilds(app, client, node, monkeypatch):
    first = client.get("/dumps/events.csv.gz").headers["ETag"]
    monkeypatch.setattr(dumps_module, "__version__", "99.0.0")
    second = client.get("/dumps/events.csv.gz").headers["ETag"]
    assert second != first and second.endswith('-99.0.0"')


def test_leftovers_of_a_killed_build_are_removed(app, client, node):
    client.get("/dumps/events.nt.gz")
    leftover = file_of(app, ".events.nt.gz.4242-1.tmp")
    leftover.write_bytes(b"half a file")
    with app.app_context():
        store.create(db.session(), "event", load_record(
            "event", {"name": {"de": "Noch ein Fest"}, "startDate": "2026-07-01T10:00:00Z"}))
    client.get("/dumps/events.nt.gz")
    assert not leftover.exists()


# --------------------------------------------------------------------------- concurrency


def _hold_lock(app, name: str):
    dumps_dir(app).mkdir(parents=True, exist_ok=True)
    fd = os.open(dumps_dir(app) / f".{name}.lock", os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX)
    return fd


def test_while_another_process_rebuilds_the_previous_file_is_served(app, client, node):
    first = client.get("/dumps/actors.ttl.gz")
    with app.app_context():
        store.create(db.session(), "actor", load_record("actor", {"name": {"de": "Neu"},
                                                                  "actorTypes": ["verein"]}))
    fd = _hold_lock(app, "actors.ttl.gz")  # as if another worker were rebuilding
    try:
        during = client.get("/dumps/actors.ttl.gz")
    finally:
        os.close(fd)
    assert during.status_code == 200
    assert during.headers["ETag"] == first.headers["ETag"]
    assert during.data == first.data
    assert client.get("/dumps/actors.ttl.gz").headers["ETag"] != first.headers["ETag"]


def test_a_first_build_elsewhere_makes_others_wait_then_503(app, client, node):
    app.config["DUMP_WAIT_SECONDS"] = 0.2
    fd = _hold_lock(app, "offers.ttl.gz")
    try:
        response = client.get("/dumps/offers.ttl.gz", headers={"Accept": "application/json"})
    finally:
        os.close(fd)
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "1"
    assert not file_of(app, "offers.ttl.gz").exists()
    assert client.get("/dumps/offers.ttl.gz").status_code == 200


@pytest.mark.parametrize("previous", [True, False], ids=["stale file", "no file yet"])
def test_two_requests_at_once_build_once_and_both_get_a_complete_file(
        app, node, monkeypatch, previous):
    if previous:
        app.test_client().get("/dumps/all.nt.gz")
        with app.app_context():
            store.create(db.session(), "project",
                         load_record("project", {"name": {"de": "Code Door"}}))
    builds, started, release = [], threading.Event(), threading.Event()
    real = dumps_module.write_gzip_file

    def slow_write(*args, **kwargs):
        builds.append(threading.get_ident())
        started.set()
        assert release.wait(10)
        return real(*args, **kwargs)

    monkeypatch.setattr(dumps_module, "write_gzip_file", slow_write)
    results: dict[str, object] = {}

    def fetch(label: str) -> None:
        results[label] = app.test_client().get("/dumps/all.nt.gz")

    first = threading.Thread(target=fetch, args=("first",))
    first.start()
    assert started.wait(10)
    second = threading.Thread(target=fetch, args=("second",))
    second.start()
    if previous:
        second.join(10)  # served the previous file without waiting for the build
        assert not second.is_alive()
    else:
        time.sleep(0.3)  # let it wait for the lock (either way, it must not build)
    release.set()
    first.join(10)
    second.join(10)
    assert len(builds) == 1
    expected_graph = graph_of(live(app), BASE)
    for label in ("first", "second"):
        response = results[label]
        assert response.status_code == 200
        body = gzip.decompress(response.data)  # complete: the gzip trailer checks it
        graph = parse_output("ntriples", body)
        if label == "first" or not previous:
            assert isomorphic(graph, expected_graph)
        else:
            assert len(graph) < len(expected_graph)  # the previous, complete file


# --------------------------------------------------------------------------- catalog, CLI


def test_dump_info_lists_every_dump_for_the_catalog(app, client, node):
    before = {info.name: info for info in dump_info(app)}
    assert len(before) == 3 + 4 * len(ENTITY_BY_COLLECTION)
    ttl = before["actors.ttl.gz"]
    assert (ttl.collection, ttl.format, ttl.media_type, ttl.compress_format) == (
        "actors", "turtle", "text/turtle", "application/gzip")
    assert ttl.url == f"{BASE}/dumps/actors.ttl.gz"
    assert ttl.byte_size is None and ttl.fresh is False
    assert before["all.jsonld.gz"].media_type == "application/ld+json"

    client.get("/dumps/actors.ttl.gz")
    ttl = {i.name: i for i in dump_info(app)}["actors.ttl.gz"]
    assert ttl.byte_size == file_of(app, "actors.ttl.gz").stat().st_size
    assert ttl.fresh and ttl.records == 2
    assert isinstance(ttl.modified, datetime) and ttl.modified.tzinfo == UTC

    built = dump_info(app, build=True)
    assert all(i.fresh and i.byte_size for i in built)


def test_cli_builds_every_dump(app, runner, node):
    result = runner.invoke(main, ["dumps", "build"])
    assert result.exit_code == 0, result.output
    for dump in dumps():
        assert dump.name in result.output
        assert file_of(app, dump.name).exists()
    assert "all.nt.gz" in result.output and " 5 entities" in result.output


# --------------------------------------------------------------------------- memory


def test_memory_is_bounded_by_the_batch_not_the_node(app, node):
    """The database is read in keyset batches: five times the entities, the same memory,
    far below the dump itself (a behaviour, not a timing)."""
    app.config["DUMP_BATCH_SIZE"] = 10
    dump = dumps_module.find("all.nt.gz")

    def add_actors(count: int) -> None:
        with app.app_context():
            session = db.session()
            for n in range(count):
                store.create(session, "actor", load_record("actor", {
                    **RECORDS["actor"][0], "name": {"de": f"Verein {n}", "en": f"Club {n}"},
                    "description": {"de": f"Beschreibung {n}. " * 400}}))

    def peak(folder: str) -> tuple[int, int]:
        app.config["DUMPS_DIR"] = str(dumps_dir(app).parent / folder)
        gc.collect()
        tracemalloc.start()
        try:
            file, state = dumps_module.open_dump(app, dump)
            file.close()
            return tracemalloc.get_traced_memory()[1], state.records
        finally:
            tracemalloc.stop()

    add_actors(45)
    peak("warm")
    small, small_count = peak("small")
    add_actors(400)
    large, large_count = peak("large")
    assert (small_count, large_count) == (50, 450)
    raw = len(gzip.decompress((dumps_dir(app) / "all.nt.gz").read_bytes()))
    # What stays: zlib's state (~260 KiB), the 64 KiB output buffer, one batch.
    assert large < 1024 * 1024 < raw / 3
    assert large < 1.5 * small + 64 * 1024
