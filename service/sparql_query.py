"""One SPARQL query under guard: its own process, a deadline, memory and row limits.

Neither rdflib nor pyoxigraph can stop a running query, and an ORDER BY over a
cross join grew to 7 GB in 15 s here (PITFALLS). So each query runs in a child
process that the web worker kills (SIGKILL) when the deadline passes; the kernel
then frees all its memory. The child comes from multiprocessing's "forkserver":
a small single-threaded server forks it, which stays safe when the web server
runs threads, and has this module preloaded, so a query costs a fork, not an
interpreter start. The child

- limits its address space (RLIMIT_AS) and CPU time (RLIMIT_CPU),
- leaves the network where the kernel allows (new user + network namespace: no
  route at all, not even loopback) — a second wall behind the SERVICE check,
- parses the query with rdflib's SPARQL parser and refuses SERVICE anywhere in it
  (updates and LOAD never parse as a query),
- opens a read-only snapshot and runs the query with pyoxigraph: the node's SPARQL
  mirror (``QueryJob.mirror``, `service.sparql_store.open_snapshot`) or the newest snapshot
  an index harvester published (``QueryJob.index_store``, `harvesters.store.latest_snapshot`;
  one pruned between resolving and opening is resolved again),
- serializes at most ``max_rows`` rows (or triples) and ``max_bytes`` bytes
  (`service.sparql_results`) into a pipe.

With ``check_only`` the child stops after the checks and reports the query form: the
index endpoint then forwards the checked query to a remote store (service/index_sparql.py).

The web worker only waits for its own child; other requests run on in other
threads, workers and processes.
"""

from __future__ import annotations

import ctypes
import json
import logging
import math
import multiprocessing
import multiprocessing.forkserver
import os
import resource
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pyoxigraph as ox
from pyparsing import ParseResults
from rdflib.plugins.sparql.algebra import translateQuery
from rdflib.plugins.sparql.parser import parseQuery, parseUpdate
from rdflib.plugins.sparql.parserutils import CompValue

from harvesters.store import latest_snapshot

from .errors import AtlasError, BadRequest, Forbidden, NotAcceptable
from .sparql_results import GRAPH_FORMATS, RESULTS_FORMATS, Limits, media_type, serialize
from .sparql_store import open_snapshot

__all__ = ["NoSnapshot", "QueryJob", "QueryLimitExceeded", "QueryResult", "TooManyQueries", "run",
           "warm_up"]

log = logging.getLogger(__name__)
_FORMS = {"SelectQuery": "SELECT", "AskQuery": "ASK", "ConstructQuery": "CONSTRUCT",
          "DescribeQuery": "DESCRIBE"}
_CHUNK = 64 * 1024
# Deep nesting recurses deeply in rdflib's parser: 1000 frames (Python's default)
# fail at about 85 triple patterns in one group, 20000 at about 1800.
_RECURSION_LIMIT = 20000
_CLONE_NEWUSER, _CLONE_NEWNET = 0x10000000, 0x40000000  # unshare(2)
_M_ARENA_MAX = -8  # mallopt(3)


@dataclass(frozen=True)
class QueryJob:
    query: str
    mirror: str                                   # folder of the node's SPARQL mirror, or ""
    base_iri: str                                 # the endpoint URL (relative IRIs)
    results_format: str | None                    # for SELECT/ASK; None: none acceptable
    graph_format: str | None                      # for CONSTRUCT/DESCRIBE
    default_graphs: tuple[str, ...] | None = None  # protocol dataset; None: not given
    named_graphs: tuple[str, ...] | None = None
    limits_url: str = ""                          # where the limits are explained
    timeout: float = 10.0
    memory_mb: int = 1024
    max_rows: int = 10000
    max_bytes: int = 32 * 1024 * 1024
    index_store: str = ""                         # an index store folder: its latest snapshot
    check_only: bool = False                      # only check; answer the form, no result


@dataclass(frozen=True)
class QueryResult:
    body: bytes
    media_type: str
    form: str                # SELECT, ASK, CONSTRUCT or DESCRIBE
    rows: int
    truncated: str | None    # None, "rows" or "bytes"


