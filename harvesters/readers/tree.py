"""What one TREE/LDES document says about the walk: views, relations, immutability, retention.

Why apart from readers/ldes.py: the traversal (what to fetch, what is new) and the reading
of one document's hypermedia controls (TREE #traversing, #relationsubclasses; LDES
#retention) change for different reasons.
"""

from __future__ import annotations

from datetime import datetime

import pyoxigraph as ox

from vocab.namespaces import LDES, RDF, TREE

from ._shared import duration_seconds, iso, parse_time

__all__ = ["Document"]

_N = ox.NamedNode
_TYPE, _VIEW, _RELATION = _N(str(RDF.type)), _N(str(TREE.view)), _N(str(TREE.relation))
_IMMUTABLE, _STREAM = _N(str(LDES.immutable)), _N(str(LDES.EventStream))
_TS_PATH, _RETENTION = _N(str(LDES.timestampPath)), _N(str(LDES.retentionPolicy))
_LOWER = {str(TREE.GreaterThanRelation), str(TREE.GreaterThanOrEqualToRelation)}
# upper-bound relation -> whether a member may equal the value
_UPPER = {str(TREE.LessThanRelation): False, str(TREE.LessThanOrEqualToRelation): True}


class Document:
    """What a feed document says about the walk: views, relations, immutability, retention."""

    def __init__(self, triples: list[ox.Triple], urls: set[str]) -> None:
        by: dict = {}
        for t in triples:
            by.setdefault(t.subject, []).append(t)
        self._by = by
        streams = {s for s, ts in by.items() if any(t.predicate == _TYPE and t.object == _STREAM
                                                    for t in ts)}
        here = {_N(u) for u in urls} | streams
        self.views = [t.object for t in triples if t.predicate == _VIEW and t.subject in here
                      and type(t.object) is ox.NamedNode]
        nodes = here | set(self.views)
        self.immutable = any(t.predicate == _IMMUTABLE and t.object.value == "true"
                             for s in {_N(u) for u in urls} for t in by.get(s, ()))
        self.timestamp_path = next((t.object.value for t in triples
                                    if t.predicate == _TS_PATH and t.subject in here), None)
        self.relations = [t.object for t in triples
                          if t.predicate == _RELATION and t.subject in nodes]
        self.has_links = bool(self.views or self.relations)
        policies = [t.object for t in triples if t.predicate == _RETENTION and t.subject in nodes]
        self.retention = self._retention(policies) if policies else None

    def _values(self, subject, predicate: str) -> list:
        return [t.object for t in self._by.get(subject, ()) if t.predicate.value == predicate]

    def children(self, timestamp_path: str, since: datetime | None) -> list[str]:
        """Pages to visit: views, then relation targets by lower bound; pages entirely
        before ``since`` (by an upper bound on the timestamp path) are left out."""
        found: dict[str, list] = {v.value: [] for v in self.views}
        for relation in self.relations:
            for node in self._values(relation, str(TREE.node)):
                if type(node) is ox.NamedNode:
                    found.setdefault(node.value, []).append(relation)
        order = []
        for index, (node, relations) in enumerate(found.items()):
            lower, skip = None, False
            for relation in relations:
                kinds = {k.value for k in self._values(relation, str(RDF.type))}
                paths = {p.value for p in self._values(relation, str(TREE.path))}
                value = next((parse_time(v.value) for v in self._values(relation, str(TREE.value))
                              if type(v) is ox.Literal), None)
                if value is None or paths != {timestamp_path}:
                    continue
                if kinds & _LOWER:
                    lower = value
                for kind in kinds & _UPPER.keys():  # TREE #relationsubclasses
                    skip |= since is not None and (value < since or (
                        value == since and not _UPPER[kind]))
            if not skip:
                order.append(((0, lower, index) if lower else (1, index), node))
        order.sort(key=lambda item: item[0])
        return [node for _key, node in order]

    def _retention(self, policies: list) -> dict:
        """The window of the policies (LDES #retention), the strictest of each kind."""
        out: dict = {"from": None, "log": None, "deletes": None}
        for pol in policies:
            kinds = {k.value for k in self._values(pol, str(RDF.type))}
            starts = [v.value for p in ("startingFrom", "pointInTime")
                      for v in self._values(pol, str(LDES) + p)]
            logs = [v.value for v in self._values(pol, str(LDES.fullLogDuration))]
            if str(LDES) + "DurationAgoPolicy" in kinds:
                logs += [v.value for v in self._values(pol, str(TREE.value))]
            for when in filter(None, map(parse_time, starts)):
                if out["from"] is None or when > parse_time(out["from"]):
                    out["from"] = iso(when)
            for key, texts in (("log", logs), ("deletes", [
                    v.value for v in self._values(pol, str(LDES.versionDeleteDuration))])):
                for seconds in filter(None, map(duration_seconds, texts)):
                    out[key] = seconds if out[key] is None else min(out[key], seconds)
        return out
