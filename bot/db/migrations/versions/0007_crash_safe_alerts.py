"""alerts across a crash and alerts that cannot be sent; conversations that expire

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02

- ``outbox.claimed_by``: the sender process that claimed an alert (a polling process, the only
  sender, gives back at start what an earlier run claimed and never finished);
  ``outbox.sending_at``: a send began and was not concluded (killed mid-send: the alert may have
  reached the staff group, so its retry is marked as a possible repeat);
  ``outbox.failed_at``: Telegram refused it for good (``outbox.refusals``, 4xx answers other
  than 429 in a row): not retried, shown on the dashboard.
- ``conversations.expires_at``: what /forget leaves of a conversation (the ids of the last
  updates handled, so a redelivery is not handled again) is deleted once Telegram no longer
  redelivers (24 hours).
- The questions the bot could not answer, as counted before (with only numbers and e-mail
  addresses removed, so they could name a prospect), are deleted: from now on they are kept only
  as far as they use the FAQ's own words. The other counters stay.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.add_column(sa.Column("claimed_by", sa.String(length=40), nullable=True))
        batch_op.add_column(sa.Column("sending_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("failed_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("refusals", sa.Integer(), server_default="0", nullable=False))
    with op.batch_alter_table("conversations", schema=None) as batch_op:
        batch_op.add_column(sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.create_index(batch_op.f("ix_conversations_expires_at"), ["expires_at"], unique=False)
    op.execute("DELETE FROM stats WHERE kind IN ('unanswered', 'unsure')")


def downgrade() -> None:
    with op.batch_alter_table("conversations", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_conversations_expires_at"))
        batch_op.drop_column("expires_at")
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.drop_column("refusals")
        batch_op.drop_column("failed_at")
        batch_op.drop_column("sending_at")
        batch_op.drop_column("claimed_by")
