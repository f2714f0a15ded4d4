"""harvesters.fetch against real HTTP servers on 127.0.0.1: normal behaviour of a source.

The fetcher runs with allow_private=True here (the servers are on loopback); refusals and
hostile sources are in test_fetch_hostile.py. ``serve`` is shared with that module.
"""

from __future__ import annotations

import gzip
import re
import shutil
import socket
import ssl
import subprocess
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from harvesters import addresses
from harvesters.errors import FetchError
from harvesters.fetch import Fetcher, FetchPolicy, HTTPStatusError, _parse_retry_after

Handle = Callable[[BaseHTTPRequestHandler], None]


@dataclass
class Server:
    """A running test server: its base URL, the requests it saw, a stop flag for handlers."""

    port: int
    url: str
    seen: list[dict] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)
    active: int = 0
    max_active: int = 0


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address) -> None:  # clients hang up on purpose
        pass


@contextmanager
def serve(handle: Handle, *, tls: ssl.SSLContext | None = None) -> Iterator[Server]:
    """Run ``handle(request_handler)`` for every GET on 127.0.0.1 until the block ends.

    Handlers that loop check ``request_handler.server.stopping`` (set when the block ends).
    """
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            with lock:
                server.seen.append({"path": self.path, "headers": self.headers,
                                    "at": time.monotonic()})
                server.active += 1
                server.max_active = max(server.max_active, server.active)
            try:
                handle(self)
            except OSError:  # the fetcher hung up, as it should on hostile bodies
                pass
            finally:
                with lock:
                    server.active -= 1

        def log_message(self, *args) -> None:
            pass

    httpd = _QuietServer(("127.0.0.1", 0), Handler)
    if tls is not None:
        httpd.socket = tls.wrap_socket(httpd.socket, server_side=True)
    port = httpd.server_address[1]
    server = Server(port, f"{'https' if tls else 'http'}://127.0.0.1:{port}")
    httpd.stopping = server.stop  # endless handlers end their loops when this is set
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.stop.set()
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


def reply(h: BaseHTTPRequestHandler, status: int = 200, body: bytes = b"",
          headers: dict[str, str] | None = None) -> None:
    h.send_response(status)
    for name, value in (headers or {}).items():
        h.send_header(name, value)
    h.send_header("Content-Length", str(len(body)))
    h.end_headers()
    h.wfile.write(body)


def fake_dns(monkeypatch: pytest.MonkeyPatch, table: dict[str, list[str]]) -> list[str]:
    """Replace the fetcher's resolver with ``table``; returns the list of names asked."""
    asked: list[str] = []

    def resolve(host: str, port: int) -> list[str]:
        asked.append(host)
        return list(table[host])

    monkeypatch.setattr(addresses, "resolve", resolve)
    return asked


LOCAL = FetchPolicy(allow_private=True, backoff=0.01, deadline=10)


def test_200_body_and_metadata():
    def handle(h):
        reply(h, 200, b"<a> <b> <c> .\n", {"Content-Type": "application/n-triples",
                                             "ETag": '"v1"',
                                             "Last-Modified": "Tue, 01 Apr 2025 10:00:00 GMT"})

    with serve(handle) as srv:
        resp = Fetcher(LOCAL).fetch(srv.url + "/feed", accept="application/n-triples")
    assert (resp.status, resp.body) == (200, b"<a> <b> <c> .\n")
    assert resp.url == srv.url + "/feed"
    assert resp.headers["content-type"] == resp.headers["CONTENT-TYPE"] == "application/n-triples"
    assert (resp.etag, resp.last_modified) == ('"v1"', "Tue, 01 Apr 2025 10:00:00 GMT")
    assert resp.not_modified is False and resp.elapsed > 0
    assert srv.seen[0]["headers"]["Accept"] == "application/n-triples"
    assert srv.seen[0]["headers"]["Host"] == f"127.0.0.1:{srv.port}"


def test_304_with_etag_and_last_modified():
    stamp = "Tue, 01 Apr 2025 10:00:00 GMT"

    def handle(h):
        if h.headers.get("If-None-Match") == '"v1"' or h.headers.get("If-Modified-Since") == stamp:
            h.send_response(304)
            h.send_header("ETag", '"v1"')
            h.end_headers()
        else:
            reply(h, 200, b"body", {"ETag": '"v1"', "Last-Modified": stamp})

    with serve(handle) as srv:
        fetcher = Fetcher(LOCAL)
        first = fetcher.fetch(srv.url)
        by_etag = fetcher.fetch(srv.url, etag=first.etag)
        by_date = fetcher.fetch(srv.url, last_modified=first.last_modified)
    assert not first.not_modified and first.body == b"body"
    for resp in (by_etag, by_date):
        assert resp.not_modified and resp.status == 304 and resp.body == b""
    assert by_etag.etag == '"v1"' and by_date.last_modified == stamp  # validators kept
    assert srv.seen[1]["headers"]["If-None-Match"] == '"v1"'
    assert srv.seen[2]["headers"]["If-Modified-Since"] == stamp


