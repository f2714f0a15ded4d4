"""Benchmark: reading one actor from a 5,000-actor node under gunicorn.

Builds a node with synthetic actors (SQLite), starts gunicorn with 2 sync
workers on a loopback port and drives it with wrk (`apt-get install wrk`):
GET one actor as JSON-LD, as HTML, and a 304 revalidation with If-None-Match.
Prints requests/s and latency percentiles; `--record` appends them to
bench/RESULTS.md. A program, not a test: nothing here asserts a threshold.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import requests

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from service import create_app, db, store  # noqa: E402
from vocab import load_record  # noqa: E402

TYPES = ["verein", "freiwilligenagentur", "wohlfahrtsverband", "digital_project",
         "social_enterprise", "foundation", "network", "municipal_office"]
FIELDS = ["integration", "education", "language", "employment", "housing", "culture"]


def synthetic_actor(rng: random.Random, n: int) -> dict:
    return load_record("actor", {
        "name": {"de": f"Beispielverein {n}", "en": f"Sample association {n}"},
        "description": {"de": "Synthetischer Eintrag für Lasttests. " * 3,
                        "en": "Synthetic entry for load tests. " * 3},
        "actorTypes": rng.sample(TYPES, 2), "fieldsOfAction": rng.sample(FIELDS, 3),
        "targetGroups": ["refugees", "volunteers"], "engagementMode": "blended",
        "status": "active", "legalForm": "ev", "url": f"https://verein-{n}.example/",
        "email": f"kontakt@verein-{n}.example", "languages": ["de", "en", "ar"],
        "address": {"streetAddress": f"Musterstraße {n % 200}", "postalCode": "01067",
                    "addressLocality": "Dresden", "addressCountry": "DE"},
        "geo": {"latitude": 51.0 + rng.random() / 10, "longitude": 13.7 + rng.random() / 10},
        "openingHours": [{"dayOfWeek": ["Monday", "Wednesday"], "opens": "09:00",
                          "closes": "17:00"}],
        "contactPoints": [{"contactType": {"de": "Beratung"},
                           "email": f"beratung@verein-{n}.example"}],
        "lastConfirmed": "2026-11-01",
    })


def build_node(directory: Path, base: str, actors: int) -> tuple[str, list[str]]:
    url = f"sqlite:///{directory}/atlas.sqlite3"
    app = create_app({"DATABASE_URL": url, "BASE_URL": base})
    db.upgrade(app)
    rng = random.Random(7)
    ids = []
    started = time.perf_counter()
    with app.app_context():
        session = db.session()
        for n in range(actors):
            ids.append(store.create(session, "actor", synthetic_actor(rng, n)).id)
    print(f"built {actors} actors in {time.perf_counter() - started:.1f} s")
    db.engine(app).dispose()
    return url, ids


def wait_for(url: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if requests.get(url, timeout=1).status_code < 500:
                return
        except requests.ConnectionError:
            time.sleep(0.2)
    raise SystemExit(f"server at {url} did not come up")


LUA = """
paths = {%(paths)s}
etags = {%(etags)s}
accept = "%(accept)s"
counter = 0
request = function()
  counter = counter + 1
  local i = (counter %% #paths) + 1
  local headers = {["Accept"] = accept}
  if #etags > 0 then headers["If-None-Match"] = etags[i] end
  return wrk.format("GET", paths[i], headers)
end
"""


def run_wrk(base: str, paths: list[str], accept: str, etags: list[str], seconds: int,
            connections: int, workdir: Path) -> dict:
    script = workdir / f"bench-{abs(hash((accept, bool(etags))))}.lua"
    quote = lambda s: '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'  # noqa: E731
    script.write_text(LUA % {"paths": ", ".join(quote(p) for p in paths),
                             "etags": ", ".join(quote(e) for e in etags), "accept": accept})
    out = subprocess.run(["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency",
                          "-s", str(script), base], capture_output=True, text=True, check=True)
    text = out.stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
    percentiles = dict(re.findall(r"^\s+(50|90|99)%\s+([\d.]+\w+)", text, re.M))
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
    return {"rps": rps, "p50": percentiles.get("50"), "p99": percentiles.get("99"),
            "errors": int(non2xx.group(1)) if non2xx else 0}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--actors", type=int, default=5000)
    parser.add_argument("--seconds", type=int, default=15)
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--port", type=int, default=8710)
    parser.add_argument("--record", action="store_true", help="append to bench/RESULTS.md")
    args = parser.parse_args()
    if not shutil.which("wrk"):
        raise SystemExit("wrk is needed: apt-get install wrk")
    base = f"http://127.0.0.1:{args.port}"
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        url, ids = build_node(workdir, base, args.actors)
        env = {**os.environ, "ATLAS_DATABASE_URL": url, "ATLAS_BASE_URL": base,
               "ATLAS_INSTANCE": str(workdir / "instance")}
        server = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-w", "2", "-b", f"127.0.0.1:{args.port}",
             "--log-level", "warning", "service:create_app()"],
            cwd=HERE.parent, env=env)
        try:
            wait_for(f"{base}/actors/{ids[0]}")
            sample = random.Random(1).sample(ids, 500)
            paths = [f"/actors/{i}" for i in sample]
            etags = [requests.get(base + p, headers={"Accept": "application/ld+json"},
                                  timeout=5).headers["ETag"] for p in paths]
            results = {}
            for label, accept, tags in (
                ("actor as JSON-LD", "application/ld+json", []),
                ("actor as HTML", "text/html", []),
                ("304 revalidation (JSON-LD)", "application/ld+json", etags),
            ):
                results[label] = run_wrk(base, paths, accept, tags, args.seconds,
                                         args.connections, workdir)
                r = results[label]
                print(f"{label:30} {r['rps']:8.0f} req/s  p50 {r['p50']:>8}  "
                      f"p99 {r['p99']:>8}  non-2xx/3xx {r['errors']}")
        finally:
            server.terminate()
            server.wait(timeout=10)
    if args.record:
        record(results, args)
    return 0


def record(results: dict, args: argparse.Namespace) -> None:
    lines = [
        "", f"### Node read benchmark — {datetime.now(UTC):%Y-%m-%d %H:%M} UTC", "",
        f"{args.actors} actors, SQLite, gunicorn 2 sync workers, wrk 1 thread "
        f"{args.connections} connections {args.seconds} s per run, loopback, "
        f"{os.cpu_count()} cores, Python {platform.python_version()}.", "",
        "| request | req/s | p50 | p99 |", "|---|---|---|---|",
    ]
    lines += [f"| {k} | {v['rps']:.0f} | {v['p50']} | {v['p99']} |" for k, v in results.items()]
    path = HERE / "RESULTS.md"
    if not path.exists():
        path.write_text("# Benchmark results\n\nRecorded by the programs in bench/.\n")
    with path.open("a") as fh:
        fh.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    raise SystemExit(main())
