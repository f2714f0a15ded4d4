"""Safe HTTP fetching for untrusted sources: the only way harvesters touch the network.

Why: every source is run by someone else, and some will be broken or hostile. A fetch may
cost at most its policy's limits (time, bytes, decompressed bytes, redirects, retries,
connections per host) and never reaches addresses the policy refuses (SSRF).

How (see /work/shared/design/PITFALLS.md, "HTTP clients"):
- Each hop's host is resolved ONCE and every answer checked (``addresses.check_url``); the
  socket goes to a checked address while Host, TLS SNI and certificate checks use the real
  hostname. One fresh connection per request: no pooled socket outlives its check.
- ``deadline`` is wall-clock time for the whole fetch (slot wait, connects, redirects,
  retries, body). Read timeouts are per read, so a 4-byte/s drip never trips them: the body
  loop checks the clock, and a watchdog timer shuts the socket at the deadline to end reads
  blocked in the header phase or inside the decoder.
- Bodies are read with ``read1(65536, decode_content=True)``; decoded bytes count against
  ``max_decompressed`` (a gzip bomb stops at the cap), wire bytes against ``max_bytes``.
  Only gzip and deflate are accepted (RFC 9110 §8.4): what we cannot count, we refuse.
- urllib3 is used without its pool, retries, redirects or environment proxies (a proxy
  would connect somewhere the policy never saw).
"""

from __future__ import annotations

import email.utils
import io
import random
import socket
import ssl
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from http.client import HTTPException
from importlib import metadata
from typing import Any, TypeVar
from urllib.parse import urljoin

import certifi
import urllib3
from urllib3.connection import HTTPConnection
from urllib3.exceptions import DecodeError, NewConnectionError
from urllib3.util.ssl_match_hostname import CertificateError

from .addresses import HostList, Target, check_url
from .errors import DeadlineExceeded, FetchError, RefusedURL, ResponseTooLarge

__all__ = ["FetchPolicy", "Fetcher", "Response", "Stream", "HTTPStatusError", "user_agent"]

CHUNK = 65536
REDIRECTS = frozenset({301, 302, 303, 307, 308})
RETRY_STATUSES = frozenset({429, 502, 503, 504})
_ENCODINGS = frozenset({"", "identity", "gzip", "x-gzip", "deflate"})
_RETRY_REASONS = frozenset({"dns-failed", "timeout", "connection-failed"})
T = TypeVar("T")


def user_agent(contact_url: str = "https://w3id.org/engagement-atlas/") -> str:
    """An honest User-Agent: who we are, which version, and where to reach the operators."""
    try:
        version = metadata.version("engagement-atlas")
    except metadata.PackageNotFoundError:
        version = "dev"
    return f"EngagementAtlasHarvester/{version} (+{contact_url})"


@dataclass(frozen=True)
class FetchPolicy:
    """Limits and address rules for one Fetcher. Sizes in bytes, times in seconds."""

    allow_private: bool = False          # loopback/private/link-local too (tests, intranets)
    timeouts: tuple[float, float] = (5.0, 15.0)  # (connect, read) per socket operation
    deadline: float = 60.0               # whole fetch()/open(): waits, hops, retries, body
    max_bytes: int = 64 * 2**20          # on the wire (after de-chunking, before decoding)
    max_decompressed: int = 256 * 2**20  # after Content-Encoding is undone
    max_redirects: int = 5
    retries: int = 3                     # more attempts after 429/502/503/504/conn errors
    backoff: float = 0.5                 # first delay; doubles per retry, with jitter
    max_retry_wait: float = 30.0         # cap for one wait; a longer Retry-After ends it
    per_host: int = 2                    # concurrent requests per host, across threads
    user_agent: str = field(default_factory=user_agent)
    allow_hosts: tuple[str, ...] = ()    # may resolve to non-public addresses (HostList)
    deny_hosts: tuple[str, ...] = ()     # always refused (HostList syntax)
    ca_certs: str | None = None          # CA bundle file; None = certifi's

    def __post_init__(self) -> None:
        sizes = (*self.timeouts, self.deadline, self.max_bytes, self.max_decompressed,
                 self.per_host)
        if len(self.timeouts) != 2 or min(sizes) <= 0:
            raise ValueError("timeouts, deadline, caps and per_host must be positive")
        if min(self.max_redirects, self.retries, self.backoff, self.max_retry_wait) < 0:
            raise ValueError("max_redirects, retries, backoff, max_retry_wait must be >= 0")


