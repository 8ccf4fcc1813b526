"""Where conversations are kept between updates: memory, or the database (the default).

A record is a small JSON object: ``{"c": engine state, "u": last update_id, "m": menu message id}``.
The database store keeps a bounded cache in front of the table, so reading a conversation costs
nothing while this process owns it; every change is written through at once, so a restart or a
crash loses nothing. Run several replicas with ``cache_size=0`` (or the Redis store).
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any, Protocol

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from bot.db.engine import Database
from bot.db.models import Conversation, utcnow

Record = dict[str, Any]


class ConversationStore(Protocol):
    async def load(self, key: str) -> Record | None: ...

    async def save(self, key: str, record: Record) -> None: ...

    async def close(self) -> None: ...


class MemoryStore:
    """For tests, benchmarks and the terminal: lost when the process ends."""

    def __init__(self) -> None:
        self.records: dict[str, Record] = {}

    async def load(self, key: str) -> Record | None:
        return self.records.get(key)

    async def save(self, key: str, record: Record) -> None:
        self.records[key] = record

    async def close(self) -> None:
        return None


class SqlStore:
    """Conversations in the ``conversations`` table (SQLite or PostgreSQL)."""

    def __init__(self, db: Database, *, cache_size: int = 10_000) -> None:
        self.db = db
        self.cache_size = cache_size
        self._cache: OrderedDict[str, Record] = OrderedDict()
        self._insert = sqlite_insert if db.is_sqlite else pg_insert

    async def load(self, key: str) -> Record | None:
        if key in self._cache:
            self._cache.move_to_end(key)
            return self._cache[key]
        async with self.db.engine.connect() as conn:
            row = (await conn.execute(select(Conversation.data).where(Conversation.key == key))).first()
        record = dict(row[0]) if row is not None else None
        if record is not None:
            self._remember(key, record)
        return record

    async def save(self, key: str, record: Record) -> None:
        now = utcnow()
        stmt = self._insert(Conversation).values(key=key, data=record, updated_at=now)
        stmt = stmt.on_conflict_do_update(
            index_elements=[Conversation.key], set_={"data": record, "updated_at": now}
        )
        async with self.db.engine.begin() as conn:
            await conn.execute(stmt)
        self._remember(key, record)

    def _remember(self, key: str, record: Record) -> None:
        if self.cache_size <= 0:
            return
        self._cache[key] = record
        self._cache.move_to_end(key)
        while len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)

    async def close(self) -> None:
        self._cache.clear()
