"""Benchmark: first harvest and no-change re-harvest of many synthetic nodes (issue 5).

Running 100 Flask node processes is too heavy for this machine, so each synthetic node's
published documents are written by the project's own exporters — the bytes a node serves:

- ``{base}/``                entry description (`exports.node.node_graph`, Turtle),
- ``{base}/feed``, ``/feed/root``, ``/feed/{n}``  the LDES feed (`exports.ldes`, N-Triples,
  the syntax the harvester asks for first), FEED_PAGE_SIZE 250, one create per actor;
  full pages immutable (as ``service/feed.py`` with FEED_RETENTION "full"),
- ``{base}/dumps/all.nt.gz``  the gzip N-Triples dump (`exports.dump.write_gzip_file`),

with actors built like bench/node_bench.py's (`vocab.load_record`, ~45 triples each). ONE
real HTTP server process on 127.0.0.1 serves every node under its own path prefix
(``/n000`` ...), with ETag / If-None-Match -> 304, Last-Modified / If-Modified-Since and
Cache-Control as nodes send them. The harvest runs in a fresh child process (so ru_maxrss
is the harvest's own peak): sources registered with `harvesters.sources.register`, then
`harvesters.run.run_once` end to end (fetch, parse, authority, SHACL checks, search side
index, store) for the first harvest; then a second child does the no-change re-harvest.

Prints a table; ``--record`` appends it to bench/RESULTS.md. ``--nodes``/``--actors`` make
a quick run (``--nodes 5 --actors 200``). A program, not a test: no thresholds asserted.
"""

from __future__ import annotations

import argparse
import email.utils
import hashlib
import json
import os
import platform
import random
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

PAGE_SIZE = 250
POLLING = 60
T0 = datetime(2026, 11, 1, 8, 0, tzinfo=UTC)  # the first change of every node
IMMUTABLE = "public, max-age=31536000, immutable"  # service/feed.py
SHORT = f"public, max-age={min(POLLING, 60)}"


# --------------------------------------------------------------------------- generation


def _name(path: str) -> str:
    return "doc" + path.replace("/", "__")


def _write(root: Path, manifest: dict, path: str, body: bytes, content_type: str,
           cache: str, modified: datetime, weak: bool = True) -> None:
    file = root / _name(path)
    file.write_bytes(body)
    digest = hashlib.sha256(body).hexdigest()[:24]
    manifest[path] = {"file": file.name, "type": content_type, "cache": cache,
                      "etag": f'W/"{digest}"' if weak else f'"{digest}"',
                      "modified": email.utils.format_datetime(modified, usegmt=True)}


def generate_node(args: tuple[str, int, int, str]) -> dict:
    """Write node ``number``'s documents into ``folder``; returns its manifest."""
    folder, number, actors, origin = args
    from node_bench import synthetic_actor

    from exports import content_type, get, ldes
    from exports.dump import write_gzip_file
    from exports.node import CollectionInfo, DumpLink, NodeInfo, node_graph, serialize

    root = Path(folder)
    prefix = f"/n{number:03d}"
    base = origin + prefix
    rng = random.Random(number)
    records, changes = [], []
    for n in range(actors):
        at = T0 + timedelta(seconds=n)
        record = {"id": f"a{number:03d}x{n:05d}", **synthetic_actor(rng, number * 100_000 + n),
                  "created": at.isoformat().replace("+00:00", "Z"),
                  "modified": at.isoformat().replace("+00:00", "Z")}
        records.append(record)
        changes.append(ldes.Member("actor", record["id"], 1, False, record, at))
    last = T0 + timedelta(seconds=max(actors - 1, 0))
    manifest: dict = {}
    dump_file = root / _name(f"{prefix}/dumps/all.nt.gz")
    info = write_gzip_file(dump_file, "ntriples", lambda: (("actor", r) for r in records), base)
    digest = hashlib.sha256(dump_file.read_bytes()).hexdigest()[:24]
    manifest[f"{prefix}/dumps/all.nt.gz"] = {
        "file": dump_file.name, "type": "application/gzip", "cache": "public, max-age=60",
        "etag": f'"{digest}"', "modified": email.utils.format_datetime(last, usegmt=True)}
    node = NodeInfo(base=base, name=f"Synthetic node {number}", city=f"City {number}",
                    modified=last, collections=(CollectionInfo("actors", "actor", actors),),
                    dumps=(DumpLink("all", "nt", f"{base}/dumps/all.nt.gz", info.size, last),),
                    software_version="bench", vocab_version="")
    turtle, nt = get("turtle"), get("ntriples")
    _write(root, manifest, prefix + "/", serialize(node_graph(node), "turtle"),
           content_type(turtle), SHORT, last)
    cfg = ldes.FeedConfig(base=base, page_size=PAGE_SIZE, retention="full",
                          keep_deletes_days=0, polling_interval=POLLING,
                          title=f"Changes of Synthetic node {number}", license="")
    closed = actors // PAGE_SIZE
    spans, floor = [], None
    for page in range(1, closed + 1):
        chunk = changes[(page - 1) * PAGE_SIZE:page * PAGE_SIZE]
        spans.append(ldes.PageSpan(page, chunk[0].at, ldes.upper_bound(chunk[-1].at),
                                   len(chunk)))
        floor = chunk[-1].at
        body = ldes.serialize(ldes.page_triples(cfg, page, chunk, True), "ntriples")
        _write(root, manifest, f"{prefix}/feed/{page}", body, content_type(nt), IMMUTABLE,
               last)
    spans.append(ldes.PageSpan(closed + 1, floor, None))
    filling = changes[closed * PAGE_SIZE:]
    _write(root, manifest, f"{prefix}/feed/{closed + 1}",
           ldes.serialize(ldes.page_triples(cfg, closed + 1, filling, False), "ntriples"),
           content_type(nt), SHORT, last)
    _write(root, manifest, f"{prefix}/feed",
           ldes.serialize(ldes.stream_triples(cfg), "ntriples"), content_type(nt), SHORT, last)
    _write(root, manifest, f"{prefix}/feed/root",
           ldes.serialize(ldes.root_triples(cfg, spans), "ntriples"), content_type(nt), SHORT,
           last)
    return manifest


