"""The node's change feed as a Linked Data Event Stream (SEMIC LDES 1.0 over TREE).

This module builds the triples of the feed's documents; the service decides
which changes go where (paging, retention) and answers HTTP. Shape of the feed:

- ``{base}/feed`` is the ``ldes:EventStream``; its one ``tree:view`` is the root
  node ``{base}/feed/root`` (LDES Server Primer §4.1, second option; TREE #init).
- The root node links to every page ``{base}/feed/{n}`` with a
  ``tree:GreaterThanOrEqualToRelation`` and, once the page is full, a
  ``tree:LessThanRelation`` on the timestamp path (Primer §4: two relations
  towards one node, lower and upper bound; one root linking to member pages).
  Pages hold no relations: in a TREE search tree every node but the root has
  exactly one parent (TREE #formalizations).
- A member is one version of an entity, ``{entity}/versions/{n}``, with the
  entity's full state (its IRI and ``#fragments`` rewritten to the version's),
  ``dct:isVersionOf`` the entity and ``prov:generatedAtTime`` (LDES #overview:
  ``ldes:versionOfPath``, ``ldes:timestampPath``). A deletion is a member typed
  ``as:Delete`` (LDES #versions-transactions, vocabulary: ``ldes:versionDeleteObject``).

All IRIs are absolute, although Primer §4 suggests relative links between pages:
N-Triples and N-Quads have no relative IRIs, and BASE_URL never changes.

Section numbers of the LDES Server Primer are those of its 1.0.0 release; the
consumer specification (LDES) and TREE are cited by their section anchors.

Creates and updates carry no ``as:Create``/``as:Update`` type: a client that
copies a version's state onto the entity would copy that type as well, and
without ``ldes:versionCreateObject``/``UpdateObject`` every non-delete member
already is an upsert.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from rdflib import BNode, Literal, URIRef

from vocab import ENTITIES, entity_uri
from vocab.fields import Field
from vocab.mapping import to_graph
from vocab.namespaces import AS, DCTERMS, EA, LDES, PROV, RDF, SCHEMA, SH, TREE, XSD

from .triples import Triple, write

__all__ = [
    "FeedConfig",
    "Member",
    "PageSpan",
    "PREFIXES",
    "RawMember",
    "TIMESTAMP_PATH",
    "VERSION_OF_PATH",
    "member_triples",
    "page_triples",
    "raw_member_triples",
    "root_triples",
    "serialize",
    "stream_triples",
    "timestamp",
    "upper_bound",
    "version_iri",
]

# LDES #overview: the path to each member's xsd:dateTime and to the entity it is a version
# of. prov:generatedAtTime, not dct:modified: the state itself already carries the
# record's dct:modified (to the second), and one path must give one value.
TIMESTAMP_PATH = PROV.generatedAtTime
VERSION_OF_PATH = DCTERMS.isVersionOf
# "Full history" as an explicit policy: every member since the epoch is retained.
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

PREFIXES = {
    "ldes": str(LDES),
    "tree": str(TREE),
    "rdf": str(RDF),
    "dct": str(DCTERMS),
    "prov": str(PROV),
    "as": str(AS),
    "sh": str(SH),
    "xsd": str(XSD),
    "schema": str(SCHEMA),
    "ea": str(EA._NS),
}


@dataclass(frozen=True)
class FeedConfig:
    base: str
    page_size: int
    retention: str  # "full" or "latest"
    keep_deletes_days: int  # 0: deletions stay forever
    polling_interval: int  # seconds
    title: str
    license: str

    @property
    def stream(self) -> URIRef:
        return URIRef(f"{self.base}/feed")

    @property
    def root(self) -> URIRef:
        return URIRef(f"{self.base}/feed/root")

    def page(self, number: int) -> URIRef:
        return URIRef(f"{self.base}/feed/{number}")

    def page_range(self, number: int) -> tuple[int, int]:
        """First and last change sequence number a page holds (fixed-size pages)."""
        return (number - 1) * self.page_size + 1, number * self.page_size


@dataclass(frozen=True)
class PageSpan:
    """A page as the root node links it: bounds on the timestamps of its members."""

    number: int
    lower: datetime | None  # tree:GreaterThanOrEqualToRelation; None: no bound known
    upper: datetime | None  # tree:LessThanRelation; None: the page is still filling
    count: int | None = None  # tree:remainingItems, when it can never change


@dataclass(frozen=True)
class Member:
    """One change of the log, as the feed publishes it."""

    kind: str
    entity_id: str
    version: int
    deleted: bool
    record: dict[str, Any] | None  # full snapshot; None for deletions
    at: datetime  # the published timestamp (never earlier than a previous member's)


@dataclass(frozen=True)
class RawMember:
    """A member built from an entity's triples instead of a record: an index republishing
    what it harvested (service/index_feed.py). ``iri`` names the member; ``state`` holds the
    entity's statements (subjects: the entity, its ``#fragments``, blank nodes) with rdflib
    terms; ``extra`` adds statements about the member itself (provenance)."""

    iri: str
    entity: str
    deleted: bool
    at: datetime
    state: Sequence[Triple] = ()
    extra: Sequence[Triple] = ()


def timestamp(value: datetime) -> Literal:
    """An xsd:dateTime in UTC with "Z" (Primer §4: literals SHOULD carry a timezone);
    microseconds only when there are any."""
    spec = "microseconds" if value.microsecond else "seconds"
    text = value.astimezone(UTC).isoformat(timespec=spec).replace("+00:00", "Z")
    return Literal(text, datatype=XSD.dateTime, normalize=False)


def version_iri(base: str, kind: str, entity_id: str, version: int) -> URIRef:
    return URIRef(f"{entity_uri(base, kind, entity_id)}/versions/{version}")


# --------------------------------------------------------------------------- members


def member_triples(base: str, member: Member) -> list[Triple]:
    """The member's own statements: version link, timestamp, and the full state.

    The state is `vocab.mapping.to_graph` of the snapshot with the entity IRI and
    its fragments rewritten to the version IRI, so the version is a self-contained
    immutable resource (Primer §4.2). Statements about other subjects (the
    ea:cooperatesWith shortcuts a cooperation implies for its partners) are left
    out: they describe no part of this member, and no later delete member could
    retract them.
    """
    entity = str(entity_uri(base, member.kind, member.entity_id))
    version = version_iri(base, member.kind, member.entity_id, member.version)
    head: list[Triple] = []
    if member.deleted:
        head.append((version, RDF.type, AS.Delete))
    head += [(version, VERSION_OF_PATH, URIRef(entity)),
             (version, TIMESTAMP_PATH, timestamp(member.at))]
    if member.record is None:
        return head
    own = version + "#"

    def rewrite(term: Any) -> Any:
        if isinstance(term, URIRef):
            text = str(term)  # a URIRef never equals a plain str
            if text == entity:
                return version
            if text.startswith(entity + "#"):
                return URIRef(version + text[len(entity):])
        return term

    state = _Statements()
    to_graph(member.kind, member.record, base, graph=state)  # type: ignore[arg-type]
    for s, p, o in state:
        s = rewrite(s)
        if s == version or s.startswith(own):
            head.append((s, p, rewrite(o)))
    return head


def raw_member_triples(member: RawMember) -> list[Triple]:
    """A `RawMember` as `member_triples` writes a node's member: version link, timestamp,
    ``extra``, and the state with the entity IRI and its fragments rewritten to the
    member's IRI; blank nodes are kept (they belong to whoever points to them)."""
    version, entity = URIRef(member.iri), member.entity
    head: list[Triple] = [(version, RDF.type, AS.Delete)] if member.deleted else []
    head += [(version, VERSION_OF_PATH, URIRef(entity)),
             (version, TIMESTAMP_PATH, timestamp(member.at)), *member.extra]
    if member.deleted:
        return head

    def rewrite(term: Any) -> Any:
        if isinstance(term, URIRef):
            text = str(term)
            if text == entity or text.startswith(entity + "#"):
                return URIRef(member.iri + text[len(entity):])
        return term

    for s, p, o in member.state:
        s = rewrite(s)
        if isinstance(s, BNode) or s == version or str(s).startswith(member.iri + "#"):
            head.append((s, p, rewrite(o)))
    return head


