"""Cheap async filters for the hot path.

aiogram runs a synchronous filter (a magic ``F.`` filter included) in a worker thread, which
costs more than the rest of handling an update; these coroutines run inline.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from aiogram import Bot
from aiogram.types import CallbackQuery, Message

from bot.telegram.staff import ADMIN_COMMANDS, STAFF_COMMANDS, command_word

if TYPE_CHECKING:
    from bot.telegram.runtime import Runtime

STAFF_BUTTONS = ("sl:", "sc:", "st:")
REFERENCE = re.compile(r"\b([LQ]\d{6})\b")


async def private_message(message: Message) -> bool:
    return message.chat.type == "private"


async def private_button(query: CallbackQuery) -> bool:
    """A prospect's button (staff buttons go to the staff router, even in a private chat)."""
    return (
        query.message is not None
        and query.message.chat.type == "private"
        and not (query.data or "").startswith(STAFF_BUTTONS)
    )


async def not_text(message: Message) -> bool:
    return message.text is None


async def is_staff_command(message: Message, bot: Bot, runtime: Runtime) -> bool:
    """A staff member's command (an admin's, for /reload). For anyone else these words are just
    unknown commands, answered by the conversation like any other: no hint that they exist."""
    word = command_word(message.text or "")
    if word in ADMIN_COMMANDS:
        return runtime.staff.is_admin(message.from_user)
    if word in STAFF_COMMANDS:
        return await runtime.staff.is_staff(bot, message.from_user, message.chat)
    return False


def answers_note_prompt(message: Message, bot: Bot) -> bool:
    """A reply to the bot's "📝 L000123: reply with your note" prompt (sent to staff only)."""
    replied = message.reply_to_message
    return (
        replied is not None
        and message.text is not None
        and replied.from_user is not None
        and replied.from_user.id == bot.id
        and (replied.text or "").startswith("📝")
        and REFERENCE.search(replied.text or "") is not None
    )


async def prospect_text(message: Message, bot: Bot, runtime: Runtime) -> bool:
    """Text for the conversation: everything but staff commands and notes (the staff routers,
    which come after the conversation router, take those; prospects' updates never reach them)."""
    if message.text is None:
        return False
    if message.reply_to_message is not None and answers_note_prompt(message, bot):
        return not await runtime.staff.is_staff(bot, message.from_user, message.chat)
    if not message.text.startswith("/"):
        return True
    return not await is_staff_command(message, bot, runtime)


async def admin_text(message: Message, runtime: Runtime) -> bool:
    """An admin's command in a staff place (elsewhere the staff router tells them privately)."""
    staff = runtime.staff
    return (
        command_word(message.text or "") in ADMIN_COMMANDS
        and staff.is_admin(message.from_user)
        and staff.in_staff_place(message.chat, message.from_user)
    )