def generate(folder: Path, nodes: int, actors: int, origin: str, jobs: int) -> float:
    started = time.perf_counter()
    folder.mkdir(parents=True, exist_ok=True)
    manifest: dict = {}
    work = [(str(folder), n, actors, origin) for n in range(nodes)]
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        for part in pool.map(generate_node, work):
            manifest.update(part)
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return time.perf_counter() - started


# --------------------------------------------------------------------------- serving


def serve(folder: str, port: int) -> None:
    """Serve the generated documents (one process, threads) until killed."""
    root = Path(folder)
    manifest = json.loads((root / "manifest.json").read_text())

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args) -> None:  # quiet
            pass

        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            entry = manifest.get(self.path.split("?", 1)[0])
            if entry is None:
                self.send_response(404)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            headers = {"ETag": entry["etag"], "Last-Modified": entry["modified"],
                       "Cache-Control": entry["cache"]}
            # RFC 9110 §13.1.2 (weak comparison), §13.1.3 (only without If-None-Match)
            match = self.headers.get("If-None-Match")
            since = self.headers.get("If-Modified-Since")
            fresh = False
            if match is not None:
                tags = {t.strip().removeprefix("W/") for t in match.split(",")}
                fresh = "*" in tags or entry["etag"].removeprefix("W/") in tags
            elif since is not None:
                try:
                    fresh = (email.utils.parsedate_to_datetime(entry["modified"])
                             <= email.utils.parsedate_to_datetime(since))
                except (TypeError, ValueError):
                    fresh = False
            if fresh:
                self.send_response(304)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.end_headers()
                return
            body = (root / entry["file"]).read_bytes()
            self.send_response(200)
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("Content-Type", entry["type"])
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    class Server(ThreadingHTTPServer):
        daemon_threads = True
        request_queue_size = 128

    Server(("127.0.0.1", port), Handler).serve_forever()


# --------------------------------------------------------------------------- harvesting


def harvest(store: str, origin: str, nodes: int, register: bool, workers: int) -> dict:
    """One round in this (fresh) process; prints JSON figures."""
    from harvesters.fetch import Fetcher
    from harvesters.run import run_once
    from harvesters.settings import HarvestSettings, open_store
    from harvesters.sources import register as register_source

    settings = HarvestSettings(store_path=Path(store), allow_private=True, workers=workers,
                               contact="mailto:bench@example.org")
    out: dict = {}
    if register:
        started = time.perf_counter()
        fetcher, registry = Fetcher(settings.policy()), settings.registry()
        for n in range(nodes):
            registry.add(register_source(f"{origin}/n{n:03d}/", fetcher))
        out["register_seconds"] = time.perf_counter() - started
    before = resource.getrusage(resource.RUSAGE_SELF)
    cpu_before = before.ru_utime + before.ru_stime
    started = time.perf_counter()
    reports = run_once(settings, every=True)
    out["seconds"] = time.perf_counter() - started
    usage = resource.getrusage(resource.RUSAGE_SELF)
    out["peak_rss_mb"] = usage.ru_maxrss / 1024
    out["cpu_seconds"] = usage.ru_utime + usage.ru_stime - cpu_before
    out["ok"] = sum(r.ok for r in reports)
    out["sources"] = len(reports)
    out["errors"] = [e for r in reports for e in r.errors][:5]
    out["members"] = sum(r.members_applied for r in reports)
    out["quarantined"] = sum(r.quarantined_count for r in reports)
    out["pages"] = sum(r.pages for r in reports)
    with open_store(settings) as s:
        out["triples_in_store"] = s.count_triples()
    return out


