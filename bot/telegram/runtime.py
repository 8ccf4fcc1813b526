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
from bot.storage import ConversationStore, Record

log = logging.getLogger(__name__)


@dataclass
class ChatSession:
    """One chat's conversation record while an update of that chat is handled."""

    key: str
    record: Record
    update_id: int
    changed: bool = False

    @property
    def state(self) -> State | None:
        data = self.record.get("c")
        return State.from_dict(data) if data else None

    @state.setter
    def state(self, state: State) -> None:
        self.record = {**self.record, "c": state.to_dict()}
        self.changed = True

    @property
    def menu_id(self) -> int | None:
        """The message that shows the current view with its buttons."""
        value = self.record.get("m")
        return int(value) if value is not None else None

    @menu_id.setter
    def menu_id(self, message_id: int) -> None:
        self.record = {**self.record, "m": message_id}
        self.changed = True


EffectHandler = Callable[[Effect, ChatSession, dict[str, Any]], Awaitable[None]]


async def log_effect(effect: Effect, chat: ChatSession, context: dict[str, Any]) -> None:
    log.info("effect %s from conversation %s (flow %s)", effect.name, chat.key, effect.data.get("flow"))


@dataclass
class Runtime:
    settings: Settings
    engine: Engine
    store: ConversationStore
    effect_handlers: list[EffectHandler] = field(default_factory=lambda: [log_effect])
