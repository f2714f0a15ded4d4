"""The demo federation: one node per demo city, each a real server on its own port.

The demo files (``service/demo/{slug}.json``) hold a node's settings and its
records. References in them are written ``actors/x`` (an entity of the same
node) or ``{slug}:actors/x`` (an entity of another demo node); they become
absolute URIs only once the ports — and so the base URLs — are known. Every
node gets its own instance folder and SQLite database, is seeded here through
`vocab.load_record` and `store.create` (keeping the files' ids, so URIs such as
``{dresden}/actors/afeefa`` are stable), and is then served by gunicorn in a
child process.

Beside the nodes runs an index (issue 5 item 10) in its own instance folder: the demo
registers every node as a source (HARVEST_ALLOW_HOSTS names the demo host: a harvester
refuses loopback addresses unless allowed), and starts two children like an operator would: ``atlas
harvest watch`` (its first round is the first harvest; afterwards it polls every node's
feed at the demo's short interval) and ``atlas index serve`` on the next free port after
the nodes'. The watcher is the index store's only writer; the index pages read what it
publishes.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests
from sqlalchemy.orm import Session

from vocab import InvalidRecord, entity, load_record

__all__ = ["DEMO_DIR", "INDEX", "NODES", "DemoError", "DemoNode", "index_port",
           "load_nodes", "resolve_refs", "run_federation", "seed_node"]

DEMO_DIR = Path(__file__).resolve().parent / "demo"
# Port order: the cities first, the national node last.
NODES = ("dresden", "leipzig", "bautzen", "giessen", "donostia", "national")
_REF = re.compile(r"^(?:(?P<slug>[a-z0-9-]+):)?(?P<path>[a-z-]+/[a-z0-9-]+)$")
_PROJECT_ROOT = Path(__file__).resolve().parents[1]
_READY_SECONDS = 60.0
_STOP_SECONDS = 10.0
INDEX = "index"  # the index's instance folder (and its name among the children)
_HARVEST_SECONDS = 180.0  # the first harvest of all demo nodes (about 2 s on a laptop)
# Seconds between feed polls: nodes state it in their feeds (ldes:pollingInterval), the
# index uses it for sources that state none. Short, so a demo edit reaches the index soon.
_POLLING_SECONDS = 10


class DemoError(Exception):
    """The federation cannot start or a node misbehaves; the message says which."""


@dataclass(frozen=True)
class DemoNode:
    slug: str
    settings: dict[str, Any]  # instance configuration (keys of service.config.DEFAULTS)
    records: dict[str, list[dict]]  # collection -> records with file ids and short refs
    port: int

    @property
    def base(self) -> str:
        return self.settings["BASE_URL"]


def load_nodes(host: str, first_port: int) -> list[DemoNode]:
    """The demo nodes on consecutive ports starting at ``first_port``."""
    nodes = []
    for offset, slug in enumerate(NODES):
        doc = json.loads((DEMO_DIR / f"{slug}.json").read_text(encoding="utf-8"))
        meta, port = doc["node"], first_port + offset
        settings = {
            "BASE_URL": f"http://{host}:{port}",
            "NODE_NAME": _one_language(meta.get("name")),
            "NODE_DESCRIPTION": _one_language(meta.get("description")),
            "CITY": meta.get("city", ""),
            "MUNICIPALITY_KEY": meta.get("municipality_key", ""),
            "SAMPLE_DATA": True,
            "FEED_POLLING_INTERVAL": _POLLING_SECONDS,
        }
        nodes.append(DemoNode(slug, settings, doc["records"], port))
    return nodes


def _one_language(text: Mapping[str, str] | str | None) -> str:
    if isinstance(text, Mapping):
        return text.get("de") or text.get("en") or next(iter(text.values()), "")
    return text or ""


def resolve_refs(kind: str, record: Mapping[str, Any], own_base: str,
                 bases: Mapping[str, str]) -> dict[str, Any]:
    """The record with short references turned into absolute entity URIs."""

    def absolute(value: str) -> str:
        match = _REF.match(value)
        if match is None:
            return value  # already absolute (or invalid: load_record will say so)
        slug = match["slug"]
        if slug is not None and slug not in bases:
            raise DemoError(f"reference {value!r} names an unknown demo node {slug!r}")
        return f"{bases[slug] if slug else own_base}/{match['path']}"

    out = dict(record)
    for f in entity(kind).fields:
        if f.kind == "ref" and f.key in out:
            value = out[f.key]
            out[f.key] = [absolute(v) for v in value] if isinstance(value, list) \
                else absolute(value)
    return out


def seed_node(session: Session, node: DemoNode, bases: Mapping[str, str]) -> int:
    """Validate and store a node's records with their file ids; returns how many."""
    from . import store

    count = 0
    for collection, records in node.records.items():
        kind = entity(collection).kind
        for raw in records:
            data = resolve_refs(kind, raw, node.base, bases)
            entity_id = data.pop("id")
            try:
                record = load_record(kind, data)
            except InvalidRecord as exc:
                raise DemoError(f"{node.slug}: {collection}/{entity_id} is invalid: {exc}") \
                    from None
            store.create(session, kind, record, entity_id=entity_id)
            count += 1
    return count


