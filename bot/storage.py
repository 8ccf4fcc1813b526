"""Where conversations are kept between updates: memory, or the database (the default).

A record holds the engine state, the last update handled and the message showing the current
menu; stored as a small JSON object ``{"c": state, "u": update_id, "m": message_id}``.

The database store keeps a bounded cache in front of the table, so reading a conversation costs
nothing while this process owns it, and writes changes behind: changed records are written in
one transaction every ``flush_interval`` seconds (50 ms by default) and when the store closes, so
a restart loses nothing and a crash at most the last few tenths of a second of navigation (the
prospect then sees the previous menu again). With ``flush_interval=0`` every change is written
before the update counts as handled. A turn with effects is written at once too, and a lead is
written with the conversation's step after it in one transaction (``commit_with``), so a crash
cannot bring back the form it submitted.
Run several replicas with ``cache_size=0`` and ``flush_interval=0``, or with the Redis store.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Protocol, TypeVar

from redis.asyncio import Redis
from sqlalchemy import delete, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from bot import jsonio
from bot.db.engine import Database
from bot.db.models import Conversation, utcnow
from bot.engine.state import State

log = logging.getLogger(__name__)

RECENT = 16
FORGOTTEN_KEPT = timedelta(days=1)
"""What /forget leaves of a conversation (the last update ids) is kept this long: Telegram
redelivers an update for up to 24 hours, and a redelivery must not be handled again."""
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Record:
    """One chat's conversation. Never modified: each update stores a new one."""

    state: State | None = None
    last_update: int | None = None
    """The newest update handled: an update that is not newer is a duplicate."""
    menu_id: int | None = None
    """The message that shows the current view with its buttons."""
    transcript: tuple[str, ...] = ()
    """The last lines of the conversation (what the prospect typed, where the bot took them)."""
    contact_keyboard: bool = False
    """The "share my phone number" keyboard is showing."""
    recent: tuple[int, ...] = ()
    """The ids of the last updates handled, ascending (``RECENT`` at most)."""
    pending: tuple[str, ...] = ()
    """Notices (HTML) owed to the prospect: written with a lead in its transaction (the
    reference number), cleared once sent. If the process died in between, they are sent with
    the next update of the chat (or a redelivery of the same one)."""
    forgotten: bool = False
    """What /forget leaves: only the update ids (no state, no transcript); expires in a day."""
    log: tuple[dict[str, Any], ...] = ()
    """The messages a channel shows again after a reload (the web chat's transcript), each with
    its sequence number ``seq``; the newest ``LOG_LIMIT``."""
    seq: int = 0
    """The last sequence number given to a message of ``log`` (kept by /forget: a client that
    resumes after it must not miss a message)."""
    clients: tuple[tuple[str, int, int], ...] = ()
    """The last actions of a client that resends (the web chat's client ids), each with the range
    of ``log`` its answer took: a resend is answered with the same messages, not handled again."""

    def tombstone(self, update_id: int | None) -> Record:
        """What is kept after /forget, once ``update_id`` is handled: the ids, nothing else."""
        last, recent = self.after(update_id)
        return Record(last_update=last, recent=recent, forgotten=True, seq=self.seq)

    def seen(self, update_id: int) -> bool:
        """Whether an update was handled already (a redelivery). Several replicas may handle a
        chat's updates slightly out of order, so an older update that was never handled is not a
        duplicate; one older than every remembered id is taken for one."""
        if self.recent:
            return update_id in self.recent or (len(self.recent) >= RECENT and update_id < self.recent[0])
        return self.last_update is not None and update_id <= self.last_update

    def after(self, update_id: int | None) -> tuple[int | None, tuple[int, ...]]:
        """``last_update`` and ``recent`` once ``update_id`` is handled too."""
        if update_id is None:
            return self.last_update, self.recent
        if not self.recent or update_id > self.recent[-1]:  # the usual case: ids come in order
            recent = (*self.recent, update_id)[-RECENT:]
        else:
            recent = tuple(sorted({*self.recent, update_id}))[-RECENT:]
        return max(update_id, self.last_update or update_id), recent

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "c": self.state.to_dict() if self.state is not None else None,
            "u": self.last_update,
            "m": self.menu_id,
        }
        if self.transcript:
            out["t"] = list(self.transcript)
        if self.contact_keyboard:
            out["k"] = True
        if self.recent:
            out["r"] = list(self.recent)
        if self.pending:
            out["p"] = list(self.pending)
        if self.forgotten:
            out["f"] = True
        if self.log:
            out["l"] = list(self.log)
        if self.seq:
            out["s"] = self.seq
        if self.clients:
            out["q"] = [list(c) for c in self.clients]
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Record:
        state = data.get("c")
        return cls(
            state=State.from_dict(state) if state else None,
            last_update=data.get("u"),
            menu_id=data.get("m"),
            transcript=tuple(data.get("t", ())),
            contact_keyboard=bool(data.get("k", False)),
            recent=tuple(data.get("r", ())),
            pending=tuple(data.get("p", ())),
            forgotten=bool(data.get("f", False)),
            log=tuple(data.get("l", ())),
            seq=int(data.get("s", 0)),
            clients=tuple((str(c[0]), int(c[1]), int(c[2])) for c in data.get("q", ())),
        )


