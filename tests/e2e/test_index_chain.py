"""Indexes of indexes (issue 5 item 8, "Chained"): index B harvests index A, over loopback HTTP.

Real processes: demo nodes (``python -m service.cli serve``), index A harvesting them through
``python -m service.cli harvest ...`` and serving its feed, entry and catalog with
``python -m service.cli index serve``, and index B (another instance folder) harvesting A
through the same CLI. What must hold:

- B trusts A (HARVEST_TRUSTED_INDEXES): ``harvest add`` registers ONE source for A;
  after a run, B's entity graphs equal A's, graph by graph (read with SPARQL from both
  stores); B's provenance names the ORIGINAL node entries (``prov:wasDerivedFrom``) and A
  (``idx:harvestedVia``); B's own journal (its feed) carries the original nodes, not A;
- a delete at a node reaches B after A and B run again, and nothing else changes;
- an index C that does not trust A: ``harvest add`` of A's entry registers the original
  nodes directly instead, each from its own entry.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
from collections.abc import Iterator

import pytest

from harvesters.journal import Journal
from harvesters.store import STATE_NS
from service.demo import load_nodes, seed_node

from .conftest import cli_command, descendants, free_port_block, wait_until_serving
from .index_support import PROV, Index, Node, entity_graphs, finished, launch, prepare

NODES = 3


@pytest.fixture(scope="module")
def chain(tmp_path_factory) -> Iterator[tuple[list[Node], Index, str]]:
    """Three demo nodes, and index A (harvested once) serving at a loopback port."""
    tmp = tmp_path_factory.mktemp("chain")
    first = free_port_block(7)
    every = load_nodes("127.0.0.1", first)
    bases = {d.slug: d.base for d in every}
    nodes = [prepare(d.slug, d.base, tmp / d.slug, {**d.settings, "FEED_POLLING_INTERVAL": 1},
                     lambda session, d=d: seed_node(session, d, bases)) for d in every[:NODES]]
    a_base = f"http://127.0.0.1:{first + 6}"
    index_a = Index(tmp / "index-a")
    index_a.env.update(ATLAS_BASE_URL=a_base, ATLAS_NODE_NAME="Index A",
                       ATLAS_FEED_PAGE_SIZE="50")
    serving = None
    try:
        launch(nodes)
        index_a.add(nodes)
        assert all(e["ok"] for e in finished(index_a.run()).values())
        index_a.folder.mkdir(exist_ok=True)
        log = (index_a.folder / "serve.log").open("a")
        serving = subprocess.Popen(
            cli_command("index", "serve", "--host", "127.0.0.1", "--port", str(first + 6)),
            env=index_a.env, cwd=index_a.folder.parent, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        wait_until_serving(serving, a_base + "/index/feed", what="index A", status=200,
                           log=index_a.folder / "serve.log")
        yield nodes, index_a, a_base
    finally:
        if serving is not None and serving.poll() is None:
            below = descendants(serving.pid)
            serving.kill()
            serving.wait(30)
            for pid in below:
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
        for node in nodes:
            node.kill()
            node.http.close()


def flat(graphs: dict[str, dict[str, frozenset[str]]]) -> dict[str, frozenset[str]]:
    return {g: t for per_source in graphs.values() for g, t in per_source.items()}


def test_index_b_harvests_index_a_with_the_original_sources_as_provenance(chain, tmp_path):
    nodes, index_a, a_base = chain
    entry = a_base + "/index"
    index_b = Index(tmp_path / "index-b")
    index_b.env.update(ATLAS_HARVEST_TRUSTED_INDEXES=entry)
    added = index_b.cli("harvest", "add", entry)
    assert added.returncode == 0, added.stdout + added.stderr
    assert "Added index" in added.stdout and f"{NODES} original sources" in added.stdout
    key = "127.0.0.1-" + a_base.rsplit(":", 1)[1] + "-index"
    assert finished(index_b.run())[key]["ok"]

    with index_a.store() as store:
        in_a = flat(entity_graphs(store))
    with index_b.store() as store:
        in_b = entity_graphs(store)
        rows = store.query(f"SELECT ?e ?src ?via WHERE {{ GRAPH ?sg {{ "
                           f"?e <{PROV}wasDerivedFrom> ?src . "
                           f"OPTIONAL {{ ?e <{STATE_NS}harvestedVia> ?via }} }} }}")
        provenance = {row["e"].value: (row["src"].value, row["via"] and row["via"].value)
                      for row in rows}
        del rows  # a live result keeps the store (and its lock) open
    assert set(in_b) == {key}  # one source: A
    assert len(in_a) >= 10 and in_b[key] == in_a  # graph by graph, triple by triple
    origin_of = {node.base + "/": node for node in nodes}
    for entity in in_a:
        source, via = provenance[entity]
        assert source in origin_of and entity.startswith(source), entity  # the original node
        assert via == entry
    with Journal(index_b.folder / "index.journal.sqlite3", readonly=True) as journal:
        published = journal.entries_between(1, journal.latest_seq())
    assert {e.entity for e in published} == set(in_a)
    assert {e.origin for e in published} == set(origin_of)  # the nodes, never A

    # A delete at a node reaches B once A and B have run again; nothing else changes.
    node = nodes[1]
    victim = next(g for g in sorted(in_a) if g.startswith(node.base + "/actors/")
                  and sum(f"<{g}>" in t for ts in in_a.values() for t in ts if not
                          t.startswith(f"<{g}")) == 0)
    node.delete(victim)
    assert sum(e["deletes"] for e in finished(index_a.run("--all")).values()) == 1
    again = finished(index_b.run("--all"))[key]
    assert again["ok"] and again["deletes"] == 1 and again["members_applied"] == 0
    with index_b.store() as store:
        after = flat(entity_graphs(store))
        gone = bool(store.query(f"ASK {{ GRAPH ?g {{ <{victim}> ?p ?o }} }}"))
    assert not gone and after == {g: t for g, t in in_a.items() if g != victim}
    with index_a.store() as store:
        assert flat(entity_graphs(store)) == after

    quiet = finished(index_b.run("--all"))[key]  # nothing changed anywhere
    assert quiet["ok"] and quiet["members_applied"] + quiet["deletes"] == 0


def test_an_untrusted_index_makes_add_register_the_original_sources(chain, tmp_path):
    nodes, _index_a, a_base = chain
    index_c = Index(tmp_path / "index-c")
    added = index_c.cli("harvest", "add", a_base + "/index")
    assert added.returncode == 0, added.stdout + added.stderr
    assert "not in HARVEST_TRUSTED_INDEXES" in added.stderr
    registry = json.loads((index_c.folder / "index.sources.json").read_text())
    registered = {(s["kind"], s["entry_url"], s["uri_space"]) for s in registry["sources"]}
    assert registered == {("node", n.base + "/", n.base + "/") for n in nodes}
