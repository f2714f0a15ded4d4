"""Hostile sources against the whole harvester, through its command line (issue 5, "What must
be shown": hostile sources, each reported clearly while other sources are unaffected and
harvester memory stays bounded).

Real processes over loopback HTTP: one good node (``python -m service.cli serve`` on
127.0.0.2), a hostile server (tests/e2e/hostile_server.py on 127.0.0.3, its slow cases on
127.0.0.4, a canary on 127.0.0.1), and ``python -m service.cli harvest add|run``, ``index
status|serve`` for the index. The harvester runs with the DEFAULT address policy plus
HARVEST_ALLOW_HOSTS = those three addresses only, so 127.0.0.1, ``localhost`` and
169.254.169.254 stay refused as in production; small HARVEST_DEADLINE / HARVEST_MAX_BYTES /
HARVEST_MAX_DECOMPRESSED keep the suite fast.

Cases (hostile_server.py): statements about the good node's URIs; a paging cycle; an
endless body; a 10 GiB Content-Length; a gzip bomb (1 MiB -> 1 GiB); a body drip and a
header drip; redirects to 127.0.0.1 and 169.254.169.254; a dump URL on ``localhost``; JSON-LD
with a remote ``@context``; RDF/XML with nested entities; JSON-LD of six million values
(12 KiB of gzip that took the harvester to 4.4 GB before parse.py counted JSON values);
Turtle with a million nested blank nodes (likewise ~520 bytes per open bracket).

One round harvests only the good node (the baseline: exit code, events, the process's peak
RSS); actors are added to it; a second round harvests every source at once. Each hostile
source is then reported with its specific reason (JSON lines, exit code, the run record,
``atlas index status``, the index's /index/sources page), the good node's run applies exactly
its new actors and its data equal its own dump, the canaries saw no request, and the second
round's peak RSS (``wait4`` on the harvester process) stays within a bound that a cap that
failed to hold would break (lifting the byte caps here gave 2.2 GB).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
from markupsafe import escape

from harvesters.sources import source_id_for
from harvesters.store import STATE_NS

from . import hostile_server
from .conftest import cli_command, cli_env, free_port_block, wait_until_serving
from .index_support import NAME, Index, Node, add_actors, entity_graphs, events, finished, prepare

GOOD, HOSTILE, SLOW = "127.0.0.2", "127.0.0.3", "127.0.0.4"  # allowed; 127.0.0.1 is not
MiB = 2**20
LIMITS = {"ATLAS_HARVEST_DEADLINE": "3", "ATLAS_HARVEST_MAX_BYTES": str(4 * MiB),
          "ATLAS_HARVEST_MAX_DECOMPRESSED": str(16 * MiB)}
NEW_ACTORS = 5
# What each hostile source's run must say: (ok, the reason slug, words of the message).
EXPECTED = {
    "foreign": (True, None, ()),
    "loop": (True, None, ()),
    "endless": (False, "too-large", ("/endless/feed", f"body over {4 * MiB} bytes")),
    "oversized": (False, "too-large", ("/oversized/feed", f"Content-Length {10 << 30}")),
    "bomb": (False, "too-large-decompressed", ("/bomb/feed",
                                               f"decoded body over {16 * MiB} bytes")),
    "drip": (False, "deadline-exceeded", ("deadline of 3 s exceeded reading http://",
                                          "/drip/feed")),
    "header-drip": (False, "deadline-exceeded", ("deadline of 3 s exceeded fetching http://",
                                                 "/header-drip/feed")),
    "redirect-loopback": (False, "refused-address", (
        "redirect from http://127.0.0.3:", "/redirect-loopback/feed to http://127.0.0.1:",
        "address 127.0.0.1 is loopback")),
    "redirect-metadata": (False, "refused-address", (
        "/redirect-metadata/feed to http://169.254.169.254/latest/meta-data/ refused",
        "address 169.254.169.254 is reserved")),
    "private-name": (False, "refused-address", (
        "/dumps/all.nt.gz refused: localhost: address 127.0.0.1 is loopback",)),
    "context": (False, "remote-context", ("/context/feed: json-ld: ", "/canary/context.jsonld",
                                          "never fetched")),
    "xml": (False, "rdfxml-refused", ("/xml/feed: RDF/XML from other servers is refused",)),
    "jsonld-flood": (False, "json-too-large", ("/jsonld-flood/feed: json-ld: more than ",
                                                "ParseLimits.max_json_values")),
    "turtle-nest": (False, "turtle-too-nested", ("/turtle-nest/feed: turtle: more than ",
                                                 "ParseLimits.max_turtle_brackets")),
}


class GoodNode(Node):
    def start(self) -> None:  # Node.start listens on 127.0.0.1; this one on GOOD
        log = (self.folder / "serve.log").open("a")
        self.proc = subprocess.Popen(cli_command("serve", "--host", GOOD, "--port",
                                                 str(self.port)),
                                     env=cli_env(self.folder), cwd=self.folder, stdout=log,
                                     stderr=subprocess.STDOUT)
        log.close()


@dataclass
class Round:
    """One ``harvest run``: exit code, JSON-line events, standard error, peak RSS in KiB."""

    code: int
    events: list[dict]
    stderr: str
    peak_kib: int


def harvest_run(index: Index, *args: str) -> Round:
    """``harvest run`` as a child of this process; ``os.wait4`` gives ITS peak RSS alone."""
    out, err = index.folder.parent / "run.out", index.folder.parent / "run.err"
    with out.open("w") as stdout, err.open("w") as stderr:
        proc = subprocess.Popen(cli_command("harvest", "run", *args), env=index.env,
                                cwd=index.folder.parent, stdout=stdout, stderr=stderr)
    stuck = threading.Timer(120, proc.kill)  # a hung harvester fails the test, not the suite
    stuck.start()
    try:
        _pid, status, usage = os.wait4(proc.pid, 0)
    finally:
        stuck.cancel()
    proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
    return Round(proc.returncode, events(out.read_text()), err.read_text(),
                 usage.ru_maxrss)  # Linux: KiB


@dataclass
class Scene:
    good: GoodNode
    index: Index
    ids: dict[str, str]          # case (or "good") -> source id
    hostile_base: str
    canary_port: int
    log: Path
    baseline: Round
    attacked: Round
    requests: list[dict]         # hostile server and canary log of the second round
    before: dict[str, frozenset[str]]  # the good node's graphs after the baseline round
    victim: str


@pytest.fixture(scope="module")
def scene(tmp_path_factory) -> Iterator[Scene]:
    tmp = tmp_path_factory.mktemp("hostile")
    good_port = free_port_block(1, GOOD)
    hostile_port, slow_port = free_port_block(1, HOSTILE), free_port_block(1, SLOW)
    canary_port = free_port_block(1)
    seeded = prepare("good", f"http://{GOOD}:{good_port}", tmp / "good", {})
    seeded.http.close()
    good = GoodNode(seeded.slug, seeded.base, seeded.folder)
    add_actors(good, 8)
    log = tmp / "hostile.log"
    hostile: subprocess.Popen | None = None
    try:
        good.start()
        good.wait_ready(time.monotonic() + 60)
        victim = sorted(e for e in good.dump_graphs() if "/actors/" in e)[0]
        listen = f"{HOSTILE}:{hostile_port},{SLOW}:{slow_port}"
        hostile = subprocess.Popen([sys.executable, hostile_server.__file__, listen,
                                    str(canary_port), victim, str(log)],
                                   stdout=subprocess.PIPE, text=True)
        assert hostile.stdout.readline().strip() == "ready"
        index = Index(tmp / "index")
        index.env = {**cli_env(index.folder), **LIMITS,
                     "ATLAS_HARVEST_ALLOW_HOSTS": f"{GOOD},{HOSTILE},{SLOW}",
                     "ATLAS_HARVEST_WORKERS": str(len(hostile_server.CASES) + 1)}
        hostile_base = f"http://{HOSTILE}:{hostile_port}"
        entries = {"good": good.base, **hostile_server.entries(listen)}
        ids = {case: source_id_for(url) for case, url in entries.items()}
        with ThreadPoolExecutor(2) as pool:  # the foreign source lists the others as peers
            added = list(pool.map(lambda args: index.cli("harvest", "add", *args), [
                (good.base,), ("--follow-peers", entries["foreign"])]))
        for result in added:
            assert result.returncode == 0, result.stdout + result.stderr
        said = added[0].stdout + added[1].stdout
        assert all(f" {key}: " in said for key in ids.values()), said  # "Added node {id}: ..."

        baseline = harvest_run(index, "--source", ids["good"])
        assert baseline.code == 0, baseline.stderr
        with index.store() as store:
            before = entity_graphs(store)[ids["good"]]
        add_actors(good, NEW_ACTORS, first=100)
        seen = len(log.read_text().splitlines())
        attacked = harvest_run(index, "--all")
        requests = [json.loads(line) for line in log.read_text().splitlines()[seen:]]
        (tmp / "attacked.json").write_text(json.dumps(attacked.events, indent=1))  # to debug
        yield Scene(good, index, ids, hostile_base, canary_port, log, baseline, attacked,
                    requests, before, victim)
    finally:
        good.kill()
        good.http.close()
        if hostile is not None:
            hostile.kill()
            hostile.wait()
            hostile.stdout.close()


# --------------------------------------------------------------------------- the tests


def test_the_round_fails_and_names_exactly_the_failing_sources(scene):
    expected_failed = sorted(scene.ids[c] for c, (ok, *_r) in EXPECTED.items() if not ok)
    assert scene.attacked.code == 1, scene.attacked.stderr
    last = scene.attacked.events[-1]
    assert last["event"] == "run-finished" and sorted(last["failed"]) == expected_failed
    assert last["sources"] == len(EXPECTED) + 1
    errors = [(e["event"], e["source"]) for e in scene.attacked.events
              if e["level"] == "error"]
    assert sorted(errors) == [("source-finished", key) for key in expected_failed]


def test_the_good_node_completes_unaffected_in_the_same_round(scene):
    report = finished(scene.attacked.events)[scene.ids["good"]]
    assert report["ok"] and not report["errors"], report
    assert report["members_applied"] == NEW_ACTORS and report["deletes"] == 0
    assert report["dropped"] == 0 and report["quarantined"] == 0
    with scene.index.store() as store:
        after = entity_graphs(store)[scene.ids["good"]]
    assert after == scene.good.dump_graphs()  # every actor, as the node itself publishes it
    assert {e: t for e, t in after.items() if e in scene.before} == scene.before


@pytest.mark.parametrize("case", sorted(EXPECTED))
def test_each_hostile_source_is_reported_with_its_reason(scene, case):
    ok, reason, words = EXPECTED[case]
    report = finished(scene.attacked.events)[scene.ids[case]]
    assert report["ok"] is ok, report
    if ok:
        assert report["errors"] == []
        return
    (error,) = report["errors"]
    assert error.startswith(f"{reason}: "), error
    for word in words:
        assert word in error, error
    assert report["members_applied"] == 0 and report["pages"] == 0
    # The run record the index's source status page reads says the same.
    with scene.index.store() as store:
        stored = {row["e"].value for row in store.query(
            f"SELECT ?e WHERE {{ GRAPH ?sg {{ ?sg <{STATE_NS}sourceId> "
            f'"{scene.ids[case]}" . ?run <{STATE_NS}error> ?e }} }}')}
    assert stored == {error}


def test_statements_about_another_sources_uris_are_dropped_and_reported(scene):
    report = finished(scene.attacked.events)[scene.ids["foreign"]]
    assert report["ok"] and report["members_applied"] == 1, report
    assert report["dropped"] >= 6, report  # 2 statements on the victim, 4 of its "version"
    assert scene.victim in report["dropped_examples"], report
    with scene.index.store() as store:
        graphs = entity_graphs(store)
    assert set(graphs[scene.ids["foreign"]]) == {
        f"{scene.hostile_base}/foreign/actors/own"}
    victim = graphs[scene.ids["good"]][scene.victim]
    assert victim == scene.before[scene.victim]  # the victim's entity is unchanged
    assert not any("Gekapert" in t or "Übernommen" in t or "/foreign/" in t
                   for g in graphs[scene.ids["good"]].values() for t in g)
    assert any(f'<{scene.victim}> <{NAME}>' in t for t in victim)
    with scene.index.store() as store:  # the run record (status page) counts them too
        counted = {int(row["n"].value) for row in store.query(
            f"SELECT ?n WHERE {{ GRAPH ?sg {{ ?sg <{STATE_NS}sourceId> "
            f'"{scene.ids["foreign"]}" . ?run <{STATE_NS}dropped> ?n }} }}')}
    assert counted == {report["dropped"]}


def test_a_paging_loop_reads_each_page_once(scene):
    report = finished(scene.attacked.events)[scene.ids["loop"]]
    assert report["ok"] and report["members_applied"] == 2, report
    paths = [r["path"] for r in scene.requests if r["path"].startswith("/loop/")]
    assert sorted(paths) == ["/loop/feed", "/loop/page/a", "/loop/page/b"]


def test_a_paging_loop_is_reported(scene):
    report = finished(scene.attacked.events)[scene.ids["loop"]]
    assert report["rejected"] >= 1, report


def test_no_request_reached_a_canary(scene):
    """Refused redirect targets, a name resolving to loopback, remote JSON-LD contexts."""
    assert [r for r in scene.requests if r["server"] == "canary"] == []
    # the redirecting pages were asked once each: a refusal is not retried
    paths = [r["path"] for r in scene.requests]
    assert paths.count("/redirect-loopback/feed") == 1
    assert paths.count("/redirect-metadata/feed") == 1


def test_the_harvester_stops_reading_what_it_refuses(scene):
    """Server-side view: bytes sent before the harvester hung up (kernel buffers add some)."""
    sent = {r["path"]: r["sent"] for r in scene.requests}
    assert sent["/endless/feed"] < 32 * MiB
    assert sent["/oversized/feed"] < 32 * MiB
    assert sent["/drip/feed"] < 600  # one byte per 0.1 s; the deadline is 3 s
    assert sent["/header-drip/feed"] < 600


def test_harvester_memory_stays_bounded(scene):
    """The attacked round's peak RSS stays near the baseline round's: a 1 GiB gzip bomb or
    an endless body that were held in memory would add hundreds of MiB each."""
    base, peak = scene.baseline.peak_kib // 1024, scene.attacked.peak_kib // 1024
    print(f"peak RSS: baseline round {base} MiB, attacked round {peak} MiB")
    assert peak < base + 128, (base, peak)
    assert peak < 1024


def test_index_status_shows_which_sources_failed(scene):
    result = scene.index.cli("index", "status")
    assert result.returncode == 0, result.stderr
    rows = {line.split()[0]: line.split()[-2:] for line in result.stdout.splitlines()[1:]}
    for case, (ok, reason, _texts) in EXPECTED.items():
        assert rows[scene.ids[case]] == (["ok", "-"] if ok else ["failed", reason]), case
    assert rows[scene.ids["good"]] == ["ok", "-"]


def test_the_index_source_page_shows_each_reason(scene, started):
    """``atlas index serve``'s /index/sources (from the snapshot published after the run)."""
    port = free_port_block(1)
    with (scene.index.folder.parent / "serve.log").open("w") as log:
        started.append(subprocess.Popen(cli_command("index", "serve", "--port", str(port)),
                                        env=scene.index.env, cwd=scene.index.folder.parent,
                                        stdout=log, stderr=subprocess.STDOUT))
    page = wait_until_serving(started[0], f"http://127.0.0.1:{port}/index/sources",
                              what="index serve")
    assert page.status_code == 200
    for case in EXPECTED:
        report = finished(scene.attacked.events)[scene.ids[case]]
        section = page.text.split(f'id="source-{scene.ids[case]}"', 1)[1].split("</section>")[0]
        assert ("erfolgreich" if report["ok"] else "fehlgeschlagen") in section, case
        for error in report["errors"]:
            assert str(escape(error)) in section, (case, error)


def test_registering_a_name_that_resolves_to_loopback_is_refused(scene):
    result = scene.index.cli("harvest", "add", f"http://localhost:{scene.canary_port}/")
    assert result.returncode == 1
    assert (f"refused-address: http://localhost:{scene.canary_port}/ refused: localhost: "
            "address 127.0.0.1 is loopback") in result.stderr, result.stderr
    assert not [line for line in scene.log.read_text().splitlines() if '"canary"' in line]
