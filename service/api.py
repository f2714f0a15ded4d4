"""Write API under /api/v1: entities of every collection, API tokens, the OpenAPI document.

Reads are public; writes need a bearer token (`service.auth`). Changes are
guarded by entity tags (RFC 9110 §13.1.1): the ETag of an entity is its
version, and PUT, PATCH and DELETE must name the version they were made from.
Every error is raised as a `service.errors` exception and rendered as
problem+json by `service.problems`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

import orjson
from flask import Blueprint, Response, current_app, request
from marshmallow import RAISE, Schema, ValidationError, fields, validate

import vocab
from vocab.fields import ENTITY_BY_COLLECTION

from . import auth, db, openapi, store
from .errors import (
    BadRequest,
    InvalidInput,
    PreconditionFailed,
    PreconditionRequired,
    UnsupportedMediaType,
)

__all__ = ["MERGE_PATCH", "READ_ONLY", "bp", "error_pointers", "json_body", "merge_patch"]

bp = Blueprint("api", __name__, url_prefix="/api/v1")

MERGE_PATCH = openapi.MERGE_PATCH
JSON = openapi.JSON
# Set by the node, never by clients (vocab marks created/modified read-only; id is the URI's).
READ_ONLY = ("id", "created", "modified")
_LIST_PARAMS = {"page", "per_page", "q"}
# RFC 9110 §8.8.3: entity-tag = [ weak ] opaque-tag, opaque-tag = DQUOTE *etagc DQUOTE
_ETAG = re.compile(r'\s*(W/)?"([\x21\x23-\x7e\x80-\xff]*)"\s*')


# --------------------------------------------------------------------------- entities


def list_entities(kind: str) -> Response:
    """A page of live entities, filtered by facets and free text (RFC 8288 Link paging)."""
    keys = store.facet_keys(kind)
    unknown = sorted(set(request.args) - _LIST_PARAMS - set(keys))
    if unknown:
        raise BadRequest(f"unknown query parameter {unknown[0]!r}; allowed: "
                         f"{', '.join(sorted(_LIST_PARAMS | set(keys)))}")
    page_no = _int_arg("page", 1, 1, None)
    per_page = _int_arg("per_page", current_app.config["PAGE_SIZE"], 1,
                        current_app.config["MAX_PAGE_SIZE"])
    filters = {key: request.args.getlist(key) for key in keys if key in request.args}
    page = store.list_page(db.session(), kind, filters=filters, q=_single_arg("q"),
                           page=page_no, per_page=per_page)
    if page_no > page.pages:
        raise BadRequest(f"page {page_no} does not exist; the last page is {page.pages}")
    body = {"items": [s.record for s in page.items], "total": page.total,
            "page": page.page, "per_page": page.per_page, "pages": page.pages}
    response = _json(body)
    response.headers["Link"] = _page_links(page_no, page.pages, per_page)
    return response


@auth.require("editor")
def create_entity(kind: str) -> Response:
    """A new entity from a full record; the node assigns its id, URI and timestamps."""
    body = json_body(JSON)
    _refuse_read_only(body, None)
    record = _validated(kind, body)
    state = store.create(db.session(), kind, record)
    response = _entity_response(state, status=201)
    response.headers["Location"] = str(vocab.entity_uri(_base(), kind, state.id))
    return response


def get_entity(kind: str, entity_id: str) -> Response:
    """One entity; 304 when the client's copy is current, 410 with a tombstone when deleted."""
    state = store.get(db.session(), kind, entity_id)
    if _not_modified(state):
        response = Response(status=304)
        _set_validators(response, state)
        return response
    return _entity_response(state)


@auth.require("editor")
def replace_entity(kind: str, entity_id: str) -> Response:
    """Replace every field of an entity (PUT): what the body leaves out is removed."""
    state = _current_for_write(kind, entity_id)
    body = json_body(JSON)
    _refuse_read_only(body, state)
    record = _validated(kind, {k: v for k, v in body.items() if k not in READ_ONLY})
    return _entity_response(store.replace(db.session(), kind, entity_id, record,
                                          expected_version=state.version))


@auth.require("editor")
def patch_entity(kind: str, entity_id: str) -> Response:
    """Change some fields with a JSON Merge Patch (RFC 7396), then check the whole record."""
    state = _current_for_write(kind, entity_id)
    body = json_body(MERGE_PATCH, JSON)
    _refuse_read_only(body, state)
    merged = merge_patch(state.data, {k: v for k, v in body.items() if k not in READ_ONLY})
    record = _validated(kind, merged)
    return _entity_response(store.replace(db.session(), kind, entity_id, record,
                                          expected_version=state.version))


@auth.require("editor")
def delete_entity(kind: str, entity_id: str) -> Response:
    """Delete an entity: its URI answers 410 from now on and the feed announces it."""
    state = _current_for_write(kind, entity_id)
    store.delete_entity(db.session(), kind, entity_id, expected_version=state.version)
    return Response(status=204)