class QueryLimitExceeded(AtlasError):
    """The query needed more time or memory than the endpoint grants (killed).

    503 (RFC 9110 §15.6.4), not 504: no gateway timed out — this server declined
    to spend more on the query, as a temporary limit of its capacity, and says
    when to come back (Retry-After). 504 stays recognisable as a proxy's timeout.
    """

    status, title = 503, "Service Unavailable"
    type = "https://w3id.org/engagement-atlas/problems/sparql-limit"

    def __init__(self, detail: str, retry_after: int):
        super().__init__(detail)
        self.headers["Retry-After"] = str(retry_after)


class NoSnapshot(AtlasError):
    """The index has not published a snapshot yet: nothing to query (503, RFC 9110 §15.6.4)."""

    status, title = 503, "Service Unavailable"
    type = "https://w3id.org/engagement-atlas/problems/no-snapshot"

    def __init__(self, retry_after: int = 60):
        super().__init__("the index has no snapshot yet; run `atlas harvest run`")
        self.headers["Retry-After"] = str(retry_after)


class TooManyQueries(AtlasError):
    status, title = 429, "Too Many Requests"

    def __init__(self, retry_after: int):
        super().__init__("too many SPARQL queries at once; retry shortly")
        self.headers["Retry-After"] = str(retry_after)  # RFC 6585 §4


# --------------------------------------------------------------------------- parent


def run(job: QueryJob) -> QueryResult:
    """Run ``job`` in a child process and return its serialized result.

    Raises BadRequest (syntax), Forbidden (SERVICE), NotAcceptable (no format for
    the query form), QueryLimitExceeded (killed at the deadline or out of memory).
    """
    ctx = _context()
    reader, writer = ctx.Pipe(duplex=False)
    child = ctx.Process(target=_child_main, args=(writer, job), daemon=True)
    deadline = time.monotonic() + job.timeout
    child.start()
    writer.close()  # ours; EOF then means the child is gone
    chunks: list[bytes] = []
    size, meta, error = 0, None, None
    try:
        while meta is None and error is None:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise QueryLimitExceeded(
                    f"the query was stopped after {job.timeout:g} s (SPARQL_TIMEOUT)",
                    retry_after=math.ceil(job.timeout))
            if not reader.poll(remaining):
                continue
            try:
                message = reader.recv_bytes()
            except EOFError:
                break
            tag, payload = message[:1], message[1:]
            if tag == b"D":
                size += len(payload)
                if size > job.max_bytes + _CHUNK:  # the child enforces the cap; never trust it
                    raise AtlasError("the query process sent more than it may")
                chunks.append(payload)
            elif tag == b"M":
                meta = json.loads(payload)
            else:
                error = json.loads(payload)
    finally:
        reader.close()
        child.join(0.5 if meta or error else 0)
        if child.is_alive():
            child.kill()  # SIGKILL: the kernel frees everything it held
        child.join()
    if error is not None:
        if error["kind"] == "no-snapshot":
            raise NoSnapshot()
        raise _error(error, job)
    if meta is None:
        raise _death(child.exitcode, job)
    if not meta["isolated"] and not _warned:
        _warned.append(True)
        log.warning("SPARQL query processes keep network access here (no user or network "
                    "namespaces); SERVICE is still refused by the parser check")
    return QueryResult(b"".join(chunks), meta["media_type"], meta["form"], meta["rows"],
                       meta["truncated"])


_warned: list[bool] = []
_ERRORS = {"syntax": BadRequest, "refused": Forbidden, "not-acceptable": NotAcceptable}


def _error(error: dict[str, Any], job: QueryJob) -> AtlasError:
    if error["kind"] == "memory":
        return QueryLimitExceeded(f"the query was stopped: it needed more than "
                                  f"{job.memory_mb} MB (SPARQL_MEMORY_MB)",
                                  retry_after=math.ceil(job.timeout))
    return _ERRORS.get(error["kind"], AtlasError)(error["detail"])


