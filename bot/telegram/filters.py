"""Cheap async filters for the hot path.

aiogram runs a synchronous filter (a magic ``F.`` filter included) in a worker thread, which
costs more than the rest of handling an update; these coroutines run inline.
"""

from __future__ import annotations

from aiogram.types import CallbackQuery, Message


async def private_message(message: Message) -> bool:
    return message.chat.type == "private"


async def private_button(query: CallbackQuery) -> bool:
    """A prospect's button (staff buttons, ``st:...``, go to the staff router even in private)."""
    return (
        query.message is not None
        and query.message.chat.type == "private"
        and not (query.data or "").startswith("st:")
    )


async def any_text(message: Message) -> bool:
    return message.text is not None
