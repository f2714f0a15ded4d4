"""The first schema: entities, facets, change log, tokens.

Revision ID: 0001
Revises:
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

_seq = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_ts = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "entities",
        sa.Column("pk", _seq, primary_key=True, autoincrement=True),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created", _ts, nullable=False),
        sa.Column("modified", _ts, nullable=False),
        sa.Column("deleted", _ts, nullable=True),
        sa.Column("search_text", sa.Text(), nullable=False),
        sa.UniqueConstraint("kind", "id", name="uq_entities_kind_id"),
    )
    op.create_index("ix_entities_kind_deleted_modified", "entities",
                    ["kind", "deleted", "modified"])
    op.create_table(
        "facets",
        sa.Column("entity_pk", _seq, sa.ForeignKey("entities.pk", ondelete="CASCADE"),
                  primary_key=True),
        sa.Column("key", sa.String(40), primary_key=True),
        sa.Column("value", sa.String(2000), primary_key=True),
    )
    op.create_index("ix_facets_key_value", "facets", ["key", "value"])
    op.create_table(
        "changes",
        sa.Column("seq", _seq, primary_key=True, autoincrement=True),
        sa.Column("at", _ts, nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("entity_id", sa.String(64), nullable=False),
        sa.Column("op", sa.String(8), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("data", sa.JSON(), nullable=True),
    )
    op.create_index("ix_changes_at", "changes", ["at"])
    op.create_index("ix_changes_kind_entity", "changes", ["kind", "entity_id"])
    op.create_table(
        "tokens",
        sa.Column("id", sa.String(16), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("secret_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("created", _ts, nullable=False),
        sa.Column("last_used", _ts, nullable=True),
        sa.Column("revoked", _ts, nullable=True),
    )


def downgrade() -> None:
    op.drop_table("tokens")
    op.drop_table("changes")
    op.drop_table("facets")
    op.drop_table("entities")
