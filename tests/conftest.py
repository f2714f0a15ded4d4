"""Shared fixtures: an app per database backend, a client, a CLI runner, tokens.

Service tests run against SQLite and, when ATLAS_TEST_DATABASE_URL is set (CI
sets it), against that PostgreSQL too. An unreachable PostgreSQL is an error,
never a skip.
"""

from __future__ import annotations

import os

import pytest
from sqlalchemy import create_engine, text

from service import create_app, db

PG_URL = os.environ.get("ATLAS_TEST_DATABASE_URL", "")
BACKENDS = ["sqlite"] + (["postgresql"] if PG_URL else [])
BASE = "http://node.test"


@pytest.fixture(scope="session")
def pg_schema():
    """Create the PostgreSQL schema once per run with the real migrations."""
    if not PG_URL:
        return None
    engine = create_engine(PG_URL.replace("postgresql://", "postgresql+psycopg://", 1))
    with engine.begin() as conn:
        conn.execute(text("DROP SCHEMA public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    engine.dispose()
    app = create_app({"TESTING": True, "DATABASE_URL": PG_URL})
    db.upgrade(app)
    db.engine(app).dispose()
    return PG_URL


@pytest.fixture(params=BACKENDS)
def app(request, tmp_path, monkeypatch):
    monkeypatch.setenv("ATLAS_INSTANCE", str(tmp_path / "instance"))
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path}/atlas.sqlite3"
    else:
        url = request.getfixturevalue("pg_schema")
    app = create_app({"TESTING": True, "DATABASE_URL": url, "BASE_URL": BASE,
                      "NODE_NAME": "Testknoten", "CITY": "Teststadt"})
    if request.param == "sqlite":
        db.upgrade(app)
    else:
        with db.engine(app).begin() as conn:
            conn.execute(text("TRUNCATE entities, facets, changes, tokens, peers RESTART IDENTITY "
                              "CASCADE"))
    yield app
    db.engine(app).dispose()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


def _token(app, role: str) -> str:
    from service.auth import create_token

    with app.app_context():
        _row, plain = create_token(db.session(), f"test {role}", role)
    return plain


@pytest.fixture
def admin_token(app) -> str:
    return _token(app, "admin")


@pytest.fixture
def editor_token(app) -> str:
    return _token(app, "editor")
