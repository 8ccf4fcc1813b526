"""conversations keyed by channel: ``tg:123`` instead of ``123``

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02

A conversation's key is now the channel's prefix and the channel's own id (``tg:`` for Telegram,
later ``web:``, ``wx:``), and so are the keys of the submissions made in it (``tg:123:456``: the
chat and the update), so a redelivery after the upgrade is still recognised. Every row is kept.
"""

from __future__ import annotations

from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("UPDATE conversations SET key = 'tg:' || key WHERE key NOT LIKE '%:%'")
    op.execute("UPDATE submissions SET key = 'tg:' || key")  # every one so far came through Telegram


def downgrade() -> None:
    op.execute("DELETE FROM conversations WHERE key NOT LIKE 'tg:%'")
    op.execute("UPDATE conversations SET key = substr(key, 4) WHERE key LIKE 'tg:%'")
    op.execute("UPDATE submissions SET key = substr(key, 4) WHERE key LIKE 'tg:%'")
