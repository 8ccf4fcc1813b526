"""Staff alerts: each new or updated lead is posted to the staff group at once, from the outbox.

The alert is queued in the same transaction as the lead, so it cannot be lost; this sender
delivers what is due, and retries what failed (429: after ``retry_after``; 5xx, network errors
and timeouts: with growing pauses up to ten minutes) until it is delivered, across restarts. A
4xx other than 429 (the chat is gone, the bot was removed) is retried ``REFUSED_ATTEMPTS`` times,
then marked failed: no longer retried, and listed on the dashboard.

Around a crash: each send is recorded as begun (``sending_at``) before it goes out. Telegram has
no idempotency key, so an alert whose sender died between the send and recording it as sent may
have been delivered: it is sent again, marked as a possible repeat. A polling process is the only
sender, so at start it takes back at once what an earlier run claimed; webhook replicas leave a
dead replica's claims to the lease (``ALERT_LEASE``, two minutes).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Sequence
from datetime import timedelta

from aiogram import Bot
from aiogram.exceptions import (
    TelegramAPIError,
    TelegramMigrateToChat,
    TelegramNetworkError,
    TelegramRetryAfter,
    TelegramServerError,
)
from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup

from bot.content import Content
from bot.db.models import Lead, Outbox, as_utc, utcnow
from bot.leads.repository import LeadRepository
from bot.leads.summary import alert_text

log = logging.getLogger(__name__)

MAX_PAUSE = 600.0
IDLE_CHECK = 60.0
REFUSED_ATTEMPTS = 3
"""A 4xx other than 429 is tried this many times in all, then the alert is marked failed."""


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


class AlertSender:
    def __init__(
        self,
        bot: Bot,
        repo: LeadRepository,
        content: Content,
        *,
        base_pause: float = 2.0,
        only_sender: bool = False,
    ) -> None:
        self.bot = bot
        self.repo = repo
        self.content = content
        self.base_pause = base_pause
        """The first retry waits this long, then twice as long each time (ten minutes at most)."""
        self.only_sender = only_sender
        """No other process sends alerts (polling): claims of an earlier run are taken back."""
        self.name = f"{uuid.uuid4().hex[:12]}"
        """This sender's name in the claims it makes."""
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
        if self.only_sender:
            try:
                taken = await self.repo.reclaim_alerts(self.name)
                if taken:
                    log.warning("staff alerts: %d left unfinished by an earlier run, sending now", taken)
            except Exception:
                log.exception("staff alerts: taking back an earlier run's claims failed")
        while True:
            try:
                await self.deliver_due()
                upcoming = await self.repo.next_alert_at()
            except Exception:
                log.exception("staff alerts: delivery round failed")
                upcoming = None
            pause = IDLE_CHECK
            if upcoming is not None:
                pause = min(IDLE_CHECK, max(0.05, (as_utc(upcoming) - utcnow()).total_seconds()))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), pause)
            self._wake.clear()

    async def deliver_due(self) -> int:
        """Send every alert that is due; return how many were delivered."""
        delivered = 0
        claimed = await self.repo.due_alerts(sender=self.name)
        handled: set[int] = set()
        resume_at = utcnow()
        try:
            for outbox in claimed:
                # The lead as it is now; None: the claim went to another sender, or the lead was
                # erased (/forget) since it was queued.
                lead = await self.repo.alert_sending(outbox.id, self.name)
                if lead is None:
                    handled.add(outbox.id)
                    continue
                text = alert_text(
                    self.content,
                    lead,
                    updated=outbox.kind == "updated_lead",
                    repeat=outbox.sending_at is not None,  # an earlier send was cut off
                )
                try:
                    sent = await self.bot.send_message(
                        chat_id=outbox.chat_id, text=text, reply_markup=alert_buttons(self.content, lead.id)
                    )
                except TelegramRetryAfter as e:
                    resume_at = utcnow() + timedelta(seconds=e.retry_after)
                    await self.repo.alert_failed(
                        outbox.id, f"429: retry after {e.retry_after}s", resume_at, answered=True
                    )
                    handled.add(outbox.id)
                    log.warning("staff alert %s: flood control, retry in %ss", outbox.id, e.retry_after)
                    break  # the whole chat is limited: the rest waits as long
                except TelegramMigrateToChat as e:  # the group became a supergroup
                    await self.repo.move_alert(outbox.id, e.migrate_to_chat_id)
                    log.warning(
                        "the staff group is now chat %s: set STAFF_CHAT_ID to it", e.migrate_to_chat_id
                    )
                except (TelegramNetworkError, TimeoutError, OSError) as e:  # it may have arrived
                    await self._failed(outbox, e, answered=False)
                except TelegramAPIError as e:  # Telegram answered: refused, or a server error
                    await self._failed(outbox, e, answered=True)
                else:
                    await self.repo.alert_sent(outbox.id, sent.message_id)
                    delivered += 1
                    await self._erase_if_forgotten(outbox.chat_id, sent.message_id, lead)
                handled.add(outbox.id)
        finally:
            # Claimed but not sent (flood control, or stopping): due again at once, not after the lease.
            rest = [outbox.id for outbox in claimed if outbox.id not in handled]
            if rest:
                await asyncio.shield(self.repo.release_alerts(rest, resume_at))
        return delivered

    async def erase_posted(self, posted: Sequence[Outbox]) -> int:
        """/forget: the alerts already posted about an erased prospect are edited to say so
        (best effort: a message may have been deleted in the group). How many were edited."""
        edited = 0
        for outbox in posted:
            lead = await self.repo.get(outbox.lead_id)
            if lead is None or outbox.message_id is None:
                continue
            text = self.content.t("staff_alert_erased", self.content.default_locale, reference=lead.reference)
            with contextlib.suppress(TelegramAPIError):
                await self.bot.edit_message_text(
                    chat_id=outbox.chat_id, message_id=outbox.message_id, text=text
                )
                edited += 1
        return edited

    async def _erase_if_forgotten(self, chat_id: int, message_id: int, lead: Lead) -> None:
        """The prospect was erased while their alert was on its way: take the details out."""
        now = await self.repo.get(lead.id)
        if now is not None and now.forgotten_at is None:
            return
        text = self.content.t("staff_alert_erased", self.content.default_locale, reference=lead.reference)
        with contextlib.suppress(TelegramAPIError):
            await self.bot.edit_message_text(chat_id=chat_id, message_id=message_id, text=text)

    async def _failed(self, outbox: Outbox, error: Exception, *, answered: bool) -> None:
        """Retry later with a growing pause; a refusal (4xx) only ``REFUSED_ATTEMPTS`` times in a
        row."""
        description = f"{type(error).__name__}: {error}"
        refused = not isinstance(error, (TelegramServerError, TelegramNetworkError, TimeoutError, OSError))
        if refused and outbox.refusals + 1 >= REFUSED_ATTEMPTS:
            await self.repo.alert_failed(outbox.id, description, None, answered=True, refused=True)
            log.error("staff alert %s refused by Telegram (%s); marked failed", outbox.id, description)
            return
        pause = min(MAX_PAUSE, self.base_pause * 2.0 ** min(outbox.attempts, 10))
        await self.repo.alert_failed(
            outbox.id, description, utcnow() + timedelta(seconds=pause), answered=answered, refused=refused
        )
        log.warning("staff alert %s failed (%s); retry in %.0fs", outbox.id, type(error).__name__, pause)
