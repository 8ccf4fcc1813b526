"""Commands in a private chat: /start [flow], /menu, /back, /restart, /cancel, /lang, /help..."""

from __future__ import annotations

from aiogram import Bot, Router
from aiogram.types import Message

from bot.engine.events import TextIn, parse_command
from bot.telegram.filters import command_text, private_message
from bot.telegram.presenter import respond
from bot.telegram.runtime import ChatSession, Runtime


async def on_command(message: Message, bot: Bot, runtime: Runtime, chat_session: ChatSession) -> None:
    text = message.text or ""
    event = parse_command(text) or TextIn(text)
    await respond(bot, runtime, message.chat.id, chat_session, message.from_user, event)


def build_router() -> Router:
    """A new router each time: a router can belong to one dispatcher only (tests build several)."""
    router = Router(name="commands")
    router.message.filter(private_message, command_text)
    router.message.register(on_command)
    return router


router = build_router()
