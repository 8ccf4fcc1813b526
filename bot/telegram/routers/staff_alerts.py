"""The buttons on a staff alert: take the lead, or mark it contacted.

Callback data is untrusted: rights are checked on every press (an admin, or a press in the staff
group). Anyone else gets no answer beyond closing the spinner, and no hint that staff tools exist.
"""

from __future__ import annotations

import logging
from typing import Any

from aiogram import Bot, Router
from aiogram.exceptions import TelegramBadRequest
from aiogram.types import CallbackQuery, User

from bot.telegram.alerts import alert_buttons, alert_text
from bot.telegram.runtime import Runtime

log = logging.getLogger(__name__)


async def staff_button(query: CallbackQuery) -> bool:
    return (query.data or "").startswith("st:")


def is_staff(runtime: Runtime, user: User, chat_id: int | None) -> bool:
    settings = runtime.settings
    return user.id in settings.admin_ids or (chat_id is not None and chat_id == settings.staff_chat_id)


def display_name(user: User) -> str:
    return f"@{user.username}" if user.username else user.full_name


async def on_staff_button(query: CallbackQuery, bot: Bot, runtime: Runtime) -> Any:
    message = query.message
    chat_id = message.chat.id if message is not None else None
    parts = (query.data or "").split(":")
    repo = runtime.leads
    if (
        repo is None
        or not is_staff(runtime, query.from_user, chat_id)
        or len(parts) != 3
        or not parts[2].isdigit()
    ):
        return await query.answer()
    action, lead_id = parts[1], int(parts[2])
    who = display_name(query.from_user)
    content = runtime.engine.content
    locale = content.default_locale
    if action == "take":
        lead = await repo.assign(lead_id, who)
        footer = content.t("staff_taken_by", locale, who=who)
    elif action == "done":
        lead = await repo.set_status(lead_id, "contacted")
        footer = content.t("staff_marked_contacted", locale, who=who)
    else:
        return await query.answer()
    if lead is None:
        return await query.answer()
    await query.answer(footer)
    if message is not None and chat_id is not None:
        try:
            await bot.edit_message_text(
                chat_id=chat_id,
                message_id=message.message_id,
                text=alert_text(content, lead, updated=False, footer=footer),
                reply_markup=alert_buttons(content, lead.id),
            )
        except TelegramBadRequest as e:
            log.info("staff alert for lead %s not edited: %s", lead_id, e.message)
    return None


def build_router() -> Router:
    router = Router(name="staff_alerts")
    router.callback_query.register(on_staff_button, staff_button)
    return router


router = build_router()
