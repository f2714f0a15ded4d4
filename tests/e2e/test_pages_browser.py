"""The public pages in a real browser (Debian's Chromium, driven by Playwright).

A real demo federation runs in its own process; the browser searches, filters,
opens entities and follows a cooperation to another node, as a person would. The demo's
index (issue 5 item 10) is used the same way: search across all six nodes, narrow by a
facet, open an entity and follow its provenance back to the node it came from, read the
sources page, and run an example query in the SPARQL form.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from playwright.sync_api import sync_playwright

from service.demo import NODES, load_nodes
from service.index_read import FACET_SCHEMES
from vocab.terms import concept_label

from .conftest import LineReader, cli_command, cli_env, free_port_block
from .test_demo import index_urls, node_urls

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# The flags this machine's closed network needs (see the env notes): no background traffic.
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="module")
def federation(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("browser")
    port = free_port_block(6)
    proc = subprocess.Popen(cli_command("demo", "--port", str(port), "--dir", str(tmp / "demo")),
                            env=cli_env(tmp / "instance"), cwd=tmp, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    reader = LineReader(proc)
    try:
        lines = reader.wait_for("Press Ctrl-C", timeout=240)
        # node slug -> base URL, and "index" -> the index's URLs (search, sources, SPARQL, feed)
        yield {**node_urls(lines), "index": index_urls(lines)}
    finally:
        proc.terminate()
        proc.wait(timeout=60)
        reader.rest()
        proc.stdout.close()


@pytest.fixture(scope="module")
def page():
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        context = browser.new_context(locale="de-DE")
        tab = context.new_page()
        tab.console_errors = []
        tab.on("console", lambda m: m.type == "error" and tab.console_errors.append(
            f"{m.text} {m.location.get('url', '')}"))
        tab.bad_responses = []  # every answer >= 400 the tab received (pages, CSS, icons)
        tab.on("response", lambda r: r.status >= 400 and tab.bad_responses.append(
            f"{r.status} {r.url}"))
        yield tab
        browser.close()


def test_search_filter_and_open_an_actor(federation, page, tmp_path):
    dresden = federation["dresden"]
    page.goto(dresden + "/")
    assert "Dresden" in page.title() or "Dresden" in page.content()
    assert "Beispieldaten" in page.inner_text("footer")

    page.click("a[href$='/actors']")
    page.fill("input[name=q]", "Afeefa")
    page.click("form.filters button[type=submit], form.filters input[type=submit]")
    page.wait_for_load_state()
    assert "q=Afeefa" in page.url
    page.click("main a[href$='/actors/afeefa']")
    page.wait_for_load_state()
    assert page.url == f"{dresden}/actors/afeefa"
    assert "Afeefa" in page.inner_text("h1")

    # The embedded schema.org JSON-LD is there and is JSON a crawler can read.
    embedded = json.loads(page.inner_text("script[type='application/ld+json']"))
    assert embedded["@id"] == f"{dresden}/actors/afeefa"
    assert page.console_errors == []
    page.screenshot(path=str(Path(tmp_path) / "afeefa.png"), full_page=True)


def test_filter_form_narrows_the_collection(federation, page):
    national = federation["national"]
    page.goto(national + "/actors")
    before = page.locator("main li a[href*='/actors/']").count()
    box = page.locator("input[name=actorTypes][value=wohlfahrtsverband]")
    box.locator("xpath=ancestor::details/summary").click()  # open the facet, as a person would
    box.check()
    page.click("form.filters button[type=submit], form.filters input[type=submit]")
    page.wait_for_load_state()
    assert "actorTypes=wohlfahrtsverband" in page.url
    names = page.locator("main li a[href*='/actors/']").all_inner_texts()
    assert 0 < len(names) < before
    assert any("Caritas" in n for n in names)


def test_a_cooperation_leads_to_the_partner_on_another_node(federation, page):
    giessen, national = federation["giessen"], federation["national"]
    page.goto(f"{giessen}/cooperations/zaug-code-door")
    link = page.locator(f"main a[href='{national}/actors/code-door']").first
    link.click()
    page.wait_for_load_state()
    assert page.url == f"{national}/actors/code-door"
    assert "Code Door" in page.inner_text("h1")


def test_a_deleted_or_unknown_entity_shows_a_readable_page(federation, page):
    response = page.goto(federation["dresden"] + "/actors/does-not-exist")
    assert response.status == 404
    assert page.locator("h1").count() == 1


# --------------------------------------------------------------------------- the index


@pytest.fixture(scope="module")
def index(federation):
    """The demo index's URLs, once its first harvest is visible on the sources page (JSON):
    every demo node registered with a successful last run."""
    urls = federation["index"]
    assert set(urls) == {"search", "sources", "SPARQL", "feed"}
    nodes = {federation[slug] for slug in NODES}
    deadline = time.monotonic() + 120
    while True:
        rows = requests.get(urls["sources"], params={"format": "json"},
                            timeout=30).json()["sources"]
        harvested = {row["entry_url"].rstrip("/") for row in rows
                     if (row["last_run"] or {}).get("ok")}
        if harvested >= nodes:
            return urls
        assert time.monotonic() < deadline, f"first harvest not seen: {rows}"
        time.sleep(0.5)


GERMAN_TIME = r"\d\d\.\d\d\.\d{4}, \d\d:\d\d UTC"  # as the node pages show times


def _demo_nodes(federation) -> dict[str, object]:
    """Node base URL -> the demo node (its records), for the ports this demo runs on."""
    first_port = urlsplit(federation[NODES[0]]).port
    return {node.base: node for node in load_nodes("127.0.0.1", first_port)}


def _fresh(page) -> None:
    page.console_errors.clear()
    page.bad_responses.clear()


def _hits(page) -> list[str]:
    """The entity IRIs the result list links to (in order)."""
    return [parse_qs(urlsplit(href).query)["iri"][0]
            for href in page.locator("ol.results a").evaluate_all(
                "links => links.map(a => a.href)")]


def _value_of(page, term: str):
    """The <dd> after the <dt> ``term`` in the provenance section."""
    return page.locator(f"section.provenance dt:text-is('{term}') + dd")


def test_index_search_across_sources_then_narrow_by_a_skos_labelled_facet(index, federation,
                                                                           page):
    _fresh(page)
    page.goto(index["search"])
    page.get_by_label("Suchbegriff").fill("Afeefa")
    page.get_by_role("button", name="Suchen").click()
    page.wait_for_load_state()
    assert parse_qs(urlsplit(page.url).query)["q"] == ["Afeefa"]
    everything = _hits(page)
    afeefas = {f"{federation['dresden']}/actors/afeefa",
               f"{federation['leipzig']}/actors/afeefa-leipzig",
               f"{federation['bautzen']}/actors/afeefa-bautzen"}
    assert afeefas <= set(everything)  # one search, three nodes
    # Hits and the source facet name each source as registered (the node's name), not by id.
    names = {row["id"]: row["name"] for row in requests.get(
        index["sources"], params={"format": "json"}, timeout=30).json()["sources"]}
    found = requests.get(index["search"], params={"q": "Afeefa", "format": "json"},
                         timeout=30).json()
    assert page.locator("ol.results .source").all_inner_texts() == [
        f"Quelle: {names[item['source']]}" for item in found["items"]]
    for box in page.locator("form.filters input[name=source]").all():
        label = " ".join(box.locator("xpath=..").text_content().split())
        assert label.startswith(names[box.get_attribute("value")] + " ("), label

    # Facet values read as their SKOS labels, never as notations (the checkbox value).
    shown = 0
    for box in page.locator("form.filters input[type=checkbox]").all():
        key, value = box.get_attribute("name"), box.get_attribute("value")
        if key in FACET_SCHEMES:
            label = " ".join(box.locator("xpath=..").text_content().split())  # closed: hidden
            assert label.startswith(concept_label(FACET_SCHEMES[key], value) + " ("), label
            shown += label.split(" (")[0] != value
    assert shown > 0

    digital = concept_label(FACET_SCHEMES["actorTypes"], "digital_project")
    assert digital != "digital_project"
    page.locator("form.filters summary", has_text="Akteurstyp").click()  # open the facet
    page.get_by_role("checkbox", name=digital).check()
    page.get_by_role("button", name="Suchen").click()
    page.wait_for_load_state()
    query = parse_qs(urlsplit(page.url).query)
    assert query["q"] == ["Afeefa"] and query["actorTypes"] == ["digital_project"]
    narrowed = _hits(page)
    assert afeefas <= set(narrowed) and len(narrowed) < len(everything)
    assert page.get_by_role("checkbox", name=digital).is_checked()  # the choice stays visible
    # The page lists what the index answers to the same question (JSON variant).
    same = requests.get(index["search"], params={"q": "Afeefa", "actorTypes": "digital_project",
                                                 "format": "json"}, timeout=30).json()
    assert narrowed == [item["entity"] for item in same["items"]]
    # ...and every hit is a demo actor with that type in its node's files.
    nodes = _demo_nodes(federation)
    for iri in narrowed:
        base, _, entity_id = iri.rpartition("/actors/")
        record = next(r for r in nodes[base].records["actors"] if r["id"] == entity_id)
        assert "digital_project" in record["actorTypes"], iri
    assert page.console_errors == [] and page.bad_responses == []


def test_index_entity_page_shows_provenance_and_links_back_to_the_node(index, federation,
                                                                       page):
    dresden = federation["dresden"]
    afeefa = f"{dresden}/actors/afeefa"
    _fresh(page)
    page.goto(index["search"] + "?q=Afeefa")
    page.get_by_role("link", name="Afeefa", exact=True).click()
    page.wait_for_load_state()
    assert urlsplit(page.url).path == "/index/entity"
    assert parse_qs(urlsplit(page.url).query)["iri"] == [afeefa]
    assert page.inner_text("h1") == "Afeefa"
    assert "Digitales Projekt" in page.inner_text("main")  # concept values by their label

    # Provenance: the source node, when the index retrieved it, which version.
    known = requests.get(index["search"].replace("/search", "/entity"),
                         params={"iri": afeefa, "format": "json"}, timeout=30).json()
    source = known["source"]
    # The source by the name it was registered with (the node's name), not by its id.
    registered = {row["id"]: row["name"] for row in requests.get(
        index["sources"], params={"format": "json"}, timeout=30).json()["sources"]}
    assert "Dresden" in registered[source]
    assert _value_of(page, "Quelle").locator("a").first.inner_text() == registered[source]
    assert _value_of(page, "Quelle").locator(f"a[href='{dresden}/']").count() == 1
    retrieved = _value_of(page, "Abgerufen").locator("time").get_attribute("datetime")
    assert re.fullmatch(GERMAN_TIME, _value_of(page, "Abgerufen").inner_text())
    assert retrieved == known["provenance"]["retrieved"]
    when = datetime.fromisoformat(retrieved)
    now = datetime.now(UTC)
    assert now - timedelta(minutes=30) < when < now + timedelta(minutes=1)
    version = _value_of(page, "Fassung").locator("a")
    assert version.get_attribute("href") == known["provenance"]["version"]
    assert version.get_attribute("href").startswith(f"{afeefa}/versions/")

    # The version link works: the node serves that version (as Turtle: it has no HTML page).
    with page.expect_navigation() as visit:
        version.click()
    assert visit.value.status == 200
    assert f"dct:isVersionOf <{afeefa}>" in page.inner_text("body")
    page.go_back()
    # Chromium asks for /favicon.ico on documents without <link rel=icon> (the Turtle).
    assert page.console_errors == []
    _fresh(page)

    # The source links to its row on the sources page, which names the node.
    _value_of(page, "Quelle").locator("a").first.click()
    page.wait_for_load_state()
    assert urlsplit(page.url).path == "/index/sources"
    assert urlsplit(page.url).fragment == f"source-{source}"
    row = page.locator(f"section[id='source-{source}']")
    assert row.locator(f"a[href='{dresden}/']").count() == 1
    page.go_back()

    # "Original" leads to the entity on its own node, and that page works.
    with page.expect_navigation() as visit:
        page.locator("p.uri a").click()
    assert visit.value.status == 200 and page.url == afeefa
    assert "Afeefa" in page.inner_text("h1")
    embedded = json.loads(page.inner_text("script[type='application/ld+json']"))
    assert embedded["@id"] == afeefa
    assert page.console_errors == [] and page.bad_responses == []


def test_index_sources_page_lists_every_demo_node_with_a_good_last_run(index, federation,
                                                                       page):
    _fresh(page)
    page.goto(index["sources"])
    nodes = _demo_nodes(federation)
    sections = page.locator("section.source").all()
    seen = {}
    for section in sections:
        entry = section.locator("dt:text-is('Einstieg') + dd a").get_attribute("href")
        seen[entry.rstrip("/")] = section
        result = section.locator("h3 .result")
        assert result.inner_text() == "erfolgreich" and "ok" in result.get_attribute("class")
        assert section.locator("ul.errors").count() == 0
    assert set(seen) == {federation[slug] for slug in NODES}
    for base, section in seen.items():
        held = int(section.locator("dd.entities").inner_text())
        assert held == sum(len(r) for r in nodes[base].records.values()), base
        times = section.locator("dl.run time").all_inner_texts()  # the last run's begin, end
        assert len(times) == 2 and all(re.fullmatch(GERMAN_TIME, t) for t in times), times
        assert "membersApplied" not in section.inner_text()  # counts named for people
    assert page.console_errors == [] and page.bad_responses == []


def test_index_sparql_form_runs_an_example_and_shows_the_results(index, federation, page):
    _fresh(page)
    page.goto(index["SPARQL"])
    assert urlsplit(index["SPARQL"]).path == "/index/sparql"
    page.locator("h3#entities-per-source + pre + p a").click()  # "In das Formular übernehmen"
    page.wait_for_load_state()
    assert "idx:inSource" in page.locator("#query").input_value()
    assert page.console_errors == [] and page.bad_responses == []
    # The form's default: JSON, the one results format Chromium shows rather than downloads.
    assert page.locator("#format").input_value() == "json"
    with page.expect_navigation() as answer:
        page.get_by_role("button", name="Abfrage ausführen").click()
    assert answer.value.status == 200
    assert answer.value.headers["content-type"].startswith("application/sparql-results+json")
    shown = json.loads(page.locator("pre").first.inner_text())
    rows = [{k: v["value"] for k, v in b.items()} for b in shown["results"]["bindings"]]
    nodes = _demo_nodes(federation)
    assert {r["entity"] for r in rows} == {
        f"{base}/{collection}/{raw['id']}" for base, node in nodes.items()
        for collection, records in node.records.items() for raw in records}
    afeefa = next(r for r in rows if r["entity"] == f"{federation['dresden']}/actors/afeefa")
    assert afeefa["name"] == "Afeefa" and afeefa["entry"] == federation["dresden"] + "/"
    assert afeefa["version"].startswith(afeefa["entity"] + "/versions/")
    # Chromium asks for /favicon.ico on documents without <link rel=icon> (the results).
    assert page.console_errors == []


@pytest.mark.parametrize("path", ["search?q=Afeefa", "search?q=Afeefa&actorTypes=digital_project",
                                  "sources", "sparql", "entity?iri={dresden}/actors/afeefa"])
def test_index_pages_have_no_console_errors_or_broken_links(index, federation, page, path):
    base = index["search"].rsplit("/search", 1)[0]
    _fresh(page)
    response = page.goto(f"{base}/{path.format(dresden=federation['dresden'])}")
    page.wait_for_load_state("load")
    assert response.status == 200
    # The stylesheet loaded and applies; the favicon is there.
    sheets = page.evaluate("[...document.styleSheets].map(s => [s.href, s.cssRules.length])")
    assert any(href.endswith("/static/atlas.css") and rules > 0 for href, rules in sheets)
    icon = page.locator("link[rel=icon]").evaluate("l => l.href")
    answer = requests.get(icon, timeout=10)
    assert answer.status_code == 200 and answer.headers["Content-Type"].startswith("image/svg")
    # Every same-site link and asset answers (other sites are out of reach here).
    targets = page.evaluate("""[...document.querySelectorAll(
        'a[href], link[href], script[src], img[src]')].map(e => e.href || e.src)""")
    checked = {}
    for url in targets:
        parts = urlsplit(url)
        if parts.scheme in ("http", "https") and parts.hostname == "127.0.0.1":
            url = url.split("#")[0]
            if url not in checked:
                checked[url] = requests.get(url, timeout=30).status_code
    assert checked and {url: s for url, s in checked.items() if s != 200} == {}
    # Same-page anchors and anchors into the sources page point at something.
    for href in page.locator("a[href*='#']").evaluate_all("ls => ls.map(a => a.href)"):
        parts = urlsplit(href)
        if parts.hostname == "127.0.0.1" and parts.path.startswith("/index/") and parts.fragment:
            page_html = requests.get(href.split("#")[0], timeout=30).text
            assert f'id="{parts.fragment}"' in page_html, href
    assert page.console_errors == [] and page.bad_responses == []


def test_the_printed_feed_url_shows_the_index_event_stream(index, page):
    _fresh(page)
    response = page.goto(index["feed"])
    assert response.status == 200
    assert response.headers["content-type"].startswith("text/turtle")  # shown, not downloaded
    assert "ldes:EventStream" in page.inner_text("body")
    assert page.bad_responses == []  # /favicon.ico too (asked for the Turtle)
