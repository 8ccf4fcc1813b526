"""Per-chat locks in one process, so one chat's updates are handled one at a time, in order.

aiogram's SimpleEventIsolation keeps a lock for every chat it has ever seen; these are dropped as
soon as nobody holds or waits for them. (Several replicas use aiogram's RedisEventIsolation.)
"""

from __future__ import annotations

import asyncio
from collections.abc import Hashable
from types import TracebackType
from typing import Any

from aiogram.fsm.storage.base import BaseEventIsolation, StorageKey


class _Held:
    """The lock of one chat while an update of it is handled (an async context manager)."""

    __slots__ = ("key", "lock", "owner", "users")

    def __init__(self, owner: ChatLocks, key: Hashable) -> None:
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


class ChatLocks(BaseEventIsolation):
    def __init__(self) -> None:
        self.locks: dict[Hashable, _Held] = {}

    def __len__(self) -> int:
        return len(self.locks)

    def lock(self, key: StorageKey) -> Any:  # an async context manager, as aiogram's are
        held = self.locks.get(key)
        if held is None:
            held = self.locks[key] = _Held(self, key)
        return held

    async def close(self) -> None:
        self.locks.clear()
