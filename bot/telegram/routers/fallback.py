"""Everything else in a private chat: stickers, photos, voice, files, locations, edited messages."""

from __future__ import annotations

from aiogram import Bot, Router
from aiogram.types import Message

from bot.engine.events import Unsupported
from bot.telegram.filters import private_message
from bot.telegram.presenter import respond
from bot.telegram.runtime import ChatSession, Runtime


async def on_other_message(message: Message, bot: Bot, runtime: Runtime, chat_session: ChatSession) -> None:
    event = Unsupported(str(message.content_type))
    await respond(bot, runtime, message.chat.id, chat_session, message.from_user, event)


async def on_edited(message: Message, bot: Bot, runtime: Runtime, chat_session: ChatSession) -> None:
    await respond(bot, runtime, message.chat.id, chat_session, message.from_user, Unsupported("edited"))


def build_router() -> Router:
    """A new router each time: a router can belong to one dispatcher only (tests build several)."""
    router = Router(name="fallback")
    router.message.filter(private_message)
    router.edited_message.filter(private_message)
    router.message.register(on_other_message)
    router.edited_message.register(on_edited)
    return router


router = build_router()
