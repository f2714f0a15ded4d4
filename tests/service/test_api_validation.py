"""Bad input is refused with a clear problem+json error and changes nothing."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from service import db
from service.api import error_pointers
from service.models import Change
from tests.service.test_api import SAMPLES, auth, create

ACTOR = SAMPLES["actors"]
CONTACT = {"contactType": {"de": "Beratung"}}

# (case, collection, body, JSON pointer of the error)
INVALID = [
    ("name as number", "actors", {**ACTOR, "name": 5}, "/name"),
    ("name as plain string", "actors", {**ACTOR, "name": "Verein"}, "/name"),
    ("text value as number", "actors", {**ACTOR, "name": {"de": 5}}, "/name/de"),
    ("empty name map", "actors", {**ACTOR, "name": {}}, "/name"),
    ("missing required", "actors", {"actorTypes": ["verein"]}, "/name"),
    ("required list empty", "actors", {**ACTOR, "actorTypes": []}, "/actorTypes"),
    ("list as string", "actors", {**ACTOR, "actorTypes": "verein"}, "/actorTypes"),
    ("unknown field", "actors", {**ACTOR, "colour": "red"}, "/colour"),
    ("unknown nested field", "actors", {**ACTOR, "geo": {"latitude": 1, "longitude": 2,
                                                         "altitude": 3}}, "/geo/altitude"),
    ("oversized name", "actors", {**ACTOR, "name": {"de": "x" * 301}}, "/name/de"),
    ("oversized telephone", "actors", {**ACTOR, "telephone": "1" * 41}, "/telephone"),
    ("oversized description", "actors", {**ACTOR, "description": {"de": "x" * 10_001}},
     "/description/de"),
    ("blank string", "actors", {**ACTOR, "registerCourt": "   "}, "/registerCourt"),
    ("control character", "actors", {**ACTOR, "name": {"de": "a\x00b"}}, "/name/de"),
    ("javascript: URL", "actors", {**ACTOR, "url": "javascript:alert(1)"}, "/url"),
    ("data: URL", "actors", {**ACTOR, "url": "data:text/html,<script>alert(1)</script>"},
     "/url"),
    ("relative URL", "actors", {**ACTOR, "url": "/actors/x"}, "/url"),
    ("javascript: URL in contact", "actors",
     {**ACTOR, "contactPoints": [{**CONTACT, "url": "javascript:alert(1)"}]},
     "/contactPoints/0/url"),
    ("javascript: reference", "offers",
     {**SAMPLES["offers"], "provider": "javascript:alert(1)"}, "/provider"),
    ("data: reference in list", "projects",
     {**SAMPLES["projects"], "fundedBy": ["https://ok.example/a", "data:,x"]}, "/fundedBy/1"),
    ("bad email", "actors", {**ACTOR, "email": "not-an-address"}, "/email"),
    ("bad email in contact", "actors",
     {**ACTOR, "contactPoints": [CONTACT, {**CONTACT, "email": "a@b"}]},
     "/contactPoints/1/email"),
    ("latitude out of range", "actors", {**ACTOR, "geo": {"latitude": 123, "longitude": 13}},
     "/geo/latitude"),
    ("longitude out of range", "actors",
     {**ACTOR, "geo": {"latitude": 51, "longitude": -181}}, "/geo/longitude"),
    ("geo as number", "actors", {**ACTOR, "geo": 5}, "/geo"),
    ("unknown concept", "actors", {**ACTOR, "actorTypes": ["verein", "sekte"]},
     "/actorTypes/1"),
    ("concept of another scheme", "actors", {**ACTOR, "legalForm": "verein"}, "/legalForm"),
    ("bad language tag", "actors", {**ACTOR, "languages": ["de", "deutsch!"]},
     "/languages/1"),
    ("bad language key", "actors", {**ACTOR, "name": {"de_DE!": "x"}}, "/name/de_DE!"),
    ("pointer escaping", "actors", {**ACTOR, "name": {"a/b~c": "x"}}, "/name/a~1b~0c"),
    ("end before start", "events", {**SAMPLES["events"], "endDate": "2026-05-31T10:00:00Z"},
     "/endDate"),
    ("dissolved before founded", "actors",
     {**ACTOR, "foundingDate": "2020-01-01", "dissolutionDate": "2019-12-31"},
     "/dissolutionDate"),
    ("bad date", "actors", {**ACTOR, "foundingDate": "2020-02-30"}, "/foundingDate"),
    ("personName without consent", "actors",
     {**ACTOR, "contactPoints": [{**CONTACT, "personName": "Anna Muster"}]},
     "/contactPoints/0/personName"),
    ("personName with consent false", "actors",
     {**ACTOR, "contactPoints": [{**CONTACT, "personName": "Anna Muster",
                                  "consentRecorded": False}]},
     "/contactPoints/0/personName"),
    ("one partner twice", "cooperations",
     {**SAMPLES["cooperations"], "partners": ["https://a.example/x", "https://a.example/x"]},
     "/partners"),
    ("three partners", "cooperations",
     {**SAMPLES["cooperations"], "partners": ["https://a.example/1", "https://a.example/2",
                                             "https://a.example/3"]}, "/partners"),
    ("negative amount", "funding-programmes", {**SAMPLES["funding-programmes"], "amount": -1},
     "/amount"),
]


def snapshot(app, client, collection: str) -> tuple:
    """What a failed write must leave untouched: the collection and the change log."""
    with app.app_context():
        changes = db.session().scalar(select(func.count()).select_from(Change))
    return client.get(f"/api/v1/{collection}?per_page=500").get_json(), changes


def assert_problem(response, status: int, pointer: str | None = None) -> dict:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.content_type == "application/problem+json"
    problem = response.get_json()
    assert problem["status"] == status and problem["title"] and problem["detail"]
    if pointer is not None:
        assert pointer in [e["pointer"] for e in problem["errors"]], problem["errors"]
        assert all(e["detail"] for e in problem["errors"])
    return problem


@pytest.mark.parametrize("case,collection,body,pointer", INVALID, ids=[c[0] for c in INVALID])
def test_invalid_create_changes_nothing(app, client, editor_token, case, collection, body,
                                        pointer):
    existing = create(client, editor_token, collection)
    before = snapshot(app, client, collection)
    response = client.post(f"/api/v1/{collection}", json=body, headers=auth(editor_token))
    problem = assert_problem(response, 422, pointer)
    assert problem["type"].startswith("https://")
    assert snapshot(app, client, collection) == before
    assert client.get(f"/api/v1/{collection}/{existing['id']}").get_json() == existing


@pytest.mark.parametrize("case,collection,body,pointer", INVALID[::3], ids=[c[0] for c in
                                                                            INVALID[::3]])
def test_invalid_replace_changes_nothing(app, client, editor_token, case, collection, body,
                                         pointer):
    existing = create(client, editor_token, collection)
    before = snapshot(app, client, collection)
    response = client.put(f"/api/v1/{collection}/{existing['id']}", json=body,
                          headers=auth(editor_token, **{"If-Match": '"1"'}))
    assert_problem(response, 422, pointer)
    assert snapshot(app, client, collection) == before


@pytest.mark.parametrize("patch,pointer", [
    ({"name": None}, "/name"),
    ({"actorTypes": None}, "/actorTypes"),
    ({"geo": {"latitude": 123, "longitude": 13}}, "/geo/latitude"),
    ({"email": "nope"}, "/email"),
    ({"url": "javascript:alert(1)"}, "/url"),
    ({"colour": "red"}, "/colour"),
])
def test_invalid_merge_patch_changes_nothing(app, client, editor_token, patch, pointer):
    existing = create(client, editor_token)
    before = snapshot(app, client, "actors")
    response = client.patch(f"/api/v1/actors/{existing['id']}", json=patch,
                            headers=auth(editor_token, **{"If-Match": '"1"'}))
    assert_problem(response, 422, pointer)
    assert snapshot(app, client, "actors") == before


def test_several_errors_are_reported_together(client, editor_token):
    body = {"name": 5, "actorTypes": ["sekte"], "email": "x", "colour": 1,
            "geo": {"latitude": 123, "longitude": 13}}
    response = client.post("/api/v1/actors", json=body, headers=auth(editor_token))
    problem = assert_problem(response, 422)
    assert {e["pointer"] for e in problem["errors"]} == {
        "/name", "/actorTypes/0", "/email", "/colour", "/geo/latitude"}


@pytest.mark.parametrize("data,content_type,status", [
    ('{"name": ', "application/json", 400),
    ("{'name': 1}", "application/json", 400),
    ('{"name": NaN}', "application/json", 400),
    (b'{"name": "\xff"}', "application/json", 400),
    ("", "application/json", 400),
    ("[1, 2]", "application/json", 422),
    ('"just a string"', "application/json", 422),
    ("null", "application/json", 422),
    ('{"name": {"de": "x"}}', "text/plain", 415),
    ('{"name": {"de": "x"}}', "application/x-www-form-urlencoded", 415),
    ('{"name": {"de": "x"}}', None, 415),
])
def test_unreadable_bodies(app, client, editor_token, data, content_type, status):
    existing = create(client, editor_token)
    before = snapshot(app, client, "actors")
    for method, url in (("post", "/api/v1/actors"),
                        ("put", f"/api/v1/actors/{existing['id']}"),
                        ("patch", f"/api/v1/actors/{existing['id']}")):
        headers = auth(editor_token, **{"If-Match": '"1"'})
        if content_type:
            headers["Content-Type"] = content_type
        response = getattr(client, method)(url, data=data, headers=headers)
        problem = assert_problem(response, status, "" if status == 422 else None)
        if status == 422:
            assert problem["errors"] == [{"pointer": "", "detail": "A JSON object is required."}]
    assert snapshot(app, client, "actors") == before


def test_merge_patch_media_type_and_accept_patch(client, editor_token):
    existing = create(client, editor_token)
    url = f"/api/v1/actors/{existing['id']}"
    response = client.patch(url, data="{}", content_type="application/json-patch+json",
                            headers=auth(editor_token, **{"If-Match": '"1"'}))
    assert_problem(response, 415)
    assert "application/merge-patch+json" in response.headers["Accept-Patch"]
    # POST and PUT take whole records, never patches.
    response = client.put(url, data="{}", content_type="application/merge-patch+json",
                          headers=auth(editor_token, **{"If-Match": '"1"'}))
    assert_problem(response, 415)


def test_oversized_body_is_413_problem(app, client, editor_token):
    existing = create(client, editor_token)
    before = snapshot(app, client, "actors")
    app.config["MAX_CONTENT_LENGTH"] = 4096
    body = {**ACTOR, "description": {"de": "x" * 5000}}
    response = client.post("/api/v1/actors", json=body, headers=auth(editor_token))
    assert_problem(response, 413)
    response = client.patch(f"/api/v1/actors/{existing['id']}", json=body,
                            headers=auth(editor_token, **{"If-Match": '"1"'}))
    assert_problem(response, 413)
    assert snapshot(app, client, "actors") == before


def test_default_body_limit_applies(app, client, editor_token):
    limit = app.config["MAX_CONTENT_LENGTH"]
    body = b'{"name": {"de": "' + b"x" * limit + b'"}}'
    response = client.post("/api/v1/actors", data=body, content_type="application/json",
                           headers=auth(editor_token))
    assert_problem(response, 413)


def test_error_pointers_flatten_marshmallow_messages():
    messages = {
        "name": {"de": {"value": ["Too long."]}, "x!": {"key": ["Not a tag."]}},
        "contactPoints": {0: {"email": ["Bad."]}, 2: {"_schema": ["Invalid input type."]}},
        "_schema": ["A JSON object is required."],
        "a/b": ["Escaped."],
    }
    assert error_pointers(messages) == [
        {"pointer": "/name/de", "detail": "Too long."},
        {"pointer": "/name/x!", "detail": "Not a tag."},
        {"pointer": "/contactPoints/0/email", "detail": "Bad."},
        {"pointer": "/contactPoints/2", "detail": "Invalid input type."},
        {"pointer": "", "detail": "A JSON object is required."},
        {"pointer": "/a~1b", "detail": "Escaped."},
    ]
