"""What the handlers share: the engine, the stores, and what to do with effects."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from aiogram.types import User

from bot.engine.engine import Engine
from bot.engine.events import Effect
from bot.engine.state import State
from bot.settings import Settings
from bot.storage import ConversationStore
from bot.telegram.staff import StaffDirectory

if TYPE_CHECKING:
    from bot.analytics import Analytics
    from bot.leads.repository import LeadRepository
    from bot.telegram.alerts import AlertSender

log = logging.getLogger(__name__)

TRANSCRIPT_LINES = 60
TRANSCRIPT_LINE = 300


@dataclass(slots=True)
class ChatSession:
    """One chat's conversation while an update of that chat is handled (saved afterwards)."""

    key: str
    update_id: int
    state: State | None = None
    menu_id: int | None = None
    """The message that shows the current view with its buttons."""
    transcript: list[str] = field(default_factory=list)
    contact_keyboard: bool = False
    forgotten: bool = False
    """Set by /forget: the conversation is deleted instead of saved."""

    def note(self, line: str) -> None:
        """Add a line to the bounded transcript."""
        self.transcript.append(line[:TRANSCRIPT_LINE])
        del self.transcript[:-TRANSCRIPT_LINES]


EffectHandler = Callable[[Effect, ChatSession, User | None], Awaitable[list[str]]]
"""Does what an effect asks (e.g. saves a lead); returns notices (HTML) to send the prospect."""


async def log_effect(effect: Effect, chat: ChatSession, user: User | None) -> list[str]:
    log.info("effect %s from conversation %s (flow %s)", effect.name, chat.key, effect.data.get("flow"))
    return []


@dataclass
class Runtime:
    settings: Settings
    engine: Engine
    store: ConversationStore
    leads: LeadRepository | None = None
    alerts: AlertSender | None = None
    analytics: Analytics | None = None
    effect_handlers: list[EffectHandler] = field(default_factory=lambda: [log_effect])
    staff: StaffDirectory = field(init=False)
    """Who is staff (admins, members of the staff group)."""

    def __post_init__(self) -> None:
        self.staff = StaffDirectory(self.settings)
