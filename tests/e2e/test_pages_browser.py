"""The public pages in a real browser (Debian's Chromium, driven by Playwright).

A real demo federation runs in its own process; the browser searches, filters,
opens entities and follows a cooperation to another node, as a person would.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from playwright.sync_api import sync_playwright

from .conftest import LineReader, cli_command, cli_env, free_port_block
from .test_demo import node_urls

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
        yield node_urls(reader.wait_for("Press Ctrl-C", timeout=240))
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
