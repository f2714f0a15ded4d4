"""The `atlas` command: set up a node, manage tokens, import and export, run the demo.

Every command is a thin shell: the work happens in `service.db`, `service.auth`,
`service.importer`, `service.demo` and the exports registry; this module only
parses options and prints. It runs as the console script ``atlas`` or as
``python -m service.cli``.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import click
from flask import current_app
from flask.cli import AppGroup, FlaskGroup

from vocab import entity
from vocab.shapes import EMAIL_PATTERN

from . import create_app, db
from .config import CONFIG_FILE, DEFAULTS

__all__ = ["main", "validate_base_url", "write_config"]

main = FlaskGroup(name="atlas", create_app=create_app, add_default_commands=False,
                  help="Engagement Atlas: run a node of local civil-society actors.")

_AGS = re.compile(r"^[0-9]{8}$")
_WIKIDATA = re.compile(r"^Q[1-9][0-9]*$")


# --------------------------------------------------------------------------- init


def validate_base_url(value: str) -> str:
    """A node's public base URL: http(s), a host, no query or fragment; no trailing slash."""
    parts = urlsplit(value.strip())
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise click.BadParameter("the base URL must be http:// or https:// with a host")
    if parts.query or parts.fragment or "?" in value or "#" in value:
        raise click.BadParameter("the base URL must not have a query or a fragment")
    if parts.username or parts.password:
        raise click.BadParameter("the base URL must not contain a user name or password")
    return value.strip().rstrip("/")


def _check(pattern: re.Pattern | str, message: str):
    def callback(_ctx: click.Context, _param: click.Parameter, value: str | None):
        if value and not re.match(pattern, value.strip()):
            raise click.BadParameter(message)
        return value.strip() if value else value
    return callback


def _base_url_option(_ctx: click.Context, _param: click.Parameter, value: str | None):
    return validate_base_url(value) if value else value


def _license_option(_ctx: click.Context, _param: click.Parameter, value: str | None):
    if value and (urlsplit(value).scheme not in {"http", "https"} or " " in value):
        raise click.BadParameter("the licence must be an http(s) URL")
    return value


def write_config(path: Path, values: dict[str, Any]) -> None:
    """Write an instance file in TOML (keys as in `service.config.DEFAULTS`).

    Only strings, integers and booleans occur; a JSON string literal is a valid
    TOML basic string, so no TOML writer is needed.
    """
    lines = ["# Engagement Atlas instance configuration.",
             "# Keys and defaults: see the README; ATLAS_* environment variables override.", ""]
    for key, value in values.items():
        if isinstance(value, bool):
            literal = "true" if value else "false"
        elif isinstance(value, int):
            literal = str(value)
        else:
            literal = json.dumps(str(value), ensure_ascii=False)
        lines.append(f"{key} = {literal}")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def _interactive() -> bool:
    return sys.stdin.isatty()


def _ask(value: str | None, prompt: str, default: str | None = None, *,
         check=None) -> str | None:
    """The option's value; prompts for a missing one only on an interactive terminal
    (asking again while ``check`` refuses the answer)."""
    if value is not None or not _interactive():
        return value
    return click.prompt(prompt, default=default, value_proc=check)


@main.command("init")
@click.option("--name", help="Name of the node, e.g. 'Engagement-Atlas Dresden'.")
@click.option("--base-url", callback=_base_url_option,
              help="Public base URL; entity URIs start with it and never change.")
@click.option("--city", help="City (or region) the node covers.")
@click.option("--municipality-key", default="",
              callback=_check(_AGS, "the municipality key (AGS) has 8 digits"),
              help="Amtlicher Gemeindeschlüssel, 8 digits (e.g. 14612000).")
@click.option("--wikidata", default="",
              callback=_check(_WIKIDATA, "a Wikidata id looks like Q1731"),
              help="Wikidata item of the city, e.g. Q1731.")
@click.option("--license", "license_", default=DEFAULTS["LICENSE"], callback=_license_option,
              help="Licence URL of the published data.")
@click.option("--contact-email", default="",
              callback=_check(EMAIL_PATTERN, "not an e-mail address"),
              help="Contact address of the node's operators.")
@click.option("--force", is_flag=True, help="Overwrite an existing instance file.")
def init_command(name, base_url, city, municipality_key, wikidata, license_, contact_email,
                 force) -> None:
    """Write instance/atlas.toml and create the database schema."""
    path = Path(current_app.instance_path) / CONFIG_FILE
    if path.exists() and not force:
        raise click.ClickException(f"{path} exists; use --force to overwrite it")
    name = _ask(name, "Name of the node", DEFAULTS["NODE_NAME"]) or DEFAULTS["NODE_NAME"]
    base_url = _ask(base_url, "Public base URL (e.g. https://atlas.example.org)",
                    check=validate_base_url)
    city = _ask(city, "City", "") or ""
    if not base_url:
        raise click.UsageError("give --base-url: entity URIs are built from it")
    write_config(path, {
        "NODE_NAME": name, "BASE_URL": base_url, "CITY": city,
        "MUNICIPALITY_KEY": municipality_key, "WIKIDATA": wikidata,
        "LICENSE": license_, "CONTACT_EMAIL": contact_email,
    })
    click.echo(f"Wrote {path}")
    db.upgrade(current_app)
    click.echo("Database schema is up to date.")


