"""The Engagement Atlas web service: one Flask app for a city node (and, later, an index)."""

from __future__ import annotations

import os
from typing import Any

from flask import Flask

__all__ = ["__version__", "create_app"]

__version__ = "0.1.0"


def create_app(test_config: dict[str, Any] | None = None) -> Flask:
    """Build the app: configuration, database, error handling, blueprints, CLI."""
    app = Flask(__name__, instance_path=os.path.abspath(
        os.environ.get("ATLAS_INSTANCE", "instance")))
    from . import config, db, problems

    config.load_config(app, test_config)
    db.init_app(app)
    problems.init_app(app)

    from . import api, dumps, public, rendering

    rendering.init_app(app)
    app.register_blueprint(api.bp)
    app.register_blueprint(public.bp)
    app.register_blueprint(dumps.bp)

    from . import catalog, peers

    app.register_blueprint(catalog.bp)
    app.register_blueprint(peers.bp)

    from . import feed

    app.register_blueprint(feed.bp)

    from . import sparql

    app.register_blueprint(sparql.bp)
    if _flag(app.config.get("INDEX_MODE")):
        from . import index

        index.init_app(app)
        from . import index_entry, index_feed

        # The index's own feed, entry description and catalog (harvestable by other indexes).
        app.register_blueprint(index_feed.bp)
        app.register_blueprint(index_entry.bp)
    return app


def _flag(value: Any) -> bool:
    """A boolean setting from TOML (bool) or an ``ATLAS_*`` string Flask could not parse."""
    if isinstance(value, str):
        return value.strip().lower() in {"1", "true", "yes", "on"}
    return bool(value)
