"""A prospect blocking or unblocking the bot (Telegram's ``my_chat_member`` updates)."""

from __future__ import annotations

from aiogram import Router
from aiogram.types import ChatMemberUpdated

from bot.telegram.runtime import Runtime


async def on_membership(update: ChatMemberUpdated, runtime: Runtime) -> None:
    if update.chat.type != "private":
        return
    if update.new_chat_member.status == "kicked":
        await runtime.blocked.mark(update.chat.id)
    else:
        await runtime.blocked.unmark(update.chat.id)


def build_router() -> Router:
    router = Router(name="membership")
    router.my_chat_member.register(on_membership)
    return router
