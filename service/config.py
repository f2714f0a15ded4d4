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
