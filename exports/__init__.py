"""Exports: one module per format and one registry (name, media types, extension).

Importing the package registers the built-in formats through the same
`register` any other format uses; content negotiation asks the registry.
This package never imports Flask or the service.
"""

from __future__ import annotations

# Importing a format module registers it.
from . import (  # noqa: F401
    csv,
    geojson,
    jsonld,
    nquads,
    ntriples,
    rdfxml,
    turtle,
    xlsx,
)
from .errors import ExportError, TabularError
from .registry import (
    PREFERENCE,
    Format,
    Payload,
    content_type,
    formats,
    get,
    negotiate,
    register,
    unregister,
)

__all__ = [
    "PREFERENCE",
    "ExportError",
    "Format",
    "Payload",
    "TabularError",
    "content_type",
    "formats",
    "get",
    "negotiate",
    "register",
    "unregister",
]
