"""The whole bot process, assembled in one place: ``python -m bot run`` and the tests use it.

``start()`` checks the content, migrates the database, and starts what runs beside the updates:
the staff alert sender, the web dashboard, the content watcher and the idle-conversation purge.
``poll()`` then takes updates until stopped; ``stop()`` flushes and closes everything.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeVar

import aiohttp
from aiogram import Bot, Dispatcher
from aiohttp import web
from redis.asyncio import Redis

from bot.analytics import Analytics
from bot.content import Content, load_content
from bot.conversation.build import build_core
from bot.conversation.core import ConversationCore
from bot.conversation.live import LiveDesk
from bot.conversation.locks import KeyLocks, Locks, RedisLocks
from bot.db import create_database, upgrade
from bot.db.engine import Database
from bot.engine.engine import Engine
from bot.leads.repository import LeadRepository
from bot.prospect import TELEGRAM
from bot.settings import Settings
from bot.staff.accounts import StaffAccounts
from bot.staff.livechats import LiveChatRepository
from bot.staff.notify import RobotAlertSender, build_notifiers, lead_link
from bot.storage import ConversationStore, MemoryStore, RedisStore, SqlStore
from bot.telegram.alerts import AlertSender
from bot.telegram.app import build_bot, build_dispatcher, register_commands
from bot.telegram.limits import BlockedChats
from bot.telegram.live import TelegramStaffRoom
from bot.telegram.presenter import TelegramOutlet
from bot.telegram.reload import watch_content
from bot.telegram.retry import RetryMiddleware
from bot.telegram.runtime import Runtime
from bot.web.app import build_web_app, start_web
from bot.webchat import Visitors, WebChat
from bot.wechat import WeChatChannel
from bot.wechat.api import DatabaseTokens, MemoryTokens, RedisTokens, TokenCache, WeChatAPI
from bot.wechat.channel import channel_marks

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass
class Tuning:
    """Timings the tests shorten; the defaults are for production."""

    flush_interval: float | None = None
    """Conversation write-behind (default: ``STATE_FLUSH_MS``)."""
    analytics_flush: float = 5.0
    retry_base_pause: float = 0.5
    alert_base_pause: float = 2.0
    purge_every: float = 3600.0
    request_timeout: float | None = None
    """Seconds a Bot API request may take (default: aiogram's)."""


class Service:
    def __init__(
        self,
        settings: Settings,
        *,
        memory: bool = False,
        webhook: bool = False,
        tuning: Tuning | None = None,
    ) -> None:
        self.settings = settings
        self.memory = memory
        """Keep conversations in memory only, with no database (leads, alerts, web are off)."""
        self.webhook = webhook
        """Updates come by webhook: each is acknowledged only once its conversation is saved."""
        self.tuning = tuning or Tuning()
        self.db: Database | None = None
        self.store: ConversationStore | None = None
        self.leads: LeadRepository | None = None
        self.analytics: Analytics | None = None
        self.accounts: StaffAccounts | None = None
        self.alerts: AlertSender | None = None
        self.robot_senders: list[RobotAlertSender] = []
        """Senders of the alerts to WeCom, DingTalk, Feishu, e-mail (``STAFF_NOTIFY``)."""
        self.robots_http: aiohttp.ClientSession | None = None
        self.core: ConversationCore | None = None
        self.desk: LiveDesk | None = None
        self.webchat: WebChat | None = None
        self.wechat: WeChatChannel | None = None
        self.bot: Bot | None = None
        self.dp: Dispatcher | None = None
        self.web: web.AppRunner | None = None
        self.web_port: int | None = None
        self.redis: Redis | None = None
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def runtime(self) -> Runtime:
        assert self.dp is not None, "Telegram is not running"
        runtime: Runtime = self.dp["runtime"]
        return runtime

    @property
    def engine(self) -> Engine:
        assert self.core is not None, "not started"
        return self.core.engine

    @engine.setter
    def engine(self, engine: Engine) -> None:
        assert self.core is not None, "not started"
        self.core.engine = engine

    @property
    def content(self) -> Content:
        return self.engine.content

    @property
    def web_url(self) -> str:
        return f"http://{self.settings.web_host}:{self.web_port}"

    async def start(self) -> Service:
        settings, tuning = self.settings, self.tuning
        content = load_content(settings.flows_dir)  # ContentError: the caller prints the problems
        locks: Locks = KeyLocks()
        if settings.redis_url:
            # Several replicas: conversations and per-conversation locks in Redis, shared by all.
            self.redis = Redis.from_url(settings.redis_url)
            locks = RedisLocks(self.redis, prefix=settings.redis_prefix, timeout=settings.redis_lock_timeout)
        if self.memory:
            self.store = MemoryStore()
        else:
            await upgrade(settings.database_url)
            self.db = db = create_database(settings.database_url)
            flush = (
                tuning.flush_interval if tuning.flush_interval is not None else settings.state_flush_ms / 1000
            )
            if self.redis is not None:
                self.store = RedisStore(
                    self.redis, ttl=timedelta(days=settings.retention_days), prefix=settings.redis_prefix
                )
            else:
                # By webhook an update is acknowledged once handled: its conversation is written by then.
                self.store = SqlStore(db, flush_interval=0 if self.webhook else flush)
            targets = settings.staff_targets
            group = settings.staff_chat_id if "telegram" in targets else None
            self.leads = LeadRepository(db, staff_chat_id=group, targets=targets)
            self.analytics = Analytics(db, flush_interval=tuning.analytics_flush)
            self.accounts = StaffAccounts(db)
        self.blocked = BlockedChats(self.db)
        await self.blocked.load()
        room: TelegramStaffRoom | None = None
        if settings.bot_token is not None:
            session_options: dict[str, Any] = {}
            if tuning.request_timeout:
                session_options["timeout"] = tuning.request_timeout
            self.bot = bot = build_bot(
                settings,
                retry=RetryMiddleware(base_pause=tuning.retry_base_pause),
                blocked=self.blocked,
                **session_options,
            )
            if self.leads is not None and self.leads.staff_chat_id is not None:
                # Polling: this process is the only sender (a second poller is refused by Telegram).
                self.alerts = AlertSender(
                    bot, self.leads, content, base_pause=tuning.alert_base_pause, only_sender=not self.webhook
                )
            if self.leads is not None and settings.staff_chat_id is not None:  # live chats are answered there
                room = TelegramStaffRoom(bot, settings.staff_chat_id, lambda: self.content.default_locale)
        engine = Engine(
            content, default_locale=settings.default_locale, retention_days=settings.retention_days
        )
        if self.leads is not None:
            self.robots_http = aiohttp.ClientSession()
            self.robot_senders = [
                RobotAlertSender(
                    notifier,
                    self.leads,
                    lambda: self.content,
                    link=lambda lead: lead_link(settings, lead),
                    base_pause=tuning.alert_base_pause,
                    only_sender=not self.webhook,
                )
                for notifier in build_notifiers(settings, self.robots_http)
            ]
        wake = self.wake_alerts if self.alerts is not None or self.robot_senders else None
        alerts = self.alerts
        self.core, self.desk = core, desk = build_core(
            settings,
            engine,
            self.store,
            leads=self.leads,
            analytics=self.analytics,
            locks=locks,
            live=LiveChatRepository(self.db) if self.db is not None else None,
            room=room,
            wake_alerts=wake,
            erase_alerts=alerts.erase_posted if alerts is not None else None,
            redeliver_failures=self.webhook,
        )
        if room is not None:
            room.desk = desk
        if self.bot is not None:
            self.dp = build_dispatcher(
                settings,
                core=core,
                leads=self.leads,
                alerts=self.alerts,
                room=room,
                blocked=self.blocked,
            )
            core.outlets[TELEGRAM] = TelegramOutlet(self.bot, core)
        if self.alerts is not None:
            self.alerts.start()
        for sender in self.robot_senders:
            sender.start()
        if isinstance(self.store, SqlStore):
            self._spawn(
                purge_idle(self.store.purge, "conversations", settings.retention_days, tuning.purge_every)
            )
        if settings.watch_flows:
            self._spawn(watch_content(self.bot, self, settings.flows_dir))
        if settings.web_enabled and self.leads is not None and self.accounts is not None:
            self.webchat = WebChat(settings, core, Visitors(self.db), leads=self.leads, wake_alerts=wake)
            if settings.wechat_enabled:
                self.wechat = WeChatChannel(
                    settings,
                    core,
                    api=self._wechat_api(),
                    marks=channel_marks(self.redis, settings.redis_prefix),
                )
            app = build_web_app(
                settings,
                leads=self.leads,
                accounts=self.accounts,
                content=lambda: self.content,
                analytics=self.analytics,
                wake_alerts=wake,
                webchat=self.webchat,
                wechat=self.wechat,
            )
            self.web, self.web_port = await start_web(app, settings.web_host, settings.web_port)
            log.info("web chat on %s/chat", self.web_url)
            if self.wechat is not None:
                log.info("WeChat callback on %s%s", self.web_url, settings.wechat_path)
            log.info("staff dashboard on %s/", self.web_url)
            self._spawn(
                purge_idle(
                    self.webchat.visitors.purge,
                    "web chat sessions",
                    settings.retention_days,
                    tuning.purge_every,
                )
            )
        # Importing aiogram and pydantic leaves ~200k long-lived objects: keep them out of the
        # garbage collector's full passes, which otherwise pause the bot ~0.2 s each.
        gc.collect()
        gc.freeze()
        return self

    def wake_alerts(self) -> None:
        """A new alert is queued: every target's sender delivers it now."""
        if self.alerts is not None:
            self.alerts.wake()
        for sender in self.robot_senders:
            sender.wake()

    def _wechat_api(self) -> WeChatAPI | None:
        """WeChat's API, with the access_token where every replica reads it; None without the
        AppID and AppSecret (passive replies only)."""
        settings = self.settings
        if not settings.wechat_app_id or settings.wechat_app_secret is None:
            return None
        tokens: TokenCache
        if self.redis is not None:
            tokens = RedisTokens(self.redis, settings.wechat_app_id, settings.redis_prefix)
        elif self.db is not None:
            tokens = DatabaseTokens(self.db, settings.wechat_app_id)
        else:
            tokens = MemoryTokens()
        return WeChatAPI(
            settings.wechat_api_base,
            settings.wechat_app_id,
            settings.wechat_app_secret.get_secret_value(),
            tokens,
            base_pause=self.tuning.retry_base_pause,
        )

    def _spawn(self, job: object) -> None:
        self._tasks.append(asyncio.create_task(job))  # type: ignore[arg-type]

    async def announce(self) -> None:
        """Register the command menus and log who the bot is."""
        assert self.bot is not None
        await register_commands(self.bot, self.content)
        me = await self.bot.get_me()
        dialect = self.db.engine.dialect.name if self.db else "memory"
        log.info("bot @%s is running (content %s, %s)", me.username, self.content.version, dialect)
        if not self.settings.staff_targets:
            log.warning(
                "STAFF_CHAT_ID and STAFF_NOTIFY are not set: leads are saved, but no staff alert is sent"
            )

    async def poll(self, *, handle_signals: bool = True, polling_timeout: int = 10) -> None:
        assert self.dp is not None and self.bot is not None
        await self.dp.start_polling(
            self.bot, handle_signals=handle_signals, polling_timeout=polling_timeout, close_bot_session=False
        )

    async def stop(self, *, crash: bool = False) -> None:
        """Stop everything; ``crash``: drop what is still queued for the database (as if killed)."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()
        if self.alerts is not None:
            await self.alerts.stop()
        for sender in self.robot_senders:
            await sender.stop()
        if self.robots_http is not None:
            await self.robots_http.close()
        if self.web is not None:
            await self.web.cleanup()
            self.web = None
        if self.wechat is not None:
            await self.wechat.close()
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
        if self.redis is not None:
            await self.redis.aclose()


def run_loop(main: Coroutine[Any, Any, T]) -> T:
    """Run the process's main coroutine: on uvloop where it is installed (sockets and callbacks
    in C, about a tenth of the bot's CPU time under load), else on asyncio's own loop."""
    try:
        import uvloop
    except ImportError:  # Windows
        return asyncio.run(main)
    return uvloop.run(main)


async def run(settings: Settings) -> None:
    """``python -m bot run``: start, poll Telegram (when there is a token) and serve the web chat
    until Ctrl-C or SIGTERM, stop cleanly."""
    service = Service(settings)
    try:
        await service.start()
        if service.bot is not None:
            await service.announce()
            await service.poll(handle_signals=True)
        else:
            log.warning("BOT_TOKEN is not set: Telegram is off; the web chat and the dashboard run")
            await until_stopped()
    finally:
        await service.stop()


async def until_stopped() -> None:
    """Wait for Ctrl-C (SIGINT) or SIGTERM."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):  # Windows
            loop.add_signal_handler(sig, stop.set)
    await stop.wait()


async def purge_idle(
    purge: Callable[[int], Awaitable[int]], what: str, days: int, every: float = 3600.0
) -> None:
    """Delete what has been idle for ``days`` (conversations with their unfinished forms, web
    chat sessions), once every ``every`` seconds."""
    while True:
        try:
            purged = await purge(days)
            if purged:
                log.info("deleted %d %s idle for %d days", purged, what, days)
        except Exception:
            log.exception("purging idle %s failed", what)
        await asyncio.sleep(every)
