"""``atlas index ...`` and ``atlas harvest ...``: the command line of the pull side (issue 5).

Thin shells like the rest of the CLI: `harvesters.run` does the work without Flask, these
commands read the app's configuration (defaults, ``instance/atlas.toml``, ``ATLAS_*``), call
it and print (`service.harvest_output`: progress bars on a terminal, JSON lines otherwise).
``atlas harvest run`` exits 0 only if every source it harvested succeeded, so cron and
systemd see failures. `service.cli` adds both groups to ``atlas``.
"""

from __future__ import annotations

import sys

import click
from flask import current_app
from flask.cli import AppGroup

__all__ = ["harvest_group", "index_group"]


def _when(value) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S UTC") if value else "-"


def _table(rows: list[tuple[str, ...]]) -> None:
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        click.echo("  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())


def _harvest_settings():
    from .index import harvest_settings  # imported on use: it loads the store's engine

    return harvest_settings()


def _harvest_failure(exc: Exception) -> click.ClickException:
    reason = getattr(exc, "reason", "")
    if reason == "store-unavailable":
        return click.ClickException(f"{exc} (is `atlas harvest watch` running?)")
    return click.ClickException(f"{reason + ': ' if reason else ''}{exc}")


@click.group("index", cls=AppGroup)
def index_group() -> None:
    """The index: harvested data of many nodes in one store (INDEX_STORE)."""


@index_group.command("status")
def index_status_command() -> None:
    """Per source: entities and triples in the index, the last harvest, its result and, for a
    failed one, the reason of its first error (details: /index/sources or the run's log)."""
    from harvesters.errors import HarvestError
    from harvesters.run import last_runs, open_store

    from .index_read import source_status

    settings = _harvest_settings()
    try:
        with open_store(settings) as store:
            runs = last_runs(store)
            rows = [("SOURCE", "ENTITIES", "TRIPLES", "LAST RUN", "RESULT", "REASON")]
            for key in sorted(store.sources() | {s.id for s in settings.registry().all()}):
                end, ok = runs.get(key, (None, None))
                reason = "-"
                if ok is False:
                    errors = (source_status(store.query, key)["last_run"] or {}).get("errors")
                    reason = errors[0].split(":", 1)[0] if errors else "-"
                rows.append((key, str(len(store.graphs_of(key))), str(store.count_triples(key)),
                             _when(end), "-" if ok is None else ("ok" if ok else "failed"),
                             reason))
    except HarvestError as exc:
        raise _harvest_failure(exc) from None
    _table(rows)


@index_group.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=5000, show_default=True, type=click.IntRange(1, 65535),
              help="Port to listen on.")
def index_serve_command(host: str, port: int) -> None:
    """Serve the index pages (search, sources, entities) with the development server.

    In production run ``ATLAS_INDEX_MODE=true gunicorn 'service:create_app()'`` instead.
    """
    from werkzeug.serving import run_simple

    from . import create_app

    # A fresh app: INDEX_MODE decides which blueprints create_app registers.
    app = create_app({**_passed_config(), "INDEX_MODE": True})
    click.echo(f"Index pages at http://{host}:{port}/index/search (development server; "
               "use gunicorn in production)")
    click.echo(f"Entry URL for other indexes: http://{host}:{port}/index (feed, catalog)")
    # As `atlas serve`: werkzeug directly (Flask.run returns at once under the CLI group).
    run_simple(host, port, app, threaded=True)


def _passed_config() -> dict:
    """Settings given to the running app in code (tests) that the new app must keep too."""
    keys = ("INDEX_STORE", "INDEX_STORE_URL", "INDEX_UPDATE_URL", "DATABASE_URL", "BASE_URL")
    return {key: current_app.config[key] for key in keys if key in current_app.config}


@click.group("harvest", cls=AppGroup)
def harvest_group() -> None:
    """Sources of the index and harvesting them (registry beside INDEX_STORE)."""


@harvest_group.command("add")
@click.argument("url")
@click.option("--follow-peers", is_flag=True, help="Also register the peers the source lists.")
@click.option("--depth", default=1, show_default=True, type=click.IntRange(0, 10),
              help="Peer hops to follow with --follow-peers.")
@click.option("--allow", multiple=True, metavar="DOMAIN",
              help="Follow only peers in this domain (repeatable; subdomains match).")
@click.option("--deny", multiple=True, metavar="DOMAIN",
              help="Never follow peers in this domain (repeatable; wins over --allow).")