# --------------------------------------------------------------------------- serve, db


@main.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True, type=int)
def serve_command(host: str, port: int) -> None:
    """Run the development server (production: gunicorn)."""
    from werkzeug.serving import run_simple

    click.echo("Development server. In production run: gunicorn -w 2 'service:create_app()'")
    run_simple(host, port, current_app._get_current_object(), threaded=True)


@main.group("db", cls=AppGroup)
def db_group() -> None:
    """Database schema."""


@db_group.command("upgrade")
def db_upgrade_command() -> None:
    """Bring the schema to the newest migration (safe to repeat)."""
    db.upgrade(current_app)
    click.echo("Database schema is up to date.")


# --------------------------------------------------------------------------- tokens


@main.group("token", cls=AppGroup)
def token_group() -> None:
    """API tokens (only their hashes are stored)."""


@token_group.command("create")
@click.option("--name", required=True, help="Who or what uses the token.")
@click.option("--role", type=click.Choice(["admin", "editor"]), default="editor",
              show_default=True)
def token_create_command(name: str, role: str) -> None:
    """Create a token and print it once."""
    from .auth import create_token

    row, plain = create_token(db.session(), name, role)
    click.echo(f"Created {row.role} token {row.id} ({row.name}). It is shown only this once:")
    click.echo(plain)


@token_group.command("list")
def token_list_command() -> None:
    """List tokens (never their secrets)."""
    from .auth import list_tokens

    rows = [("ID", "NAME", "ROLE", "CREATED", "LAST USED", "REVOKED")]
    for t in list_tokens(db.session()):
        rows.append((t.id, t.name, t.role, _when(t.created), _when(t.last_used),
                     _when(t.revoked)))
    _table(rows)


@token_group.command("revoke")
@click.argument("token_id")
def token_revoke_command(token_id: str) -> None:
    """Revoke a token by its id: it stops working at once."""
    from .auth import revoke_token
    from .errors import NotFound

    try:
        row = revoke_token(db.session(), token_id)
    except NotFound as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"Revoked token {row.id} ({row.name}).")


def _when(value) -> str:
    # Stored in UTC (SQLite hands it back without a zone).
    return value.strftime("%Y-%m-%d %H:%M UTC") if value else "-"


def _table(rows: list[tuple[str, ...]]) -> None:
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        click.echo("  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())


# --------------------------------------------------------------------------- import, export


def _kind(_ctx: click.Context, _param: click.Parameter, value: str) -> str:
    try:
        return entity(value).kind
    except KeyError:
        raise click.BadParameter(f"unknown kind {value!r}") from None


@main.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--kind", default="actors", show_default=True, callback=_kind,
              help="Entity collection of the file (actors, offers, events, ...).")
@click.option("--dry-run", is_flag=True, help="Show what would change; change nothing.")
@click.option("--skip-invalid", is_flag=True, help="Import the valid rows, report the others.")
@click.option("--delete-missing", is_flag=True,
              help="Delete entities of this kind that are not in the file.")
def import_command(file: Path, kind: str, dry_run: bool, skip_invalid: bool,
                   delete_missing: bool) -> None:
    """Import a CSV or XLSX spreadsheet: update matching entities, create the others."""
    from .errors import AtlasError
    from .importer import ImportFileError, apply_plan, plan_file

    session = db.session()
    try:
        plan = plan_file(session, kind, file, delete_missing=delete_missing,
                         max_bytes=current_app.config["MAX_IMPORT_BYTES"])
    except ImportFileError as exc:
        for error in exc.errors:
            click.echo(f"{file.name}: {error}", err=True)
        raise click.ClickException("the file cannot be imported; nothing was changed") from None
    for error in plan.errors:
        click.echo(f"{file.name}: {error}", err=True)
    if plan.errors and not skip_invalid:
        raise click.ClickException(f"{len(plan.errors)} error(s); nothing was changed "
                                   "(--skip-invalid imports the valid rows)")
    if plan.errors and delete_missing:
        click.echo("Rows were skipped, so --delete-missing deletes nothing.", err=True)
    would = "would " if dry_run else ""
    for item in plan.creates:
        click.echo(f"{would}create {item.entity_id} (row {item.row})")
    for item in plan.updates:
        click.echo(f"{would}change {item.entity_id} (row {item.row}): {', '.join(item.changed)}")
    for state in plan.deletes:
        click.echo(f"{would}delete {state.id}")
    if not dry_run:
        try:
            apply_plan(session, plan)
        except AtlasError as exc:  # an entity changed or an id was taken meanwhile
            raise click.ClickException(f"the import stopped part-way: {exc.detail}; the rows "
                                       "before it were written") from None
    skipped = plan.skipped_rows
    click.echo(f"{'Dry run, nothing changed: ' if dry_run else ''}{len(plan.creates)} created, "
               f"{len(plan.updates)} changed, {len(plan.unchanged)} unchanged, "
               f"{len(plan.deletes)} deleted, {len(skipped)} rows skipped"
               + (f" ({', '.join(map(str, skipped))})" if skipped else "") + ".")


