"""Sources: registration from a node's entry URL, discovery of peers, the source registry.

Why (issue 5 item 1): each index chooses what it harvests, without a central registry. A
source's URI space is fixed from its entry URL (``/`` as RDF, ``exports/node.py``), once;
feed pages never widen it, and `harvesters.checks` keeps everything outside it out.

URI space rule: the node resource's single ``void:uriSpace`` (VoID §3.4) must be a usable
space (`checks.normalize_uri_space`) on the SAME host and port as the entry URL (http and
https on their default ports count as one). A node cannot claim someone else's space:
``http://a.test/`` saying ``void:uriSpace "http://b.test/"`` is refused (reason
"foreign-uri-space"). Sites sharing one host under different paths are not told apart by
this rule; `SourceRegistry.add` refuses overlapping spaces within one index. Feed, dump and
peers are read only from statements about subjects inside the fixed space.

Discovery follows peers (``dct:relation`` resources with ``schema:url``) breadth first with
a visited set and a depth limit. Allow/deny lists match domains by suffix (``example.org``
matches ``a.example.org``, never ``badexample.org``; deny wins) and apply to peers, not to
the entry URLs the operator gave. A peer's claims are never trusted: each peer is fetched
and registered by the same rules (its own description decides its space and kind).

Registry: a small JSON file beside the index store (`SourceRegistry.beside`), not the store's
bookkeeping: ``harvest add`` must work while a harvest holds the embedded store's writer lock.
Writes are atomic (temporary file, fsync, ``os.replace``) under an ``flock``, so concurrent
processes never lose a change. Data of a removed source stay until ``drop_source``.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import re
import tempfile
import threading
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pyoxigraph as ox

from .checks import normalize_uri_space, split_by_authority
from .errors import HarvestError
from .fetch import Fetcher
from .model import Origin, Source
from .parse import ParseLimits, parse_rdf

__all__ = ["RegistrationRefused", "SourceConflict", "SourceRegistry", "discover",
           "domain_allowed", "is_trusted", "normalize_entry_url", "origins_of", "register",
           "source_id_for"]

log = logging.getLogger(__name__)

# RFC 9110 §12.5.1: the syntaxes exports/node.py serves, Turtle preferred.
ACCEPT = "text/turtle, application/n-triples;q=0.9, application/ld+json;q=0.8"
DESCRIPTION_LIMITS = ParseLimits(max_triples=20_000, max_blank_nodes=1_000)
KINDS = ("node", "index")
_DEFAULT_PORTS = {"http": 80, "https": 443}

_V, _S, _D = "http://rdfs.org/ns/void#", "https://schema.org/", "http://purl.org/dc/terms/"
(_RDF_TYPE, _URI_SPACE, _DATA_DUMP, _EVENT_STREAM, _DATASET, _NAME, _TITLE, _RELATION, _URL,
 _ENCODING, _ATTRIBUTED, _CATEGORY, _SUBSET) = map(ox.NamedNode, (
    "http://www.w3.org/1999/02/22-rdf-syntax-ns#type", _V + "uriSpace", _V + "dataDump",
    "https://w3id.org/ldes#EventStream", _S + "dataset", _S + "name", _D + "title",
    _D + "relation", _S + "url", _S + "encodingFormat",
    "http://www.w3.org/ns/prov#wasAttributedTo", _S + "applicationCategory", _V + "subset"))


class RegistrationRefused(HarvestError):
    """The entry URL or its description cannot make a source (``reason`` says why)."""


class SourceConflict(ValueError):
    """A registry change that would let two sources share data, or move a fixed URI space."""



def normalize_entry_url(url: str) -> str:
    """http(s) URL without user info, query or fragment; lower-case scheme and host, an
    empty path as "/" (the node resource is ``{base}/``); RegistrationRefused otherwise."""
    try:
        parts = urlsplit(url.strip())
        port, scheme = parts.port, parts.scheme.lower()
        if (scheme not in _DEFAULT_PORTS or not parts.hostname or "@" in parts.netloc
                or parts.query or parts.fragment or any(c.isspace() for c in url.strip())):
            raise ValueError("http/https, no user info, query or fragment")
    except (ValueError, AttributeError) as exc:
        raise RegistrationRefused(f"not a usable entry URL ({exc}): {url!r}",
                                  reason="bad-entry-url") from exc
    host = parts.hostname.rstrip(".")
    host = f"[{host}]" if ":" in host else host
    netloc = host + ("" if port in (None, _DEFAULT_PORTS[scheme]) else f":{port}")
    return f"{scheme}://{netloc}{parts.path or '/'}"


def source_id_for(entry_url: str) -> str:
    """A stable slug from host, port and path, e.g. ``127.0.0.1-5000`` or ``example.org-atlas``."""
    parts = urlsplit(normalize_entry_url(entry_url))
    return re.sub(r"[^a-z0-9.]+", "-", (parts.netloc + parts.path).lower()).strip("-.")


def is_trusted(entry_url: str, trusted: Iterable[str]) -> bool:
    """Whether an index's entry URL is in the trusted list (HARVEST_TRUSTED_INDEXES);
    compared normalized, a trailing "/" ignored."""
    def key(url: str) -> str | None:
        try:
            return normalize_entry_url(url).rstrip("/")
        except RegistrationRefused:
            return None

    mine = key(entry_url)
    return mine is not None and any(key(url) == mine for url in trusted)


def origins_of(source: Source) -> dict[str, Origin]:
    """The origins of a trusted index source, by entry URL, as fixed at registration
    (``source.options["origins"]``: entry_url, uri_space, name); unusable ones left out."""
    found: dict[str, Origin] = {}
    for item in (source.options or {}).get("origins") or ():
        try:
            origin = Origin(str(item["entry_url"]), normalize_uri_space(str(item["uri_space"])),
                            str(item.get("name") or ""))
        except (KeyError, TypeError, ValueError):
            continue
        found[origin.entry_url] = origin
    return found


def _same_host(a: str, b: str) -> bool:
    """Same host and port; http and https on their default ports count as the same."""
    (host_a, port_a), (host_b, port_b) = (
        ((p.hostname or "").rstrip(".").lower(), p.port or _DEFAULT_PORTS[p.scheme])
        for p in (urlsplit(a), urlsplit(b)))
    return host_a == host_b and (port_a == port_b or {port_a, port_b} <= {80, 443})


def domain_allowed(url: str, allow: Iterable[str] = (), deny: Iterable[str] = ()) -> bool:
    """Suffix match on the host: deny wins; an empty allow list allows every domain."""
    host = (urlsplit(url).hostname or "").rstrip(".").lower()

    def match(domains: Iterable[str]) -> bool:
        names = [d.strip().strip(".").lower() for d in domains]
        return any(d and (host == d or host.endswith("." + d)) for d in names)

    allow = list(allow)
    return bool(host) and not match(deny) and (not allow or match(allow))


def register(entry_url: str, fetcher: Fetcher, *, kind: str | None = None) -> Source:
    """Fetch ``entry_url`` as RDF and make a `Source`, its URI space fixed from it. Raises
    FetchError / ParseError when the description cannot be read, `RegistrationRefused` when
    it states no usable space on the entry's host. ``kind`` overrides the stated node|index."""
    return _describe(normalize_entry_url(entry_url), fetcher, kind)[0]