class _Statements(dict):
    """Collects what `to_graph` adds, in the order the mapping adds it: the order of the
    entity table's fields and of the record's values, the same in every worker (stable
    bytes and ETags). An rdflib Graph would cost most of a page's time (bench/feed_pages.py)
    and forget the order."""

    def add(self, triple: Triple) -> None:
        self[triple] = None


# --------------------------------------------------------------------------- documents


def stream_triples(cfg: FeedConfig) -> list[Triple]:
    """The context of the stream and of its root node (Primer §3: on the root page),
    also served at the stream's own IRI."""
    stream, root = cfg.stream, cfg.root
    shape = URIRef(f"{stream}#member-shape")
    triples: list[Triple] = [
        (stream, RDF.type, LDES.EventStream),
        (stream, DCTERMS.title, Literal(cfg.title)),
        (stream, LDES.timestampPath, TIMESTAMP_PATH),
        (stream, LDES.versionOfPath, VERSION_OF_PATH),
        # LDES vocabulary (ldes:versionDeletePath/-Object): deletions are typed as:Delete.
        (stream, LDES.versionDeletePath, RDF.type),
        (stream, LDES.versionDeleteObject, AS.Delete),
        (stream, LDES.pollingInterval, Literal(cfg.polling_interval, datatype=XSD.integer)),
        (stream, TREE.shape, shape),
        (stream, TREE.view, root),
    ]
    if cfg.license:
        triples.append((stream, DCTERMS.license, URIRef(cfg.license)))
    triples += [(root, RDF.type, TREE.Node), *_retention(cfg, root)]
    triples += _member_shape(shape)
    return triples


