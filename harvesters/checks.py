"""Checks on harvested triples: authority, and grouping per entity.

Why: a source may only state things about IRIs in its own URI space (ARCHITECTURE,
"Authority"), so it can never change another source's data (issue 5 item 5). The
verdict on each entity's statements (SHACL, with quarantine) is `harvesters.validation`.

Everything works on `pyoxigraph.Triple` lists as produced by `harvesters.parse`.

URI space rule (`in_uri_space`): a source's space is an absolute http(s) IRI
ending in "/" without user info, query, fragment or dot segments, e.g.
``http://node.test/``. An IRI is inside it when scheme and host (both compared
lower-case) and port (default ports made explicit) are equal, its path starts
with the space's path, and it has no user info, no backslash and no "." or ".."
path segment (percent-encoded ones included). Anything else is outside: prefix
tricks (``http://node.test.evil/``, ``http://node.test@evil/``,
``http://node.test/a/../../x``) never match.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit

import pyoxigraph as ox

from vocab import ENTITIES
from vocab.namespaces import AS, DCTERMS, RDF

__all__ = [
    "Dropped",
    "VersionMember",
    "entity_of_version",
    "group_entities",
    "in_uri_space",
    "normalize_uri_space",
    "split_by_authority",
    "split_entities",
    "split_grouped",
    "split_versions",
]

Triple = ox.Triple
_RDF_TYPE = ox.NamedNode(str(RDF.type))
_IS_VERSION_OF = ox.NamedNode(str(DCTERMS.isVersionOf))
_DELETE = ox.NamedNode(str(AS.Delete))
_ENTITY_CLASSES = frozenset(ox.NamedNode(str(spec.rdf_type)) for spec in ENTITIES.values())
_DEFAULT_PORTS = {"http": 80, "https": 443}
_VERSION_IRI = re.compile(r"(?P<entity>.+)/versions/(?P<n>[0-9]+)")
_EXAMPLES = 5
_SPACE = re.compile(r"\s")  # the characters str.isspace() calls whitespace
_PATH_END = re.compile(r"[?#]")  # urlsplit: the path ends at the query or the fragment

# --------------------------------------------------------------------------- authority


def _iri_key(iri: str) -> tuple[str, str, int, str] | None:
    """(scheme, host, port, path) of an http(s) IRI, or None when it is not usable."""
    if "\\" in iri or _SPACE.search(iri):
        return None  # WHATWG URL parsers read "\" as "/": never let it near a prefix test
    try:
        parts = urlsplit(iri)
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS or "@" in parts.netloc or not parts.hostname:
        return None
    # RFC 3986 §5.2.4: dot segments would move the path out of the space when resolved.
    if any(unquote(segment) in {".", ".."} for segment in parts.path.split("/")):
        return None
    return scheme, parts.hostname, port or _DEFAULT_PORTS[scheme], parts.path


def normalize_uri_space(uri_space: str) -> str:
    """The canonical form of a source's URI space; ValueError if it cannot be one."""
    key = _iri_key(uri_space)
    if key is None or not key[3].endswith("/") or "?" in uri_space or "#" in uri_space:
        raise ValueError(f"not a usable URI space (http/https, ending in '/', no user info, "
                         f"query, fragment or dot segments): {uri_space!r}")
    scheme, host, port, path = key
    host = f"[{host}]" if ":" in host else host
    return f"{scheme}://{host}{'' if port == _DEFAULT_PORTS[scheme] else f':{port}'}{path}"


def _space_test(uri_space: str):
    """A memoised ``iri -> bool`` membership test for one URI space.

    An IRI that starts with the space's canonical form has its scheme, host and port and
    a path under the space's (the netloc ends before the space's path), so only the rest
    of its path is checked (`_iri_key`'s rules) without parsing the IRI: ~10x faster.
    """
    prefix = normalize_uri_space(uri_space)
    space = _iri_key(prefix)
    memo: dict[str, bool] = {}

    def inside(iri: str) -> bool:
        hit = memo.get(iri)
        if hit is None:
            if iri.startswith(prefix) and "\\" not in iri and not _SPACE.search(iri):
                path = _PATH_END.split(iri[len(prefix):], 1)[0]
                hit = not ("." in path or "%" in path) or not any(
                    unquote(segment) in {".", ".."} for segment in path.split("/"))
            else:
                key = _iri_key(iri)
                hit = (key is not None and key[:3] == space[:3]
                       and key[3].startswith(space[3]))
            memo[iri] = hit
        return hit

    return inside


def in_uri_space(iri: str, uri_space: str) -> bool:
    """True when ``iri`` lies inside ``uri_space`` (rule in the module docstring)."""
    return _space_test(uri_space)(iri)


@dataclass(frozen=True)
class Dropped:
    """Statements refused by the authority check: how many, and a few subjects as examples."""

    count: int = 0
    examples: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return self.count > 0

    def __str__(self) -> str:
        return f"{self.count} statements about subjects outside the source's URI space" + (
            f" (e.g. {', '.join(self.examples)})" if self.examples else "")