def _describe(entry: str, fetcher: Fetcher, kind: str | None = None) -> tuple[Source, list[str]]:
    """The source behind a normalized entry URL, and the peer entry URLs it lists."""
    if kind is not None and kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}")
    response = fetcher.fetch(entry, accept=ACCEPT)
    triples = parse_rdf(response.body, response.headers.get("content-type"),
                        base_iri=response.url, limits=DESCRIPTION_LIMITS)
    # The node resource is the entry URL itself, or else the only subject with a space.
    candidates = {t.subject.value for t in triples
                  if t.predicate == _URI_SPACE and isinstance(t.subject, ox.NamedNode)}
    # An index describes itself at {base}/index and names itself {base}/index/.
    named = {entry, response.url}
    wanted = (named | {u + "/" for u in named if not u.endswith("/")}) & candidates or candidates
    if len(wanted) != 1:
        raise RegistrationRefused(f"{entry} does not describe one node with a void:uriSpace",
                                  reason="no-description")
    node = ox.NamedNode(wanted.pop())
    claimed = {t.object.value for t in triples if t.subject == node and t.predicate == _URI_SPACE}
    if len(claimed) != 1:
        raise RegistrationRefused(f"{entry} states {len(claimed)} URI spaces, not one",
                                  reason="ambiguous-uri-space")
    try:
        uri_space = normalize_uri_space(claimed.pop())
    except ValueError as exc:
        raise RegistrationRefused(str(exc), reason="invalid-uri-space") from exc
    if not _same_host(uri_space, entry):
        raise RegistrationRefused(f"{entry} claims the URI space {uri_space} of another host",
                                  reason="foreign-uri-space")
    # From here on only what the node says about its own IRIs counts (issue 5 item 5).
    own, _dropped = split_by_authority(triples, uri_space)

    def objects(subject: Any, predicate: ox.NamedNode, http: bool = False) -> list[Any]:
        found = sorted((t.object for t in own if t.subject == subject
                        and t.predicate == predicate), key=str)
        return [o.value for o in found if isinstance(o, ox.NamedNode) and urlsplit(
            o.value).scheme in _DEFAULT_PORTS] if http else found

    feeds = [f for f in objects(node, _DATASET, http=True)
             if ox.Triple(ox.NamedNode(f), _RDF_TYPE, _EVENT_STREAM) in own]
    dumps = objects(node, _DATA_DUMP, http=True)
    # Prefer N-Triples (streams line by line); else the first dump in IRI order.
    dumps.sort(key=lambda d: (ox.Literal("application/n-triples") not in
                              objects(ox.NamedNode(d), _ENCODING), not d.endswith(".nt.gz"), d))
    names = [n.value for p in (_NAME, _TITLE) for n in objects(node, p)
             if isinstance(n, ox.Literal)] + [""]
    stated = {c.value for agent in objects(node, _ATTRIBUTED) for c in objects(agent, _CATEGORY)}
    kind = kind or ("index" if "index" in stated else "node")
    options = {"origins": _origins(node, own, objects)} if kind == "index" else {}
    source = Source(id=source_id_for(entry), entry_url=entry, uri_space=uri_space,
                    feed_url=(feeds or [None])[0], dump_url=(dumps or [None])[0],
                    kind=kind, name=names[0], options=options)
    peers = []
    for url in (u for ref in objects(node, _RELATION) for u in objects(ref, _URL)):
        with contextlib.suppress(RegistrationRefused):  # an IRI, or a literal URL
            peers.append(normalize_entry_url(url.value))
    return source, list(dict.fromkeys(peers))


