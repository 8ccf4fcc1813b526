"""``python -m bot run``: check the content, migrate, register commands, poll until Ctrl-C."""

from __future__ import annotations

import asyncio
import logging

from bot.analytics import Analytics
from bot.content import load_content
from bot.db import create_database, upgrade
from bot.engine.engine import Engine
from bot.leads.repository import LeadRepository
from bot.settings import Settings
from bot.storage import SqlStore
from bot.telegram.alerts import AlertSender
from bot.telegram.app import build_bot, build_dispatcher, register_commands
from bot.telegram.reload import watch_content
from bot.telegram.runtime import Runtime

log = logging.getLogger(__name__)


async def run_polling(settings: Settings) -> None:
    content = load_content(settings.flows_dir)  # ContentError: the caller prints the problems
    await upgrade(settings.database_url)
    db = create_database(settings.database_url)
    store = SqlStore(db, flush_interval=settings.state_flush_ms / 1000)
    bot = build_bot(settings)
    leads = LeadRepository(db, staff_chat_id=settings.staff_chat_id)
    alerts = AlertSender(bot, leads, content) if settings.staff_chat_id is not None else None
    engine = Engine(content, default_locale=settings.default_locale, retention_days=settings.retention_days)
    analytics = Analytics(db)
    dp = build_dispatcher(
        settings, engine=engine, store=store, leads=leads, alerts=alerts, analytics=analytics
    )
    housekeeping = asyncio.create_task(purge_idle_conversations(store, settings.retention_days))
    runtime: Runtime = dp["runtime"]
    watcher = (
        asyncio.create_task(watch_content(bot, runtime, settings.flows_dir)) if settings.watch_flows else None
    )
    try:
        await register_commands(bot, content)
        me = await bot.get_me()
        log.info("bot @%s is running (content %s, %s)", me.username, content.version, db.engine.dialect.name)
        if alerts is None:
            log.warning("STAFF_CHAT_ID is not set: leads are saved, but no staff alert is sent")
        else:
            alerts.start()
        await dp.start_polling(bot, handle_signals=True, close_bot_session=True)
    finally:
        housekeeping.cancel()
        if watcher is not None:
            watcher.cancel()
        if alerts is not None:
            await alerts.stop()
        await analytics.close()
        await store.close()
        await db.dispose()
        await bot.session.close()


async def purge_idle_conversations(store: SqlStore, days: int, every: float = 3600.0) -> None:
    """Delete idle conversations (and the unfinished forms in them) once an hour."""
    while True:
        try:
            purged = await store.purge(days)
            if purged:
                log.info("deleted %d conversations idle for %d days", purged, days)
        except Exception:
            log.exception("purging idle conversations failed")
        await asyncio.sleep(every)