def _prepare(node: DemoNode, folder: Path, bases: Mapping[str, str]) -> int:
    """Write the node's instance folder (config + fresh, seeded database)."""
    from . import create_app, db
    from .cli import write_config

    folder.mkdir(parents=True, exist_ok=True)
    for stale in folder.glob("atlas.sqlite3*"):  # the demo always starts from its files
        stale.unlink()
    settings = {**node.settings, "DATABASE_URL": f"sqlite:///{folder / 'atlas.sqlite3'}"}
    write_config(folder / "atlas.toml", settings)
    app = create_app(settings)
    try:
        db.upgrade(app)
        with app.app_context():
            return seed_node(db.session(), node, bases)
    finally:
        db.engine(app).dispose()


def _child_env(folder: Path) -> dict[str, str]:
    """The parent's environment without any database or ATLAS_* setting of its own."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("ATLAS_") and k != "DATABASE_URL"}
    env["ATLAS_INSTANCE"] = str(folder)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(_PROJECT_ROOT),
                                                      os.environ.get("PYTHONPATH")]))
    return env


def _start(node: DemoNode, folder: Path, host: str) -> subprocess.Popen:
    # One sync worker per node keeps six nodes light; production uses more.
    command = [sys.executable, "-m", "gunicorn", "--workers", "1",
               "--bind", f"{host}:{node.port}", "--graceful-timeout", "5",
               "--chdir", str(folder), *_no_control_socket(), "service:create_app()"]
    log = open(folder / "server.log", "wb")  # noqa: SIM115 - the child owns it
    try:
        return subprocess.Popen(command, env=_child_env(folder), stdout=log,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    finally:
        log.close()


def _no_control_socket() -> list[str]:
    """gunicorn >= 25 opens a control socket at one fixed path in $HOME, which six
    masters would share; the demo needs none (older versions lack the option)."""
    from gunicorn.config import KNOWN_SETTINGS

    return ["--no-control-socket"] if any(s.name == "control_socket_disable"
                                          for s in KNOWN_SETTINGS) else []


def _port_free(host: str, port: int) -> bool:
    family, kind, proto, _, address = socket.getaddrinfo(host, port,
                                                         type=socket.SOCK_STREAM)[0]
    with socket.socket(family, kind, proto) as probe:
        # Like the server will: a port in TIME_WAIT is free, one being listened on is not.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError:
            return False
    return True


def _log_tail(path: Path, lines: int = 15) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def _wait_ready(nodes: list[DemoNode], procs: dict[str, subprocess.Popen],
                logs: dict[str, Path]) -> None:
    """Wait until every node answers HTTP at all (any status)."""
    deadline = time.monotonic() + _READY_SECONDS
    waiting = list(nodes)
    while waiting:
        for node in list(waiting):
            if procs[node.slug].poll() is not None:
                raise DemoError(f"node {node.slug} exited while starting:\n"
                                f"{_log_tail(logs[node.slug])}")
            try:
                requests.get(f"{node.base}/actors", timeout=2)
            except requests.RequestException:
                continue
            waiting.remove(node)
        if waiting and time.monotonic() > deadline:
            raise DemoError("no answer within {:.0f} s from: {}".format(
                _READY_SECONDS, ", ".join(n.slug for n in waiting)))
        if waiting:
            time.sleep(0.2)


def _check(nodes: list[DemoNode], echo: Callable[[str], None]) -> list[str]:
    """GET /actors on every node; the slugs of the nodes that did not answer 200."""
    failed = []
    for node in nodes:
        try:
            status = requests.get(f"{node.base}/actors", timeout=10).status_code
        except requests.RequestException as exc:
            status = f"no answer ({exc.__class__.__name__})"
        echo(f"  {node.slug:<10} GET {node.base}/actors -> {status}")
        if status != 200:
            failed.append(node.slug)
    return failed


# --------------------------------------------------------------------------- the index


def index_port(host: str, after: int) -> int:
    """The index's port: the first free one from ``after`` (the port after the nodes') on."""
    for port in range(after, min(after + 100, 65536)):
        if _port_free(host, port):
            return port
    raise DemoError(f"no free port for the index from {after} on; choose another --port")


def _prepare_index(host: str, port: int, folder: Path) -> dict[str, Any]:
    """The index's instance folder: its configuration and an empty node database (the index
    app keeps the node routes); a store left by an earlier demo is removed."""
    from . import create_app, db
    from .cli import write_config

    folder.mkdir(parents=True, exist_ok=True)
    for stale in [*folder.glob("index*"), *folder.glob("atlas.sqlite3*")]:
        shutil.rmtree(stale) if stale.is_dir() else stale.unlink()
    settings = {
        "BASE_URL": f"http://{host}:{port}",
        "NODE_NAME": "Engagement-Atlas Demo-Index",
        "NODE_DESCRIPTION": "Ein Index über alle Demo-Knoten (Beispieldaten).",
        "SAMPLE_DATA": True,  # every page says so, as on the demo nodes
        "DATABASE_URL": f"sqlite:///{folder / 'atlas.sqlite3'}",
        # The demo nodes listen on a loopback address, which a harvester refuses by default:
        # allow that host only (not every private address, as HARVEST_ALLOW_PRIVATE would).
        "HARVEST_ALLOW_HOSTS": host,
        "HARVEST_WORKERS": len(NODES),
        "HARVEST_INTERVAL": _POLLING_SECONDS,
    }
    write_config(folder / "atlas.toml", settings)
    app = create_app(settings)
    try:
        db.upgrade(app)
    finally:
        db.engine(app).dispose()
    return settings


def _register_sources(nodes: list[DemoNode], folder: Path, settings: Mapping[str, Any]
                      ) -> dict[str, str]:
    """Register every node as a source of the index (as ``atlas harvest add`` does, in this
    process); node slug -> source id."""
    from harvesters.errors import HarvestError
    from harvesters.fetch import Fetcher
    from harvesters.settings import HarvestSettings
    from harvesters.sources import SourceConflict, register

    harvest = HarvestSettings.from_mapping(settings, folder)
    fetcher, registry, ids = Fetcher(harvest.policy()), harvest.registry(), {}
    for node in nodes:
        try:
            ids[node.slug] = registry.add(register(node.base, fetcher)).id
        except (HarvestError, SourceConflict) as exc:
            raise DemoError(f"the index cannot register {node.slug} ({node.base}): {exc}") \
                from None
    return ids


def _start_cli(folder: Path, log: Path, *args: str) -> subprocess.Popen:
    """``python -m service.cli ARGS`` on the instance folder, output into ``log``."""
    out = open(log, "wb")  # noqa: SIM115 - the child owns it
    try:
        return subprocess.Popen([sys.executable, "-m", "service.cli", *args],
                                env=_child_env(folder), cwd=folder, stdout=out,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    finally:
        out.close()


def _first_round(proc: subprocess.Popen, log: Path) -> dict[str, Any]:
    """The watcher's first ``round-finished`` event (its JSON lines, harvest_output.py)."""
    deadline = time.monotonic() + _HARVEST_SECONDS
    while True:
        try:
            text = log.read_text(encoding="utf-8", errors="replace")
        except OSError:
            text = ""
        for line in text.splitlines():
            if line.startswith("{") and '"round-finished"' in line:
                try:
                    return json.loads(line)
                except ValueError:  # a log line of standard error in between
                    continue
        if proc.poll() is not None:
            raise DemoError(f"the index's harvester exited (code {proc.returncode}):\n"
                            f"{_log_tail(log)}")
        if time.monotonic() > deadline:
            raise DemoError(f"the first harvest did not finish within {_HARVEST_SECONDS:.0f} s"
                            f":\n{_log_tail(log)}")
        time.sleep(0.2)


