"""The OpenAPI 3.1 document of /api/v1, generated from what the implementation uses.

Paths and methods come from the app's URL map, record schemas from the entity
table (`vocab.fields`) and the concept schemes, limits from the configuration.
A field added to the vocabulary or a route added to `service.api` therefore
appears here without editing this module; only a new kind of operation does.
"""

from __future__ import annotations

import re
from typing import Any

from flask import Flask

from vocab.fields import ENTITIES, WEEKDAYS, Field
from vocab.shapes import BCP47_PATTERN, EMAIL_PATTERN
from vocab.terms import notations

from . import __version__, auth, store

__all__ = ["API_PREFIX", "MERGE_PATCH", "OPERATIONS", "build", "field_schema", "schema_name"]

API_PREFIX = "/api/v1"
JSON = "application/json"
MERGE_PATCH = "application/merge-patch+json"  # RFC 7396 §4
PROBLEM = "application/problem+json"
_MAX_ITEMS = 100  # the cap vocab.schemas puts on lists and language maps
_SKIPPED_METHODS = {"HEAD", "OPTIONS"}

# view function -> (summary, role needed or None, statuses it can answer besides success).
OPERATIONS: dict[str, tuple[str, str | None, tuple[int, ...]]] = {
    "list_entities": ("List {collection}", None, (200, 400)),
    "create_entity": ("Create {a_kind}", "editor", (201, 400, 401, 413, 415, 422)),
    "get_entity": ("Get {a_kind}", None, (200, 304, 404, 410)),
    "replace_entity": ("Replace {a_kind}", "editor",
                       (200, 400, 401, 404, 410, 412, 413, 415, 422, 428)),
    "patch_entity": ("Change {a_kind} with a JSON Merge Patch (RFC 7396)", "editor",
                     (200, 400, 401, 404, 410, 412, 413, 415, 422, 428)),
    "delete_entity": ("Delete {a_kind} (its URI answers 410 Gone)", "editor",
                      (204, 401, 404, 410, 412, 428)),
    "list_tokens": ("List API tokens (never their secrets)", "admin", (200, 401, 403)),
    "create_token": ("Create an API token (shown once)", "admin",
                     (201, 400, 401, 403, 413, 415, 422)),
    "revoke_token": ("Revoke an API token", "admin", (204, 401, 403, 404)),
    "openapi_document": ("This OpenAPI document", None, (200,)),
    "list_peers": ("List the peers: other nodes and indexes this node knows", None, (200,)),
    "create_peer": ("Add a peer", "admin", (201, 400, 401, 403, 409, 413, 415, 422)),
    "delete_peer": ("Remove a peer", "admin", (204, 401, 403, 404)),
}
_TAGS = {"openapi_document": "meta", "list_peers": "peers", "create_peer": "peers",
         "delete_peer": "peers"}

# Problem responses shared by every operation: status -> (component name, schema, text).
_PROBLEMS: dict[int, tuple[str, str, str]] = {
    400: ("BadRequest", "Problem",
          "Malformed request: broken JSON, an unknown query parameter or a bad page number."),
    401: ("Unauthorized", "Problem", "No token, or an unknown or revoked one."),
    403: ("Forbidden", "Problem", "The token's role does not allow this."),
    404: ("NotFound", "Problem", "Nothing with this id."),
    409: ("Conflict", "Problem", "It exists already (a peer with this URL)."),
    410: ("Gone", "GoneProblem", "The entity was deleted; the tombstone says when."),
    412: ("PreconditionFailed", "Problem",
          "If-Match names an older version: fetch the entity again (RFC 9110 §13.1.1)."),
    413: ("ContentTooLarge", "Problem", "The body is larger than the node accepts."),
    415: ("UnsupportedMediaType", "Problem", "The body is not JSON."),
    422: ("InvalidInput", "ValidationProblem",
          "The body breaks the rules; each error has a JSON Pointer (RFC 6901) to its value."),
    428: ("PreconditionRequired", "Problem",
          "If-Match is missing: send the ETag of the version you changed (RFC 6585 §3)."),
}


def schema_name(kind: str) -> str:
    """Component name of a kind's record schema: funding-programme -> FundingProgramme."""
    return "".join(part.capitalize() for part in kind.split("-"))


