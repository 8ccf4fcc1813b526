"""Runs the real bot (polling) against the fake Bot API server, as ``python -m bot run`` does."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import Any

from aiogram import Bot
from aiogram.types import Update

from bot.service import Service, Tuning
from bot.settings import Settings
from bot.webhook import WebhookServer

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
        "watch_flows": False,
        "web_enabled": False,
        "web_port": 0,
        "working_hours": "always",
        # Telegram's real limits would only slow the tests down; the limit tests set them.
        "rate_per_chat": 1000.0,
        "rate_per_group": 1000.0,
        "rate_global": 10000.0,
        "flood_rate": 1000.0,
        **overrides,
    }
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


class BotRunner(Service):
    """The bot as ``python -m bot run`` assembles it, polling the fake server from this event loop;
    every handled update is reported to the fake (so a test can wait for it)."""

    def __init__(
        self,
        api: FakeBotAPI,
        settings: Settings,
        *,
        memory: bool = False,
        flush_interval: float = 0.05,
        request_timeout: float | None = None,
    ) -> None:
        super().__init__(
            settings,
            memory=memory,
            tuning=Tuning(
                flush_interval=flush_interval,
                analytics_flush=0.05,
                retry_base_pause=0.01,
                alert_base_pause=0.05,
                request_timeout=request_timeout,
            ),
        )
        self.api = api
        self.task: asyncio.Task[None] | None = None

    async def start(self) -> BotRunner:
        await super().start()
        assert self.dp is not None and self.bot is not None
        dp = self.dp
        original = dp.feed_update

        async def feed_update(bot: Bot, update: Update, **kwargs: Any) -> Any:
            try:
                return await original(bot, update, **kwargs)
            finally:
                self.api.mark_handled(update.update_id)

        dp.feed_update = feed_update  # type: ignore[method-assign]
        await self.announce()
        polls = len([c for c in self.api.calls if c.method == "getUpdates"])
        self.task = asyncio.create_task(self.poll(handle_signals=False, polling_timeout=1))
        for _ in range(200):  # until the first getUpdates arrives
            if len([c for c in self.api.calls if c.method == "getUpdates"]) > polls:
                break
            await asyncio.sleep(0.01)
        return self

    @property
    def web_url(self) -> str:
        assert self.web_port is not None, "the dashboard is off (web_enabled=False)"
        return f"http://127.0.0.1:{self.web_port}"

    async def stop(self, *, crash: bool = False) -> None:
        """Stop as Ctrl-C does; ``crash``: without writing what is still queued (as if killed)."""
        if self.dp is not None and self.task is not None:
            with contextlib.suppress(RuntimeError):
                await self.dp.stop_polling()
            await asyncio.wait_for(self.task, 10)
        await super().stop(crash=crash)


WEBHOOK_SECRET = "test_secret-123"


class Replica(Service):
    """The bot as ``python -m bot webhook`` runs it, in this event loop: a webhook server on a
    free port that the fake server pushes updates to."""

    def __init__(self, api: FakeBotAPI, settings: Settings) -> None:
        super().__init__(
            settings,
            webhook=True,
            tuning=Tuning(analytics_flush=0.05, retry_base_pause=0.01, alert_base_pause=0.05),
        )
        self.api = api
        self.server: WebhookServer | None = None

    async def start(self) -> Replica:
        await super().start()
        self.server = WebhookServer(self)
        await self.server.start()
        return self

    @property
    def url(self) -> str:
        assert self.server is not None and self.server.port is not None
        return f"http://127.0.0.1:{self.server.port}{self.settings.webhook_path}"

    async def stop(self, *, crash: bool = False) -> None:
        if self.server is not None:
            await self.server.stop()
        await super().stop(crash=crash)


def webhook_settings(api: FakeBotAPI, tmp_path: Path, **overrides: Any) -> Settings:
    return make_settings(
        api, tmp_path, webhook_secret=WEBHOOK_SECRET, webhook_host="127.0.0.1", webhook_port=0, **overrides
    )
