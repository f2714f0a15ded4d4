"""/sparql through the Flask test client: formats, dataset, description, page, limits."""

from __future__ import annotations

import csv
import io
import json
import xml.etree.ElementTree as ET

import pytest
from rdflib import Graph, Namespace, URIRef, Variable
from rdflib.compare import isomorphic
from rdflib.namespace import RDF
from rdflib.query import Result

from service import db, store
from service.sparql import EXAMPLES
from vocab import EA, entity_uri, load_record, to_graph
from vocab.namespaces import concept_uri

from ..conftest import BASE

SD = Namespace("http://www.w3.org/ns/sparql-service-description#")
DIRECT = "application/sparql-query"
JSON = "application/sparql-results+json"
RESULTS_NS = "{http://www.w3.org/2005/sparql-results#}"
# A cross join of VALUES: billions of rows, no data needed.
_VALUES = " ".join(str(i) for i in range(50))
COUNT_BOMB = ("SELECT (COUNT(*) AS ?n) { "
              + " ".join(f"VALUES ?{v} {{ {_VALUES} }}" for v in "abcdef") + " }")
SORT_BOMB = ("SELECT * { " + " ".join(f"VALUES ?{v} {{ {_VALUES} }}" for v in "abcdef")
             + " } ORDER BY DESC(?a) ?b ?c ?d")


def create(app, kind: str, data: dict, entity_id: str | None = None):
    with app.app_context():
        return store.create(db.session(), kind, load_record(kind, data), entity_id=entity_id)


@pytest.fixture
def atlas(app):
    """Two associations that cooperate, a foundation, programmes open and closed."""
    create(app, "actor", {"name": {"de": "Tafel"}, "actorTypes": ["verein"]}, "tafel")
    create(app, "actor", {"name": {"de": "Nachbarschaftshilfe", "en": "Neighbours' aid"},
                          "actorTypes": ["verein", "network"]}, "nachbarn")
    create(app, "actor", {"name": {"de": "Bürgerstiftung"}, "actorTypes": ["foundation"]},
           "stiftung")
    create(app, "cooperation", {"partners": [f"{BASE}/actors/tafel", f"{BASE}/actors/nachbarn"],
                                "levels": ["normative", "economic"], "since": "2021-03-01"},
           "tafel-nachbarn")
    create(app, "funding-programme", {"name": {"de": "Offen"}, "applicationStart": "2000-01-01",
                                      "applicationEnd": "2999-12-31"}, "offen")
    create(app, "funding-programme", {"name": {"de": "Vorbei"}, "applicationStart": "2001-01-01",
                                      "applicationEnd": "2001-02-01"}, "vorbei")
    create(app, "funding-programme", {"name": {"de": "Später"}, "applicationStart": "2999-01-01"},
           "spaeter")
    return app


def query(client, text: str, accept: str = JSON, **params):
    return client.post("/sparql", data=text.encode("utf-8"), content_type=DIRECT,
                       headers={"Accept": accept}, query_string=params)


def rows(response) -> list[dict[str, str]]:
    assert response.status_code == 200, response.data
    return [{k: v["value"] for k, v in b.items()}
            for b in response.json["results"]["bindings"]]


def problem(response, status: int) -> dict:
    assert response.status_code == status, response.data
    assert response.content_type == "application/problem+json"
    return response.json


# --------------------------------------------------------------------------- description


@pytest.mark.parametrize("accept,fmt", [("text/turtle", "turtle"),
                                        ("application/n-triples", "nt"),
                                        ("application/rdf+xml", "xml"),
                                        ("application/ld+json", "json-ld")])
def test_a_get_without_query_describes_the_service(client, accept, fmt):
    response = client.get("/sparql", headers={"Accept": accept})
    assert response.status_code == 200
    assert response.mimetype == accept
    assert "Accept" in response.vary
    g = Graph().parse(data=response.data, format=fmt)
    service = URIRef(f"{BASE}/sparql")
    assert (service, RDF.type, SD.Service) in g
    assert (service, SD.endpoint, service) in g
    assert (service, SD.supportedLanguage, SD.SPARQL11Query) in g
    assert len(set(g.objects(service, SD.resultFormat))) == 8
    assert (service, SD.feature, SD.UnionDefaultGraph) in g
    assert (service, SD.feature, SD.BasicFederatedQuery) not in g
    dataset = g.value(service, SD.defaultDataset)
    assert (dataset, RDF.type, SD.Dataset) in g and g.value(dataset, SD.defaultGraph)


