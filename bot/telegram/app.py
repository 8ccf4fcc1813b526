"""The one place that builds the Telegram app: used by ``python -m bot run`` and by the tests."""

from __future__ import annotations

import contextlib
import logging
from typing import Any

from aiogram import Bot, Dispatcher
from aiogram.client.default import DefaultBotProperties
from aiogram.client.telegram import TelegramAPIServer
from aiogram.dispatcher.event.bases import UNHANDLED
from aiogram.enums import ParseMode
from aiogram.exceptions import TelegramAPIError
from aiogram.types import BotCommand, ErrorEvent

from bot.analytics import Analytics
from bot.content import Content
from bot.conversation.build import build_core
from bot.conversation.core import ConversationCore, EffectHandler
from bot.engine.engine import Engine
from bot.leads.repository import LeadRepository
from bot.settings import Settings
from bot.storage import ConversationStore
from bot.telegram.alerts import AlertSender
from bot.telegram.limits import BlockedChats, SendLimiter
from bot.telegram.live import TelegramStaffRoom
from bot.telegram.middleware import ConversationMiddleware
from bot.telegram.retry import RetryMiddleware
from bot.telegram.routers import admin, conversation, handoff, membership, staff
from bot.telegram.runtime import Runtime
from bot.telegram.session import BotSession

log = logging.getLogger(__name__)


def build_bot(
    settings: Settings,
    *,
    retry: RetryMiddleware | None = None,
    blocked: BlockedChats | None = None,
    session: BotSession | None = None,
    **session_kwargs: Any,
) -> Bot:
    """A Bot on the configured Bot API server (the public one, a self-hosted one, or a fake),
    whose requests are retried when they fail for a passing reason (429, 5xx, network) and paced
    to Telegram's sending limits; nothing is sent to a chat in ``blocked``. ``session``: one made
    already (the throughput benchmark's in-process one), instead of one on the configured server."""
    if settings.bot_token is None:
        raise ValueError("BOT_TOKEN is not set")
    if session is not None and session_kwargs:
        raise TypeError("build_bot: session options go to the session given, not here")
    if session is None:
        session = BotSession(api=TelegramAPIServer.from_base(settings.telegram_api_base), **session_kwargs)
    session.middleware(retry or RetryMiddleware())
    session.middleware(  # inside the retries: each attempt is paced
        SendLimiter(
            per_chat=settings.rate_per_chat,
            per_group=settings.rate_per_group,
            overall=settings.rate_global,
            blocked=blocked,
        )
    )
    return Bot(
        token=settings.bot_token.get_secret_value(),
        session=session,
        default=DefaultBotProperties(parse_mode=ParseMode.HTML, link_preview_is_disabled=True),
    )


def build_dispatcher(
    settings: Settings,
    *,
    core: ConversationCore | None = None,
    engine: Engine | None = None,
    store: ConversationStore | None = None,
    leads: LeadRepository | None = None,
    alerts: AlertSender | None = None,
    analytics: Analytics | None = None,
    effect_handlers: list[EffectHandler] | None = None,
    room: TelegramStaffRoom | None = None,
    blocked: BlockedChats | None = None,
    redeliver_failures: bool = False,
) -> Dispatcher:
    """The Telegram adapter on ``core`` (or, for the tests and benchmarks, on a core of its own
    over ``engine`` and ``store``). ``redeliver_failures`` (webhook): an update whose handling
    failed for a reason other than the Bot API (the database, Redis) is answered with an error,
    so Telegram delivers it again."""
    if core is None:
        assert engine is not None and store is not None, "build_dispatcher: a core, or an engine and a store"
        core, _desk = build_core(
            settings,
            engine,
            store,
            leads=leads,
            analytics=analytics,
            wake_alerts=alerts.wake if alerts is not None else None,
            erase_alerts=alerts.erase_posted if alerts is not None else None,
            effect_handlers=effect_handlers,
            redeliver_failures=redeliver_failures,
        )
    runtime = Runtime(
        settings=settings,
        core=core,
        leads=leads,
        alerts=alerts,
        live=room,
        blocked=blocked or BlockedChats(None),
    )
    # aiogram's FSM is not used: the engine's state lives in the core's store, and the
    # conversation middleware takes the per-conversation lock itself.
    dp = Dispatcher(disable_fsm=True, runtime=runtime)
    dp.update.outer_middleware(ConversationMiddleware(runtime))
    # The conversation first: prospects' updates (nearly all of them) stop there.
    dp.include_routers(
        conversation.build_router(),
        admin.build_router(),
        staff.build_router(),
        handoff.build_router(),
        membership.build_router(),
    )
    dp.errors.register(_on_error if not core.redeliver_failures else _on_error_redeliver)
    return dp


async def _on_error_redeliver(event: ErrorEvent) -> Any:
    return await _on_error(event, redeliver=True)


async def _on_error(event: ErrorEvent, redeliver: bool = False) -> Any:
    update = event.update
    log.error("update %s failed: %r", update.update_id, event.exception, exc_info=event.exception)
    if update.callback_query is not None:
        with contextlib.suppress(Exception):  # best effort: stop the spinner; the error is logged
            await update.callback_query.answer()
    if redeliver and not isinstance(event.exception, TelegramAPIError):
        return UNHANDLED  # raised again: the webhook answers 500 and Telegram redelivers
    return True


async def register_commands(bot: Bot, content: Content) -> None:
    """The command menu in each language Telegram users may have, and a default one."""
    for locale in content.locales:
        commands = [
            BotCommand(command=name, description=content.localise(text, locale)[:256])
            for name, text in content.commands.items()
        ]
        await bot.set_my_commands(commands, language_code=locale)
        if locale == content.default_locale:
            await bot.set_my_commands(commands)
