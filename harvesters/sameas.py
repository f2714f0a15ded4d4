"""Candidates for "the same real-world actor" published by several sources (issue 5 item 9).

Why: two nodes (a city's and a district's, a node and a national portal) often describe the
same association. The index never merges or alters what a source said; it publishes
CANDIDATES in its own graph, shown on entity pages, and people decide. Pairs are only ever
formed across different sources:

- same Wikidata item -> ``owl:sameAs`` (reason ``wikidata``);
- same register number (``"VR 1234"`` == ``"vr1234"``) and court (``"AG Leipzig"`` ==
  ``"Amtsgericht Leipzig"``) -> ``owl:sameAs`` (reason ``register-number``); numbers are
  unique per court only, so if either side lacks the court: ``skos:closeMatch``; two
  different courts: no pair;
- same registrable website domain (lower-case, ``www.`` and other sub-domains dropped) AND
  similar names -> ``skos:closeMatch`` (reason ``domain-name``); a domain alone proves nothing
  (betterplace.org or a city portal hosts many actors).

Names are compared after `normalize_name` (case folded, ß -> ss, diacritics and legal forms
such as e.V./gGmbH/UG (haftungsbeschränkt) dropped); similar means ``difflib`` ratio >=
`NAME_THRESHOLD`, or the shorter name's token set (2+ tokens) inside the other's. The
registrable domain is the last two labels, three under a known two-level suffix
(`_TWO_LEVEL`); the Public Suffix List is not bundled, which the name condition makes harmless.

Cost: blocked by key (dicts per Wikidata id / register number / domain), never O(n^2) over
all actors; inside a big domain names are blocked again by their two rarest words. A key
shared by more than `MAX_KEY_GROUP` actors identifies nothing and is skipped.

Where they go: `SAME_AS_GRAPH`, ONE graph the index owns. After each harvest round
`harvesters.run` recomputes all candidates (`SearchIndex.same_actor_candidates`) and replaces
that graph as a whole (`IndexStore.replace_graph`, one transaction): candidates that no longer
hold disappear, nothing accumulates, and no source graph is ever touched. Its IRI is a stable
URN rather than ``{BASE_URL}/index/same-as``: the harvester does not know BASE_URL (it runs
without the web configuration, and with a remote store several services may read one
index), and a graph name that changed with BASE_URL would leave the old graph behind in
the store. The index's SPARQL endpoint (/index/sparql) and entity pages read it.

Vocabulary of `candidate_triples` (in the index's own graph, never a source graph): ``<a>
owl:sameAs|skos:closeMatch <b>`` plus a note ``<{graph}#match-{hash}>`` reifying it (RDF 1.1:
``a rdf:Statement; rdf:subject; rdf:predicate; rdf:object``) with ``idx:matchReason`` (slug
above), ``idx:matchKey`` (shared value), ``idx:matchScore`` (name similarity, xsd:decimal),
``rdfs:comment``, ``prov:wasDerivedFrom`` both entities and optionally
``prov:generatedAtTime``; ``idx:`` = `harvesters.store.STATE_NS`.
"""

from __future__ import annotations

import difflib
import hashlib
import ipaddress
import re
import unicodedata
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from itertools import combinations
from typing import Any
from urllib.parse import urlsplit

import pyoxigraph as ox

from vocab.namespaces import OWL, PROV, RDF, RDFS, SKOS, XSD

from .store import STATE_NS
from .store.sparql import SOURCE_GRAPH_PREFIX

__all__ = ["CLOSE_MATCH", "NAME_THRESHOLD", "SAME_AS", "SAME_AS_GRAPH", "ActorKeys",
           "Candidate", "actor_keys", "candidate_triples", "candidates", "candidates_from_keys",
           "domain_pairs", "name_similarity", "normalize_court", "normalize_name",
           "normalize_register", "registrable_domain"]

