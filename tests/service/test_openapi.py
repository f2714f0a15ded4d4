"""The OpenAPI document: valid, complete against the URL map, and true to the implementation."""

from __future__ import annotations

import jsonschema
import pytest
from openapi_spec_validator import validate
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from service.openapi import OPERATIONS, schema_name
from tests.conftest import BASE
from tests.service.test_api import REPLACEMENTS, SAMPLES, auth, create
from vocab.fields import ENTITIES, ENTITY_BY_COLLECTION
from vocab.mapping import iter_fields
from vocab.terms import notations

METHODS = {"get", "put", "post", "delete", "patch", "options", "head", "trace"}


@pytest.fixture
def spec(client):
    response = client.get("/api/v1/openapi.json")
    assert response.status_code == 200 and response.content_type == "application/json"
    return response.get_json()


def schema_validator(spec: dict, name: str) -> jsonschema.Validator:
    """A JSON Schema validator for a component of the document (its $refs resolved)."""
    registry = Registry().with_resource(
        "urn:atlas:openapi", Resource.from_contents(spec, default_specification=DRAFT202012))
    return jsonschema.Draft202012Validator(
        {"$ref": f"urn:atlas:openapi#/components/schemas/{name}"}, registry=registry,
        format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)


def test_document_is_valid_openapi_3_1(spec):
    validate(spec)
    assert spec["openapi"].startswith("3.1")
    assert spec["servers"] == [{"url": BASE}]


def test_every_api_route_is_documented_and_nothing_else(app, spec):
    routes = set()
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith("/api/v1"):
            path = rule.rule.replace("<", "{").replace(">", "}")
            routes |= {(path, m.lower()) for m in rule.methods - {"HEAD", "OPTIONS"}}
    documented = {(path, method) for path, item in spec["paths"].items()
                  for method in item if method in METHODS}
    assert documented == routes
    assert {p for p, _m in routes} >= {f"/api/v1/{c}" for c in ENTITY_BY_COLLECTION}


