"""The async SQLAlchemy engine, with SQLite set up for concurrent use (WAL, busy timeout).

SQLite has one writer at a time, and its transactions take microseconds to a millisecond. So on
SQLite every write of the process runs synchronously in the event loop (``Database.run_write``):
writes take turns simply by being synchronous, and none waits on another inside SQLite. An async
session instead hands each statement to aiosqlite's thread and back, so a write transaction held
the database across a dozen turns of a busy event loop: under load, seconds of queueing for a
short transaction (``bench/load.py``, 1,000 prospects offering 500 updates/s, more than one
core handles: lead submissions p99 21 s before, 2 s after, the rest of it waiting for the CPU).

What could make a synchronous write slow is kept off the loop: another process holding the write
lock (``BEGIN IMMEDIATE`` gives up at once and the retry waits asynchronously) and checkpoints
(the writer never checkpoints; a thread copies the WAL into the database a second after writes).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import NullPool

from bot import jsonio

log = logging.getLogger(__name__)

SQLITE_BUSY_TIMEOUT_MS = 5000
CHECKPOINT_DELAY = 1.0
"""Seconds after a write before the WAL is checkpointed (in a thread)."""
ERASE_PATIENCE = 60.0
"""Seconds an erasure keeps trying to empty the WAL while readers keep it in use."""
T = TypeVar("T")


class _Busy(Exception):
    """Another process holds SQLite's write lock."""

    def __init__(self, locked: OperationalError) -> None:
        super().__init__(str(locked))
        self.locked = locked


@dataclass
class Database:
    url: str
    engine: AsyncEngine
    """Reads. Every write goes through ``run_write``."""
    writer: AsyncEngine
    """The same pool; on SQLite its transactions start with BEGIN IMMEDIATE, so a transaction that
    reads and then writes cannot fail with "database is locked" on the lock upgrade (migrations,
    and ``run_write`` on other databases)."""
    sessions: async_sessionmaker[AsyncSession]
    write_sessions: async_sessionmaker[AsyncSession]
    point_reader: Engine | None = None
    """SQLite only: a synchronous engine for primary-key lookups made right in the event loop. Such
    a lookup takes microseconds in SQLite, while handing it to aiosqlite's thread and back takes
    about a millisecond of hand-offs; with WAL, a reader never waits for the writer."""
    sync_writer: Engine | None = None
    """SQLite only: the synchronous engine of ``run_write`` (BEGIN IMMEDIATE, no busy wait, no
    automatic checkpoints)."""
    checkpointer: Engine | None = None
    """SQLite only: the engine that checkpoints the WAL, in a thread."""
    _sync_writes: sessionmaker[Session] | None = field(default=None, init=False, repr=False)
    _checkpointing: asyncio.Task[None] | None = field(default=None, init=False, repr=False)
    _erasing: asyncio.Task[None] | None = field(default=None, init=False, repr=False)
    _erase_again: bool = field(default=False, init=False, repr=False)
    _writes: int = field(default=0, init=False, repr=False)
    """Write transactions committed on SQLite (so the checkpointer knows whether to go again)."""

    def __post_init__(self) -> None:
        if self.sync_writer is not None:
            self._sync_writes = sessionmaker(self.sync_writer, expire_on_commit=False)

    async def run_write(self, work: Callable[[Session], T]) -> T:
        """Run ``work(session)`` in a write transaction, commit, and return what it returned.

        ``work`` is plain synchronous SQLAlchemy, so one body serves both databases. Objects it
        returns stay usable (no expiry on commit).

        - SQLite: right here, synchronously (see the module's note): keep ``work`` short. The
          write lock is taken before ``work`` runs; while another process holds it, this waits
          (asynchronously) and after ``SQLITE_BUSY_TIMEOUT_MS`` gives up with "database is
          locked", ``work`` not having run.
        - PostgreSQL: an async session's ``run_sync``, concurrently with the other writers.
        """
        if self._sync_writes is None:
            async with self.write_sessions() as session, session.begin():
                return await session.run_sync(work)
        deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_MS / 1000
        pause = 0.001
        while True:
            try:
                result = self._write_now(work)
            except _Busy as busy:
                if time.monotonic() >= deadline:
                    raise busy.locked from None
                await asyncio.sleep(pause)
                pause = min(pause * 2, 0.05)
                continue
            self._writes += 1
            if self._checkpointing is None or self._checkpointing.done():
                self._checkpointing = asyncio.get_running_loop().create_task(self._checkpoint_while_writing())
            return result

    def _write_now(self, work: Callable[[Session], T]) -> T:
        assert self._sync_writes is not None
        with self._sync_writes() as session:
            try:
                session.connection()  # BEGIN IMMEDIATE now, before any of the work
            except OperationalError as e:
                if "locked" in str(e.orig) or "busy" in str(e.orig):
                    raise _Busy(e) from e
                raise
            result = work(session)
            session.commit()
            return result

    async def _checkpoint_while_writing(self) -> None:
        """Checkpoint ``CHECKPOINT_DELAY`` after a write, and again while writes keep coming."""
        done = -1
        while done != self._writes:
            await asyncio.sleep(CHECKPOINT_DELAY)
            started = self._writes
            try:
                await asyncio.to_thread(self.checkpoint)
            except Exception:
                log.exception("checkpointing the SQLite WAL failed; trying again")
                continue
            done = started

    def checkpoint(self) -> None:
        """Copy what the WAL holds into the database file as far as readers allow (blocking)."""
        assert self.checkpointer is not None
        with self.checkpointer.connect() as conn:
            conn.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)")

    async def erase_traces(self, *statements: str) -> None:
        """After erasing personal data on SQLite: run ``statements`` in a thread (such as rewriting
        a full-text index, whose deleted entries otherwise stay in its older segments), then, in
        the background, copy the WAL (which still holds the pages as they were before:
        secure_delete overwrites the database file only) into the database and empty it. The WAL
        can only be emptied while no reader uses it, so that is tried without waiting (a waiting
        checkpoint would hold up every writer) until it succeeds, for ``ERASE_PATIENCE`` seconds
        at most. Nothing to do on other databases."""
        if self.checkpointer is None:
            return
        if statements:

            def run() -> None:
                assert self.checkpointer is not None
                with self.checkpointer.begin() as conn:
                    for statement in statements:
                        conn.exec_driver_sql(statement)

            try:
                await asyncio.to_thread(run)
            except Exception:
                log.exception("erasing the traces of deleted data in SQLite's files failed")
        self._erase_again = True
        if self._erasing is None or self._erasing.done():
            self._erasing = asyncio.get_running_loop().create_task(self._empty_wal())

    async def traces_erased(self) -> None:
        """Until the WAL has been emptied after the last erasure (or given up on)."""
        if self._erasing is not None:
            await asyncio.shield(self._erasing)

    async def _empty_wal(self) -> None:
        deadline = time.monotonic() + ERASE_PATIENCE
        while True:
            self._erase_again = False
            try:
                emptied = await asyncio.to_thread(self._truncate_wal)
            except Exception:
                log.exception("emptying the SQLite WAL after an erasure failed")
                emptied = False
            if emptied and not self._erase_again:
                return
            if time.monotonic() > deadline:
                log.warning("the SQLite WAL could not be emptied after an erasure (readers kept it busy)")
                return
            await asyncio.sleep(0.0 if emptied else 0.2)

    def _truncate_wal(self) -> bool:
        assert self.checkpointer is not None
        with self.checkpointer.connect() as conn:
            conn.exec_driver_sql("PRAGMA busy_timeout=0")  # never hold writers up while waiting
            row = conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)").first()
        return row is not None and row[0] == 0

    @property
    def is_sqlite(self) -> bool:
        return self.engine.dialect.name == "sqlite"

    async def dispose(self) -> None:
        if self._erasing is not None and not self._erasing.done():
            with contextlib.suppress(Exception):
                await asyncio.wait_for(asyncio.shield(self._erasing), 5)
            self._erasing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._erasing
        if self._checkpointing is not None:
            self._checkpointing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._checkpointing
        await self.engine.dispose()
        for sync_engine in (self.point_reader, self.sync_writer, self.checkpointer):
            if sync_engine is not None:
                sync_engine.dispose()