def _death(exitcode: int | None, job: QueryJob) -> AtlasError:
    """The child ended without an answer: a kernel limit stopped it (or it crashed)."""
    if exitcode == -24:  # SIGXCPU: RLIMIT_CPU, the backstop of the deadline
        return QueryLimitExceeded(f"the query was stopped after {job.timeout:g} s "
                                  "(SPARQL_TIMEOUT)", retry_after=math.ceil(job.timeout))
    # An allocation refused under RLIMIT_AS aborts native code (SIGABRT), uncatchable;
    # the kernel's OOM killer sends SIGKILL.
    return QueryLimitExceeded(f"the query process ended ({exitcode}), most likely over its "
                              f"memory limit of {job.memory_mb} MB (SPARQL_MEMORY_MB)",
                              retry_after=math.ceil(job.timeout))


def warm_up() -> None:
    """Start this process's fork server now (a few ms here; it loads its modules,
    about a second of CPU, in parallel), so the first query need not wait for it."""
    _context()
    multiprocessing.forkserver.ensure_running()


def _context():
    ctx = multiprocessing.get_context("forkserver")
    # Only this module (and what it imports): not the server's __main__.
    ctx.set_forkserver_preload([__name__])
    return ctx


# --------------------------------------------------------------------------- child


class _Refused(Exception):
    def __init__(self, kind: str, detail: str):
        super().__init__(detail)
        self.kind, self.detail = kind, detail


def _child_main(conn, job: QueryJob) -> None:
    try:
        _limit_resources(job)
        isolated = _leave_network()
        form, has_dataset = _check(job.query)
        fmt = job.results_format if form in ("SELECT", "ASK") else job.graph_format
        if fmt is None:
            names = RESULTS_FORMATS if form in ("SELECT", "ASK") else GRAPH_FORMATS
            raise _Refused("not-acceptable", f"a {form} query can answer in: " + ", ".join(
                types[0] for types in names.values()))
        if job.check_only:
            conn.send_bytes(b"M" + orjson.dumps({"form": form, "rows": 0, "truncated": None,
                                                 "media_type": media_type(fmt),
                                                 "isolated": isolated}))
            return
        store = _open(job)
        try:
            results = store.query(job.query, base_iri=job.base_iri,
                                  **_dataset(job, has_dataset))
        except SyntaxError as exc:  # pyoxigraph's parser is stricter in places
            raise _Refused("syntax", str(exc)) from None
        body, rows, truncated = serialize(form, results, fmt,
                                          Limits(job.max_rows, job.max_bytes, job.limits_url))
        for start in range(0, len(body), _CHUNK):
            conn.send_bytes(b"D" + body[start:start + _CHUNK])
        conn.send_bytes(b"M" + orjson.dumps({"form": form, "rows": rows, "truncated": truncated,
                                             "media_type": media_type(fmt),
                                             "isolated": isolated}))
    except _Refused as exc:
        conn.send_bytes(b"E" + orjson.dumps({"kind": exc.kind, "detail": exc.detail}))
    except MemoryError:
        conn.send_bytes(b"E" + orjson.dumps({"kind": "memory", "detail": "out of memory"}))
    except Exception as exc:  # noqa: BLE001 - reported as a 500 by the parent
        conn.send_bytes(b"E" + orjson.dumps({"kind": "failed",
                                             "detail": f"the query failed: {exc}"}))
    finally:
        conn.close()


def _open(job: QueryJob) -> ox.Store:
    """The read-only store the job names (module docstring)."""
    if not job.index_store:
        store, _lock = open_snapshot(Path(job.mirror))  # the lock lives as long as we do
        return store
    for _attempt in range(5):
        path = latest_snapshot(job.index_store)
        if path is None:
            raise _Refused("no-snapshot", "the index has no snapshot yet")
        try:
            return ox.Store.read_only(str(path))
        except OSError:  # pruned by the harvester after we resolved it: resolve again
            continue
    raise _Refused("failed", "the index snapshot kept disappearing; retry")


