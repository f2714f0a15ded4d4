"""Reading the index for the index service: source status and harvested entities (no Flask).

Why apart from service/index.py: the views only negotiate and render; what a source's last
run did and what the index holds about one entity is read here from the store's bookkeeping
(the PROV-O terms `harvesters.pipeline` writes into each source graph; ``idx:`` =
`harvesters.store.STATE_NS`). ``query`` is any callable answering SPARQL with pyoxigraph
results: a read-only `pyoxigraph.Store` opened on a published snapshot, or a remote store.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import pyoxigraph as ox

from harvesters.model import Source
from harvesters.sameas import SAME_AS_GRAPH
from harvesters.search import records_from_triples
from harvesters.store import STATE_NS, source_graph
from vocab import ENTITIES
from vocab.terms import concept_label

__all__ = ["FACET_SCHEMES", "concept_labels", "entity_view", "same_actor_candidates",
           "source_ids", "source_status"]

Query = Callable[[str], Any]
PROV = "http://www.w3.org/ns/prov#"
_RDF = "http://www.w3.org/1999/02/22-rdf-syntax-ns#"
_RELATIONS = {"http://www.w3.org/2002/07/owl#sameAs": "sameAs",
              "http://www.w3.org/2004/02/skos/core#closeMatch": "closeMatch"}
# Record keys holding SKOS notations, and their scheme (the same in every kind of entity).
FACET_SCHEMES = {f.key: f.scheme for spec in ENTITIES.values() for f in spec.fields
                 if f.kind == "concept"}
_COUNTS = ("pages", "membersApplied", "deletes", "quarantinedCount", "warnings", "dropped",
           "rejected")
MAX_QUARANTINED = 500  # listed per source on the status page (all are counted)


def _rows(result: Iterable[Any]) -> list[dict[str, str]]:
    """Solutions as {variable: lexical value}; unbound variables left out."""
    names = [v.value for v in result.variables]  # type: ignore[attr-defined]
    out = []
    for solution in result:
        out.append({n: solution[n].value for n in names if solution[n] is not None})
    return out


def _local(iri: str) -> str:
    return iri.rsplit("#", 1)[-1].rsplit("/", 1)[-1]


def source_ids(query: Query) -> set[str]:
    """Ids of every source with a source graph in the index."""
    return {r["id"] for r in _rows(query(
        f"SELECT ?id WHERE {{ GRAPH ?sg {{ ?sg <{STATE_NS}sourceId> ?id }} }}"))}


def _last_run(query: Query, sg: str) -> dict[str, Any] | None:
    runs: dict[str, dict[str, Any]] = {}
    for r in _rows(query(f"SELECT ?run ?p ?o WHERE {{ GRAPH {sg} {{ ?run a <{PROV}Activity> ;"
                         " ?p ?o } }")):
        run = runs.setdefault(r["run"], {"run": r["run"], "counts": {}, "errors": []})
        name = _local(r["p"])
        if name in _COUNTS:
            run["counts"][name] = int(r["o"])
        elif name == "error":
            run["errors"].append(r["o"])
        elif name in ("startedAtTime", "endedAtTime"):
            run["started" if name.startswith("start") else "ended"] = r["o"]
        elif name == "succeeded":
            run["ok"] = r["o"] == "true"
    if not runs:
        return None
    newest = max(runs.values(), key=lambda run: (run.get("ended", ""), run["run"]))
    newest["errors"].sort()
    return newest


def source_status(query: Query, source_id: str, source: Source | None = None) -> dict[str, Any]:
    """One source: registration, entities held, newest run, quarantined entities with reasons."""
    sg = str(ox.NamedNode(source_graph(source_id)))
    count = _rows(query(f"SELECT (COUNT(?g) AS ?n) WHERE {{ GRAPH {sg} {{ ?g "
                        f"<{STATE_NS}inSource> {sg} }} }}"))
    quarantined: dict[str, dict[str, Any]] = {}
    for r in _rows(query(f"SELECT ?e ?r ?at WHERE {{ GRAPH {sg} {{ ?e <{STATE_NS}"
                         f"quarantineReason> ?r OPTIONAL {{ ?e <{STATE_NS}quarantinedAt> ?at }}"
                         " } } ORDER BY ?e ?r")):
        item = quarantined.setdefault(r["e"], {"entity": r["e"], "reasons": [],
                                               "at": r.get("at")})
        if r["r"] not in item["reasons"]:
            item["reasons"].append(r["r"])
    return {
        "id": source_id,
        "registered": source is not None,
        "kind": source.kind if source else None,
        "name": source.name if source else "",
        "entry_url": source.entry_url if source else None,
        "uri_space": source.uri_space if source else None,
        "entities": int(count[0].get("n", 0)) if count else 0,
        "last_run": _last_run(query, sg),
        "quarantined_count": len(quarantined),
        "quarantined": list(quarantined.values())[:MAX_QUARANTINED],
    }


def concept_labels(record: dict[str, Any] | None, lang: str = "de") -> dict[str, dict[str, str]]:
    """{record key: {notation: SKOS label}} for the concept fields of ``record``: the German
    label, else the English one, else the notation (`vocab.terms.concept_label`)."""
    out: dict[str, dict[str, str]] = {}
    for key, value in (record or {}).items():
        scheme = FACET_SCHEMES.get(key)
        if scheme is None:
            continue
        values = [value] if isinstance(value, str) else value if isinstance(value, list) else []
        out[key] = {v: concept_label(scheme, v, lang) for v in values if isinstance(v, str)}
    return out


def same_actor_candidates(query: Query, node: str) -> list[dict[str, Any]]:
    """The index's candidates for "the same actor" as entity ``node`` (``<iri>``, checked):
    the other entity, owl:sameAs or skos:closeMatch, reason, shared key, score, comment, and
    the other's source and names (`harvesters.sameas`, graph `SAME_AS_GRAPH`)."""
    rows = _rows(query(
        f"SELECT ?other ?relation ?reason ?key ?score ?comment ?source ?name WHERE {{ "
        f"GRAPH <{SAME_AS_GRAPH}> {{ ?note a <{_RDF}Statement> ; <{_RDF}predicate> ?relation ; "
        f"<{STATE_NS}matchReason> ?reason . "
        f"{{ ?note <{_RDF}subject> {node} ; <{_RDF}object> ?other }} UNION "
        f"{{ ?note <{_RDF}object> {node} ; <{_RDF}subject> ?other }} "
        f"OPTIONAL {{ ?note <{STATE_NS}matchKey> ?key }} "
        f"OPTIONAL {{ ?note <{STATE_NS}matchScore> ?score }} "
        f"OPTIONAL {{ ?note <http://www.w3.org/2000/01/rdf-schema#comment> ?comment }} }} "
        f"OPTIONAL {{ GRAPH ?sg {{ ?other <{STATE_NS}inSource> ?sg . ?sg <{STATE_NS}sourceId> "
        f"?source }} }} "
        f"OPTIONAL {{ GRAPH ?other {{ ?other <https://schema.org/name> ?name }} }} }}"))
    found: dict[tuple[str, str], dict[str, Any]] = {}
    for r in rows:
        relation = _RELATIONS.get(r["relation"])
        if relation is None:
            continue
        item = found.setdefault((r["other"], r["reason"]), {
            "entity": r["other"], "relation": relation, "predicate": r["relation"],
            "reason": r["reason"], "key": r.get("key"), "comment": r.get("comment"),
            "score": float(r["score"]) if r.get("score") else None,
            "source": r.get("source"), "names": []})
        if r.get("name") and r["name"] not in item["names"]:
            item["names"].append(r["name"])
    # owl:sameAs first, then the closest; one entry per other entity and reason
    return sorted(found.values(), key=lambda c: (c["relation"] != "sameAs",
                                                 -(c["score"] or 0), c["entity"], c["reason"]))


