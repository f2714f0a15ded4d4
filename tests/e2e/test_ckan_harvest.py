"""CKAN's own DCAT parser (ckanext-dcat, profile euro_dcat_ap_3) reads a node's catalog.

A real node process serves demo data over HTTP; the catalog is fetched like a
harvester fetches it and handed to `ckanext.dcat.processors.RDFParser` in a
separate virtualenv (CKAN's requirements conflict with ours). The virtualenv
lives at ``.venv-ckan/`` in the repository: built here when missing (a few
minutes, needs PyPI), reused when its marker says it holds the right versions.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from exports.dcat import COLLECTION_TEXTS
from service import create_app, db
from service.cli import write_config
from service.demo import load_nodes, seed_node

from .conftest import ROOT, cli_env, free_port_block, wait_until_serving

CKAN_VENV = ROOT / ".venv-ckan"
REQUIREMENTS = ("ckan[requirements]==2.12.0", "ckanext-dcat==2.4.4")
MARKER = CKAN_VENV / ".atlas-requirements"
LICENSE = "http://dcat-ap.de/def/licenses/cc-by/4.0"
PUBLISHER = "Landeshauptstadt Dresden"
# Content-Type of the catalog -> the rdflib parser name CKAN's harvester would use.
PARSER_FORMATS = {"text/turtle": "turtle", "application/rdf+xml": "xml"}

PARSE = """
import json, sys
from ckanext.dcat.processors import RDFParser

parser = RDFParser(profiles=["euro_dcat_ap_3"])
parser.parse(sys.stdin.read(), _format=sys.argv[1])
print(json.dumps(list(parser.datasets()), default=str))
"""


def _python(venv: Path) -> Path:
    return venv / "bin" / "python"


@pytest.fixture(scope="session")
def ckan_python() -> Path:
    """The python of a virtualenv with CKAN and ckanext-dcat, built if missing."""
    wanted = "\n".join(REQUIREMENTS)
    ready = MARKER.is_file() and MARKER.read_text(encoding="utf-8") == wanted
    if ready and _python(CKAN_VENV).exists():
        return _python(CKAN_VENV)
    shutil.rmtree(CKAN_VENV, ignore_errors=True)
    started = time.monotonic()
    subprocess.run([sys.executable, "-m", "venv", str(CKAN_VENV)], check=True, timeout=300)
    install = subprocess.run(
        [str(_python(CKAN_VENV)), "-m", "pip", "install", "--disable-pip-version-check",
         "--quiet", *REQUIREMENTS], capture_output=True, text=True, timeout=1800)
    assert install.returncode == 0, install.stdout[-3000:] + install.stderr[-3000:]
    MARKER.write_text(wanted, encoding="utf-8")  # written last: only a complete venv is reused
    print(f"built {CKAN_VENV} in {time.monotonic() - started:.0f} s")
    return _python(CKAN_VENV)


@pytest.fixture
def node_url(tmp_path, monkeypatch, started) -> str:
    """A real node (gunicorn) serving the Dresden demo data on a loopback port."""
    port = free_port_block(1)
    base = f"http://127.0.0.1:{port}"
    instance = tmp_path / "instance"
    settings = {"BASE_URL": base, "NODE_NAME": "Engagement-Atlas Dresden",
                "CITY": "Dresden", "MUNICIPALITY_KEY": "14612000", "WIKIDATA": "Q1731",
                "LICENSE": LICENSE, "CONTACT_EMAIL": "atlas@dresden.example",
                "PUBLISHER_NAME": PUBLISHER, "SAMPLE_DATA": True,
                "DATABASE_URL": f"sqlite:///{instance / 'atlas.sqlite3'}"}
    write_config(instance / "atlas.toml", settings)
    monkeypatch.setenv("ATLAS_INSTANCE", str(instance))
    app = create_app(settings)
    try:
        db.upgrade(app)
        nodes = load_nodes("127.0.0.1", port)
        dresden = next(n for n in nodes if n.slug == "dresden")
        with app.app_context():
            seed_node(db.session(), dresden, {n.slug: n.base for n in nodes})
    finally:
        db.engine(app).dispose()
    proc = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "--workers", "1", "--bind", f"127.0.0.1:{port}",
         "--chdir", str(tmp_path), "service:create_app()"],
        env=cli_env(instance), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    started.append(proc)
    wait_until_serving(proc, base + "/", what="the node")
    return base


def ckan_datasets(python: Path, response: requests.Response) -> list[dict]:
    parser_format = PARSER_FORMATS[response.headers["Content-Type"].split(";")[0]]
    result = subprocess.run([str(python), "-c", PARSE, parser_format], input=response.text,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout)


@pytest.mark.parametrize("accept", ["text/turtle", "application/rdf+xml"])
def test_ckan_turns_the_catalog_into_datasets(ckan_python, node_url, accept):
    response = requests.get(node_url + "/catalog", headers={"Accept": accept}, timeout=30)
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith(accept)
    datasets = ckan_datasets(ckan_python, response)

    by_uri = {_extra(d, "uri"): d for d in datasets}
    assert set(by_uri) == {f"{node_url}/catalog#{c}" for c in COLLECTION_TEXTS}
    for collection, texts in COLLECTION_TEXTS.items():
        dataset = by_uri[f"{node_url}/catalog#{collection}"]
        titles = {f"{title} (Dresden)" for title, _d, _k in texts.values()}
        assert dataset["title"] in titles
        assert dataset["notes"] in {d for _t, d, _k in texts.values()}
        assert _extra(dataset, "publisher_name") == PUBLISHER
        assert _extra(dataset, "identifier") == f"{node_url}/catalog#{collection}"
        assert _extra(dataset, "spatial_uri") == (
            "http://dcat-ap.de/def/politicalGeocoding/municipalityKey/14612000")
        assert _extra(dataset, "contact_email") == "atlas@dresden.example"
        assert "Dresden" in {t["name"] for t in dataset["tags"]}

        resources = {r["url"]: r for r in dataset["resources"]}
        dumps = {f"{node_url}/dumps/{collection}.{ext}.gz": file_type
                 for ext, file_type in (("nt", "RDF_N_TRIPLES"), ("ttl", "RDF_TURTLE"),
                                        ("jsonld", "JSON_LD"), ("csv", "CSV"))}
        assert set(resources) == set(dumps) | {f"{node_url}/{collection}",
                                               f"{node_url}/{collection}.jsonld"}
        for url, file_type in dumps.items():
            resource = resources[url]
            assert resource["download_url"] == url
            assert resource["format"].endswith("/file-type/" + file_type)
            assert resource["compress_format"].endswith("/application/gzip")
            assert resource["name"]
        for resource in resources.values():
            assert resource["license"] == LICENSE
        assert resources[f"{node_url}/{collection}"]["mimetype"].endswith("/text/html")


def test_what_ckan_harvests_can_be_downloaded(ckan_python, node_url):
    """The resource URLs CKAN stores answer over HTTP (the dumps are H10's)."""
    response = requests.get(node_url + "/catalog", timeout=30)
    datasets = ckan_datasets(ckan_python, response)
    actors = next(d for d in datasets if _extra(d, "uri").endswith("#actors"))
    for resource in actors["resources"]:
        download = requests.get(resource["url"], timeout=60)
        assert download.status_code == 200, resource["url"]


def _extra(dataset: dict, key: str) -> str | None:
    return next((e["value"] for e in dataset["extras"] if e["key"] == key), None)
