"""Shows the engine's replies in Telegram: messages with inline keyboards, or an edited menu."""

from __future__ import annotations

import functools
import logging

from aiogram import Bot
from aiogram.exceptions import TelegramBadRequest
from aiogram.types import (
    InlineKeyboardMarkup,
    KeyboardButton,
    ReplyKeyboardMarkup,
    ReplyKeyboardRemove,
    User,
)

from bot.engine.events import Button, Command, Event, ForgetRequested, Reply, Result, SharedContact, TextIn
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


def transcript_line(event: Event) -> str | None:
    if isinstance(event, TextIn):
        return "> " + event.text
    if isinstance(event, Command):
        return f"> /{event.name} {event.arg}".rstrip()
    if isinstance(event, SharedContact):
        return "> [shared contact]"
    return None


async def present(
    bot: Bot,
    runtime: Runtime,
    chat_id: int,
    chat: ChatSession,
    result: Result,
    *,
    user: User | None = None,
    event: Event | None = None,
    edit_message_id: int | None = None,
) -> None:
    """Carry out the effects, keep the new state, then send (or edit into place) the replies.

    Effects come first: if one fails (the lead could not be saved), the state stays where it was,
    so the prospect can press the same button again, and is told so.
    """
    content = runtime.engine.content
    if result.effects:
        chat.durable = True  # a lead, a live chat...: the conversation is written before the ack
        chat.next_state = result.state
    for effect in result.effects:
        try:
            for handler in runtime.effect_handlers:
                chat.pending.extend(await handler(effect, chat, user))
        except Exception:
            log.exception("effect %s of conversation %s failed", effect.name, chat.key)
            locale = chat.state.locale if chat.state else result.state.locale
            await bot.send_message(chat_id=chat_id, text=content.t("save_failed", locale))
            return
        if isinstance(effect, ForgetRequested):
            chat.forgotten = True  # only once the leads are cleared: then the conversation goes too
            chat.pending.clear()
    before = chat.state
    if runtime.analytics is not None:
        runtime.analytics.observe(content, chat.key, before, result)
    chat.state = result.state
    line = transcript_line(event) if event is not None else None
    if line is not None:
        chat.note(line)
    if before is None or (before.flow, before.step) != (result.state.flow, result.state.step):
        chat.note(f"@{result.state.flow}.{result.state.step}")
    replies = result.replies
    if chat.contact_keyboard and not runtime.engine.asks_for_contact(result.state):
        await bot.send_message(
            chat_id=chat_id,
            text=content.t("contact_received", result.state.locale),
            reply_markup=ReplyKeyboardRemove(remove_keyboard=True),
        )
        chat.contact_keyboard = False
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
        if reply.request_contact and not chat.contact_keyboard:
            share = KeyboardButton(text=reply.request_contact, request_contact=True)
            await bot.send_message(
                chat_id=chat_id,
                text=content.t("contact_hint", result.state.locale),
                reply_markup=ReplyKeyboardMarkup(
                    keyboard=[[share]], resize_keyboard=True, one_time_keyboard=True
                ),
            )
            chat.contact_keyboard = True
    # What is owed (a reference number, also one a crash kept from being sent) comes last.
    while chat.pending:
        await bot.send_message(chat_id=chat_id, text=chat.pending[0])
        del chat.pending[0]


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
    await present(bot, runtime, chat_id, chat, result, user=user, event=event)
