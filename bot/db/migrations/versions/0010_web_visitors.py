"""web chat visitors

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "web_visitors",
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("external_id", sa.String(length=32), nullable=False),
        sa.Column("locale", sa.String(length=8), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("token_hash", name=op.f("pk_web_visitors")),
        sa.UniqueConstraint("external_id", name=op.f("uq_web_visitors_external_id")),
    )
    op.create_index(op.f("ix_web_visitors_last_seen"), "web_visitors", ["last_seen"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_web_visitors_last_seen"), table_name="web_visitors")
    op.drop_table("web_visitors")
