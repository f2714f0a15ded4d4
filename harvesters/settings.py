"""Harvest settings from the configuration, and the index store they name.

Why a module of its own: the CLI, `harvesters.run` and the index service need the same
reading of the configuration keys (service/config.py DEFAULTS, documented in the README):
INDEX_STORE (embedded store folder; a relative path lies in the instance folder),
INDEX_STORE_URL + INDEX_UPDATE_URL (a remote SPARQL 1.1 store instead), HARVEST_ALLOW_PRIVATE,
HARVEST_WORKERS, HARVEST_USER_AGENT (contact; else CONTACT_EMAIL), HARVEST_INTERVAL and the
fetch limits HARVEST_ALLOW_HOSTS, HARVEST_DEADLINE, HARVEST_MAX_BYTES, HARVEST_MAX_DECOMPRESSED;
HARVEST_TRUSTED_INDEXES (entry URLs of indexes whose attribution this index accepts).
Values may be typed (TOML, defaults) or strings (``ATLAS_*`` variables Flask could not parse).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import HarvestError
from .fetch import FetchPolicy, user_agent
from .sources import SourceRegistry
from .store import IndexStore, OxigraphStore, RemoteSparqlStore

__all__ = ["MIN_INTERVAL", "HarvestSettings", "open_store"]

MIN_INTERVAL = 1.0  # seconds; a feed asking for less does not make us poll faster


def _flag(value: Any) -> bool:
    """A boolean setting from TOML (bool) or an environment string ("true", "1", "yes")."""
    if isinstance(value, str):
        return value.strip().lower() in {"1", "true", "yes", "on"}
    return bool(value)


def _number(config: Mapping[str, Any], key: str, default: float) -> float:
    value = config.get(key)
    return default if value is None or value == "" else float(value)


def _hosts(value: Any) -> tuple[str, ...]:
    """A host list from TOML (a list) or an environment string (JSON list or commas)."""
    items = value.split(",") if isinstance(value, str) else list(value or ())
    return tuple(h for h in (str(i).strip() for i in items) if h)


def _optional(config: Mapping[str, Any], key: str, kind: type) -> Any:
    """A positive number, or None (unset, empty or 0: FetchPolicy's default)."""
    value = config.get(key)
    return kind(float(value)) if value not in (None, "") and float(value) > 0 else None


@dataclass(frozen=True)
class HarvestSettings:
    """What a harvest needs from the configuration (keys of service.config.DEFAULTS)."""

    store_path: Path                 # embedded store directory (its registry lies beside it)
    store_url: str = ""              # remote SPARQL query endpoint (with update_url)
    update_url: str = ""             # remote SPARQL update endpoint
    allow_private: bool = False      # loopback/private addresses (tests, intranets)
    workers: int = 4                 # sources harvested at once
    contact: str = ""                # who runs this index, in the User-Agent
    interval: float = 60.0           # default polling interval in seconds
    # Fetch limits (FetchPolicy fields; defaults there): hosts that may resolve to
    # private addresses (HostList syntax), seconds per response, wire and decoded bytes.
    allow_hosts: tuple[str, ...] = ()
    deadline: float | None = None
    max_bytes: int | None = None
    max_decompressed: int | None = None
    # Entry URLs of indexes whose attribution is accepted (`harvest add` of an index).
    trusted_indexes: tuple[str, ...] = ()

    @classmethod
    def from_mapping(cls, config: Mapping[str, Any],
                     instance_path: str | os.PathLike = "instance") -> HarvestSettings:
        """From a configuration mapping; a relative INDEX_STORE lies in ``instance_path``."""
        store = Path(str(config.get("INDEX_STORE") or "index"))
        contact = str(config.get("HARVEST_USER_AGENT") or "")
        if not contact and config.get("CONTACT_EMAIL"):
            contact = f"mailto:{config['CONTACT_EMAIL']}"
        return cls(store_path=store if store.is_absolute() else Path(instance_path) / store,
                   store_url=str(config.get("INDEX_STORE_URL") or ""),
                   update_url=str(config.get("INDEX_UPDATE_URL") or ""),
                   allow_private=_flag(config.get("HARVEST_ALLOW_PRIVATE", False)),
                   workers=max(1, int(_number(config, "HARVEST_WORKERS", 4))),
                   contact=contact,
                   interval=max(MIN_INTERVAL, _number(config, "HARVEST_INTERVAL", 60)),
                   allow_hosts=_hosts(config.get("HARVEST_ALLOW_HOSTS")),
                   deadline=_optional(config, "HARVEST_DEADLINE", float),
                   max_bytes=_optional(config, "HARVEST_MAX_BYTES", int),
                   max_decompressed=_optional(config, "HARVEST_MAX_DECOMPRESSED", int),
                   trusted_indexes=_hosts(config.get("HARVEST_TRUSTED_INDEXES")))

    def policy(self) -> FetchPolicy:
        """The fetch policy: an honest User-Agent with the operators' contact."""
        agent = user_agent(self.contact) if self.contact else user_agent()
        limits = {k: v for k in ("deadline", "max_bytes", "max_decompressed")
                  if (v := getattr(self, k)) is not None}
        return FetchPolicy(allow_private=self.allow_private, user_agent=agent,
                           allow_hosts=self.allow_hosts, **limits)

    @property
    def search_path(self) -> Path:
        """The full-text side index (SQLite FTS5, harvesters/search.py) beside the store."""
        return self.store_path.with_name(self.store_path.name + ".search.sqlite3")

    @property
    def journal_path(self) -> Path:
        """The index's change journal (SQLite, harvesters/journal.py) beside the store."""
        return self.store_path.with_name(self.store_path.name + ".journal.sqlite3")

    def registry(self) -> SourceRegistry:
        """The registered sources: ``{INDEX_STORE}.sources.json`` (also with a remote store)."""
        return SourceRegistry.beside(self.store_path)


def open_store(settings: HarvestSettings) -> IndexStore:
    """The index store: remote when both SPARQL URLs are set, else embedded on disk.

    StoreError (reason "store-unavailable") when the embedded store is held by another
    process (RocksDB allows one writer): a running ``harvest watch``, say.
    """
    if bool(settings.store_url) != bool(settings.update_url):
        raise HarvestError("set both INDEX_STORE_URL and INDEX_UPDATE_URL, or neither",
                           reason="bad-config")
    if settings.store_url:
        store: IndexStore = RemoteSparqlStore(settings.store_url, settings.update_url)
        store.recover_incomplete_loads()  # the single writing harvester does this at start
        return store
    settings.store_path.parent.mkdir(parents=True, exist_ok=True)
    return OxigraphStore(settings.store_path)
