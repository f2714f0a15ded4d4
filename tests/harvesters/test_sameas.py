"""Same-actor candidates across sources (issue 5 item 9): harvesters/sameas.py.

What must hold: Wikidata id and register number (+ court) give owl:sameAs candidates, a shared
website domain gives a skos:closeMatch only together with a similar name, two entries of one
source are never paired, a platform domain hosting many actors pairs nothing but similar
names, the work is blocked by key (10k actors well under a second: measured, not asserted),
the published triples sit in the index's own graph with a reified reason, and each harvest
round replaces that graph (harvesters.run) instead of adding to it.
"""

from __future__ import annotations

import random
import time

import pyoxigraph as ox
import pytest
from rdflib import Graph, URIRef
from rdflib.namespace import OWL, RDF, SKOS

from harvesters import sameas
from harvesters.fetch import Fetcher, FetchPolicy
from harvesters.model import Member, Page, Source
from harvesters.parse import parse_rdf
from harvesters.run import run_once
from harvesters.sameas import (
    CLOSE_MATCH,
    SAME_AS,
    SAME_AS_GRAPH,
    Candidate,
    candidate_triples,
    candidates,
    name_similarity,
    normalize_court,
    normalize_name,
    normalize_register,
    registrable_domain,
)
from harvesters.settings import HarvestSettings
from harvesters.store import STATE_NS, OxigraphStore, latest_snapshot
from vocab import to_graph


def actor(name: str, **fields) -> dict:
    return {"id": "x", "name": {"de": name}, "actorTypes": ["verein"], **fields}


def made_up_name(rnd: random.Random, words: int = 2) -> str:
    """A name of pseudo-words: unrelated names are as dissimilar as real ones."""
    syllables = "ba ke li mo nu ra se ti vo wu ge ha lu pi ".split()
    return " ".join("".join(rnd.choices(syllables, k=3)).title() for _ in range(words))


def pairs(found: list[Candidate]) -> set[tuple[str, str, str, str]]:
    return {(c.a, c.b, c.reason, c.strength) for c in found}


def test_normalisation_of_names_registers_and_domains():
    assert normalize_name("Tafel Gießen e. V.") == "tafel giessen"
    assert normalize_name("TAFEL GIESSEN eV") == "tafel giessen"
    assert normalize_name("Förderverein Café Olé gGmbH") == "forderverein cafe ole"
    assert normalize_name("Muster UG (haftungsbeschränkt)") == "muster"
    assert normalize_name("Bau GmbH & Co. KG") == "bau"
    assert normalize_name("gemeinnützige Jugendhilfe GmbH") == "jugendhilfe"
    assert normalize_name("e.V.") == "e v"  # never reduced to nothing
    assert normalize_register("VR 1234") == normalize_register("vr1234") == "VR1234"
    assert normalize_register("n/a") is None
    assert normalize_court("Amtsgericht Leipzig") == normalize_court("AG Leipzig") == "leipzig"
    assert registrable_domain("https://WWW.Tafel-Leipzig.de/about") == "tafel-leipzig.de"
    assert registrable_domain("http://spenden.tafel-leipzig.de") == "tafel-leipzig.de"
    assert registrable_domain("https://www.example.co.uk/") == "example.co.uk"
    assert registrable_domain("https://xn--mnchen-3ya.de/") == registrable_domain(
        "https://münchen.de/") == "münchen.de"
    for nothing in ("http://127.0.0.1:5000/", "http://[::1]/", "http://[broken/",
                    "http://localhost/", "mailto:x@example.org", "", None):
        assert registrable_domain(nothing) is None, nothing


def test_wikidata_match_across_sources_is_same_as():
    found = candidates({
        "http://a.test/actors/1": ("a", actor("Tafel Leipzig", wikidata="Q1")),
        "http://b.test/actors/9": ("b", actor("Leipziger Tafel e.V.", wikidata="Q1")),
        "http://b.test/actors/8": ("b", actor("Something else", wikidata="Q2")),
    })
    assert pairs(found) == {("http://a.test/actors/1", "http://b.test/actors/9", "wikidata",
                             SAME_AS)}
    assert found[0].key == "Q1"


def test_register_number_with_court():
    records = {
        "http://a.test/actors/1": ("a", actor("A", registerNumber="VR 1234",
                                              registerCourt="Amtsgericht Leipzig")),
        "http://b.test/actors/1": ("b", actor("B", registerNumber="VR1234",
                                              registerCourt="AG Leipzig")),
        "http://c.test/actors/1": ("c", actor("C", registerNumber="vr 1234")),  # no court
        "http://d.test/actors/1": ("d", actor("D", registerNumber="VR 1234",
                                              registerCourt="Amtsgericht Dresden")),
    }
    found = {(c.a[7:8], c.b[7:8]): c for c in candidates(records)}
    assert found[("a", "b")].strength == SAME_AS and found[("a", "b")].key == "VR1234@leipzig"
    # Numbers are unique per court only: a missing court gives a weaker candidate ...
    assert {found[p].strength for p in (("a", "c"), ("b", "c"), ("c", "d"))} == {CLOSE_MATCH}
    # ... and different courts none at all.
    assert ("a", "d") not in found and ("b", "d") not in found