def test_browsers_get_a_query_form_with_examples(client):
    response = client.get("/sparql", headers={"Accept": "text/html,*/*;q=0.8"})
    assert response.status_code == 200 and response.mimetype == "text/html"
    page = response.get_data(as_text=True)
    assert '<label for="query">' in page and '<textarea id="query" name="query"' in page
    assert '<label for="format">' in page and '<select id="format" name="format">' in page
    assert 'id="limits"' in page
    for key, (title, _text) in EXAMPLES.items():
        assert title in page and f"example={key}" in page
    assert "ea:cooperatesWith" in page and "ea:Cooperation" in page and "NOW()" in page
    chosen = client.get("/sparql?example=funding-open-now", headers={"Accept": "text/html"})
    assert "ea:applicationEnd ?end" in chosen.get_data(as_text=True).split("</textarea>")[0]


def test_no_acceptable_description_is_406(client):
    problem(client.get("/sparql", headers={"Accept": "image/png"}), 406)


# --------------------------------------------------------------------------- results


def test_the_examples_answer_what_they_promise(atlas, client):
    by_type = rows(query(client, EXAMPLES["actors-by-type"][1]))
    assert {(r["type"].rpartition("/")[2], r["actor"].rpartition("/")[2]) for r in by_type} == {
        ("verein", "tafel"), ("verein", "nachbarn"), ("network", "nachbarn"),
        ("foundation", "stiftung")}
    partners = rows(query(client, EXAMPLES["cooperation-partners"][1]))
    assert {(r["actor"], r["partner"], r["level"].rpartition("/")[2]) for r in partners} == {
        (f"{BASE}/actors/{a}", f"{BASE}/actors/{b}", level)
        for a, b in (("tafel", "nachbarn"), ("nachbarn", "tafel"))
        for level in ("normative", "economic")}
    assert {r["since"] for r in partners} == {"2021-03-01"}
    open_now = rows(query(client, EXAMPLES["funding-open-now"][1]))
    assert [r["name"] for r in open_now] == ["Offen"]


def test_select_in_every_results_format(atlas, client):
    text = """SELECT ?actor ?name ?tricky WHERE {
        ?actor a <https://w3id.org/engagement-atlas/ns#Actor> ; <https://schema.org/name> ?name .
        BIND ("tab\\there, \\"quoted\\"\\nnew line" AS ?tricky)
    } ORDER BY ?actor ?name"""
    expected = rows(query(client, text))
    assert len(expected) == 4 and {r["name"] for r in expected} >= {"Neighbours' aid", "Tafel"}
    tricky = 'tab\there, "quoted"\nnew line'
    assert expected[0]["tricky"] == tricky

    xml = query(client, text, "application/sparql-results+xml")
    assert xml.mimetype == "application/sparql-results+xml"
    parsed = Result.parse(io.BytesIO(xml.data), format="xml")
    assert [str(b[Variable("name")]) for b in parsed.bindings] == [r["name"] for r in expected]
    assert any(b[Variable("name")].language == "en" for b in parsed.bindings)

    tsv = query(client, text, "text/tab-separated-values")
    assert tsv.content_type == "text/tab-separated-values; charset=utf-8"
    parsed = Result.parse(io.BytesIO(tsv.data), format="tsv")
    assert [str(b[Variable("tricky")]) for b in parsed.bindings] == [tricky] * 4

    table = query(client, text, "text/csv")
    assert table.content_type == "text/csv; charset=utf-8"
    records = list(csv.reader(io.StringIO(table.get_data(as_text=True), newline="")))
    assert records[0] == ["actor", "name", "tricky"]
    assert [r[1] for r in records[1:]] == [r["name"] for r in expected]
    assert records[1][2] == tricky


def test_ask_and_describe(atlas, client):
    yes = query(client, f"ASK {{ <{BASE}/actors/tafel> a ?type }}")
    assert yes.mimetype == JSON and yes.json["boolean"] is True
    no = query(client, "ASK { ?s <http://example.org/nothing> ?o }",
               "application/sparql-results+xml")
    assert ET.fromstring(no.data).find(f"{RESULTS_NS}boolean").text == "false"
    described = query(client, f"DESCRIBE <{BASE}/actors/tafel>", "application/n-triples")
    assert described.mimetype == "application/n-triples"
    g = Graph().parse(data=described.data, format="nt")
    assert (URIRef(f"{BASE}/actors/tafel"), EA.actorType, concept_uri("actor-type", "verein")) in g


@pytest.mark.parametrize("accept,fmt", [("text/turtle", "turtle"),
                                        ("application/n-triples", "nt"),
                                        ("application/rdf+xml", "xml"),
                                        ("application/ld+json", "json-ld")])
