"""Peers: the table and its migration, `atlas peers`, and /api/v1/peers."""

from __future__ import annotations

import pytest
from sqlalchemy import inspect

from service import create_app, db
from service.cli import main
from service.peers import normalize_url
from tests.conftest import BASE
from tests.service.test_api import auth

PROBLEM = "application/problem+json"


def invoke(app, *args: str):
    return app.test_cli_runner().invoke(main, list(args))


# --------------------------------------------------------------------------- the table


@pytest.mark.parametrize("given, stored", [
    ("https://Atlas.Leipzig.EXAMPLE/", "https://atlas.leipzig.example"),
    ("  http://127.0.0.1:5101  ", "http://127.0.0.1:5101"),
    ("HTTPS://index.example/de/", "https://index.example/de"),
    ("http://[::1]:8080/", "http://[::1]:8080"),
])
def test_urls_are_normalised(given, stored):
    assert normalize_url(given) == stored


@pytest.mark.parametrize("bad", ["ftp://atlas.example", "javascript:alert(1)", "atlas.example",
                                 "https://user:pw@atlas.example", "https://atlas.example/?q=1",
                                 "https://atlas.example/#top", "https://atl as.example",
                                 "https://atlas.example:99999", "", "https://" + "a" * 1000])
def test_bad_urls_are_refused(bad):
    with pytest.raises(ValueError):
        normalize_url(bad)


def test_migration_adds_and_removes_the_table(tmp_path, monkeypatch):
    monkeypatch.setenv("ATLAS_INSTANCE", str(tmp_path / "instance"))
    app = create_app({"DATABASE_URL": f"sqlite:///{tmp_path}/m.sqlite3"})
    try:
        db.upgrade(app, "0001")
        assert "peers" not in inspect(db.engine(app)).get_table_names()
        assert not db.is_current(app)
        db.upgrade(app)
        columns = {c["name"] for c in inspect(db.engine(app)).get_columns("peers")}
        assert columns == {"id", "url", "kind", "name", "added"}
        assert db.is_current(app)
        from alembic import command

        from service.db import _alembic_config
        cfg = _alembic_config(db.engine(app))
        with db.engine(app).begin() as connection:
            cfg.attributes["connection"] = connection
            command.downgrade(cfg, "0001")
        assert "peers" not in inspect(db.engine(app)).get_table_names()
    finally:
        db.engine(app).dispose()


# --------------------------------------------------------------------------- CLI


def test_cli_adds_lists_and_removes_peers(app):
    result = invoke(app, "peers", "add", "https://Atlas.Leipzig.example/", "--name",
                    "Atlas Leipzig")
    assert result.exit_code == 0, result.output
    assert "Added node 1: https://atlas.leipzig.example" in result.output
    result = invoke(app, "peers", "add", "https://index.example", "--kind", "index")
    assert result.exit_code == 0, result.output
    listing = invoke(app, "peers", "list").output.splitlines()
    assert listing[0].split() == ["ID", "KIND", "URL", "NAME", "ADDED"]
    assert listing[1].split()[:5] == ["1", "node", "https://atlas.leipzig.example", "Atlas",
                                      "Leipzig"]
    assert listing[2].split()[:4] == ["2", "index", "https://index.example", "-"]
    assert invoke(app, "peers", "remove", "https://atlas.leipzig.example/").exit_code == 0
    assert invoke(app, "peers", "remove", "2").exit_code == 0
    assert len(invoke(app, "peers", "list").output.splitlines()) == 1


def test_cli_refuses_bad_duplicate_and_unknown_peers(app):
    bad = invoke(app, "peers", "add", "ftp://atlas.example")
    assert bad.exit_code == 2 and "http" in bad.output
    assert invoke(app, "peers", "add", "https://a.example", "--kind", "hub").exit_code == 2
    assert invoke(app, "peers", "add", "https://a.example").exit_code == 0
    duplicate = invoke(app, "peers", "add", "HTTPS://A.example/")
    assert duplicate.exit_code == 1 and "already a peer" in duplicate.output
    own = invoke(app, "peers", "add", BASE + "/")
    assert own.exit_code == 2 and "own URL" in own.output
    missing = invoke(app, "peers", "remove", "https://nowhere.example")
    assert missing.exit_code == 1 and "no peer" in missing.output
    assert invoke(app, "peers", "remove", "99").exit_code == 1