def test_redirects_followed_with_host_header_per_hop(monkeypatch):
    fake_dns(monkeypatch, {"a.test": ["127.0.0.1"], "b.test": ["127.0.0.1"]})

    def handle(h):
        port = h.server.server_address[1]
        hops = {"/start": "/relative", "/relative": f"http://b.test:{port}/absolute",
                "/absolute": "/final"}
        if h.path in hops:
            reply(h, 302 if h.path == "/start" else 308, headers={"Location": hops[h.path]})
        else:
            reply(h, 200, b"arrived")

    with serve(handle) as srv:
        resp = Fetcher(LOCAL).fetch(f"http://a.test:{srv.port}/start")
    assert resp.body == b"arrived" and resp.url == f"http://b.test:{srv.port}/final"
    assert [r["path"] for r in srv.seen] == ["/start", "/relative", "/absolute", "/final"]
    assert [r["headers"]["Host"].split(":")[0] for r in srv.seen] == ["a.test", "a.test",
                                                                      "b.test", "b.test"]


def test_redirects_capped():
    with serve(lambda h: reply(h, 301, headers={"Location": "/loop"})) as srv:
        with pytest.raises(FetchError) as info:
            Fetcher(FetchPolicy(allow_private=True, max_redirects=3)).fetch(srv.url + "/loop")
    assert info.value.reason == "too-many-redirects"
    assert len(srv.seen) == 4  # the first request and three redirects followed


def test_retries_on_503_with_retry_after_then_success():
    def handle(h):
        if len(srv.seen) < 3:
            reply(h, 503, b"busy", {"Retry-After": "0"})
        else:
            reply(h, 200, b"ok")

    with serve(handle) as srv:
        resp = Fetcher(FetchPolicy(allow_private=True, retries=3, backoff=0.01)).fetch(srv.url)
    assert resp.body == b"ok" and len(srv.seen) == 3


def test_retries_are_bounded():
    with serve(lambda h: reply(h, 503)) as srv:
        with pytest.raises(HTTPStatusError) as info:
            Fetcher(FetchPolicy(allow_private=True, retries=2, backoff=0.01)).fetch(srv.url)
    assert (info.value.status, info.value.reason) == (503, "http-503")
    assert len(srv.seen) == 3


def test_connection_errors_are_retried():
    def handle(h):
        if len(srv.seen) == 1:  # hang up without a status line
            h.close_connection = True
            h.connection.shutdown(2)
        else:
            reply(h, 200, b"second time")

    with serve(handle) as srv:
        resp = Fetcher(FetchPolicy(allow_private=True, backoff=0.01)).fetch(srv.url)
    assert resp.body == b"second time" and len(srv.seen) == 2


def test_429_retry_after_is_honoured():
    def handle(h):
        if len(srv.seen) == 1:
            reply(h, 429, headers={"Retry-After": "1"})
        else:
            reply(h, 200, b"ok")

    with serve(handle) as srv:
        resp = Fetcher(FetchPolicy(allow_private=True, backoff=0.01)).fetch(srv.url)
    assert resp.body == b"ok"
    assert srv.seen[1]["at"] - srv.seen[0]["at"] >= 0.95  # waited as asked, not the backoff


def test_retry_after_beyond_the_cap_ends_the_fetch_with_when_to_return():
    with serve(lambda h: reply(h, 429, headers={"Retry-After": "3600"})) as srv:
        with pytest.raises(HTTPStatusError) as info:
            Fetcher(FetchPolicy(allow_private=True, max_retry_wait=30)).fetch(srv.url)
    assert (info.value.status, info.value.retry_after) == (429, 3600)
    assert len(srv.seen) == 1


def test_retry_after_forms():
    now = datetime(2025, 4, 1, 10, 0, tzinfo=UTC)
    assert _parse_retry_after("120", now) == 120
    assert _parse_retry_after(format_datetime(now + timedelta(seconds=90), usegmt=True),
                              now) == 90
    assert _parse_retry_after("Tue, 01 Apr 2025 09:00:00 GMT", now) == 0  # in the past
    assert _parse_retry_after("soon", now) is None and _parse_retry_after(None) is None


def test_client_errors_are_not_retried():
    with serve(lambda h: reply(h, 404)) as srv:
        with pytest.raises(HTTPStatusError) as info:
            Fetcher(LOCAL).fetch(srv.url)
    assert info.value.reason == "http-404" and len(srv.seen) == 1