def _writer_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA busy_timeout=0")  # never wait inside the event loop (run_write retries)
    cursor.execute("PRAGMA wal_autocheckpoint=0")  # checkpoints happen in a thread
    cursor.close()


def _pragmas(dbapi_connection: Any, _record: Any) -> None:
    # Transactions are begun by the "begin" hook below, so it can choose BEGIN IMMEDIATE.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    # Erased values (/forget, purges) are overwritten in the file, not left in its free pages.
    cursor.execute("PRAGMA secure_delete=ON")
    cursor.close()


def _sqlite_setup(engine: Engine, *, immediate: bool = False) -> None:
    event.listen(engine, "connect", _pragmas)

    @event.listens_for(engine, "begin")
    def _begin(conn: Any) -> None:
        write = immediate or conn.get_execution_options().get("sqlite_immediate", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")


def create_database(url: str, **kwargs: Any) -> Database:
    parsed = make_url(url)
    json_io = {"json_serializer": jsonio.dumps, "json_deserializer": jsonio.loads}
    kwargs = {**json_io, **kwargs}
    point_reader: Engine | None = None
    sync_writer: Engine | None = None
    checkpointer: Engine | None = None
    if parsed.get_backend_name() == "sqlite":
        if parsed.database in (None, "", ":memory:"):
            raise ValueError("use a SQLite file, not :memory: (one connection shared by everyone)")
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000}, **kwargs)
        _sqlite_setup(engine.sync_engine)
        writer = engine.execution_options(sqlite_immediate=True)
        sync_url = parsed.set(drivername="sqlite+pysqlite")
        point_reader = create_engine(
            sync_url, pool_size=1, max_overflow=0, connect_args={"timeout": 1.0}, **json_io
        )
        event.listen(point_reader, "connect", _pragmas)
        sync_writer = create_engine(
            sync_url, pool_size=1, max_overflow=0, connect_args={"timeout": 0}, **json_io
        )
        _sqlite_setup(sync_writer, immediate=True)
        event.listen(sync_writer, "connect", _writer_pragmas)
        # Its own connection, in whichever thread of asyncio's pool runs the checkpoint.
        checkpointer = create_engine(sync_url, poolclass=NullPool)
        event.listen(checkpointer, "connect", _pragmas)
    else:
        engine = create_async_engine(url, pool_pre_ping=True, **kwargs)
        writer = engine
    return Database(
        url=url,
        engine=engine,
        writer=writer,
        sessions=async_sessionmaker(engine, expire_on_commit=False),
        write_sessions=async_sessionmaker(writer, expire_on_commit=False),
        point_reader=point_reader,
        sync_writer=sync_writer,
        checkpointer=checkpointer,
    )
