"""The service's exception family: each error knows its HTTP status and title.

One handler (`service.problems`) renders them as RFC 9457 problem details for
API and machine clients and as an HTML page for browsers.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "AtlasError",
    "BadRequest",
    "Conflict",
    "Forbidden",
    "Gone",
    "InvalidInput",
    "NotAcceptable",
    "NotFound",
    "PayloadTooLarge",
    "PreconditionFailed",
    "PreconditionRequired",
    "Unauthorized",
    "UnsupportedMediaType",
]


class AtlasError(Exception):
    status = 500
    title = "Internal Server Error"
    # RFC 9457 §4.2.1: "about:blank" when the status code says it all.
    type = "about:blank"

    def __init__(self, detail: str | None = None, **extensions: Any):
        super().__init__(detail or self.title)
        self.detail = detail
        self.extensions = extensions
        self.headers: dict[str, str] = {}


class BadRequest(AtlasError):
    status, title = 400, "Bad Request"


class Unauthorized(AtlasError):
    status, title = 401, "Unauthorized"

    def __init__(self, detail: str | None = None, **extensions: Any):
        super().__init__(detail, **extensions)
        # RFC 6750 §3: tell the client which scheme to use.
        self.headers["WWW-Authenticate"] = 'Bearer realm="atlas"'


class Forbidden(AtlasError):
    status, title = 403, "Forbidden"


class NotFound(AtlasError):
    status, title = 404, "Not Found"


class NotAcceptable(AtlasError):
    status, title = 406, "Not Acceptable"


class Conflict(AtlasError):
    status, title = 409, "Conflict"


class Gone(AtlasError):
    """The entity was deleted; ``tombstone`` says what it was and when it went."""

    status, title = 410, "Gone"

    def __init__(self, detail: str | None = None, tombstone: dict | None = None):
        super().__init__(detail, tombstone=tombstone or {})
        self.tombstone = tombstone or {}


class PreconditionFailed(AtlasError):
    status, title = 412, "Precondition Failed"


class PayloadTooLarge(AtlasError):
    status, title = 413, "Content Too Large"


class UnsupportedMediaType(AtlasError):
    status, title = 415, "Unsupported Media Type"


class InvalidInput(AtlasError):
    """Input that breaks the rules; ``errors`` lists ``{"pointer", "detail"}`` per field."""

    status, title = 422, "Unprocessable Content"
    type = "https://w3id.org/engagement-atlas/problems/invalid-input"

    def __init__(self, detail: str, errors: list[dict[str, str]]):
        super().__init__(detail, errors=errors)
        self.errors = errors


class PreconditionRequired(AtlasError):
    status, title = 428, "Precondition Required"