def build(app: Flask) -> dict[str, Any]:
    """The whole document for ``app``: every /api/v1 rule of its URL map, every method."""
    paths: dict[str, dict[str, Any]] = {}
    for rule in sorted(app.url_map.iter_rules(), key=lambda r: (r.rule, r.endpoint)):
        if rule.rule != API_PREFIX and not rule.rule.startswith(API_PREFIX + "/"):
            continue
        view = app.view_functions[rule.endpoint].__name__
        path = re.sub(r"<(?:[^<>:]+:)?([^<>]+)>", r"{\1}", rule.rule)
        for method in sorted(rule.methods - _SKIPPED_METHODS):
            operation = _operation(view, rule.endpoint.split(".")[-1],
                                   (rule.defaults or {}).get("kind"), app.config)
            in_path = sorted(rule.arguments - set(rule.defaults or ()))
            if in_path:
                operation["parameters"] = [
                    {"name": name, "in": "path", "required": True,
                     "schema": {"type": "string", "maxLength": 64}}
                    for name in in_path] + operation.get("parameters", [])
            paths.setdefault(path, {})[method.lower()] = operation
    kinds = sorted(ENTITIES)
    return {
        "openapi": "3.1.0",
        "info": {"title": f"{app.config['NODE_NAME']} API", "version": __version__,
                 "description": "Write API of an Engagement Atlas node. Reads are public; "
                                "writes need a bearer token. Errors are RFC 9457 problem "
                                "details."},
        "servers": [{"url": app.config["BASE_URL"]}],
        "tags": [{"name": ENTITIES[k].collection} for k in kinds]
                + [{"name": "tokens"}, {"name": "peers"}, {"name": "meta"}],
        "paths": paths,
        "components": {
            "schemas": {**_record_schemas(kinds), **_SHARED_SCHEMAS},
            "responses": {name: _problem_response(status)
                          for status, (name, _s, _h) in _PROBLEMS.items()},
            "parameters": _parameters(app.config),
            "headers": _HEADERS,
            "securitySchemes": {"bearer": {
                "type": "http", "scheme": "bearer",
                "description": "An API token `atl_<id>_<secret>` (editor or admin role)."}},
        },
    }


# --------------------------------------------------------------------------- operations


def _operation(view: str, operation_id: str, kind: str | None,
               config: Any) -> dict[str, Any]:
    summary, role, statuses = OPERATIONS[view]
    collection = ENTITIES[kind].collection if kind else None
    op: dict[str, Any] = {
        "operationId": operation_id,
        "summary": summary.format(collection=collection, a_kind=kind and (
            ("an " if kind[0] in "aeiou" else "a ") + kind)),
        "tags": [collection or _TAGS.get(view, "tokens")],
    }
    if role:
        op["security"] = [{"bearer": []}]
        op["description"] = f"Needs a token with the {role} role."
    params = _operation_parameters(view, kind)
    if params:
        op["parameters"] = params
    body = _request_body(view, kind)
    if body:
        op["requestBody"] = body
    op["responses"] = {str(s): _response(view, kind, s) for s in statuses}
    return op


def _operation_parameters(view: str, kind: str | None) -> list[dict[str, Any]]:
    ref = "#/components/parameters/"
    if view == "list_entities":
        facets = [{"name": key, "in": "query", "style": "form", "explode": True,
                   "description": "Any of these values (repeat the parameter for more).",
                   "schema": {"type": "array", "items": _facet_schema(kind, key)}}
                  for key in store.facet_keys(kind)]
        return [{"$ref": ref + "page"}, {"$ref": ref + "per_page"}, {"$ref": ref + "q"}, *facets]
    if view == "get_entity":
        return [{"$ref": ref + "If-None-Match"}, {"$ref": ref + "If-Modified-Since"}]
    if view in {"replace_entity", "patch_entity", "delete_entity"}:
        return [{"$ref": ref + "If-Match"}]
    return []


def _facet_schema(kind: str, key: str) -> dict[str, Any]:
    schema = _leaf(ENTITIES[kind].field(key))
    return {k: v for k, v in schema.items() if k not in {"readOnly", "description"}}