class ConversationStore(Protocol):
    async def load(self, key: str) -> Record | None: ...

    async def save(self, key: str, record: Record, *, durable: bool = False) -> None:
        """Keep ``record``; ``durable``: written before this returns (no write-behind)."""
        ...

    async def close(self) -> None: ...


class MemoryStore:
    """For tests, benchmarks and the terminal: lost when the process ends."""

    def __init__(self) -> None:
        self.records: dict[str, Record] = {}

    async def load(self, key: str) -> Record | None:
        return self.records.get(key)

    async def save(self, key: str, record: Record, *, durable: bool = False) -> None:
        self.records[key] = record

    async def close(self) -> None:
        return None


PURGE_BATCH = 500
"""Conversations deleted per transaction by ``SqlStore.purge``."""


class SqlStore:
    """Conversations in the ``conversations`` table (SQLite or PostgreSQL)."""

    BATCH = 500
    """Changed records that trigger a write at once instead of after the interval."""

    def __init__(self, db: Database, *, cache_size: int = 10_000, flush_interval: float = 0.05) -> None:
        self.db = db
        self.cache_size = cache_size
        self.flush_interval = flush_interval
        self._cache: OrderedDict[str, Record] = OrderedDict()
        self._dirty: dict[str, Record] = {}
        self._wake = asyncio.Event()
        self._flusher: asyncio.Task[None] | None = None
        self._writing = asyncio.Lock()
        self._insert = sqlite_insert if db.is_sqlite else pg_insert

    async def load(self, key: str) -> Record | None:
        record = self._dirty.get(key) or self._cache.get(key)
        if record is not None:
            if key in self._cache:
                self._cache.move_to_end(key)
            return record
        query = select(Conversation.data).where(Conversation.key == key)
        if self.db.point_reader is not None:
            with self.db.point_reader.connect() as sync_conn:
                row = sync_conn.execute(query).first()
        else:
            async with self.db.engine.connect() as conn:
                row = (await conn.execute(query)).first()
        record = Record.from_dict(row[0]) if row is not None else None
        if record is not None:
            self._remember(key, record)
        return record

    async def save(self, key: str, record: Record, *, durable: bool = False) -> None:
        self._remember(key, record)
        if self.flush_interval > 0 and not (durable or record.forgotten):  # written behind
            self._dirty[key] = record
            if self._flusher is None or self._flusher.done():
                self._flusher = asyncio.create_task(self._flush_loop(), name="conversation-flush")
            if len(self._dirty) >= self.BATCH or not self._wake.is_set():
                self._wake.set()
            return
        if self.flush_interval <= 0:
            await self._write({key: record})
        else:
            async with self._writing:  # after a batch in flight that may hold an older record
                self._dirty.pop(key, None)
                await self._write({key: record})
        if record.forgotten:  # /forget: the old record must not stay in the WAL or the file
            await self.db.erase_traces()

    async def commit_with(self, key: str, work: Callable[[Session], T], record: Callable[[T], Record]) -> T:
        """Run ``work`` and write the record ``record(result)`` in one transaction: a lead and
        the conversation's step after it are saved together or not at all."""
        async with self._writing:  # a batch in flight may hold an older record of this chat
            self._dirty.pop(key, None)
            upsert = self._upsert()

            def both(session: Session) -> tuple[T, Record]:
                result = work(session)
                new = record(result)
                session.connection().execute(upsert, [self._row(key, new, utcnow())])
                return result, new

            result, new = await self.db.run_write(both)
        self._remember(key, new)
        return result

    async def purge(self, idle_days: int) -> int:
        """Delete conversations idle for ``idle_days`` (unfinished forms with them), a batch of
        ``PURGE_BATCH`` at a time: on SQLite writes run in the event loop, and updates go on
        between the batches."""
        await self.flush()
        now = utcnow()
        idle = (Conversation.updated_at < now - timedelta(days=idle_days)) | (Conversation.expires_at < now)

        def work(session: Session) -> list[str]:
            keys = list(session.scalars(select(Conversation.key).where(idle).limit(PURGE_BATCH)))
            if keys:
                session.execute(delete(Conversation).where(Conversation.key.in_(keys), idle))
            return keys

        purged = 0
        while True:
            keys = await self.db.run_write(work)
            for key in keys:
                self._cache.pop(key, None)
            purged += len(keys)
            if len(keys) < PURGE_BATCH:
                return purged
            await asyncio.sleep(0)

    async def flush(self) -> None:
        """Write every changed record now."""
        while self._dirty:
            async with self._writing:
                batch, self._dirty = self._dirty, {}
                if not batch:  # written at once (durable) while this waited
                    continue
                try:
                    await self._write(batch)
                except Exception:
                    for key, record in batch.items():  # keep what was not superseded meanwhile
                        self._dirty.setdefault(key, record)
                    raise

    async def _flush_loop(self) -> None:
        while True:
            await self._wake.wait()
            if len(self._dirty) < self.BATCH:
                await asyncio.sleep(self.flush_interval)
            self._wake.clear()
            try:
                await self.flush()
            except Exception:
                log.exception("writing %d conversations failed; retrying", len(self._dirty))
                await asyncio.sleep(max(self.flush_interval, 0.5))
                self._wake.set()

    def _upsert(self) -> Any:
        stmt = self._insert(Conversation)
        return stmt.on_conflict_do_update(
            index_elements=[Conversation.key],
            set_={
                "data": stmt.excluded.data,
                "updated_at": stmt.excluded.updated_at,
                "expires_at": stmt.excluded.expires_at,
            },
        )

    @staticmethod
    def _row(key: str, record: Record, now: Any) -> dict[str, Any]:
        expires = now + FORGOTTEN_KEPT if record.forgotten else None
        return {"key": key, "data": record.to_dict(), "updated_at": now, "expires_at": expires}

    async def _write(self, batch: dict[str, Record]) -> None:
        now = utcnow()
        stmt = self._upsert()
        rows = [self._row(key, record, now) for key, record in batch.items()]
        # Core's executemany: the ORM's bulk insert would cost several times as much per row
        await self.db.run_write(lambda session: session.connection().execute(stmt, rows))

    def _remember(self, key: str, record: Record) -> None:
        if self.cache_size <= 0:
            return
        self._cache[key] = record
        self._cache.move_to_end(key)
        while len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)

    async def close(self) -> None:
        if self._flusher is not None:
            self._flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._flusher
        await self.flush()
        self._cache.clear()


