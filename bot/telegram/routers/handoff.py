"""The staff group's side of live chats: a message in a prospect's forum topic, or a reply to one
of the bot's messages about a live chat, goes to that prospect; ``/close`` there ends the chat."""

from __future__ import annotations

from aiogram import Bot, Router
from aiogram.types import Message

from bot.telegram.runtime import Runtime
from bot.telegram.staff import command_word, who


async def in_staff_group(message: Message, runtime: Runtime) -> bool:
    return runtime.live is not None and message.chat.id == runtime.settings.staff_chat_id


async def on_staff_message(message: Message, bot: Bot, runtime: Runtime) -> None:
    desk = runtime.live
    if desk is None or message.from_user is None or message.from_user.is_bot:
        return
    live = await desk.find(message)
    if live is None:  # the staff talking among themselves
        return
    word = command_word(message.text or "")
    if word == "/close":
        await desk.close(bot, message, live, who(message.from_user))
    elif not word:
        await desk.answer(bot, message, live)


def build_router() -> Router:
    router = Router(name="handoff")
    router.message.register(on_staff_message, in_staff_group)
    return router


router = build_router()
