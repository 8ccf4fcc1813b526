"""Tables. Every schema change goes through an Alembic migration in ``bot/db/migrations``."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


def as_utc(moment: datetime) -> datetime:
    """A time read back from SQLite (which keeps no zone) as the UTC it was written in."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class Conversation(Base):
    """One prospect's conversation: the engine state and what the channel needs to keep with it."""

    __tablename__ = "conversations"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    data: Mapped[dict[str, Any]] = mapped_column(JSON)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), index=True)
    """Set on what /forget leaves (the last update ids): deleted then, not after the retention."""


LEAD_STATUSES = ("new", "contacted", "qualified", "won", "lost")
OPEN_STATUSES = ("new", "contacted", "qualified")


class Lead(Base):
    """A prospect's details for sales: a full lead form, or a lightweight enquiry."""

    __tablename__ = "leads"
    __table_args__ = (
        Index("ix_leads_status_created", "status", "created_at"),
        Index("ix_leads_source_created", "source_flow", "created_at"),
        Index("ix_leads_prospect_created", "channel", "external_id", "created_at"),
        CheckConstraint(f"status IN {LEAD_STATUSES!r}", name="status"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    reference: Mapped[str | None] = mapped_column(String(20), unique=True)
    kind: Mapped[str] = mapped_column(String(10), default="lead")
    """``lead`` (the full form) or ``enquiry`` (name and phone, or a question the bot could not answer)."""
    status: Mapped[str] = mapped_column(String(12), default="new", index=True)
    """Indexed alone too: in SQLite that index is in id order, so a status filter pages newest
    first without sorting (``ix_leads_status_created`` serves the figures by date)."""
    company: Mapped[str | None] = mapped_column(String(200), index=True)
    contact_name: Mapped[str | None] = mapped_column(String(100), index=True)
    phone: Mapped[str | None] = mapped_column(String(20), index=True)
    email: Mapped[str | None] = mapped_column(String(254))
    city: Mapped[str | None] = mapped_column(String(100))
    headcount: Mapped[int | None] = mapped_column(Integer)
    sites: Mapped[int | None] = mapped_column(Integer)
    schemes: Mapped[list[str]] = mapped_column(JSON, default=list)
    timeline: Mapped[str | None] = mapped_column(String(20))
    note: Mapped[str | None] = mapped_column(Text)
    question: Mapped[str | None] = mapped_column(Text)
    source_flow: Mapped[str | None] = mapped_column(String(20))
    """The certification scheme the prospect came through."""
    selfcheck: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    """The prerequisites self-check answers (condition id -> met), so sales sees the gaps."""
    content_version: Mapped[str | None] = mapped_column(String(20))
    locale: Mapped[str | None] = mapped_column(String(8))
    consent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    channel: Mapped[str] = mapped_column(String(10), default="telegram", server_default="telegram")
    """Where the prospect came from: ``telegram`` (later ``web``, ``wechat``)."""
    external_id: Mapped[str | None] = mapped_column(String(64))
    """The channel's own id for the prospect (Telegram: the user id)."""
    handle: Mapped[str | None] = mapped_column(String(64))
    """A name to show for them on that channel (Telegram: the @username, without the @)."""
    transcript: Mapped[list[str]] = mapped_column(JSON, default=list)
    assigned_to: Mapped[str | None] = mapped_column(String(100))
    forgotten_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    """Set when the prospect asked to be forgotten: every personal field is empty since."""
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, onupdate=utcnow, index=True
    )


class Submission(Base):
    """Each form submission handled, so submitting twice (a double tap, a redelivered update, a
    restart in between) changes nothing the second time."""

    __tablename__ = "submissions"

    key: Mapped[str] = mapped_column(String(80), primary_key=True)
    lead_id: Mapped[int] = mapped_column(ForeignKey("leads.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Outbox(Base):
    """Messages to staff that must not be lost: sent, retried until delivered, kept across restarts."""

    __tablename__ = "outbox"
    __table_args__ = (Index("ix_outbox_pending", "sent_at", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(20))
    """``new_lead`` or ``updated_lead``."""
    lead_id: Mapped[int] = mapped_column(ForeignKey("leads.id", ondelete="CASCADE"), index=True)
    target: Mapped[str] = mapped_column(String(16), default="telegram", server_default="telegram")
    """Where it goes: ``telegram`` (the staff group, ``chat_id``), ``wecom``, ``dingtalk``,
    ``feishu`` or ``email`` (``STAFF_NOTIFY``); each target's alerts are sent on their own."""
    chat_id: Mapped[int] = mapped_column(BigInteger)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    message_id: Mapped[int | None] = mapped_column(BigInteger)
    last_error: Mapped[str | None] = mapped_column(Text)
    claimed_by: Mapped[str | None] = mapped_column(String(40))
    """The sender (process) that claimed it last."""
    sending_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    """A send began then and was not concluded: if the sender died, it may have been delivered."""
    failed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    """Refused for good (a 4xx other than 429): no longer retried; shown on the dashboard."""
    refusals: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    """4xx answers (other than 429) in a row: at ``REFUSED_ATTEMPTS`` it is marked failed."""
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Stat(Base):
    """Daily counters for operators: flows started, steps reached, leads, FAQ hits, and the
    questions the bot could not answer (scrubbed of numbers and e-mail addresses). No personal data."""

    __tablename__ = "stats"

    day: Mapped[date] = mapped_column(Date, primary_key=True)
    kind: Mapped[str] = mapped_column(String(20), primary_key=True)
    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    count: Mapped[int] = mapped_column(Integer, default=0)


EVENT_KINDS = ("status", "assign", "note")


class LeadEvent(Base):
    """Who changed what on a lead, and when: status changes, assignments and notes."""

    __tablename__ = "lead_events"
    __table_args__ = (Index("ix_lead_events_lead", "lead_id", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    lead_id: Mapped[int] = mapped_column(ForeignKey("leads.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(12))
    """``status``, ``assign`` or ``note``."""
    actor: Mapped[str] = mapped_column(String(100))
    """Who: ``web:NAME`` for a dashboard account, ``tg:ID NAME`` for a Telegram user."""
    old: Mapped[str | None] = mapped_column(Text)
    new: Mapped[str | None] = mapped_column(Text)
    """The new status, the assignee, or the note's text."""
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class StaffUser(Base):
    """A web dashboard account (``python -m bot staff add NAME``); the password is an argon2 hash."""

    __tablename__ = "staff_users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(String(200))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    failed_logins: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_login_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class WebSession(Base):
    """A signed-in browser: the cookie holds a random token, the table only its SHA-256."""

    __tablename__ = "web_sessions"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("staff_users.id", ondelete="CASCADE"), index=True)
    csrf: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)


class LiveChat(Base):
    """A prospect talking to a person through the bot, relayed to the staff group (in a forum
    topic of its own where the group has topics)."""

    __tablename__ = "live_chats"
    __table_args__ = (
        Index("ix_live_chats_prospect", "channel", "external_id", "closed_at"),
        Index("ix_live_chats_topic", "staff_chat_id", "topic_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    channel: Mapped[str] = mapped_column(String(10), default="telegram", server_default="telegram")
    external_id: Mapped[str | None] = mapped_column(String(64))
    """The prospect on that channel (Telegram: their private chat's id)."""
    staff_chat_id: Mapped[int] = mapped_column(BigInteger)
    topic_id: Mapped[int | None] = mapped_column(BigInteger)
    lead_id: Mapped[int | None] = mapped_column(ForeignKey("leads.id", ondelete="SET NULL"))
    locale: Mapped[str | None] = mapped_column(String(8))
    opened_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    closed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    closed_by: Mapped[str | None] = mapped_column(String(100))


class RelayMessage(Base):
    """A message the bot posted in the staff group for a live chat: a reply to it goes back to
    that prospect (groups without topics)."""

    __tablename__ = "relay_messages"

    staff_chat_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    message_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    live_chat_id: Mapped[int] = mapped_column(ForeignKey("live_chats.id", ondelete="CASCADE"), index=True)


class BlockedChat(Base):
    """A prospect who blocked the bot (a 403 when sending): nothing is sent to them until they
    write again."""

    __tablename__ = "blocked_chats"

    chat_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    blocked_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class WebVisitor(Base):
    """A web chat visitor's session: the server-issued token (only its SHA-256 kept) and the
    random id their conversation and leads are keyed by (``web:<external_id>``)."""

    __tablename__ = "web_visitors"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    external_id: Mapped[str] = mapped_column(String(32), unique=True)
    locale: Mapped[str | None] = mapped_column(String(8))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    last_seen: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)


class WeChatToken(Base):
    """The WeChat access_token, shared by every replica (when there is no Redis): one row per
    account; ``refreshing_until``: a replica is fetching a new one until then (the others wait)."""

    __tablename__ = "wechat_tokens"

    app_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    token: Mapped[str] = mapped_column(String(1024), default="")
    expires_at: Mapped[int] = mapped_column(BigInteger, default=0)
    refreshing_until: Mapped[int] = mapped_column(BigInteger, default=0)
