"""Configuration: defaults, then the instance file, then ATLAS_* variables, then tests.

Every key is documented in the README (a test checks that), and `atlas init`
writes the instance file ``instance/atlas.toml``.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any

from flask import Flask

__all__ = ["CONFIG_FILE", "DEFAULTS", "load_config"]

CONFIG_FILE = "atlas.toml"

# A licence from the DCAT-AP.de licence list (https://www.dcat-ap.de/def/licenses/).
DEFAULT_LICENSE = "http://dcat-ap.de/def/licenses/cc-by/4.0"

DEFAULTS: dict[str, Any] = {
    # Public base URL: entity URIs are {BASE_URL}/{collection}/{id}; never change it later.
    "BASE_URL": "http://127.0.0.1:5000",
    "NODE_NAME": "Engagement Atlas",
    "NODE_DESCRIPTION": "",
    "CITY": "",
    # Amtlicher Gemeindeschlüssel (official municipality key), e.g. 14612000 for Dresden.
    "MUNICIPALITY_KEY": "",
    "WIKIDATA": "",
    "LICENSE": DEFAULT_LICENSE,
    "CONTACT_EMAIL": "",
    # True on nodes that publish sample data (the demo): every page says so.
    "SAMPLE_DATA": False,
    # SQLAlchemy URL; empty means SQLite in the instance folder.
    "DATABASE_URL": "",
    "PAGE_SIZE": 50,
    "MAX_PAGE_SIZE": 500,
    # Largest request body accepted (bytes); Flask answers 413 above it.
    "MAX_CONTENT_LENGTH": 2 * 1024 * 1024,
    # Largest spreadsheet `atlas import` reads (bytes).
    "MAX_IMPORT_BYTES": 20 * 1024 * 1024,
    # --- dumps (issue 4)
    # Folder of the dump files served at /dumps/; empty means "dumps" in the instance folder.
    "DUMPS_DIR": "",
    # Entities read from the database per query while a dump is written (bounds its memory).
    "DUMP_BATCH_SIZE": 500,
    # gzip level of the dump files: 1 is fastest, 9 smallest.
    "DUMP_COMPRESSLEVEL": 6,
    # Seconds a download waits for the first build of a dump running in another worker
    # before it answers 503 with Retry-After (later rebuilds serve the previous file).
    "DUMP_WAIT_SECONDS": 30,
    # --- catalog (issue 4)
    # Publisher named in the DCAT catalog and at / (foaf:name); empty: CITY, else NODE_NAME.
    "PUBLISHER_NAME": "",
    # Website of the publisher (foaf:homepage), e.g. https://www.dresden.de; optional.
    "PUBLISHER_URL": "",
    # dcatde:contributorID of every dataset: the IRI GovData assigned to this data provider
    # (http://dcat-ap.de/def/contributors/...); leave empty unless one was assigned.
    "CONTRIBUTOR_ID": "",
    # --- feed (issue 4)
    # Changes per page of the LDES feed (/feed/<n>). Full pages are cached as immutable
    # for a year: never change this once the feed has been published.
    "FEED_PAGE_SIZE": 250,
    # "full": every version stays in the feed; "latest": only each entity's latest
    # version (deletions included) stays, older ones are compacted away.
    "FEED_RETENTION": "full",
    # With FEED_RETENTION "latest": days a deletion stays in the feed; 0 keeps it forever.
    "FEED_KEEP_DELETES_DAYS": 0,
    # Seconds LDES clients are asked to wait between synchronization runs.
    "FEED_POLLING_INTERVAL": 60,
    # Feed requests served at once per process; more get 429 with Retry-After.
    "FEED_MAX_CONCURRENT": 8,
    # --- sparql (issue 4)
    # Longest query /sparql accepts (bytes of UTF-8); longer ones get 413 (414 in a GET URL).
    "SPARQL_MAX_QUERY_BYTES": 64 * 1024,
    # Seconds a query may run; then its process is killed and the answer is 503 + Retry-After.
    "SPARQL_TIMEOUT": 10,
    # Megabytes of memory a query process may allocate beyond the loaded program (RLIMIT_AS).
    "SPARQL_MEMORY_MB": 1024,
    # Rows (SELECT) or triples (CONSTRUCT, DESCRIBE) returned at most; a longer result is
    # cut off and says so (X-SPARQL-MaxRows header, link to /sparql#limits).
    "SPARQL_MAX_ROWS": 10000,
    # Bytes of one serialized result at most; cut off like rows beyond SPARQL_MAX_ROWS.
    "SPARQL_MAX_RESULT_BYTES": 32 * 1024 * 1024,
    # Queries running at once per worker process; more get 429 with Retry-After.
    "SPARQL_MAX_CONCURRENT": 2,
    # --- index and harvesting (issue 5)
    # True: this app also serves the index under /index (entry, search, sources, entity
    # pages, /index/sparql, /index/feed, /index/catalog) over the harvested data
    # (`atlas index serve` turns it on).
    "INDEX_MODE": False,
    # Folder of the embedded index store (pyoxigraph); relative paths lie in the instance
    # folder; empty means "index" there. The source registry is {INDEX_STORE}.sources.json.
    "INDEX_STORE": "",
    # A remote SPARQL 1.1 store instead: query and update endpoint URLs (both, or neither).
    "INDEX_STORE_URL": "",
    "INDEX_UPDATE_URL": "",
    # Let harvests reach loopback, private and link-local addresses (tests, intranets only).
    "HARVEST_ALLOW_PRIVATE": False,
    # Sources harvested at once.
    "HARVEST_WORKERS": 4,
    # Contact of the index operators in the User-Agent (URL or mailto:); empty: CONTACT_EMAIL.
    "HARVEST_USER_AGENT": "",
    # Seconds between harvests of a source whose feed states no ldes:pollingInterval.
    "HARVEST_INTERVAL": 60,
    # Hosts a harvest may reach although they resolve to loopback/private addresses, comma-
    # separated (or a TOML list): names (".example.org": with subdomains) or IP networks
    # ("10.20.0.0/16"); narrower than HARVEST_ALLOW_PRIVATE (an intranet node, test loopback).
    "HARVEST_ALLOW_HOSTS": "",
    # Limits per fetched response: whole-response deadline in seconds, bytes on the wire,
    # bytes after gzip/deflate is undone (dumps have their own per-source limits).
    "HARVEST_DEADLINE": 60,
    "HARVEST_MAX_BYTES": 64 * 2**20,
    "HARVEST_MAX_DECOMPRESSED": 256 * 2**20,
    # Entry URLs of other indexes ({base}/index) whose attribution this index accepts,
    # comma-separated (or a TOML list): `atlas harvest add` registers such an index as one
    # source; any other index's original sources are registered directly instead.
    "HARVEST_TRUSTED_INDEXES": "",
}


def load_config(app: Flask, test_config: dict[str, Any] | None) -> None:
    app.config.from_mapping(DEFAULTS)
    # An absolute path: Flask resolves relative ones against the package, not the instance.
    app.config.from_file(Path(app.instance_path) / CONFIG_FILE, load=tomllib.load, text=False,
                         silent=True)
    # The conventional variable of hosting platforms, then our own prefix.
    if os.environ.get("DATABASE_URL"):
        app.config["DATABASE_URL"] = os.environ["DATABASE_URL"]
    app.config.from_prefixed_env("ATLAS")
    if test_config:
        app.config.from_mapping(test_config)
    if not app.config["DATABASE_URL"]:
        Path(app.instance_path).mkdir(parents=True, exist_ok=True)
        app.config["DATABASE_URL"] = "sqlite:///" + str(Path(app.instance_path) / "atlas.sqlite3")
    app.config["BASE_URL"] = str(app.config["BASE_URL"]).rstrip("/")