def _limit_resources(job: QueryJob) -> None:
    # SPARQL_MEMORY_MB is what the query may add to the loaded program.
    status = Path("/proc/self/status").read_text()
    base_kb = next((int(line.split()[1]) for line in status.splitlines()
                    if line.startswith("VmSize:")), 0)
    limit = base_kb * 1024 + job.memory_mb * 1024 * 1024
    # One malloc arena: glibc would reserve 64 MB of address space per thread.
    ctypes.CDLL(None).mallopt(_M_ARENA_MAX, 1)
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    cpu = math.ceil(job.timeout) + 1  # a backstop: the parent kills at the deadline
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    sys.setrecursionlimit(_RECURSION_LIMIT)


def _leave_network() -> bool:
    """Move this single-threaded process into new user and network namespaces
    (user_namespaces(7)); True when that worked. Our own uid/gid are mapped so
    files keep their owner. Kernels or containers that forbid it leave us as we were."""
    if not sys.platform.startswith("linux"):
        return False
    libc = ctypes.CDLL(None, use_errno=True)
    uid, gid = os.getuid(), os.getgid()
    if libc.unshare(_CLONE_NEWUSER | _CLONE_NEWNET) != 0:
        return libc.unshare(_CLONE_NEWNET) == 0  # root where user namespaces are off
    try:
        for name, text in (("setgroups", "deny"), ("uid_map", f"{uid} {uid} 1"),
                           ("gid_map", f"{gid} {gid} 1")):
            Path("/proc/self", name).write_text(text)
    except OSError:
        pass
    return True


def _check(query: str) -> tuple[str, bool]:
    """The query form and whether it names a dataset (FROM / FROM NAMED).

    Every parser failure is the client's: rdflib raises pyparsing errors,
    RecursionError on deep nesting and plain Exceptions (unknown prefixes).
    """
    try:
        tree = parseQuery(query)
    except RecursionError:
        raise _Refused("syntax", "the query is nested too deeply to be parsed") from None
    except Exception as exc:  # noqa: BLE001
        if _is_update(query):
            raise _Refused("refused", "this endpoint is read-only: SPARQL Update (and LOAD) "
                                      "is not accepted") from None
        raise _Refused("syntax", f"not a SPARQL query: {exc}") from None
    if "ServiceGraphPattern" in _names(tree):
        raise _Refused("refused", "SERVICE (federated query) is not allowed on this endpoint")
    try:
        translateQuery(tree)
    except RecursionError:
        raise _Refused("syntax", "the query is nested too deeply to be parsed") from None
    except Exception as exc:  # noqa: BLE001
        raise _Refused("syntax", f"invalid query: {exc}") from None
    body = tree[1]
    return _FORMS[body.name], bool(dict.get(body, "datasetClause"))


def _is_update(text: str) -> bool:
    try:
        parseUpdate(text)
    except Exception:  # noqa: BLE001 - RecursionError included: then it is no update either
        return False
    return True


def _names(tree: Any) -> set[str]:
    """Names of every node of a parse tree, nested groups, OPTIONALs, EXISTS and
    subqueries included (walked without recursion)."""
    names, stack = set(), [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, CompValue):
            names.add(node.name)
            stack.extend(dict.values(node))
        elif isinstance(node, (list, tuple, ParseResults)):
            stack.extend(node)
        elif isinstance(node, dict):
            stack.extend(node.values())
    return names


def _dataset(job: QueryJob, has_dataset: bool) -> dict[str, Any]:
    """pyoxigraph options for the RDF dataset (SPARQL 1.1 Protocol §2.1.4)."""
    if job.default_graphs is not None or job.named_graphs is not None:
        # The protocol's dataset wins over FROM / FROM NAMED; graphs it does not
        # name are not in it (an empty default graph when only named ones are given).
        return {"default_graph": [ox.NamedNode(g) for g in job.default_graphs or ()],
                "named_graphs": [ox.NamedNode(g) for g in job.named_graphs or ()]}
    if has_dataset:
        return {}  # FROM names graphs of the store; nothing is ever fetched
    return {"use_default_graph_as_union": True}