def test_domain_plus_similar_name_is_close_match():
    found = candidates({
        "http://a.test/actors/1": ("a", actor("Tafel Leipzig e.V.",
                                              url="https://www.tafel-leipzig.de/")),
        "http://b.test/actors/2": ("b", actor("Tafel Leipzig", url="http://tafel-leipzig.de/x")),
        "http://c.test/actors/3": ("c", actor("Förderkreis der Tafel",
                                              url="https://spenden.tafel-leipzig.de/")),
    })
    assert pairs(found) == {("http://a.test/actors/1", "http://b.test/actors/2", "domain-name",
                             CLOSE_MATCH)}
    assert found[0].key == "tafel-leipzig.de" and found[0].score == 1.0


def test_similar_names_tolerate_spelling_and_extra_words():
    assert name_similarity(["muller stiftung"], ["mueller stiftung"]) >= sameas.NAME_THRESHOLD
    assert name_similarity(["tafel leipzig"], ["tafel leipzig nord"]) >= sameas.NAME_THRESHOLD
    assert name_similarity(["tafel"], ["tafel dresden"]) < sameas.NAME_THRESHOLD
    assert name_similarity(["sportverein nord"], ["sportverein sud"]) < sameas.NAME_THRESHOLD


def test_same_source_is_never_paired():
    records = {
        f"http://a.test/actors/{n}": ("a", actor("Tafel Leipzig", wikidata="Q1",
                                                 registerNumber="VR 1", registerCourt="AG L",
                                                 url="https://tafel.de/"))
        for n in range(3)
    }
    assert candidates(records) == []


def test_platform_domain_pairs_only_similar_names():
    """betterplace.org hosts thousands of projects: a shared domain alone pairs nothing."""
    rnd = random.Random(7)
    records = {}
    for source in ("a", "b"):  # 300 per source: more than SMALL_DOMAIN, so blocking is used
        for n in range(300):
            name = f"{made_up_name(rnd)} {rnd.choice(['Verein', 'Projekt', 'Initiative'])}"
            records[f"http://{source}.test/actors/{n}"] = (source, actor(
                name, url=f"https://www.betterplace.org/de/projects/{source}{n}"))
    assert candidates(records) == []
    records["http://a.test/actors/x"] = ("a", actor("Kindertafel Grünau e.V.",
                                                    url="https://www.betterplace.org/p/1"))
    records["http://b.test/actors/y"] = ("b", actor("Kindertafel Grünau",
                                                    url="https://betterplace.org/p/2"))
    assert pairs(candidates(records)) == {("http://a.test/actors/x", "http://b.test/actors/y",
                                           "domain-name", CLOSE_MATCH)}


def test_strongest_evidence_wins_and_shared_junk_keys_are_ignored():
    found = candidates({
        "http://a.test/actors/1": ("a", actor("Tafel", wikidata="Q7", url="https://t.de")),
        "http://b.test/actors/1": ("b", actor("Tafel", wikidata="Q7", url="https://t.de")),
    })
    assert [(c.reason, c.strength) for c in found] == [("wikidata", SAME_AS)]
    junk = {f"http://{s}.test/actors/{n}": (s, actor(f"Name {s}{n}", wikidata="Q1"))
            for s in "ab" for n in range(sameas.MAX_KEY_GROUP)}
    assert candidates(junk) == []  # one id on 128 actors identifies nothing


def test_candidate_triples_in_the_index_graph_with_reified_reason():
    found = candidates({
        "http://a.test/actors/1": ("a", actor("Tafel Leipzig", wikidata="Q1")),
        "http://b.test/actors/1": ("b", actor("Tafel Leipzig", wikidata="Q1")),
        "http://a.test/actors/2": ("a", actor("Chor Nord", url="https://chor.de")),
        "http://c.test/actors/2": ("c", actor("Chor Nord e.V.", url="https://chor.de")),
    })
    triples = candidate_triples(found, "https://index.test/graphs/matches")
    assert triples == candidate_triples(found, "https://index.test/graphs/matches")  # stable
    g = Graph().parse(data="".join(f"{t} .\n" for t in triples), format="nt")
    a1, b1 = URIRef("http://a.test/actors/1"), URIRef("http://b.test/actors/1")
    a2, c2 = URIRef("http://a.test/actors/2"), URIRef("http://c.test/actors/2")
    assert (a1, OWL.sameAs, b1) in g and (a2, SKOS.closeMatch, c2) in g
    notes = set(g.subjects(RDF.type, RDF.Statement))
    assert len(notes) == 2
    for note in notes:
        assert str(note).startswith("https://index.test/graphs/matches#match-")
        fact = (g.value(note, RDF.subject), g.value(note, RDF.predicate), g.value(note, RDF.object))
        assert fact in g
        reason = str(g.value(note, URIRef(STATE_NS + "matchReason")))
        assert reason == ("wikidata" if fact[1] == OWL.sameAs else "domain-name")
    with pytest.raises(ValueError):
        candidate_triples(found, "urn:x-engagement-atlas:source:a")
    with pytest.raises(ValueError):
        candidate_triples(found, "not an iri")


