"""Admin commands: ``/reload`` the content, ``/stats`` the analytics. Only for ``ADMIN_IDS``;
anyone else is answered as for any unknown command."""

from __future__ import annotations

from aiogram import Router
from aiogram.types import Message

from bot.telegram.reload import on_reload, reload_command
from bot.telegram.runtime import Runtime


async def from_admin(message: Message, runtime: Runtime) -> bool:
    return message.from_user is not None and message.from_user.id in runtime.settings.admin_ids


async def stats_command(message: Message) -> bool:
    text = message.text or ""
    return text == "/stats" or text.startswith(("/stats ", "/stats@"))


async def on_stats(message: Message, runtime: Runtime) -> None:
    if runtime.analytics is None:
        await message.answer("No analytics here (no database).", parse_mode=None)
        return
    totals = await runtime.analytics.totals(days=7)
    content = runtime.engine.content
    await message.answer(totals.report(content, content.default_locale)[:4000], parse_mode=None)


def build_router() -> Router:
    router = Router(name="admin")
    router.message.register(on_reload, reload_command, from_admin)
    router.message.register(on_stats, stats_command, from_admin)
    return router


router = build_router()
