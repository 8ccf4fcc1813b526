"""Admin commands: ``/reload`` the content. Only for ``ADMIN_IDS``; others never see them."""

from __future__ import annotations

from aiogram import Router
from aiogram.types import Message

from bot.telegram.reload import on_reload, reload_command
from bot.telegram.runtime import Runtime


async def from_admin(message: Message, runtime: Runtime) -> bool:
    return message.from_user is not None and message.from_user.id in runtime.settings.admin_ids


def build_router() -> Router:
    router = Router(name="admin")
    router.message.register(on_reload, reload_command, from_admin)
    return router


router = build_router()
