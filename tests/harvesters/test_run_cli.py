"""The ``atlas harvest ...`` and ``atlas index status`` commands (service/harvest_cli.py).

Through click's runner with an index instance in tmp; readers are the fakes of
test_run.py (real nodes: tests/e2e/test_index_harvest.py). What must hold: sources are
registered from a real HTTP description, listed and removed with their data; ``harvest run``
prints JSON lines when not on a terminal, names a failed source in an error line and exits
1 unless every source succeeded; ``watch --max-runs`` stops.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from harvesters import readers
from harvesters.errors import FetchError
from harvesters.settings import HarvestSettings, open_store
from service.harvest_output import Progress

from .test_run import FakeReader, page, source


@pytest.fixture
def cli(tmp_path, monkeypatch):
    """Run ``atlas`` commands of an index instance in tmp; returns (invoke, settings)."""
    from service import create_app
    from service.cli import main

    monkeypatch.setenv("ATLAS_INSTANCE", str(tmp_path / "instance"))
    app = create_app({"TESTING": True, "DATABASE_URL": f"sqlite:///{tmp_path}/db.sqlite3",
                      "INDEX_STORE": str(tmp_path / "index"), "HARVEST_ALLOW_PRIVATE": True})
    runner = app.test_cli_runner()
    settings = HarvestSettings.from_mapping(app.config, app.instance_path)
    return (lambda *args: runner.invoke(main, list(args))), settings


@pytest.fixture
def described():
    """A server describing a node (``/``) whose URI space is its own base."""
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            base = f"http://127.0.0.1:{self.server.server_address[1]}/"
            body = (f'<{base}> <http://rdfs.org/ns/void#uriSpace> "{base}" ; '
                    f'<https://schema.org/name> "Stub" .\n').encode()
            self.send_response(200 if self.path == "/" else 404)
            self.send_header("Content-Type", "text/turtle")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join(10)


def lines(output: str) -> list[dict]:
    return [json.loads(line) for line in output.splitlines() if line.startswith("{")]


def test_harvest_add_list_and_remove(cli, described):
    invoke, settings = cli
    added = invoke("harvest", "add", described)
    assert added.exit_code == 0, added.output
    key = f"127.0.0.1-{described.rsplit(':', 1)[1]}"
    assert f"Added node {key}" in added.output
    assert settings.registry().get(key).uri_space == described + "/"
    listed = invoke("harvest", "list")
    assert key in listed.output and described + "/" in listed.output
    again = invoke("harvest", "add", described)  # same space, same id: an update
    assert again.exit_code == 0
    refused = invoke("harvest", "add", "http://127.0.0.1:1/")
    assert refused.exit_code == 1 and "connection-failed" in refused.output
    removed = invoke("harvest", "remove", key)
    assert removed.exit_code == 0 and settings.registry().all() == []
    assert invoke("harvest", "remove", key).exit_code == 1


def test_harvest_run_exit_code_and_json_lines(cli, monkeypatch):
    invoke, settings = cli
    registry = settings.registry()
    registry.add(source("a"))
    registry.add(source("b"))
    fake = FakeReader({"a": [page("a", 1)], "b": [FetchError("refused", reason="http-503")]})
    monkeypatch.setattr(readers, "read", fake)
    result = invoke("harvest", "run")
    assert result.exit_code == 1
    events = lines(result.output)
    assert events[0]["event"] == "run-started" and events[-1]["failed"] == ["b"]
    failed = [e for e in events if e["level"] == "error"]
    assert [(e["event"], e["source"]) for e in failed] == [("source-finished", "b")]
    assert failed[0]["errors"] == ["http-503: refused"]
    status = invoke("index", "status").output.splitlines()
    assert status[0].split()[-2:] == ["RESULT", "REASON"]
    assert [line.split()[-2:] for line in status if line.startswith("b ")] == [
        ["failed", "http-503"]]

    fake.pages["b"] = [page("b", 1)]
    result = invoke("harvest", "run", "--source", "b")
    assert result.exit_code == 0, result.output
    assert lines(result.output)[-1] == {**lines(result.output)[-1], "ok": True, "sources": 1}
    assert invoke("harvest", "run", "--source", "zzz").exit_code == 1

    status = invoke("index", "status")
    assert status.exit_code == 0
    rows = {line.split()[0]: line.split() for line in status.output.splitlines()[1:]}
    assert rows["a"][1:3] == ["2", str(_triples(settings, "a"))] and rows["b"][-2:] == ["ok", "-"]

    removed = invoke("harvest", "remove", "a")
    assert removed.exit_code == 0
    with open_store(settings) as store:
        assert store.graphs_of("a") == set() and "a" not in store.sources()


def _triples(settings: HarvestSettings, key: str) -> int:
    with open_store(settings) as store:
        return store.count_triples(key)


def test_harvest_watch_stops_after_max_runs(cli, monkeypatch):
    invoke, settings = cli
    settings.registry().add(source("a"))
    monkeypatch.setattr(readers, "read", FakeReader({"a": [page("a", 1)]}))
    result = invoke("harvest", "watch", "--max-runs", "1")
    assert result.exit_code == 0, result.output
    kinds = [e["event"] for e in lines(result.output)]
    assert kinds[0] == "round-started" and kinds[-1] == "round-finished"


def test_the_progress_display_summarises_each_source(capsys):
    progress = Progress()
    progress.selected([source("a"), source("b")])
    progress({"event": "page-applied", "source": "a", "pages": 1, "members": 2})
    progress({"event": "source-finished", "source": "a", "ok": True})
    progress({"event": "source-finished", "source": "b", "ok": False})

    class Report:
        def __init__(self, key, ok):
            self.source_id, self.ok, self.pages, self.members_applied = key, ok, 1, 2
            self.deletes, self.quarantined_count = 0, 0
            self.errors = [] if ok else ["timeout: too slow"]

    progress.close([Report("a", True), Report("b", False)])
    out = capsys.readouterr()
    assert "a" in out.out and "FAILED" in out.out and "timeout: too slow" in out.err
