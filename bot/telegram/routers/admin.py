"""Admin commands: ``/reload`` the content. Only for ``ADMIN_IDS``; anyone else is answered as
for any unknown command (by the conversation)."""

from __future__ import annotations

from aiogram import Router
from aiogram.types import Message

from bot.telegram.filters import admin_text
from bot.telegram.reload import on_reload
from bot.telegram.runtime import Runtime


async def on_admin_command(message: Message, runtime: Runtime) -> None:
    await on_reload(message, runtime)


def build_router() -> Router:
    router = Router(name="admin")
    router.message.register(on_admin_command, admin_text)
    return router
