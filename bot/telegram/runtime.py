"""What the handlers share: the engine, the conversation store, and what to do with effects."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from bot.engine.engine import Engine
from bot.engine.events import Effect
from bot.engine.state import State
from bot.settings import Settings
from bot.storage import ConversationStore

log = logging.getLogger(__name__)


@dataclass(slots=True)
class ChatSession:
    """One chat's conversation while an update of that chat is handled (saved afterwards)."""

    key: str
    update_id: int
    state: State | None = None
    menu_id: int | None = None
    """The message that shows the current view with its buttons."""


EffectHandler = Callable[[Effect, ChatSession, dict[str, Any]], Awaitable[None]]


async def log_effect(effect: Effect, chat: ChatSession, context: dict[str, Any]) -> None:
    log.info("effect %s from conversation %s (flow %s)", effect.name, chat.key, effect.data.get("flow"))


@dataclass
class Runtime:
    settings: Settings
    engine: Engine
    store: ConversationStore
    effect_handlers: list[EffectHandler] = field(default_factory=lambda: [log_effect])
