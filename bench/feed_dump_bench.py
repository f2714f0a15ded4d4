"""Benchmark: dump generation and feed pages of a 5,000-actor node.

Builds a node with synthetic actors (SQLite, as bench/node_bench.py does), then

- generates each dump (all.nt.gz, all.ttl.gz, all.jsonld.gz, actors.csv.gz) in a
  fresh child process: seconds, peak RSS of the process and its growth during the
  build, the peak Python heap (tracemalloc, a second run), compressed and raw size;
- for comparison, renders the same records in memory with the page exports
  (the registry's turtle / ntriples / jsonld renderers over one big payload);
- requests the LDES feed (/feed, /feed/root, a closed page, the open page) through
  the Flask test client: first request, median and p95 of repeats, 304 revalidation.

Prints a table; `--record` appends it to bench/RESULTS.md. A program, not a test:
nothing here asserts a threshold.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from datetime import UTC, datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from node_bench import build_node  # noqa: E402

DUMPS = ("all.nt.gz", "all.ttl.gz", "all.jsonld.gz", "actors.csv.gz")
IN_MEMORY = ("ntriples", "turtle", "jsonld")


def _rss_now_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def _app(url: str, base: str, dumps_dir: str):
    from service import create_app

    return create_app({"DATABASE_URL": url, "BASE_URL": base, "DUMPS_DIR": dumps_dir})


def child_dump(url: str, base: str, name: str, directory: str) -> dict:
    """One dump built from scratch in this (fresh) process."""
    from service import dumps

    app = _app(url, base, directory + "/timed")
    dump = dumps.find(name)
    with app.app_context():  # import and warm everything the build touches
        dumps.dump_info(app)
    before = _rss_now_kib()
    started = time.perf_counter()
    file, state = dumps.open_dump(app, dump)
    seconds = time.perf_counter() - started
    file.close()
    peak_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    raw = 0
    with gzip.open(Path(directory) / "timed" / name, "rb") as fh:
        while chunk := fh.read(1 << 20):
            raw += len(chunk)
    app.config["DUMPS_DIR"] = directory + "/traced"
    tracemalloc.start()
    dumps.open_dump(app, dump)[0].close()
    heap_peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return {"seconds": seconds, "rss_before_kib": before, "rss_peak_kib": peak_rss,
            "heap_peak": heap_peak, "size": state.size, "raw": raw, "records": state.records}


def child_in_memory(url: str, base: str, format_name: str) -> dict:
    """The same actors rendered in one piece by the page exports (for comparison)."""
    import exports
    from service import db
    from service.importer import live_entities

    app = _app(url, base, "")
    with app.app_context():
        records = [s.record for s in live_entities(db.session(), "actor")]
    before = _rss_now_kib()
    started = time.perf_counter()
    body = exports.get(format_name).render(exports.Payload("actor", records, base, single=False))
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "rss_before_kib": before,
            "rss_peak_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
            "raw": len(body), "records": len(records)}


def touch_actors(url: str, base: str, ids: list[str], count: int) -> None:
    """Update ``count`` actors, so that the open feed page holds members too."""
    from service import create_app, db, store

    app = create_app({"DATABASE_URL": url, "BASE_URL": base})
    with app.app_context():
        session = db.session()
        for entity_id in ids[:count]:
            state = store.get(session, "actor", entity_id)
            data = {**state.data, "telephone": "+49 351 000000"}
            store.replace(session, "actor", entity_id, data, expected_version=None)
    db.engine(app).dispose()


def run_child(*args: str) -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", *args], capture_output=True,
                         text=True, check=True, cwd=HERE.parent)
    return json.loads(out.stdout.strip().splitlines()[-1])


def bench_feed(url: str, base: str, repeat: int) -> list[dict] | str:
    """Feed requests through the test client, or why they were skipped."""
    from service import create_app

    app = create_app({"DATABASE_URL": url, "BASE_URL": base})
    if "feed" not in app.blueprints:
        return "skipped: the app has no feed blueprint (service/feed.py not registered yet)"
    client = app.test_client()
    size = int(app.config["FEED_PAGE_SIZE"])
    pages = client.get("/feed/1", headers={"Accept": "text/turtle"})
    if pages.status_code != 200:
        return f"skipped: /feed/1 answered {pages.status_code}"
    from service import changes, db

    with app.app_context():
        latest = changes.latest_seq(db.session())
    open_page = latest // size + 1
    targets = [("/feed", "text/turtle"), ("/feed/root", "text/turtle"),
               (f"/feed/{open_page // 2} (closed, {size} members)", "text/turtle"),
               (f"/feed/{open_page // 2} (closed, {size} members)", "application/ld+json"),
               (f"/feed/{open_page} (open)", "text/turtle")]
    rows = []
    for label, accept in targets:
        path = label.split(" ", 1)[0]
        headers = {"Accept": accept}
        started = time.perf_counter()
        first = client.get(path, headers=headers)
        cold = time.perf_counter() - started
        assert first.status_code == 200, (path, first.status_code)
        warm = []
        for _ in range(repeat):
            started = time.perf_counter()
            client.get(path, headers=headers)
            warm.append(time.perf_counter() - started)
        revalidate = []
        for _ in range(repeat):
            started = time.perf_counter()
            response = client.get(path, headers={**headers,
                                                 "If-None-Match": first.headers["ETag"]})
            revalidate.append(time.perf_counter() - started)
        rows.append({"request": f"{label} as {accept}", "cold_ms": cold * 1000,
                     "median_ms": statistics.median(warm) * 1000,
                     "p95_ms": sorted(warm)[int(0.95 * (len(warm) - 1))] * 1000,
                     "revalidate_ms": statistics.median(revalidate) * 1000,
                     "revalidate_status": response.status_code, "bytes": len(first.data)})
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--actors", type=int, default=5000)
    parser.add_argument("--repeat", type=int, default=30, help="feed requests per row")
    parser.add_argument("--updates", type=int, default=120,
                        help="actors updated after the build (members of the open feed page)")
    parser.add_argument("--record", action="store_true", help="append to bench/RESULTS.md")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        mode, *rest = args.child
        result = child_dump(*rest) if mode == "dump" else child_in_memory(*rest)
        print(json.dumps(result))
        return 0

    base = "http://127.0.0.1:8711"
    with tempfile.TemporaryDirectory() as tmp:
        url, ids = build_node(Path(tmp), base, args.actors)
        touch_actors(url, base, ids, args.updates)
        dumps = {name: run_child("dump", url, base, name, f"{tmp}/{name}") for name in DUMPS}
        in_memory = {name: run_child("memory", url, base, name) for name in IN_MEMORY}
        feed = bench_feed(url, base, args.repeat)
    lines = report(dumps, in_memory, feed, args)
    print("\n".join(lines))
    if args.record:
        path = HERE / "RESULTS.md"
        with path.open("a") as fh:
            fh.write("\n".join(["", *lines]) + "\n")
    return 0


def _mb(kib_or_bytes: float, kib: bool = False) -> str:
    return f"{kib_or_bytes / 1024 if kib else kib_or_bytes / 1024 / 1024:.1f}"


def report(dumps: dict, in_memory: dict, feed: list[dict] | str,
           args: argparse.Namespace) -> list[str]:
    lines = [
        f"### Dump and feed benchmark — {datetime.now(UTC):%Y-%m-%d %H:%M} UTC", "",
        f"{args.actors} actors (synthetic, as node_bench) and {args.updates} updates, "
        f"SQLite, each dump built from "
        f"scratch in a fresh process (DUMP_BATCH_SIZE 500, gzip level 6); "
        f"{os.cpu_count()} cores, Python {platform.python_version()}.", "",
        "| dump | seconds | entities/s | peak RSS MB (growth) | peak Python heap MB "
        "| gzip MB | raw MB |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, r in dumps.items():
        lines.append(
            f"| {name} | {r['seconds']:.2f} | {r['records'] / r['seconds']:.0f} "
            f"| {_mb(r['rss_peak_kib'], kib=True)} "
            f"(+{_mb(r['rss_peak_kib'] - r['rss_before_kib'], kib=True)}) "
            f"| {_mb(r['heap_peak'])} | {_mb(r['size'])} | {_mb(r['raw'])} |")
    lines += ["", "For comparison, the page exports rendering all actors in one piece "
              "(what a naive dump would do):", "",
              "| in memory | seconds | peak RSS MB (growth) | output MB |", "|---|---|---|---|"]
    for name, r in in_memory.items():
        lines.append(f"| {name} | {r['seconds']:.2f} | {_mb(r['rss_peak_kib'], kib=True)} "
                     f"(+{_mb(r['rss_peak_kib'] - r['rss_before_kib'], kib=True)}) "
                     f"| {_mb(r['raw'])} |")
    lines += ["", f"Feed through the Flask test client (in process, {args.repeat} repeats):", ""]
    if isinstance(feed, str):
        lines.append(f"Feed {feed}.")
    else:
        lines += ["| request | first ms | median ms | p95 ms | 304 median ms | bytes |",
                  "|---|---|---|---|---|---|"]
        for r in feed:
            lines.append(f"| {r['request']} | {r['cold_ms']:.1f} | {r['median_ms']:.1f} "
                         f"| {r['p95_ms']:.1f} | {r['revalidate_ms']:.1f} "
                         f"({r['revalidate_status']}) | {r['bytes']} |")
    return lines


if __name__ == "__main__":
    raise SystemExit(main())
