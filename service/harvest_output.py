"""What ``atlas harvest run|watch`` print: progress bars on a terminal, JSON lines otherwise.

Why: an operator at a terminal wants to see progress; cron, systemd and log collectors want
one JSON object per line they can filter by ``event`` and ``source``. The events come from
`harvesters.run` (``source-started``, ``page-applied``, ``source-finished``, ``round-*``)
and are called from the harvest threads, so both reporters serialise their output.
Log records of the harvesters (warnings about a source, say) go to standard error, as JSON
lines when standard output is not a terminal.
"""

from __future__ import annotations

import contextlib
import json
import logging
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any, TextIO

import click

__all__ = ["JsonLines", "Progress", "logs_to_stderr", "reporter"]


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class JsonLines:
    """One JSON object per event on standard output, flushed at once (a crash loses none)."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stdout
        self._lock = threading.Lock()

    def __call__(self, event: dict[str, Any]) -> None:
        failed = event.get("event") == "source-finished" and not event.get("ok")
        line = json.dumps({"time": _now(), "level": "error" if failed else "info", **event},
                          ensure_ascii=False, default=str)
        with self._lock:
            self.stream.write(line + "\n")
            self.stream.flush()

    def selected(self, sources: list) -> None:
        self({"event": "run-started", "sources": [s.id for s in sources]})

    def close(self, reports: list) -> None:
        self({"event": "run-finished", "ok": all(r.ok for r in reports),
              "sources": len(reports), "failed": [r.source_id for r in reports if not r.ok]})


class Progress:
    """A click progress bar over the sources of a round, naming the latest page applied."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._bar: Any = None

    def selected(self, sources: list) -> None:
        self._start([s.id for s in sources])

    def _start(self, ids: list[str]) -> None:
        with self._lock:
            if self._bar is not None:
                self._bar.render_finish()
            self._bar = click.progressbar(length=max(1, len(ids)), label="Harvesting",
                                          show_pos=True, item_show_func=lambda item: item)
            self._bar.render_progress()

    def __call__(self, event: dict[str, Any]) -> None:
        kind, source = event.get("event"), event.get("source")
        if kind == "round-started":
            self._start(event["sources"])
        elif kind in ("page-applied", "source-finished"):
            with self._lock:
                if self._bar is None:
                    return
                if kind == "page-applied":
                    self._bar.update(0, f"{source}: {event['pages']} pages")
                else:
                    self._bar.update(1, f"{source}: {'ok' if event['ok'] else 'FAILED'}")
        elif kind == "round-finished":
            self.close_bar()
            click.echo(f"Round {event['round']}: "
                       + ("every source succeeded" if event["ok"]
                          else f"failed: {', '.join(event['failed'])}"))

    def close_bar(self) -> None:
        with self._lock:
            if self._bar is not None:
                self._bar.render_finish()
                self._bar = None

    def close(self, reports: list) -> None:
        self.close_bar()
        for r in reports:
            state = "ok" if r.ok else "FAILED"
            click.echo(f"{r.source_id:30} {state:6} {r.pages:>5} pages {r.members_applied:>7} "
                       f"applied {r.deletes:>5} deleted {r.quarantined_count:>4} quarantined")
            for error in r.errors:
                click.echo(f"    {error}", err=True)
        if not reports:
            click.echo("No source is due.")


def reporter(interactive: bool | None = None) -> JsonLines | Progress:
    """Progress bars when standard output is a terminal, JSON lines otherwise."""
    if interactive is None:
        interactive = sys.stdout.isatty()
    return Progress() if interactive else JsonLines()


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        data = {"time": _now(), "level": record.levelname.lower(), "event": "log",
                "logger": record.name, "message": record.getMessage()}
        if record.exc_info:
            data["exception"] = self.formatException(record.exc_info)
        return json.dumps(data, ensure_ascii=False, default=str)


@contextlib.contextmanager
def logs_to_stderr(json_lines: bool) -> Iterator[None]:
    """Warnings and errors of the harvesters on standard error (JSON lines if asked),
    while the command runs."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setLevel(logging.WARNING)
    handler.setFormatter(_JsonFormatter() if json_lines
                         else logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    logger = logging.getLogger("harvesters")
    level = logger.level
    logger.addHandler(handler)
    if logger.getEffectiveLevel() > logging.WARNING:
        logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
