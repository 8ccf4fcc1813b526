"""``python -m bot webhook``: updates pushed by Telegram to an aiohttp server, for one process or
several replicas behind a load balancer (with ``REDIS_URL`` and PostgreSQL).

- ``X-Telegram-Bot-Api-Secret-Token`` is compared with ``WEBHOOK_SECRET`` in constant time on
  every request; a wrong or missing one (or one that is not ASCII) gets 401 and nothing is
  processed.
- A body that is not an update (not JSON, not UTF-8, JSON that is not a valid Update, empty) gets
  400, with a warning in the log (not the payload): an error Telegram would deliver again forever.
- An update is acknowledged only after it is handled and its conversation saved (aiogram's
  background handling, its default, answers first and would lose the update with the process).
  If handling fails for a passing reason (the database, Redis), the answer is 500 and Telegram
  delivers the update again; a redelivery of an update already handled is recognised and dropped.
- ``/healthz``: the process is up. ``/readyz``: the database and Redis answer and the server is
  not shutting down (a load balancer stops sending it updates).
- On SIGTERM/SIGINT the server stops accepting, finishes the updates in flight, then stops.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import signal
from typing import Any

from aiogram import Bot
from aiogram.methods import TelegramMethod
from aiogram.types import Update
from aiogram.webhook.aiohttp_server import SimpleRequestHandler
from aiohttp import web
from pydantic import ValidationError
from sqlalchemy import text

from bot.service import Service
from bot.settings import Settings

log = logging.getLogger(__name__)

SHUTDOWN_GRACE = 30.0
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"


class UpdateHandler(SimpleRequestHandler):
    """aiogram's handler, answering each update once it is handled (``handle_in_background`` off),
    with the secret checked as bytes and the update read before the dispatcher sees it: what is
    not an update is refused with 400, not 500 (which Telegram would retry forever). An update
    whose handling fails still raises: 500, and Telegram delivers it again."""

    def __init__(self, *, secret: str, **kwargs: Any) -> None:
        super().__init__(handle_in_background=False, secret_token=secret, **kwargs)
        self.secret = secret.encode()

    def verify_secret(self, telegram_secret_token: str, bot: Bot) -> bool:
        # The secret is ASCII (settings check it): a header that is not cannot match, and
        # compare_digest refuses non-ASCII text (a TypeError: a 500), so it compares bytes.
        if not telegram_secret_token.isascii():
            return False
        return hmac.compare_digest(telegram_secret_token.encode("ascii"), self.secret)

    async def handle(self, request: web.Request) -> web.Response:
        bot = await self.resolve_bot(request)
        if not self.verify_secret(request.headers.get(SECRET_HEADER, ""), bot):
            return web.Response(body="Unauthorized", status=401)
        body = await request.read()
        try:
            update = Update.model_validate(bot.session.json_loads(body.decode()), context={"bot": bot})
        except (ValueError, ValidationError, RecursionError) as e:  # JSON and UTF-8 errors are ValueErrors
            log.warning(
                "webhook: refused a body that is not an update (%d bytes): %s", len(body), type(e).__name__
            )
            return web.Response(body="Bad Request", status=400)
        result: TelegramMethod[Any] | None = await self.dispatcher.feed_webhook_update(
            bot, update, **self.data
        )
        return web.Response(body=self._build_response_writer(bot=bot, result=result))


class WebhookServer:
    def __init__(self, service: Service) -> None:
        self.service = service
        self.draining = False
        self.runner: web.AppRunner | None = None
        self.port: int | None = None

    def app(self) -> web.Application:
        service, settings = self.service, self.service.settings
        assert service.dp is not None and service.bot is not None, "start the service first"
        if settings.webhook_secret is None:
            raise ValueError("WEBHOOK_SECRET is not set: Telegram's requests could not be told from others")
        app = web.Application(client_max_size=4 * 1024 * 1024)
        handler = UpdateHandler(
            dispatcher=service.dp, bot=service.bot, secret=settings.webhook_secret.get_secret_value()
        )
        # Not handler.register(): its shutdown hook would close the bot's session before the
        # updates in flight are finished; Service.stop closes it after.
        app.router.add_post(settings.webhook_path, handler.handle)
        app.router.add_get("/healthz", self.healthz)
        app.router.add_get("/readyz", self.readyz)
        return app

    async def healthz(self, request: web.Request) -> web.StreamResponse:
        return web.json_response({"ok": True})

    async def readyz(self, request: web.Request) -> web.StreamResponse:
        problems = []
        if self.draining:
            problems.append("shutting down")
        service = self.service
        try:
            if service.db is not None:
                async with asyncio.timeout(2), service.db.engine.connect() as conn:
                    await conn.execute(text("SELECT 1"))
        except Exception as e:
            problems.append(f"database: {type(e).__name__}")
        try:
            if service.redis is not None:
                async with asyncio.timeout(2):
                    await service.redis.ping()
        except Exception as e:
            problems.append(f"redis: {type(e).__name__}")
        status = 503 if problems else 200
        return web.json_response({"ok": not problems, "problems": problems}, status=status)

    async def start(self) -> int:
        settings = self.service.settings
        self.runner = web.AppRunner(self.app(), access_log=None, shutdown_timeout=SHUTDOWN_GRACE)
        await self.runner.setup()
        site = web.TCPSite(self.runner, settings.webhook_host, settings.webhook_port)
        await site.start()
        sockets = getattr(site._server, "sockets", None) or []
        self.port = sockets[0].getsockname()[1] if sockets else settings.webhook_port
        log.info("webhook server on %s:%s%s", settings.webhook_host, self.port, settings.webhook_path)
        return self.port

    async def stop(self) -> None:
        """Stop taking updates and finish those in flight (up to SHUTDOWN_GRACE seconds)."""
        self.draining = True
        if self.runner is not None:
            await self.runner.cleanup()
            self.runner = None


async def run_webhook(settings: Settings) -> None:
    """Serve until SIGTERM or SIGINT, then shut down gracefully."""
    service = Service(settings, webhook=True)
    server = WebhookServer(service)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    try:
        await service.start()
        await service.announce()
        await server.start()
        await stop.wait()
        log.info("shutting down: finishing the updates in flight")
    finally:
        await server.stop()
        await service.stop()


async def set_webhook(settings: Settings, *, drop_pending: bool = False) -> str:
    """Register the webhook with Telegram (once, at deploy time); return the URL."""
    if not settings.webhook_base_url or settings.webhook_secret is None:
        raise ValueError("set WEBHOOK_BASE_URL and WEBHOOK_SECRET first")
    service = Service(settings, memory=True)
    await service.start()
    try:
        assert service.bot is not None and service.dp is not None
        url = settings.webhook_base_url.rstrip("/") + settings.webhook_path
        await service.bot.set_webhook(
            url,
            secret_token=settings.webhook_secret.get_secret_value(),
            allowed_updates=service.dp.resolve_used_update_types(),
            drop_pending_updates=drop_pending,
        )
        return url
    finally:
        await service.stop()
