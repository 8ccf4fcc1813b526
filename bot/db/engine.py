"""The async SQLAlchemy engine, with SQLite set up for concurrent use (WAL, busy timeout)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

SQLITE_BUSY_TIMEOUT_MS = 5000


@dataclass
class Database:
    url: str
    engine: AsyncEngine
    """Plain transactions (reads, single-statement writes)."""
    writer: AsyncEngine
    """The same pool; on SQLite its transactions start with BEGIN IMMEDIATE, so a transaction that
    reads and then writes cannot fail with "database is locked" on the lock upgrade."""
    sessions: async_sessionmaker[AsyncSession]
    write_sessions: async_sessionmaker[AsyncSession]
    write_lock: asyncio.Lock | None = None
    """SQLite only: write transactions of this process take turns here instead of waiting on the
    database lock, which SQLite's busy handler polls with sleeps."""
    point_reader: Engine | None = None
    """SQLite only: a synchronous engine for primary-key lookups made right in the event loop. Such
    a lookup takes microseconds in SQLite, while handing it to aiosqlite's thread and back takes
    about a millisecond of hand-offs; with WAL, a reader never waits for the writer."""

    @contextlib.asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncSession]:
        """A session in a write transaction (BEGIN IMMEDIATE on SQLite), committed on success."""
        async with contextlib.AsyncExitStack() as stack:
            if self.write_lock is not None:
                await stack.enter_async_context(self.write_lock)
            session = await stack.enter_async_context(self.write_sessions())
            await stack.enter_async_context(session.begin())
            yield session

    @contextlib.asynccontextmanager
    async def write_connection(self) -> AsyncIterator[AsyncConnection]:
        """A connection in a write transaction, as ``write()`` (same lock, BEGIN IMMEDIATE on
        SQLite), for bulk statements. Every writer of this process goes through the one lock, so
        they queue here instead of colliding inside SQLite (whose busy wait gives up after the
        timeout with "database is locked")."""
        async with contextlib.AsyncExitStack() as stack:
            if self.write_lock is not None:
                await stack.enter_async_context(self.write_lock)
            connection = await stack.enter_async_context(self.writer.begin())
            yield connection

    @property
    def is_sqlite(self) -> bool:
        return self.engine.dialect.name == "sqlite"

    async def dispose(self) -> None:
        await self.engine.dispose()
        if self.point_reader is not None:
            self.point_reader.dispose()


def _pragmas(dbapi_connection: Any, _record: Any) -> None:
    # Transactions are begun by the "begin" hook below, so it can choose BEGIN IMMEDIATE.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.close()


def _sqlite_setup(engine: AsyncEngine) -> None:
    event.listen(engine.sync_engine, "connect", _pragmas)

    @event.listens_for(engine.sync_engine, "begin")
    def _begin(conn: Any) -> None:
        immediate = conn.get_execution_options().get("sqlite_immediate", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def create_database(url: str, **kwargs: Any) -> Database:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database in (None, "", ":memory:"):
            raise ValueError("use a SQLite file, not :memory: (one connection shared by everyone)")
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000}, **kwargs)
        _sqlite_setup(engine)
        writer = engine.execution_options(sqlite_immediate=True)
        point_reader = create_engine(
            parsed.set(drivername="sqlite+pysqlite"),
            pool_size=1,
            max_overflow=0,
            connect_args={"timeout": 1.0},
        )
        event.listen(point_reader, "connect", _pragmas)
    else:
        point_reader = None
        engine = create_async_engine(url, pool_pre_ping=True, **kwargs)
        writer = engine
    return Database(
        url=url,
        engine=engine,
        writer=writer,
        sessions=async_sessionmaker(engine, expire_on_commit=False),
        write_sessions=async_sessionmaker(writer, expire_on_commit=False),
        point_reader=point_reader,
        write_lock=asyncio.Lock() if point_reader is not None else None,
    )
