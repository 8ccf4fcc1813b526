"""leads and live chats carry the channel: channel + the channel's own id + a display handle

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02

Until now every prospect came through Telegram (``leads.telegram_user_id``,
``leads.telegram_username``, ``live_chats.chat_id``). A prospect is now a channel (``telegram``,
later ``web``, ``wechat``) and that channel's own id for them (for Telegram the user id, as text),
with a handle to show (the Telegram @username). Every existing row is kept: they are Telegram's.
On the way down, what did not come through Telegram loses its id (there is no column for it).

SQLite: columns are added, renamed and dropped in place (ALTER TABLE), not by copying the table,
so the triggers that keep the lead search index stay.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "leads", sa.Column("channel", sa.String(length=10), server_default="telegram", nullable=False)
    )
    op.add_column("leads", sa.Column("external_id", sa.String(length=64), nullable=True))
    op.execute(
        "UPDATE leads SET external_id = CAST(telegram_user_id AS VARCHAR(64)) "
        "WHERE telegram_user_id IS NOT NULL"
    )
    op.drop_index("ix_leads_user_created", table_name="leads")
    op.execute("ALTER TABLE leads DROP COLUMN telegram_user_id")
    op.execute("ALTER TABLE leads RENAME COLUMN telegram_username TO handle")
    op.create_index("ix_leads_prospect_created", "leads", ["channel", "external_id", "created_at"])

    op.add_column(
        "live_chats", sa.Column("channel", sa.String(length=10), server_default="telegram", nullable=False)
    )
    op.add_column("live_chats", sa.Column("external_id", sa.String(length=64), nullable=True))
    op.execute("UPDATE live_chats SET external_id = CAST(chat_id AS VARCHAR(64))")
    op.drop_index("ix_live_chats_chat", table_name="live_chats")
    op.execute("ALTER TABLE live_chats DROP COLUMN chat_id")
    op.create_index("ix_live_chats_prospect", "live_chats", ["channel", "external_id", "closed_at"])


def downgrade() -> None:
    op.drop_index("ix_live_chats_prospect", table_name="live_chats")
    op.execute("DELETE FROM live_chats WHERE channel <> 'telegram' OR external_id IS NULL")
    op.add_column("live_chats", sa.Column("chat_id", sa.BigInteger(), server_default="0", nullable=False))
    op.execute("UPDATE live_chats SET chat_id = CAST(external_id AS BIGINT)")
    op.execute("ALTER TABLE live_chats DROP COLUMN external_id")
    op.execute("ALTER TABLE live_chats DROP COLUMN channel")
    op.create_index("ix_live_chats_chat", "live_chats", ["chat_id", "closed_at"])

    op.drop_index("ix_leads_prospect_created", table_name="leads")
    op.add_column("leads", sa.Column("telegram_user_id", sa.BigInteger(), nullable=True))
    op.execute(
        "UPDATE leads SET telegram_user_id = CAST(external_id AS BIGINT) "
        "WHERE channel = 'telegram' AND external_id IS NOT NULL"
    )
    op.execute("ALTER TABLE leads RENAME COLUMN handle TO telegram_username")
    op.execute("ALTER TABLE leads DROP COLUMN external_id")
    op.execute("ALTER TABLE leads DROP COLUMN channel")
    op.create_index("ix_leads_user_created", "leads", ["telegram_user_id", "created_at"])
