"""Web chat visitors: a random session token issued by the server (never chosen by the client),
of which only the SHA-256 is stored, and the random id the visitor's conversation and leads are
keyed by. Tokens in use are cached, so a visitor's action costs no database read."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

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
        self._cache: LRUCache[str, Visitor] = LRUCache(maxsize=cache_size)
        self._memory: dict[str, Visitor] = {}

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
        self._cache[digest] = visitor
        return token, visitor

    async def find(self, token: str) -> Visitor | None:
        if not plausible(token):
            return None
        digest = token_hash(token)
        visitor = self._cache.get(digest)
        if visitor is not None or self.db is None:
            return visitor or self._memory.get(digest)
        async with self.db.sessions() as session:
            row = await session.get(WebVisitor, digest)
        if row is None:
            return None
        visitor = Visitor(row.external_id, row.locale)
        self._cache[digest] = visitor
        if utcnow() - _aware(row.last_seen) > SEEN_EVERY:  # seen again: not idle
            stmt = update(WebVisitor).where(WebVisitor.token_hash == digest).values(last_seen=utcnow())
            await self.db.run_write(lambda session: session.execute(stmt))
        return visitor

    async def purge(self, idle_days: int) -> int:
        """Forget visitors idle for ``idle_days`` (their conversations go with the same rule)."""
        if self.db is None:
            return 0
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
