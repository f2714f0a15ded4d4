"""Bearer tokens: who may write, who may manage tokens, and what the database keeps."""

from __future__ import annotations

import hashlib

import pytest
from sqlalchemy import text

from service import db
from tests.service.test_api import PROBLEM, SAMPLES, auth, create

WRITES = [("post", "/api/v1/actors"), ("put", "/api/v1/actors/{id}"),
          ("patch", "/api/v1/actors/{id}"), ("delete", "/api/v1/actors/{id}"),
          ("get", "/api/v1/tokens"), ("post", "/api/v1/tokens"),
          ("delete", "/api/v1/tokens/{token}")]


def assert_401(response) -> None:
    assert response.status_code == 401 and response.content_type == PROBLEM
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


def new_token(client, admin_token: str, role: str = "editor", name: str = "Redaktion") -> dict:
    response = client.post("/api/v1/tokens", json={"name": name, "role": role},
                           headers=auth(admin_token))
    assert response.status_code == 201, response.get_json()
    return response.get_json()


@pytest.mark.parametrize("header", [
    None, "", "Bearer", "Bearer ", "Basic dXNlcjpwYXNz", "Bearer atl_00000000_wrong",
    "Token {token}", "Bearer {token}x",
])
@pytest.mark.parametrize("method,path", WRITES)
def test_missing_or_wrong_token_is_401(client, editor_token, admin_token, header, method,
                                       path):
    record = create(client, editor_token)
    token_id = new_token(client, admin_token)["id"]
    headers = {"If-Match": '"1"'}
    if header is not None:
        headers["Authorization"] = header.format(token=editor_token)
    url = path.format(id=record["id"], token=token_id)
    assert_401(getattr(client, method)(url, json=SAMPLES["actors"], headers=headers))
    assert client.get(f"/api/v1/actors/{record['id']}").get_json() == record


def test_revoked_token_is_401(client, admin_token):
    issued = new_token(client, admin_token)
    assert create(client, issued["token"])
    response = client.delete(f"/api/v1/tokens/{issued['id']}", headers=auth(admin_token))
    assert response.status_code == 204
    assert_401(client.post("/api/v1/actors", json=SAMPLES["actors"],
                           headers=auth(issued["token"])))
    listed = {t["id"]: t for t in client.get("/api/v1/tokens",
                                             headers=auth(admin_token)).get_json()["items"]}
    assert listed[issued["id"]]["revoked"] is not None
    # Revoking again changes nothing; unknown ids are 404.
    assert client.delete(f"/api/v1/tokens/{issued['id']}",
                         headers=auth(admin_token)).status_code == 204
    missing = client.delete("/api/v1/tokens/nosuchid", headers=auth(admin_token))
    assert missing.status_code == 404 and missing.content_type == PROBLEM


def test_authentication_comes_before_lookups(client):
    # An anonymous client learns nothing about which ids exist.
    assert_401(client.put("/api/v1/actors/nosuchid", json=SAMPLES["actors"]))
    assert_401(client.delete("/api/v1/tokens/nosuchid"))


@pytest.mark.parametrize("method,path", [("get", "/api/v1/tokens"),
                                         ("post", "/api/v1/tokens"),
                                         ("delete", "/api/v1/tokens/{token}")])
def test_editors_cannot_manage_tokens(client, editor_token, admin_token, method, path):
    token_id = new_token(client, admin_token)["id"]
    before = client.get("/api/v1/tokens", headers=auth(admin_token)).get_json()
    response = getattr(client, method)(path.format(token=token_id),
                                       json={"name": "mine", "role": "admin"},
                                       headers=auth(editor_token))
    assert response.status_code == 403 and response.content_type == PROBLEM
    after = client.get("/api/v1/tokens", headers=auth(admin_token)).get_json()
    assert _without_last_used(after) == _without_last_used(before)


def test_admins_may_also_edit(client, admin_token):
    record = create(client, admin_token)
    response = client.delete(f"/api/v1/actors/{record['id']}",
                             headers=auth(admin_token, **{"If-Match": '"1"'}))
    assert response.status_code == 204


def test_token_lifecycle(client, admin_token):
    issued = new_token(client, admin_token, role="admin", name="Stadtverwaltung")
    assert set(issued) == {"id", "name", "role", "created", "last_used", "revoked", "token"}
    assert (issued["name"], issued["role"], issued["last_used"]) == ("Stadtverwaltung",
                                                                     "admin", None)
    assert issued["token"].startswith(f"atl_{issued['id']}_")
    # The new admin token works for token management at once.
    listing = client.get("/api/v1/tokens", headers=auth(issued["token"]))
    assert listing.status_code == 200
    items = listing.get_json()["items"]
    assert all(set(t) == {"id", "name", "role", "created", "last_used", "revoked"}
               for t in items)
    assert issued["token"] not in listing.get_data(as_text=True)
    mine = next(t for t in items if t["id"] == issued["id"])
    assert mine["last_used"] is not None and mine["revoked"] is None
    assert {t["name"] for t in items} == {"test admin", "Stadtverwaltung"}


def test_new_token_response_is_not_cached(client, admin_token):
    response = client.post("/api/v1/tokens", json={"name": "x", "role": "editor"},
                           headers=auth(admin_token))
    assert response.headers["Cache-Control"] == "no-store"


@pytest.mark.parametrize("body,pointer", [
    ({"name": "x", "role": "superuser"}, "/role"),
    ({"role": "editor"}, "/name"),
    ({"name": "", "role": "editor"}, "/name"),
    ({"name": "   ", "role": "editor"}, "/name"),
    ({"name": "x" * 201, "role": "editor"}, "/name"),
    ({"name": 5, "role": "editor"}, "/name"),
    ({"name": "x", "role": "editor", "secret": "chosen"}, "/secret"),
])
def test_invalid_token_requests(client, admin_token, body, pointer):
    before = client.get("/api/v1/tokens", headers=auth(admin_token)).get_json()["items"]
    response = client.post("/api/v1/tokens", json=body, headers=auth(admin_token))
    assert response.status_code == 422 and response.content_type == PROBLEM
    assert [e["pointer"] for e in response.get_json()["errors"]] == [pointer]
    after = client.get("/api/v1/tokens", headers=auth(admin_token)).get_json()["items"]
    assert [t["id"] for t in after] == [t["id"] for t in before]
    assert client.post("/api/v1/tokens", data="name=x", headers=auth(
        admin_token)).status_code == 415


def test_tokens_cannot_be_recovered_from_the_database(app, client, admin_token):
    issued = new_token(client, admin_token)
    # atl_<id>_<secret>: the secret (token_urlsafe) may itself contain "_"
    plain, secret = issued["token"], issued["token"].split("_", 2)[2]
    with app.app_context():
        rows = db.session().execute(text("SELECT * FROM tokens")).mappings().all()
    assert len(rows) == 2
    stored = [str(value) for row in rows for value in row.values() if value is not None]
    for value in stored:
        assert plain not in value and secret not in value and admin_token not in value
    row = next(r for r in rows if r["id"] == issued["id"])
    assert row["secret_hash"] != plain
    assert row["secret_hash"] == hashlib.sha256(plain.encode()).hexdigest()


def _without_last_used(listing: dict) -> list[dict]:
    return [{k: v for k, v in t.items() if k != "last_used"} for t in listing["items"]]
