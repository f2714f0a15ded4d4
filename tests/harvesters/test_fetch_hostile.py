"""harvesters.fetch against hostile sources: SSRF forms, rebinding, drips, bombs, floods.

Refusals need no network: literal addresses, "localhost", and a replaced resolver for
names. Servers run on 127.0.0.1; every handler loop ends when the test's server stops.
"""

from __future__ import annotations

import gc
import ipaddress
import resource
import threading
import time
import tracemalloc
import zlib
from contextlib import ExitStack

import pytest
import urllib3.util.connection

from harvesters import addresses
from harvesters.addresses import address_refusal, check_url
from harvesters.errors import DeadlineExceeded, FetchError, RefusedURL, ResponseTooLarge
from harvesters.fetch import Fetcher, FetchPolicy

from .test_fetch import fake_dns, reply, serve

MiB = 2**20


@pytest.fixture
def connects(monkeypatch):
    """Every TCP connection the fetcher opens, as (address, port), recorded before connecting."""
    seen: list[tuple[str, int]] = []
    real = urllib3.util.connection.create_connection

    def record(address, *args, **kwargs):
        seen.append(address)
        if address[0] != "127.0.0.1":
            raise AssertionError(f"the fetcher tried to connect to {address}")
        return real(address, *args, **kwargs)

    monkeypatch.setattr(urllib3.util.connection, "create_connection", record)
    return seen


REFUSED_BY_DEFAULT = [
    "http://127.0.0.1/", "http://127.1/", "http://2130706433/", "http://0x7f.0.0.1/",
    "http://017700000001/", "http://0177.0.0.1/", "http://[::ffff:127.0.0.1]/",
    "http://[::ffff:7f00:1]/", "http://0.0.0.0/", "http://0/", "http://169.254.169.254/",
    "http://10.0.0.1/", "http://172.16.5.4/", "http://192.168.1.1/", "http://100.64.0.1/",
    "http://[::1]/", "http://[::]/", "http://[fe80::1]/", "http://[fc00::1]/",
    "http://[fd00:ec2::254]/", "http://224.0.0.1/", "http://255.255.255.255/",
    "http://240.0.0.1/", "http://198.18.0.1/", "http://[::ffff:a00:1]/",
    "http://[::ffff:0:a00:1]/", "http://[64:ff9b::7f00:1]/", "http://[2002:7f00:1::]/",
    "http://[::7f00:1]/", "http://[fe80::1%25eth0]/", "https://localhost/",
    "http://localhost:8080/", "http://LocalHost/",
]


@pytest.mark.parametrize("url", REFUSED_BY_DEFAULT)
def test_default_policy_refuses_every_local_address_form(url, connects):
    with pytest.raises(RefusedURL) as info:
        Fetcher().fetch(url)
    assert info.value.reason == "refused-address"
    assert connects == []


@pytest.mark.parametrize("url", [
    "file:///etc/passwd", "ftp://example.org/x", "gopher://example.org/", "javascript:alert(1)",
    "data:text/plain,hi", "//example.org/", "http:///no-host", "http://user:pw@example.org/",
    "http://example.org:0/", "http://exa mple.org/", "http://example.org/\r\nX-Evil: 1",
])
def test_other_schemes_and_malformed_urls_are_refused(url, connects):
    with pytest.raises(RefusedURL) as info:
        Fetcher(FetchPolicy(allow_private=True)).fetch(url)
    assert info.value.reason in {"refused-url", "refused-scheme"}
    assert connects == []


def test_hostname_resolving_to_a_private_address_is_refused(monkeypatch, connects):
    asked = fake_dns(monkeypatch, {"intranet.example": ["10.0.0.5"],
                                   "mixed.example": ["93.184.216.34", "127.0.0.1"],
                                   "mapped.example": ["::ffff:169.254.169.254"]})
    for name in ("intranet.example", "mixed.example", "mapped.example"):
        with pytest.raises(RefusedURL) as info:
            Fetcher().fetch(f"http://{name}/")
        assert info.value.reason == "refused-address"
    assert asked == ["intranet.example", "mixed.example", "mapped.example"]
    assert connects == []


