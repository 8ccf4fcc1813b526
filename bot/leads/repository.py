"""The lead database behind one repository: handlers never touch sessions directly."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any

from sqlalchemy import RowMapping, and_, case, delete, func, or_, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from bot.db.engine import Database
from bot.db.models import (
    LEAD_STATUSES,
    OPEN_STATUSES,
    BlockedChat,
    Lead,
    LeadEvent,
    LiveChat,
    Outbox,
    Submission,
    as_utc,
    utcnow,
)
from bot.engine.events import Handoff, LeadSubmitted
from bot.leads.browse import LeadPage, LeadQuery, LeadStats, filtered, lead_stats, list_leads
from bot.prospect import TELEGRAM, ProspectId

RETURNING_DAYS = 30
"""A prospect's new submission updates their open lead from the last 30 days (see README)."""
TRANSCRIPT_LIMIT = 60
NOTE_LIMIT = 2000
"""A staff note, and what a lead keeps of the prospect's notes (and questions) when they come
back again and again: the newest ``NOTE_LIMIT`` characters."""


TELEGRAM_TARGET = TELEGRAM
"""The outbox's target for the Telegram staff group."""
ALERT_LEASE = 300.0
"""Seconds claimed alerts are reserved for their sender, renewed as each is sent (longer than one
send can take: the request retries wait out up to three 429s of a minute): a sender that died
leaves them to the others this long after (a polling process, the only sender, takes its own
back at once when it starts again)."""
ERASED = "[erased]"
"""What a staff note about a forgotten prospect's lead says instead (it may have named them)."""
PERSONAL_FIELDS = (
    "company",
    "contact_name",
    "phone",
    "email",
    "city",
    "note",
    "question",
    "external_id",
    "handle",
)


@dataclass(frozen=True)
class LeadSubmission:
    """What a form hands over, with who sent it."""

    kind: str
    key: str
    answers: dict[str, Any]
    source_flow: str | None = None
    selfcheck: dict[str, Any] = field(default_factory=dict)
    content_version: str | None = None
    locale: str | None = None
    prospect: ProspectId | None = None
    """Who sent it (None: nobody to recognise when they come back)."""
    transcript: Sequence[str] = ()
    question: str | None = None

    @classmethod
    def from_effect(
        cls,
        effect: Handoff,
        *,
        key: str,
        prospect: ProspectId | None,
        transcript: Sequence[str] = (),
    ) -> LeadSubmission:
        """What a handoff hands over: the lead form (a lead); an enquiry, or a live chat kept as
        one (outside working hours), is a lightweight lead."""
        return cls(
            kind="lead" if isinstance(effect, LeadSubmitted) else "enquiry",
            key=key,
            answers=dict(effect.answers),
            source_flow=effect.origin,
            selfcheck=dict(effect.origin_answers),
            content_version=effect.content_version,
            locale=effect.locale,
            prospect=prospect,
            transcript=tuple(transcript)[-TRANSCRIPT_LIMIT:],
            question=effect.question,
        )


@dataclass(frozen=True)
class Saved:
    lead_id: int
    reference: str
    created: bool
    """A new lead (not an update of the prospect's open one, nor a repeat)."""
    repeated: bool = False
    """This very submission had been handled before: nothing changed."""


def _reference(lead: Lead) -> str:
    return f"{'L' if lead.kind == 'lead' else 'Q'}{lead.id:06d}"


