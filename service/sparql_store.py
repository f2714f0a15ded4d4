"""The SPARQL mirror: the node's records as RDF in an embedded Oxigraph store.

The SQL database stays the node's source of truth. This store is derived data
in the instance folder: one named graph per live entity (graph IRI = entity IRI,
statements from `vocab.to_graph` of the record), brought up to date from the
change log (`service.changes`) before a query is answered, and rebuilt from the
entities table whenever in doubt — missing or unreadable, ahead of the log,
built from another log, for another base URL or by another mapping. Deleting
the folder is always safe.

Layout of ``{instance}/sparql/``:

- ``write.lock``   flock of the one process (of several gunicorn workers) updating it
- ``primary/``     the read-write store, opened only by that process while it holds the lock
- ``snapshots/{seq}-{token}/`` read-only checkpoints that queries read (`Store.backup`
  hard-links the immutable files, so one costs milliseconds), each with a
  ``.lock`` file that query processes hold shared while they read it
- ``state.json``   the current snapshot and the change-log seq it reflects

Why snapshots: pyoxigraph documents that opening a store read-only while another
process writes it is undefined behaviour, and a query process may run for
seconds. A checkpoint never changes, so queries never wait for an update and an
update never waits for a query; old checkpoints go once no query holds them.
"""

from __future__ import annotations

import fcntl
import json
import os
import secrets
import shutil
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

from pyoxigraph import BlankNode, Literal, NamedNode, Quad, Store
from rdflib import BNode, URIRef
from rdflib import Literal as RdfLiteral
from sqlalchemy import select
from sqlalchemy.orm import Session

from vocab import VOCAB_VERSION, entity_uri, to_graph
from vocab.namespaces import XSD

from . import changes, locks
from .errors import AtlasError
from .models import EntityRow
from .store import EntityState, iso

__all__ = ["MirrorBusy", "MirrorState", "mirror_folder", "open_snapshot", "read_state", "sync"]

# Bump when the statements written for a record change shape: every mirror rebuilds.
MIRROR_FORMAT = 1
# A longer backlog of changes is replayed faster by a bulk rebuild.
REBUILD_AFTER = 5000
STATE_FILE = "state.json"
SNAPSHOTS = "snapshots"


class MirrorBusy(AtlasError):
    """Another process is still building the mirror (a first build of a big node)."""

    status, title = 503, "Service Unavailable"

    def __init__(self, retry_after: int):
        super().__init__("the SPARQL store is being rebuilt; retry shortly")
        self.headers["Retry-After"] = str(retry_after)  # RFC 9110 §10.2.3


@dataclass(frozen=True)
class MirrorState:
    seq: int            # last change-log seq applied (0: empty log)
    mark: str | None    # when that change happened: tells this log from a restored other one
    snapshot: str       # folder name under snapshots/
    base: str           # BASE_URL the IRIs were minted with
    format: str         # MIRROR_FORMAT and vocabulary version


def mirror_folder(instance_path: str | os.PathLike) -> Path:
    return Path(instance_path) / "sparql"


def _format() -> str:
    return f"{MIRROR_FORMAT}/{VOCAB_VERSION}"


def read_state(folder: Path) -> MirrorState | None:
    """The recorded state, or None when it is missing or unreadable."""
    try:
        data = json.loads((folder / STATE_FILE).read_text(encoding="utf-8"))
        return MirrorState(**data)
    except (OSError, ValueError, TypeError):
        return None


def _write_state(folder: Path, state: MirrorState) -> None:
    tmp = folder / f"{STATE_FILE}.{secrets.token_hex(4)}.tmp"
    tmp.write_text(json.dumps(asdict(state)), encoding="utf-8")
    os.replace(tmp, folder / STATE_FILE)  # readers see the old or the new file, never half


# --------------------------------------------------------------------------- sync


def sync(session: Session, folder: Path, base: str, wait: float) -> MirrorState:
    """Bring the mirror up to the newest change of the log and return its state.

    Cheap when nothing changed (two small SQL reads). Otherwise one process at a
    time catches up under ``write.lock``; others wait up to ``wait`` seconds for
    it, then get `MirrorBusy`.
    """
    state = read_state(folder)
    if state is not None and _current(session, folder, base, state, changes.latest_seq(session)):
        return state
    folder.mkdir(parents=True, exist_ok=True)
    with locks.exclusive(folder / "write.lock", wait) as got:
        if not got:
            raise MirrorBusy(max(1, round(wait)))
        session.rollback()  # a fresh snapshot of the database: see what the last writer wrote
        latest = changes.latest_seq(session)
        state = read_state(folder)
        if state is not None and _current(session, folder, base, state, latest):
            return state
        primary = folder / "primary"
        rebuild = (state is None or not primary.is_dir() or state.base != base
                   or state.format != _format() or state.seq > latest
                   or _mark(session, state.seq) != state.mark
                   or latest - state.seq > REBUILD_AFTER)
        if rebuild:
            _rebuild(session, folder, base)
        snapshot = _update(session, primary, folder, base,
                           None if rebuild else state.seq, latest)
        state = MirrorState(latest, _mark(session, latest), snapshot, base, _format())
        _write_state(folder, state)
        _prune(folder, keep=snapshot)
        return state