def test_public_addresses_pass_the_check(monkeypatch):
    fake_dns(monkeypatch, {"example.org": ["93.184.216.34", "2606:2800:220:1::248"]})
    target = check_url("https://example.org/a?b=1#frag")
    assert target.addresses == ("93.184.216.34", "2606:2800:220:1::248")
    assert (target.host_header, target.request_uri) == ("example.org", "/a?b=1")
    for public in ("1.1.1.1", "2606:4700::1111", "::ffff:1.1.1.1", "2002:101:101::"):
        assert address_refusal(ipaddress.ip_address(public)) is None


def test_allow_private_still_refuses_what_is_never_a_source(connects):
    fetcher = Fetcher(FetchPolicy(allow_private=True))
    for url in ("http://0.0.0.0/", "http://169.254.169.254/", "http://224.0.0.1/",
                "http://[::]/", "http://[ff02::1]/", "http://[::ffff:169.254.169.254]/"):
        with pytest.raises(RefusedURL):
            fetcher.fetch(url)
    assert connects == []


def test_deny_hosts_win_over_allow_private(monkeypatch, connects):
    fake_dns(monkeypatch, {"www.evil.test": ["127.0.0.1"], "nice.test": ["10.1.2.3"]})
    fetcher = Fetcher(FetchPolicy(allow_private=True, deny_hosts=(".evil.test", "10.0.0.0/8")))
    for url in ("http://www.evil.test/", "http://evil.test/", "http://nice.test/",
                "http://10.9.9.9/"):
        with pytest.raises(RefusedURL) as info:
            fetcher.fetch(url)
        assert info.value.reason == "refused-host"
    assert connects == []


@pytest.mark.parametrize("location", [
    "http://169.254.169.254/latest/meta-data/", "http://10.0.0.1/", "file:///etc/passwd",
    "http://[::ffff:127.0.0.1]:{port}/", "http://127.1:{port}/", "http://2130706433/",
    "gopher://127.0.0.1:{port}/",
])
def test_redirects_to_refused_targets_are_not_followed(location, connects):
    def handle(h):
        if h.path == "/plain":
            reply(h, 200, b"allowed")
        else:
            reply(h, 302, headers={"Location": location.format(port=h.server.server_address[1])})

    fetcher = Fetcher(FetchPolicy(allow_hosts=("127.0.0.1",)))  # trusts exactly this address
    with serve(handle) as srv:
        assert fetcher.fetch(srv.url + "/plain").body == b"allowed"
        with pytest.raises(RefusedURL) as info:
            fetcher.fetch(srv.url + "/jump")
        assert str(info.value).startswith(f"redirect from {srv.url}/jump to ")  # which hop
    assert connects == [("127.0.0.1", srv.port)] * 2  # never the redirect target


def test_dns_rebinding_resolves_once_and_connects_to_the_checked_address(monkeypatch):
    answers = iter([["93.184.216.34"], ["127.0.0.1"]])  # public when checked, then local
    asked: list[str] = []
    connected: list[tuple[str, int]] = []
    real = urllib3.util.connection.create_connection

    def resolve(host, port):
        asked.append(host)
        return next(answers)

    with serve(lambda h: reply(h, 200, b"public content")) as srv:
        def connect(address, *args, **kwargs):
            # stand in for the public server: what matters is which address was asked for
            connected.append(address)
            return real(("127.0.0.1", srv.port), *args, **kwargs)

        monkeypatch.setattr(addresses, "resolve", resolve)
        monkeypatch.setattr(urllib3.util.connection, "create_connection", connect)
        resp = Fetcher(FetchPolicy(retries=0)).fetch("http://rebind.example/")
    assert resp.body == b"public content"
    assert asked == ["rebind.example"]
    assert connected == [("93.184.216.34", 80)]
    assert srv.seen[0]["headers"]["Host"] == "rebind.example"


