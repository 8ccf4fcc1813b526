"""Per-conversation locks, keyed by the conversation's key (``tg:123``, ``web:…``): one
conversation's turns run one at a time and in order; other conversations are not held up.

``KeyLocks`` holds them in this process (dropped as soon as nobody holds or waits for them);
``RedisLocks`` shares them between replicas.
"""

from __future__ import annotations

import asyncio
from contextlib import AbstractAsyncContextManager
from types import TracebackType
from typing import Protocol

from redis.asyncio import Redis


class Locks(Protocol):
    def lock(self, key: str) -> AbstractAsyncContextManager[None]:
        """Held while one turn of the conversation ``key`` (or a change from staff) is handled."""
        ...

    async def close(self) -> None: ...


class _Held:
    """The lock of one conversation while a turn of it is handled (an async context manager)."""

    __slots__ = ("key", "lock", "owner", "users")

    def __init__(self, owner: KeyLocks, key: str) -> None:
        self.owner = owner
        self.key = key
        self.lock = asyncio.Lock()
        self.users = 0

    async def __aenter__(self) -> None:
        self.users += 1
        try:
            await self.lock.acquire()
        except BaseException:
            self._release_user()
            raise

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.lock.release()
        self._release_user()

    def _release_user(self) -> None:
        self.users -= 1
        if self.users == 0:
            del self.owner.locks[self.key]


class KeyLocks:
    """In one process. (aiogram's SimpleEventIsolation keeps a lock for every chat it has seen.)"""

    def __init__(self) -> None:
        self.locks: dict[str, _Held] = {}

    def __len__(self) -> int:
        return len(self.locks)

    def lock(self, key: str) -> _Held:
        held = self.locks.get(key)
        if held is None:
            held = self.locks[key] = _Held(self, key)
        return held

    async def close(self) -> None:
        self.locks.clear()


class _RedisHeld:
    __slots__ = ("lock",)

    def __init__(self, lock: object) -> None:
        self.lock = lock

    async def __aenter__(self) -> None:
        await self.lock.__aenter__()  # type: ignore[attr-defined]

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.lock.__aexit__(exc_type, exc, tb)  # type: ignore[attr-defined]


class RedisLocks:
    """Shared by every replica: a lock is released after ``timeout`` seconds if its holder died,
    and a waiter gives up (with an error) after ``timeout + 5``."""

    def __init__(self, redis: Redis, *, prefix: str = "certbot", timeout: float = 30.0) -> None:
        self.redis = redis
        self.prefix = prefix
        self.timeout = timeout

    def lock(self, key: str) -> _RedisHeld:
        return _RedisHeld(
            self.redis.lock(
                f"{self.prefix}:lock:{key}", timeout=self.timeout, blocking_timeout=self.timeout + 5
            )
        )

    async def close(self) -> None:
        return None  # the connection belongs to whoever made it