def _retention(cfg: FeedConfig, root: URIRef) -> list[Triple]:
    """LDES #retention / Primer §6.1.1: at most one policy on the root node, an IRI.

    "full": all members since the epoch (an explicit form of the default).
    "latest": one version per entity, the latest (ldes:versionAmount; typed
    ldes:LatestVersionSubset with ldes:amount too, for clients of the former
    terms, LDES #retention), deletions for FEED_KEEP_DELETES_DAYS
    (ldes:versionDeleteDuration) or, without it, for good.
    """
    policy = URIRef(f"{cfg.stream}#retention")
    triples: list[Triple] = [(root, LDES.retentionPolicy, policy),
                             (policy, RDF.type, LDES.RetentionPolicy)]
    if cfg.retention == "full":
        return triples + [(policy, LDES.startingFrom, timestamp(EPOCH))]
    one = Literal(1, datatype=XSD.integer)
    triples += [(policy, RDF.type, LDES.LatestVersionSubset),
                (policy, LDES.versionAmount, one), (policy, LDES.amount, one)]
    if cfg.keep_deletes_days:
        triples.append((policy, LDES.versionDeleteDuration,
                        Literal(f"P{cfg.keep_deletes_days}D", datatype=XSD.duration)))
    return triples


def _member_shape(shape: URIRef) -> list[Triple]:
    """tree:shape (LDES #overview): each member has one entity and one timestamp; the nested
    resources are named by sh:node so that a client following the shape's topology
    takes the member's #fragment resources into the member (TREE #member-extraction-algorithm)."""
    triples: list[Triple] = [(shape, RDF.type, SH.NodeShape)]

    def prop(owner: URIRef, name: str, path: URIRef, *constraints: tuple[URIRef, Any]) -> None:
        node = URIRef(f"{owner}-{name}")
        triples.append((owner, SH.property, node))
        triples.append((node, SH.path, path))
        triples.extend((node, p, o) for p, o in constraints)

    one = Literal(1, datatype=XSD.integer)
    prop(shape, "isVersionOf", VERSION_OF_PATH, (SH.minCount, one), (SH.maxCount, one),
         (SH.nodeKind, SH.IRI))
    prop(shape, "generatedAtTime", TIMESTAMP_PATH, (SH.minCount, one), (SH.maxCount, one),
         (SH.datatype, XSD.dateTime))

    def nested(owner: URIRef, fields: Iterable[Field], seen: set[str]) -> None:
        for f in fields:
            if f.kind != "node" or f.key in seen:
                continue
            seen.add(f.key)
            target = URIRef(f"{shape}-node-{f.node.fragment}")
            prop(owner, f.key, f.predicate, (SH.node, target))
            triples.append((target, RDF.type, SH.NodeShape))
            nested(target, f.node.fields, set())

    seen: set[str] = set()
    for spec in ENTITIES.values():
        nested(shape, spec.fields, seen)
    return triples


