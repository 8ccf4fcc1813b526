"""Web chat visitors: a random session token issued by the server (never chosen by the client),
of which only the SHA-256 is stored, and the random id the visitor's conversation and leads are
keyed by. Tokens in use are cached, so a visitor's action costs no database read; when each was
last used is written at most every ``SEEN_EVERY``, and for every visitor seen before each purge."""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from cachetools import LRUCache
from sqlalchemy import delete, update
from sqlalchemy.orm import Session

from bot.db.engine import Database
from bot.db.models import WebVisitor, utcnow

TOKEN_BYTES = 32
SEEN_EVERY = timedelta(hours=12)
"""A visitor's ``last_seen`` is written at most this often (it decides when they expire)."""


@dataclass(frozen=True, slots=True)
class Visitor:
    external_id: str
    locale: str | None


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "replace")).hexdigest()


def plausible(token: str) -> bool:
    """Shaped like a token this server issues (anything else is refused unread)."""
    return 20 <= len(token) <= 64 and token.replace("-", "").replace("_", "").isalnum() and token.isascii()


class Visitors:
    """In the database (``web_visitors``), or in memory only (``db=None``: the memory mode)."""

    def __init__(self, db: Database | None, *, cache_size: int = 50_000) -> None:
        self.db = db
        self._cache: LRUCache[str, tuple[Visitor, float]] = LRUCache(maxsize=cache_size)
        """token hash -> the visitor, and when their ``last_seen`` was known to be written"""
        self._memory: dict[str, Visitor] = {}
        self._active: set[str] = set()
        """Token hashes used since the last purge (their ``last_seen`` is written before it)."""

    async def create(self, locale: str | None) -> tuple[str, Visitor]:
        token = secrets.token_urlsafe(TOKEN_BYTES)
        visitor = Visitor(secrets.token_hex(8), locale)
        digest = token_hash(token)
        if self.db is None:
            self._memory[digest] = visitor
        else:
            now = utcnow()
            row = WebVisitor(
                token_hash=digest,
                external_id=visitor.external_id,
                locale=locale,
                created_at=now,
                last_seen=now,
            )
            await self.db.run_write(lambda session: session.add(row))
        self._cache[digest] = (visitor, time.monotonic())
        return token, visitor

    async def find(self, token: str) -> Visitor | None:
        if not plausible(token):
            return None
        digest = token_hash(token)
        if self.db is None:
            return self._memory.get(digest)
        cached = self._cache.get(digest)
        if cached is not None:
            visitor, seen = cached
            self._active.add(digest)
            if time.monotonic() - seen > SEEN_EVERY.total_seconds():  # another replica may purge
                await self._seen_now([digest])
                self._cache[digest] = (visitor, time.monotonic())
            return visitor
        async with self.db.sessions() as session:
            row = await session.get(WebVisitor, digest)
        if row is None:
            return None
        visitor = Visitor(row.external_id, row.locale)
        if utcnow() - _aware(row.last_seen) > SEEN_EVERY:  # seen again: not idle
            await self._seen_now([digest])
        self._cache[digest] = (visitor, time.monotonic())
        self._active.add(digest)
        return visitor

    async def _seen_now(self, digests: list[str]) -> None:
        assert self.db is not None
        now = utcnow()
        for i in range(0, len(digests), 500):
            stmt = (
                update(WebVisitor)
                .where(WebVisitor.token_hash.in_(digests[i : i + 500]))
                .values(last_seen=now)
            )
            await self.db.run_write(_executes(stmt))

    async def purge(self, idle_days: int) -> int:
        """Forget visitors idle for ``idle_days`` (their conversations go with the same rule)."""
        if self.db is None:
            return 0
        active, self._active = self._active, set()
        await self._seen_now(sorted(active))  # those who came back since the last purge are not idle
        cutoff = utcnow() - timedelta(days=idle_days)
        stmt = delete(WebVisitor).where(WebVisitor.last_seen < cutoff).returning(WebVisitor.token_hash)

        def work(session: Session) -> list[str]:
            return list(session.scalars(stmt))

        gone: list[str] = await self.db.run_write(work)
        for digest in gone:
            self._cache.pop(digest, None)
        return len(gone)


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _executes(stmt: Any) -> Callable[[Session], object]:
    return lambda session: session.execute(stmt)