def _apply(lead: Lead, sub: LeadSubmission, now: datetime) -> None:
    """Copy a submission's answers onto a lead: what was given replaces, lists and notes add up."""
    a = sub.answers
    name = a.get("contact_name") or a.get("name")
    for attr, value in (
        ("company", a.get("company")),
        ("contact_name", name),
        ("phone", a.get("phone")),
        ("email", a.get("email")),
        ("city", a.get("city")),
        ("headcount", a.get("headcount")),
        ("sites", a.get("sites")),
        ("timeline", a.get("timeline")),
        ("handle", sub.prospect.handle if sub.prospect else None),
        ("locale", sub.locale),
        ("content_version", sub.content_version),
    ):
        if value not in (None, ""):
            setattr(lead, attr, value)
    schemes = list(a.get("schemes") or ([sub.source_flow] if sub.source_flow else []))
    lead.schemes = list(dict.fromkeys([*(lead.schemes or []), *schemes]))
    if sub.source_flow:
        lead.source_flow = sub.source_flow
    if sub.selfcheck:
        lead.selfcheck = dict(sub.selfcheck)
    for attr, extra in (("note", a.get("note")), ("question", sub.question)):
        if extra:
            old = getattr(lead, attr)
            setattr(lead, attr, _newest(f"{old}\n---\n{extra}" if old and extra not in old else extra))
    if a.get("consent") is True and lead.consent_at is None:
        lead.consent_at = now
    if sub.kind == "lead":
        lead.kind = "lead"  # an enquiry that goes on to the full form becomes a lead
    lead.transcript = list(sub.transcript)[-TRANSCRIPT_LIMIT:]
    lead.updated_at = now


def _of(prospect: ProspectId) -> tuple[Any, ...]:
    """The leads of a prospect (the index on channel, external id and date serves it)."""
    return (Lead.channel == prospect.channel, Lead.external_id == prospect.external_id)


def _newest(text: str, limit: int = NOTE_LIMIT) -> str:
    """``text`` if it fits, else its newest (last) ``limit`` characters, marked as cut."""
    return text if len(text) <= limit else "…" + text[-(limit - 1) :]


