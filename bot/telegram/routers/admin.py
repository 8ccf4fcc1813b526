"""Admin commands: ``/reload`` the content, ``/stats`` the analytics. Only for ``ADMIN_IDS``;
anyone else is answered as for any unknown command (by the conversation)."""

from __future__ import annotations

from aiogram import Router
from aiogram.types import Message

from bot.telegram.filters import admin_text
from bot.telegram.reload import on_reload
from bot.telegram.runtime import Runtime


async def on_admin_command(message: Message, runtime: Runtime) -> None:
    word = (message.text or "").split(maxsplit=1)[0].split("@", 1)[0]
    if word == "/reload":
        await on_reload(message, runtime)
        return
    if runtime.analytics is None:
        await message.answer("No analytics here (no database).", parse_mode=None)
        return
    totals = await runtime.analytics.totals(days=7)
    content = runtime.engine.content
    await message.answer(totals.report(content, content.default_locale)[:4000], parse_mode=None)


def build_router() -> Router:
    router = Router(name="admin")
    router.message.register(on_admin_command, admin_text)
    return router


router = build_router()
