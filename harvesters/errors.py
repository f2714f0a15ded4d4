"""The harvesters' exception family: one base class with a short machine-readable reason.

Why: a harvest run reports per source what went wrong ("refused-address", "too-large",
"deadline-exceeded", ...) in logs, on the status page and in PROV-O run records, so every
error carries a stable slug besides its human message. Vendor errors (urllib3, rdflib,
pyoxigraph, SPARQL servers) are translated into these at the module boundary
(``raise StoreError(...) from exc``); callers never see driver exceptions.
"""

from __future__ import annotations

__all__ = [
    "HarvestError",
    "FetchError",
    "RefusedURL",
    "ResponseTooLarge",
    "DeadlineExceeded",
    "ParseError",
    "StoreError",
]


class HarvestError(Exception):
    """Base of every harvester error; ``reason`` is a short slug such as "refused-address"."""

    reason: str = "harvest-error"

    def __init__(self, message: str = "", *, reason: str | None = None) -> None:
        if reason is not None:
            self.reason = reason
        super().__init__(message or self.reason)


class FetchError(HarvestError):
    """Network or HTTP failure that persisted after the allowed retries."""

    reason = "fetch-failed"


class RefusedURL(FetchError):
    """The URL was refused by policy (scheme, host list, address: SSRF), also after redirects."""

    reason = "refused-url"


class ResponseTooLarge(FetchError):
    """The body or its decompressed size went over the policy's cap."""

    reason = "too-large"


class DeadlineExceeded(FetchError):
    """The overall deadline for one response ran out (slow drip, stalled server)."""

    reason = "deadline-exceeded"


class ParseError(HarvestError):
    """Untrusted RDF that could not be parsed or was refused (RDF/XML, DTD, remote @context,
    caps)."""

    reason = "parse-error"


class StoreError(HarvestError):
    """Index store failure (vendor errors translated at the boundary)."""

    reason = "store-error"
