"""A prospect's conversation in a private chat: commands, typed text, buttons, and everything else
(stickers, photos, voice, files, locations, edited messages), all handed to the engine.
"""

from __future__ import annotations

import asyncio
import logging

from aiogram import Bot, Router
from aiogram.types import CallbackQuery, Message

from bot.conversation.turn import Turn
from bot.engine.events import Event, Press, SharedContact, TextIn, Unsupported, parse_command
from bot.telegram.filters import not_text, private_button, private_message, prospect_text
from bot.telegram.presenter import present, respond
from bot.telegram.runtime import Runtime

log = logging.getLogger(__name__)


async def on_text(message: Message, bot: Bot, runtime: Runtime, turn: Turn) -> None:
    """Commands (``/start iso20000``, ``/menu``...) and free text."""
    text = message.text or ""
    turn.attachment = message
    event = (parse_command(text) if text.startswith("/") else None) or TextIn(text)
    await respond(bot, runtime.core, message.chat.id, turn, event)


async def on_button(query: CallbackQuery, bot: Bot, runtime: Runtime, turn: Turn) -> None:
    engine = runtime.engine
    state = turn.state
    payload = query.data or ""
    message_id = query.message.message_id if query.message is not None else None
    if state is not None and not turn.pending and engine.age(state, payload) == 1:
        # A double tap (or a late tap) on the view just left: the current one is right there
        # (unless something is owed: then the press is answered with the current view and it).
        await _answer(query, engine.content.t("expired", state.locale))
        return
    result = runtime.core.handle(turn, Press(payload))
    # Within one step (paging, the self-check's questions) the message is edited in place;
    # a new step comes as a new message, so what the prospect read stays readable above.
    same_step = state is not None and (state.flow, state.step) == (result.state.flow, result.state.step)
    edit = message_id if same_step and message_id == turn.menu_id else None
    chat_id = query.message.chat.id if query.message is not None else query.from_user.id
    show = present(bot, runtime.core, chat_id, turn, result, edit_message_id=edit)
    if not result.effects:
        # Most presses only show the next view: answered (the spinner stopped) once it is out, as
        # aiogram's CallbackAnswerMiddleware does, with no task of its own. If handling fails, the
        # error handler answers.
        await show
        await _answer(query)
        return
    # Effects (a lead to save, a live chat to open) wait on the database and on the staff group's
    # sending limit: the spinner is stopped at once, alongside.
    answering = asyncio.ensure_future(_answer(query))
    try:
        await show
    except asyncio.CancelledError:  # shutting down: no waiting for the answer's retries
        answering.cancel()
        raise
    except BaseException:
        await answering
        raise
    await answering


async def _answer(query: CallbackQuery, text: str | None = None) -> None:
    """Answer a button press. If Telegram refuses (a press older than Telegram keeps, after a long
    outage) or cannot be reached, the press is handled all the same: only the spinner was at stake."""
    try:
        await query.answer(text)
    except Exception as e:
        log.warning("could not answer a button press: %s", e)


async def on_other_message(message: Message, bot: Bot, runtime: Runtime, turn: Turn) -> None:
    turn.attachment = message
    event: Event = (
        SharedContact(message.contact.phone_number)
        if message.contact is not None
        else Unsupported(str(getattr(message.content_type, "value", message.content_type)))
    )
    await respond(bot, runtime.core, message.chat.id, turn, event)


async def on_edited(message: Message, bot: Bot, runtime: Runtime, turn: Turn) -> None:
    await respond(bot, runtime.core, message.chat.id, turn, Unsupported("edited"))


def build_router() -> Router:
    """A new router each time: a router can belong to one dispatcher only (tests build several)."""
    router = Router(name="conversation")
    router.message.filter(private_message)
    router.edited_message.filter(private_message)
    router.callback_query.filter(private_button)
    router.message.register(on_text, prospect_text)
    router.message.register(on_other_message, not_text)
    router.edited_message.register(on_edited)
    router.callback_query.register(on_button)
    return router
