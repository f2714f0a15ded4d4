"""The search side index (issue 5 item 8, search part): harvesters/search.py.

What must hold: names, alternate names and descriptions are found in every language with
German folding (ß, umlauts, accents); user input can never act as FTS5 syntax; the last word
is a prefix; facets combine (OR within a key, AND across keys) and are counted; one source is
dropped without touching the others; updates and deletes replace what was indexed; a batch
is applied in one transaction; the pipeline's Batch (real harvested triples) feeds the index;
concurrent readers and a writer coexist; SQL-side same-actor candidates equal sameas'.
"""

from __future__ import annotations

import sqlite3
import threading

import pyoxigraph as ox
import pytest

from harvesters.errors import StoreError
from harvesters.model import Source
from harvesters.parse import parse_rdf
from harvesters.sameas import candidates
from harvesters.search import FACET_KEYS, SearchIndex, fts_query, records_from_triples
from harvesters.store import Batch, OxigraphStore
from vocab import normalize, to_graph

A, B = "http://a.test", "http://b.test"


def actor(n: int | str, name: str | dict, **fields) -> dict:
    names = name if isinstance(name, dict) else {"de": name}
    return {"id": f"a{n}", "name": names, "actorTypes": ["verein"], **fields}


def iri(base: str, record: dict, collection: str = "actors") -> str:
    return f"{base}/{collection}/{record['id']}"


def triples(kind: str, record: dict, base: str) -> list[ox.Triple]:
    data = to_graph(kind, record, base).serialize(format="nt", encoding="utf-8")
    return parse_rdf(data, "application/n-triples", base_iri=None)


@pytest.fixture
def index(tmp_path):
    ix = SearchIndex(tmp_path / "search.db")
    yield ix
    ix.close()


def put(ix: SearchIndex, base: str, source: str, *records: dict, kind: str = "actor") -> None:
    ix.apply(source, {iri(base, r, kind + "s"): (kind, r) for r in records})


def found(ix: SearchIndex, q: str | None = None, **facets) -> list[str]:
    return [hit.entity.rsplit("/", 1)[-1] for hit in ix.search(q, facets, per_page=100).items]


def test_records_from_harvested_triples():
    record = actor(1, {"de": "Tafel Gießen", "en": "Food bank"}, url="https://tafel.de/",
                   description={"de": "Lebensmittel retten"}, wikidata="Q42",
                   address={"postalCode": "35390", "addressLocality": "Gießen"},
                   contactPoints=[{"contactType": {"de": "Beratung"}, "availableLanguage": ["ar"]}])
    kind, got = records_from_triples(iri(A, record), triples("actor", record, A))
    assert (kind, got) == ("actor", normalize("actor", record))
    project = {"id": "p1", "name": {"de": "Projekt"}}
    assert records_from_triples(f"{A}/projects/p1", triples("project", project, A))[0] == "project"
    # Not an Atlas entity, or an entity type under the wrong collection: nothing to index.
    assert records_from_triples(f"{A}/projects/a1", triples("actor", record, A)) is None
    other = [ox.Triple(ox.NamedNode(f"{A}/x/1"), ox.NamedNode("http://schema.org/name"),
                       ox.Literal("x"))]
    assert records_from_triples(f"{A}/x/1", other) is None


def test_unicode61_alone_keeps_eszett_and_folding_fixes_it(index):
    """What unicode61 remove_diacritics does: ü->u, é->e, but ß stays ß (not "ss")."""
    con = sqlite3.connect(":memory:")
    con.execute("CREATE VIRTUAL TABLE t USING fts5(x, tokenize='unicode61 remove_diacritics 2')")
    con.execute("INSERT INTO t VALUES ('Gießen Müller Café')")
    hits = {q: con.execute("SELECT count(*) FROM t WHERE t MATCH ?", (q,)).fetchone()[0]
            for q in ("giessen", "gießen", "muller", "mueller", "cafe")}
    assert hits == {"giessen": 0, "gießen": 1, "muller": 1, "mueller": 0, "cafe": 1}
    # The index folds first (casefold: ß -> ss) and adds German transliterations (ü -> ue).
    put(index, A, "a", actor(1, "Tafel Gießen"), actor(2, "Müller-Stiftung"),
        actor(3, {"fr": "Café Olé"}))
    for q in ("giessen", "Gießen", "GIESSEN", "gießen"):
        assert found(index, q) == ["a1"], q
    for q in ("müller", "Muller", "mueller", "MÜLLER"):
        assert found(index, q) == ["a2"], q
    assert found(index, "cafe ole") == found(index, "CAFÉ") == ["a3"]


def test_names_alternate_names_and_descriptions_in_all_languages(index):
    put(index, A, "a",
        actor(1, {"de": "Nachbarschaftshilfe", "en": "Neighbourly help"}),
        actor(2, "Verein X", alternateName=["Stadtteilladen"]),
        actor(3, "Verein Y", description={"uk": "Допомога біженцям", "de": "Hilfe"}))
    assert found(index, "neighbourly") == ["a1"]
    assert found(index, "Stadtteilladen") == ["a2"]
    assert found(index, "біженцям") == ["a3"]
    # A word in the name ranks above the same word in a description.
    put(index, A, "a", actor(4, "Hilfe für alle"))
    assert found(index, "hilfe")[:2] == ["a4", "a3"]


