"""Keeping within Telegram's limits, and keeping one prospect from crowding out the others.

- ``SendLimiter`` (a session middleware): messages to one private chat, to one group, and in all
  are paced with token buckets (the Bot API's limits: about 1 message a second per chat, 20 a
  minute per group, 30 a second in all; short bursts are fine). A chat whose user blocked the bot
  (403) is marked, and nothing more is sent to it until they write again.
- ``FloodGate``: a prospect who sends faster than ``FLOOD_RATE`` updates a second beyond a burst
  is slowed down: their updates wait their turn (others' do not), and they get one notice. At most
  ``FLOOD_BACKLOG`` of them wait (half a minute at the default rate): what comes beyond that is
  not read (no person types that fast; a script must not fill the memory), and the prospect is
  told once that some messages were skipped and to send again what is still unanswered.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any, cast

from aiogram import Bot
from aiogram.client.session.middlewares.base import BaseRequestMiddleware, NextRequestMiddlewareType
from aiogram.exceptions import TelegramForbiddenError
from aiogram.methods import (
    CopyMessage,
    SendDocument,
    SendMessage,
    SendPhoto,
    TelegramMethod,
)
from aiogram.methods.base import Response, TelegramType
from sqlalchemy import delete, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from bot.db.engine import Database
from bot.db.models import BlockedChat, utcnow

log = logging.getLogger(__name__)

SENDING = (SendMessage, CopyMessage, SendDocument, SendPhoto)
CHAT_BURST = 5.0
GROUP_BURST = 20.0
FLOOD_BURST = 10.0
FLOOD_BACKLOG = 60
"""Updates of one prospect waiting their turn; beyond this they are dropped, with one notice."""
KEEP_BUCKETS = 20_000


class Bucket:
    """A token bucket: ``rate`` tokens a second, ``burst`` at most."""

    __slots__ = ("at", "burst", "rate", "tokens")

    def __init__(self, rate: float, burst: float) -> None:
        self.rate = rate
        self.burst = burst
        self.tokens = burst
        self.at = time.monotonic()

    def _refill(self) -> None:
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.at) * self.rate)
        self.at = now

    def try_take(self) -> bool:
        self._refill()
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False

    def reserve(self) -> float:
        """Take a token now, in debt if need be; return how long to wait for it."""
        self._refill()
        self.tokens -= 1
        return 0.0 if self.tokens >= 0 else -self.tokens / self.rate

    async def take(self) -> None:
        delay = self.reserve()
        if delay > 0:
            await asyncio.sleep(delay)

    @property
    def full(self) -> bool:
        self._refill()
        return self.tokens >= self.burst


class _Buckets:
    """One bucket per key, the least recently used dropped beyond ``KEEP_BUCKETS``."""

    def __init__(self, rate: float, burst: float) -> None:
        self.rate, self.burst = rate, burst
        self._buckets: OrderedDict[int, Bucket] = OrderedDict()

    def get(self, key: int) -> Bucket:
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = Bucket(self.rate, self.burst)
            if len(self._buckets) > KEEP_BUCKETS:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(key)
        return bucket


class BlockedChats:
    """Prospects who blocked the bot: in the database (``blocked_chats``), known to this process
    from its start and from every 403 it gets."""

    def __init__(self, db: Database | None) -> None:
        self.db = db
        self.chats: set[int] = set()

    async def load(self) -> None:
        if self.db is not None:
            async with self.db.sessions() as session:
                self.chats = set(await session.scalars(select(BlockedChat.chat_id)))

    def __contains__(self, chat_id: object) -> bool:
        return chat_id in self.chats

    async def confirm(self, chat_id: int) -> bool:
        """Whether a chat marked here is still blocked: another replica may have seen the user
        write again (and unmarked them) since."""
        if self.db is None:
            return True
        async with self.db.sessions() as session:
            still = await session.get(BlockedChat, chat_id) is not None
        if not still:
            self.chats.discard(chat_id)
        return still

    async def mark(self, chat_id: int) -> None:
        if chat_id in self.chats:
            return
        self.chats.add(chat_id)
        log.info("chat %s blocked the bot: nothing more is sent to it", chat_id)
        if self.db is not None:
            insert = sqlite_insert if self.db.is_sqlite else pg_insert
            stmt = insert(BlockedChat).values(chat_id=chat_id, blocked_at=utcnow()).on_conflict_do_nothing()
            await self.db.run_write(lambda session: session.execute(stmt))

    async def unmark(self, chat_id: int) -> None:
        """They wrote again (or unblocked the bot): send to them again."""
        if chat_id not in self.chats:
            return
        self.chats.discard(chat_id)
        if self.db is not None:
            stmt = delete(BlockedChat).where(BlockedChat.chat_id == chat_id)
            await self.db.run_write(lambda session: session.execute(stmt))


class SendLimiter(BaseRequestMiddleware):
    def __init__(
        self,
        *,
        per_chat: float,
        per_group: float,
        overall: float,
        blocked: BlockedChats | None = None,
    ) -> None:
        self.chats = _Buckets(per_chat, CHAT_BURST)
        self.groups = _Buckets(per_group, GROUP_BURST)
        self.overall = Bucket(overall, max(1.0, overall))
        self.blocked = blocked or BlockedChats(None)

    async def __call__(
        self,
        make_request: NextRequestMiddlewareType[TelegramType],
        bot: Bot,
        method: TelegramMethod[TelegramType],
    ) -> Response[TelegramType]:
        sending = method if isinstance(method, SENDING) else None
        if sending is None:
            return await make_request(bot, method)
        chat_id = sending.chat_id
        private = isinstance(chat_id, int) and chat_id > 0
        if (
            isinstance(chat_id, int)
            and private
            and chat_id in self.blocked
            and await self.blocked.confirm(chat_id)
        ):
            raise TelegramForbiddenError(
                method=cast(TelegramMethod[Any], method), message="Forbidden: bot was blocked by the user"
            )
        if isinstance(chat_id, int):
            await (self.chats if private else self.groups).get(chat_id).take()
        await self.overall.take()
        try:
            return await make_request(bot, method)
        except TelegramForbiddenError:
            if private and isinstance(chat_id, int):
                await self.blocked.mark(chat_id)
            raise


class FloodGate:
    """Per prospect: updates beyond the burst wait for their turn; one notice per flood, and one
    more if some of its updates had to be dropped."""

    def __init__(self, rate: float, burst: float = FLOOD_BURST) -> None:
        self.buckets = _Buckets(rate, burst)
        self.waiting: dict[int, int] = {}
        self.warned: set[int] = set()
        self.dropped: set[int] = set()
        """Chats told in this flood that some of their updates were dropped."""
        self._turns: dict[int, asyncio.Lock] = {}
        """Waiting updates of a chat go in the order they came (an asyncio lock is fair)."""

    async def admit(self, chat_id: int, notify: Callable[[str], Awaitable[Any]]) -> bool:
        """Wait for this chat's turn; False if too many of its updates are waiting already.
        ``notify`` tells the prospect, once per flood each: ``flood_notice`` (they are slowed
        down), ``flood_dropped`` (some of their messages were not read)."""
        bucket = self.buckets.get(chat_id)
        if chat_id in self.warned and bucket.full:  # calm since the last flood: a new one is told
            self.warned.discard(chat_id)
            self.dropped.discard(chat_id)
        if bucket.try_take():
            return True
        if self.waiting.get(chat_id, 0) >= FLOOD_BACKLOG:
            log.warning("chat %s: flood, update dropped", chat_id)
            if chat_id not in self.dropped:
                if len(self.dropped) > KEEP_BUCKETS:
                    self.dropped.clear()
                self.dropped.add(chat_id)
                await _notify(notify, "flood_dropped", chat_id)
            return False
        if chat_id not in self.warned:
            self.warned.add(chat_id)
            await _notify(notify, "flood_notice", chat_id)
        self.waiting[chat_id] = self.waiting.get(chat_id, 0) + 1
        turn = self._turns.setdefault(chat_id, asyncio.Lock())
        try:
            async with turn:
                await bucket.take()
        finally:
            self.waiting[chat_id] -= 1
            if not self.waiting[chat_id]:
                del self.waiting[chat_id]
                self._turns.pop(chat_id, None)
        return True


async def _notify(notify: Callable[[str], Awaitable[Any]], text: str, chat_id: int) -> None:
    try:
        await notify(text)
    except Exception:
        log.exception("flood notice to %s failed", chat_id)