def _request_body(view: str, kind: str | None) -> dict[str, Any] | None:
    if view in {"create_entity", "replace_entity"}:
        content = {JSON: {"schema": _ref(schema_name(kind))}}
    elif view == "patch_entity":
        patch = {"schema": _ref(schema_name(kind) + "Patch")}
        content = {MERGE_PATCH: patch, JSON: patch}
    elif view == "create_token":
        content = {JSON: {"schema": _ref("TokenRequest")}}
    elif view == "create_peer":
        content = {JSON: {"schema": _ref("PeerRequest")}}
    else:
        return None
    return {"required": True, "content": content}


def _response(view: str, kind: str | None, status: int) -> dict[str, Any]:
    if status in _PROBLEMS:
        return {"$ref": "#/components/responses/" + _PROBLEMS[status][0]}
    headers: tuple[str, ...] = ()
    schema: dict[str, Any] | None = None
    if view == "list_entities":
        text, headers = "A page of records, newest change first.", ("Link",)
        schema = _ref(schema_name(kind) + "Page")
    elif view == "openapi_document":
        text, schema = "OpenAPI 3.1 document.", {"type": "object"}
    elif view in {"list_tokens", "create_token"}:
        text = "The tokens." if view == "list_tokens" else "The token; its value is shown once."
        schema = _ref("TokenList" if view == "list_tokens" else "NewToken")
        headers = ("Cache-Control",) if view == "create_token" else ()
    elif view in {"list_peers", "create_peer"}:
        text = "The peers." if view == "list_peers" else "The new peer."
        schema = _ref("PeerList" if view == "list_peers" else "Peer")
    elif status == 304:
        text, headers = "The client's copy is current.", ("ETag", "Last-Modified")
    elif status == 204:
        text = "Done; no content."
    else:
        text, schema = "The stored record.", _ref(schema_name(kind))
        headers = ("Location", "ETag", "Last-Modified") if status == 201 else (
            "ETag", "Last-Modified")
    response: dict[str, Any] = {"description": text}
    if headers:
        response["headers"] = {h: {"$ref": "#/components/headers/" + h} for h in headers}
    if schema is not None:
        response["content"] = {JSON: {"schema": schema}}
    return response


def _problem_response(status: int) -> dict[str, Any]:
    _name, schema, text = _PROBLEMS[status]
    response: dict[str, Any] = {"description": text,
                                "content": {PROBLEM: {"schema": _ref(schema)}}}
    if status == 401:
        response["headers"] = {"WWW-Authenticate": {
            "$ref": "#/components/headers/WWW-Authenticate"}}
    return response


def _parameters(config: Any) -> dict[str, Any]:
    return {
        "page": {"name": "page", "in": "query", "description": "Page number (from 1).",
                 "schema": {"type": "integer", "minimum": 1, "default": 1}},
        "per_page": {"name": "per_page", "in": "query", "description": "Records per page.",
                     "schema": {"type": "integer", "minimum": 1,
                                "maximum": config["MAX_PAGE_SIZE"],
                                "default": config["PAGE_SIZE"]}},
        "q": {"name": "q", "in": "query", "schema": {"type": "string"},
              "description": "Words that must all occur in name, alternateName or description."},
        "If-Match": {"name": "If-Match", "in": "header", "required": True,
                     "schema": {"type": "string"},
                     "description": 'The ETag of the version being changed, e.g. "3", or *.'},
        "If-None-Match": {"name": "If-None-Match", "in": "header",
                          "schema": {"type": "string"},
                          "description": "ETags the client holds; a match answers 304."},
        "If-Modified-Since": {"name": "If-Modified-Since", "in": "header",
                              "schema": {"type": "string"},
                              "description": "HTTP date; used only without If-None-Match."},
    }


_HEADERS: dict[str, Any] = {
    "ETag": {"description": 'Strong entity tag: the version, e.g. "3".',
             "schema": {"type": "string"}},
    "Last-Modified": {"description": "When the entity last changed (HTTP date).",
                      "schema": {"type": "string"}},
    "Location": {"description": "The entity's public URI ({base}/{collection}/{id}).",
                 "schema": {"type": "string", "format": "uri"}},
    "Link": {"description": "RFC 8288 links to the first, prev, next and last pages.",
             "schema": {"type": "string"}},
    "WWW-Authenticate": {"description": "The scheme to use (RFC 6750 §3).",
                         "schema": {"type": "string"}},
    "Cache-Control": {"description": "no-store: the response carries a secret.",
                      "schema": {"type": "string"}},
}