# --------------------------------------------------------------------------- API


def test_api_lists_publicly_and_writes_with_an_admin_token(client, admin_token):
    assert client.get("/api/v1/peers").get_json() == {"items": []}
    created = client.post("/api/v1/peers", json={"url": "https://atlas.leipzig.example/",
                                                 "kind": "node", "name": "Atlas Leipzig"},
                          headers=auth(admin_token))
    assert created.status_code == 201, created.get_data(as_text=True)
    peer = created.get_json()
    assert peer["url"] == "https://atlas.leipzig.example" and peer["kind"] == "node"
    assert peer["name"] == "Atlas Leipzig" and peer["added"].endswith("Z")
    index = client.post("/api/v1/peers", json={"url": "https://index.example"},
                        headers=auth(admin_token)).get_json()
    assert index["kind"] == "node" and index["name"] is None  # the defaults
    listing = client.get("/api/v1/peers")
    assert listing.status_code == 200 and listing.content_type == "application/json"
    assert [p["id"] for p in listing.get_json()["items"]] == [peer["id"], index["id"]]
    deleted = client.delete(f"/api/v1/peers/{peer['id']}", headers=auth(admin_token))
    assert deleted.status_code == 204
    assert [p["url"] for p in client.get("/api/v1/peers").get_json()["items"]] == [
        "https://index.example"]
    assert client.delete(f"/api/v1/peers/{peer['id']}",
                         headers=auth(admin_token)).status_code == 404


def test_api_writes_need_the_admin_role(client, editor_token, admin_token):
    body = {"url": "https://atlas.example"}
    anonymous = client.post("/api/v1/peers", json=body)
    assert anonymous.status_code == 401 and anonymous.content_type == PROBLEM
    assert "WWW-Authenticate" in anonymous.headers
    editor = client.post("/api/v1/peers", json=body, headers=auth(editor_token))
    assert editor.status_code == 403 and editor.content_type == PROBLEM
    peer = client.post("/api/v1/peers", json=body, headers=auth(admin_token)).get_json()
    assert client.delete(f"/api/v1/peers/{peer['id']}").status_code == 401
    assert client.delete(f"/api/v1/peers/{peer['id']}",
                         headers=auth(editor_token)).status_code == 403


@pytest.mark.parametrize("body, pointer", [
    ({"url": "ftp://atlas.example"}, "/url"),
    ({"url": "javascript:alert(1)//"}, "/url"),
    ({"url": "https://user:secret@atlas.example"}, "/url"),
    ({"url": "https://atlas.example", "kind": "hub"}, "/kind"),
    ({"url": "https://atlas.example", "name": ""}, "/name"),
    ({"url": "https://atlas.example", "colour": "red"}, "/colour"),
    ({"kind": "node"}, "/url"),
    ({"url": 42}, "/url"),
    ({"url": BASE}, "/url"),
])
def test_api_validation_errors_are_problem_details(client, admin_token, body, pointer):
    response = client.post("/api/v1/peers", json=body, headers=auth(admin_token))
    assert response.status_code == 422 and response.content_type == PROBLEM
    problem = response.get_json()
    assert problem["status"] == 422
    assert pointer in [e["pointer"] for e in problem["errors"]]
    assert client.get("/api/v1/peers").get_json() == {"items": []}


def test_api_duplicates_media_types_and_broken_json(client, admin_token):
    headers = auth(admin_token)
    assert client.post("/api/v1/peers", json={"url": "https://a.example"},
                       headers=headers).status_code == 201
    duplicate = client.post("/api/v1/peers", json={"url": "HTTPS://a.example/"},
                            headers=headers)
    assert duplicate.status_code == 409 and duplicate.content_type == PROBLEM
    form = client.post("/api/v1/peers", data="url=https://b.example",
                       content_type="application/x-www-form-urlencoded", headers=headers)
    assert form.status_code == 415
    broken = client.post("/api/v1/peers", data="{broken", content_type="application/json",
                         headers=headers)
    assert broken.status_code == 400 and broken.content_type == PROBLEM
    assert client.delete("/api/v1/peers/abc", headers=headers).status_code == 404
