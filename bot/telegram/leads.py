"""Effects that become leads: the lead form (``lead``) and asking a consultant (``enquiry``);
and ``forget``, which erases the prospect's personal data."""

from __future__ import annotations

import contextlib
import logging

from aiogram.exceptions import TelegramAPIError
from aiogram.types import User

from bot.content import Content
from bot.engine.events import SUBMISSIONS, Effect, ForgetRequested
from bot.leads.repository import LeadRepository, LeadSubmission, Saved
from bot.prospect import ProspectId
from bot.storage import ConversationStore, Record, commit_with
from bot.telegram.alerts import AlertSender
from bot.telegram.runtime import ChatSession, EffectHandler

log = logging.getLogger(__name__)


def lead_effects(
    repo: LeadRepository, alerts: AlertSender | None, content: Content, store: ConversationStore
) -> EffectHandler:
    async def forget(prospect: ProspectId, chat: ChatSession) -> None:
        """Erase the prospect's data, then take it out of the alerts already in the staff group
        (best effort: a message may have been deleted there)."""
        ids = await repo.lead_ids_of(prospect)
        await repo.forget(prospect)
        posted = await repo.sent_alerts(ids)  # after: one sent meanwhile is listed too
        if chat.bot is None:
            return
        for outbox in posted:
            lead = await repo.get(outbox.lead_id)
            if lead is None or outbox.message_id is None:
                continue
            text = content.t("staff_alert_erased", content.default_locale, reference=lead.reference)
            with contextlib.suppress(TelegramAPIError):
                await chat.bot.edit_message_text(
                    chat_id=outbox.chat_id, message_id=outbox.message_id, text=text
                )
        log.info("a prospect's personal data was erased (%d alerts edited)", len(posted))

    async def handle(effect: Effect, chat: ChatSession, user: User | None) -> list[str]:
        if isinstance(effect, ForgetRequested):
            if user is not None:
                await forget(ProspectId.telegram(user.id), chat)
            return []
        if not isinstance(effect, SUBMISSIONS):
            return []
        # The update that submitted identifies the submission: a redelivered update, or one
        # replayed after a crash, has the same id; ids never repeat, even after /forget or a purge
        # (a double tap is a stale button and submits nothing).
        key = f"{chat.key}:{chat.update_id}"
        submission = LeadSubmission.from_effect(
            effect,
            key=key,
            prospect=ProspectId.telegram(user.id, user.username) if user else None,
            transcript=chat.transcript,
        )
        locale = effect.locale or content.default_locale

        def notice(saved: Saved) -> str:
            return content.t("lead_saved", locale, reference=saved.reference)

        def record(saved: Saved) -> Record:
            # The step after the submission and the reference owed to the prospect, in the lead's
            # transaction: killed right after, the prospect is not shown the old summary (whose
            # button would submit again) and still gets the reference with their next update.
            return chat.snapshot(chat.next_state, (*chat.pending, notice(saved)))

        saved = await commit_with(store, repo.db, chat.key, repo.submit_work(submission), record)
        if alerts is not None:
            alerts.wake()
        return [notice(saved)]

    return handle
