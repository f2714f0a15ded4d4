"""A hostile source server for tests/e2e/test_hostile_sources.py, run as its own process.

    python tests/e2e/hostile_server.py HOST:PORT,SLOW_HOST:PORT CANARY_PORT VICTIM LOG

Each case in `CASES` is a source of its own under ``http://HOST:PORT/{case}/`` (`entries`;
the slow case on SLOW_HOST, as the harvester's per-host connection limit would otherwise let
it hold up its neighbours' fetches). Each entry URL describes a node (``void:uriSpace`` =
that prefix, an ``ldes:EventStream`` feed at ``{case}/feed``) as a real node would; the
``foreign`` source also lists all the others as peers, so one ``atlas harvest add
--follow-peers`` registers them all. The feed (or, for ``private-name``, the dump it points
to) is where the attack is. ``VICTIM`` is an entity IRI of the good node, which the
``foreign`` case makes statements about.

A canary listens on 127.0.0.1:CANARY_PORT, and every ``/canary/...`` path on HOST is one
too: a request there means the harvester went where it must never go (a refused redirect
target, a remote JSON-LD ``@context``). Every request is appended to LOG as a JSON line
(``{"server", "path", "sent"}``; ``sent`` = body bytes written before the client stopped
reading), so the test sees what the harvester asked for and what it cost the server.

Only the standard library: it runs without the project on its path. Handler loops that
send forever stop when the client goes away, or after `MAX_SECONDS`.
"""

from __future__ import annotations

import functools
import gzip
import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

CASES = ("foreign", "loop", "endless", "oversized", "bomb", "drip", "header-drip",
         "redirect-loopback", "redirect-metadata", "private-name", "context", "xml",
         "jsonld-flood", "turtle-nest")
SLOW_CASES = ("drip", "header-drip")
MAX_SECONDS = 60  # no handler outlives a test run by much
RDF = "http://www.w3.org/1999/02/22-rdf-syntax-ns#type"
TREE, LDES = "https://w3id.org/tree#", "https://w3id.org/ldes#"
EA, SCHEMA = "https://w3id.org/engagement-atlas/ns#", "https://schema.org/"
VERSION_OF, STAMP = "http://purl.org/dc/terms/isVersionOf", "http://www.w3.org/ns/prov#generatedAtTime"
# 1,024 gzip members of 1 MiB of zeros each (RFC 1952 §2.2 allows a series of members):
# 1 MiB on the wire, 1 GiB once inflated.
@functools.cache
def bomb() -> bytes:
    return gzip.compress(b"\0" * (1 << 20), 9) * 1024


# JSON-LD within the test's byte caps (12 MiB decoded, 12 KiB gzipped) that is one @list of
# six million numbers: pyoxigraph's JSON-LD parser buffers about 500 bytes per JSON value
# before its first triple (measured: 24 MiB of it took 5.7 GB), whatever the triple cap.
@functools.cache
def flood() -> bytes:
    return gzip.compress(b'{"@id": "s", "https://schema.org/about": {"@list": ['
                         + b"1," * (6 << 20) + b"1]}}", 9)


# Turtle with a million blank nodes nested in each other (8 MiB decoded, 11 KiB gzipped):
# pyoxigraph keeps ~520 bytes per open bracket before its first triple.
@functools.cache
def nest() -> bytes:
    n = 1 << 20
    return gzip.compress(b"<s> <p> " + b"[ <p> " * n + b"1" + b" ]" * n + b" .\n", 9)


# XML 1.0 §4.2 internal entities nested ten deep: 10^9 "lol"s if a parser expanded them.
LAUGHS = ('<?xml version="1.0"?>\n<!DOCTYPE rdf:RDF [\n  <!ENTITY lol0 "lol">\n'
          + "".join(f'  <!ENTITY lol{n} "{f"&lol{n - 1};" * 10}">\n' for n in range(1, 10))
          + ']>\n<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#" '
            'xmlns:s="https://schema.org/">\n  <rdf:Description rdf:about="{base}actors/x">'
            "<s:name>&lol9;</s:name></rdf:Description>\n</rdf:RDF>\n")


def actor(base: str, key: str, when: str, name: str, feed: str) -> str:
    """An LDES member (a version of ``{base}actors/{key}``) that passes the actor shape."""
    return version(f"{base}actors/{key}", 1, when, name, feed)


def version(entity: str, n: int, when: str, name: str, feed: str) -> str:
    """Version ``n`` of ``entity`` (checks.split_versions: ``{entity}/versions/{n}``)."""
    v, e = f"{entity}/versions/{n}", entity
    return (f"<{feed}> <{TREE}member> <{v}> .\n<{v}> <{VERSION_OF}> <{e}> .\n"
            f'<{v}> <{STAMP}> "{when}"^^<http://www.w3.org/2001/XMLSchema#dateTime> .\n'
            f"<{v}> <{RDF}> <{EA}Actor> .\n<{v}> <{SCHEMA}name> \"{name}\"@de .\n"
            f"<{v}> <{EA}actorType> <https://w3id.org/engagement-atlas/ns/actor-type/verein> .\n")