def _child(*args: str) -> dict:
    done = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"child {args[0]} failed:\n{done.stderr[-4000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def _wait(port: int, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise SystemExit("the node server did not come up")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command")
    run = sub.add_parser("run", help="generate, serve, harvest twice (default)")
    for p in (parser, run):
        p.add_argument("--nodes", type=int, default=100)
        p.add_argument("--actors", type=int, default=1000)
        p.add_argument("--workers", type=int, default=4, help="HARVEST_WORKERS")
        p.add_argument("--jobs", type=int, default=os.cpu_count() or 1,
                       help="processes generating the nodes' files")
        p.add_argument("--keep", help="folder for the generated files and the store (kept)")
        p.add_argument("--record", action="store_true", help="append to bench/RESULTS.md")
        p.add_argument("--generate-only", action="store_true",
                       help="only write the nodes' files (into --keep) and stop")
    srv = sub.add_parser("serve")
    srv.add_argument("folder")
    srv.add_argument("port", type=int)
    hv = sub.add_parser("harvest")
    hv.add_argument("store")
    hv.add_argument("origin")
    hv.add_argument("nodes", type=int)
    hv.add_argument("--register", action="store_true")
    hv.add_argument("--workers", type=int, default=4)
    args = parser.parse_args()
    if args.command == "serve":
        serve(args.folder, args.port)
        return 0
    if args.command == "harvest":
        print(json.dumps(harvest(args.store, args.origin, args.nodes, args.register,
                                 args.workers)))
        return 0
    return bench(args)


def bench(args: argparse.Namespace) -> int:
    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="atlas-harvest-"))
    files, store, meta = work / "files", work / "index", work / "bench.json"
    for old in work.glob("index*"):
        shutil.rmtree(old, ignore_errors=True) if old.is_dir() else old.unlink()
    wanted = {"nodes": args.nodes, "actors": args.actors}
    kept = json.loads(meta.read_text()) if meta.exists() else {}
    if kept.get("files") == wanted and _port_free(kept["port"]):  # --keep: reuse the files
        port = kept["port"]
        print(f"reusing the files in {files}", flush=True)
    else:
        port = _free_port()
        shutil.rmtree(files, ignore_errors=True)
        generated = generate(files, args.nodes, args.actors, f"http://127.0.0.1:{port}",
                             args.jobs)
        meta.write_text(json.dumps({"files": wanted, "port": port}))
        dump_mb = sum(p.stat().st_size for p in files.glob("*all.nt.gz")) / 2**20
        print(f"generated {args.nodes} nodes x {args.actors} actors in {generated:.1f} s "
              f"({dump_mb:.1f} MB of dumps)", flush=True)
    origin = f"http://127.0.0.1:{port}"
    if args.generate_only:
        return 0
    server = subprocess.Popen([sys.executable, __file__, "serve", str(files), str(port)])
    try:
        _wait(port)
        load = os.getloadavg()[0]
        first = _child("harvest", str(store), origin, str(args.nodes), "--register",
                       "--workers", str(args.workers))
        again = _child("harvest", str(store), origin, str(args.nodes),
                       "--workers", str(args.workers))
    finally:
        server.terminate()
        server.wait(timeout=10)
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    table = render(args, first, again, load)
    print(table)
    if args.record:
        with open(HERE / "RESULTS.md", "a", encoding="utf-8") as fh:
            fh.write("\n" + table)
    return 0 if first["ok"] == args.nodes and again["ok"] == args.nodes else 1


def render(args: argparse.Namespace, first: dict, again: dict, load: float) -> str:
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    rows = []
    for name, r in (("first harvest", first), ("no-change re-harvest", again)):
        seconds = r["seconds"]
        triples = r["triples_in_store"] if name == "first harvest" else 0
        rows.append(f"| {name} | {seconds:.2f} | {r['members'] / seconds:,.0f} | "
                    f"{triples / seconds:,.0f} | {r['members']} | {triples} | "
                    f"{r['pages']} | {r['ok']}/{r['sources']} | {r['peak_rss_mb']:.0f} | "
                    f"{r['cpu_seconds']:.1f} |")
    return "\n".join([
        f"### Harvest benchmark — {now}",
        "",
        f"{args.nodes} synthetic nodes x {args.actors} actors (files written by exports/, "
        f"one HTTP server process on loopback), HARVEST_WORKERS {args.workers}, embedded "
        f"Oxigraph store, search side index on; {os.cpu_count()} cores, load average "
        f"{load:.1f} at start, Python {platform.python_version()}. Command: "
        f"`python bench/harvest_bench.py --nodes {args.nodes} --actors {args.actors}`.",
        "",
        "| run | seconds | actors/s | triples/s | actors applied | triples loaded | pages "
        "| sources ok | peak RSS MB | CPU s (harvest process) |",
        "|---|---|---|---|---|---|---|---|---|---|",
        *rows,
        "",
        f"Registration of the {args.nodes} sources (not in the figures): "
        f"{first.get('register_seconds', 0):.1f} s. Errors: "
        f"{first['errors'] + again['errors'] or 'none'}.",
        "",
    ])


if __name__ == "__main__":
    raise SystemExit(main())
