"""Per-chat locks in one process, so one chat's updates are handled one at a time, in order.

aiogram's SimpleEventIsolation keeps a lock for every chat it has ever seen; these are dropped as
soon as nobody holds or waits for them. (Several replicas use aiogram's RedisEventIsolation.)
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Hashable
from contextlib import asynccontextmanager

from aiogram.fsm.storage.base import BaseEventIsolation, StorageKey


class ChatLocks(BaseEventIsolation):
    def __init__(self) -> None:
        self._locks: dict[Hashable, tuple[asyncio.Lock, list[int]]] = {}

    def __len__(self) -> int:
        return len(self._locks)

    @asynccontextmanager
    async def lock(self, key: StorageKey) -> AsyncGenerator[None, None]:
        entry = self._locks.get(key)
        if entry is None:
            entry = self._locks[key] = (asyncio.Lock(), [0])
        lock, users = entry
        users[0] += 1
        try:
            async with lock:
                yield
        finally:
            users[0] -= 1
            if users[0] == 0:
                del self._locks[key]

    async def close(self) -> None:
        self._locks.clear()
