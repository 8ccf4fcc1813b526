"""Buttons and free text in a private chat go to the engine."""

from __future__ import annotations

from aiogram import Bot, Router
from aiogram.types import CallbackQuery, Message

from bot.engine.events import Press, TextIn
from bot.telegram.filters import any_text, private_button, private_message
from bot.telegram.presenter import present, respond
from bot.telegram.runtime import ChatSession, Runtime


async def on_button(query: CallbackQuery, bot: Bot, runtime: Runtime, chat_session: ChatSession) -> None:
    engine = runtime.engine
    state = chat_session.state
    payload = query.data or ""
    message_id = query.message.message_id if query.message is not None else None
    if state is not None and engine.age(state, payload) == 1:
        # A double tap (or a late tap) on the view just left: the current one is right there.
        await query.answer(engine.content.t("expired", state.locale))
        return
    await query.answer()
    result = engine.handle(state, Press(payload), language_code=query.from_user.language_code)
    same_step = state is not None and (state.flow, state.step) == (result.state.flow, result.state.step)
    edit = message_id if same_step and message_id == chat_session.menu_id else None
    chat_id = query.message.chat.id if query.message is not None else query.from_user.id
    await present(bot, runtime, chat_id, chat_session, result, edit_message_id=edit)


async def on_text(message: Message, bot: Bot, runtime: Runtime, chat_session: ChatSession) -> None:
    await respond(bot, runtime, message.chat.id, chat_session, message.from_user, TextIn(message.text or ""))


def build_router() -> Router:
    """A new router each time: a router can belong to one dispatcher only (tests build several)."""
    router = Router(name="flow")
    router.message.filter(private_message)
    router.callback_query.filter(private_button)
    router.callback_query.register(on_button)
    router.message.register(on_text, any_text)
    return router


router = build_router()
