"""The write API: CRUD for every collection, paging, filters, conditional requests, the log."""

from __future__ import annotations

import re
from datetime import timedelta
from email.utils import format_datetime

import pytest
from sqlalchemy import select

from service import db
from service.models import Change
from tests.conftest import BASE

PROBLEM = "application/problem+json"
MERGE_PATCH = "application/merge-patch+json"

# The smallest valid record of each collection, and a valid full replacement of it.
SAMPLES: dict[str, dict] = {
    "actors": {"name": {"de": "Nachbarschaftshilfe Pieschen"}, "actorTypes": ["verein"]},
    "offers": {"name": {"de": "Sprachcafé"}, "offerTypes": ["course"],
               "provider": f"{BASE}/actors/abc234"},
    "events": {"name": {"de": "Stadtteilfest"}, "startDate": "2026-06-01T14:00:00Z"},
    "projects": {"name": {"de": "Code Door"}},
    "funding-programmes": {"name": {"de": "Bürgerfonds"}},
    # References may point to other nodes: only the URL rule applies.
    "cooperations": {"partners": [f"{BASE}/actors/abc234", "https://other.example/actors/x9"],
                     "levels": ["professional"]},
}
REPLACEMENTS: dict[str, dict] = {
    "actors": {"name": {"de": "Nachbarschaftshilfe Pieschen e. V."},
               "actorTypes": ["verein", "network"], "legalForm": "ev",
               "email": "info@pieschen.example", "geo": {"latitude": 51.08, "longitude": 13.72},
               "contactPoints": [{"contactType": {"de": "Beratung"},
                                  "email": "beratung@pieschen.example"}]},
    "offers": {"name": {"de": "Sprachcafé", "en": "Language café"}, "offerTypes": ["course"],
               "provider": f"{BASE}/actors/abc234", "availableLanguage": ["de", "ar"]},
    "events": {"name": {"de": "Stadtteilfest"}, "startDate": "2026-06-01T14:00:00Z",
               "endDate": "2026-06-01T20:00:00Z", "organizer": [f"{BASE}/actors/abc234"]},
    "projects": {"name": {"de": "Code Door"}, "engagementMode": "digital",
                 "status": "active"},
    "funding-programmes": {"name": {"de": "Bürgerfonds"}, "amount": 50000, "currency": "EUR",
                           "applicationStart": "2026-01-01", "applicationEnd": "2026-03-31"},
    "cooperations": {"partners": [f"{BASE}/actors/abc234", "https://other.example/actors/x9"],
                     "levels": ["normative", "professional"], "since": "2019-05-01"},
}
KIND = {"actors": "actor", "offers": "offer", "events": "event", "projects": "project",
        "funding-programmes": "funding-programme", "cooperations": "cooperation"}


