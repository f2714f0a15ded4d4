"""Sources: registration from real node processes, discovery of peers, the JSON registry.

Four real nodes run as ``python -m service.cli serve`` on loopback ports (private instance
folders, SQLite): A lists B and a dead port as peers, B lists C, C lists A (a cycle) and D;
D is served on its own port but says its URI space is C's. Hostile descriptions that no node
would serve come from a small stub server. Every wait is bounded.
"""

from __future__ import annotations

import json
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

from harvesters.errors import ParseError
from harvesters.fetch import Fetcher, FetchPolicy
from harvesters.model import Source
from harvesters.sources import (
    RegistrationRefused,
    SourceConflict,
    SourceRegistry,
    discover,
    domain_allowed,
    normalize_entry_url,
    register,
    source_id_for,
)
from tests.e2e.conftest import cli_command, cli_env, descendants, free_port_block

TURTLE = "text/turtle"


class CountingFetcher(Fetcher):
    """A Fetcher that remembers what it fetched (each URL must be asked for once)."""

    def __init__(self) -> None:
        super().__init__(FetchPolicy(allow_private=True, deadline=20, retries=0))
        self.urls: list[str] = []

    def fetch(self, url, **kwargs):
        self.urls.append(url)
        return super().fetch(url, **kwargs)


def _start_node(tmp, name: str, base: str, port: int, peers: list[str], procs: list) -> None:
    folder = tmp / name
    env = {**cli_env(folder / "instance"), "ATLAS_BASE_URL": base,
           "ATLAS_NODE_NAME": f"Knoten {name}",
           "ATLAS_DATABASE_URL": f"sqlite:///{folder}/atlas.sqlite3"}
    folder.mkdir()
    subprocess.run(cli_command("db", "upgrade"), env=env, cwd=folder, check=True,
                   capture_output=True, timeout=120)
    for peer in peers:
        subprocess.run(cli_command("peers", "add", peer, "--kind", "node"), env=env, cwd=folder,
                       check=True, capture_output=True, timeout=120)
    log = (folder / "serve.log").open("w")  # an unread pipe would stall the server
    procs.append((subprocess.Popen(cli_command("serve", "--host", "127.0.0.1", "--port",
                                               str(port)), env=env, cwd=folder, stdout=log,
                                   stderr=subprocess.STDOUT), log))


