"""``python -m bot run``: check the content, migrate, register commands, poll until Ctrl-C."""

from __future__ import annotations

import logging

from bot.content import load_content
from bot.db import create_database, upgrade
from bot.engine.engine import Engine
from bot.settings import Settings
from bot.storage import SqlStore
from bot.telegram.app import build_bot, build_dispatcher, register_commands

log = logging.getLogger(__name__)


async def run_polling(settings: Settings) -> None:
    content = load_content(settings.flows_dir)  # ContentError: the caller prints the problems
    await upgrade(settings.database_url)
    db = create_database(settings.database_url)
    store = SqlStore(db, flush_interval=settings.state_flush_ms / 1000)
    bot = build_bot(settings)
    dp = build_dispatcher(
        settings, engine=Engine(content, default_locale=settings.default_locale), store=store
    )
    try:
        await register_commands(bot, content)
        me = await bot.get_me()
        log.info("bot @%s is running (content %s, %s)", me.username, content.version, db.engine.dialect.name)
        await dp.start_polling(bot, handle_signals=True, close_bot_session=True)
    finally:
        await store.close()
        await db.dispose()
        await bot.session.close()
