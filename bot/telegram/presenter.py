"""Shows the engine's replies in Telegram: messages with inline keyboards, or an edited menu."""

from __future__ import annotations

import functools
import logging
from typing import Any

from aiogram import Bot
from aiogram.exceptions import TelegramBadRequest
from aiogram.types import InlineKeyboardMarkup, User

from bot.engine.events import Button, Event, Reply, Result
from bot.telegram.runtime import ChatSession, Runtime

log = logging.getLogger(__name__)


@functools.lru_cache(maxsize=4096)
def _markup(buttons: tuple[tuple[Button, ...], ...]) -> InlineKeyboardMarkup:
    rows = [
        [
            {"text": b.label, "url": b.url} if b.url else {"text": b.label, "callback_data": b.payload}
            for b in row
        ]
        for row in buttons
    ]
    return InlineKeyboardMarkup.model_validate({"inline_keyboard": rows})


def keyboard(reply: Reply) -> InlineKeyboardMarkup | None:
    """The inline keyboard of a reply. Built once per distinct keyboard: many prospects see the
    same buttons with the same payloads, and building the pydantic models is a large part of a
    turn's cost. The markup objects are never modified after they are built."""
    return _markup(reply.buttons) if reply.buttons else None


async def present(
    bot: Bot,
    runtime: Runtime,
    chat_id: int,
    chat: ChatSession,
    result: Result,
    *,
    edit_message_id: int | None = None,
    context: dict[str, Any] | None = None,
) -> None:
    """Send (or edit into place) the replies, keep the new state, and hand effects over."""
    chat.state = result.state
    replies = result.replies
    if edit_message_id is not None and len(replies) == 1 and replies[0].kind == "view":
        reply = replies[0]
        try:
            await bot.edit_message_text(
                chat_id=chat_id, message_id=edit_message_id, text=reply.text, reply_markup=keyboard(reply)
            )
            chat.menu_id = edit_message_id
            replies = []
        except TelegramBadRequest as e:
            if "message is not modified" in e.message:
                replies = []
            else:  # too old to edit, deleted...: send it instead
                log.info("could not edit message %s: %s", edit_message_id, e.message)
    for reply in replies:
        sent = await bot.send_message(chat_id=chat_id, text=reply.text, reply_markup=keyboard(reply))
        if reply.buttons:
            chat.menu_id = sent.message_id
    for effect in result.effects:
        for handler in runtime.effect_handlers:
            await handler(effect, chat, context or {})


async def respond(
    bot: Bot,
    runtime: Runtime,
    chat_id: int,
    chat: ChatSession,
    user: User | None,
    event: Event,
) -> None:
    """Hand an event to the engine and show the result as new messages."""
    language = user.language_code if user is not None else None
    result = runtime.engine.handle(chat.state, event, language_code=language)
    await present(bot, runtime, chat_id, chat, result)