@dataclass(frozen=True)
class Response:
    """A fully read response. ``not_modified`` is True for a 304 (``body`` is then empty and
    ``etag``/``last_modified`` fall back to the validators sent). ``elapsed`` in seconds."""

    url: str
    status: int
    headers: urllib3.HTTPHeaderDict
    body: bytes
    etag: str | None
    last_modified: str | None
    not_modified: bool
    elapsed: float


class HTTPStatusError(FetchError):
    """The final answer was an error status (after the allowed retries for 429/5xx)."""

    def __init__(self, url: str, status: int, retry_after: float | None = None) -> None:
        super().__init__(f"HTTP {status} from {url}", reason=f"http-{status}")
        self.url, self.status, self.retry_after = url, status, retry_after


def _worth_retrying(exc: FetchError) -> bool:
    return exc.reason in _RETRY_REASONS or (
        isinstance(exc, HTTPStatusError) and exc.status in RETRY_STATUSES)


class _Deadline:
    def __init__(self, seconds: float) -> None:
        self.start, self.seconds = time.monotonic(), seconds
        self.end = self.start + seconds

    def exceeded(self, doing: str) -> DeadlineExceeded:
        """The error, naming the limit (an operator reads it in the run report)."""
        return DeadlineExceeded(f"deadline of {self.seconds:g} s exceeded {doing}")

    def remaining(self) -> float:
        return self.end - time.monotonic()

    def check(self, what: str) -> float:
        left = self.remaining()
        if left <= 0:
            raise self.exceeded(f"fetching {what}")
        return left


