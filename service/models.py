"""SQL tables of a node. The SQL database is the node's source of truth.

Entities of every kind share one table: the record itself is a JSON document
whose shape `vocab.fields` defines, so a new field needs no schema change.
What must be queried — filters and relations — is copied into `facets`; the
change log keeps every version for the feed.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

__all__ = ["Base", "Change", "EntityRow", "Facet", "Peer", "Token"]

# SQLite only auto-increments INTEGER PRIMARY KEY; PostgreSQL gets a BIGINT identity.
SequenceInt = BigInteger().with_variant(Integer(), "sqlite")


class Base(DeclarativeBase):
    pass


class EntityRow(Base):
    __tablename__ = "entities"

    pk: Mapped[int] = mapped_column(SequenceInt, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(32))
    id: Mapped[str] = mapped_column(String(64))
    # The canonical record without id/created/modified (those are columns).
    data: Mapped[dict] = mapped_column(JSON)
    version: Mapped[int] = mapped_column(Integer, default=1)
    created: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    modified: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    # Set when deleted: the row stays as a tombstone and the URI answers 410.
    deleted: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    # Lower-cased names, alternate names and descriptions for the free-text filter.
    search_text: Mapped[str] = mapped_column(Text, default="")

    __table_args__ = (
        UniqueConstraint("kind", "id", name="uq_entities_kind_id"),
        Index("ix_entities_kind_deleted_modified", "kind", "deleted", "modified"),
    )


class Facet(Base):
    """One filterable value of an entity (a concept, language, reference, area...)."""

    __tablename__ = "facets"

    entity_pk: Mapped[int] = mapped_column(
        ForeignKey("entities.pk", ondelete="CASCADE"), primary_key=True)
    key: Mapped[str] = mapped_column(String(40), primary_key=True)
    value: Mapped[str] = mapped_column(String(2000), primary_key=True)

    __table_args__ = (Index("ix_facets_key_value", "key", "value"),)


class Change(Base):
    """The change log: one row per create, update or delete, in commit order."""

    __tablename__ = "changes"

    seq: Mapped[int] = mapped_column(SequenceInt, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    kind: Mapped[str] = mapped_column(String(32))
    entity_id: Mapped[str] = mapped_column(String(64))
    op: Mapped[str] = mapped_column(String(8))  # create | update | delete
    version: Mapped[int] = mapped_column(Integer)
    # The full record as of this version (None for deletes): feed members are immutable.
    data: Mapped[dict | None] = mapped_column(JSON, nullable=True)

    __table_args__ = (Index("ix_changes_kind_entity", "kind", "entity_id"),)


class Token(Base):
    """An API bearer token. Only a SHA-256 hash of its secret is stored."""

    __tablename__ = "tokens"

    id: Mapped[str] = mapped_column(String(16), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(16))  # admin | editor
    secret_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    last_used: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    revoked: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class Peer(Base):
    """Another node or index this node knows; listed in its entry-URL description."""

    __tablename__ = "peers"

    id: Mapped[int] = mapped_column(SequenceInt, primary_key=True, autoincrement=True)
    # The peer's entry URL (its BASE_URL): http(s), normalised, without a trailing slash.
    url: Mapped[str] = mapped_column(String(1000))
    kind: Mapped[str] = mapped_column(String(8))  # node | index
    name: Mapped[str | None] = mapped_column(String(200), nullable=True)
    added: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    __table_args__ = (UniqueConstraint("url", name="uq_peers_url"),)