@pytest.mark.parametrize("text", ['a" OR 1', 'NEAR(', '"', "*", "tafel OR cafe", "-tafel",
                                  "tafel NOT cafe", "name:tafel", "^tafel", "{name}: x", "(",
                                  ")", "AND", "tafel\"*", "\x00", "🙂", "'; DROP TABLE docs; --",
                                  "tafel " * 50, "x" * 5000])
def test_user_input_is_never_fts_syntax(index, text):
    put(index, A, "a", actor(1, "Tafel"), actor(2, "Café"))
    result = index.search(text)  # never an sqlite/FTS5 error
    words = fts_query(text)
    if words is None:  # no words at all: no text filter
        assert result.total == 2
    else:
        assert all(part.startswith('"') for part in words.removesuffix(" *").split(" AND "))
    assert found(index, "tafel OR cafe") == []  # OR is a word here, not an operator
    assert found(index, "name:tafel") == []      # no column filter either
    assert found(index, "Tafel") == ["a1"]


def test_prefix_search_on_the_last_word(index):
    put(index, A, "a", actor(1, "Tafel Gießen"), actor(2, "Tafel Leipzig"), actor(3, "Tanzgruppe"))
    assert sorted(found(index, "taf")) == ["a1", "a2"]
    assert found(index, "Tafel gie") == ["a1"]
    assert sorted(found(index, "ta")) == sorted(found(index, "t")) == ["a1", "a2", "a3"]
    assert found(index, "taf leipzig") == []  # only the last word is a prefix


def test_facets_combined_and_counted(index):
    index.set_source("a", name="Node A", city="Leipzig")
    index.set_source("b", name="Node B", city="Halle")
    put(index, A, "a",
        actor(1, "Tafel", fieldsOfAction=["poverty"], targetGroups=["families"],
              engagementMode="analog", status="active", languages=["de", "EN"]),
        actor(2, "Chor", actorTypes=["network"], fieldsOfAction=["culture"], status="dormant"),
        actor(3, "Garten", fieldsOfAction=["poverty", "culture"],
              contactPoints=[{"contactType": {"de": "Beratung"}, "availableLanguage": ["ar"]}]))
    put(index, B, "b", actor(4, "Tafel Halle", fieldsOfAction=["poverty"]))
    put(index, B, "b", {"id": "o1", "name": {"de": "Tafel-Beratung"}, "offerTypes": ["counselling"],
                        "provider": f"{B}/actors/a4", "availableLanguage": ["uk"]}, kind="offer")
    assert sorted(found(index, fieldsOfAction=["poverty"])) == ["a1", "a3", "a4"]
    assert sorted(found(index, fieldsOfAction=["poverty"], city=["Leipzig"])) == ["a1", "a3"]
    assert sorted(found(index, fieldsOfAction=["culture", "poverty"], source=["a"])) == [
        "a1", "a2", "a3"]
    assert found(index, "tafel", city=["Halle"], kind=["offer"]) == ["o1"]
    assert found(index, language=["en"]) == ["a1"] and found(index, language=["ar"]) == ["a3"]
    assert found(index, language=["uk"]) == ["o1"]
    assert found(index, status=["dormant"], actorTypes=["network"]) == ["a2"]
    result = index.search("tafel", {"fieldsOfAction": ["poverty"]})
    assert result.total == 2
    assert result.facet_counts["city"] == {"Halle": 1, "Leipzig": 1}
    assert result.facet_counts["targetGroups"] == {"families": 1}
    assert set(result.facet_counts) == set(FACET_KEYS)
    assert index.facet_values("kind") == {"actor": 4, "offer": 1}
    assert index.facet_values("city") == {"Leipzig": 3, "Halle": 2}
    everything = index.search()
    assert everything.total == 5 and everything.facet_counts["source"] == {"a": 3, "b": 2}
    with pytest.raises(ValueError):
        index.search(None, {"nope": ["x"]})
    with pytest.raises(ValueError):
        index.facet_values("nope")
    index.set_source("b", name="Node B", city="Halle (Saale)")  # the city facet follows
    assert sorted(found(index, city=["Halle (Saale)"])) == ["a4", "o1"]
    assert found(index, city=["Halle"]) == []


def test_pages_are_stable_and_ordered_by_name_without_text(index):
    put(index, A, "a", *(actor(n, f"Verein {n:03}") for n in range(45)))
    first, third = index.search(None, page=1, per_page=20), index.search(None, page=3, per_page=20)
    assert first.total == third.total == 45
    assert [h.name["de"] for h in first.items][:2] == ["Verein 000", "Verein 001"]
    assert [h.name["de"] for h in third.items] == [f"Verein {n:03}" for n in range(40, 45)]
    filtered = index.search(None, {"source": ["a"]}, page=3, per_page=20)
    assert [h.entity for h in filtered.items] == [h.entity for h in third.items]
    assert index.search("verein", page=99).items == []