SAME_AS, CLOSE_MATCH = "sameAs", "closeMatch"
SAME_AS_GRAPH = "urn:x-engagement-atlas:index:same-as"  # the index's own graph (docstring)
NAME_THRESHOLD, WORD_THRESHOLD = 0.85, 0.75
MAX_KEY_GROUP = 64       # actors sharing one Wikidata id / register number before it is ignored
SMALL_DOMAIN = 40        # up to this many actors on a domain: compare every cross-source pair
MAX_BLOCK = 400          # name blocks larger than this inside one domain are not compared
_PREDICATE = {SAME_AS: str(OWL.sameAs), CLOSE_MATCH: str(SKOS.closeMatch)}
_WORD = re.compile(r"[^\W_]+")
# Legal-form endings (as folded tokens), longest first; German forms plus common others.
_LEGAL = sorted({("e", "v"), ("ev",), ("n", "e", "v"), ("nev",), ("ggmbh",), ("gmbh",), ("mbh",),
                 ("ug",), ("gug",), ("haftungsbeschrankt",), ("ag",), ("gag",), ("eg",),
                 ("kg",), ("gbr",), ("co",), ("ltd",), ("inc",), ("ggbr",), ("kgaa",)},
                key=len, reverse=True)
_LEADING = {"gemeinnutzige", "gemeinnutziger", "gemeinnutziges"}
_STOP = {"der", "die", "das", "und", "fur", "von", "im", "in", "am", "zu", "the", "and", "of",
         "for"}
_TWO_LEVEL = {"co.uk", "org.uk", "ac.uk", "gov.uk", "me.uk", "co.at", "or.at", "gv.at",
              "ac.at", "com.au", "org.au", "net.au", "co.nz", "org.nz", "com.br", "org.br",
              "co.jp", "or.jp", "com.tr", "org.tr", "com.pl", "org.pl", "co.za", "org.za"}


@dataclass(frozen=True, order=True)
class Candidate:
    """A candidate pair (``a < b``, different sources) and why it was proposed."""

    a: str
    b: str
    reason: str          # "wikidata" | "register-number" | "domain-name"
    strength: str        # SAME_AS | CLOSE_MATCH
    key: str = ""        # the shared value: "Q42", "VR1234@leipzig", "example.org"
    score: float = 1.0   # name similarity (domain-name); 1.0 for identifiers


@dataclass(frozen=True)
class ActorKeys:
    """What matching looks at, normalised once per actor (the search index stores these)."""

    source: str
    register: str | None = None
    court: str | None = None
    wikidata: str | None = None
    domain: str | None = None
    names: tuple[str, ...] = ()


