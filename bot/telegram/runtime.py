"""What the handlers share: the engine, the stores, and what to do with effects."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from aiogram import Bot
from aiogram.fsm.storage.base import BaseEventIsolation, StorageKey
from aiogram.types import Message, User

from bot.engine.engine import Engine
from bot.engine.events import Effect
from bot.engine.state import State
from bot.prospect import telegram_key
from bot.settings import Settings
from bot.storage import ConversationStore, Record
from bot.telegram.isolation import ChatLocks
from bot.telegram.limits import BlockedChats, FloodGate
from bot.telegram.staff import StaffDirectory

if TYPE_CHECKING:
    from bot.analytics import Analytics
    from bot.leads.repository import LeadRepository
    from bot.telegram.alerts import AlertSender
    from bot.telegram.live import LiveDesk

log = logging.getLogger(__name__)

EMPTY = Record()
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
    chat_id: int | None = None
    bot: Bot | None = None
    message: Message | None = None
    """The prospect's message being handled, if the update is one (a live chat copies it)."""
    loaded: Record = EMPTY
    """The record as it was loaded (its update ids are kept until this update is handled)."""
    pending: list[str] = field(default_factory=list)
    """Notices owed to the prospect (see ``Record.pending``): sent at the end of the turn."""
    next_state: State | None = None
    """The state this turn ends in, while its effects are carried out."""
    durable: bool = False
    """Write the conversation before the update counts as handled (a turn with effects)."""

    def note(self, line: str) -> None:
        """Add a line to the bounded transcript."""
        self.transcript.append(line[:TRANSCRIPT_LINE])
        del self.transcript[:-TRANSCRIPT_LINES]

    def snapshot(self, state: State | None, pending: tuple[str, ...]) -> Record:
        """The conversation in ``state`` with ``pending`` owed, this update not yet counted as
        handled (a redelivery of it is handled again, and shows what is owed)."""
        loaded = self.loaded
        return Record(
            state,
            loaded.last_update,
            self.menu_id,
            tuple(self.transcript),
            self.contact_keyboard,
            loaded.recent,
            pending,
        )


EffectHandler = Callable[[Effect, ChatSession, User | None], Awaitable[list[str]]]
"""Does what an effect asks (e.g. saves a lead); returns notices (HTML) to send the prospect."""


async def log_effect(effect: Effect, chat: ChatSession, user: User | None) -> list[str]:
    log.info("effect %s from conversation %s", effect.name, chat.key)
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
    redeliver_failures: bool = False
    """Webhook: an update whose handling failed is left unrecorded, for Telegram to deliver again."""
    live: LiveDesk | None = None
    """Live chats between prospects and staff (when there is a database)."""
    isolation: BaseEventIsolation = field(default_factory=ChatLocks)
    blocked: BlockedChats = field(default_factory=lambda: BlockedChats(None))
    """Prospects who blocked the bot."""
    flood: FloodGate = field(init=False)
    """Holds one chat's lock while an update of it (or a change from staff) is handled."""
    staff: StaffDirectory = field(init=False)
    """Who is staff (admins, members of the staff group)."""

    def __post_init__(self) -> None:
        self.staff = StaffDirectory(self.settings)
        self.flood = FloodGate(self.settings.flood_rate)

    @contextlib.asynccontextmanager
    async def conversation(
        self, bot: Bot, chat_id: int, *, update_id: int | None = None
    ) -> AsyncIterator[ChatSession | None]:
        """A chat's conversation, under its lock, saved afterwards. With ``update_id`` (an update
        of the chat itself): None if that update was handled before (a duplicate delivery)."""
        key = telegram_key(chat_id)
        async with self.isolation.lock(StorageKey(bot_id=bot.id, chat_id=chat_id, user_id=chat_id)):
            record = await self.store.load(key) or EMPTY
            if update_id is not None and record.seen(update_id):
                yield None
                return
            session = self.session_of(key, chat_id, bot, record, update_id or record.last_update or 0)
            try:
                yield session
            finally:
                await self.keep(session, update_id)

    @staticmethod
    def session_of(key: str, chat_id: int, bot: Bot, record: Record, update_id: int) -> ChatSession:
        """The conversation of ``record`` while ``update_id`` is handled."""
        return ChatSession(
            key=key,
            update_id=update_id,
            state=record.state,
            menu_id=record.menu_id,
            transcript=list(record.transcript),
            contact_keyboard=record.contact_keyboard,
            chat_id=chat_id,
            bot=bot,
            loaded=record,
            pending=list(record.pending),
        )

    async def keep(self, session: ChatSession, update_id: int | None) -> None:
        """Save the conversation after ``update_id`` (None: a change from staff); after /forget
        only the ids of the updates handled are kept (for a day: Telegram may redeliver one)."""
        record = session.loaded
        if session.forgotten:
            await self.store.save(session.key, record.tombstone(update_id), durable=True)
            return
        last, recent = record.after(update_id)
        await self.store.save(
            session.key,
            Record(
                session.state,
                last,
                session.menu_id,
                tuple(session.transcript),
                session.contact_keyboard,
                recent,
                tuple(session.pending),
            ),
            durable=session.durable,
        )
