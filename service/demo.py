"""The demo federation: one node per demo city, each a real server on its own port.

The demo files (``service/demo/{slug}.json``) hold a node's settings and its
records. References in them are written ``actors/x`` (an entity of the same
node) or ``{slug}:actors/x`` (an entity of another demo node); they become
absolute URIs only once the ports — and so the base URLs — are known. Every
node gets its own instance folder and SQLite database, is seeded here through
`vocab.load_record` and `store.create` (keeping the files' ids, so URIs such as
``{dresden}/actors/afeefa`` are stable), and is then served by gunicorn in a
child process.
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

__all__ = ["DEMO_DIR", "NODES", "DemoError", "DemoNode", "load_nodes", "resolve_refs",
           "run_federation", "seed_node"]

DEMO_DIR = Path(__file__).resolve().parent / "demo"
# Port order: the cities first, the national node last.
NODES = ("dresden", "leipzig", "bautzen", "giessen", "donostia", "national")
_REF = re.compile(r"^(?:(?P<slug>[a-z0-9-]+):)?(?P<path>[a-z-]+/[a-z0-9-]+)$")
_PROJECT_ROOT = Path(__file__).resolve().parents[1]
_READY_SECONDS = 60.0
_STOP_SECONDS = 10.0


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


def _log_tail(folder: Path, lines: int = 15) -> str:
    try:
        text = (folder / "server.log").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def _wait_ready(nodes: list[DemoNode], procs: dict[str, subprocess.Popen],
                folders: dict[str, Path]) -> None:
    """Wait until every node answers HTTP at all (any status)."""
    deadline = time.monotonic() + _READY_SECONDS
    waiting = list(nodes)
    while waiting:
        for node in list(waiting):
            if procs[node.slug].poll() is not None:
                raise DemoError(f"node {node.slug} exited while starting:\n"
                                f"{_log_tail(folders[node.slug])}")
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


def _stop(procs: dict[str, subprocess.Popen]) -> None:
    """SIGTERM every node (gunicorn stops its workers), then SIGKILL stragglers."""
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
    """Start all demo nodes; with ``check`` verify them and stop, else serve until stopped.

    Raises DemoError when a port is taken, a node does not start or (with
    ``check``) a node does not answer ``GET /actors`` with 200.
    """
    nodes = load_nodes(host, first_port)
    if nodes[-1].port > 65535:
        raise DemoError(f"ports {first_port}-{nodes[-1].port} do not exist; choose a lower --port")
    taken = [f"{n.port} ({n.slug})" for n in nodes if not _port_free(host, n.port)]
    if taken:
        raise DemoError(f"port(s) in use on {host}: {', '.join(taken)}; the demo needs "
                        f"{first_port}-{nodes[-1].port} free (choose another --port)")
    temporary = directory is None
    root = Path(tempfile.mkdtemp(prefix="atlas-demo-")) if temporary else directory
    bases = {n.slug: n.base for n in nodes}
    folders = {n.slug: root / n.slug for n in nodes}
    procs: dict[str, subprocess.Popen] = {}
    previous = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        for node in nodes:
            count = _prepare(node, folders[node.slug], bases)
            echo(f"Prepared {node.slug}: {count} records")
        for node in nodes:
            procs[node.slug] = _start(node, folders[node.slug], host)
        _wait_ready(nodes, procs, folders)
        echo(f"Engagement Atlas demo federation ({len(nodes)} nodes, data in {root}):")
        for node in nodes:
            echo(f"  {node.slug:<10} {node.settings['CITY'] or '-':<26} {node.base}")
        if check:
            failed = _check(nodes, echo)
            if failed:
                raise DemoError(f"node(s) without a working GET /actors: {', '.join(failed)}")
            echo("All nodes answer.")
            return
        echo("Press Ctrl-C to stop.")
        _serve_until_stopped(procs, folders)
    except (KeyboardInterrupt, _Terminated):
        echo("Stopping the demo nodes...")
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second SIGTERM must not cut cleanup
        _stop(procs)
        signal.signal(signal.SIGTERM, previous)
        if temporary:
            shutil.rmtree(root, ignore_errors=True)


def _serve_until_stopped(procs: dict[str, subprocess.Popen], folders: dict[str, Path]
                         ) -> None:
    while True:
        for slug, proc in procs.items():
            if proc.poll() is not None:
                raise DemoError(f"node {slug} stopped unexpectedly (exit code "
                                f"{proc.returncode}):\n{_log_tail(folders[slug])}")
        time.sleep(0.5)
