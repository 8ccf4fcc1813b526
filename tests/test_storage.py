"""The conversation store on SQLite: write-behind, reload, delete and the retention purge."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import TypeVar

import pytest
from sqlalchemy import ColumnElement, select, update
from sqlalchemy.orm import Session

import bot.storage as storage
from bot.db.engine import Database
from bot.db.models import Conversation, utcnow
from bot.engine.state import State
from bot.storage import Record, SqlStore

T = TypeVar("T")


def record(n: int) -> Record:
    state = State(locale="zh", flow="lead", step="phone", seq=n, answers={"lead": {"company": "ACME"}})
    return Record(state, last_update=n, menu_id=10 + n, transcript=("> hi",), contact_keyboard=True)


async def keys(db: Database) -> set[str]:
    async with db.sessions() as s:
        return set(await s.scalars(select(Conversation.key)))


async def test_written_behind_then_read_back(db: Database) -> None:
    store = SqlStore(db, flush_interval=3600)
    await store.save("1", record(1))
    assert await keys(db) == set()  # not yet written
    assert await store.load("1") == record(1)  # but served
    await store.flush()
    assert await keys(db) == {"1"}
    fresh = SqlStore(db)  # another process, after a restart
    assert await fresh.load("1") == record(1)
    assert await fresh.load("2") is None


async def store_of(db: Database, count: int) -> SqlStore:
    """A store holding conversations "1" to ``count``, written at once."""
    store = SqlStore(db, flush_interval=0)
    for n in range(1, count + 1):
        await store.save(str(n), record(n))
    return store


async def make_idle(db: Database, which: ColumnElement[bool], days: int = 40) -> None:
    idle = update(Conversation).where(which).values(updated_at=utcnow() - timedelta(days=days))
    await db.run_write(lambda s: s.execute(idle))


async def test_purge_of_idle_conversations_and_of_what_forget_left(db: Database) -> None:
    store = await store_of(db, 3)
    await store.save("2", record(2).tombstone(9))  # /forget: the ids only, kept for a day
    expire = update(Conversation).where(Conversation.key == "2").values(expires_at=utcnow() - timedelta(1))
    await db.run_write(lambda s: s.execute(expire))
    await make_idle(db, Conversation.key == "1")
    assert await store.purge(30) == 2
    assert await keys(db) == {"3"} and await store.load("1") is None
    await store.close()


async def test_the_purge_goes_in_batches_and_spares_active_conversations(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(storage, "PURGE_BATCH", 2)
    store = await store_of(db, 7)
    await make_idle(db, Conversation.key != "7")
    assert await store.purge(30) == 6  # three full batches, then an empty one
    assert await keys(db) == {"7"}
    assert await store.load("3") is None and await store.load("7") == record(7)
    await store.close()


async def test_a_conversation_that_wakes_up_during_the_purge_is_kept(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(storage, "PURGE_BATCH", 2)
    store = await store_of(db, 7)
    await make_idle(db, Conversation.key.is_not(None))
    real = db.run_write
    woken: list[str] = []

    async def write_then_wake_one(work: Callable[[Session], T]) -> T:
        result = await real(work)
        if not woken:  # between the first two batches, a prospect writes again
            woken.append(sorted(await keys(db))[0])
            await store.save(woken[0], record(99))
        return result

    monkeypatch.setattr(db, "run_write", write_then_wake_one)
    assert await store.purge(30) == 6
    assert await keys(db) == set(woken)
    assert await store.load(woken[0]) == record(99)
    await store.close()


async def test_redis_moves_a_conversation_kept_before_keys_had_a_channel(redis_prefix: str) -> None:
    """Telegram conversations were kept as ``123``; now ``tg:123``. One kept before the upgrade is
    found under its new key (moved there, with what was left of its expiry), not lost."""
    from redis.asyncio import Redis

    from bot import jsonio
    from bot.storage import RedisStore

    from .conftest import REDIS_URL

    redis = Redis.from_url(REDIS_URL)
    try:
        store = RedisStore(redis, ttl=timedelta(days=30), prefix=redis_prefix)
        old = Record(last_update=41, recent=(41,))
        await redis.set(f"{redis_prefix}:conversation:8001", jsonio.dumps(old.to_dict()), ex=3600)
        assert await store.load("tg:8001") == old
        assert await redis.get(f"{redis_prefix}:conversation:8001") is None
        assert 0 < await redis.ttl(f"{redis_prefix}:conversation:tg:8001") <= 3600
        assert await store.load("tg:8001") == old  # from its new key now
        assert await store.load("tg:9999") is None
    finally:
        await redis.aclose()