# --------------------------------------------------------------------------- tokens


class TokenRequest(Schema):
    """Body of POST /tokens."""

    class Meta:
        unknown = RAISE

    name = fields.String(required=True, validate=[
        validate.Length(min=1, max=200),
        validate.Regexp(r"\s*\S", error="Give the token a name.")])
    role = fields.String(required=True, validate=validate.OneOf(auth.ROLES))


@auth.require("admin")
def list_tokens() -> Response:
    """Every token with its role and use, never its secret or hash."""
    return _json({"items": [_token_info(t) for t in auth.list_tokens(db.session())]})


@auth.require("admin")
def create_token() -> Response:
    """A new token; the plain value is in this response only and cannot be recovered."""
    body = json_body(JSON)
    try:
        data = TokenRequest().load(body)
    except ValidationError as exc:
        raise InvalidInput("the token request is invalid",
                           errors=error_pointers(exc.normalized_messages())) from None
    row, plain = auth.create_token(db.session(), data["name"].strip(), data["role"])
    response = _json({**_token_info(row), "token": plain}, status=201)
    # RFC 9111 §5.2.2.5: a response carrying a secret must not be stored by caches.
    response.headers["Cache-Control"] = "no-store"
    return response


@auth.require("admin")
def revoke_token(token_id: str) -> Response:
    """Revoke a token: it stops working at once; the row stays for the record."""
    auth.revoke_token(db.session(), token_id)
    return Response(status=204)


def openapi_document() -> Response:
    """The OpenAPI 3.1 description of this API, generated from the vocabulary and URL map."""
    if "atlas_openapi" not in current_app.extensions:
        current_app.extensions["atlas_openapi"] = orjson.dumps(openapi.build(current_app))
    return Response(current_app.extensions["atlas_openapi"], mimetype=JSON)


def _register_routes() -> None:
    for spec in ENTITY_BY_COLLECTION.values():
        path, item, kind = f"/{spec.collection}", f"/{spec.collection}/<entity_id>", spec.kind
        for rule, view, method in ((path, list_entities, "GET"),
                                   (path, create_entity, "POST"),
                                   (item, get_entity, "GET"),
                                   (item, replace_entity, "PUT"),
                                   (item, patch_entity, "PATCH"),
                                   (item, delete_entity, "DELETE")):
            bp.add_url_rule(rule, f"{view.__name__}_{spec.collection}", view,
                            methods=[method], defaults={"kind": kind})
    bp.add_url_rule("/tokens", "list_tokens", list_tokens, methods=["GET"])
    bp.add_url_rule("/tokens", "create_token", create_token, methods=["POST"])
    bp.add_url_rule("/tokens/<token_id>", "revoke_token", revoke_token, methods=["DELETE"])
    bp.add_url_rule("/openapi.json", "openapi_document", openapi_document, methods=["GET"])


_register_routes()