def _wait_index(base: str, proc: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + _READY_SECONDS
    while True:
        if proc.poll() is not None:
            raise DemoError(f"the index server exited while starting:\n{_log_tail(log)}")
        try:
            requests.get(f"{base}/index/sources", timeout=2)
            return
        except requests.RequestException:
            if time.monotonic() > deadline:
                raise DemoError(f"the index server gave no answer within {_READY_SECONDS:.0f} s"
                                ) from None
        time.sleep(0.2)


def _index_sources(base: str) -> dict[str, dict[str, Any]]:
    """Source id -> its status row, from the index's sources page as JSON."""
    response = requests.get(f"{base}/index/sources", params={"format": "json"}, timeout=30)
    response.raise_for_status()
    return {row["id"]: row for row in response.json()["sources"]}


def _expected_entities(node: DemoNode) -> set[str]:
    return {f"{node.base}/{collection}/{raw['id']}"
            for collection, records in node.records.items() for raw in records}


def _check_index(base: str, nodes: list[DemoNode], ids: Mapping[str, str],
                 echo: Callable[[str], None]) -> list[str]:
    """Ask the running index for what it holds: per source every demo entity and a good
    last harvest, and full-text search over all of them. What is missing, one line each."""
    problems = []
    try:
        rows = _index_sources(base)
        for node in nodes:
            row, expected = rows.get(ids[node.slug], {}), len(_expected_entities(node))
            ok = (row.get("last_run") or {}).get("ok")
            echo(f"  {node.slug:<10} GET {base}/index/sources: {row.get('entities', 0)} of "
                 f"{expected} entities, last harvest {'ok' if ok else 'not ok'}")
            if row.get("entities") != expected or not ok:
                problems.append(f"{node.slug}: {row.get('entities', 0)} of {expected} entities")
        found, page, pages = set(), 1, 1
        while page <= pages:
            answer = requests.get(f"{base}/index/search", params={"format": "json",
                                                                  "page": page}, timeout=30)
            answer.raise_for_status()
            data = answer.json()
            found |= {item["entity"] for item in data["items"]}
            page, pages = page + 1, data["pages"]
        wanted = set().union(*(_expected_entities(n) for n in nodes))
        echo(f"  {'search':<10} GET {base}/index/search: {len(found & wanted)} of "
             f"{len(wanted)} entities")
        if wanted - found:
            problems.append(f"search misses {len(wanted - found)} entities, e.g. "
                            f"{sorted(wanted - found)[0]}")
    except (requests.RequestException, ValueError, KeyError) as exc:
        problems.append(f"the index did not answer as expected: {exc}")
    return problems


def _stop(procs: dict[str, subprocess.Popen]) -> None:
    """SIGTERM every child (gunicorn stops its workers, the watcher finishes its round),
    then SIGKILL stragglers."""
    for proc in procs.values():
        if proc.poll() is None:
            proc.terminate()
    deadline = time.monotonic() + _STOP_SECONDS
    for proc in procs.values():
        try:
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class _Terminated(Exception):
    """SIGTERM arrived: stop the federation like Ctrl-C does."""


def _on_sigterm(_signum, _frame) -> None:
    raise _Terminated


def run_federation(host: str, first_port: int, directory: Path | None, *, check: bool,
                   echo: Callable[[str], None] = print) -> None:
    """Start all demo nodes and the index over them; with ``check`` verify them and stop,
    else serve until stopped (SIGINT or SIGTERM stops every child).

    Raises DemoError when a port is taken, a node or the index does not start or (with
    ``check``) a node does not answer ``GET /actors`` with 200 or the index does not hold
    every demo entity.
    """
    nodes = load_nodes(host, first_port)
    if nodes[-1].port > 65535:
        raise DemoError(f"ports {first_port}-{nodes[-1].port} do not exist; choose a lower --port")
    taken = [f"{n.port} ({n.slug})" for n in nodes if not _port_free(host, n.port)]
    if taken:
        raise DemoError(f"port(s) in use on {host}: {', '.join(taken)}; the demo needs "
                        f"{first_port}-{nodes[-1].port} free (choose another --port)")
    port = index_port(host, nodes[-1].port + 1)
    temporary = directory is None
    root = Path(tempfile.mkdtemp(prefix="atlas-demo-")) if temporary else directory
    bases = {n.slug: n.base for n in nodes}
    folders = {n.slug: root / n.slug for n in nodes}
    logs = {n.slug: folders[n.slug] / "server.log" for n in nodes}
    index_dir = root / INDEX
    logs.update({"harvester": index_dir / "harvest.log", INDEX: index_dir / "server.log"})
    procs: dict[str, subprocess.Popen] = {}
    previous = {signal.SIGINT: signal.getsignal(signal.SIGINT),
                signal.SIGTERM: signal.signal(signal.SIGTERM, _on_sigterm)}
    began = time.monotonic()
    try:
        for node in nodes:
            count = _prepare(node, folders[node.slug], bases)
            echo(f"Prepared {node.slug}: {count} records")
        index_settings = _prepare_index(host, port, index_dir)
        for node in nodes:
            procs[node.slug] = _start(node, folders[node.slug], host)
        # The index pages need no harvest to start (they show an empty index until the
        # watcher publishes its first round): start them now, alongside the nodes.
        procs[INDEX] = _start_cli(index_dir, logs[INDEX], "index", "serve", "--host", host,
                                  "--port", str(port))
        _wait_ready(nodes, procs, logs)
        echo(f"Engagement Atlas demo federation ({len(nodes)} nodes, data in {root}):")
        for node in nodes:
            echo(f"  {node.slug:<10} {node.settings['CITY'] or '-':<26} {node.base}")
        ids = _register_sources(nodes, index_dir, index_settings)
        harvest_began = time.monotonic()
        procs["harvester"] = _start_cli(index_dir, logs["harvester"], "harvest", "watch")
        first = _first_round(procs["harvester"], logs["harvester"])
        harvested = time.monotonic() - harvest_began
        index_base = index_settings["BASE_URL"]
        _wait_index(index_base, procs[INDEX], logs[INDEX])
        held = sum(row.get("entities", 0) for row in _index_sources(index_base).values())
        echo(f"Index over the {len(nodes)} nodes (data in {index_dir}):")
        for label, path in (("search", "search"), ("sources", "sources"),
                            ("SPARQL", "sparql"), ("feed", "feed")):
            echo(f"  {label:<10} {index_base}/index/{path}")
        outcome = "all sources ok" if first.get("ok") else \
            f"failed: {', '.join(first.get('failed', []))}"
        echo(f"First harvest: {held} entities from {len(ids)} sources in {harvested:.1f} s "
             f"({outcome}); `atlas harvest watch` polls every {_POLLING_SECONDS} s. "
             f"Started in {time.monotonic() - began:.1f} s.")
        if check:
            failed = _check(nodes, echo)
            if failed:
                raise DemoError(f"node(s) without a working GET /actors: {', '.join(failed)}")
            echo("All nodes answer.")
            problems = _check_index(index_base, nodes, ids, echo)
            if problems:
                raise DemoError("the index is incomplete: " + "; ".join(problems))
            echo("The index holds every demo entity.")
            return
        echo("Press Ctrl-C to stop.")
        _serve_until_stopped(procs, logs)
    except (KeyboardInterrupt, _Terminated):
        echo("Stopping the demo nodes and the index...")
    finally:
        for signum in previous:  # a second Ctrl-C or SIGTERM must not cut the cleanup short
            signal.signal(signum, signal.SIG_IGN)
        try:
            _stop(procs)
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)
            if temporary:
                shutil.rmtree(root, ignore_errors=True)


def _serve_until_stopped(procs: dict[str, subprocess.Popen], logs: dict[str, Path]) -> None:
    while True:
        for name, proc in procs.items():
            if proc.poll() is not None:
                raise DemoError(f"{name} stopped unexpectedly (exit code "
                                f"{proc.returncode}):\n{_log_tail(logs[name])}")
        time.sleep(0.5)
