"""Staff alerts: each new or updated lead is posted to the staff group at once, from the outbox.

The alert is queued in the same transaction as the lead, so it cannot be lost; this sender
delivers what is due, and retries what failed (429: after ``retry_after``; other errors and
timeouts: with growing pauses up to ten minutes) until it is delivered, across restarts.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import UTC, datetime, timedelta
from typing import Any

from aiogram import Bot
from aiogram.exceptions import TelegramAPIError, TelegramNetworkError, TelegramRetryAfter
from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup

from bot.content import Content
from bot.content.model import CheckStep
from bot.db.models import Lead, utcnow
from bot.leads.repository import LeadRepository

log = logging.getLogger(__name__)

MAX_PAUSE = 600.0
IDLE_CHECK = 60.0

TIMELINES = {
    "1m": {"zh": "1 个月内", "en": "within a month"},
    "3m": {"zh": "1–3 个月", "en": "1–3 months"},
    "6m": {"zh": "3–6 个月", "en": "3–6 months"},
    "later": {"zh": "更晚/不确定", "en": "later / not sure"},
}


def alert_context(content: Content, lead: Lead, locale: str) -> dict[str, Any]:
    """What the staff alert shows besides the lead's own fields: names instead of codes."""
    titles = [
        content.localise(content.flows[s].title, locale) if s in content.flows else s for s in lead.schemes
    ]
    gaps: list[str] = []
    flow = content.flows.get(lead.source_flow or "")
    for step in flow.steps.values() if flow else ():
        if isinstance(step, CheckStep):
            gaps += [
                content.localise(c.name, locale) for c in step.conditions if lead.selfcheck.get(c.id) is False
            ]
    who = f"@{lead.telegram_username}" if lead.telegram_username else str(lead.telegram_user_id or "—")
    timeline = TIMELINES.get(lead.timeline or "", {}).get(locale, lead.timeline or "")
    return {
        "lead": lead,
        "schemes": ("、" if locale == "zh" else ", ").join(titles),
        "gaps": gaps,
        "telegram": who,
        "timeline": timeline,
    }


def alert_text(content: Content, lead: Lead, *, updated: bool, footer: str | None = None) -> str:
    locale = content.default_locale
    text = content.t("staff_alert", locale, updated=updated, **alert_context(content, lead, locale))
    return f"{text}\n\n{footer}" if footer else text


def alert_buttons(content: Content, lead_id: int) -> InlineKeyboardMarkup:
    locale = content.default_locale
    return InlineKeyboardMarkup(
        inline_keyboard=[
            [
                InlineKeyboardButton(
                    text=content.t("staff_take", locale), callback_data=f"st:take:{lead_id}"
                ),
                InlineKeyboardButton(
                    text=content.t("staff_contacted", locale), callback_data=f"st:done:{lead_id}"
                ),
                InlineKeyboardButton(
                    text=content.t("staff_card_button", locale), callback_data=f"sc:{lead_id}:V"
                ),
            ]
        ]
    )


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


class AlertSender:
    def __init__(self, bot: Bot, repo: LeadRepository, content: Content, *, base_pause: float = 2.0) -> None:
        self.bot = bot
        self.repo = repo
        self.content = content
        self.base_pause = base_pause
        """The first retry waits this long, then twice as long each time (ten minutes at most)."""
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def wake(self) -> None:
        """A new alert is queued: deliver it now rather than at the next check."""
        self._wake.set()

    def start(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self.run(), name="staff-alerts")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def run(self) -> None:
        while True:
            try:
                await self.deliver_due()
                upcoming = await self.repo.next_alert_at()
            except Exception:
                log.exception("staff alerts: delivery round failed")
                upcoming = None
            pause = IDLE_CHECK
            if upcoming is not None:
                pause = min(IDLE_CHECK, max(0.05, (_aware(upcoming) - utcnow()).total_seconds()))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), pause)
            self._wake.clear()

    async def deliver_due(self) -> int:
        """Send every alert that is due; return how many were delivered."""
        delivered = 0
        claimed = await self.repo.due_alerts()
        handled: set[int] = set()
        resume_at = utcnow()
        try:
            for outbox, lead in claimed:
                text = alert_text(self.content, lead, updated=outbox.kind == "updated_lead")
                try:
                    sent = await self.bot.send_message(
                        chat_id=outbox.chat_id, text=text, reply_markup=alert_buttons(self.content, lead.id)
                    )
                except TelegramRetryAfter as e:
                    resume_at = utcnow() + timedelta(seconds=e.retry_after)
                    await self.repo.alert_failed(outbox.id, f"429: retry after {e.retry_after}s", resume_at)
                    handled.add(outbox.id)
                    log.warning("staff alert %s: flood control, retry in %ss", outbox.id, e.retry_after)
                    break  # the whole chat is limited: the rest waits as long
                except (TelegramAPIError, TelegramNetworkError, TimeoutError, OSError) as e:
                    pause = min(MAX_PAUSE, self.base_pause * 2.0 ** min(outbox.attempts, 10))
                    await self.repo.alert_failed(
                        outbox.id, f"{type(e).__name__}: {e}", utcnow() + timedelta(seconds=pause)
                    )
                    log.warning(
                        "staff alert %s failed (%s); retry in %.0fs", outbox.id, type(e).__name__, pause
                    )
                else:
                    await self.repo.alert_sent(outbox.id, sent.message_id)
                    delivered += 1
                handled.add(outbox.id)
        finally:
            # Claimed but not sent (flood control, or stopping): due again at once, not after the lease.
            rest = [outbox.id for outbox, _ in claimed if outbox.id not in handled]
            if rest:
                await asyncio.shield(self.repo.release_alerts(rest, resume_at))
        return delivered
