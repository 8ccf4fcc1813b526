"""The one place that puts the conversation core together with its effect handlers: the leads,
the live desk, /forget. ``bot.service`` uses it for every channel; the Telegram dispatcher builds
one when the tests give it none."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from bot.analytics import Analytics
from bot.conversation.core import ConversationCore, EffectHandler, log_effect
from bot.conversation.leads import AlertEraser, lead_effects
from bot.conversation.live import LiveDesk, StaffRoom
from bot.conversation.locks import Locks
from bot.engine.engine import Engine
from bot.leads.repository import LeadRepository
from bot.settings import Settings
from bot.staff.livechats import LiveChatRepository
from bot.storage import ConversationStore


def build_core(
    settings: Settings,
    engine: Engine,
    store: ConversationStore,
    *,
    leads: LeadRepository | None = None,
    analytics: Analytics | None = None,
    locks: Locks | None = None,
    live: LiveChatRepository | None = None,
    room: StaffRoom | None = None,
    wake_alerts: Callable[[], None] | None = None,
    erase_alerts: AlertEraser | None = None,
    effect_handlers: Sequence[EffectHandler] | None = None,
    redeliver_failures: bool = False,
) -> tuple[ConversationCore, LiveDesk | None]:
    """The core, and its live desk (None without a database). ``effect_handlers``: instead of
    the leads' (the tests' and the terminal's own)."""
    core = ConversationCore(
        engine, store, locks=locks, analytics=analytics, redeliver_failures=redeliver_failures
    )
    handlers: list[EffectHandler] = list(effect_handlers) if effect_handlers is not None else [log_effect]
    if effect_handlers is None and leads is not None:
        handlers = [
            lead_effects(
                leads, lambda: core.engine.content, store, wake_alerts=wake_alerts, erase_alerts=erase_alerts
            )
        ]
    desk = None
    if live is not None:
        desk = LiveDesk(core, live, settings, room=room, leads=leads, wake_alerts=wake_alerts)
        # First: /forget closes the live chat before the leads (and live chats) are erased.
        handlers.insert(0, desk.on_effect)
    core.effect_handlers = handlers
    return core, desk
