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
from harvesters.search import records_from_triples
from harvesters.store import STATE_NS, source_graph

__all__ = ["entity_view", "source_ids", "source_status"]

Query = Callable[[str], Any]
PROV = "http://www.w3.org/ns/prov#"
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
        },
        "quarantine": ({"reasons": sorted(prov["quarantineReason"]),
                        "at": next(iter(prov.get("quarantinedAt", [])), None)}
                       if "quarantineReason" in prov else None),
        "triples": sorted((str(t.subject), str(t.predicate), str(t.object)) for t in triples),
    }