def harvest_add_command(url: str, follow_peers: bool, depth: int, allow: tuple[str, ...],
                        deny: tuple[str, ...]) -> None:
    """Register a source from its entry URL; its URI space is fixed from that description.

    An index (``{base}/index``) listed in HARVEST_TRUSTED_INDEXES becomes one source whose
    members keep their original sources; any other index is not trusted with attribution:
    the original sources it names are registered directly instead (each from its own entry).
    """
    from harvesters.errors import HarvestError
    from harvesters.fetch import Fetcher
    from harvesters.sources import SourceConflict, discover, domain_allowed, is_trusted, register

    settings = _harvest_settings()
    fetcher, skipped = Fetcher(settings.policy()), {}
    try:
        found = (discover([url], fetcher, depth=depth, allow_domains=allow, deny_domains=deny,
                          skipped=skipped) if follow_peers else [register(url, fetcher)])
    except HarvestError as exc:
        raise _harvest_failure(exc) from None
    if not found:
        raise click.ClickException(f"{url}: {skipped.get(url, 'no source found')}")
    expanded = []
    for source in found:
        if source.kind != "index" or is_trusted(source.entry_url, settings.trusted_indexes):
            expanded.append(source)
            continue
        origins = [o["entry_url"] for o in (source.options or {}).get("origins", ())]
        click.echo(f"{source.entry_url} is an index not in HARVEST_TRUSTED_INDEXES: "
                   f"registering its {len(origins)} original sources directly", err=True)
        allowed = [o for o in origins if domain_allowed(o, allow, deny)]
        skipped.update({o: "refused-domain: not allowed by the domain lists"
                        for o in origins if o not in allowed})
        expanded += discover(allowed, fetcher, depth=0, skipped=skipped)
    found = [s for s in expanded if s.kind != "index"
             or is_trusted(s.entry_url, settings.trusted_indexes)]
    if not found:
        raise click.ClickException(f"{url}: no source found")
    registry, refused = settings.registry(), 0
    for source in found:
        try:
            source = registry.add(source)
        except SourceConflict as exc:
            refused += 1
            click.echo(f"Not added {source.id}: {exc}", err=True)
            continue
        through = (f", trusted, {len(source.options.get('origins', ()))} original sources"
                   if source.kind == "index" else "")
        click.echo(f"Added {source.kind} {source.id}: {source.entry_url} "
                   f"(URI space {source.uri_space}{through})")
    for peer, why in skipped.items():
        click.echo(f"Skipped {peer}: {why}", err=True)
    if refused == len(found):
        raise click.ClickException("no source was added")


@harvest_group.command("list")
def harvest_list_command() -> None:
    """List the registered sources (with their last harvest when the store is free)."""
    from harvesters.errors import HarvestError
    from harvesters.run import last_runs, open_store

    settings = _harvest_settings()
    try:
        with open_store(settings) as store:
            runs = last_runs(store)
    except HarvestError:
        runs = {}  # e.g. a running `harvest watch` holds the embedded store
    rows = [("ID", "KIND", "ENTRY URL", "URI SPACE", "LAST RUN", "RESULT")]
    for s in sorted(settings.registry().all(), key=lambda s: s.id):
        end, ok = runs.get(s.id, (None, None))
        rows.append((s.id, s.kind, s.entry_url, s.uri_space, _when(end),
                     "-" if ok is None else ("ok" if ok else "failed")))
    _table(rows)


@harvest_group.command("remove")
@click.argument("source_id")
@click.option("--keep-data", is_flag=True, help="Keep the source's data in the index.")
def harvest_remove_command(source_id: str, keep_data: bool) -> None:
    """Unregister a source and drop its data from the index."""
    from harvesters.errors import HarvestError
    from harvesters.journal import Journal
    from harvesters.run import open_store

    settings = _harvest_settings()
    registry = settings.registry()
    if registry.get(source_id) is None:
        raise click.ClickException(f"no source {source_id} (see `atlas harvest list`)")
    try:
        if keep_data:
            registry.remove(source_id)
        else:
            with open_store(settings) as store, \
                    Journal(settings.journal_path) as journal:  # fails first if busy
                registry.remove(source_id)
                # The index's feed publishes the removal as deletions (harvesters/journal.py).
                journal.record(source_id, {}, sorted(store.graphs_of(source_id)))
                store.drop_source(source_id)
    except HarvestError as exc:
        raise _harvest_failure(exc) from None
    click.echo(f"Removed {source_id}" + (" (its data stay in the index)." if keep_data else "."))


@harvest_group.command("run")
@click.option("--source", "source_ids", multiple=True, metavar="ID",
              help="Harvest this source now, due or not (repeatable).")
@click.option("--all", "every", is_flag=True, help="Harvest every source now, due or not.")
@click.pass_context
def harvest_run_command(ctx: click.Context, source_ids: tuple[str, ...], every: bool) -> None:
    """Harvest the due sources concurrently; exit code 0 only if every one succeeded."""
    from harvesters.errors import HarvestError
    from harvesters.run import run_once

    from .harvest_output import logs_to_stderr, reporter

    out = reporter()
    with logs_to_stderr(json_lines=not sys.stdout.isatty()):
        try:
            reports = run_once(_harvest_settings(), source_ids=source_ids, every=every,
                               on_event=out, on_selected=out.selected)
        except HarvestError as exc:
            raise _harvest_failure(exc) from None
    out.close(reports)
    ctx.exit(0 if all(r.ok for r in reports) else 1)


@harvest_group.command("watch")
@click.option("--max-runs", type=click.IntRange(1), help="Stop after this many rounds.")
@click.pass_context
def harvest_watch_command(ctx: click.Context, max_runs: int | None) -> None:
    """Harvest each source whenever its polling interval has passed, until stopped."""
    import signal
    import threading

    from harvesters.errors import HarvestError
    from harvesters.run import watch

    from .harvest_output import logs_to_stderr, reporter

    stop, out = threading.Event(), reporter()
    # SIGTERM (systemd) and Ctrl-C finish the round under way, then stop.
    previous = {n: signal.signal(n, lambda *_: stop.set()) for n in (signal.SIGTERM,
                                                                      signal.SIGINT)}
    try:
        with logs_to_stderr(json_lines=not sys.stdout.isatty()):
            rounds = watch(_harvest_settings(), max_runs=max_runs, stop=stop, on_event=out)
    except HarvestError as exc:
        raise _harvest_failure(exc) from None
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    ctx.exit(0 if all(r.ok for reports in rounds[-1:] for r in reports) else 1)