def test_per_host_concurrency_limit(monkeypatch):
    fake_dns(monkeypatch, {"a.test": ["127.0.0.1"], "b.test": ["127.0.0.1"]})

    def handle(h):
        time.sleep(0.3)
        reply(h, 200, b"ok")

    def run(urls: list[str], fetcher: Fetcher) -> None:
        threads = [threading.Thread(target=fetcher.fetch, args=(u,)) for u in urls]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)

    with serve(handle) as srv:
        run([f"http://a.test:{srv.port}/"] * 6, Fetcher(FetchPolicy(allow_private=True,
                                                                    per_host=2)))
        same_host = srv.max_active
        srv.max_active = 0
        # per_host=1, two hosts: the limit is per host, so both run at once
        run([f"http://a.test:{srv.port}/", f"http://b.test:{srv.port}/"] * 2,
            Fetcher(FetchPolicy(allow_private=True, per_host=1)))
        two_hosts = srv.max_active
    assert len(srv.seen) == 10
    assert same_host == 2
    assert two_hosts == 2


def test_user_agent_is_honest_and_configurable():
    with serve(lambda h: reply(h, 200)) as srv:
        Fetcher(LOCAL).fetch(srv.url)
        Fetcher(FetchPolicy(allow_private=True, user_agent="Custom/1 (+https://x.example/)")
                ).fetch(srv.url)
    default = srv.seen[0]["headers"]["User-Agent"]
    assert re.fullmatch(r"EngagementAtlasHarvester/\S+ \(\+https?://\S+\)", default)
    assert srv.seen[1]["headers"]["User-Agent"] == "Custom/1 (+https://x.example/)"


@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
def test_compressed_bodies_are_decoded(encoding):
    text = b"<urn:a> <urn:b> \"c\" .\n" * 5000
    packed = gzip.compress(text) if encoding == "gzip" else zlib.compress(text)

    with serve(lambda h: reply(h, 200, packed, {"Content-Encoding": encoding})) as srv:
        resp = Fetcher(LOCAL).fetch(srv.url)
    assert resp.body == text
    assert "gzip" in srv.seen[0]["headers"]["Accept-Encoding"]


def test_open_streams_decoded_chunks():
    text = bytes(range(256)) * 8192  # 2 MiB

    with serve(lambda h: reply(h, 200, gzip.compress(text), {"Content-Encoding": "gzip",
                                                             "ETag": '"d1"'})) as srv:
        with Fetcher(LOCAL).open(srv.url + "/dump.nt.gz") as stream:
            assert (stream.status, stream.etag, stream.not_modified) == (200, '"d1"', False)
            chunks = list(stream)
    assert b"".join(chunks) == text
    assert len(chunks) > 1 and max(map(len, chunks)) <= 65536


def test_derived_fetcher_shares_host_slots():
    fetcher = Fetcher(FetchPolicy(per_host=3))
    dumps = fetcher.derive(deadline=600, max_bytes=2**32)
    assert dumps.policy.deadline == 600 and dumps._slots is fetcher._slots
    with pytest.raises(ValueError):
        fetcher.derive(per_host=5)
    with pytest.raises(ValueError):
        FetchPolicy(deadline=0)


@pytest.fixture(scope="module")
def certificate(tmp_path_factory):
    """A self-signed certificate for atlas.test (and nothing else)."""
    if shutil.which("openssl") is None:
        pytest.fail("the openssl command is needed to make a test certificate")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2", "-subj",
                    "/CN=atlas.test", "-addext", "subjectAltName=DNS:atlas.test",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    return cert, key


def test_tls_uses_the_hostname_while_connecting_to_the_checked_address(monkeypatch,
                                                                         certificate):
    cert, key = certificate
    fake_dns(monkeypatch, {"atlas.test": ["127.0.0.1"], "other.test": ["127.0.0.1"]})
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    sni: list[str | None] = []
    context.sni_callback = lambda sock, name, ctx: sni.append(name)
    policy = FetchPolicy(allow_private=True, ca_certs=str(cert), retries=0)

    with serve(lambda h: reply(h, 200, b"secure"), tls=context) as srv:
        resp = Fetcher(policy).fetch(f"https://atlas.test:{srv.port}/")
        for wrong in (f"https://other.test:{srv.port}/", f"https://127.0.0.1:{srv.port}/"):
            with pytest.raises(FetchError) as info:
                Fetcher(policy).fetch(wrong)
            assert info.value.reason == "tls-error"  # certificate is for atlas.test only
    assert resp.body == b"secure"
    assert srv.seen[0]["headers"]["Host"] == f"atlas.test:{srv.port}"
    assert sni[:2] == ["atlas.test", "other.test"]


def test_unreachable_port_fails_after_bounded_retries():
    with socket.socket() as probe:  # a port that was free a moment ago
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(FetchError) as info:
        Fetcher(FetchPolicy(allow_private=True, retries=2, backoff=0.01)).fetch(
            f"http://127.0.0.1:{port}/")
    assert info.value.reason == "connection-failed"