async def commit_with(
    store: ConversationStore,
    db: Database,
    key: str,
    work: Callable[[Session], T],
    record: Callable[[T], Record],
) -> T:
    """``work`` (a write of ``db``) and the conversation's new record, together: in one
    transaction where the store keeps conversations in ``db``; elsewhere (Redis) the record is
    written right after the transaction."""
    if isinstance(store, SqlStore) and store.db is db:
        return await store.commit_with(key, work, record)
    result = await db.run_write(work)
    try:
        await store.save(key, record(result), durable=True)
    except Exception:  # the lead is saved: the turn goes on, and saving the conversation is tried again
        log.exception("writing the conversation's step after a lead failed")
    return result


class RedisStore:
    """Conversations in Redis, shared by every replica: no cache, each save written at once.

    Each record expires ``ttl`` after its last change (the retention period): a conversation in
    use is written at every update, so only one idle that long goes, as the database purge would.
    """

    def __init__(self, redis: Redis, *, ttl: timedelta, prefix: str = "certbot") -> None:
        self.redis = redis
        self.ttl = ttl
        self.prefix = prefix

    def _key(self, key: str) -> str:
        return f"{self.prefix}:conversation:{key}"

    async def load(self, key: str) -> Record | None:
        raw = await self.redis.get(self._key(key))
        if raw is None and key.startswith("tg:"):
            raw = await self._legacy(key)
        return Record.from_dict(jsonio.loads(raw)) if raw is not None else None

    async def _legacy(self, key: str) -> Any:
        """A Telegram conversation kept before keys had a channel (``123``, now ``tg:123``):
        moved to its new key, with what is left of its expiry."""
        old = self._key(key.removeprefix("tg:"))
        raw = await self.redis.get(old)
        if raw is not None:
            ttl = await self.redis.pttl(old)
            await self.redis.set(self._key(key), raw, px=ttl if ttl > 0 else None, nx=True)
            await self.redis.delete(old)
        return raw

    async def save(self, key: str, record: Record, *, durable: bool = False) -> None:
        data = jsonio.dumps(record.to_dict())
        await self.redis.set(self._key(key), data, ex=FORGOTTEN_KEPT if record.forgotten else self.ttl)

    async def close(self) -> None:
        return None  # the connection belongs to whoever made it
