"""Effects that become leads: the lead form (``lead``) and asking a consultant (``enquiry``)."""

from __future__ import annotations

from aiogram.types import User

from bot.content import Content
from bot.engine.events import Effect
from bot.leads.repository import LeadRepository, LeadSubmission
from bot.telegram.alerts import AlertSender
from bot.telegram.runtime import ChatSession, EffectHandler

LEAD_EFFECTS = frozenset({"lead", "enquiry"})


def lead_effects(repo: LeadRepository, alerts: AlertSender | None, content: Content) -> EffectHandler:
    async def handle(effect: Effect, chat: ChatSession, user: User | None) -> list[str]:
        if effect.name == "forget":
            if user is not None:
                await repo.forget(user.id)
            return []
        if effect.name not in LEAD_EFFECTS:
            return []
        # The update that submitted identifies the submission: a redelivered update, or one
        # replayed after a crash, has the same id; ids never repeat, even after /forget or a purge
        # (a double tap is a stale button and submits nothing).
        key = f"{chat.key}:{chat.update_id}"
        submission = LeadSubmission.from_effect(
            effect,
            key=key,
            user_id=user.id if user else None,
            username=user.username if user else None,
            transcript=chat.transcript,
        )
        saved = await repo.submit(submission)
        if alerts is not None:
            alerts.wake()
        locale = effect.data.get("locale") or content.default_locale
        return [content.t("lead_saved", locale, reference=saved.reference)]

    return handle