@pytest.fixture(scope="module")
def nodes(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("federation")
    pa, pb, pc, pd, dead = (free_port_block(5) + i for i in range(5))
    urls = {"A": f"http://127.0.0.1:{pa}", "B": f"http://localhost:{pb}",
            "C": f"http://127.0.0.1:{pc}", "D": f"http://127.0.0.1:{pd}",
            "dead": f"http://127.0.0.1:{dead}"}
    procs: list = []
    try:
        _start_node(tmp, "A", urls["A"], pa, [urls["B"], urls["dead"]], procs)
        _start_node(tmp, "B", urls["B"], pb, [urls["C"]], procs)
        _start_node(tmp, "C", urls["C"], pc, [urls["A"], urls["D"]], procs)
        _start_node(tmp, "D", urls["C"], pd, [], procs)  # claims C's URI space
        deadline = time.monotonic() + 60
        for key in "ABCD":
            while True:
                try:
                    if requests.get(urls[key] + "/feed", timeout=2).status_code == 200:
                        break
                except requests.ConnectionError:
                    pass
                assert time.monotonic() < deadline, f"node {key} did not come up"
                time.sleep(0.2)
        yield urls
    finally:
        for proc, log in procs:
            below = descendants(proc.pid)
            proc.kill()
            proc.wait(30)
            for pid in below:
                subprocess.run(["kill", "-9", str(pid)], capture_output=True, check=False)
            log.close()


# --------------------------------------------------------------------------- registration


def test_register_fixes_the_uri_space_from_a_real_nodes_description(nodes):
    source = register(nodes["A"], CountingFetcher())  # no trailing slash: "/" is the node
    base = nodes["A"]
    assert source.entry_url == base + "/" and source.uri_space == base + "/"
    assert source.id == source_id_for(base) == base.split("//")[1].replace(":", "-")
    assert source.feed_url == base + "/feed" and source.dump_url == base + "/dumps/all.nt.gz"
    assert source.kind == "node" and source.name == "Knoten A"
    assert register(nodes["A"], CountingFetcher(), kind="index").kind == "index"


def test_a_node_claiming_another_hosts_uri_space_is_refused(nodes):
    with pytest.raises(RegistrationRefused) as refused:
        register(nodes["D"], CountingFetcher())
    assert refused.value.reason == "foreign-uri-space"
    assert nodes["C"] + "/" in str(refused.value)


# --------------------------------------------------------------------------- discovery


def ids(sources: list[Source]) -> list[str]:
    return [s.entry_url for s in sources]


def test_discover_follows_peers_breadth_first_to_the_depth_limit(nodes):
    a, b, c = (nodes[k] + "/" for k in "ABC")
    assert ids(discover([nodes["A"]], CountingFetcher(), depth=0)) == [a]
    skipped: dict[str, str] = {}
    assert ids(discover([nodes["A"]], CountingFetcher(), depth=1, skipped=skipped)) == [a, b]
    assert skipped[nodes["dead"] + "/"].startswith("connection-failed")
    assert ids(discover([nodes["A"]], CountingFetcher(), depth=2)) == [a, b, c]


def test_a_cycle_of_peers_terminates_and_a_foreign_claim_is_skipped(nodes):
    fetcher, skipped = CountingFetcher(), {}
    found = discover([nodes["A"]], fetcher, depth=50, skipped=skipped)
    assert ids(found) == [nodes[k] + "/" for k in "ABC"]  # C -> A is not followed again
    assert sorted(fetcher.urls) == sorted(nodes[k] + "/" for k in ("A", "B", "C", "D", "dead"))
    assert skipped[nodes["D"] + "/"].startswith("foreign-uri-space")
    assert {s.uri_space for s in found} == {nodes[k] + "/" for k in "ABC"}


def test_allow_and_deny_lists_match_peer_domains_by_suffix(nodes):
    skipped: dict[str, str] = {}
    found = discover([nodes["A"]], CountingFetcher(), depth=5, deny_domains=["localhost"],
                     skipped=skipped)
    assert ids(found) == [nodes["A"] + "/"]
    assert skipped[nodes["B"] + "/"].startswith("refused-domain")
    found = discover([nodes["A"]], CountingFetcher(), depth=5, allow_domains=["127.0.0.1"])
    assert ids(found) == [nodes["A"] + "/"]  # B (localhost) is not allowed, so C is not reached
    # entry URLs are the operator's choice: the lists apply to peers only
    found = discover([nodes["B"]], CountingFetcher(), depth=1, allow_domains=["example.org"])
    assert ids(found) == [nodes["B"] + "/"]


@pytest.mark.parametrize("url, allow, deny, expected", [
    ("http://a.example.org/", [], [], True),
    ("http://a.example.org/", ["example.org"], [], True),
    ("http://example.org/", ["example.org"], [], True),
    ("http://badexample.org/", ["example.org"], [], False),
    ("http://a.example.org/", ["example.org"], ["a.example.org"], False),
    ("http://EXAMPLE.org./", [], ["example.org"], False),
    ("http://x.test/", ["example.org"], [], False),
])
def test_domain_lists(url, allow, deny, expected):
    assert domain_allowed(url, allow, deny) is expected


@pytest.mark.parametrize("url", ["ftp://a.test/", "http://user@a.test/", "http://a.test/?q=1",
                                 "http://a.test/#x", "javascript:alert(1)", "http:///x"])
def test_unusable_entry_urls_are_refused(url):
    with pytest.raises(RegistrationRefused):
        normalize_entry_url(url)


def test_entry_urls_are_normalized():
    assert normalize_entry_url("HTTP://Node.Test:80") == "http://node.test/"
    assert normalize_entry_url("https://node.test:8443/atlas/") == "https://node.test:8443/atlas/"
    assert source_id_for("https://node.test:8443/atlas/") == "node.test-8443-atlas"


# --------------------------------------------------------------------------- hostile stubs


@pytest.fixture
def stub():
    """A server answering each path with a configured (content type, body)."""
    pages: dict[str, tuple[str, str]] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            ctype, body = pages.get(self.path, ("text/plain", "not found"))
            data = body.encode("utf-8")
            self.send_response(200 if self.path in pages else 404)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    yield base, pages
    server.shutdown()
    server.server_close()
    thread.join(10)


def describe(node: str, space: str, extra: str = "") -> str:
    return (f"@prefix void: <http://rdfs.org/ns/void#> . @prefix dct: <http://purl.org/dc/terms/> ."
            f"@prefix schema: <https://schema.org/> . @prefix ldes: <https://w3id.org/ldes#> .\n"
            f"<{node}> void:uriSpace \"{space}\" .\n{extra}")


@pytest.mark.parametrize("space, reason", [
    (None, "no-description"), ("http://{host}/a/ http://{host}/b/", "ambiguous-uri-space"),
    ("http://{host}/no-slash", "invalid-uri-space"), ("ftp://{host}/", "invalid-uri-space"),
    ("http://127.0.0.1.evil.test/", "foreign-uri-space"),
    ("http://127.0.0.1:1/", "foreign-uri-space"), ("http://localhost:{port}/", "foreign-uri-space"),
])
def test_hostile_descriptions_are_refused(stub, space, reason):
    base, pages = stub
    host, port = base.split("//")[1], base.rsplit(":", 1)[1]
    if space is None:
        body = "<http://x.test/> <http://x.test/p> <http://x.test/o> ."
    else:
        body = "".join(describe(base + "/", s) for s in space.format(host=host, port=port).split())
    pages["/"] = (TURTLE, body)
    with pytest.raises(RegistrationRefused) as refused:
        register(base, CountingFetcher())
    assert refused.value.reason == reason


def test_an_html_answer_is_a_parse_error(stub):
    base, pages = stub
    pages["/"] = ("text/html", "<html><body>Hallo</body></html>")
    with pytest.raises(ParseError):
        register(base, CountingFetcher())


def test_only_statements_inside_the_space_describe_feed_dump_and_peers(stub):
    base, pages = stub
    node = base + "/atlas/"
    extra = (f"<{node}> schema:dataset <{node}feed>, <http://evil.test/feed> ; "
             f"void:dataDump <{node}all.ttl.gz>, <{node}all.nt.gz> ; dct:relation <{node}#p1> .\n"
             f"<{node}feed> a ldes:EventStream . <http://evil.test/feed> a ldes:EventStream .\n"
             f"<{node}#p1> schema:url \"{base}/peer\" .\n"
             f"<http://evil.test/> dct:relation <http://evil.test/#p> .\n"
             f"<{node}> dct:relation <http://evil.test/#p> .\n"
             f"<http://evil.test/#p> schema:url <http://evil.test/> .\n")
    pages["/atlas/"] = (TURTLE, describe(node, node, extra))
    fetcher = CountingFetcher()
    source = register(node, fetcher)
    assert source.uri_space == node and source.feed_url == node + "feed"
    assert source.dump_url == node + "all.nt.gz" and source.id == source_id_for(node)
    skipped: dict[str, str] = {}
    discover([node], fetcher, depth=1, skipped=skipped)
    assert fetcher.urls[-1] == base + "/peer" and "http://evil.test/" not in fetcher.urls


# --------------------------------------------------------------------------- registry


def make(n: int, space: str | None = None) -> Source:
    return Source(f"s{n}", f"http://s{n}.test/", space or f"http://s{n}.test/",
                  f"http://s{n}.test/feed", None, options={"interval": 300})


def test_the_registry_persists_sources_as_json(tmp_path):
    registry = SourceRegistry.beside(tmp_path / "index")
    assert registry.path == tmp_path / "index.sources.json" and registry.all() == []
    registry.add(make(1))
    registry.add(make(2))
    again = SourceRegistry(tmp_path / "index.sources.json")
    assert again.get("s1") == make(1) and [s.id for s in again.all()] == ["s1", "s2"]
    assert again.get("nope") is None
    assert again.remove("s1") and not again.remove("s1")
    assert [s.id for s in registry.all()] == ["s2"]
    document = json.loads(registry.path.read_text())
    assert document["version"] == 1 and document["sources"][0]["options"] == {"interval": 300}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["index.sources.json",
                                                          "index.sources.json.lock"]


def test_the_registry_refuses_overlapping_or_moved_uri_spaces(tmp_path):
    registry = SourceRegistry(tmp_path / "sources.json")
    registry.add(make(1))
    with pytest.raises(SourceConflict):
        registry.add(make(2, space="http://s1.test/actors/"))  # inside s1's space
    with pytest.raises(SourceConflict):
        registry.add(make(1, space="http://s1.test/other/"))  # a fixed space does not move
    registry.add(make(1, space="http://s1.test/other/"), replace_space=True)
    assert registry.get("s1").uri_space == "http://s1.test/other/"
    registry.add(make(1, space="http://s1.test/other/"))  # the same again is fine


def test_concurrent_writers_lose_nothing(tmp_path):
    def add(n: int) -> None:  # a registry object per thread: only the file lock serializes
        SourceRegistry(tmp_path / "sources.json").add(make(n))

    threads = [threading.Thread(target=add, args=(n,)) for n in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert len(SourceRegistry(tmp_path / "sources.json").all()) == 16