def root_triples(cfg: FeedConfig, spans: Sequence[PageSpan]) -> list[Triple]:
    """The root node: the context, then one or two relations per page.

    TREE #relationsubclasses: every member reachable through a relation satisfies
    it, and relations to the same node combine with AND. A full page gets
    [lower, upper) of its timestamps; the page still filling gets only its lower
    bound (what comes later is never earlier, LDES #overview), or an unconditional
    tree:Relation while no member exists at all.
    """
    root = cfg.root
    triples = stream_triples(cfg)
    # Terms looked up once: a Namespace builds a new URIRef on every attribute access.
    a, relation_p, node_p, path_p, value_p, remaining_p = (
        RDF.type, TREE.relation, TREE.node, TREE.path, TREE.value, TREE.remainingItems)
    from_type, until_type = TREE.GreaterThanOrEqualToRelation, TREE.LessThanRelation
    for span in spans:
        node = cfg.page(span.number)
        bounds = []
        if span.lower is not None:
            bounds.append(("from", from_type, span.lower))
        if span.upper is not None:
            bounds.append(("until", until_type, span.upper))
        if not bounds:
            relation = URIRef(f"{root}#page-{span.number}")
            triples += [(root, relation_p, relation), (relation, a, TREE.Relation),
                        (relation, node_p, node)]
            continue
        for name, relation_type, value in bounds:
            relation = URIRef(f"{root}#page-{span.number}-{name}")
            triples += [(root, relation_p, relation), (relation, a, relation_type),
                        (relation, node_p, node), (relation, path_p, TIMESTAMP_PATH),
                        (relation, value_p, timestamp(value))]
            if span.count is not None:
                triples.append((relation, remaining_p, Literal(span.count, datatype=XSD.integer)))
    return triples


def page_triples(cfg: FeedConfig, number: int, members: Iterable[Member | RawMember],
                 immutable: bool) -> list[Triple]:
    """One page: its members in log order (Primer §2: chronological), linked from the
    stream with tree:member (Primer §4.2). ``ldes:immutable`` only when nothing will
    ever be added to or removed from it (Primer §6.2)."""
    node = cfg.page(number)
    triples: list[Triple] = [(node, RDF.type, TREE.Node)]
    if immutable:
        triples.append((node, LDES.immutable, Literal(True)))
    body: list[Triple] = []
    for member in members:
        if isinstance(member, RawMember):
            triples.append((cfg.stream, TREE.member, URIRef(member.iri)))
            body += raw_member_triples(member)
            continue
        triples.append((cfg.stream, TREE.member,
                        version_iri(cfg.base, member.kind, member.entity_id, member.version)))
        body += member_triples(cfg.base, member)
    return triples + body


def upper_bound(latest: datetime) -> datetime:
    """The smallest timestamp above ``latest`` at our precision (tree:LessThanRelation)."""
    return latest + timedelta(microseconds=1)


def serialize(triples: list[Triple], format_name: str) -> bytes:
    """The triples in a feed format (registry name: turtle, ntriples, nquads, jsonld)."""
    return write(triples, format_name, PREFIXES)