# --------------------------------------------------------------------------- JSON Schemas


def field_schema(f: Field, patch: bool = False) -> dict[str, Any]:
    """JSON Schema (2020-12) of one field's record value; ``patch``: of its merge patch."""
    if f.kind == "node" and not f.many:
        schema = _object(f.node.fields, patch)
    elif f.kind == "node":
        schema = {"type": "array", "items": _object(f.node.fields, False),
                  "maxItems": _MAX_ITEMS}
    elif f.kind == "text":
        value = {"type": "string", "minLength": 1, "maxLength": f.max_length}
        schema = {"type": "object", "description": "Language map: BCP 47 tag -> text.",
                  "propertyNames": {"pattern": BCP47_PATTERN},
                  "additionalProperties": {"type": ["string", "null"], "minLength": 1,
                                           "maxLength": f.max_length} if patch else value,
                  "maxProperties": _MAX_ITEMS}
        if not patch:
            schema["minProperties"] = 1
    elif f.many:
        low, high = f.cardinality or (1 if f.required else 0, _MAX_ITEMS)
        schema = {"type": "array", "items": _leaf(f), "maxItems": high}
        if low:
            schema["minItems"] = low
        if f.cardinality:
            schema["uniqueItems"] = True
    else:
        schema = _leaf(f)
    if f.doc:
        schema["description"] = f.doc
    if f.read_only:
        schema["readOnly"] = True
    if patch:  # RFC 7396: null removes the member
        return {"anyOf": [schema, {"type": "null"}]}
    return schema


def _leaf(f: Field) -> dict[str, Any]:
    kind = f.kind
    if kind == "string":
        return {"type": "string", "minLength": 1, "maxLength": f.max_length}
    if kind == "email":
        return {"type": "string", "format": "email", "maxLength": 254,
                "pattern": EMAIL_PATTERN}
    if kind == "language":
        return {"type": "string", "maxLength": 35, "pattern": BCP47_PATTERN,
                "description": "BCP 47 language tag"}
    if kind in {"iri", "ref"}:
        about = {"description": "URI of an entity (here or on another node)"}
        return {"type": "string", "format": "uri", "maxLength": f.max_length,
                "pattern": "^[hH][tT][tT][pP][sS]?://", **(about if kind == "ref" else {})}
    if kind == "concept":
        return {"type": "string", "enum": sorted(notations(f.scheme)),
                "description": f"notation of a concept in the {f.scheme} scheme"}
    if kind == "date":
        return {"type": "string", "format": "date"}
    if kind == "datetime":
        return {"type": "string", "format": "date-time"}
    if kind == "time":
        return {"type": "string", "pattern": "^([01][0-9]|2[0-3]):[0-5][0-9]$"}
    if kind == "decimal":
        bounds = {"minimum": f.minimum, "maximum": f.maximum}
        return {"type": "number", **{k: v for k, v in bounds.items() if v is not None}}
    if kind == "boolean":
        return {"type": "boolean"}
    if kind == "weekday":
        return {"type": "string", "enum": list(WEEKDAYS)}
    if kind == "wikidata":
        return {"type": "string", "pattern": "^Q[1-9][0-9]{0,11}$"}
    raise ValueError(f"no JSON Schema for field kind {kind!r}")


def _object(fields: tuple[Field, ...], patch: bool, with_id: bool = False) -> dict[str, Any]:
    properties: dict[str, Any] = {}
    if with_id:
        properties["id"] = {"type": "string", "maxLength": 64, "readOnly": True,
                            "description": "Opaque local id, given once by the node."}
    properties.update((f.key, field_schema(f, patch)) for f in fields)
    schema: dict[str, Any] = {"type": "object", "properties": properties,
                              "additionalProperties": False}
    required = [f.key for f in fields if f.required and not f.read_only]
    if required and not patch:
        schema["required"] = required
    return schema