def test_construct_gives_the_graph_of_the_mapping(atlas, client, accept, fmt):
    iri = entity_uri(BASE, "actor", "nachbarn")
    response = query(client, f"CONSTRUCT {{ ?s ?p ?o }} WHERE {{ GRAPH <{iri}> {{ ?s ?p ?o }} }}",
                     accept)
    assert response.status_code == 200 and response.mimetype == accept
    with atlas.app_context():
        record = store.get(db.session(), "actor", "nachbarn").record
    # Parsed by the same parser on both sides: rdflib rewrites "Z" as "+00:00" when it reads.
    expected = to_graph("actor", record, BASE).serialize(format="nt")
    assert isomorphic(Graph().parse(data=response.data, format=fmt),
                      Graph().parse(data=expected, format="nt"))


def test_default_formats_and_the_format_parameter(atlas, client):
    select = client.get("/sparql", query_string={"query": "SELECT (1 AS ?x) {}"})
    assert select.mimetype == JSON
    construct = client.get("/sparql", query_string={"query": "CONSTRUCT WHERE { ?s a ?t }"})
    assert construct.mimetype == "text/turtle"
    assert client.get("/sparql", query_string={"query": "SELECT (1 AS ?x) {}",
                                               "format": "csv"}).data == b"x\r\n1\r\n"
    as_json = client.get("/sparql", query_string={"query": "CONSTRUCT WHERE { ?s a ?t }",
                                                  "format": "json"})
    assert as_json.mimetype == "application/ld+json"
    assert "unknown format" in problem(client.get("/sparql", query_string={
        "query": "ASK {}", "format": "pdf"}), 400)["detail"]


def test_unacceptable_results_are_406(atlas, client):
    problem(query(client, "SELECT (1 AS ?x) {}", "image/png"), 406)
    refused = problem(query(client, "CONSTRUCT WHERE { ?s ?p ?o }", "text/csv"), 406)
    assert "text/turtle" in refused["detail"]
    assert query(client, "SELECT (1 AS ?x) {}", "application/json").mimetype == JSON


# --------------------------------------------------------------------------- dataset


def test_the_default_graph_is_the_union_and_from_selects_graphs(atlas, client):
    names = "SELECT ?name {FROM} WHERE { ?s <https://schema.org/name> ?name } ORDER BY ?name"
    everything = rows(query(client, names.replace("{FROM}", "")))
    assert len(everything) == 7
    tafel = entity_uri(BASE, "actor", "tafel")
    assert rows(query(client, names.replace("{FROM}", f"FROM <{tafel}>"))) == [{"name": "Tafel"}]
    # FROM never fetches: a file IRI is just the name of a graph that does not exist.
    assert rows(query(client, names.replace("{FROM}", "FROM <file:///etc/passwd>"))) == []
    # The protocol's dataset wins over the query's (SPARQL 1.1 Protocol §2.1.4).
    stiftung = entity_uri(BASE, "actor", "stiftung")
    assert rows(query(client, names.replace("{FROM}", f"FROM <{tafel}>"),
                      **{"default-graph-uri": stiftung})) == [{"name": "Bürgerstiftung"}]
    graphs = rows(query(client, "SELECT DISTINCT ?g { GRAPH ?g { ?s ?p ?o } }",
                        **{"named-graph-uri": [tafel, "file:///etc/passwd"]}))
    assert graphs == [{"g": str(tafel)}]
    assert len(rows(query(client, "SELECT DISTINCT ?g { GRAPH ?g { ?s ?p ?o } }"))) == 7
    problem(query(client, "ASK {}", **{"default-graph-uri": "not an iri"}), 400)


# --------------------------------------------------------------------------- the protocol


def test_one_query_per_request(client):
    problem(client.get("/sparql?query=ASK%20%7B%7D&query=ASK%20%7B%7D"), 400)
    problem(client.post("/sparql", data={"query": ["ASK {}", "ASK {}"]}), 400)
    problem(client.post("/sparql?query=ASK%20%7B%7D", data="ASK {}", content_type=DIRECT), 400)
    problem(client.post("/sparql", data={"default-graph-uri": "http://a.example/"}), 400)
    problem(client.post("/sparql", data={"query": " \n"}), 400)
    form = client.post("/sparql", data={"query": "ASK {}"}, headers={"Accept": JSON})
    assert form.status_code == 200 and form.json["boolean"] is True