def test_operations_document_security_and_preconditions(spec):
    for path, item in spec["paths"].items():
        for method, op in item.items():
            statuses = set(op["responses"])
            assert ("security" in op) == ("401" in statuses), (path, method)
            if "412" in statuses:
                refs = [p.get("$ref", "") for p in op["parameters"]]
                assert refs.count("#/components/parameters/If-Match") == 1
                assert "428" in statuses
            for status, response in op["responses"].items():
                if int(status) >= 400:
                    assert response["$ref"].startswith("#/components/responses/")
    problem_types = {next(iter(r["content"])) for r in spec["components"]["responses"].values()}
    assert problem_types == {"application/problem+json"}
    assert spec["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"


def test_record_schemas_follow_the_vocabulary(app, spec):
    schemas = spec["components"]["schemas"]
    for kind, entity in ENTITIES.items():
        schema = schemas[schema_name(kind)]
        assert schema["additionalProperties"] is False
        assert set(schema["properties"]) == {"id"} | {f.key for f in entity.fields}
        assert set(schema["required"]) == {f.key for f in entity.fields if f.required}
        for key in ("id", "created", "modified"):
            assert schema["properties"][key]["readOnly"] is True
    actor = schemas["Actor"]["properties"]
    assert actor["actorTypes"]["items"]["enum"] == sorted(notations("actor-type"))
    assert actor["url"]["format"] == "uri" and actor["email"]["format"] == "email"
    assert actor["foundingDate"]["format"] == "date"
    assert actor["name"]["propertyNames"]["pattern"].startswith("^[a-zA-Z]{2,3}")
    assert actor["name"]["additionalProperties"]["maxLength"] == 300
    assert actor["geo"]["properties"]["latitude"] == {"type": "number", "minimum": -90,
                                                      "maximum": 90}
    contact = actor["contactPoints"]["items"]
    assert contact["additionalProperties"] is False and contact["required"] == ["contactType"]
    assert schemas["Event"]["properties"]["startDate"]["format"] == "date-time"
    per_page = spec["components"]["parameters"]["per_page"]["schema"]
    assert per_page["maximum"] == app.config["MAX_PAGE_SIZE"]
    assert per_page["default"] == app.config["PAGE_SIZE"]
    nested_keys = {f.key for f in iter_fields(ENTITIES["actor"].fields)}
    assert {"latitude", "personName", "dayOfWeek"} <= nested_keys


@pytest.mark.parametrize("collection", sorted(SAMPLES))
def test_stored_records_match_their_documented_schema(client, editor_token, spec, collection):
    name = schema_name(ENTITY_BY_COLLECTION[collection].kind)
    for body in (SAMPLES[collection], REPLACEMENTS[collection]):
        record = create(client, editor_token, collection, body)
        schema_validator(spec, name).validate(record)
        listing = client.get(f"/api/v1/{collection}").get_json()
        schema_validator(spec, name + "Page").validate(listing)
    patch = {"name": {"en": None}, "description": None} if collection != "cooperations" \
        else {"description": None, "since": "2020-01-01"}
    schema_validator(spec, name + "Patch").validate(patch)


def test_documented_schema_rejects_what_the_api_rejects(spec):
    actor = schema_validator(spec, "Actor")
    for bad in ({"name": 5, "actorTypes": ["verein"]},
                {"name": {"de": "x"}, "actorTypes": ["sekte"]},
                {"name": {"de": "x"}, "actorTypes": ["verein"], "colour": "red"},
                {"name": {"de": "x"}, "actorTypes": ["verein"], "url": "javascript:alert(1)"},
                {"name": {"de": "x"}, "actorTypes": ["verein"],
                 "geo": {"latitude": 123, "longitude": 1}},
                {"name": {"de!": "x"}, "actorTypes": ["verein"]},
                {"actorTypes": ["verein"]}):
        assert not actor.is_valid(bad), bad


def test_every_documented_status_happens(app, client, spec, editor_token, admin_token):
    """Provoke each documented status of the actor and token operations by a real request."""
    live = create(client, editor_token)
    dead = create(client, editor_token)
    client.delete(f"/api/v1/actors/{dead['id']}", headers=auth(editor_token,
                                                               **{"If-Match": '"1"'}))
    token_id = client.post("/api/v1/tokens", json={"name": "t", "role": "editor"},
                           headers=auth(admin_token)).get_json()["id"]
    huge = {**SAMPLES["actors"], "description": {"de": "x" * (app.config["MAX_CONTENT_LENGTH"])}}
    ed, adm = auth(editor_token), auth(admin_token)
    checked = set()
    for path, item in spec["paths"].items():
        if not (path.startswith("/api/v1/actors") or path.startswith("/api/v1/tokens")
                or path.startswith("/api/v1/peers") or path.endswith("openapi.json")):
            continue
        for method, op in item.items():
            view = _view(op["operationId"])
            for status in op["responses"]:
                fresh = create(client, editor_token)
                peer = client.post("/api/v1/peers", json={"url": f"https://{fresh['id']}.example"},
                                   headers=auth(admin_token)).get_json()
                url = path.format(entity_id=fresh["id"], token_id=token_id, peer_id=peer["id"])
                request = _provoke(view, int(status), url, live=live, dead=dead,
                                   editor=ed, admin=adm, huge=huge)
                response = getattr(client, method)(url if "url" not in request else
                                                   request.pop("url"), **request)
                assert response.status_code == int(status), (method, path, status,
                                                             response.get_data(as_text=True))
                documented = op["responses"][status]
                if "$ref" in documented:
                    assert response.content_type == "application/problem+json"
                elif "content" in documented:
                    assert response.content_type == next(iter(documented["content"]))
                checked.add((view, int(status)))
    assert {v for v, _s in checked} == set(OPERATIONS)


def _view(operation_id: str) -> str:
    return next(v for v in OPERATIONS if operation_id.startswith(v))


def _provoke(view: str, status: int, url: str, *, live, dead, editor, admin, huge) -> dict:
    """Keyword arguments for a test-client request that should answer ``status``."""
    token_view = view in {"list_tokens", "create_token", "revoke_token"}
    peer_view = view in {"list_peers", "create_peer", "delete_peer"}
    good = {**(admin if token_view or peer_view else editor), "If-Match": '"1"'}
    body = {"name": "Neu", "role": "editor"} if token_view else SAMPLES["actors"]
    if peer_view:
        body = {"url": "https://peer.example", "kind": "index"}
    item = url.rsplit("/", 1)[0]
    if status in {200, 201, 204}:
        return {"json": body, "headers": good}
    if status == 304:
        return {"headers": {"If-None-Match": '"1"'}}
    if status == 400:
        if view == "list_entities":
            return {"url": url + "?page=0"}
        return {"data": "{broken", "content_type": "application/json", "headers": good}
    if status == 401:
        return {"json": body}
    if status == 403:
        return {"json": body, "headers": editor}
    if status == 409:
        return {"url": "/api/v1/peers", "json": {"url": "https://peer.example"},
                "headers": good}
    if status == 404:
        return {"json": body, "headers": good, "url": item + "/nosuchid"}
    if status == 410:
        return {"json": body, "headers": good, "url": f"{item}/{dead['id']}"}
    if status == 412:
        return {"json": body, "headers": {**good, "If-Match": '"9"'}}
    if status == 413:
        return {"json": huge, "headers": good}
    if status == 415:
        return {"data": "name=x", "content_type": "text/plain", "headers": good}
    if status == 422:
        return {"json": {"colour": "red"}, "headers": good}
    if status == 428:
        return {"json": body, "headers": editor}
    raise AssertionError(f"no way to provoke {status} for {view}: document it here")
