"""The scale-out index store: any SPARQL 1.1 server (Query, Update, Graph Store Protocol).

The same layout and the same request text as the embedded store (`SparqlIndexStore`),
sent over HTTP. Atomicity rests on one documented assumption: a single SPARQL Update
request — a sequence of operations — is applied as one transaction. Oxigraph (`oxigraph
serve`; checked: a request whose last operation fails returns 500 and leaves the earlier
DROPs undone, and a server SIGKILLed mid-request restarts with the old or the new state),
Jena Fuseki/TDB2 and Virtuoso (one request, one transaction in its default autocommit
mode) do so; SPARQL 1.1 Update §2.2 only recommends it, so check before using another
server. The ownership check before an update is race-free only with one writing harvester.

Every request has connect and read timeouts plus an overall deadline on reading the body
(PITFALLS: the read timeout is per read, a dripping server would hold a request forever).
HTTP and network failures become `StoreError`.
"""

from __future__ import annotations

import json
import time

import pyoxigraph as ox
import requests
import urllib3

from harvesters.errors import StoreError

from .interface import QueryResult
from .sparql import SparqlIndexStore, _graph_block, _term

__all__ = ["RemoteSparqlStore"]

_RESULTS_ACCEPT = ("application/sparql-results+json, application/n-triples;q=0.9, "
                   "text/turtle;q=0.8")
_MAX_STATE_BYTES = 256 * 1024 * 1024  # bookkeeping answers (graph lists) read into memory
_ERROR_SNIPPET = 500


class _DeadlineReader:
    """A response body as a file object that stops at an overall deadline (and at EOF
    releases the connection). pyoxigraph's parsers read from it lazily."""

    def __init__(self, response: requests.Response, deadline: float) -> None:
        self._response = response
        self._deadline = deadline
        self.media_type = response.headers.get("Content-Type", "")

    def close(self) -> None:
        self._response.close()

    def read(self, size: int = -1) -> bytes:
        if time.monotonic() > self._deadline:
            self._response.close()
            raise StoreError("the SPARQL server did not finish answering in time",
                             reason="store-timeout")
        try:
            chunk = self._response.raw.read(size if size and size > 0 else 65536,
                                             decode_content=True)
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            self._response.close()
            raise StoreError(f"reading from the SPARQL server failed: {exc}",
                             reason="store-unavailable") from exc
        if not chunk:
            self._response.close()
        return chunk

    def read_all(self, cap: int) -> bytes:
        parts, size = [], 0
        while chunk := self.read(65536):
            parts.append(chunk)
            size += len(chunk)
            if size > cap:
                self._response.close()
                raise StoreError("the SPARQL server's answer is too large",
                                 reason="store-answer-too-large")
        return b"".join(parts)