def test_update_and_delete_replace_what_was_indexed(index):
    put(index, A, "a", actor(1, "Alter Name", fieldsOfAction=["culture"]), actor(2, "Bleibt"))
    put(index, A, "a", actor(1, "Neuer Name", fieldsOfAction=["housing"]))
    assert found(index, "alter") == [] and found(index, "neuer") == ["a1"]
    assert index.facet_values("fieldsOfAction") == {"housing": 1}
    index.apply("a", {}, [f"{A}/actors/a1", f"{A}/actors/never-seen", "urn:uuid:run"])
    assert found(index, "neuer") == [] and index.facet_values("fieldsOfAction") == {}
    assert found(index) == ["a2"]


def test_drop_source_touches_no_other_source(index):
    put(index, A, "a", actor(1, "Tafel A"), actor(2, "Chor A"))
    put(index, B, "b", actor(1, "Tafel B"))
    index.drop_source("a")
    assert [h.entity for h in index.search("tafel").items] == [f"{B}/actors/a1"]
    assert index.facet_values("source") == {"b": 1}
    # Another source cannot overwrite or delete an entity indexed for "b".
    index.apply("c", {f"{B}/actors/a1": ("actor", actor(1, "Übernommen"))}, [f"{B}/actors/a1"])
    assert found(index, "tafel") == ["a1"] and found(index, "übernommen") == []


def test_one_batch_is_one_transaction(index):
    put(index, A, "a", actor(1, "Vorher"))
    broken = {"name": "not a language map"}  # fails while indexing, after a1's delete ran
    with pytest.raises(ValueError):
        index.apply("a", {f"{A}/actors/a2": ("actor", actor(2, "Neu")),
                          f"{A}/actors/a3": ("actor", broken)}, [f"{A}/actors/a1"])
    assert found(index) == ["a1"]


def test_the_pipeline_batch_feeds_the_index(tmp_path, index):
    """The hook: the Batch the pipeline applied to the store, handed over as it is."""
    src = Source("a", f"{A}/", f"{A}/", None, None, options={"city": "Gießen"})
    records = [actor(1, "Tafel Gießen", fieldsOfAction=["poverty"]), actor(2, "Chor")]
    batch = Batch("a", {iri(A, r): triples("actor", r, A) for r in records},
                  [f"{A}/actors/gone"], cursor={"page": 1})
    with OxigraphStore(tmp_path / "store") as store:
        store.apply(batch)
        index.apply_batch(batch, src)
    assert found(index, "giessen", city=["Gießen"], fieldsOfAction=["poverty"]) == ["a1"]
    index.apply_batch(Batch("a", deletions=[f"{A}/actors/a1"]), src)
    assert found(index, "giessen") == [] and found(index, city=["Gießen"]) == ["a2"]
    # A graph that is no longer an Atlas entity (type gone) leaves the index.
    index.apply_batch(Batch("a", {f"{A}/actors/a2": []}))
    assert found(index) == []


def test_concurrent_readers_and_a_writer(index):
    put(index, A, "a", *(actor(n, f"Verein {n}") for n in range(200)))
    errors: list[BaseException] = []

    def read():
        try:
            for _ in range(30):
                assert index.search("verein", {"source": ["a", "b"]}).total >= 200
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    def write():
        try:
            for n in range(20):
                put(index, B, "b", actor(n, f"Verein B {n}"))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=read) for _ in range(4)] + [threading.Thread(target=write)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors and index.search("verein").total == 220


def test_same_actor_candidates_from_the_index_equal_sameas(index):
    records = {
        f"{A}/actors/a1": ("a", actor(1, "Tafel Leipzig e.V.", wikidata="Q1",
                                      url="https://www.tafel-leipzig.de/")),
        f"{B}/actors/a7": ("b", actor(7, "Leipziger Tafel", wikidata="Q1")),
        f"{A}/actors/a2": ("a", actor(2, "Chor Nord", registerNumber="VR 12",
                                      registerCourt="AG Halle", url="https://chor.de")),
        f"{B}/actors/a8": ("b", actor(8, "Chor Nord e.V.", registerNumber="VR12",
                                      registerCourt="Amtsgericht Halle", url="http://chor.de")),
        f"{B}/actors/a9": ("b", actor(9, "Tafel Leipzig", url="https://tafel-leipzig.de/")),
        f"{B}/actors/a3": ("b", actor(3, "Anderer Verein", url="https://tafel-leipzig.de/x")),
    }
    for entity, (source, record) in records.items():
        index.apply(source, {entity: ("actor", record)})
    from_index = index.same_actor_candidates()
    assert from_index == candidates(records)
    assert {(c.a[-2:], c.b[-2:], c.strength) for c in from_index} == {
        ("a1", "a7", "sameAs"), ("a2", "a8", "sameAs"), ("a1", "a9", "closeMatch")}


def test_closed_index_refuses_work(tmp_path):
    ix = SearchIndex(tmp_path / "search.db")
    ix.close()
    with pytest.raises(StoreError):
        ix.search("x")
