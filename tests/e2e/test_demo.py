"""The demo federation as people run it: `atlas demo` in a real process, real HTTP."""

from __future__ import annotations

import json
import re
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest
import requests

from service.demo import NODES, DemoError, load_nodes, resolve_refs
from vocab import entity, load_record

from .conftest import LineReader, alive, cli_command, cli_env, descendants, free_port_block

JSONLD = "application/ld+json"


def node_urls(lines: list[str]) -> dict[str, str]:
    """node -> base URL, from the table `atlas demo` prints."""
    urls = {}
    for line in lines:
        match = re.match(r"^\s+([a-z]+)\s.*\s(http://\S+)$", line)
        if match and match[1] in NODES:
            urls[match[1]] = match[2]
    return urls


def test_demo_records_resolve_and_validate():
    nodes = load_nodes("127.0.0.1", 7000)
    bases = {n.slug: n.base for n in nodes}
    assert bases["national"] == "http://127.0.0.1:7005"
    for node in nodes:
        for collection, records in node.records.items():
            for raw in records:
                data = resolve_refs(entity(collection).kind, raw, node.base, bases)
                data.pop("id")
                load_record(entity(collection).kind, data)
    giessen = next(n for n in nodes if n.slug == "giessen")
    coop = next(r for r in giessen.records["cooperations"] if r["id"] == "zaug-code-door")
    assert resolve_refs("cooperation", coop, giessen.base, bases)["partners"] == [
        "http://127.0.0.1:7003/actors/zaug", "http://127.0.0.1:7005/actors/code-door"]


def test_unknown_demo_node_in_a_reference():
    with pytest.raises(DemoError, match="atlantis"):
        resolve_refs("offer", {"provider": "atlantis:actors/x"}, "http://a", {"b": "http://b"})


def test_demo_check_starts_every_node_and_exits(tmp_path):
    port = free_port_block(len(NODES))
    result = subprocess.run(cli_command("demo", "--check", "--port", str(port)),
                            env=cli_env(tmp_path / "instance"), cwd=tmp_path,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    urls = node_urls(result.stdout.splitlines())
    assert urls == {slug: f"http://127.0.0.1:{port + i}" for i, slug in enumerate(NODES)}
    assert result.stdout.count("-> 200") == len(NODES)


def test_demo_check_refuses_a_taken_port(tmp_path):
    port = free_port_block(len(NODES))
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", port + 2))
        blocker.listen()
        result = subprocess.run(cli_command("demo", "--check", "--port", str(port)),
                                env=cli_env(tmp_path / "instance"), cwd=tmp_path,
                                capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert f"{port + 2} ({NODES[2]})" in result.stderr
    assert "--port" in result.stderr


def test_demo_serves_linked_nodes_until_sigterm(tmp_path, started):
    port = free_port_block(len(NODES))
    proc = subprocess.Popen(cli_command("demo", "--port", str(port)),
                            env=cli_env(tmp_path / "instance"), cwd=tmp_path, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    started.append(proc)
    reader = LineReader(proc)
    lines = reader.wait_for("Press Ctrl-C", timeout=240)
    urls = node_urls(lines)
    assert set(urls) == set(NODES)
    data_dir = Path(re.search(r"data in (\S+)\):", "\n".join(lines))[1])
    assert data_dir.is_dir()

    for slug, base in urls.items():
        page = requests.get(f"{base}/actors.jsonld", timeout=10)
        assert page.status_code == 200, slug
        assert page.headers["Content-Type"].startswith(JSONLD)
        assert f"{base}/actors/" in page.text  # URIs under the node's own base

    dresden, national = urls["dresden"], urls["national"]
    afeefa = requests.get(f"{dresden}/actors/afeefa", headers={"Accept": JSONLD}, timeout=10)
    assert afeefa.status_code == 200
    assert afeefa.json()["id"] == f"{dresden}/actors/afeefa"

    # Giessen's cooperation with Code Door points at the national node's URI, which resolves.
    cooperation = requests.get(f"{urls['giessen']}/cooperations/zaug-code-door.jsonld",
                               timeout=10)
    assert cooperation.status_code == 200
    code_door = f"{national}/actors/code-door"
    assert code_door in json.dumps(cooperation.json())
    assert f"{urls['giessen']}/actors/zaug" in json.dumps(cooperation.json())
    remote = requests.get(code_door, headers={"Accept": JSONLD}, timeout=10)
    assert remote.status_code == 200 and remote.json()["id"] == code_door
    # And Leipzig's Afeefa instance points back at Dresden.
    leipzig = requests.get(f"{urls['leipzig']}/actors/afeefa-leipzig.jsonld", timeout=10)
    assert f"{dresden}/actors/afeefa" in leipzig.text

    children = descendants(proc.pid)
    assert len(children) >= len(NODES)  # a gunicorn master (and its worker) per node
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 0, "\n".join(reader.rest())
    assert "Stopping" in "\n".join(reader.rest())
    deadline = time.monotonic() + 10
    while any(alive(pid) for pid in children) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [pid for pid in children if alive(pid)]
    assert not data_dir.exists()  # the temporary instance folders are removed