def _origins(node: ox.NamedNode, own: list, objects) -> list[dict[str, str]]:
    """The sources an index aggregates, as its entry states them (``void:subset`` resources
    with ``schema:url`` = the original entry URL, ``void:uriSpace`` and ``schema:name``).
    Fixed at registration; a space on another host than its entry is left out, as a node
    claiming it would be refused ("foreign-uri-space")."""
    found: dict[str, dict[str, str]] = {}
    for ref in objects(node, _SUBSET):
        urls = objects(ref, _URL, http=True)
        spaces = [o.value for o in objects(ref, _URI_SPACE) if isinstance(o, ox.Literal)]
        names = [o.value for o in objects(ref, _NAME) if isinstance(o, ox.Literal)] + [""]
        if len(urls) != 1 or len(spaces) != 1:
            continue
        try:
            entry, space = normalize_entry_url(urls[0]), normalize_uri_space(spaces[0])
        except (RegistrationRefused, ValueError):
            continue
        if _same_host(space, entry):
            found.setdefault(entry, {"entry_url": entry, "uri_space": space, "name": names[0]})
    return sorted(found.values(), key=lambda o: o["entry_url"])


def discover(entry_urls: Iterable[str], fetcher: Fetcher, *, depth: int = 1,
             allow_domains: Iterable[str] = (), deny_domains: Iterable[str] = (),
             max_sources: int = 1000, skipped: dict[str, str] | None = None) -> list[Source]:
    """Register the entry URLs and, breadth first up to ``depth`` hops, the peers they list.

    Every URL is fetched at most once (visited set: peer cycles end); a peer refused by
    the domain lists, unreachable, or describing a foreign space is left out and noted in
    ``skipped`` (URL -> "reason: message") if given. Two URLs of one node (same URI space)
    give one source. At most ``max_sources`` sources, and at most four times as many URLs
    fetched, bound what a hostile federation can cost.
    """
    allow, deny = tuple(allow_domains), tuple(deny_domains)
    notes = skipped if skipped is not None else {}
    queue = deque((url, 0) for url in entry_urls)
    visited: set[str] = set()
    found: dict[str, Source] = {}  # by URI space
    while queue and len(found) < max_sources and len(visited) < 4 * max_sources:
        url, level = queue.popleft()
        try:
            if (url := normalize_entry_url(url)) in visited:
                continue
            visited.add(url)
            source, peers = _describe(url, fetcher)
        except HarvestError as exc:
            log.warning("discovery: %s skipped: %s", url, exc)
            notes[url] = f"{exc.reason}: {exc}"
            continue
        found.setdefault(source.uri_space, source)
        if level >= depth:
            continue
        for peer in (p for p in peers if p not in visited):
            if domain_allowed(peer, allow, deny):
                queue.append((peer, level + 1))
            else:
                notes[peer] = "refused-domain: not allowed by the domain lists"
    return list(found.values())