def _parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds from a Retry-After header (delay-seconds or HTTP-date, RFC 9110 §10.2.3)."""
    value = (value or "").strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def _cut(sock: socket.socket, fired: threading.Event) -> None:
    """Watchdog action at the deadline: wake any read blocked on this socket."""
    fired.set()
    try:  # the plain socket's shutdown, also for TLS: it wakes the reader, nothing else
        socket.socket.shutdown(sock, socket.SHUT_RDWR)
    except OSError:
        pass


class Stream(Iterator[bytes]):
    """One response, as ``Fetcher.open`` yields it: an iterator of decoded body chunks
    within the caps and the deadline, plus ``url`` (final), ``status``, ``headers``,
    ``etag``, ``last_modified`` and ``not_modified``. Iterating raises only FetchError
    subclasses. It owns its connection, host slot and deadline watchdog until closed.
    """

    def __init__(self, url: str, slot: threading.BoundedSemaphore, deadline: _Deadline,
                 policy: FetchPolicy) -> None:
        self.url, self._slot, self._deadline, self._policy = url, slot, deadline, policy
        self._fired = threading.Event()
        self._timer: threading.Timer | None = None
        self._conn: HTTPConnection | None = None
        self._resp: urllib3.HTTPResponse | None = None
        self._chunks: Iterator[bytes] = iter(())
        self._closed = False
        self.status, self.headers = 0, urllib3.HTTPHeaderDict()  # set once the answer is in
        self.etag: str | None = None
        self.last_modified: str | None = None
        self.not_modified = False

    def _start(self, target: Target, headers: dict[str, str], etag: str | None,
               last_modified: str | None) -> urllib3.HTTPResponse:
        policy, deadline = self._policy, self._deadline
        with self._translated():
            self._conn = conn = target.connect(
                lambda: min(policy.timeouts[0], deadline.check(self.url)),
                policy.ca_certs or certifi.where())
            self._timer = threading.Timer(deadline.check(self.url), _cut, (conn.sock, self._fired))
            self._timer.daemon = True
            self._timer.start()
            conn.timeout = min(policy.timeouts[1], deadline.check(self.url))
            conn.request("GET", target.request_uri,
                         headers={**headers, "Host": target.host_header},
                         preload_content=False, decode_content=True)
            self._resp = resp = conn.getresponse()
        self.status, self.headers = resp.status, resp.headers
        self.not_modified = resp.status == 304  # validators sent stay valid (RFC 9110 §15.4.5)
        self.etag = resp.headers.get("etag") or (etag if self.not_modified else None)
        self.last_modified = resp.headers.get("last-modified") or (
            last_modified if self.not_modified else None)
        self._chunks = iter(()) if self.not_modified else self._decoded(resp)
        return resp

    def _decoded(self, resp: urllib3.HTTPResponse) -> Iterator[bytes]:
        policy, decoded = self._policy, 0
        while True:
            self._deadline.check(self.url)
            chunk = resp.read1(CHUNK, decode_content=True)
            if self._fired.is_set():  # the watchdog's shutdown can look like a clean end
                raise self._deadline.exceeded(f"reading {self.url}")
            if resp.tell() > policy.max_bytes:
                raise ResponseTooLarge(f"{self.url}: body over {policy.max_bytes} bytes")
            decoded += len(chunk)
            if decoded > policy.max_decompressed:
                raise ResponseTooLarge(f"{self.url}: decoded body over "
                                       f"{policy.max_decompressed} bytes",
                                       reason="too-large-decompressed")
            if not chunk:
                break
            yield chunk

    def __next__(self) -> bytes:
        with self._translated():
            chunk = next(self._chunks, None)
        if chunk is None:
            raise StopIteration
        return chunk

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
        if self._resp is not None:
            self._resp.close()
        if self._conn is not None:
            self._conn.close()
        self._slot.release()

    @contextmanager
    def _translated(self) -> Iterator[None]:
        """Turn urllib3/socket/TLS errors into FetchError subclasses with a reason."""
        try:
            yield
        except FetchError:
            raise
        except (ssl.SSLError, urllib3.exceptions.SSLError, CertificateError) as exc:
            raise FetchError(f"TLS failure for {self.url}: {exc}", reason="tls-error") from exc
        except DecodeError as exc:
            raise FetchError(f"undecodable body from {self.url}", reason="decode-error") from exc
        except (OSError, HTTPException, urllib3.exceptions.HTTPError) as exc:
            if self._fired.is_set() or self._deadline.remaining() <= 0:
                raise self._deadline.exceeded(f"fetching {self.url}") from exc
            # urllib3 files a refused connection (NewConnectionError) under its timeouts
            timeout = isinstance(exc, (TimeoutError, urllib3.exceptions.TimeoutError)) and (
                not isinstance(exc, NewConnectionError))
            reason = "timeout" if timeout else "connection-failed"
            raise FetchError(f"{reason} for {self.url}: {exc}", reason=reason) from exc


class _HostSlots:
    """A BoundedSemaphore per host, shared by threads; an entry goes away when unused.

    The lock guards only the dict lookup, never a wait on a host: a slow host holds up
    only the fetches waiting for that same host.
    """

    def __init__(self, per_host: int) -> None:
        self.per_host = per_host
        self._lock = threading.Lock()
        self._slots: weakref.WeakValueDictionary[str, threading.BoundedSemaphore] = (
            weakref.WeakValueDictionary())

    def take(self, host: str, deadline: _Deadline) -> threading.BoundedSemaphore:
        key = host.rstrip(".")
        with self._lock:
            slot = self._slots.get(key)
            if slot is None:
                slot = self._slots[key] = threading.BoundedSemaphore(self.per_host)
        if not slot.acquire(timeout=deadline.check(host)):
            raise deadline.exceeded(f"waiting for a free connection slot for {host}")
        return slot


class Fetcher:
    """Fetches URLs under one FetchPolicy; thread-safe, meant to be shared by all threads."""

    def __init__(self, policy: FetchPolicy | None = None) -> None:
        self.policy = policy or FetchPolicy()
        self._allow = HostList(self.policy.allow_hosts)
        self._deny = HostList(self.policy.deny_hosts)
        self._slots = _HostSlots(self.policy.per_host)

    def derive(self, **changes: Any) -> Fetcher:
        """A Fetcher with other limits (e.g. a longer deadline for dumps), same host slots."""
        derived = Fetcher(replace(self.policy, **changes))
        if derived.policy.per_host != self.policy.per_host:
            raise ValueError("per_host is shared by derived fetchers and cannot change")
        derived._slots = self._slots
        return derived

    def fetch(self, url: str, *, accept: str | None = None, etag: str | None = None,
              last_modified: str | None = None) -> Response:
        """GET ``url`` and read the whole body (conditional if validators are given)."""
        deadline = _Deadline(self.policy.deadline)

        def attempt() -> Response:
            stream = self._follow(url, deadline, accept, etag, last_modified)
            try:
                body = io.BytesIO()  # getvalue() hands over its buffer: no second copy
                for chunk in stream:  # a body broken off here may still be retried
                    body.write(chunk)
            finally:
                stream.close()
            return Response(stream.url, stream.status, stream.headers, body.getvalue(),
                            stream.etag, stream.last_modified, stream.not_modified,
                            time.monotonic() - deadline.start)

        return self._retrying(attempt, deadline)

    @contextmanager
    def open(self, url: str, *, accept: str | None = None, etag: str | None = None,
             last_modified: str | None = None) -> Iterator[Stream]:
        """GET ``url`` and yield a Stream of decoded chunks, for bodies too big to hold.

        Same caps and deadline as fetch(); the deadline keeps running while the caller
        works. Retries happen only before the body starts (the caller may have used part
        of it). The host slot is held until the block ends.
        """
        deadline = _Deadline(self.policy.deadline)
        stream = self._retrying(
            lambda: self._follow(url, deadline, accept, etag, last_modified), deadline)
        try:
            yield stream
        finally:
            stream.close()

    def _retrying(self, attempt: Callable[[], T], deadline: _Deadline) -> T:
        """Run ``attempt`` with exponential backoff and jitter, honouring Retry-After."""
        for n in range(self.policy.retries + 1):
            try:
                return attempt()
            except FetchError as exc:
                wait = getattr(exc, "retry_after", None)
                if n == self.policy.retries or not _worth_retrying(exc) or (
                        wait is not None and wait > self.policy.max_retry_wait):
                    raise  # for a long Retry-After, HTTPStatusError.retry_after says when
                delay = min(self.policy.backoff * 2**n, self.policy.max_retry_wait)
                delay = max(delay / 2 + random.uniform(0, delay / 2), wait or 0.0)
                if delay >= deadline.remaining():
                    raise
                time.sleep(delay)
        raise AssertionError("unreachable")

    def _follow(self, url: str, deadline: _Deadline, accept: str | None, etag: str | None,
                last_modified: str | None) -> Stream:
        """Follow redirects, each hop checked anew, to a 2xx or 304 response left open."""
        headers = {"User-Agent": self.policy.user_agent, "Accept": accept or "*/*",
                   "Accept-Encoding": "gzip, deflate"}
        # Validators came from the source itself: send them only if they are clean header text.
        if etag and etag.isascii() and etag.isprintable():
            headers["If-None-Match"] = etag  # RFC 9110 §13.1.2
        if last_modified and last_modified.isascii() and last_modified.isprintable():
            headers["If-Modified-Since"] = last_modified  # RFC 9110 §13.1.3
        first = url
        for hop in range(self.policy.max_redirects + 1):
            try:
                target = check_url(url, allow_private=self.policy.allow_private,
                                   allow=self._allow, deny=self._deny)
            except RefusedURL as exc:  # say which URL (and which redirect) was refused
                where = f"redirect from {first} to {url}" if hop else url
                if hop == 0 and url in str(exc):
                    raise
                raise RefusedURL(f"{where} refused: {exc}", reason=exc.reason) from exc
            stream = Stream(url, self._slots.take(target.host, deadline), deadline, self.policy)
            try:
                resp = stream._start(target, headers, etag, last_modified)
                status, encoding = resp.status, resp.headers.get("content-encoding", "")
                length = resp.headers.get("content-length", "").strip()
                if status in REDIRECTS and resp.headers.get("location"):
                    url = urljoin(url, resp.headers["location"])
                elif status in RETRY_STATUSES:
                    wait = _parse_retry_after(resp.headers.get("retry-after"))
                    raise HTTPStatusError(url, status, wait)
                elif status < 200 or (status >= 300 and status != 304):
                    raise HTTPStatusError(url, status)
                elif encoding.strip().lower() not in _ENCODINGS:
                    raise FetchError(f"{url}: Content-Encoding {encoding!r}",
                                     reason="unsupported-encoding")
                elif length.isdigit() and int(length) > self.policy.max_bytes:
                    raise ResponseTooLarge(f"{url}: Content-Length {length}")
                else:
                    return stream
            except BaseException:
                stream.close()
                raise
            stream.close()
        raise FetchError(f"more than {self.policy.max_redirects} redirects from {first}",
                         reason="too-many-redirects")
