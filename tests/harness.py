"""Runs the real bot (polling) against the fake Bot API server, as ``python -m bot run`` does."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import Any

from aiogram import Bot, Dispatcher
from aiogram.types import Update

from bot.content import load_content
from bot.db import create_database, upgrade
from bot.db.engine import Database
from bot.engine.engine import Engine
from bot.settings import Settings
from bot.storage import ConversationStore, MemoryStore, SqlStore
from bot.telegram.app import build_bot, build_dispatcher, register_commands

from .conftest import FLOWS
from .fakebot import TOKEN, FakeBotAPI


def make_settings(api: FakeBotAPI, tmp_path: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "bot_token": TOKEN,
        "telegram_api_base": api.base_url,
        "database_url": f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}",
        "flows_dir": FLOWS,
        **overrides,
    }
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


class BotRunner:
    """Start and stop the bot in this event loop; every handled update is reported to the fake."""

    def __init__(self, api: FakeBotAPI, settings: Settings, *, memory: bool = False) -> None:
        self.api = api
        self.settings = settings
        self.memory = memory
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
            self.store = SqlStore(self.db)
        self.bot = build_bot(settings)
        self.dp = dp = build_dispatcher(settings, engine=Engine(content), store=self.store)
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

    async def stop(self) -> None:
        if self.dp is not None and self.task is not None:
            with contextlib.suppress(RuntimeError):
                await self.dp.stop_polling()
            await asyncio.wait_for(self.task, 10)
        if self.bot is not None:
            await self.bot.session.close()
        if self.store is not None:
            await self.store.close()
        if self.db is not None:
            await self.db.dispose()
