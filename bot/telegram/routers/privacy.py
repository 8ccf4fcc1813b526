"""/privacy says what is stored and why; /forget deletes the prospect's personal data."""

from __future__ import annotations

from aiogram import Bot, Router
from aiogram.types import CallbackQuery, InlineKeyboardButton, InlineKeyboardMarkup, Message

from bot.engine.events import parse_command
from bot.telegram.filters import private_button, private_message
from bot.telegram.runtime import ChatSession, Runtime

COMMANDS = frozenset({"privacy", "forget"})


async def privacy_command(message: Message) -> bool:
    text = message.text or ""
    command = parse_command(text) if text.startswith("/") else None
    return command is not None and command.name in COMMANDS


async def privacy_button(query: CallbackQuery) -> bool:
    return (query.data or "").startswith("pv:")


def _locale(runtime: Runtime, chat: ChatSession, language_code: str | None) -> str:
    return chat.state.locale if chat.state is not None else runtime.engine.locale_for(language_code)


async def on_command(message: Message, runtime: Runtime, chat_session: ChatSession) -> None:
    content = runtime.engine.content
    locale = _locale(runtime, chat_session, message.from_user.language_code if message.from_user else None)
    command = parse_command(message.text or "")
    assert command is not None
    if command.name == "privacy":
        await message.answer(content.t("privacy", locale, days=runtime.settings.retention_days))
        return
    buttons = InlineKeyboardMarkup(
        inline_keyboard=[
            [
                InlineKeyboardButton(text=content.t("forget_yes", locale), callback_data="pv:forget"),
                InlineKeyboardButton(text=content.t("forget_no", locale), callback_data="pv:keep"),
            ]
        ]
    )
    await message.answer(content.t("forget_confirm", locale), reply_markup=buttons)


async def on_button(query: CallbackQuery, bot: Bot, runtime: Runtime, chat_session: ChatSession) -> None:
    content = runtime.engine.content
    locale = _locale(runtime, chat_session, query.from_user.language_code)
    await query.answer()
    if query.data == "pv:forget":
        if runtime.leads is not None:
            await runtime.leads.forget(query.from_user.id)
        chat_session.forgotten = True  # the conversation itself is deleted after this update
        text = content.t("forgotten", locale)
    else:
        text = content.t("forget_kept", locale)
    if query.message is not None:
        await bot.edit_message_text(
            chat_id=query.message.chat.id, message_id=query.message.message_id, text=text
        )


def build_router() -> Router:
    router = Router(name="privacy")
    router.message.filter(private_message)
    router.callback_query.filter(private_button)
    router.message.register(on_command, privacy_command)
    router.callback_query.register(on_button, privacy_button)
    return router


router = build_router()