def _record_schemas(kinds: list[str]) -> dict[str, Any]:
    schemas: dict[str, Any] = {}
    for kind in kinds:
        name, spec = schema_name(kind), ENTITIES[kind]
        schemas[name] = {"title": kind, **_object(spec.fields, False, with_id=True)}
        schemas[name + "Patch"] = {"title": f"{kind} merge patch",
                                   **_object(spec.fields, True, with_id=True)}
        schemas[name + "Page"] = {
            "type": "object", "required": ["items", "total", "page", "per_page", "pages"],
            "properties": {"items": {"type": "array", "items": _ref(name)},
                           **{k: {"type": "integer", "minimum": 0}
                              for k in ("total", "page", "per_page", "pages")}}}
    return schemas


def _ref(name: str) -> dict[str, str]:
    return {"$ref": "#/components/schemas/" + name}


_STAMP = {"type": ["string", "null"], "format": "date-time"}
_TOKEN_INFO = {
    "type": "object", "required": ["id", "name", "role", "created", "last_used", "revoked"],
    "properties": {"id": {"type": "string"}, "name": {"type": "string"},
                   "role": {"type": "string", "enum": list(auth.ROLES)},
                   "created": {"type": "string", "format": "date-time"},
                   "last_used": _STAMP, "revoked": _STAMP}}

# RFC 9457 §3: the members of a problem details object; extensions are allowed.
_SHARED_SCHEMAS: dict[str, Any] = {
    "Problem": {
        "type": "object", "required": ["type", "title", "status"],
        "properties": {"type": {"type": "string", "format": "uri-reference",
                                "default": "about:blank"},
                       "title": {"type": "string"},
                       "status": {"type": "integer", "minimum": 100, "maximum": 599},
                       "detail": {"type": "string"},
                       "instance": {"type": "string", "format": "uri-reference"}}},
    "ValidationProblem": {"allOf": [_ref("Problem"), {
        "type": "object", "required": ["errors"],
        "properties": {"errors": {"type": "array", "items": {
            "type": "object", "required": ["pointer", "detail"],
            "properties": {"pointer": {"type": "string", "format": "json-pointer"},
                           "detail": {"type": "string"}}}}}}]},
    "GoneProblem": {"allOf": [_ref("Problem"), {
        "type": "object", "required": ["tombstone"],
        "properties": {"tombstone": {
            "type": "object", "required": ["id", "kind", "deleted", "version"],
            "properties": {"id": {"type": "string"},
                           "kind": {"type": "string", "enum": sorted(ENTITIES)},
                           "deleted": {"type": "string", "format": "date-time"},
                           "version": {"type": "integer", "minimum": 1}}}}}]},
    "TokenRequest": {
        "type": "object", "required": ["name", "role"], "additionalProperties": False,
        "properties": {"name": {"type": "string", "minLength": 1, "maxLength": 200},
                       "role": {"type": "string", "enum": list(auth.ROLES)}}},
    "TokenInfo": _TOKEN_INFO,
    "TokenList": {"type": "object", "required": ["items"],
                  "properties": {"items": {"type": "array", "items": _ref("TokenInfo")}}},
    "PeerRequest": {
        "type": "object", "required": ["url"], "additionalProperties": False,
        "properties": {"url": {"type": "string", "format": "uri", "maxLength": 1000,
                               "pattern": "^[hH][tT][tT][pP][sS]?://",
                               "description": "The peer's entry URL (http or https)."},
                       "kind": {"type": "string", "enum": ["node", "index"],
                                "default": "node"},
                       "name": {"type": ["string", "null"], "minLength": 1,
                                "maxLength": 200}}},
    "Peer": {
        "type": "object", "required": ["id", "url", "kind", "name", "added"],
        "properties": {"id": {"type": "integer"}, "url": {"type": "string", "format": "uri"},
                       "kind": {"type": "string", "enum": ["node", "index"]},
                       "name": {"type": ["string", "null"]},
                       "added": {"type": "string", "format": "date-time"}}},
    "PeerList": {"type": "object", "required": ["items"],
                 "properties": {"items": {"type": "array", "items": _ref("Peer")}}},
    "NewToken": {"allOf": [_ref("TokenInfo"), {
        "type": "object", "required": ["token"],
        "properties": {"token": {"type": "string", "description": "Shown only once."}}}]},
}