def _fold(text: str) -> str:
    """Case folded (``ß`` -> ``ss``), compatibility-decomposed, combining marks dropped."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def normalize_name(name: str) -> str:
    """A name reduced for comparison: ``"Tafel Gießen e. V."`` -> ``"tafel giessen"``."""
    tokens = _WORD.findall(_fold(name))
    while form := next((f for f in _LEGAL if len(tokens) > len(f)  # never strip the whole name
                        and tuple(tokens[-len(f):]) == f), None):
        del tokens[-len(form):]
    while len(tokens) > 1 and tokens[0] in _LEADING:
        del tokens[0]
    return " ".join(tokens)


def normalize_register(number: str | None) -> str | None:
    """Register number without spaces/punctuation, upper-case; None if it has no digit."""
    text = "".join(_WORD.findall(_fold(number or ""))).upper()
    return text if any(c.isdigit() for c in text) else None


def normalize_court(court: str | None) -> str | None:
    """``"Amtsgericht Leipzig"`` and ``"AG Leipzig"`` -> ``"leipzig"``; None if empty."""
    tokens = [t for t in _WORD.findall(_fold(court or ""))
              if t not in {"amtsgericht", "ag", "registergericht", "gericht"}]
    return " ".join(tokens) or None


def registrable_domain(url: str | None) -> str | None:
    """``https://WWW.Tafel-Leipzig.de/x`` -> ``tafel-leipzig.de``; None for IPs and hosts
    without a dot (they identify nothing)."""
    host = ""
    try:  # ValueError: a broken URL, an IDN that does not decode, or no IP address (good)
        host = (urlsplit(url or "").hostname or "").rstrip(".").lower()
        if "xn--" in host:  # IDNA (RFC 5891) A-labels to Unicode: both spellings agree
            host = host.encode("ascii").decode("idna")
        ipaddress.ip_address(host)
        return None  # an IP address identifies no organisation
    except ValueError:
        pass
    labels = [label for label in host.split(".") if label]
    if len(labels) < 2:
        return None
    n = 3 if len(labels) >= 3 and ".".join(labels[-2:]) in _TWO_LEVEL else 2
    return ".".join(labels[-n:])


def actor_keys(source_id: str, record: Mapping[str, Any]) -> ActorKeys:
    """The matching keys of an actor record (`vocab.mapping` record shape)."""
    raw = [*(record.get("name") or {}).values(), *(record.get("alternateName") or ())]
    names = tuple(dict.fromkeys(n for n in map(normalize_name, raw) if n))
    return ActorKeys(source_id, normalize_register(record.get("registerNumber")),
                     normalize_court(record.get("registerCourt")), record.get("wikidata"),
                     registrable_domain(record.get("url")), names)


def _tokens(name: str) -> set[str]:
    return {t for t in name.split() if t not in _STOP and len(t) > 1}


def _ratio(x: str, y: str) -> float:
    matcher = difflib.SequenceMatcher(None, x, y, autojunk=False)
    if matcher.real_quick_ratio() < NAME_THRESHOLD or matcher.quick_ratio() < NAME_THRESHOLD:
        return 0.0  # upper bounds of ratio(): skip the expensive part
    return matcher.ratio()


def _pair_score(x: str, y: str) -> float:
    tx, ty = sorted((_tokens(x), _tokens(y)), key=len)
    if x == y or (len(tx) >= 2 and tx <= ty):  # equal, or all words of the shorter name
        return max(NAME_THRESHOLD, 2 * len(tx) / (len(tx) + len(ty))) if x != y else 1.0
    # Close as strings AND each word of the shorter name close to one of the other's:
    # "Förderverein Grundschule Nord" / "... Süd" are two actors, "Müller"/"Mueller" one.
    score = _ratio(x, y)
    return score if score and all(max(difflib.SequenceMatcher(None, t, u).ratio() for u in ty)
                                  >= WORD_THRESHOLD for t in tx) else 0.0


def name_similarity(a: Iterable[str], b: Iterable[str]) -> float:
    """Best similarity between any two normalised names (0..1); similar if >= NAME_THRESHOLD."""
    b = list(b)
    return max((_pair_score(x, y) for x in a for y in b), default=0.0)


def domain_pairs(members: list[tuple[str, ActorKeys]]) -> Iterator[tuple[int, int, float]]:
    """Index pairs (i, j, score) of cross-source members of ONE domain with similar names."""
    if len({k.source for _, k in members}) < 2:
        return
    if len(members) <= SMALL_DOMAIN:
        pairs: Iterable[tuple[int, int]] = combinations(range(len(members)), 2)
    else:  # block by each name's two rarest words (similar names share one of them)
        freq = Counter(t for _, k in members for t in {t for n in k.names for t in _tokens(n)})
        blocks: dict[str, list[int]] = defaultdict(list)
        for i, (_, k) in enumerate(members):
            tokens = sorted({t for n in k.names for t in _tokens(n)}, key=lambda t: (freq[t], t))
            for key in tokens[:2]:
                blocks[key].append(i)
        found: set[tuple[int, int]] = set()
        for ids in blocks.values():
            if len(ids) <= MAX_BLOCK:
                found.update(combinations(ids, 2))
        pairs = sorted(found)
    for i, j in pairs:
        ki, kj = members[i][1], members[j][1]
        if ki.source != kj.source:
            score = name_similarity(ki.names, kj.names)
            if score >= NAME_THRESHOLD:
                yield i, j, score


def _grouped(keys: Mapping[str, ActorKeys], attr: str) -> Iterator[tuple[str, list[str]]]:
    groups: dict[str, list[str]] = defaultdict(list)
    for entity, k in keys.items():
        value = getattr(k, attr)
        if value:
            groups[value].append(entity)
    for value, entities in groups.items():
        if 1 < len(entities) <= MAX_KEY_GROUP:
            yield value, sorted(entities)


def candidates_from_keys(keys: Mapping[str, ActorKeys]) -> list[Candidate]:
    """Candidates among actors given by their keys ({entity IRI: ActorKeys})."""
    found: dict[tuple[str, str], Candidate] = {}

    def add(a: str, b: str, *args: Any) -> None:
        a, b = min(a, b), max(a, b)
        candidate = Candidate(a, b, *args)
        old = found.get((a, b))
        if old is None or (old.strength == CLOSE_MATCH and candidate.strength == SAME_AS):
            found[(a, b)] = candidate

    for qid, entities in _grouped(keys, "wikidata"):
        for a, b in combinations(entities, 2):
            if keys[a].source != keys[b].source:
                add(a, b, "wikidata", SAME_AS, qid)
    for number, entities in _grouped(keys, "register"):
        for a, b in combinations(entities, 2):
            ka, kb = keys[a], keys[b]
            if ka.source == kb.source or (ka.court and kb.court and ka.court != kb.court):
                continue
            sure = bool(ka.court and kb.court)
            add(a, b, "register-number", SAME_AS if sure else CLOSE_MATCH,
                f"{number}@{ka.court}" if sure else number)
    by_domain: dict[str, list[tuple[str, ActorKeys]]] = defaultdict(list)
    for entity, k in keys.items():
        if k.domain and k.names:
            by_domain[k.domain].append((entity, k))
    for domain, members in by_domain.items():
        for i, j, score in domain_pairs(members):
            add(members[i][0], members[j][0], "domain-name", CLOSE_MATCH, domain, round(score, 3))
    return sorted(found.values())


def candidates(records_by_entity: Mapping[str, tuple[str, Mapping[str, Any]]]) -> list[Candidate]:
    """Candidates among actor records: ``{entity IRI: (source id, record)}``."""
    return candidates_from_keys({entity: actor_keys(source, record)
                                 for entity, (source, record) in records_by_entity.items()})


_REASON_TEXT = {"wikidata": "same Wikidata item {}", "register-number": "same register entry {}",
                "domain-name": "similar names on the website domain {}"}


def candidate_triples(found: Iterable[Candidate], index_graph_iri: str, *,
                      generated: datetime | None = None) -> list[ox.Triple]:
    """The candidates as triples for the graph ``index_graph_iri`` (the index's own graph):
    the direct statement plus a reified note with the reason (vocabulary: module docstring).
    Note IRIs hash (a, b, reason): recomputing gives the same triples, so the caller simply
    replaces the graph, e.g. ``Batch(<index id>, replacements={index_graph_iri: triples})``."""
    if index_graph_iri.startswith(SOURCE_GRAPH_PREFIX):
        raise ValueError("match candidates never go into a source's graph")
    base, iri, out = ox.NamedNode(index_graph_iri).value.split("#")[0], ox.NamedNode, []
    for c in found:
        a, b, predicate = iri(c.a), iri(c.b), iri(_PREDICATE[c.strength])
        digest = hashlib.sha256(f"{c.a}\n{c.b}\n{c.reason}".encode()).hexdigest()[:20]
        note = iri(f"{base}#match-{digest}")
        facts = [(RDF.type, iri(str(RDF.Statement))), (RDF.subject, a), (RDF.predicate, predicate),
                 (RDF.object, b), (STATE_NS + "matchReason", ox.Literal(c.reason)),
                 (STATE_NS + "matchKey", ox.Literal(c.key)),
                 (STATE_NS + "matchScore", ox.Literal(f"{c.score:.3f}",
                                                      datatype=iri(str(XSD.decimal)))),
                 (RDFS.comment, ox.Literal(_REASON_TEXT[c.reason].format(c.key), language="en")),
                 (PROV.wasDerivedFrom, a), (PROV.wasDerivedFrom, b)]
        if generated is not None:
            facts.append((PROV.generatedAtTime, ox.Literal(generated.isoformat(),
                                                           datatype=iri(str(XSD.dateTime)))))
        out += [ox.Triple(a, predicate, b), *(ox.Triple(note, iri(str(p)), o) for p, o in facts)]
    return list(dict.fromkeys(out))  # a pair listed twice states its triples once
