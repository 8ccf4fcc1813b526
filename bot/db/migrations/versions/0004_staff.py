"""staff: lead events, web accounts and sessions, live chats, lead search

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25

On SQLite, lead search (company, contact, phone, e-mail, reference) uses an FTS5 index with the
trigram tokenizer, kept up to date by triggers: a substring of three or more characters is found
among a million leads in milliseconds. PostgreSQL searches with ILIKE.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


SEARCHED = ("company", "contact_name", "phone", "email", "reference")
FTS_TRIGGERS = {
    "leads_search_ai": "AFTER INSERT ON leads BEGIN {insert} END",
    "leads_search_ad": "AFTER DELETE ON leads BEGIN {delete} END",
    "leads_search_au": "AFTER UPDATE OF {columns} ON leads BEGIN {delete} {insert} END",
}


def _create_search() -> None:
    columns = ", ".join(SEARCHED)
    new = ", ".join(f"new.{c}" for c in SEARCHED)
    old = ", ".join(f"old.{c}" for c in SEARCHED)
    insert = f"INSERT INTO leads_search(rowid, {columns}) VALUES (new.id, {new});"
    delete = f"INSERT INTO leads_search(leads_search, rowid, {columns}) VALUES ('delete', old.id, {old});"
    op.execute(
        f"CREATE VIRTUAL TABLE leads_search USING fts5({columns}, "
        "content='leads', content_rowid='id', tokenize='trigram')"
    )
    for name, body in FTS_TRIGGERS.items():
        op.execute(f"CREATE TRIGGER {name} " + body.format(insert=insert, delete=delete, columns=columns))
    op.execute("INSERT INTO leads_search(leads_search) VALUES ('rebuild')")


def upgrade() -> None:
    op.create_table(
        "staff_users",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("password_hash", sa.String(length=200), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("failed_logins", sa.Integer(), nullable=False),
        sa.Column("locked_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_login_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_staff_users")),
        sa.UniqueConstraint("name", name=op.f("uq_staff_users_name")),
    )
    op.create_table(
        "lead_events",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("lead_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=12), nullable=False),
        sa.Column("actor", sa.String(length=100), nullable=False),
        sa.Column("old", sa.Text(), nullable=True),
        sa.Column("new", sa.Text(), nullable=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["lead_id"], ["leads.id"], name=op.f("fk_lead_events_lead_id_leads"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_lead_events")),
    )
    with op.batch_alter_table("lead_events", schema=None) as batch_op:
        batch_op.create_index("ix_lead_events_lead", ["lead_id", "id"], unique=False)

    op.create_table(
        "live_chats",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("chat_id", sa.BigInteger(), nullable=False),
        sa.Column("staff_chat_id", sa.BigInteger(), nullable=False),
        sa.Column("topic_id", sa.BigInteger(), nullable=True),
        sa.Column("lead_id", sa.Integer(), nullable=True),
        sa.Column("locale", sa.String(length=8), nullable=True),
        sa.Column("opened_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("closed_by", sa.String(length=100), nullable=True),
        sa.ForeignKeyConstraint(
            ["lead_id"], ["leads.id"], name=op.f("fk_live_chats_lead_id_leads"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_live_chats")),
    )
    with op.batch_alter_table("live_chats", schema=None) as batch_op:
        batch_op.create_index("ix_live_chats_chat", ["chat_id", "closed_at"], unique=False)
        batch_op.create_index("ix_live_chats_topic", ["staff_chat_id", "topic_id"], unique=False)

    op.create_table(
        "web_sessions",
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("csrf", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["staff_users.id"],
            name=op.f("fk_web_sessions_user_id_staff_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("token_hash", name=op.f("pk_web_sessions")),
    )
    with op.batch_alter_table("web_sessions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_web_sessions_expires_at"), ["expires_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_web_sessions_user_id"), ["user_id"], unique=False)

    op.create_table(
        "relay_messages",
        sa.Column("staff_chat_id", sa.BigInteger(), nullable=False),
        sa.Column("message_id", sa.BigInteger(), nullable=False),
        sa.Column("live_chat_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["live_chat_id"],
            ["live_chats.id"],
            name=op.f("fk_relay_messages_live_chat_id_live_chats"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("staff_chat_id", "message_id", name=op.f("pk_relay_messages")),
    )
    with op.batch_alter_table("relay_messages", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_relay_messages_live_chat_id"), ["live_chat_id"], unique=False)

    with op.batch_alter_table("leads", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_leads_contact_name"), ["contact_name"], unique=False)

    if op.get_bind().dialect.name == "sqlite":
        _create_search()


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for name in FTS_TRIGGERS:
            op.execute(f"DROP TRIGGER IF EXISTS {name}")
        op.execute("DROP TABLE IF EXISTS leads_search")
    with op.batch_alter_table("leads", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_leads_contact_name"))

    with op.batch_alter_table("relay_messages", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_relay_messages_live_chat_id"))

    op.drop_table("relay_messages")
    with op.batch_alter_table("web_sessions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_web_sessions_user_id"))
        batch_op.drop_index(batch_op.f("ix_web_sessions_expires_at"))

    op.drop_table("web_sessions")
    with op.batch_alter_table("live_chats", schema=None) as batch_op:
        batch_op.drop_index("ix_live_chats_topic")
        batch_op.drop_index("ix_live_chats_chat")

    op.drop_table("live_chats")
    with op.batch_alter_table("lead_events", schema=None) as batch_op:
        batch_op.drop_index("ix_lead_events_lead")

    op.drop_table("lead_events")
    op.drop_table("staff_users")