def entity_view(query: Query, iri: str) -> dict[str, Any] | None:
    """What the index holds about entity ``iri``: its triples, the record they map to, its
    provenance (source, retrieval time, version) or quarantine; None if unknown.

    ValueError when ``iri`` is not an IRI (never spliced into SPARQL unchecked).
    """
    node = str(ox.NamedNode(iri))
    triples = list(query(f"CONSTRUCT {{ ?s ?p ?o }} WHERE {{ GRAPH {node} {{ ?s ?p ?o }} }}"))
    prov: dict[str, list[str]] = {}
    source = None
    for r in _rows(query(f"SELECT ?id ?p ?o WHERE {{ GRAPH ?sg {{ ?sg <{STATE_NS}sourceId> ?id"
                         f" . {node} ?p ?o }} }}")):
        source = r["id"]
        prov.setdefault(_local(r["p"]), []).append(r["o"])
    if not triples and source is None:
        return None
    found = records_from_triples(iri, triples) if triples else None
    return {
        "iri": iri,
        "source": source,
        "kind": found[0] if found else None,
        "record": found[1] if found else None,
        "provenance": {
            "source_entry": next(iter(prov.get("wasDerivedFrom", [])), None),
            "retrieved": next(iter(prov.get("generatedAtTime", [])), None),
            "run": next(iter(prov.get("wasGeneratedBy", [])), None),
            "version": next(iter(prov.get("hadPrimarySource", [])), None),
            "version_timestamp": next(iter(prov.get("versionTimestamp", [])), None),
            "warnings": sorted(prov.get("warning", [])),
            # the trusted intermediary index it came through (idx:harvestedVia), else None
            "via": next(iter(prov.get("harvestedVia", [])), None),
        },
        "quarantine": ({"reasons": sorted(prov["quarantineReason"]),
                        "at": next(iter(prov.get("quarantinedAt", [])), None)}
                       if "quarantineReason" in prov else None),
        "labels": concept_labels(found[1] if found else None),
        "same_as": same_actor_candidates(query, node),
        "triples": sorted((str(t.subject), str(t.predicate), str(t.object)) for t in triples),
    }
