"""The demo federation as people run it: `atlas demo` in a real process, real HTTP.

Six nodes plus an index over them (issue 5 item 10): the index harvests every node on
start (``atlas harvest watch`` in a child process) and serves its pages (``atlas index
serve``); the demo prints where to query it and stops every child on SIGTERM or SIGINT.
"""

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


def index_urls(lines: list[str]) -> dict[str, str]:
    """label -> URL of the index block `atlas demo` prints (search, sources, SPARQL, feed)."""
    urls = {}
    for line in lines:
        match = re.match(r"^\s+(search|sources|SPARQL|feed)\s+(http://\S+/index/\S+)$", line)
        if match:
            urls[match[1]] = match[2]
    return urls


def search_all(search_url: str, **params) -> list[dict]:
    """Every hit of an index search, page after page (JSON)."""
    items, page, pages = [], 1, 1
    while page <= pages:
        answer = requests.get(search_url, params={**params, "format": "json", "page": page},
                              timeout=30)
        assert answer.status_code == 200, answer.text
        items += answer.json()["items"]
        page, pages = page + 1, answer.json()["pages"]
    return items


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
    index = index_urls(result.stdout.splitlines())
    assert set(index) == {"search", "sources", "SPARQL", "feed"}
    assert index["SPARQL"].endswith("/index/sparql") and index["feed"].endswith("/index/feed")
    # --check asked the running index: every node's entities, and search over all of them.
    assert re.search(r"First harvest: \d+ entities from 6 sources .*all sources ok",
                     result.stdout), result.stdout
    assert result.stdout.count("entities, last harvest ok") == len(NODES)
    assert "The index holds every demo entity." in result.stdout


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

    # The index came up, harvested every demo node's actors, and search finds them.
    index = index_urls(lines)
    assert set(index) == {"search", "sources", "SPARQL", "feed"}
    sources = requests.get(index["sources"], params={"format": "json"}, timeout=30)
    assert sources.status_code == 200
    rows = {row["entry_url"].rstrip("/"): row for row in sources.json()["sources"]}
    assert set(rows) == set(urls.values())
    assert all(row["last_run"]["ok"] for row in rows.values())
    nodes = {n.slug: n for n in load_nodes("127.0.0.1", port)}
    actors = {}
    for hit in search_all(index["search"], kind="actor"):
        actors.setdefault(hit["source"], set()).add(hit["entity"])
    for slug, base in urls.items():
        row = rows[base]
        expected = {f"{base}/actors/{r['id']}" for r in nodes[slug].records["actors"]}
        assert actors.get(row["id"]) == expected, slug
        assert row["entities"] == sum(len(r) for r in nodes[slug].records.values()), slug
    found = requests.get(index["search"], params={"q": "Afeefa", "format": "json"}, timeout=30)
    assert f"{dresden}/actors/afeefa" in {item["entity"] for item in found.json()["items"]}
    page = requests.get(index["search"].replace("/search", "/entity"),
                        params={"iri": f"{dresden}/actors/afeefa", "format": "json"}, timeout=30)
    assert page.status_code == 200
    assert page.json()["provenance"]["source_entry"].rstrip("/") == dresden

    # The watcher keeps harvesting: an edit at the Dresden node reaches the index's search.
    token = subprocess.run(cli_command("token", "create", "--name", "demo-test"),
                           env=cli_env(data_dir / "dresden"), cwd=data_dir / "dresden",
                           capture_output=True, text=True, timeout=120, check=True)
    api = f"{dresden}/api/v1/actors/afeefa"
    etag = requests.get(api, timeout=10).headers["ETag"]
    edited = requests.patch(api, json={"name": {"de": "Afeefa Demo-Bearbeitung"}}, timeout=10,
                            headers={"Authorization": f"Bearer {token.stdout.split()[-1]}",
                                     "If-Match": etag})
    assert edited.status_code == 200, edited.text
    deadline = time.monotonic() + 60  # the demo polls every 10 s
    while not search_all(index["search"], q="Demo-Bearbeitung"):
        assert time.monotonic() < deadline, "the edit did not reach the index"
        time.sleep(0.5)
    assert [hit["entity"] for hit in search_all(index["search"], q="Demo-Bearbeitung")] == [
        f"{dresden}/actors/afeefa"]

    children = descendants(proc.pid)
    assert len(children) >= len(NODES) + 2  # gunicorn per node, the watcher, the index server
    stop_and_assert_every_child_ends(proc, reader, children, signal.SIGTERM)
    assert not data_dir.exists()  # the temporary instance folders are removed


def stop_and_assert_every_child_ends(proc, reader: LineReader, children: list[int],
                                     signum: int) -> None:
    """Send ``signum`` to the demo: it exits 0 saying so, and every child ends soon after."""
    proc.send_signal(signum)
    assert proc.wait(timeout=60) == 0, "\n".join(reader.rest())
    assert "Stopping" in "\n".join(reader.rest())
    deadline = time.monotonic() + 10
    while any(alive(pid) for pid in children) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [pid for pid in children if alive(pid)]


def test_demo_stops_every_child_on_sigint(tmp_path, started):
    """Ctrl-C: the demo and every child it started (nodes, watcher, index server) end."""
    port = free_port_block(len(NODES))
    proc = subprocess.Popen(cli_command("demo", "--port", str(port), "--dir",
                                        str(tmp_path / "demo")),
                            env=cli_env(tmp_path / "instance"), cwd=tmp_path, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    started.append(proc)
    reader = LineReader(proc)
    reader.wait_for("Press Ctrl-C", timeout=240)
    children = descendants(proc.pid)
    commands = [Path(f"/proc/{pid}/cmdline").read_bytes() for pid in children if alive(pid)]
    assert any(b"harvest\0watch" in c for c in commands)
    assert any(b"index\0serve" in c for c in commands)
    stop_and_assert_every_child_ends(proc, reader, children, signal.SIGINT)
    # --dir keeps the instance folders: the index's store, registry and logs among them.
    assert (tmp_path / "demo" / "index" / "index.sources.json").is_file()
    config = (tmp_path / "demo" / "index" / "atlas.toml").read_text()
    assert 'HARVEST_ALLOW_HOSTS = "127.0.0.1"' in config  # the demo host only
    assert "HARVEST_ALLOW_PRIVATE" not in config
