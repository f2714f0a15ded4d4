"""Database engine and sessions of one app, and schema upgrades with Alembic.

`init_app` binds an engine to the app; `session()` gives the request's
session, closed at teardown. The schema is only ever changed by migrations
(`atlas db upgrade`), never by ``create_all``.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config as AlembicConfig
from flask import Flask, current_app, g
from sqlalchemy import Engine, create_engine, event, inspect
from sqlalchemy.orm import Session, sessionmaker

__all__ = ["engine", "init_app", "is_current", "session", "upgrade"]

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def _make_engine(url: str) -> Engine:
    if url.startswith("postgresql://"):
        # psycopg 3 is the driver we support (the [postgres] extra).
        url = "postgresql+psycopg://" + url[len("postgresql://"):]
    if url.startswith("sqlite"):
        eng = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

        @event.listens_for(eng, "connect")
        def _sqlite_pragmas(dbapi_conn, _record):
            cursor = dbapi_conn.cursor()
            # WAL lets readers proceed while one writer commits; foreign keys are off by default.
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.close()

        return eng
    return create_engine(url, pool_pre_ping=True)


def init_app(app: Flask) -> None:
    eng = _make_engine(app.config["DATABASE_URL"])
    app.extensions["atlas_db"] = sessionmaker(bind=eng, expire_on_commit=False)
    app.extensions["atlas_engine"] = eng
    app.teardown_appcontext(_close_session)


def engine(app: Flask | None = None) -> Engine:
    return (app or current_app).extensions["atlas_engine"]


def session() -> Session:
    """The session of the current app context (created on first use)."""
    if "atlas_session" not in g:
        g.atlas_session = current_app.extensions["atlas_db"]()
    return g.atlas_session


def _close_session(_exc: BaseException | None) -> None:
    s = g.pop("atlas_session", None)
    if s is not None:
        s.close()


def _alembic_config(eng: Engine) -> AlembicConfig:
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    # Alembic's config is an INI parser: a "%" (e.g. a socket path in the URL) must be doubled.
    url = eng.url.render_as_string(hide_password=False).replace("%", "%%")
    cfg.set_main_option("sqlalchemy.url", url)
    return cfg


def upgrade(app: Flask, revision: str = "head") -> None:
    """Bring the schema to ``revision`` (idempotent)."""
    eng = engine(app)
    cfg = _alembic_config(eng)
    with eng.begin() as connection:
        cfg.attributes["connection"] = connection
        command.upgrade(cfg, revision)


def is_current(app: Flask) -> bool:
    """True when the database has every table of the current schema."""
    tables = set(inspect(engine(app)).get_table_names())
    return {"entities", "facets", "changes", "tokens", "peers"} <= tables
