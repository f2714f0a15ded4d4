"""Whole-dataset dumps: ``/dumps/all.{nt,ttl,jsonld}.gz`` and
``/dumps/{collection}.{nt,ttl,jsonld,csv}.gz``.

The file *is* the representation: a gzip file sent as ``Content-Type:
application/gzip`` (RFC 6713) with ``Content-Disposition: attachment``, never as
the inner format with ``Content-Encoding: gzip``. A content coding is something
clients may undo on the fly (RFC 9110 §8.4): curl, browsers and requests would
save decompressed bytes under a ``.gz`` name, and a 10 GB dump would be
recompressed by every proxy that renegotiates encodings. The catalog says what is
inside (DCAT 3 §6.8, Class Distribution: ``dcat:mediaType`` is the inner format,
``dcat:compressFormat`` is ``application/gzip``; `dump_info` gives both).

Dumps are derived data, rebuilt when the data change, not per request. Each
file has a sidecar ``{name}.json`` in the dumps folder recording the change-log
seq it was built at; the request that finds ``service.changes.latest_seq``
beyond it rebuilds the file under an inter-process lock (`service.locks`; gunicorn
runs several workers). Meanwhile other requests get the previous complete file;
only when there is none yet do they wait for the first build. Files are written
to a temporary name and renamed (`exports.dump.write_gzip_file`), and readers
check the sidecar's inode against the file they opened, so a file is never
served half-written or with another file's validators.

A rebuild runs inside the request that found the file stale (5,000 actors: 0.7-1.9 s
per file, bench/RESULTS.md). On large nodes run ``atlas dumps build`` after imports or
from cron, so that no download has to build: a build longer than gunicorn's worker
timeout is killed with its worker (the kernel releases the lock, the previous file
stays, the next request tries again).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import BinaryIO

from flask import Blueprint, Flask, current_app, request, send_file
from sqlalchemy import select

import exports
from exports.dump import COMPRESS_MEDIA_TYPE, DUMP_FORMATS, RDF_DUMP_FORMATS, write_gzip_file
from vocab.fields import ENTITY_BY_COLLECTION

from . import __version__, changes, locks, store
from .errors import AtlasError, NotFound
from .models import EntityRow

__all__ = ["Dump", "DumpBusy", "DumpInfo", "bp", "build_all", "dump_info", "dumps", "dumps_dir",
           "find", "open_dump"]

bp = Blueprint("dumps", __name__)

ALL = "all"
# As long as collection pages: a change reaches every reader within a minute, and
# the strong ETag makes revalidation after that cheap.
DUMP_MAX_AGE = 60
_POLL = 0.05


class DumpBusy(AtlasError):
    """The first build of a dump is still running elsewhere (503, retry shortly)."""

    status, title = 503, "Service Unavailable"

    def __init__(self, detail: str, retry_after: int):
        super().__init__(detail)
        self.headers["Retry-After"] = str(retry_after)  # RFC 9110 §10.2.3


@dataclass(frozen=True)
class Dump:
    """One dump file: a collection (or "all") in one format."""

    collection: str
    format: exports.Format

    @property
    def name(self) -> str:
        return f"{self.collection}.{self.format.extensions[0]}.gz"

    @property
    def kind(self) -> str | None:
        return None if self.collection == ALL else ENTITY_BY_COLLECTION[self.collection].kind


@dataclass(frozen=True)
class DumpInfo:
    """What a catalog says about a dump (DCAT 3 §6.8 Distribution).

    ``media_type`` is the format inside the file (dcat:mediaType),
    ``compress_format`` the file's own type (dcat:compressFormat). ``byte_size``,
    ``modified`` (the newest change the file contains) and ``records`` describe the
    latest complete file and are None before its first build; ``fresh`` is False
    when the data have changed since (the next download rebuilds it).
    """

    name: str
    collection: str
    format: str
    media_type: str
    compress_format: str
    url: str
    byte_size: int | None
    modified: datetime | None
    records: int | None
    fresh: bool


@dataclass(frozen=True)
class _State:
    """The sidecar of a dump file: what it was built from, and which file it describes."""

    seq: int
    last_change: str | None
    version: str
    size: int
    inode: int
    records: int
    built: str

    def etag(self, dump: Dump) -> str:
        # Strong: a seq and a software version always give the same bytes (the data
        # are read in pk order, gzip without timestamps).
        return f"{self.seq}-{dump.format.name}-{self.version}"

    def fresh(self, seq: int) -> bool:
        return self.seq >= seq and self.version == __version__


def dumps() -> list[Dump]:
    """Every dump a node publishes: "all" in the RDF formats, then each collection."""
    found = [Dump(ALL, exports.get(name)) for name in RDF_DUMP_FORMATS]
    for collection in ENTITY_BY_COLLECTION:
        found += [Dump(collection, exports.get(name)) for name in DUMP_FORMATS]
    return found


def find(name: str) -> Dump:
    """The dump called ``name`` (e.g. "actors.ttl.gz"); NotFound otherwise."""
    for dump in dumps():
        if dump.name == name:
            return dump
    raise NotFound(f"no dump {name!r}; dumps are named all.{{nt,ttl,jsonld}}.gz and "
                   "{collection}.{nt,ttl,jsonld,csv}.gz")


# --------------------------------------------------------------------------- route


@bp.get("/dumps/<name>")
def download(name: str):
    """A dump file, rebuilt first when the data have changed since it was written."""
    dump = find(name)
    file, state = open_dump(current_app, dump)
    response = send_file(file, mimetype=COMPRESS_MEDIA_TYPE, as_attachment=True,
                         download_name=dump.name, conditional=False, etag=state.etag(dump),
                         last_modified=_datetime(state.last_change), max_age=DUMP_MAX_AGE)
    response.headers["Access-Control-Allow-Origin"] = "*"
    # send_file only knows the length (and so Range, RFC 9110 §14) of paths; a path
    # could be replaced between its stat and open, the open file cannot.
    response.content_length = state.size
    return response.make_conditional(request, accept_ranges=True, complete_length=state.size)


# --------------------------------------------------------------------------- files


def dumps_dir(app: Flask) -> Path:
    return Path(app.config["DUMPS_DIR"] or Path(app.instance_path) / "dumps")


def open_dump(app: Flask, dump: Dump, *, wait: float | None = None
              ) -> tuple[BinaryIO, _State]:
    """The current file of ``dump``, opened, and its sidecar; rebuilt first if stale.

    A stale file is rebuilt by the caller that gets the lock; callers that find
    the lock taken get the previous complete file, or wait up to ``wait`` seconds
    (default DUMP_WAIT_SECONDS) when there is none yet, then raise `DumpBusy`.
    """
    directory = dumps_dir(app)
    directory.mkdir(parents=True, exist_ok=True)
    current = _open_consistent(directory, dump)
    if current is not None and current[1].fresh(_latest_seq(app)):
        return current
    if wait is None:
        wait = float(app.config["DUMP_WAIT_SECONDS"])
    with locks.exclusive(directory / f".{dump.name}.lock", wait if current is None else 0) as got:
        if not got:
            if current is not None:
                return current
            raise DumpBusy(f"{dump.name} is being built for the first time; try again soon",
                           retry_after=max(1, round(wait)))
        if current is not None:
            current[0].close()
        # Someone may have rebuilt it while we waited for the lock.
        current = _open_consistent(directory, dump)
        if current is None or not current[1].fresh(_latest_seq(app)):
            if current is not None:
                current[0].close()
            _build(app, dump, directory)
            current = _open_consistent(directory, dump)
        if current is None:  # only if someone removes files under our feet
            raise AtlasError(f"{dump.name} was built but cannot be opened")
        return current


def build_all(app: Flask) -> Iterator[tuple[Dump, _State, float]]:
    """Rebuild every dump now (waiting for builds in progress); yields each with its
    state and the seconds it took."""
    directory = dumps_dir(app)
    directory.mkdir(parents=True, exist_ok=True)
    for dump in dumps():
        started = time.perf_counter()
        with locks.exclusive(directory / f".{dump.name}.lock", float("inf")):
            state = _build(app, dump, directory)
        yield dump, state, time.perf_counter() - started


def dump_info(app: Flask, *, build: bool = False) -> list[DumpInfo]:
    """Every dump with what the catalog needs; ``build`` rebuilds stale ones first
    (slow on large nodes: every file is regenerated)."""
    directory = dumps_dir(app)
    seq = _latest_seq(app)
    found = []
    for dump in dumps():
        if build:
            open_dump(app, dump)[0].close()
            seq = _latest_seq(app)
        state = _read_state(directory, dump)
        found.append(DumpInfo(
            name=dump.name, collection=dump.collection, format=dump.format.name,
            media_type=dump.format.media_types[0], compress_format=COMPRESS_MEDIA_TYPE,
            url=f"{app.config['BASE_URL']}/dumps/{dump.name}",
            byte_size=state.size if state else None,
            modified=_datetime(state.last_change) if state else None,
            records=state.records if state else None,
            fresh=bool(state and state.fresh(seq))))
    return found


def _build(app: Flask, dump: Dump, directory: Path) -> _State:
    """Write the dump and then its sidecar; the caller holds the dump's lock."""
    for leftover in directory.glob(f".{dump.name}.*.tmp"):  # from a killed worker
        leftover.unlink(missing_ok=True)
    # Read before the data: if a change lands while we write, the file may already
    # contain it but is recorded as older, so the next request rebuilds it.
    with _session(app) as session:
        seq, last = changes.latest_seq(session), changes.last_change_at(session)
    written = write_gzip_file(
        directory / dump.name, dump.format.name,
        lambda: _live_records(app, dump.kind), app.config["BASE_URL"], kind=dump.kind,
        compresslevel=int(app.config["DUMP_COMPRESSLEVEL"]))
    state = _State(seq=seq, last_change=store.iso(last) if last else None, version=__version__,
                   size=written.size, inode=written.inode, records=written.records,
                   built=store.iso(store.now()))
    sidecar = directory / f"{dump.name}.json"
    tmp = sidecar.with_name(f".{sidecar.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(asdict(state)), encoding="utf-8")
    os.replace(tmp, sidecar)
    return state


def _live_records(app: Flask, kind: str | None) -> Iterator[tuple[str, dict]]:
    """Live entities (of one kind, or all) in pk order, read in keyset batches so
    that memory stays bounded however large the node is."""
    batch = int(app.config["DUMP_BATCH_SIZE"])
    columns = (EntityRow.pk, EntityRow.kind, EntityRow.id, EntityRow.data, EntityRow.version,
               EntityRow.created, EntityRow.modified, EntityRow.deleted)
    last = 0
    with _session(app) as session:
        while True:
            query = select(*columns).where(EntityRow.deleted.is_(None), EntityRow.pk > last)
            if kind is not None:
                query = query.where(EntityRow.kind == kind)
            rows = session.execute(query.order_by(EntityRow.pk).limit(batch)).all()
            session.rollback()  # no read transaction held open between batches
            for row in rows:
                yield row.kind, store.EntityState.from_row(row).record
            if len(rows) < batch:
                return
            last = rows[-1].pk


def _open_consistent(directory: Path, dump: Dump) -> tuple[BinaryIO, _State] | None:
    """The dump file opened together with the sidecar describing that very file.

    File and sidecar are replaced one after the other; a reader in between sees
    two different inodes and simply reads again.
    """
    for _attempt in range(20):
        state = _read_state(directory, dump)
        if state is None:
            return None
        try:
            file = open(directory / dump.name, "rb")  # noqa: SIM115 (the response closes it)
        except FileNotFoundError:
            return None
        if os.fstat(file.fileno()).st_ino == state.inode:
            return file, state
        file.close()
        time.sleep(_POLL)
    return None


def _read_state(directory: Path, dump: Dump) -> _State | None:
    try:
        return _State(**json.loads((directory / f"{dump.name}.json").read_text("utf-8")))
    except (FileNotFoundError, ValueError, TypeError):
        return None  # missing, or written by another version: rebuild


def _session(app: Flask):
    # A session of its own (not the request's): builds also run from the CLI.
    return app.extensions["atlas_db"]()


def _latest_seq(app: Flask) -> int:
    with _session(app) as session:
        return changes.latest_seq(session)


def _datetime(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value.replace("Z", "+00:00")) if value else None
