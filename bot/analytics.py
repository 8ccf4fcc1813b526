"""Analytics for operators: where prospects go, where they stop, what they ask.

Counted per day, without personal data: flows started, steps reached (once per conversation
and day), leads per flow, FAQ answers given, and the
questions the bot could not answer or was unsure about (digits runs and e-mail addresses
removed). Counts are kept in memory and added to the ``stats`` table every few seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from bot.content import Content
from bot.db.engine import Database
from bot.db.models import Stat, utcnow
from bot.engine.events import SUBMISSIONS, Result
from bot.engine.state import State
from bot.text import clean

log = logging.getLogger(__name__)

_DIGITS = re.compile(r"\d[\d\s\-]{4,}\d")
_EMAIL = re.compile(r"\S+@\S+")
QUESTION_KEY = 120
CONTENT_NOTES = frozenset({"faq", "passage", "intent"})
"""Notes whose value is the content's own (an FAQ id, a step, an action): counted as they are."""


def scrub(question: str) -> str:
    """A question without what could identify someone (phone numbers, e-mail addresses)."""
    text = _EMAIL.sub("…", _DIGITS.sub("…", question))
    return re.sub(r"\s+", " ", text).strip().lower()[:QUESTION_KEY]


class Analytics:
    def __init__(self, db: Database | None, *, flush_interval: float = 5.0) -> None:
        self.db = db
        self.flush_interval = flush_interval
        self.pending: Counter[tuple[date, str, str]] = Counter()
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        self._seen_day: date | None = None
        self._seen: set[tuple[str, str]] = set()
        """(conversation, step) reached today: a step counts once per conversation and day."""

    def count(self, kind: str, key: str, n: int = 1) -> None:
        if self.db is None:  # nowhere to keep them: counting would only grow memory
            return
        self.pending[(utcnow().date(), kind, clean(key)[:200])] += n
        if self._task is None or self._task.done():
            with contextlib.suppress(RuntimeError):  # no running loop: flushed on close
                self._task = asyncio.get_running_loop().create_task(self._flush_later())

    def observe(self, content: Content, conversation: str, before: State | None, result: Result) -> None:
        """Count what one turn of a conversation did."""
        after = result.state
        if before is None or (before.flow, before.step) != (after.flow, after.step):
            today = utcnow().date()
            if today != self._seen_day:
                self._seen_day, self._seen = today, set()
            step = f"{after.flow}.{after.step}"
            if (conversation, step) not in self._seen:
                self._seen.add((conversation, step))
                self.count("step", step)
                flow = content.flows.get(after.flow)
                if flow is not None and after.step == flow.start:
                    self.count("flow", after.flow)
        for effect in result.effects:
            if isinstance(effect, SUBMISSIONS):
                self.count("lead", effect.origin or effect.flow)
        for kind, value in result.notes:  # the content's own ids as they are; typed text scrubbed
            self.count(kind, value if kind in CONTENT_NOTES else scrub(value))

    async def _flush_later(self) -> None:
        await asyncio.sleep(self.flush_interval)
        await self.flush()

    async def flush(self) -> None:
        async with self._lock:  # one write at a time, so a reader after flush() sees everything
            await self._flush()

    async def _flush(self) -> None:
        if self.db is None or not self.pending:
            return
        batch, self.pending = self.pending, Counter()
        insert = sqlite_insert if self.db.is_sqlite else pg_insert
        stmt = insert(Stat)
        stmt = stmt.on_conflict_do_update(
            index_elements=[Stat.day, Stat.kind, Stat.key], set_={"count": Stat.count + stmt.excluded.count}
        )
        rows = [{"day": d, "kind": k, "key": key, "count": n} for (d, k, key), n in batch.items()]
        try:
            # Core's executemany: the ORM's bulk insert would cost several times as much per row
            await self.db.run_write(_executes(stmt, rows))
        except OperationalError:  # the database is away or busy: the same batch will do later
            self.pending.update(batch)
            log.exception("writing %d analytics counters failed; kept for the next try", len(rows))
        except Exception:  # a value the database refuses: it must not hold up every other one
            log.exception("writing %d analytics counters failed; writing them one by one", len(rows))
            for key, n in batch.items():
                row = {"day": key[0], "kind": key[1], "key": key[2], "count": n}
                try:
                    await self.db.run_write(_executes(stmt, [row]))
                except OperationalError:
                    self.pending[key] += n
                except Exception:
                    log.warning("an analytics counter (%s) was refused and dropped", key[1])

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.flush()

    async def totals(self, days: int = 7) -> Totals:
        """Counts of the last ``days`` days (today included), database and pending together."""
        since = utcnow().date() - timedelta(days=days - 1)
        out = Totals(days=days)
        await self.flush()
        if self.db is not None:
            async with self.db.sessions() as session:
                rows = await session.execute(
                    select(Stat.kind, Stat.key, func.sum(Stat.count))
                    .where(Stat.day >= since)
                    .group_by(Stat.kind, Stat.key)
                )
                for kind, key, n in rows.all():
                    out.counts[(kind, key)] += int(n)
        for (day, kind, key), n in self.pending.items():
            if day >= since:
                out.counts[(kind, key)] += n
        return out