class SourceRegistry:
    """The registered sources, one JSON file (``{"version": 1, "sources": [...]}``)."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()

    @classmethod
    def beside(cls, store_path: str | os.PathLike) -> SourceRegistry:
        """The registry next to an index store directory: ``{store}.sources.json``."""
        return cls(Path(f"{os.fspath(store_path).rstrip('/')}.sources.json"))

    def all(self) -> list[Source]:
        return list(self._read().values())

    def get(self, source_id: str) -> Source | None:
        return self._read().get(source_id)

    def add(self, source: Source, *, replace_space: bool = False) -> Source:
        """Add or update ``source``; `SourceConflict` if its URI space overlaps another
        source's, or if it would change its own fixed space (unless ``replace_space``)."""
        space = normalize_uri_space(source.uri_space)
        with self._locked() as sources:
            if (old := sources.get(source.id)) and old.uri_space != space and not replace_space:
                raise SourceConflict(f"source {source.id!r} has the URI space {old.uri_space}; "
                                     f"remove it first to change it to {space}")
            for other in sources.values():
                if other.id != source.id and (space.startswith(other.uri_space)
                                              or other.uri_space.startswith(space)):
                    raise SourceConflict(f"URI space {space} overlaps {other.uri_space} "
                                         f"of source {other.id!r}")
            sources[source.id] = source = replace(source, uri_space=space)
        return source

    def remove(self, source_id: str) -> bool:
        """Forget a source (its indexed data stay until ``IndexStore.drop_source``)."""
        with self._locked() as sources:
            return sources.pop(source_id, None) is not None

    def _read(self) -> dict[str, Source]:
        try:
            document = json.loads(self.path.read_text(encoding="utf-8"))
            return {item["id"]: Source(**item) for item in document.get("sources", [])}
        except FileNotFoundError:
            return {}
        except (OSError, ValueError, TypeError, KeyError) as exc:
            raise HarvestError(f"unreadable source registry {self.path}: {exc}",
                               reason="bad-registry") from exc

    @contextlib.contextmanager
    def _locked(self) -> Iterator[dict[str, Source]]:
        """Read-modify-write under a thread lock and an flock; written only on success."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._lock, open(self.path.with_name(self.path.name + ".lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            sources = self._read()
            yield sources
            self._write(sources)

    def _write(self, sources: dict[str, Source]) -> None:
        items = [{**vars(s), "options": dict(s.options)} for _, s in sorted(sources.items())]
        text = json.dumps({"version": 1, "sources": items}, indent=2, ensure_ascii=False)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=self.path.name, suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                out.write(text)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, self.path)  # POSIX rename: readers see the old or the new file
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)  # only left when something failed before the rename
        dir_fd = os.open(self.path.parent, os.O_RDONLY)
        os.fsync(dir_fd)  # the rename itself survives a power cut
        os.close(dir_fd)
