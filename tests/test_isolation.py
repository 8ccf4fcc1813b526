"""Per-chat locks: one chat's updates run one at a time and in order; other chats are not held up."""

from __future__ import annotations

import asyncio

from bot.conversation.locks import KeyLocks


def key(chat: int) -> str:
    return f"tg:{chat}"


async def test_one_chat_in_order_and_locks_are_freed() -> None:
    locks = KeyLocks()
    order: list[str] = []

    async def job(chat: int, name: str, pause: float) -> None:
        async with locks.lock(key(chat)):
            order.append(f"{name} start")
            await asyncio.sleep(pause)
            order.append(f"{name} end")

    await asyncio.gather(job(1, "a", 0.05), job(1, "b", 0), job(2, "c", 0))
    assert order.index("a end") < order.index("b start")  # same chat: b waits for a
    assert order.index("c end") < order.index("a end")  # another chat does not wait
    assert len(locks) == 0  # nothing left behind


async def test_a_cancelled_waiter_frees_its_place() -> None:
    locks = KeyLocks()
    async with locks.lock(key(1)):
        waiter = asyncio.create_task(_enter(locks))
        await asyncio.sleep(0.01)
        waiter.cancel()
        await asyncio.gather(waiter, return_exceptions=True)
    assert len(locks) == 0


async def _enter(locks: KeyLocks) -> None:
    async with locks.lock(key(1)):
        pass
