"""staff alerts to several targets: the outbox says where each goes

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-07

Every alert so far went to the Telegram staff group: they keep ``telegram``.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("outbox") as batch:
        batch.add_column(sa.Column("target", sa.String(length=16), server_default="telegram", nullable=False))


def downgrade() -> None:
    op.execute("DELETE FROM outbox WHERE target <> 'telegram'")
    with op.batch_alter_table("outbox") as batch:
        batch.drop_column("target")