@pytest.mark.parametrize("request_args", [
    {"method": "GET", "query_string": {"update": "CLEAR ALL"}},
    {"method": "POST", "data": {"update": "CLEAR ALL"}},
    {"method": "POST", "data": "CLEAR ALL", "content_type": "application/sparql-update"},
    {"method": "POST", "data": "INSERT DATA { <a:s> <a:p> <a:o> }", "content_type": DIRECT},
    {"method": "GET", "query_string": {"query": "LOAD <http://127.0.0.1:1/x.ttl>"}},
    {"method": "GET", "query_string": {"query": "DROP ALL"}},
], ids=["get-update", "form-update", "direct-update", "update-as-query", "load", "drop"])
def test_updates_are_refused(client, request_args):
    detail = problem(client.open("/sparql", **request_args), 403)["detail"]
    assert "read-only" in detail


@pytest.mark.parametrize("text", [
    "SELECT * { SERVICE <http://127.0.0.1:9/sparql> { ?s ?p ?o } }",
    "SELECT * { ?s ?p ?o OPTIONAL { SERVICE SILENT <http://127.0.0.1:9/> { ?s ?q ?r } } }",
    "SELECT * { { SELECT * { SERVICE <http://127.0.0.1:9/> { ?s ?p ?o } } } }",
    "ASK { FILTER EXISTS { SERVICE <http://127.0.0.1:9/> { ?s ?p ?o } } }",
    "SELECT * { ?s ?p ?o MINUS { SERVICE <http://127.0.0.1:9/> { ?s ?p ?o } } }",
    "SELECT * { VALUES ?e { <http://127.0.0.1:9/> } SERVICE ?e { ?s ?p ?o } }",
    "CONSTRUCT { ?s ?p ?o } WHERE { { ?s ?p ?o } UNION { SERVICE <http://127.0.0.1:9/> {} } }",
    "PREFIX x: <http://127.0.0.1:9/> SELECT * { \\u0053ERVICE x: { ?s ?p ?o } }",
], ids=["plain", "optional-silent", "subquery", "exists", "minus", "variable", "union",
        "escaped"])
def test_service_is_refused_wherever_it_hides(client, text):
    detail = problem(client.get("/sparql", query_string={"query": text}), 403)["detail"]
    assert "SERVICE" in detail


@pytest.mark.parametrize("text,words", [
    ("ASK {", "Expected"),
    ("SELECT * { ?s foo:bar ?o }", "foo"),
    ("SELECT * { " + "{" * 15000 + "}" * 15000 + " }", "nested too deeply"),
], ids=["unclosed", "unknown-prefix", "deeply-nested"])
def test_malformed_queries_are_400_with_the_parser_message(client, text, words):
    response = client.post("/sparql", data=text, content_type=DIRECT)
    assert words in problem(response, 400)["detail"]


def test_media_types_and_charsets(client):
    wrong = client.post("/sparql", data="ASK {}", content_type="text/plain")
    problem(wrong, 415)
    assert DIRECT in wrong.headers["Accept"]
    problem(client.post("/sparql", data="ASK {}".encode("utf-16"),
                        content_type=f"{DIRECT}; charset=UTF-16"), 415)
    problem(client.post("/sparql", data=b"ASK { FILTER(\"\xff\") }", content_type=DIRECT), 400)
    ok = client.post("/sparql", data="ASK {}", content_type=f"{DIRECT}; charset=utf-8")
    assert ok.status_code == 200
    put = client.put("/sparql", data="ASK {}", content_type=DIRECT)
    assert put.status_code == 405 and "POST" in put.headers["Allow"]
    assert ok.headers["Access-Control-Allow-Origin"] == "*"
    preflight = client.options("/sparql", headers={"Origin": "https://yasgui.example",
                                                   "Access-Control-Request-Method": "POST"})
    assert "Content-Type" in preflight.headers["Access-Control-Allow-Headers"]


# --------------------------------------------------------------------------- limits


def test_long_queries_are_refused_before_parsing(app, client):
    app.config["SPARQL_MAX_QUERY_BYTES"] = 200
    long = "ASK { " + "?s ?p ?o . " * 30 + "}"
    problem(client.post("/sparql", data=long, content_type=DIRECT), 413)
    problem(client.post("/sparql", data={"query": long}), 413)
    problem(client.get("/sparql", query_string={"query": long}), 414)
    problem(client.post("/sparql", data="#" * 1024 * 1024, content_type=DIRECT), 413)
    assert client.post("/sparql", data="ASK {}", content_type=DIRECT).status_code == 200