def split_by_authority(triples: Iterable[Triple], uri_space: str) -> tuple[list[Triple], Dropped]:
    """Keep statements whose subject is inside the source's URI space; drop the rest.

    A blank-node subject is kept only when it is reachable from a kept statement
    (through blank-node objects); a blank node nobody in the space points to could
    describe anything.
    """
    inside = _space_test(uri_space)
    accepted: list[Triple] = []
    by_blank: dict[ox.BlankNode, list[Triple]] = defaultdict(list)
    frontier: list[ox.BlankNode] = []
    dropped: dict[str, int] = defaultdict(int)  # statements per refused subject
    for triple in triples:
        subject = triple.subject
        if type(subject) is ox.BlankNode:
            by_blank[subject].append(triple)
        elif type(subject) is ox.NamedNode and inside(subject.value):
            accepted.append(triple)
            if type(triple.object) is ox.BlankNode:
                frontier.append(triple.object)
        else:
            dropped[str(subject)] += 1
    while frontier:
        for triple in by_blank.pop(frontier.pop(), ()):
            accepted.append(triple)
            if type(triple.object) is ox.BlankNode:
                frontier.append(triple.object)
    for subject, rest in by_blank.items():
        dropped[str(subject)] += len(rest)
    return accepted, Dropped(sum(dropped.values()), tuple(list(dropped)[:_EXAMPLES]))


# --------------------------------------------------------------------------- grouping


def closure(subjects: Iterable[ox.NamedNode | ox.BlankNode], by_subject: Mapping) -> list[Triple]:
    """The statements of ``subjects`` plus those of blank nodes reachable from them
    (blank nodes belong to whoever points to them)."""
    out: list[Triple] = []
    seen: set = set()
    stack = list(subjects)
    while stack:
        subject = stack.pop()
        if subject in seen:
            continue
        seen.add(subject)
        for triple in by_subject.get(subject, ()):
            out.append(triple)
            if type(triple.object) is ox.BlankNode:
                stack.append(triple.object)
    return list(dict.fromkeys(out))  # N-Quads may repeat a triple in several graphs


def _gather(triples: Iterable[Triple], is_root: Callable[[str, list[Triple]], bool]
            ) -> tuple[dict[str, list[Triple]], list[Triple]]:
    """Statements per root IRI (fragment-less, chosen by ``is_root(iri, statements)``)
    with its ``#fragment`` nodes and reachable blank nodes; and the statements left over."""
    by_subject: dict = defaultdict(list)
    for triple in triples:
        by_subject[triple.subject].append(triple)
    starts: dict[str, list] = {
        subject.value: [subject] for subject, statements in by_subject.items()
        if type(subject) is ox.NamedNode and "#" not in subject.value
        and is_root(subject.value, statements)}
    for subject in by_subject:
        if type(subject) is ox.NamedNode and "#" in subject.value:
            owner = starts.get(subject.value.split("#", 1)[0])
            if owner is not None:
                owner.append(subject)
    groups = {iri: closure(subjects, by_subject) for iri, subjects in starts.items()}
    used = {id(t) for group in groups.values() for t in group}
    rest = [t for statements in by_subject.values() for t in statements if id(t) not in used]
    return groups, rest


def split_entities(triples: Iterable[Triple],
                   uri_space: str) -> tuple[dict[str, list[Triple]], list[Triple]]:
    """Group statements per entity; returns ``(entities, rest)``.

    An entity is an IRI inside ``uri_space``, without a fragment, typed with the
    class of one of the vocabulary's entity kinds. Its group holds its statements,
    those of its ``{entity}#fragment`` nodes and of blank nodes reachable from them.
    ``rest`` is everything else (feed metadata, version members: see
    `split_versions`).
    """
    inside = _space_test(uri_space)
    return _gather(triples, lambda iri, statements: inside(iri) and any(
        t.predicate == _RDF_TYPE and t.object in _ENTITY_CLASSES for t in statements))


