"""Shows the engine's replies in Telegram: messages with inline keyboards, or an edited menu."""

from __future__ import annotations

import functools
import logging
from collections.abc import Sequence

from aiogram import Bot
from aiogram.exceptions import TelegramBadRequest
from aiogram.types import (
    InlineKeyboardMarkup,
    KeyboardButton,
    ReplyKeyboardMarkup,
    ReplyKeyboardRemove,
)

from bot.conversation.core import ConversationCore
from bot.conversation.turn import Turn
from bot.engine.events import Button, Event, Reply, Result
from bot.engine.state import State

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
    core: ConversationCore,
    chat_id: int,
    turn: Turn,
    result: Result,
    *,
    event: Event | None = None,
    edit_message_id: int | None = None,
) -> None:
    """Carry out the turn (effects first, then the new state: ``ConversationCore.apply``), then
    send (or edit into place) the replies. If an effect failed, the prospect is told so."""
    replies = await core.apply(turn, result, event)
    if replies is None:
        await bot.send_message(chat_id=chat_id, text=core.failure(turn, result).text)
        return
    await show(bot, core, chat_id, turn, result.state, replies, edit_message_id=edit_message_id)


async def show(
    bot: Bot,
    core: ConversationCore,
    chat_id: int,
    turn: Turn,
    state: State,
    replies: Sequence[Reply],
    *,
    edit_message_id: int | None = None,
) -> None:
    """Send (or edit into place) ``replies`` in the conversation now at ``state``, then what is
    owed to the prospect."""
    content = core.engine.content
    if turn.contact_keyboard and not core.engine.asks_for_contact(state):
        await bot.send_message(
            chat_id=chat_id,
            text=content.t("contact_received", state.locale),
            reply_markup=ReplyKeyboardRemove(remove_keyboard=True),
        )
        turn.contact_keyboard = False
    if edit_message_id is not None and len(replies) == 1 and replies[0].kind == "view":
        reply = replies[0]
        try:
            await bot.edit_message_text(
                chat_id=chat_id, message_id=edit_message_id, text=reply.text, reply_markup=keyboard(reply)
            )
            turn.menu_id = edit_message_id
            replies = []
        except TelegramBadRequest as e:
            if "message is not modified" in e.message:
                replies = []
            else:  # too old to edit, deleted...: send it instead
                log.info("could not edit message %s: %s", edit_message_id, e.message)
    for reply in replies:
        sent = await bot.send_message(chat_id=chat_id, text=reply.text, reply_markup=keyboard(reply))
        if reply.buttons:
            turn.menu_id = sent.message_id
        if reply.request_contact and not turn.contact_keyboard:
            share = KeyboardButton(text=reply.request_contact, request_contact=True)
            await bot.send_message(
                chat_id=chat_id,
                text=content.t("contact_hint", state.locale),
                reply_markup=ReplyKeyboardMarkup(
                    keyboard=[[share]], resize_keyboard=True, one_time_keyboard=True
                ),
            )
            turn.contact_keyboard = True
    # What is owed (a reference number, also one a crash kept from being sent) comes last.
    while turn.pending:
        await bot.send_message(chat_id=chat_id, text=turn.pending[0])
        del turn.pending[0]


async def respond(bot: Bot, core: ConversationCore, chat_id: int, turn: Turn, event: Event) -> None:
    """Hand an event to the engine and show the result as new messages."""
    await present(bot, core, chat_id, turn, core.handle(turn, event), event=event)


class TelegramOutlet:
    """Shows replies to a Telegram prospect outside a turn of theirs (``Outlet``)."""

    def __init__(self, bot: Bot, core: ConversationCore) -> None:
        self.bot = bot
        self.core = core

    async def show(self, turn: Turn, state: State, replies: Sequence[Reply]) -> bool:
        assert turn.prospect is not None
        await show(self.bot, self.core, turn.prospect.telegram_chat, turn, state, replies)
        return True
