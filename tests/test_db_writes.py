"""Database.run_write: one body for both databases; on SQLite, synchronous writes that never wait
inside the event loop for another process, and checkpoints kept off the loop."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

import bot.db.engine as engine_module
from bot.db import create_database, upgrade
from bot.db.engine import Database
from bot.db.models import BlockedChat, utcnow


async def count(db: Database) -> int:
    async with db.sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(BlockedChat)) or 0)


def block(chat_id: int) -> BlockedChat:
    return BlockedChat(chat_id=chat_id, blocked_at=utcnow())


async def test_a_write_commits_and_returns_its_result(db: Database) -> None:
    def work(session: Session) -> int:
        session.add_all([block(1), block(2)])
        session.flush()
        return int(session.scalar(select(func.count()).select_from(BlockedChat)) or 0)

    assert await db.run_write(work) == 2
    assert await count(db) == 2


async def test_a_failing_write_leaves_nothing(db: Database) -> None:
    def work(session: Session) -> None:
        session.add(block(1))
        session.flush()
        raise RuntimeError("half way")

    with pytest.raises(RuntimeError, match="half way"):
        await db.run_write(work)
    assert await count(db) == 0
    await db.run_write(lambda session: session.add(block(3)))  # the writer is usable again
    assert await count(db) == 1


@pytest.fixture
async def sqlite_db(tmp_path: Path) -> Database:  # type: ignore[misc]
    url = f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}"
    await upgrade(url)
    database = create_database(url)
    yield database
    await database.dispose()


def sqlite_path(db: Database) -> str:
    assert db.sync_writer is not None and db.sync_writer.url.database
    return db.sync_writer.url.database


def file_size(db: Database) -> int:
    """The database file proper (not its WAL)."""
    return Path(sqlite_path(db)).stat().st_size


async def test_another_process_writing_is_waited_for_without_blocking_the_loop(sqlite_db: Database) -> None:
    other = sqlite3.connect(sqlite_path(sqlite_db), isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    other.execute("INSERT INTO blocked_chats (chat_id, blocked_at) VALUES (7, '2026-01-01')")
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.005)
            ticks += 1

    running = asyncio.create_task(ticker())
    asyncio.get_running_loop().call_later(0.3, other.execute, "COMMIT")
    started = time.monotonic()
    await sqlite_db.run_write(lambda session: session.add(block(8)))
    waited = time.monotonic() - started
    running.cancel()
    other.close()
    assert waited >= 0.25  # it did wait for the other writer...
    assert ticks >= 20  # ...while the event loop went on (a busy wait inside SQLite would block it)
    assert await count(sqlite_db) == 2


async def test_a_write_gives_up_when_the_database_stays_locked(
    sqlite_db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(engine_module, "SQLITE_BUSY_TIMEOUT_MS", 200)
    other = sqlite3.connect(sqlite_path(sqlite_db), isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    ran = 0

    def work(session: Session) -> None:
        nonlocal ran
        ran += 1
        session.add(block(9))

    with pytest.raises(OperationalError, match="database is locked"):
        await sqlite_db.run_write(work)
    other.execute("ROLLBACK")
    other.close()
    assert ran == 0  # the lock is taken before the work runs
    assert await count(sqlite_db) == 0


async def test_checkpoints_run_in_a_thread_shortly_after_writes(
    sqlite_db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(engine_module, "CHECKPOINT_DELAY", 0.05)
    assert sqlite_db.sync_writer is not None
    with sqlite_db.sync_writer.connect() as conn:  # the writer itself never checkpoints
        assert conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar() == 0
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 0
    checkpoints: list[str] = []
    real = Database.checkpoint

    def spy(self: Database) -> None:
        checkpoints.append(threading.current_thread().name)
        real(self)

    monkeypatch.setattr(Database, "checkpoint", spy)
    size = file_size(sqlite_db)
    await sqlite_db.run_write(lambda session: session.add_all([block(1000 + n) for n in range(3000)]))
    assert file_size(sqlite_db) == size  # in the WAL so far
    for _ in range(100):
        if checkpoints and file_size(sqlite_db) > size:
            break
        await asyncio.sleep(0.02)
    assert checkpoints and checkpoints[0] != threading.main_thread().name
    assert file_size(sqlite_db) > size  # copied into the database file
    assert await count(sqlite_db) == 3000
