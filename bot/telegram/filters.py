"""Cheap async filters for the hot path.

aiogram runs a synchronous filter (a magic ``F.`` filter included) in a worker thread, which
costs more than the rest of handling an update; these coroutines run inline.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiogram.types import CallbackQuery, Message

if TYPE_CHECKING:
    from bot.telegram.runtime import Runtime

ADMIN_COMMANDS = ("/reload", "/stats")


async def private_message(message: Message) -> bool:
    return message.chat.type == "private"


async def private_button(query: CallbackQuery) -> bool:
    """A prospect's button (staff buttons, ``st:...``, go to the staff router even in private)."""
    return (
        query.message is not None
        and query.message.chat.type == "private"
        and not (query.data or "").startswith("st:")
    )


async def not_text(message: Message) -> bool:
    return message.text is None


def admin_command(message: Message, admins: list[int]) -> bool:
    """An admin's ``/reload`` or ``/stats`` (for anyone else they are just unknown commands)."""
    text = message.text or ""
    if not text.startswith(ADMIN_COMMANDS) or message.from_user is None or message.from_user.id not in admins:
        return False
    word = text.split(maxsplit=1)[0].split("@", 1)[0]
    return word in ADMIN_COMMANDS


async def prospect_text(message: Message, runtime: Runtime) -> bool:
    """Text for the conversation: everything but an admin's commands, which the admin router takes
    (it comes after the conversation router, so prospects' updates never pass through it)."""
    return message.text is not None and not admin_command(message, runtime.settings.admin_ids)


async def admin_text(message: Message, runtime: Runtime) -> bool:
    return admin_command(message, runtime.settings.admin_ids)
