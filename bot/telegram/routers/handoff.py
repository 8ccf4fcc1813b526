"""The staff group's side of live chats: a message in a prospect's forum topic, or a reply to one
of the bot's messages about a live chat, goes to that prospect; ``/close`` there ends the chat."""

from __future__ import annotations

from aiogram import Router
from aiogram.types import Message

from bot.telegram.runtime import Runtime
from bot.telegram.staff import command_word, who


async def in_staff_group(message: Message, runtime: Runtime) -> bool:
    return runtime.live is not None and message.chat.id == runtime.settings.staff_chat_id


async def on_staff_message(message: Message, runtime: Runtime) -> None:
    room = runtime.live
    if room is None or message.from_user is None or message.from_user.is_bot:
        return
    live = await room.find(message)
    if live is None:  # the staff talking among themselves
        return
    word = command_word(message.text or "")
    if word == "/close":
        await room.close_by(message, live, who(message.from_user))
    elif not word:
        await room.answer(message, live)


def build_router() -> Router:
    router = Router(name="handoff")
    router.message.register(on_staff_message, in_staff_group)
    return router