def _drip(h):
    h.send_response(200)
    h.send_header("Content-Length", "100000")
    h.end_headers()
    for _ in range(400):  # 4 bytes/s for at most 100 s, or until the test ends
        if h.server.stopping.is_set():
            break
        h.wfile.write(b"<a> ")
        h.wfile.flush()
        time.sleep(0.25)


@pytest.fixture
def hostile():
    """Start servers with ``hostile(handle)``; all stop when the test ends."""
    with ExitStack() as stack:
        yield lambda handle: stack.enter_context(serve(handle))


def test_slow_drip_is_stopped_by_the_deadline(hostile):
    srv = hostile(_drip)
    policy = FetchPolicy(allow_private=True, timeouts=(2, 5), deadline=1.5, retries=0)
    started = time.monotonic()
    with pytest.raises(DeadlineExceeded):
        Fetcher(policy).fetch(srv.url)
    assert time.monotonic() - started < 1.5 + 1.0


def test_header_drip_and_silence_are_stopped_by_the_deadline(hostile):
    def header_drip(h):
        h.wfile.write(b"HTTP/1.0 200 OK\r\n")
        for _ in range(1000):
            if h.server.stopping.is_set():
                break
            h.wfile.write(b"X")
            h.wfile.flush()
            time.sleep(0.1)

    def silence(h):
        h.server.stopping.wait(60)

    policy = FetchPolicy(allow_private=True, timeouts=(2, 30), deadline=1.0, retries=0)
    for handle in (header_drip, silence):
        srv = hostile(handle)
        started = time.monotonic()
        with pytest.raises(DeadlineExceeded):
            Fetcher(policy).fetch(srv.url)
        assert time.monotonic() - started < 1.0 + 1.0  # not the 30 s read timeout


def _endless(h):
    h.send_response(200)
    h.end_headers()  # no Content-Length: the body ends when the server closes
    block = bytes(65536)
    for _ in range(16384):  # at most 1 GiB, or until the test ends
        if h.server.stopping.is_set():
            break
        h.wfile.write(block)


def test_endless_body_is_stopped_at_max_bytes(hostile):
    srv = hostile(_endless)
    with pytest.raises(ResponseTooLarge) as info:
        Fetcher(FetchPolicy(allow_private=True, max_bytes=MiB, retries=0)).fetch(srv.url)
    assert info.value.reason == "too-large"


def test_declared_oversize_is_refused_before_reading(hostile):
    def huge(h):
        h.send_response(200)
        h.send_header("Content-Length", str(10**12))
        h.end_headers()
        h.server.stopping.wait(60)  # never sends the body

    srv = hostile(huge)
    with pytest.raises(ResponseTooLarge):
        Fetcher(FetchPolicy(allow_private=True, max_bytes=MiB, deadline=30)).fetch(srv.url)