@main.command("export")
@click.option("--format", "format_name", required=True,
              help="A registered format: name, extension or media type (csv, xlsx, jsonld...).")
@click.option("--kind", default="actors", show_default=True, callback=_kind)
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path),
              help="Write to this file instead of standard output.")
def export_command(format_name: str, kind: str, output: Path | None) -> None:
    """Export all live entities of one kind in any registered format."""
    import exports

    from .importer import live_entities

    fmt = exports.get(format_name)
    # "html" is the service's page renderer: it needs a request and page extras.
    if fmt is None or fmt.name == "html":
        names = ", ".join(f.name for f in exports.formats() if f.name != "html")
        raise click.BadParameter(f"cannot export {format_name!r}; formats: {names}",
                                 param_hint="--format")
    base = current_app.config["BASE_URL"]
    records = [state.record for state in live_entities(db.session(), kind)]
    payload = exports.Payload(kind=kind, records=records, base=base, single=False,
                              page_url=f"{base}/{entity(kind).collection}")
    body = fmt.render(payload)
    if output is None:
        click.echo(body, nl=False)  # bytes go to the binary stream unchanged
    else:
        output.write_bytes(body)
        click.echo(f"Wrote {len(payload.records)} {entity(kind).collection} to {output}",
                   err=True)


# --------------------------------------------------------------------------- demo


@main.command("demo", with_appcontext=False)
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5100, show_default=True, type=int,
              help="Port of the first node; the others follow consecutively, the index "
                   "takes the next free port after them.")
@click.option("--dir", "directory", type=click.Path(file_okay=False, path_type=Path),
              help="Keep the instance folders (nodes and index) here (default: a temporary "
                   "folder).")
@click.option("--check", is_flag=True,
              help="Start every node and the index, check that the nodes answer and the index "
                   "holds every demo entity, stop, and exit (for CI).")
def demo_command(host: str, port: int, directory: Path | None, check: bool) -> None:
    """Run the demo federation: one node per demo city on consecutive ports, and an index
    that harvests them (search, sources, SPARQL and feed URLs are printed)."""
    from .demo import DemoError, run_federation

    try:
        run_federation(host, port, directory, check=check, echo=click.echo)
    except DemoError as exc:
        raise click.ClickException(str(exc)) from None


# --------------------------------------------------------------------------- dumps


@main.group("dumps", cls=AppGroup)
def dumps_group() -> None:
    """Whole-dataset dump files (served at /dumps/, rebuilt when the data change)."""


@dumps_group.command("build")
def dumps_build_command() -> None:
    """Rebuild every dump file now (after a large import, or from cron on big nodes)."""
    from .dumps import build_all

    for dump, state, seconds in build_all(current_app):
        click.echo(f"{dump.name:32} {state.records:>8} entities {state.size:>12,} bytes "
                   f"{seconds:7.2f} s")


# --------------------------------------------------------------------------- peers


@main.group("peers", cls=AppGroup)
def peers_group() -> None:
    """Other nodes and indexes this node knows (listed at its entry URL)."""


@peers_group.command("add")
@click.argument("url")
@click.option("--kind", type=click.Choice(["node", "index"]), default="node", show_default=True,
              help="Another node, or an index that aggregates nodes.")
@click.option("--name", help="A name to show, e.g. 'Engagement-Atlas Leipzig'.")
def peers_add_command(url: str, kind: str, name: str | None) -> None:
    """Add a peer by its entry URL (http or https)."""
    from .errors import Conflict
    from .peers import add_peer

    try:
        peer = add_peer(db.session(), url, kind, name, own_base=current_app.config["BASE_URL"])
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="URL") from None
    except Conflict as exc:
        raise click.ClickException(exc.detail) from None
    click.echo(f"Added {peer.kind} {peer.id}: {peer.url}")


@peers_group.command("remove")
@click.argument("url_or_id")
def peers_remove_command(url_or_id: str) -> None:
    """Remove a peer by its URL or id."""
    from .errors import NotFound
    from .peers import remove_peer

    try:
        peer = remove_peer(db.session(), url_or_id)
    except NotFound as exc:
        raise click.ClickException(exc.detail) from None
    click.echo(f"Removed {peer.kind} {peer.id}: {peer.url}")


@peers_group.command("list")
def peers_list_command() -> None:
    """List the peers."""
    from .peers import known_peers

    rows = [("ID", "KIND", "URL", "NAME", "ADDED")]
    for peer in known_peers(db.session()):
        rows.append((str(peer.id), peer.kind, peer.url, peer.name or "-", _when(peer.added)))
    _table(rows)


# --------------------------------------------------------------------------- index, harvest
# Issue 5: the commands live in service/harvest_cli.py (the work in harvesters.run).

from .harvest_cli import harvest_group, index_group  # noqa: E402 - after main exists

main.add_command(index_group)
main.add_command(harvest_group)


if __name__ == "__main__":
    main()
