"""The default index store: pyoxigraph on disk (RocksDB), in the harvester's own process.

Atomicity: pyoxigraph 0.5 has no transaction object; `Store.update` runs one SPARQL Update
request as one transaction ("either the full operation succeeds, or nothing is written"),
and `Store.extend` is transactional too but can only add. A batch therefore goes in as one
request (DROP SILENT GRAPH ...; DELETE ...; INSERT DATA {...}). Checked here: a request
whose last operation fails leaves the earlier DROPs undone, and a process SIGKILLed during
`update` reopens with the old or the new state (tests/harvesters/test_store.py).
`bulk_extend`/`bulk_load` write new files directly and are not atomic; `bulk_load_source`
keeps its guarantee with a marker and write-ahead records (see `SparqlIndexStore`), and
opening the store undoes an interrupted bulk load.

Read-only query workers (the SPARQL endpoint kills a runaway query by killing its
process): checked here, `Store.read_only` on the live directory of a store that keeps
writing is unusable — opening replays the whole write-ahead log (0.04 s growing to >20 s
within a minute of harvesting), and after `flush()` it fails half the time with "No such
file ... .sst" as compaction removes files under it (pyoxigraph: "undefined behaviour").
A checkpoint (`snapshot`, ~30 ms, hard links) opened read-only was reliable and fast, so
the writer publishes snapshots (`publish_snapshot`) and workers open `latest_snapshot`.

Durability: a SIGKILLed process loses nothing `update` had returned from (checked); what
a power cut may lose depends on RocksDB's write-ahead-log syncing (not checked here).
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pyoxigraph as ox

from harvesters.errors import StoreError

from .interface import QueryResult
from .sparql import SparqlIndexStore

__all__ = ["OxigraphStore", "latest_snapshot"]

_ENGINE_ERRORS = (OSError, RuntimeError, SyntaxError, ValueError)


class OxigraphStore(SparqlIndexStore):
    """Embedded pyoxigraph store in directory ``path`` (one writing process at a time).

    Killable read-only query workers open ``pyoxigraph.Store.read_only(latest_snapshot(path))``
    after the writer called `publish_snapshot` (not ``path`` itself while it is written to).
    """

    _bulk_pages = True  # `_write_quads` (bulk_load/bulk_extend) ~4.5x faster than an update

    def __init__(self, path: str | os.PathLike, *, recover: bool = True) -> None:
        super().__init__()
        self.path = Path(path)
        try:
            self._store: ox.Store | None = ox.Store(str(self.path))
        except OSError as exc:  # e.g. another process holds the RocksDB lock
            raise StoreError(f"cannot open index store at {self.path}: {exc}",
                             reason="store-unavailable") from exc
        if recover:
            self.recover_incomplete_loads()

    @property
    def _engine(self) -> ox.Store:
        if self._store is None:
            raise StoreError("the index store is closed", reason="store-closed")
        return self._store

    def _update(self, sparql: str) -> None:
        try:
            self._engine.update(sparql)
        except _ENGINE_ERRORS as exc:
            raise StoreError(f"update failed: {exc}", reason="update-failed") from exc

    def _select(self, sparql: str) -> list[dict[str, str]]:
        try:
            return [{v.value: s[v].value for v in solutions.variables if s[v] is not None}
                    for solutions in [self._engine.query(sparql)] for s in solutions]
        except _ENGINE_ERRORS as exc:
            raise StoreError(f"query failed: {exc}", reason="query-failed") from exc

    def _write_quads(self, quads: list[ox.Quad] | bytes) -> None:
        try:
            if isinstance(quads, bytes):  # N-Quads without blank nodes (SparqlIndexStore)
                self._engine.bulk_load(quads, format=ox.RdfFormat.N_QUADS)
            else:
                self._engine.bulk_extend(quads)
        except _ENGINE_ERRORS as exc:
            raise StoreError(f"bulk write failed: {exc}", reason="bulk-load-failed") from exc

    def query(self, sparql: str, *, timeout: float | None = None) -> QueryResult:
        """Evaluate in this process; results are pyoxigraph's lazy iterators.

        ``timeout`` is accepted for interface parity but cannot be enforced: pyoxigraph has
        no cancellation (PITFALLS: a runaway ORDER BY kept running). Untrusted queries belong
        in a child process on ``path`` that can be killed. SERVICE and LOAD would make
        network requests: reject them before calling this.
        """
        try:
            return self._engine.query(sparql)
        except SyntaxError as exc:
            raise StoreError(f"invalid query: {exc}", reason="bad-query") from exc
        except _ENGINE_ERRORS as exc:
            raise StoreError(f"query failed: {exc}", reason="query-failed") from exc

    def snapshot(self, target: str | os.PathLike) -> Path:
        """A consistent copy in ``target`` (hard links on the same file system, so cheap)
        that read-only workers can open while this store keeps writing."""
        try:
            self._engine.backup(str(target))
        except _ENGINE_ERRORS as exc:
            raise StoreError(f"snapshot failed: {exc}", reason="snapshot-failed") from exc
        return Path(target)

    def publish_snapshot(self, *, keep: int = 3) -> Path:
        """Snapshot into ``{path}.snapshots/`` and point ``latest`` at it (atomic rename).

        Call after a harvest run or batch; keeps the newest ``keep`` snapshots. A worker that
        resolved an older one just before it was pruned gets an OSError and should retry.
        """
        root = _snapshot_root(self.path)
        root.mkdir(parents=True, exist_ok=True)
        target = self.snapshot(root / f"{time.time_ns():020d}")
        link = root / f".latest-{os.getpid()}"
        link.unlink(missing_ok=True)
        os.symlink(target.name, link)
        os.replace(link, root / "latest")
        for old in sorted(p for p in root.iterdir() if p.name.isdigit())[:-keep]:
            shutil.rmtree(old, ignore_errors=True)
        return target

    def close(self) -> None:
        """Let go of the store; RocksDB closes once no query result refers to it any more."""
        self._store = None


def _snapshot_root(path: Path) -> Path:
    return path.with_name(path.name + ".snapshots")


def latest_snapshot(path: str | os.PathLike) -> Path | None:
    """The newest snapshot `OxigraphStore.publish_snapshot` made of the store at ``path``."""
    try:
        return (_snapshot_root(Path(path)) / "latest").resolve(strict=True)
    except (FileNotFoundError, RuntimeError):
        return None