def _gzip_bomb(gib: int = 1) -> bytes:
    """About 1 MiB of gzip that expands to ``gib`` GiB of zeros (identical flushed blocks)."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)
    block = bytes(MiB)
    head = packer.compress(block) + packer.flush(zlib.Z_FULL_FLUSH)
    repeat = packer.compress(block) + packer.flush(zlib.Z_FULL_FLUSH)
    return head + repeat * (1024 * gib - 1) + packer.flush()


@pytest.fixture(scope="module")
def bomb() -> bytes:
    return _gzip_bomb()


def test_gzip_bomb_stops_at_the_decompressed_cap_with_bounded_memory(hostile, bomb):
    assert len(bomb) < 2 * MiB
    srv = hostile(lambda h: reply(h, 200, bomb, {"Content-Encoding": "gzip"}))
    cap = 32 * MiB
    fetcher = Fetcher(FetchPolicy(allow_private=True, max_bytes=4 * MiB, max_decompressed=cap,
                                  retries=0))
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    gc.collect()
    tracemalloc.start()
    try:
        with pytest.raises(ResponseTooLarge) as streamed:
            with fetcher.open(srv.url) as stream:
                for _chunk in stream:  # read and dropped, as a parser would
                    pass
        streaming_peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.reset_peak()
        with pytest.raises(ResponseTooLarge) as fetched:
            fetcher.fetch(srv.url)
        fetch_peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    rss_growth = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - rss_before
    assert streamed.value.reason == fetched.value.reason == "too-large-decompressed"
    assert streaming_peak < cap // 8  # chunks were never held together
    assert fetch_peak < cap * 2  # fetch() holds at most the capped body
    assert rss_growth < 256 * MiB  # far from the 1 GiB the bomb expands to


def test_a_fetched_body_is_held_once(hostile):
    """fetch() under a cap of C may hold C bytes, not 2 C (no copy of the finished body)."""
    body = b"x" * (16 * MiB)
    srv = hostile(lambda h: reply(h, 200, body))
    fetcher = Fetcher(FetchPolicy(allow_private=True, max_bytes=32 * MiB))
    gc.collect()
    tracemalloc.start()
    try:
        fetched = fetcher.fetch(srv.url)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert fetched.body == body
    assert peak < len(body) * 5 // 4


def test_gzip_stream_that_never_yields_output_is_stopped_by_the_deadline(hostile):
    def empty_blocks(h):
        h.send_response(200)
        h.send_header("Content-Encoding", "gzip")
        h.end_headers()
        h.wfile.write(zlib.compressobj(wbits=31).flush(zlib.Z_SYNC_FLUSH))  # header only
        nothing = b"\x00\x00\x00\xff\xff" * 10000  # empty stored blocks, never final
        for _ in range(100000):
            if h.server.stopping.is_set():
                break
            h.wfile.write(nothing)
            time.sleep(0.001)

    srv = hostile(empty_blocks)
    policy = FetchPolicy(allow_private=True, deadline=1.0, retries=0, max_bytes=1024 * MiB)
    started = time.monotonic()
    with pytest.raises(DeadlineExceeded):
        Fetcher(policy).fetch(srv.url)
    assert time.monotonic() - started < 1.0 + 1.0


def test_unknown_content_encoding_is_refused(hostile):
    srv = hostile(lambda h: reply(h, 200, b"xx", {"Content-Encoding": "br"}))
    with pytest.raises(FetchError) as info:
        Fetcher(FetchPolicy(allow_private=True)).fetch(srv.url)
    assert info.value.reason == "unsupported-encoding"


def test_a_hostile_source_does_not_block_other_sources(hostile, monkeypatch):
    fake_dns(monkeypatch, {"slow.test": ["127.0.0.1"], "good.test": ["127.0.0.1"]})
    slow = hostile(_drip)
    good = hostile(lambda h: reply(h, 200, b"fine"))
    fetcher = Fetcher(FetchPolicy(allow_private=True, per_host=1, deadline=3, retries=0))
    failures: list[FetchError] = []

    def harvest_slow():
        try:
            fetcher.fetch(f"http://slow.test:{slow.port}/")
        except FetchError as exc:
            failures.append(exc)

    threads = [threading.Thread(target=harvest_slow) for _ in range(2)]
    for t in threads:
        t.start()
    for _ in range(500):  # until the first drip holds slow.test's only slot (at most 5 s)
        if slow.seen:
            break
        time.sleep(0.01)
    assert fetcher.fetch(f"http://good.test:{good.port}/").body == b"fine"
    assert all(t.is_alive() for t in threads)  # the good source did not wait for the slow one
    for t in threads:
        t.join(10)
    assert [type(exc) for exc in failures] == [DeadlineExceeded, DeadlineExceeded]


def test_validators_with_control_characters_are_not_sent_back(hostile):
    srv = hostile(lambda h: reply(h, 200, b"ok"))
    resp = Fetcher(FetchPolicy(allow_private=True)).fetch(
        srv.url, etag='"a"\r\nX-Injected: 1', last_modified="Tue\x00")
    assert resp.body == b"ok"
    assert "If-None-Match" not in srv.seen[0]["headers"]
    assert "X-Injected" not in srv.seen[0]["headers"]
    assert "If-Modified-Since" not in srv.seen[0]["headers"]
