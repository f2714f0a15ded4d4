"""Benchmark: LDES feed pages from a large change log.

1. One page of 250 synthetic actor versions: building its triples, then writing
   them with exports/triples.py versus rdflib's serializers (Turtle, N-Triples,
   JSON-LD with the same prefixes as an inline context).
2. A change log of --changes rows (bulk-inserted into SQLite, snapshots as the
   store writes them) served through the Flask test client: the first root
   request of a process (one aggregate pass over the log for the page bounds),
   later root requests, full pages deep in the log (built on the first request,
   then from the per-process cache), the page now filling, and 304 revalidations.

Prints a table; `--record` appends it to bench/RESULTS.md. A program, not a test:
nothing here asserts a threshold.
"""

from __future__ import annotations

import argparse
import platform
import random
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from rdflib import Graph
from sqlalchemy import insert

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from node_bench import synthetic_actor  # noqa: E402

from exports import ldes  # noqa: E402
from exports.triples import to_jsonld, to_ntriples, to_turtle  # noqa: E402
from service import create_app, db, store  # noqa: E402
from service.models import Change  # noqa: E402

BASE = "http://bench.test"


def timed(fn, repeat: int) -> tuple[float, float]:
    """(first, median of the rest) in milliseconds."""
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        times.append((time.perf_counter() - started) * 1000)
    return times[0], statistics.median(times[1:] or times)


def snapshots(count: int, start: datetime) -> list[dict]:
    rng = random.Random(7)
    rows = []
    for n in range(count):
        at = start + timedelta(seconds=n)
        record = synthetic_actor(rng, n)
        data = {"id": f"a{n:07d}", **record, "created": store.iso(at), "modified": store.iso(at)}
        rows.append({"at": at, "kind": "actor", "entity_id": f"a{n:07d}", "op": "create",
                     "version": 1, "data": data})
    return rows


def bench_writers(repeat: int) -> list[tuple[str, float]]:
    cfg = ldes.FeedConfig(BASE, 250, "full", 0, 60, "bench", "")
    start = datetime(2026, 1, 1, tzinfo=UTC)
    members = [ldes.Member("actor", r["entity_id"], 1, False, r["data"], r["at"])
               for r in snapshots(250, start)]
    rows = [("page triples: 250 members (mapping + rewrite)",
             timed(lambda: ldes.page_triples(cfg, 1, members, True), repeat)[1])]
    triples = ldes.page_triples(cfg, 1, members, True)
    graph = Graph(bind_namespaces="core")
    for prefix, namespace in ldes.PREFIXES.items():
        graph.bind(prefix, namespace, replace=True)
    for t in triples:
        graph.add(t)
    rows.append((f"  ({len(triples)} triples)", 0.0))
    for name, own, theirs in (
            ("turtle", lambda: to_turtle(triples, ldes.PREFIXES),
             lambda: graph.serialize(format="turtle", encoding="utf-8")),
            ("ntriples", lambda: to_ntriples(triples),
             lambda: graph.serialize(format="nt", encoding="utf-8")),
            ("jsonld", lambda: to_jsonld(triples, ldes.PREFIXES),
             lambda: graph.serialize(format="json-ld", context=dict(ldes.PREFIXES),
                                     encoding="utf-8"))):
        rows.append((f"write {name}: exports/triples.py", timed(own, repeat)[1]))
        rows.append((f"write {name}: rdflib", timed(theirs, max(3, repeat // 5))[1]))
    return rows


def bench_requests(changes: int, repeat: int) -> list[tuple[str, float]]:
    with tempfile.TemporaryDirectory(prefix="feed-bench-") as directory:
        return _bench_requests(Path(directory), changes, repeat)


def _bench_requests(directory: Path, changes: int, repeat: int) -> list[tuple[str, float]]:
    app = create_app({"DATABASE_URL": f"sqlite:///{directory}/atlas.sqlite3", "BASE_URL": BASE})
    db.upgrade(app)
    started = time.perf_counter()
    start = datetime(2026, 1, 1, tzinfo=UTC)
    with app.app_context():
        session = db.session()
        template = snapshots(1000, start)
        for offset in range(0, changes, 1000):
            batch = []
            for n, row in enumerate(template[: min(1000, changes - offset)]):
                i = offset + n
                batch.append({**row, "entity_id": f"a{i:07d}",
                              "at": start + timedelta(seconds=i),
                              "data": {**row["data"], "id": f"a{i:07d}"}})
            session.execute(insert(Change), batch)
        session.commit()
    print(f"inserted {changes} changes in {time.perf_counter() - started:.1f} s")
    client = app.test_client()
    size = app.config["FEED_PAGE_SIZE"]
    open_page = changes // size + 1
    nt = {"Accept": "application/n-triples"}
    rows = []
    first, _ = timed(lambda: client.get("/feed/root", headers=nt), 1)
    rows.append((f"GET /feed/root, first in process ({open_page} pages)", first))
    response = client.get("/feed/root", headers=nt)
    rows.append(("GET /feed/root, later (cached)", timed(
        lambda: client.get("/feed/root", headers=nt), repeat)[1]))
    rows.append(("  root size (KiB, N-Triples)", len(response.data) / 1024))
    tag = {"If-None-Match": response.headers["ETag"]}
    rows.append(("GET /feed/root, 304", timed(
        lambda: client.get("/feed/root", headers={**nt, **tag}), repeat)[1]))
    deep = open_page // 2
    for offset, media_type in enumerate(("application/n-triples", "text/turtle",
                                         "application/ld+json")):
        first, later = timed(lambda m=media_type, n=deep + offset: client.get(
            f"/feed/{n}", headers={"Accept": m}), repeat)
        rows.append((f"GET a full page ({size} members) {media_type}, built", first))
        rows.append((f"GET a full page ({size} members) {media_type}, cached", later))
    tag = {"If-None-Match": client.get(f"/feed/{deep}", headers=nt).headers["ETag"]}
    rows.append((f"GET /feed/{deep}, 304", timed(
        lambda: client.get(f"/feed/{deep}", headers={**nt, **tag}), repeat)[1]))
    rows.append((f"GET /feed/{open_page} (filling) N-Triples", timed(
        lambda: client.get(f"/feed/{open_page}", headers=nt), repeat)[1]))
    db.engine(app).dispose()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--changes", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--record", action="store_true", help="append to bench/RESULTS.md")
    args = parser.parse_args()
    rows = bench_writers(args.repeat) + bench_requests(args.changes, args.repeat)
    lines = [f"### Feed pages — {datetime.now(UTC):%Y-%m-%d %H:%M} UTC", "",
             f"{platform.python_version()}, {platform.machine()}, SQLite, "
             f"{args.changes} changes, median of {args.repeat}", "",
             "| what | ms |", "|---|---|"]
    lines += [f"| {what} | {ms:.1f} |" for what, ms in rows]
    print("\n".join(lines))
    if args.record:
        with (HERE / "RESULTS.md").open("a", encoding="utf-8") as out:
            out.write("\n" + "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
