"""The verdict on each harvested entity: caps, nested nodes, the vocabulary's SHACL shapes.

Why: an entity that breaks the vocabulary's shapes is quarantined with its reasons
instead of being loaded, while warnings are loaded and reported (issue 5 item 5).
`harvesters.fastcheck` decides the entities that certainly conform; pyshacl
(`vocab.shapes.validate`) stays the reference and judges everything else, on an rdflib
copy of the entity's `pyoxigraph.Triple` statements.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache

import pyoxigraph as ox
from rdflib import Graph

from vocab import ENTITIES
from vocab.mapping import iter_fields
from vocab.resources import shapes as bundled_shapes
from vocab.shapes import ValidationResult, validate

from . import fastcheck
from .parse import DEFAULT_LIMITS, ParseLimits, quiet_ill_typed, to_rdflib

__all__ = ["Verdict", "check_entities", "check_entity"]

Triple = ox.Triple
_SUBCLASS = ox.NamedNode("http://www.w3.org/2000/01/rdf-schema#subClassOf")
# Predicates whose objects are nested resources ({entity}#fragment) per the entity table.
_NODE_FIELDS = {ox.NamedNode(str(f.predicate)): f.key for spec in ENTITIES.values()
                for f in iter_fields(spec.fields) if f.kind == "node"}


@dataclass(frozen=True)
class Verdict:
    """Whether an entity may be loaded; violations quarantine it, warnings are reported."""

    accepted: bool
    violations: list[ValidationResult]
    warnings: list[ValidationResult]

    @property
    def reasons(self) -> list[str]:
        """One line per violation, "field: message", for the status page and run records."""
        return [r.message if r.field and r.message.startswith(f"{r.field}:")
                else f"{r.field or 'entity'}: {r.message}" for r in self.violations]


def check_entity(entity_iri: str, triples: Sequence[Triple], *,
                 limits: ParseLimits = DEFAULT_LIMITS) -> Verdict:
    """The verdict on one entity's statements (caps, nested nodes, SHACL shapes)."""
    return check_entities({entity_iri: triples}, limits=limits)[entity_iri]


def check_entities(groups: Mapping[str, Sequence[Triple]], *,
                   limits: ParseLimits = DEFAULT_LIMITS,
                   batch_size: int = 250, fast: bool = True) -> dict[str, Verdict]:
    """Verdicts for many entities; SHACL runs once per batch, results split by focus node.

    Measured here (2 cores, a 40-triple actor): one pyshacl call per entity ~9-13 ms,
    batches of 100-1,000 ~4-5 ms per entity (larger batches grow slightly worse).
    A result belongs to the entity whose IRI is its focus node or the part before
    "#", or that reaches the blank node. Entities over a cap or with foreign nested
    nodes are quarantined without running SHACL on them.

    ``fast`` (default): entities `fastcheck` can read exactly and that certainly conform
    get its results (~0.1 ms instead of pyshacl's milliseconds); pyshacl judges the rest.
    When an entity states things about other entities' subjects or about classes
    (rdfs:subClassOf), entities could affect each other's results in one SHACL graph, so
    then the whole lot goes to pyshacl as before (``fast=False``: always).
    """
    results: dict[str, list[ValidationResult]] = {}
    checked: dict[str, Sequence[Triple]] = {}
    # `simple` entities have no blank nodes: _structure need not look for them
    simple = {iri: fastcheck.simple(iri, triples) for iri, triples in groups.items()} if (
        fast) else {}
    for iri, triples in groups.items():
        results[iri] = _structure(iri, triples, limits, blank_free=simple.get(iri, False))
        if not results[iri]:
            checked[iri] = triples
    if fast and all(simple[iri] or _self_contained(iri, triples)
                    for iri, triples in checked.items()):
        rest = {}
        for iri, triples in checked.items():
            found = fastcheck.conforming(triples) if simple[iri] else None
            if found is None:
                rest[iri] = triples
            else:
                results[iri] = found
        checked = rest
    batch: dict[str, Sequence[Triple]] = {}
    for iri, triples in checked.items():
        batch[iri] = triples
        if len(batch) >= batch_size:
            _validate_batch(batch, results)
            batch = {}
    if batch:
        _validate_batch(batch, results)
    violations = {iri: [r for r in found if r.severity == "Violation"]
                  for iri, found in results.items()}
    return {iri: Verdict(not violations[iri], violations[iri],
                         [r for r in found if r.severity != "Violation"])
            for iri, found in results.items()}


def _self_contained(iri: str, triples: Sequence[Triple]) -> bool:
    """Statements only about ``iri``, its #fragments and blank nodes, none about classes."""
    if "#" in iri:
        return False
    own = iri + "#"
    for t in triples:
        s = t.subject
        if t.predicate == _SUBCLASS or (type(s) is ox.NamedNode and not (
                s.value == iri or s.value.startswith(own))) or type(s) is ox.Literal:
            return False
    return True


def _structure(iri: str, triples: Sequence[Triple], limits: ParseLimits, *,
               blank_free: bool = False) -> list[ValidationResult]:
    """Per-entity caps, and nested resources that must be the entity's own fragments.
    ``blank_free``: the caller knows there are no blank nodes (`fastcheck.simple`)."""
    problems = []
    blanks = () if blank_free else {
        t for tr in triples for t in (tr.subject, tr.object) if type(t) is ox.BlankNode}
    for count, cap, what in ((len(triples), "max_triples_per_entity", "statements"),
                             (len(blanks), "max_blank_nodes_per_entity", "blank nodes")):
        if count > getattr(limits, cap):
            problems.append(ValidationResult(iri, None, "Violation", (
                f"more than {getattr(limits, cap)} {what} ({count}; ParseLimits.{cap})")))
    for t in triples:
        key = _NODE_FIELDS.get(t.predicate)
        if key and (type(t.object) is not ox.NamedNode
                    or not t.object.value.startswith(iri + "#")):
            # vocab.mapping: nested resources are {entity}#fragment; anything else would
            # make the verdict depend on other entities' statements.
            problems.append(ValidationResult(iri, key, "Violation",
                                             f"{key}: must be a fragment IRI of {iri}"))
    return problems


def _validate_batch(batch: Mapping[str, Sequence[Triple]],
                    results: dict[str, list[ValidationResult]]) -> None:
    owners: dict[str, set[str]] = defaultdict(set)
    for iri, triples in batch.items():
        for t in triples:
            for term in (t.subject, t.object):
                if type(term) is ox.BlankNode:
                    owners[term.value].add(iri)
    try:
        with quiet_ill_typed():
            found = validate(to_rdflib(t for triples in batch.values() for t in triples),
                             _shapes())
    except Exception:  # noqa: BLE001 - one broken entity must not sink the batch
        items = list(batch.items())
        if len(items) > 1:  # bisect down to the entities the validator cannot handle
            _validate_batch(dict(items[:len(items) // 2]), results)
            _validate_batch(dict(items[len(items) // 2:]), results)
            return
        logging.getLogger(__name__).exception("SHACL validation failed for %s", items[0][0])
        results[items[0][0]].append(
            ValidationResult(items[0][0], None, "Violation", "validation failed"))
        return
    for result in found:
        focus = result.focus
        for iri in owners.get(focus) or {focus.split("#", 1)[0]}:
            if iri in results:
                results[iri].append(result)


@cache
def _shapes() -> Graph:
    """The bundled shapes in rdflib's context-free store: pyshacl reads it ~25% faster."""
    copy = Graph(store="SimpleMemory")
    for triple in bundled_shapes():
        copy.add(triple)
    return copy