@dataclass
class Totals:
    days: int
    counts: Counter[tuple[str, str]] = field(default_factory=Counter)

    def of(self, kind: str) -> list[tuple[str, int]]:
        return sorted(((k, n) for (t, k), n in self.counts.items() if t == kind), key=lambda x: (-x[1], x[0]))

    def funnels(self, content: Content, locale: str) -> list[Funnel]:
        """Per scheme: how many started, reached each step (with the drop from the step before)
        and left a lead."""
        steps = dict(self.of("step"))
        starts = dict(self.of("flow"))
        leads = dict(self.of("lead"))
        out = []
        for fid, flow in content.flows.items():
            if flow.kind != "scheme":
                continue
            started = starts.get(fid, 0)
            rows, previous = [], started
            for sid in flow.steps:
                n = steps.get(f"{fid}.{sid}", 0)
                if n:
                    drop = max(0, previous - n) / previous if previous else 0.0
                    rows.append(FunnelStep(sid, n, n / (started or 1), drop))
                    previous = n
            out.append(Funnel(fid, content.localise(flow.title, locale), started, leads.get(fid, 0), rows))
        return out

    def report(self, content: Content, locale: str) -> str:
        """A plain-text summary for admins: each scheme's funnel, FAQ hits, open questions."""
        lines = [f"Last {self.days} days"]
        for funnel in self.funnels(content, locale):
            lines.append(f"\n{funnel.title}: {funnel.started} started, {funnel.leads} leads")
            lines += [f"  {st.step}: {st.count} ({st.share:.0%})" for st in funnel.steps]
        for kind, heading in (
            ("faq", "FAQ answers"),
            ("passage", "Specific answers (by step)"),
            ("intent", "Requests typed"),
        ):
            rows = self.of(kind)[:10]
            if rows:
                lines.append(f"\n{heading}: " + ", ".join(f"{k} {n}" for k, n in rows))
        for kind, heading in (("unanswered", "Not answered"), ("unsure", "Unsure (topics offered)")):
            rows = self.of(kind)[:10]
            if rows:
                lines.append(f"\n{heading}:")
                lines += [f"  {n}× {k}" for k, n in rows]
        return "\n".join(lines)


@dataclass(frozen=True)
class FunnelStep:
    step: str
    count: int
    share: float
    """Of those who started the flow."""
    drop: float
    """Lost since the step before (or the start)."""


@dataclass(frozen=True)
class Funnel:
    flow: str
    title: str
    started: int
    leads: int
    steps: list[FunnelStep]


def _executes(stmt: Any, rows: list[dict[str, Any]]) -> Callable[[Session], object]:
    """A unit of work that runs ``stmt`` for ``rows`` (Core's executemany)."""
    return lambda session: session.connection().execute(stmt, rows)