class RemoteSparqlStore(SparqlIndexStore):
    """Index store on a SPARQL 1.1 server at ``query_url`` / ``update_url``.

    ``gsp_url`` is the server's dataset endpoint that takes N-Quads by POST (Oxigraph's
    ``/store``, Fuseki's ``/{dataset}``); with it bulk loads skip SPARQL parsing, without it
    they go as INSERT DATA requests. Pass a ``session`` for authentication or proxies.
    """

    def __init__(self, query_url: str, update_url: str, gsp_url: str | None = None, *,
                 session: requests.Session | None = None, timeout: float = 60.0,
                 connect_timeout: float = 5.0) -> None:
        super().__init__()
        self.query_url, self.update_url, self.gsp_url = query_url, update_url, gsp_url
        self.timeout, self.connect_timeout = timeout, connect_timeout
        self._own_session = session is None
        self._session = session or requests.Session()

    def _post(self, url: str, body: bytes, content_type: str, *, accept: str | None = None,
              timeout: float | None = None, what: str = "request") -> _DeadlineReader:
        timeout = self.timeout if timeout is None else timeout
        headers = {"Content-Type": content_type}
        if accept:
            headers["Accept"] = accept
        try:
            response = self._session.post(url, data=body, headers=headers, stream=True,
                                          timeout=(self.connect_timeout, timeout))
        except requests.Timeout as exc:
            raise StoreError(f"{what}: the SPARQL server timed out", reason="store-timeout") \
                from exc
        except requests.RequestException as exc:
            raise StoreError(f"{what}: the SPARQL server is unreachable: {exc}",
                             reason="store-unavailable") from exc
        reader = _DeadlineReader(response, time.monotonic() + timeout)
        if response.status_code >= 400:
            try:
                detail = reader.read(_ERROR_SNIPPET).decode("utf-8", "replace")
            except StoreError:
                detail = ""
            finally:
                response.close()
            reason = "bad-query" if what == "query" and response.status_code == 400 else (
                "store-rejected" if response.status_code < 500 else "store-failed")
            raise StoreError(f"{what}: HTTP {response.status_code}: {detail}", reason=reason)
        return reader

    def _update(self, sparql: str) -> None:
        self._post(self.update_url, sparql.encode("utf-8"), "application/sparql-update",
                   what="update").read_all(_MAX_STATE_BYTES)

    def _select(self, sparql: str) -> list[dict[str, str]]:
        body = self._post(self.query_url, sparql.encode("utf-8"), "application/sparql-query",
                          accept="application/sparql-results+json",
                          what="query").read_all(_MAX_STATE_BYTES)
        try:
            bindings = json.loads(body)["results"]["bindings"]
            return [{k: v["value"] for k, v in row.items()} for row in bindings]
        except (ValueError, KeyError, TypeError) as exc:
            raise StoreError("the SPARQL server sent unreadable results",
                             reason="store-failed") from exc

    def _write_quads(self, quads: list[ox.Quad] | bytes) -> None:
        if self.gsp_url:
            body = quads if isinstance(quads, bytes) else ox.serialize(
                quads, format=ox.RdfFormat.N_QUADS)
            self._post(self.gsp_url, body, "application/n-quads",
                       what="bulk write").read_all(_MAX_STATE_BYTES)
            return
        if isinstance(quads, bytes):  # an N-Quads document (SparqlIndexStore._bulk_parts)
            quads = list(ox.parse(quads, format=ox.RdfFormat.N_QUADS))
        lines = ["INSERT DATA {"]
        graph, triples = None, []
        for quad in [*quads, None]:
            if quad is None or quad.graph_name != graph:
                if graph is not None:
                    lines.extend(_graph_block(_term(graph, ""), triples, "c"))
                graph, triples = (quad.graph_name, []) if quad is not None else (None, [])
            if quad is not None:
                triples.append(quad.triple)
        lines.append("}")
        self._update("\n".join(lines))

    def query(self, sparql: str, *, timeout: float | None = None) -> QueryResult:
        """Send the query; parse the answer lazily with pyoxigraph (same types as embedded).

        ``timeout`` (default: the store's) bounds connecting, each read, and the whole answer;
        a result iterator that runs past it raises `StoreError`.
        """
        reader = self._post(self.query_url, sparql.encode("utf-8"), "application/sparql-query",
                            accept=_RESULTS_ACCEPT, timeout=timeout, what="query")
        media_type = reader.media_type
        try:
            results_format = ox.QueryResultsFormat.from_media_type(media_type)
            if results_format is not None:
                results = ox.parse_query_results(reader, results_format)
                if isinstance(results, ox.QueryBoolean):
                    reader.close()
                return results
            rdf_format = ox.RdfFormat.from_media_type(media_type)
            if rdf_format is not None:
                return (quad.triple for quad in ox.parse(reader, rdf_format))
        except (SyntaxError, ValueError) as exc:
            reader.close()
            raise StoreError(f"unreadable answer from the SPARQL server: {exc}",
                             reason="store-failed") from exc
        reader.close()
        raise StoreError(f"unexpected answer type {media_type!r}", reason="store-failed")

    def close(self) -> None:
        if self._own_session:
            self._session.close()

    def __repr__(self) -> str:
        return f"RemoteSparqlStore({self.query_url!r}, {self.update_url!r}, {self.gsp_url!r})"