def split_grouped(runs: Iterable[tuple[str | None, Sequence[Triple]]], uri_space: str
                  ) -> tuple[dict[str, list[Triple]], Dropped] | None:
    """`split_by_authority` then `split_entities` (its entities) of the concatenated
    ``runs``, for runs as a dump reader groups them: ``(key, statements)`` where every
    subject is ``key`` or ``key#fragment`` and no key occurs in two runs. None when a
    statement has a blank node (then the general functions decide, since blank nodes
    belong to whoever points to them).

    Same result, same order, without regrouping the whole page by subject terms: the
    grouping already happened, so each run is its entity's group (closure order kept:
    the fragments' statements last-seen first, then the entity's own).
    """
    inside = _space_test(uri_space)
    named, blank = ox.NamedNode, ox.BlankNode
    entities: dict[str, list[Triple]] = {}
    dropped: dict[str, int] = {}
    seen: set[str] = set()
    for key, run in runs:
        if key is None or key in seen:
            return None  # a key in two runs: not grouped as promised
        seen.add(key)
        by: dict[str, list[Triple]] = {}
        for t in run:
            subject = t.subject
            if type(subject) is not named or type(t.object) is blank:
                return None
            iri = subject.value
            if iri.split("#", 1)[0] != key:
                return None  # not grouped as promised: the general functions decide
            if inside(iri):
                statements = by.get(iri)
                if statements is None:
                    by[iri] = [t]
                else:
                    statements.append(t)
            else:
                dropped[f"<{iri}>"] = dropped.get(f"<{iri}>", 0) + 1
        own = by.get(key)  # key has no "#": it is the root candidate of `split_entities`
        if own is not None and any(t.predicate == _RDF_TYPE and t.object in _ENTITY_CLASSES
                                   for t in own):
            group: list[Triple] = []
            for subject in reversed([s for s in by if s != key]):
                group += by[subject]
            group += own
            entities[key] = list(dict.fromkeys(group))
    return entities, Dropped(sum(dropped.values()), tuple(list(dropped)[:_EXAMPLES]))


def group_entities(triples: Iterable[Triple], uri_space: str) -> dict[str, list[Triple]]:
    """Statements per entity IRI (`split_entities` without the rest)."""
    return split_entities(triples, uri_space)[0]


@dataclass(frozen=True)
class VersionMember:
    """One LDES version member, rewritten to the entity it is a version of.

    ``triples`` state the version's data about ``entity`` (``{version}#f`` became
    ``{entity}#f``; the dct:isVersionOf link itself is left out). ``deleted`` is
    True for an as:Delete member (ARCHITECTURE: deletes are as:Delete members).
    ``raw`` (``split_versions(..., rewrite=False)``): ``triples`` are still the version's
    own statements; `rewritten` gives the member as above, `stamp` reads either form.
    """

    entity: str
    version: int
    iri: str
    deleted: bool
    triples: list[Triple] = field(repr=False)
    raw: bool = False

    def rewritten(self) -> VersionMember:
        """This member with its statements about the entity (a raw member rewritten)."""
        if not self.raw:
            return self
        version = ox.NamedNode(self.iri)
        return VersionMember(self.entity, self.version, self.iri, self.deleted, [
            _rewrite(t, self.iri, self.entity) for t in self.triples
            if not (t.subject == version and t.predicate == _IS_VERSION_OF)])

    def stamp(self, path: ox.NamedNode) -> str | None:
        """The lexical form of the first literal the member states about its entity with
        ``path`` (its timestamp), as read from the rewritten statements."""
        about = ox.NamedNode(self.iri if self.raw else self.entity)
        if self.raw and path == _IS_VERSION_OF:
            return None  # left out of the rewritten statements
        return next((t.object.value for t in self.triples if t.predicate == path
                     and t.subject == about and type(t.object) is ox.Literal), None)


def entity_of_version(iri: str) -> tuple[str, int] | None:
    """``({entity}, n)`` for a version member IRI ``{entity}/versions/{n}``, else None."""
    match = _VERSION_IRI.fullmatch(iri)
    return (match["entity"], int(match["n"])) if match else None


def split_versions(triples: Iterable[Triple], uri_space: str, *, rewrite: bool = True
                   ) -> tuple[list[VersionMember], list[Triple]]:
    """Version members of a feed page mapped back to their entities; returns ``(members, rest)``.

    A member is a subject ``V = {entity}/versions/{n}`` stating
    ``V dct:isVersionOf {entity}`` with ``{entity}`` inside ``uri_space``. Its
    statements, those of ``V#fragment`` nodes and reachable blank nodes are
    rewritten (``V`` -> entity, ``V#f`` -> ``entity#f``, in subjects and objects).
    ``rewrite=False``: members come ``raw`` (`VersionMember.rewritten` later), so that
    a reader rewrites only the members it keeps (building terms costs ~1 us each).
    """
    inside = _space_test(uri_space)

    def is_member(iri: str, statements: list[Triple]) -> bool:
        parsed = entity_of_version(iri)
        return parsed is not None and inside(parsed[0]) and any(
            t.predicate == _IS_VERSION_OF and t.object == ox.NamedNode(parsed[0])
            for t in statements)

    groups, rest = _gather(triples, is_member)
    members = []
    for iri, statements in groups.items():
        entity_iri, number = entity_of_version(iri)
        version = ox.NamedNode(iri)
        deleted = ox.Triple(version, _RDF_TYPE, _DELETE) in statements
        member = VersionMember(entity_iri, number, iri, deleted, statements, raw=True)
        members.append(member.rewritten() if rewrite else member)
    return members, rest


def _rewrite(triple: Triple, version: str, entity_iri: str) -> Triple:
    def term(t):
        if type(t) is ox.NamedNode and (t.value == version or t.value.startswith(version + "#")):
            return ox.NamedNode(entity_iri + t.value[len(version):])
        return t

    return ox.Triple(term(triple.subject), triple.predicate, term(triple.object))