def test_results_are_cut_at_the_row_limit_and_say_so(app, client):
    app.config["SPARQL_MAX_ROWS"] = 3
    text = "SELECT ?n { VALUES ?n { 1 2 3 4 5 } }"
    response = query(client, text)
    assert [r["n"] for r in rows(response)] == ["1", "2", "3"]
    assert response.headers["X-SPARQL-MaxRows"] == "3"
    assert response.headers["Link"] == f'<{BASE}/sparql#limits>; rel="describedby"'
    assert response.json["head"]["link"] == [f"{BASE}/sparql#limits"]
    xml = ET.fromstring(query(client, text, "application/sparql-results+xml").data)
    assert xml.find(f"{RESULTS_NS}head/{RESULTS_NS}link").get("href") == f"{BASE}/sparql#limits"
    assert len(xml.findall(f"{RESULTS_NS}results/{RESULTS_NS}result")) == 3
    assert query(client, text, "text/csv").data == b"n\r\n1\r\n2\r\n3\r\n"
    turtle = query(client, "CONSTRUCT { ?n <http://example.org/p> 1 } WHERE { VALUES ?n { "
                   "<http://example.org/1> <http://example.org/2> <http://example.org/3> "
                   "<http://example.org/4> } }", "text/turtle")
    assert turtle.headers["X-SPARQL-MaxRows"] == "3"
    assert turtle.data.startswith(b"# Truncated after 3 triples")
    assert len(Graph().parse(data=turtle.data, format="turtle")) == 3
    complete = query(client, "SELECT ?n { VALUES ?n { 1 2 3 } }")
    assert "X-SPARQL-MaxRows" not in complete.headers and "link" not in complete.json["head"]


def test_results_are_cut_at_the_byte_limit(app, client):
    app.config["SPARQL_MAX_RESULT_BYTES"] = 1000
    response = query(client, 'SELECT ?n ?text { VALUES ?n { 1 2 3 4 5 6 7 8 9 10 } '
                             'BIND (CONCAT(STR(?n), "' + "x" * 200 + '") AS ?text) }')
    assert 0 < len(rows(response)) < 10
    assert response.headers["X-SPARQL-MaxRows"] == str(len(rows(response)))


def test_a_runaway_query_is_stopped_at_the_time_limit(app, client):
    app.config["SPARQL_TIMEOUT"] = 1
    body = problem(query(client, COUNT_BOMB), 503)
    assert "SPARQL_TIMEOUT" in body["detail"]
    assert body["type"].endswith("/sparql-limit")
    assert query(client, "ASK {}").status_code == 200  # and the endpoint goes on


def test_a_query_that_eats_memory_is_stopped(app, client):
    app.config.update(SPARQL_TIMEOUT=60, SPARQL_MEMORY_MB=300)
    response = query(client, SORT_BOMB)
    assert "SPARQL_MEMORY_MB" in problem(response, 503)["detail"]
    assert int(response.headers["Retry-After"]) > 0


def test_queries_beyond_the_concurrency_limit_get_429(app, client):
    slots = app.extensions["atlas_sparql_slots"]
    held = 0
    while slots.acquire(blocking=False):
        held += 1
    try:
        assert held == app.config["SPARQL_MAX_CONCURRENT"] == 2
        response = query(client, "ASK {}")
        problem(response, 429)
        assert response.headers["Retry-After"] == "1"
        # Only queries wait for a slot; the description and pages do not.
        assert client.get("/sparql", headers={"Accept": "text/turtle"}).status_code == 200
    finally:
        for _ in range(held):
            slots.release()
    assert query(client, "ASK {}").status_code == 200


def test_html_clients_get_error_pages(client):
    browser = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
    response = client.get("/sparql", query_string={"query": "ASK {"},
                          headers={"Accept": browser})
    assert response.status_code == 400 and response.mimetype == "text/html"
    assert "Expected" in response.get_data(as_text=True)


def test_literals_keep_language_and_datatype(atlas, client):
    found = rows(query(client, f"SELECT ?name {{ <{BASE}/actors/nachbarn> "
                               "<https://schema.org/name> ?name FILTER(LANG(?name) = 'en') }"))
    assert found == [{"name": "Neighbours' aid"}]
    typed = query(client, "SELECT ?d { BIND (\"2021-03-01\"^^<http://www.w3.org/2001/XMLSchema#"
                          "date> AS ?d) }").json["results"]["bindings"][0]["d"]
    assert typed == {"type": "literal", "value": "2021-03-01",
                     "datatype": "http://www.w3.org/2001/XMLSchema#date"}
    tagged = json.loads(query(client, "SELECT ?l { BIND (STRLANG('x', 'de') AS ?l) }").data)
    assert tagged["results"]["bindings"][0]["l"] == {"type": "literal", "value": "x",
                                                     "xml:lang": "de"}