def test_ten_thousand_actors_are_blocked_not_compared_pairwise():
    records = {}
    for n in range(10_000):
        source = "abcde"[n % 5]
        fields = {"url": f"https://verein{n // 5}.de/"} if n % 3 == 0 else {
            "url": f"https://www.betterplace.org/de/projects/{n}"}
        if n % 7 == 0:
            fields["wikidata"] = f"Q{n // 35}"
        if n % 11 == 0:
            fields["registerNumber"], fields["registerCourt"] = f"VR {n // 55}", "AG Leipzig"
        name = made_up_name(random.Random(n // 5), 3)  # the same 5 actors in 5 sources
        records[f"http://{source}.test/actors/{n}"] = (source, actor(name, **fields))
    started = time.perf_counter()
    found = candidates(records)
    elapsed = time.perf_counter() - started
    print(f"\n10k actors: {len(found)} candidates in {elapsed * 1000:.0f} ms")
    assert found and all(records[c.a][0] != records[c.b][0] for c in found)
    assert {c.reason for c in found} == {"wikidata", "register-number", "domain-name"}


# --------------------------------------------------------------------------- published per round


def _member(key: str, n: int, name: str, **fields) -> Member:
    base = f"http://{key}.test"
    data = to_graph("actor", {**actor(name, **fields), "id": f"a{n}"}, base)
    triples = parse_rdf(data.serialize(format="nt", encoding="utf-8"), "application/n-triples",
                        base_iri=None)
    return Member(f"{base}/actors/a{n}", None, None, False, triples)


def test_each_round_replaces_the_candidates_in_the_index_graph(tmp_path):
    """harvesters.run publishes the candidates into SAME_AS_GRAPH after a round: a second
    round with changed data replaces them (nothing accumulates, no source graph changes)."""
    settings = HarvestSettings.from_mapping({"INDEX_STORE": str(tmp_path / "index")})
    for key in ("a", "b"):
        settings.registry().add(Source(key, f"http://{key}.test/", f"http://{key}.test/",
                                       f"http://{key}.test/feed", None))
    rounds = {"a": [[_member("a", 1, "Tafel Halle", wikidata="Q1"),
                     _member("a", 2, "Chor Nord", url="https://chor.de")]],
              "b": [[_member("b", 1, "Tafel Halle", wikidata="Q1"),
                     _member("b", 2, "Chor Nord e.V.", url="https://www.chor.de/x")]]}

    def read(src, cursor, fetcher):
        n = (cursor or {}).get("n", 0)
        return [Page(f"http://{src.id}.test/feed/{n}", rounds[src.id][-1], {"n": n + 1})]

    def candidates_now():
        store = ox.Store.read_only(str(latest_snapshot(settings.store_path)))
        found = {(r["a"].value, r["p"].value.rsplit("#", 1)[1], r["b"].value) for r in store.query(
            f"SELECT ?a ?p ?b WHERE {{ GRAPH <{SAME_AS_GRAPH}> {{ ?n <{RDF.subject}> ?a ; "
            f"<{RDF.predicate}> ?p ; <{RDF.object}> ?b }} }}")}
        direct = {(r["a"].value, r["b"].value) for r in store.query(
            f"SELECT ?a ?b WHERE {{ GRAPH <{SAME_AS_GRAPH}> {{ ?a ?p ?b FILTER(?p IN "
            f"(<{OWL.sameAs}>, <{SKOS.closeMatch}>)) }} }}")}
        assert direct == {(a, b) for a, _p, b in found}
        return found

    fetcher = Fetcher(FetchPolicy(allow_private=True, retries=0))
    assert all(r.ok for r in run_once(settings, every=True, read=read, fetcher=fetcher))
    assert candidates_now() == {("http://a.test/actors/a1", "sameAs", "http://b.test/actors/a1"),
                                ("http://a.test/actors/a2", "closeMatch",
                                 "http://b.test/actors/a2")}

    # b's actor 1 gets another Wikidata item; the choir moves to another website
    rounds["b"].append([_member("b", 1, "Tafel Halle", wikidata="Q2"),
                        _member("b", 2, "Chor Nord e.V.", url="https://chor-nord.de")])
    rounds["a"].append([_member("a", 3, "Chor Nord", url="https://chor-nord.de")])
    assert all(r.ok for r in run_once(settings, every=True, read=read, fetcher=fetcher))
    assert candidates_now() == {("http://a.test/actors/a3", "closeMatch",
                                 "http://b.test/actors/a2")}
    with OxigraphStore(settings.store_path) as store:
        assert store.sources() == {"a", "b"}
        assert SAME_AS_GRAPH not in store.graphs_of("a") | store.graphs_of("b")
        assert store.graphs_of("a") == {f"http://a.test/actors/a{n}" for n in (1, 2, 3)}
