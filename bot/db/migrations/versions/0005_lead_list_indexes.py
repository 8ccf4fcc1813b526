"""indexes for the staff's lead list: by status (in id order), by last update

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-25

Measured with a million leads (bench/staff_list.py): a rare status filter took 140 ms (all its
leads sorted by id) and sorting by last update 420 ms (every lead sorted); both index walks now.
"""

from __future__ import annotations

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("leads", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_leads_status"), ["status"], unique=False)
        batch_op.create_index(batch_op.f("ix_leads_updated_at"), ["updated_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("leads", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_leads_updated_at"))
        batch_op.drop_index(batch_op.f("ix_leads_status"))