# --------------------------------------------------------------------------- helpers


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7396 §2: apply a JSON Merge Patch (null removes a member, objects merge)."""
    if not isinstance(patch, dict):
        return patch
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def error_pointers(messages: Mapping[Any, Any], prefix: str = "") -> list[dict[str, str]]:
    """marshmallow's nested messages as one RFC 6901 JSON pointer and message per bad value.

    ``{"name": {"de": {"value": [...]}}}`` -> ``/name/de``; list indexes become
    segments; ``_schema`` (the object itself) adds no segment.
    """
    errors: list[dict[str, str]] = []
    for key, value in messages.items():
        path = prefix if key == "_schema" else f"{prefix}/{_escape(str(key))}"
        # fields.Dict reports a bad key or value of a language map under "key"/"value".
        if isinstance(value, dict) and value and set(value) <= {"key", "value"}:
            value = [m for part in value.values() for m in part]
        if isinstance(value, dict):
            errors.extend(error_pointers(value, path))
        else:
            detail = " ".join(value) if isinstance(value, list) else str(value)
            errors.append({"pointer": path, "detail": detail})
    return errors


def _escape(segment: str) -> str:
    # RFC 6901 §3: "~" is written "~0" and "/" is written "~1".
    return segment.replace("~", "~0").replace("/", "~1")


def json_body(*media_types: str) -> dict[str, Any]:
    """The request body as a JSON object; the one body parser of every JSON API view.

    415 for a media type not in ``media_types`` (with Accept-Patch when a merge
    patch would do), 400 for broken JSON, 422 for JSON that is not an object.
    """
    if request.mimetype not in media_types:
        error = UnsupportedMediaType(
            f"send the body as {' or '.join(media_types)}, not {request.mimetype or 'nothing'}")
        if MERGE_PATCH in media_types:
            error.headers["Accept-Patch"] = ", ".join(media_types)  # RFC 5789 §3.1
        raise error
    raw = request.get_data(cache=False)  # 413 above MAX_CONTENT_LENGTH (Flask)
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"the body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise InvalidInput("the body must be a JSON object",
                           errors=[{"pointer": "", "detail": "A JSON object is required."}])
    return body


def _validated(kind: str, data: Any) -> dict[str, Any]:
    try:
        return vocab.load_record(kind, data)
    except vocab.InvalidRecord as exc:
        errors = error_pointers(exc.errors)
        fields_ = ", ".join(e["pointer"] or "(the record)" for e in errors)
        raise InvalidInput(f"the {kind} is invalid: {fields_}", errors=errors) from None


def _refuse_read_only(body: Mapping[str, Any], state: store.EntityState | None) -> None:
    """422 for id/created/modified unless they repeat the current values (a GET echoed back)."""
    current = state.record if state else {}
    for key in READ_ONLY:
        if key in body and not _same_value(body[key], current.get(key)):
            raise InvalidInput(f"{key} is set by the node and cannot be changed",
                               errors=[{"pointer": f"/{key}",
                                        "detail": "Read-only; set by the node."}])


def _same_value(given: Any, current: Any) -> bool:
    if given is None or current is None or not isinstance(given, str):
        return False
    if given == current:
        return True
    try:
        return datetime.fromisoformat(given) == datetime.fromisoformat(current)
    except ValueError:
        return False


def _current_for_write(kind: str, entity_id: str) -> store.EntityState:
    """The entity a write applies to, after its preconditions (RFC 9110 §13.1.1).

    404/410 come first: preconditions are ignored when the request would fail anyway
    (§13.2.1). Then a missing If-Match is 428 (RFC 6585 §3) and a stale one 412.
    """
    state = store.get(db.session(), kind, entity_id)
    header = request.headers.get("If-Match")
    if header is None:
        raise PreconditionRequired(
            f'send If-Match with the ETag of the version you changed, e.g. "{state.version}"')
    tags = _entity_tags(header)
    # Strong comparison: weak tags never match, "*" matches any current entity.
    if tags != "*" and not any(not weak and tag == str(state.version) for weak, tag in tags):
        raise PreconditionFailed(f"the {kind} has changed: its ETag is now "
                                 f'"{state.version}"; fetch it again and redo the change')
    return state


def _entity_tags(header: str) -> str | list[tuple[bool, str]]:
    """If-Match / If-None-Match values: "*" or (weak, opaque tag) pairs; junk matches nothing."""
    if header.strip() == "*":
        return "*"
    tags = []
    for part in header.split(","):
        match = _ETAG.fullmatch(part)
        if match:
            tags.append((bool(match.group(1)), match.group(2)))
    return tags


def _not_modified(state: store.EntityState) -> bool:
    """RFC 9110 §13.1.2 (weak comparison); If-Modified-Since only without If-None-Match."""
    header = request.headers.get("If-None-Match")
    if header is not None:
        tags = _entity_tags(header)
        return tags == "*" or any(tag == str(state.version) for _weak, tag in tags)
    since = request.if_modified_since
    return since is not None and state.modified.replace(microsecond=0) <= since


def _entity_response(state: store.EntityState, status: int = 200) -> Response:
    response = _json(state.record, status=status)
    _set_validators(response, state)
    return response


def _set_validators(response: Response, state: store.EntityState) -> None:
    response.set_etag(str(state.version))
    response.last_modified = state.modified


def _json(body: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(body), status=status, mimetype=JSON)


def _base() -> str:
    return current_app.config["BASE_URL"]


def _single_arg(name: str) -> str | None:
    values = request.args.getlist(name)
    if len(values) > 1:
        raise BadRequest(f"give {name} once")
    return values[0] if values else None


def _int_arg(name: str, default: int, low: int, high: int | None) -> int:
    text = _single_arg(name)
    if text is None:
        return default
    if not text.isascii() or not text.isdigit() or not low <= int(text) <= (high or int(text)):
        bounds = f"from {low} to {high}" if high else f"{low} or more"
        raise BadRequest(f"{name} must be a whole number {bounds}, not {text!r}")
    return int(text)


def _page_links(page: int, pages: int, per_page: int) -> str:
    """RFC 8288 Link header for paging, keeping the request's filters.

    Links are built on BASE_URL, the node's public address, not on the Host the
    request came in with (a node usually sits behind a reverse proxy).
    """
    params = [(k, v) for k, v in request.args.items(multi=True) if k != "page"]

    def url(number: int) -> str:
        return f"{_base()}{request.path}?{urlencode([*params, ('page', number)])}"

    links = {"first": 1, "last": pages}
    if page > 1:
        links["prev"] = page - 1
    if page < pages:
        links["next"] = page + 1
    return ", ".join(f'<{url(n)}>; rel="{rel}"' for rel, n in links.items())


def _token_info(token: Any) -> dict[str, Any]:
    def stamp(value: datetime | None) -> str | None:
        if value is None:
            return None
        return store.iso(value if value.tzinfo else value.replace(tzinfo=UTC))

    return {"id": token.id, "name": token.name, "role": token.role,
            "created": stamp(token.created), "last_used": stamp(token.last_used),
            "revoked": stamp(token.revoked)}
