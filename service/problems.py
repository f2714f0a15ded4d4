"""The one error handler: RFC 9457 problem details for machines, HTML for people."""

from __future__ import annotations

import logging

import orjson
from flask import Flask, Response, g, render_template, request
from werkzeug.exceptions import HTTPException

import exports

from .errors import AtlasError

__all__ = ["init_app", "problem_response"]

PROBLEM_TYPE = "application/problem+json"
log = logging.getLogger(__name__)


def problem_response(error: AtlasError) -> Response:
    body = {"type": error.type, "title": error.title, "status": error.status}
    if error.detail:
        body["detail"] = error.detail
    body["instance"] = request.path
    body.update(error.extensions)
    response = Response(orjson.dumps(body), status=error.status, mimetype=PROBLEM_TYPE)
    response.headers.update(error.headers)
    return response


def _wants_html() -> bool:
    if request.path.startswith("/api/"):
        return False
    chosen = g.get("atlas_format")  # set by views that picked a format before failing
    if chosen is not None:
        return chosen == "html"
    fmt = exports.negotiate(request.headers.get("Accept"))
    return fmt is not None and fmt.name == "html"


def _render(error: AtlasError) -> Response:
    if not _wants_html():
        return problem_response(error)
    template = "tombstone.html" if error.status == 410 else "error.html"
    html = render_template(template, error=error)
    response = Response(html, status=error.status, mimetype="text/html")
    response.headers.update(error.headers)
    return response


def _from_http_exception(exc: HTTPException) -> AtlasError:
    error = AtlasError(exc.description)
    error.status, error.title = exc.code or 500, exc.name
    if exc.code == 405 and exc.valid_methods:
        error.headers["Allow"] = ", ".join(exc.valid_methods)
    return error


def init_app(app: Flask) -> None:
    @app.errorhandler(AtlasError)
    def _atlas_error(error: AtlasError):
        return _render(error)

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException):
        return _render(_from_http_exception(exc))

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception):
        log.exception("unhandled error on %s %s", request.method, request.path)
        return _render(AtlasError("An unexpected error occurred; it has been logged."))
