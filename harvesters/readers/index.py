"""Members of another index's feed (kind "index"), mapped back to their original entities.

Why apart from readers/ldes.py: an index's feed (service/index_feed.py) names its members
``{index space}feed/members/{seq}``, inside the INDEX's URI space, while each member is a
version of an entity of the ORIGINAL source (``dct:isVersionOf``) and names that source
(``prov:wasDerivedFrom <entry URL>``, ``prov:hadPrimarySource <original version>``). The
LDES walk is the same (readers/ldes.py calls `index_members` for such sources); only the
mapping of members differs, with two authority rules (issue 5 items 5 and 8):

- the member IRI lies in the index's space (`checks.split_by_authority` before this);
- the member's entity lies in the URI space of the origin it names, as fixed when the index
  was registered (``source.options["origins"]``), never as the page says.

A member breaking either rule is dropped and counted like any statement refused by
authority. The state is rewritten from the member IRI (and ``#fragments``) to the entity.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import replace

import pyoxigraph as ox

from vocab.namespaces import AS, DCTERMS, PROV, RDF

from ..checks import Dropped, VersionMember, closure, in_uri_space
from ..model import Origin

__all__ = ["MEMBERS_PATH", "index_members"]

MEMBERS_PATH = "feed/members/"  # below the index's URI space
_SEQ = re.compile(r"[0-9]{1,18}")
_IS_VERSION_OF, _DERIVED, _PRIMARY, _TYPE, _DELETE = (ox.NamedNode(str(t)) for t in (
    DCTERMS.isVersionOf, PROV.wasDerivedFrom, PROV.hadPrimarySource, RDF.type, AS.Delete))
_MEMBER_LINKS = (_IS_VERSION_OF, _DERIVED, _PRIMARY)


def _iris(statements: list[ox.Triple], predicate: ox.NamedNode) -> list[str]:
    return sorted({t.object.value for t in statements
                   if t.predicate == predicate and type(t.object) is ox.NamedNode})


def index_members(triples: Iterable[ox.Triple], uri_space: str,
                  origins: Mapping[str, Origin]
                  ) -> tuple[list[VersionMember], dict[str, Origin], Dropped]:
    """Members of an index feed page (already checked for the index's authority).

    Returns the members rewritten to their entities (``version`` = the index's sequence
    number), each member's `Origin` (with its original version) by member IRI, and the
    statements of members dropped for naming an unknown origin or an entity outside it.
    """
    by_subject: dict = defaultdict(list)
    for triple in triples:
        by_subject[triple.subject].append(triple)
    prefix = uri_space + MEMBERS_PATH
    members, origin_of, refused = [], {}, {}
    for subject, statements in list(by_subject.items()):
        if type(subject) is not ox.NamedNode or not subject.value.startswith(prefix):
            continue
        seq = subject.value[len(prefix):]
        if not _SEQ.fullmatch(seq):
            continue
        entities, named = _iris(statements, _IS_VERSION_OF), _iris(statements, _DERIVED)
        origin = origins.get(named[0]) if len(named) == 1 else None
        if (len(entities) != 1 or origin is None or "#" in entities[0]
                or not in_uri_space(entities[0], origin.uri_space)):
            refused[subject.value] = len(statements)
            continue
        entity, iri = entities[0], subject.value
        parts = [subject] + [s for s in by_subject if type(s) is ox.NamedNode
                             and s.value.startswith(iri + "#")]

        def term(t, iri=iri, entity=entity):
            if type(t) is ox.NamedNode and (t.value == iri or t.value.startswith(iri + "#")):
                return ox.NamedNode(entity + t.value[len(iri):])
            return t

        state = [ox.Triple(term(t.subject), t.predicate, term(t.object))
                 for t in closure(parts, by_subject)
                 if not (t.subject == subject and t.predicate in _MEMBER_LINKS)]
        deleted = ox.Triple(subject, _TYPE, _DELETE) in statements
        members.append(VersionMember(entity, int(seq), iri, deleted, state))
        primary = _iris(statements, _PRIMARY)
        origin_of[iri] = replace(origin, version=primary[0] if len(primary) == 1 else None)
    dropped = Dropped(sum(refused.values()), tuple(f"<{iri}>" for iri in list(refused)[:5]))
    return members, origin_of, dropped