class LeadRepository:
    def __init__(
        self, db: Database, *, staff_chat_id: int | None = None, targets: Sequence[str] = ()
    ) -> None:
        self.db = db
        self.staff_chat_id = staff_chat_id
        """The Telegram staff group: alerts go there (target ``telegram``) when it is set."""
        self.targets = tuple(t for t in targets if t != TELEGRAM_TARGET)
        """The other staff targets (``wecom``, ``email``...): each gets its own alert."""

    async def submit(self, sub: LeadSubmission) -> Saved:
        """Save a submission once: a repeat changes nothing; a returning prospect's open lead is
        updated; otherwise a new lead. The staff alert is queued in the same transaction."""
        try:
            return await self.db.run_write(self.submit_work(sub))
        except IntegrityError:
            # The same submission saved at that moment by another request (a double click on a
            # form, on PostgreSQL, where both transactions found none): answered with its lead.
            return await self.db.run_write(self.submit_work(sub))

    def submit_work(self, sub: LeadSubmission) -> Callable[[Session], Saved]:
        """``submit`` as a unit of work, to run in a transaction with other writes (the
        conversation's step after the submission)."""
        return lambda session: self._submit(session, sub, utcnow())

    def _submit(self, session: Session, sub: LeadSubmission, now: datetime) -> Saved:
        seen = session.get(Submission, sub.key)
        if seen is not None:
            lead = session.get(Lead, seen.lead_id)
            assert lead is not None
            return Saved(lead.id, lead.reference or _reference(lead), created=False, repeated=True)
        lead = None
        prospect = sub.prospect
        if prospect is not None:
            lead = session.scalar(
                select(Lead)
                .where(
                    Lead.channel == prospect.channel,
                    Lead.external_id == prospect.external_id,
                    Lead.status.in_(OPEN_STATUSES),
                    Lead.created_at >= now - timedelta(days=RETURNING_DAYS),
                    Lead.forgotten_at.is_(None),
                )
                .order_by(Lead.created_at.desc())
                .limit(1)
            )
        created = lead is None
        if lead is None:
            lead = Lead(
                kind=sub.kind,
                status="new",
                channel=prospect.channel if prospect else TELEGRAM,
                external_id=prospect.external_id if prospect else None,
                created_at=now,
                schemes=[],
                selfcheck={},
                transcript=[],
            )
            session.add(lead)
        _apply(lead, sub, now)
        session.flush()
        if lead.reference is None:
            lead.reference = _reference(lead)
        session.add(Submission(key=sub.key, lead_id=lead.id, created_at=now))
        kind = "new_lead" if created else "updated_lead"
        if self.staff_chat_id is not None:
            session.add(Outbox(kind=kind, lead_id=lead.id, chat_id=self.staff_chat_id, next_attempt_at=now))
        for target in self.targets:
            session.add(Outbox(kind=kind, lead_id=lead.id, target=target, chat_id=0, next_attempt_at=now))
        return Saved(lead.id, lead.reference, created=created)

    # --- staff: changes, each recorded as an event (who, what, when) -------------------------------

    async def get(self, lead_id: int) -> Lead | None:
        async with self.db.sessions() as session:
            return await session.get(Lead, lead_id)

    async def by_reference(self, reference: str) -> Lead | None:
        """``L000123``, ``Q000045`` or the bare number."""
        ref = reference.strip().upper()
        if ref.isdigit():
            return await self.get(int(ref))
        async with self.db.sessions() as session:
            return await session.scalar(select(Lead).where(Lead.reference == ref))

    async def events(self, lead_id: int, limit: int = 200) -> list[LeadEvent]:
        """The lead's history, newest first."""
        async with self.db.sessions() as session:
            rows = await session.scalars(
                select(LeadEvent)
                .where(LeadEvent.lead_id == lead_id)
                .order_by(LeadEvent.id.desc())
                .limit(limit)
            )
            return list(rows)

    async def set_status(self, lead_id: int, status: str, *, actor: str = "system") -> Lead | None:
        if status not in LEAD_STATUSES:
            raise ValueError(f"unknown status {status!r}")
        return await self._change(lead_id, "status", status, actor)

    async def assign(self, lead_id: int, who: str, *, actor: str | None = None) -> Lead | None:
        return await self._change(lead_id, "assign", who[:100], actor or who)

    async def add_note(self, lead_id: int, text: str, *, actor: str) -> Lead | None:
        text = text.strip()[:NOTE_LIMIT]
        if not text:
            raise ValueError("empty note")
        return await self._change(lead_id, "note", text, actor)

    async def _change(self, lead_id: int, kind: str, value: str, actor: str) -> Lead | None:
        """Apply one change and record it; a change to what is already there records nothing."""
        now = utcnow()

        def work(session: Session) -> Lead | None:
            lead = session.get(Lead, lead_id)
            if lead is None:
                return None
            attr = {"status": "status", "assign": "assigned_to"}.get(kind)
            old = getattr(lead, attr) if attr else None
            if attr is not None and old == value:
                return lead
            if attr is not None:
                setattr(lead, attr, value)
            lead.updated_at = now
            session.add(LeadEvent(lead_id=lead_id, kind=kind, actor=actor[:100], old=old, new=value, at=now))
            return lead

        return await self.db.run_write(work)

    async def forget(self, prospect: ProspectId) -> int:
        """Erase a prospect: the personal fields of their leads (what remains says only what,
        when and how far it went), staff notes about those leads, the submissions that tied the
        leads to their Telegram id, unsent alerts, their live chats (the caller closes an open
        one first) and the mark that they blocked the bot. Return how many leads it touched."""
        now = utcnow()
        cleared: dict[str, Any] = {name: None for name in PERSONAL_FIELDS}

        def work(session: Session) -> int:
            ids = list(session.scalars(select(Lead.id).where(*_of(prospect))))
            session.execute(
                delete(LiveChat).where(
                    LiveChat.channel == prospect.channel, LiveChat.external_id == prospect.external_id
                )
            )
            if prospect.channel == TELEGRAM:
                session.execute(delete(BlockedChat).where(BlockedChat.chat_id == prospect.telegram_chat))
            if not ids:
                return 0
            # Unsent alerts go; one claimed by a sender is left to it: it checks the lead before
            # sending (and edits what it sent if the lead was erased meanwhile).
            session.execute(
                delete(Outbox).where(
                    Outbox.lead_id.in_(ids), Outbox.sent_at.is_(None), Outbox.claimed_by.is_(None)
                )
            )
            session.execute(delete(Submission).where(Submission.lead_id.in_(ids)))
            session.execute(
                update(LeadEvent)
                .where(LeadEvent.lead_id.in_(ids), LeadEvent.kind == "note")
                .values(old=None, new=ERASED)
            )
            session.execute(
                update(Lead)
                .where(Lead.id.in_(ids))
                .values(**cleared, transcript=[], forgotten_at=now, updated_at=now)
            )
            return len(ids)

        touched = await self.db.run_write(work)
        if touched:
            # SQLite's search index keeps deleted entries in its older segments until they merge:
            # rewriting it drops them (in a thread: about a second per 200,000 leads).
            await self.db.erase_traces("INSERT INTO leads_search(leads_search) VALUES ('optimize')")
        return touched

    async def sent_alerts(self, lead_ids: Sequence[int]) -> list[Outbox]:
        """The alerts already posted about these leads (to be edited when the prospect is erased)."""
        async with self.db.sessions() as session:
            rows = await session.scalars(
                select(Outbox).where(
                    Outbox.lead_id.in_(list(lead_ids)),
                    Outbox.message_id.is_not(None),
                    Outbox.target == TELEGRAM_TARGET,
                )
            )
            return list(rows)

    async def lead_ids_of(self, prospect: ProspectId) -> list[int]:
        async with self.db.sessions() as session:
            return list(await session.scalars(select(Lead.id).where(*_of(prospect))))

    # --- the outbox -------------------------------------------------------------------------------

    async def due_alerts(
        self,
        limit: int = 10,
        lease: float = ALERT_LEASE,
        *,
        sender: str = "-",
        target: str = TELEGRAM_TARGET,
        pace: tuple[int, float] | None = None,
    ) -> list[Outbox]:
        """Claim the alerts that are due: each is leased to ``sender`` for ``lease`` seconds, so
        several replicas never send the same alert twice (one that crashes mid-send leaves it to
        the others once the lease is over). An alert whose ``sending_at`` is set was being sent
        when its sender died: it may have reached the group (the caller marks it so). The lead
        is read as each is sent (``alert_sending``).

        ``pace`` (at most N in any W seconds: a robot's limit): only as many are claimed as the
        target may still take, counting what was sent to it in the window and what other senders
        hold claimed now, whichever process or replica they are in (counted and claimed in one
        transaction, one sender of a target at a time)."""
        now = utcnow()

        def work(session: Session) -> list[int]:
            room = limit
            if pace is not None:
                if session.get_bind().dialect.name == "postgresql":
                    key = int.from_bytes(hashlib.sha256(f"outbox:{target}".encode()).digest()[:7], "big")
                    session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})
                most, window = pace
                since = now - timedelta(seconds=window)
                used = session.scalar(
                    select(func.count()).where(
                        Outbox.target == target,
                        or_(
                            Outbox.sent_at >= since,
                            and_(
                                Outbox.sent_at.is_(None),
                                Outbox.failed_at.is_(None),
                                Outbox.claimed_by.is_not(None),
                                Outbox.next_attempt_at > now,
                            ),
                        ),
                    )
                )
                room = min(limit, most - int(used or 0))
                if room <= 0:
                    return []
            due = (
                select(Outbox.id)
                .where(
                    Outbox.sent_at.is_(None),
                    Outbox.failed_at.is_(None),
                    Outbox.next_attempt_at <= now,
                    Outbox.target == target,
                )
                .order_by(Outbox.id)
                .limit(room)
                .scalar_subquery()
            )
            claim = (
                update(Outbox)
                .where(Outbox.id.in_(due), Outbox.sent_at.is_(None), Outbox.next_attempt_at <= now)
                .values(next_attempt_at=now + timedelta(seconds=lease), claimed_by=sender[:40])
                .returning(Outbox.id)
            )
            return list(session.scalars(claim))

        ids = await self.db.run_write(work)
        if not ids:
            return []
        async with self.db.sessions() as session:
            return list(await session.scalars(select(Outbox).where(Outbox.id.in_(ids)).order_by(Outbox.id)))

    async def reclaim_alerts(self, sender: str, target: str = TELEGRAM_TARGET) -> int:
        """At the start of the only sender (a polling process): what an earlier run claimed and
        never concluded is due now, not when its lease ends. Return how many."""
        now = utcnow()
        stmt = (
            update(Outbox)
            .where(
                Outbox.sent_at.is_(None),
                Outbox.failed_at.is_(None),
                Outbox.claimed_by.is_not(None),
                Outbox.claimed_by != sender,
                Outbox.next_attempt_at > now,
                Outbox.target == target,
            )
            .values(next_attempt_at=now, claimed_by=None)
        )
        result = await self.db.run_write(lambda session: session.execute(stmt))
        return int(result.rowcount)  # type: ignore[attr-defined]

    async def alert_sending(self, outbox_id: int, sender: str, lease: float = ALERT_LEASE) -> Lead | None:
        """Record that ``sender`` begins to send an alert, renewing the lease of all it holds, and
        return the lead as it is now. None: not to be sent (the claim was lost to another sender,
        or the lead was erased: then the alert is dropped). If the sender dies before
        ``alert_sent``, the next attempt knows the alert may be a repeat."""
        now = utcnow()
        mine = (Outbox.claimed_by == sender[:40], Outbox.sent_at.is_(None))

        def work(session: Session) -> Lead | None:
            outbox = session.scalar(select(Outbox).where(Outbox.id == outbox_id, *mine))
            if outbox is None:
                return None
            lead = session.get(Lead, outbox.lead_id)
            if lead is None or lead.forgotten_at is not None:
                session.delete(outbox)
                return None
            outbox.sending_at = now
            session.execute(
                update(Outbox)
                .where(*mine, Outbox.failed_at.is_(None))
                .values(next_attempt_at=now + timedelta(seconds=lease))
            )
            return lead

        return await self.db.run_write(work)

    async def release_alerts(self, ids: list[int], at: datetime) -> None:
        """Give claimed alerts back, due at ``at``."""
        release = (
            update(Outbox)
            .where(Outbox.id.in_(ids), Outbox.sent_at.is_(None))
            .values(next_attempt_at=at, claimed_by=None)
        )
        await self.db.run_write(lambda session: session.execute(release))

    async def next_alert_at(self, target: str = TELEGRAM_TARGET) -> datetime | None:
        async with self.db.sessions() as session:
            return await session.scalar(
                select(Outbox.next_attempt_at)
                .where(Outbox.sent_at.is_(None), Outbox.failed_at.is_(None), Outbox.target == target)
                .order_by(Outbox.next_attempt_at)
            )

    async def alert_sent(self, outbox_id: int, message_id: int | None) -> None:
        sent = (
            update(Outbox)
            .where(Outbox.id == outbox_id)
            .values(sent_at=utcnow(), message_id=message_id, sending_at=None, claimed_by=None)
        )
        await self.db.run_write(lambda session: session.execute(sent))

    async def alert_failed(
        self,
        outbox_id: int,
        error: str,
        retry_at: datetime | None,
        *,
        answered: bool = False,
        refused: bool = False,
    ) -> None:
        """A send that failed: tried again at ``retry_at``; None: refused for good (not retried,
        listed on the dashboard). ``answered``: Telegram answered (with an error), so nothing
        reached the group; otherwise (a timeout, a lost connection) it may have. ``refused``: a
        4xx other than 429 (counted in ``refusals``; any other failure starts the count again)."""
        values: dict[str, Any] = {
            "attempts": Outbox.attempts + 1,
            "refusals": Outbox.refusals + 1 if refused else 0,
            "last_error": error[:500],
            "claimed_by": None,
        }
        if answered:
            values["sending_at"] = None
        if retry_at is None:
            values["failed_at"] = utcnow()
        else:
            values["next_attempt_at"] = retry_at
        failed = update(Outbox).where(Outbox.id == outbox_id).values(**values)
        await self.db.run_write(lambda session: session.execute(failed))

    async def move_alert(self, outbox_id: int, chat_id: int) -> None:
        """The group became a supergroup with another id: the alert goes there, now."""
        stmt = (
            update(Outbox)
            .where(Outbox.id == outbox_id, Outbox.sent_at.is_(None))
            .values(chat_id=chat_id, next_attempt_at=utcnow(), claimed_by=None, sending_at=None)
        )
        await self.db.run_write(lambda session: session.execute(stmt))

    async def failed_alerts(self, limit: int = 50) -> list[tuple[Outbox, Lead]]:
        """Alerts Telegram refused for good, newest first (the dashboard lists them)."""
        async with self.db.sessions() as session:
            rows = await session.execute(
                select(Outbox, Lead)
                .join(Lead, Lead.id == Outbox.lead_id)
                .where(Outbox.failed_at.is_not(None), Outbox.sent_at.is_(None))
                .order_by(Outbox.id.desc())
                .limit(limit)
            )
            return [(o, lead) for o, lead in rows.all()]

    async def waiting_alerts(self) -> list[tuple[str, int, datetime, str | None]]:
        """Alerts not delivered yet, per target: (target, how many, the oldest's time, the error
        of the one retried last): the overview shows a target that is down or slow."""
        waiting = (Outbox.sent_at.is_(None), Outbox.failed_at.is_(None))
        async with self.db.sessions() as session:
            rows = (
                await session.execute(
                    select(Outbox.target, func.count(), func.min(Outbox.created_at))
                    .where(*waiting)
                    .group_by(Outbox.target)
                    .order_by(Outbox.target)
                )
            ).all()
            out = []
            for target, n, oldest in rows:
                error = await session.scalar(
                    select(Outbox.last_error)
                    .where(*waiting, Outbox.target == target, Outbox.last_error.is_not(None))
                    .order_by(Outbox.next_attempt_at.desc(), Outbox.id.desc())
                    .limit(1)
                )
                out.append((str(target), int(n), as_utc(oldest), error))
        return out

    async def retry_alert(self, outbox_id: int) -> bool:
        """Send a failed alert again (from the dashboard, once its cause is fixed), to the staff
        group as configured now (the usual fix is a corrected ``STAFF_CHAT_ID``)."""
        values: dict[str, Any] = {
            "failed_at": None,
            "next_attempt_at": utcnow(),
            "refusals": 0,
            "attempts": 0,
        }
        if self.staff_chat_id is not None:  # the Telegram group's alerts go to the group as set now
            values["chat_id"] = case(
                (Outbox.target == TELEGRAM_TARGET, self.staff_chat_id), else_=Outbox.chat_id
            )
        stmt = (
            update(Outbox)
            .where(Outbox.id == outbox_id, Outbox.failed_at.is_not(None), Outbox.sent_at.is_(None))
            .values(**values)
        )
        result = await self.db.run_write(lambda session: session.execute(stmt))
        return bool(result.rowcount)  # type: ignore[attr-defined]

    # --- export -------------------------------------------------------------------------------

    async def stream(
        self,
        *,
        since: datetime | None = None,
        status: str | None = None,
        query: LeadQuery | None = None,
        batch: int = 2000,
    ) -> AsyncIterator[RowMapping]:
        """Every matching lead as a row mapping, oldest first, fetched in batches: memory stays
        flat however many leads there are. ``query``: the dashboard's search and filters."""
        table = Lead.__table__
        statement = select(table).order_by(table.c.id).execution_options(yield_per=batch)
        if query is not None:
            statement = filtered(self.db, query, statement)
        if since is not None:
            statement = statement.where(table.c.created_at >= since)
        if status is not None:
            statement = statement.where(table.c.status == status)
        async with self.db.engine.connect() as conn:
            result = await conn.stream(statement)
            async for partition in result.mappings().partitions(batch):
                for row in partition:
                    yield row

    # --- the staff's list and figures -------------------------------------------------------------

    async def search(self, query: LeadQuery) -> LeadPage:
        return await list_leads(self.db, query)

    async def stats(self, *, zone: tzinfo = UTC, days: int = 30, weeks: int = 8) -> LeadStats:
        return await lead_stats(self.db, zone=zone, days=days, weeks=weeks)
