"""Runs the real bot (polling) against the fake Bot API server, as ``python -m bot run`` does."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import Any

from aiogram import Bot, Dispatcher
from aiogram.types import Update

from bot.analytics import Analytics
from bot.content import load_content
from bot.db import create_database, upgrade
from bot.db.engine import Database
from bot.engine.engine import Engine
from bot.leads.repository import LeadRepository
from bot.settings import Settings
from bot.storage import ConversationStore, MemoryStore, SqlStore
from bot.telegram.alerts import AlertSender
from bot.telegram.app import build_bot, build_dispatcher, register_commands
from bot.telegram.retry import RetryMiddleware

from .conftest import FLOWS
from .fakebot import TOKEN, FakeBotAPI

STAFF_CHAT = -1001
ADMIN = 900


def make_settings(api: FakeBotAPI, tmp_path: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "bot_token": TOKEN,
        "telegram_api_base": api.base_url,
        "database_url": f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}",
        "flows_dir": FLOWS,
        "staff_chat_id": STAFF_CHAT,
        "admin_ids": [ADMIN],
        **overrides,
    }
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


class BotRunner:
    """Start and stop the bot in this event loop; every handled update is reported to the fake."""

    def __init__(
        self, api: FakeBotAPI, settings: Settings, *, memory: bool = False, flush_interval: float = 0.05
    ) -> None:
        self.api = api
        self.settings = settings
        self.memory = memory
        self.flush_interval = flush_interval
        self.leads: LeadRepository | None = None
        self.analytics: Analytics | None = None
        self.alerts: AlertSender | None = None
        self.db: Database | None = None
        self.store: ConversationStore | None = None
        self.bot: Bot | None = None
        self.dp: Dispatcher | None = None
        self.task: asyncio.Task[None] | None = None

    async def start(self) -> BotRunner:
        settings = self.settings
        content = load_content(settings.flows_dir)
        if self.memory:
            self.store = MemoryStore()
        else:
            await upgrade(settings.database_url)
            self.db = create_database(settings.database_url)
            self.store = SqlStore(self.db, flush_interval=self.flush_interval)
            self.leads = LeadRepository(self.db, staff_chat_id=settings.staff_chat_id)
            self.analytics = Analytics(self.db, flush_interval=0.05)
        self.bot = build_bot(settings, retry=RetryMiddleware(base_pause=0.01))
        if self.leads is not None:
            self.alerts = AlertSender(self.bot, self.leads, content, base_pause=0.05)
            self.alerts.start()
        self.dp = dp = build_dispatcher(
            settings,
            engine=Engine(content),
            store=self.store,
            leads=self.leads,
            alerts=self.alerts,
            analytics=self.analytics,
        )
        original = dp.feed_update

        async def feed_update(bot: Bot, update: Update, **kwargs: Any) -> Any:
            try:
                return await original(bot, update, **kwargs)
            finally:
                self.api.mark_handled(update.update_id)

        dp.feed_update = feed_update  # type: ignore[method-assign]
        await register_commands(self.bot, content)
        polls = len([c for c in self.api.calls if c.method == "getUpdates"])
        self.task = asyncio.create_task(
            dp.start_polling(self.bot, handle_signals=False, polling_timeout=1, close_bot_session=False)
        )
        for _ in range(200):  # until the first getUpdates arrives
            if len([c for c in self.api.calls if c.method == "getUpdates"]) > polls:
                break
            await asyncio.sleep(0.01)
        return self

    async def stop(self, *, crash: bool = False) -> None:
        """Stop as Ctrl-C does; ``crash``: without writing what is still queued (as if killed)."""
        if self.alerts is not None:
            await self.alerts.stop()
        if self.dp is not None and self.task is not None:
            with contextlib.suppress(RuntimeError):
                await self.dp.stop_polling()
            await asyncio.wait_for(self.task, 10)
        if crash and isinstance(self.store, SqlStore):
            self.store._dirty.clear()
        if self.bot is not None:
            await self.bot.session.close()
        if self.analytics is not None:
            await self.analytics.close()
        if self.store is not None:
            await self.store.close()
        if self.db is not None:
            await self.db.dispose()