def entries(listen: str) -> dict[str, str]:
    """Case -> entry URL, for the LISTEN argument ("HOST:PORT,SLOW_HOST:PORT")."""
    main, slow = listen.split(",")
    return {c: f"http://{slow if c in SLOW_CASES else main}/{c}/" for c in CASES}


def link(page: str, target: str, name: str) -> str:
    r = f"{page}#{name}"
    return (f"<{page}> <{TREE}relation> <{r}> .\n<{r}> <{RDF}> <{TREE}Relation> .\n"
            f"<{r}> <{TREE}node> <{target}> .\n")


class Hostile(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "hostile/1"
    canary_port: int
    victim: str
    entries: dict[str, str]
    log_lock = threading.Lock()
    log_path: str

    def log_message(self, *args) -> None:  # the LOG file says it all
        pass

    def record(self, server: str, sent: int = 0) -> None:
        line = json.dumps({"server": server, "path": self.path, "sent": sent,
                           "time": time.time()})
        with self.log_lock, open(self.log_path, "a", encoding="utf-8") as log:
            log.write(line + "\n")

    def answer(self, status: int, body: bytes, headers: dict[str, str]) -> None:
        self.send_response(status)
        for key, value in {"Content-Length": str(len(body)), **headers}.items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(body)

    def stream(self, headers: dict[str, str], chunk: bytes, pause: float = 0.0) -> int:
        """Send ``chunk`` again and again until the client goes away; bytes sent."""
        self.send_response(200)
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Connection", "close")  # close-delimited body (RFC 9112 §6.3)
        self.end_headers()
        sent, end = 0, time.monotonic() + MAX_SECONDS
        try:
            while time.monotonic() < end:
                self.wfile.write(chunk)
                self.wfile.flush()
                sent += len(chunk)
                if pause:
                    time.sleep(pause)
        except OSError:  # the harvester stopped reading: what this case is about
            pass
        self.close_connection = True
        return sent

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        host = self.headers.get("Host", "")
        if self.server.server_address[0] == "127.0.0.1" or self.path.startswith("/canary/"):
            self.record("canary")
            self.answer(200, b'{"@context": {"name": "https://schema.org/name"}}',
                        {"Content-Type": "application/ld+json"})
            return
        case, _, rest = self.path.lstrip("/").partition("/")
        base = f"http://{host}/{case}/"
        if case not in CASES:
            self.record("hostile")
            self.answer(404, b"", {})
            return
        if rest == "":
            self.record("hostile")
            self.answer(200, self.description(case, base).encode(),
                        {"Content-Type": "application/n-triples"})
            return
        sent = getattr(self, "case_" + case.replace("-", "_"))(base, rest)
        self.record("hostile", sent or 0)

    def description(self, case: str, base: str) -> str:
        """The entry URL's node description (what exports/node.py says for a real node)."""
        text = (f'<{base}> <http://rdfs.org/ns/void#uriSpace> "{base}" .\n'
                f'<{base}> <{SCHEMA}name> "Hostile source {case}"@en .\n'
                f"<{base}> <{SCHEMA}dataset> <{base}feed> .\n"
                f"<{base}feed> <{RDF}> <{LDES}EventStream> .\n")
        if case == "foreign":  # peers (dct:relation, as exports/node.py states them)
            for n, url in enumerate(u for c, u in self.entries.items() if c != case):
                text += (f"<{base}> <http://purl.org/dc/terms/relation> <{base}#peer{n}> .\n"
                         f"<{base}#peer{n}> <{SCHEMA}url> <{url}> .\n")
        if case == "private-name":  # a dump "elsewhere": a name that resolves to loopback
            text += (f"<{base}> <http://rdfs.org/ns/void#dataDump> "
                     f"<http://localhost:{self.canary_port}/dumps/all.nt.gz> .\n")
        return text

    def nt(self, text: str) -> int:
        body = text.encode()
        self.answer(200, body, {"Content-Type": "application/n-triples",
                                "Cache-Control": "no-cache"})
        return len(body)

    # ----------------------------------------------------------------------- the cases

    def case_foreign(self, base: str, rest: str) -> int:
        """Its own actor, plus statements about the victim's entity: plain triples, and a
        whole version member of it (``{victim}/versions/99``) listed in this feed."""
        feed, v = f"{base}feed", self.victim
        return self.nt(actor(base, "own", "2025-03-01T10:00:00Z", "Eigener Verein", feed)
                       + f'<{v}> <{SCHEMA}name> "Gekapert"@de .\n'
                       + f"<{v}> <{SCHEMA}url> <http://evil.example/> .\n"
                       + version(v, 99, "2025-03-02T10:00:00Z", "Übernommen", feed))

    def case_loop(self, base: str, rest: str) -> int:
        """feed -> a -> b -> a (and b -> feed, b -> b): a cycle of pages."""
        feed, a, b = f"{base}feed", f"{base}page/a", f"{base}page/b"
        pages = {"feed": link(feed, a, "r1"),
                 "page/a": link(a, b, "r2") + actor(base, "a", "2025-03-01T10:00:00Z", "A",
                                                    feed),
                 "page/b": (link(b, a, "r3") + link(b, feed, "r4") + link(b, b, "r5")
                            + actor(base, "b", "2025-03-01T11:00:00Z", "B", feed))}
        if rest not in pages:
            self.answer(404, b"", {})
            return 0
        return self.nt(pages[rest])

    def case_endless(self, base: str, rest: str) -> int:
        """A body without length that never ends, as fast as the socket takes it."""
        return self.stream({"Content-Type": "application/n-triples"},
                           b"# endless\n" * 6554)

    def case_oversized(self, base: str, rest: str) -> int:
        """Announces 10 GiB and starts sending them."""
        return self.stream({"Content-Type": "application/n-triples",
                            "Content-Length": str(10 << 30)}, b"#" * 65536)

    def case_bomb(self, base: str, rest: str) -> int:
        """1 MiB of gzip (Content-Encoding, RFC 9110 §8.4) that inflates to 1 GiB."""
        self.answer(200, bomb(), {"Content-Type": "application/n-triples",
                                  "Content-Encoding": "gzip"})
        return len(bomb())

    def case_drip(self, base: str, rest: str) -> int:
        """A valid start, then one byte every 0.1 s: every read succeeds, none finishes."""
        return self.stream({"Content-Type": "application/n-triples"}, b"#", pause=0.1)

    def case_header_drip(self, base: str, rest: str) -> int:
        """The status line, then header bytes one per 0.1 s: the answer never starts."""
        self.wfile.write(b"HTTP/1.1 200 OK\r\nX-Drip: ")
        sent, end = 0, time.monotonic() + MAX_SECONDS
        try:
            while time.monotonic() < end:
                self.wfile.write(b"x")
                self.wfile.flush()
                sent += 1
                time.sleep(0.1)
        except OSError:
            pass
        self.close_connection = True
        return sent

    def case_redirect_loopback(self, base: str, rest: str) -> int:
        self.answer(302, b"", {"Location": f"http://127.0.0.1:{self.canary_port}/feed"})
        return 0

    def case_redirect_metadata(self, base: str, rest: str) -> int:
        self.answer(302, b"", {"Location": "http://169.254.169.254/latest/meta-data/"})
        return 0

    def case_private_name(self, base: str, rest: str) -> int:
        return self.nt(actor(base, "p", "2025-03-01T10:00:00Z", "P", f"{base}feed"))

    def case_context(self, base: str, rest: str) -> int:
        """JSON-LD whose @context (and Link header context) lives on a canary."""
        host = self.headers.get("Host", "")
        document = {"@context": f"http://{host}/canary/context.jsonld",
                    "@id": f"{base}actors/c", "@type": f"{EA}Actor", "name": "C"}
        body = json.dumps(document).encode()
        self.answer(200, body, {
            "Content-Type": "application/ld+json",
            "Link": f'<http://{host}/canary/link.jsonld>; '
                    'rel="http://www.w3.org/ns/json-ld#context"'})
        return len(body)

    def case_jsonld_flood(self, base: str, rest: str) -> int:
        self.answer(200, flood(), {"Content-Type": "application/ld+json",
                                   "Content-Encoding": "gzip"})
        return len(flood())

    def case_turtle_nest(self, base: str, rest: str) -> int:
        self.answer(200, nest(), {"Content-Type": "text/turtle", "Content-Encoding": "gzip"})
        return len(nest())

    def case_xml(self, base: str, rest: str) -> int:
        body = LAUGHS.replace("{base}", base).encode()
        self.answer(200, body, {"Content-Type": "application/rdf+xml"})
        return len(body)


class Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address) -> None:
        """A harvester hanging up mid-request is the point of most cases: no traceback."""
        if not isinstance(sys.exc_info()[1], OSError):
            super().handle_error(request, client_address)


def main(listen: str, canary_port: str, victim: str, log_path: str) -> None:
    Hostile.canary_port, Hostile.victim, Hostile.log_path = int(canary_port), victim, log_path
    Hostile.entries = entries(listen)
    bomb(), flood(), nest()  # made once, before the first request
    addresses = [(h, int(p)) for h, _, p in (a.rpartition(":") for a in listen.split(","))]
    servers = [Server(a, Hostile) for a in [*addresses, ("127.0.0.1", int(canary_port))]]
    for server in servers:
        threading.Thread(target=server.serve_forever, daemon=True).start()
    print("ready", flush=True)
    threading.Event().wait()


if __name__ == "__main__":
    main(*sys.argv[1:5])