def auth(token: str, **headers: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", **headers}


def create(client, token: str, collection: str = "actors", body: dict | None = None) -> dict:
    response = client.post(f"/api/v1/{collection}", json=body or SAMPLES[collection],
                           headers=auth(token))
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def fields_of(record: dict) -> dict:
    return {k: v for k, v in record.items() if k not in {"id", "created", "modified"}}


@pytest.mark.parametrize("collection", sorted(SAMPLES))
def test_crud_round_trip(client, editor_token, collection):
    url = f"/api/v1/{collection}"
    created = client.post(url, json=SAMPLES[collection], headers=auth(editor_token))
    assert created.status_code == 201
    record = created.get_json()
    entity_id = record["id"]
    assert created.headers["Location"] == f"{BASE}/{collection}/{entity_id}"
    assert created.headers["ETag"] == '"1"'
    assert created.content_type == "application/json"
    assert fields_of(record) == SAMPLES[collection]
    assert record["created"] == record["modified"]

    got = client.get(f"{url}/{entity_id}")
    assert got.status_code == 200 and got.get_json() == record
    assert got.headers["ETag"] == '"1"' and got.headers["Last-Modified"]
    assert [r["id"] for r in client.get(url).get_json()["items"]] == [entity_id]

    replaced = client.put(f"{url}/{entity_id}", json=REPLACEMENTS[collection],
                          headers=auth(editor_token, **{"If-Match": '"1"'}))
    assert replaced.status_code == 200, replaced.get_json()
    assert replaced.headers["ETag"] == '"2"'
    assert fields_of(replaced.get_json()) == fields_of(client.get(f"{url}/{entity_id}").json)
    assert replaced.get_json()["created"] == record["created"]

    patched = client.patch(f"{url}/{entity_id}", data='{"description": {"de": "Neu"}}',
                           content_type=MERGE_PATCH,
                           headers=auth(editor_token, **{"If-Match": '"2"'}))
    assert patched.status_code == 200, patched.get_json()
    assert patched.headers["ETag"] == '"3"'
    assert patched.get_json()["description"] == {"de": "Neu"}

    deleted = client.delete(f"{url}/{entity_id}", headers=auth(editor_token,
                                                               **{"If-Match": '"3"'}))
    assert deleted.status_code == 204 and deleted.data == b""
    gone = client.get(f"{url}/{entity_id}")
    assert gone.status_code == 410 and gone.content_type == PROBLEM
    assert gone.get_json()["tombstone"] == {"id": entity_id, "kind": KIND[collection],
                                            "deleted": gone.get_json()["tombstone"]["deleted"],
                                            "version": 4}
    assert client.get(url).get_json()["total"] == 0


def test_put_removes_what_the_body_leaves_out(client, editor_token):
    full = create(client, editor_token, body=REPLACEMENTS["actors"])
    response = client.put(f"/api/v1/actors/{full['id']}", json=SAMPLES["actors"],
                          headers=auth(editor_token, **{"If-Match": '"1"'}))
    assert fields_of(response.get_json()) == SAMPLES["actors"]


def test_put_may_echo_the_read_only_fields_unchanged(client, editor_token):
    record = create(client, editor_token)
    echoed = {**record, "name": {"de": "Umbenannt"}}
    response = client.put(f"/api/v1/actors/{record['id']}", json=echoed,
                          headers=auth(editor_token, **{"If-Match": '"1"'}))
    assert response.status_code == 200
    assert response.get_json()["id"] == record["id"]


def test_merge_patch_follows_rfc_7396(client, editor_token):
    record = create(client, editor_token, body={**REPLACEMENTS["actors"],
                                                "name": {"de": "Hilfe", "en": "Help"}})
    patch = {"name": {"en": None, "fr": "Aide"}, "email": None,
             "geo": {"latitude": 51.1}, "actorTypes": ["foundation"]}
    response = client.patch(f"/api/v1/actors/{record['id']}", json=patch,
                            headers=auth(editor_token, **{"If-Match": '"1"'}))
    assert response.status_code == 200, response.get_json()
    result = response.get_json()
    assert result["name"] == {"de": "Hilfe", "fr": "Aide"}  # objects merge, null removes
    assert "email" not in result
    assert result["geo"] == {"latitude": 51.1, "longitude": 13.72}
    assert result["actorTypes"] == ["foundation"]  # arrays are replaced whole
    assert result["contactPoints"] == record["contactPoints"]


def test_conditional_get(client, editor_token):
    record = create(client, editor_token)
    url = f"/api/v1/actors/{record['id']}"
    for header in ('"1"', 'W/"1"', '"7", "1"', "*"):
        response = client.get(url, headers={"If-None-Match": header})
        assert response.status_code == 304, header
        assert response.data == b"" and response.headers["ETag"] == '"1"'
    assert client.get(url, headers={"If-None-Match": '"2"'}).status_code == 200
    last_modified = client.get(url).headers["Last-Modified"]
    assert client.get(url, headers={"If-Modified-Since": last_modified}).status_code == 304
    earlier = client.get(url).last_modified - timedelta(seconds=5)
    assert client.get(url, headers={"If-Modified-Since": format_datetime(
        earlier, usegmt=True)}).status_code == 200


def test_second_writer_with_the_same_etag_gets_412(client, editor_token, admin_token):
    record = create(client, editor_token)
    url = f"/api/v1/actors/{record['id']}"
    etag_a = client.get(url).headers["ETag"]
    etag_b = client.get(url).headers["ETag"]
    first = client.patch(url, json={"name": {"de": "Erste Änderung"}},
                         headers=auth(editor_token, **{"If-Match": etag_a}))
    assert first.status_code == 200
    second = client.put(url, json={**SAMPLES["actors"], "name": {"de": "Zweite"}},
                        headers=auth(admin_token, **{"If-Match": etag_b}))
    assert second.status_code == 412 and second.content_type == PROBLEM
    assert '"2"' in second.get_json()["detail"]
    current = client.get(url)
    assert current.get_json()["name"] == {"de": "Erste Änderung"}
    assert current.headers["ETag"] == '"2"'
    stale_delete = client.delete(url, headers=auth(editor_token, **{"If-Match": etag_b}))
    assert stale_delete.status_code == 412
    assert client.get(url).status_code == 200


@pytest.mark.parametrize("method", ["put", "patch", "delete"])
def test_writes_without_if_match_get_428(client, editor_token, method):
    record = create(client, editor_token)
    url = f"/api/v1/actors/{record['id']}"
    response = getattr(client, method)(url, json={"name": {"de": "Ohne"}},
                                       headers=auth(editor_token))
    assert response.status_code == 428 and response.content_type == PROBLEM
    assert client.get(url).get_json() == record


def test_if_match_uses_strong_comparison(client, editor_token):
    record = create(client, editor_token)
    url = f"/api/v1/actors/{record['id']}"
    for stale in ('W/"1"', "1", '"01"', "garbage", '"2", W/"1"'):
        response = client.patch(url, json={"name": {"de": "X"}},
                                headers=auth(editor_token, **{"If-Match": stale}))
        assert response.status_code == 412, stale
    response = client.patch(url, json={"name": {"de": "X"}},
                            headers=auth(editor_token, **{"If-Match": '"5", "1"'}))
    assert response.status_code == 200
    response = client.patch(url, json={"name": {"de": "Y"}},
                            headers=auth(editor_token, **{"If-Match": "*"}))
    assert response.status_code == 200 and response.headers["ETag"] == '"3"'


@pytest.mark.parametrize("method,body,pointer", [
    ("post", {"id": "mine"}, "/id"),
    ("post", {"created": "2020-01-01T00:00:00Z"}, "/created"),
    ("put", {"id": "other123"}, "/id"),
    ("put", {"modified": "2001-01-01T00:00:00Z"}, "/modified"),
    ("patch", {"created": "2001-01-01T00:00:00Z"}, "/created"),
    ("patch", {"id": None}, "/id"),
])
def test_read_only_fields_cannot_change(client, editor_token, method, body, pointer):
    record = create(client, editor_token)
    url = "/api/v1/actors" + ("" if method == "post" else f"/{record['id']}")
    response = getattr(client, method)(url, json={**SAMPLES["actors"], **body},
                                       headers=auth(editor_token, **{"If-Match": '"1"'}))
    assert response.status_code == 422 and response.content_type == PROBLEM
    assert [e["pointer"] for e in response.get_json()["errors"]] == [pointer]
    assert client.get(f"/api/v1/actors/{record['id']}").get_json() == record
    assert client.get("/api/v1/actors").get_json()["total"] == 1


def test_unknown_and_deleted_entities(client, editor_token):
    missing = client.get("/api/v1/actors/nosuchid")
    assert missing.status_code == 404 and missing.content_type == PROBLEM
    headers = auth(editor_token, **{"If-Match": "*"})
    assert client.put("/api/v1/actors/nosuchid", json=SAMPLES["actors"],
                      headers=headers).status_code == 404
    record = create(client, editor_token)
    url = f"/api/v1/actors/{record['id']}"
    assert client.delete(url, headers=headers).status_code == 204
    for method in ("put", "patch", "delete"):
        response = getattr(client, method)(url, json=SAMPLES["actors"], headers=headers)
        assert response.status_code == 410 and "tombstone" in response.get_json()
    # An id of one collection is not an entity of another.
    other = create(client, editor_token, "projects")
    assert client.get(f"/api/v1/actors/{other['id']}").status_code == 404


def test_change_log_records_create_update_delete_in_order(app, client, editor_token):
    record = create(client, editor_token)
    url = f"/api/v1/actors/{record['id']}"
    client.patch(url, json={"name": {"de": "Neu"}},
                 headers=auth(editor_token, **{"If-Match": '"1"'}))
    client.delete(url, headers=auth(editor_token, **{"If-Match": '"2"'}))
    with app.app_context():
        changes = db.session().scalars(
            select(Change).where(Change.entity_id == record["id"]).order_by(Change.seq)).all()
    assert [c.op for c in changes] == ["create", "update", "delete"]
    assert [c.version for c in changes] == [1, 2, 3]
    assert changes[0].seq < changes[1].seq < changes[2].seq
    assert changes[0].data == record
    assert changes[1].data["name"] == {"de": "Neu"} and changes[2].data is None


def test_pagination_and_link_headers(client, editor_token):
    ids = {create(client, editor_token, body={**SAMPLES["actors"], "name": {"de": f"A{i}"}})
           ["id"] for i in range(5)}
    first = client.get("/api/v1/actors?per_page=2&actorTypes=verein")
    body = first.get_json()
    assert (body["total"], body["page"], body["per_page"], body["pages"]) == (5, 1, 2, 3)
    links = _links(first.headers["Link"])
    assert set(links) == {"first", "next", "last"}
    assert all(url.startswith(f"{BASE}/api/v1/actors?") for url in links.values())
    assert "actorTypes=verein" in links["next"] and "per_page=2" in links["next"]
    middle = _links(client.get("/api/v1/actors?per_page=2&page=2").headers["Link"])
    assert set(middle) == {"first", "prev", "next", "last"}
    assert middle["prev"].endswith("page=1") and middle["last"].endswith("page=3")
    seen, url = [], links["first"]
    while url:
        response = client.get(url)
        seen += [r["id"] for r in response.get_json()["items"]]
        url = _links(response.headers["Link"]).get("next")
    assert sorted(seen) == sorted(ids)
    assert client.get("/api/v1/actors").get_json()["per_page"] == 50


def test_per_page_is_capped_by_config(app, client):
    app.config["MAX_PAGE_SIZE"] = 10
    assert client.get("/api/v1/actors?per_page=10").status_code == 200
    assert client.get("/api/v1/actors?per_page=11").status_code == 400


@pytest.mark.parametrize("query", [
    "page=0", "page=-1", "page=abc", "page=1.5", "page=2", "per_page=0", "per_page=501",
    "page=1&page=2", "colour=red", "offerTypes=course", "Q=x",
])
def test_list_rejects_bad_parameters(client, query):
    response = client.get(f"/api/v1/actors?{query}")
    assert response.status_code == 400, query
    assert response.content_type == PROBLEM and response.get_json()["detail"]


def test_list_filters_and_free_text(client, editor_token):
    def actor(name, types, **extra):
        return create(client, editor_token, body={"name": {"de": name}, "actorTypes": types,
                                                   **extra})["id"]

    verein = actor("Sportverein Johannstadt", ["verein"], languages=["de", "en"])
    stiftung = actor("Bürgerstiftung Dresden", ["foundation"], languages=["de"],
                     description={"de": "Fördert Vereine im Stadtteil"})
    both = actor("Netzwerk Engagement", ["verein", "network"], fieldsOfAction=["sport"])

    def ids(query):
        response = client.get(f"/api/v1/actors?{query}")
        assert response.status_code == 200, response.get_json()
        return {r["id"] for r in response.get_json()["items"]}

    assert ids("actorTypes=verein") == {verein, both}
    assert ids("actorTypes=verein&actorTypes=foundation") == {verein, stiftung, both}
    assert ids("actorTypes=verein&languages=en") == {verein}
    assert ids("fieldsOfAction=sport") == {both}
    assert ids("q=verein") == {verein, stiftung}  # name or description, any case
    assert ids("q=stadtteil+dresden") == {stiftung}
    assert ids("q=nichts") == set()
    assert ids("actorTypes=") == {verein, stiftung, both}


def test_references_may_point_to_other_nodes(client, editor_token):
    body = {**SAMPLES["offers"], "provider": "https://andere-stadt.example/actors/q1"}
    record = create(client, editor_token, "offers", body)
    assert record["provider"] == "https://andere-stadt.example/actors/q1"
    url = "/api/v1/offers?provider=https://andere-stadt.example/actors/q1"
    assert client.get(url).get_json()["total"] == 1


def test_reads_need_no_token_and_answer_json_to_browsers(client, editor_token):
    record = create(client, editor_token)
    html = {"Accept": "text/html"}
    assert client.get("/api/v1/actors", headers=html).content_type == "application/json"
    assert client.get(f"/api/v1/actors/{record['id']}", headers=html).status_code == 200
    assert client.get("/api/v1/actors/nope", headers=html).content_type == PROBLEM


def test_unsupported_method_is_a_problem(client):
    response = client.post("/api/v1/actors/abc")
    assert response.status_code == 405 and response.content_type == PROBLEM
    assert "PUT" in response.headers["Allow"]


def _links(header: str) -> dict[str, str]:
    return {rel: url for url, rel in re.findall(r'<([^>]+)>; rel="(\w+)"', header)}