def _current(session: Session, folder: Path, base: str, state: MirrorState, latest: int
             ) -> bool:
    return (state.seq == latest and state.base == base and state.format == _format()
            and (folder / SNAPSHOTS / state.snapshot).is_dir()
            and _mark(session, state.seq) == state.mark)


def _mark(session: Session, seq: int) -> str | None:
    if seq <= 0:
        return None
    entry = next(changes.changes_between(session, seq, seq), None)
    return iso(entry.at) if entry else None


def _update(session: Session, primary: Path, folder: Path, base: str, since: int | None,
            latest: int) -> str:
    """Open the primary store, replay changes after ``since`` (None: none to replay),
    take a snapshot, close the store again; returns the snapshot's name."""
    store = Store(str(primary))
    try:
        if since is not None:
            _catch_up(session, store, base, since, latest)
        return _snapshot(store, folder, latest)
    finally:
        # Closes RocksDB now, even on errors: the next writer may be another process.
        del store


def _catch_up(session: Session, store: Store, base: str, since: int, latest: int) -> None:
    """Replay changes since..latest: each touched entity's graph becomes its newest state."""
    newest = {}
    for entry in changes.changes_between(session, since + 1, latest):
        newest[(entry.kind, entry.entity_id)] = entry
    for (kind, entity_id), entry in newest.items():
        graph = NamedNode(entity_uri(base, kind, entity_id))
        if store.contains_named_graph(graph):
            store.remove_graph(graph)
        if entry.op != "delete" and entry.data is not None:
            store.extend(_quads(kind, entry.data, base, graph))


def _rebuild(session: Session, folder: Path, base: str) -> None:
    """A new primary store from every live entity, swapped in when complete."""
    for leftover in folder.glob("primary.*"):
        shutil.rmtree(leftover, ignore_errors=True)
    fresh = folder / f"primary.{secrets.token_hex(4)}.new"
    store = Store(str(fresh))
    try:
        store.bulk_extend(_all_quads(session, base))
        store.flush()
    finally:
        del store
    old = folder / "primary"
    if old.exists():
        retired = folder / f"primary.{secrets.token_hex(4)}.old"
        os.replace(old, retired)
        shutil.rmtree(retired, ignore_errors=True)
    os.replace(fresh, old)


def _all_quads(session: Session, base: str) -> Iterator[Quad]:
    rows = session.scalars(select(EntityRow).where(EntityRow.deleted.is_(None))
                           .order_by(EntityRow.pk).execution_options(yield_per=500))
    for row in rows:
        state = EntityState.from_row(row)
        yield from _quads(state.kind, state.record, base,
                          NamedNode(entity_uri(base, state.kind, state.id)))


def _quads(kind: str, record: dict, base: str, graph: NamedNode) -> Iterator[Quad]:
    for s, p, o in to_graph(kind, record, base):
        yield Quad(_term(s), _term(p), _term(o), graph)


def _term(term):
    if isinstance(term, URIRef):
        return NamedNode(str(term))
    if isinstance(term, BNode):
        return BlankNode(str(term))
    if isinstance(term, RdfLiteral):
        if term.language:
            return Literal(str(term), language=term.language)
        if term.datatype is not None and term.datatype != XSD.string:
            return Literal(str(term), datatype=NamedNode(str(term.datatype)))
        return Literal(str(term))
    raise TypeError(f"not an RDF term: {term!r}")


def _snapshot(store: Store, folder: Path, seq: int) -> str:
    name = f"{seq}-{secrets.token_hex(4)}"
    snapshots = folder / SNAPSHOTS
    snapshots.mkdir(exist_ok=True)
    store.flush()
    store.backup(str(snapshots / name))
    # Created by the writer: query processes may run where they cannot create files.
    (snapshots / f"{name}.lock").touch()
    return name


def _prune(folder: Path, keep: str) -> None:
    """Remove old snapshots that no query process holds (a shared flock on their .lock)."""
    snapshots = folder / SNAPSHOTS
    names = {p.name.removesuffix(".lock") for p in snapshots.iterdir()}
    for name in names - {keep}:
        lock = snapshots / f"{name}.lock"
        try:
            fd = os.open(lock, os.O_RDONLY | os.O_CREAT, 0o644)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue  # a query is reading it; a later sync removes it
        try:
            shutil.rmtree(snapshots / name, ignore_errors=True)
            lock.unlink(missing_ok=True)
        finally:
            os.close(fd)


# --------------------------------------------------------------------------- reading


def open_snapshot(folder: Path) -> tuple[Store, int]:
    """The current snapshot opened read-only, and the descriptor of the shared lock
    that keeps it from being pruned (held until it is closed or the process ends).

    For query processes; raises FileNotFoundError when there is no mirror yet.
    """
    for _ in range(20):
        state = read_state(folder)
        if state is None:
            break
        path = folder / SNAPSHOTS / state.snapshot
        try:
            fd = os.open(f"{path}.lock", os.O_RDONLY)
        except FileNotFoundError:
            continue  # pruned after we read the state: read it again
        fcntl.flock(fd, fcntl.LOCK_SH)
        if path.is_dir():
            return Store.read_only(str(path)), fd
        os.close(fd)
    raise FileNotFoundError(f"no SPARQL store snapshot in {folder}")
