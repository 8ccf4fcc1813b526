"""Updates per second of the full stack against bare aiogram echo, side by side in one run.

Both dispatchers are fed the same way (``Dispatcher.feed_update``, updates parsed and bound to
the bot as polling does) through the same in-process fake session, which serialises each request
and answers it without a network: as aiogram's own session would for bare echo, as the bot's
session (``bot/telegram/session.py``, cheaper) does for the full stack, whose gains are its own.
The full stack is the real dispatcher from ``build_dispatcher``: conversation middleware with
per-chat locks, the feature routers, the engine, rendering, keyboards and the conversation store
(memory, or SQLite with its write-behind flush counted inside the timing); and the real bot from
``build_bot`` (its request middlewares and default properties), on the fake session. Each segment
is a set of new prospects walking a real conversation; the segments of echo, memory and SQLite
alternate, and the ratio reported is the median of the per-round ratios, so a noisy neighbour on
the machine skews little.

Two workloads: ``buttons`` (the prospect taps inline buttons: each tap also costs an
answerCallbackQuery request, which an echo of text never makes) and ``typed`` (the prospect types
the same choices as text, the same kind of update echo gets).

Targets: full stack / echo >= 0.8 with state in memory, >= 0.5 with state persisted in SQLite.
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import statistics
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from aiogram import Bot, Dispatcher, Router  # noqa: E402
from aiogram.client.session.aiohttp import AiohttpSession  # noqa: E402
from aiogram.methods import TelegramMethod  # noqa: E402
from aiogram.methods.base import TelegramType  # noqa: E402
from aiogram.types import Message, Update  # noqa: E402
from sqlalchemy import text  # noqa: E402

from bot.analytics import Analytics  # noqa: E402
from bot.content import load_content  # noqa: E402
from bot.db import create_database, upgrade  # noqa: E402
from bot.engine.engine import Engine  # noqa: E402
from bot.settings import Settings  # noqa: E402
from bot.storage import MemoryStore, SqlStore  # noqa: E402
from bot.telegram.app import build_bot, build_dispatcher  # noqa: E402
from bot.telegram.session import BotSession  # noqa: E402

TOKEN = "123456789:BENCH-token"
CHATS = int(os.environ.get("BENCH_CHATS", "40"))
"""New prospects per segment."""
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "15"))


class FakeSession(BotSession):
    """Serialises each request as the real session does, then answers from memory: the bot's
    session (``BotSession.encode``) for the full stack, aiogram's own (``AiohttpSession``'s form
    data, encoded as aiohttp encodes it to send) for bare echo with ``stock=True``."""

    def __init__(self, *, stock: bool = False) -> None:
        super().__init__()
        self.stock = stock
        self.sent: dict[int, dict[str, Any]] = {}
        self._ids = 0

    async def make_request(
        self,
        bot: Bot,
        method: TelegramMethod[TelegramType],
        timeout: int | None = None,  # noqa: ASYNC109 - aiogram's signature
    ) -> TelegramType:
        if self.stock:
            AiohttpSession.build_form_data(self, bot, method)()
        else:
            self.encode(bot, method)
        name = type(method).__name__
        if name in {"SendMessage", "EditMessageText"}:
            self._ids += 1
            chat_id = int(getattr(method, "chat_id", 0) or 0)
            message_id = getattr(method, "message_id", None) or self._ids
            self.sent[chat_id] = {"message_id": message_id, "markup": getattr(method, "reply_markup", None)}
            result = Message.model_validate(
                {
                    "message_id": message_id,
                    "date": 0,
                    "chat": {"id": chat_id, "type": "private"},
                    "text": getattr(method, "text", ""),
                }
            )
            return result  # type: ignore[return-value]
        return True  # type: ignore[return-value]

    async def close(self) -> None:
        return None


def _user(chat_id: int) -> dict[str, Any]:
    return {"id": chat_id, "is_bot": False, "first_name": "P", "language_code": "zh-hans"}


def text_update(uid: int, chat_id: int, body: str) -> dict[str, Any]:
    msg: dict[str, Any] = {
        "message_id": uid,
        "date": 0,
        "chat": {"id": chat_id, "type": "private"},
        "from": _user(chat_id),
        "text": body,
    }
    if body.startswith("/"):
        msg["entities"] = [{"type": "bot_command", "offset": 0, "length": len(body.split()[0])}]
    return {"update_id": uid, "message": msg}


def press_update(uid: int, chat_id: int, data: str, message_id: int) -> dict[str, Any]:
    message = {"message_id": message_id, "date": 0, "chat": {"id": chat_id, "type": "private"}, "text": "."}
    return {
        "update_id": uid,
        "callback_query": {
            "id": str(uid),
            "from": _user(chat_id),
            "chat_instance": "x",
            "data": data,
            "message": message,
        },
    }


# The conversation: a scheme, the whole self-check, paging the materials, a stray question, more.
SCRIPT: list[tuple[str, str]] = [
    ("text", "/start"),
    ("press", "ISO/IEC 20000"),
    ("press", "申请条件自测"),
    *[("press", "是")] * 6,
    ("press", "所需材料"),
    ("press", "下一页"),
    ("press", "认证流程"),
    ("text", "这个要多久"),
    ("press", "有效期与年审"),
    ("press", "证书真伪查询"),
    ("text", "/menu"),
]


async def record_buttons(settings: Settings, engine: Engine) -> list[dict[str, Any]]:
    """Play the script once and record its updates (the button payloads are deterministic)."""
    session = FakeSession()
    bot = Bot(TOKEN, session=session)
    dp = build_dispatcher(settings, engine=engine, store=MemoryStore())
    updates = []
    for uid, (kind, value) in enumerate(SCRIPT, 1):
        if kind == "text":
            raw = text_update(uid, 1, value)
        else:
            sent = session.sent[1]
            button = next(b for row in sent["markup"].inline_keyboard for b in row if value in b.text)
            raw = press_update(uid, 1, button.callback_data, sent["message_id"])
        updates.append(raw)
        await dp.feed_update(bot, Update.model_validate(raw, context={"bot": bot}))
    return updates


def typed_script() -> list[dict[str, Any]]:
    return [text_update(uid, 1, value) for uid, (_, value) in enumerate(SCRIPT, 1)]


class Segments:
    """Hands out updates for new prospects each time, bound to a bot."""

    def __init__(self, script: list[dict[str, Any]]) -> None:
        self.script = script
        self.next_chat = 100_000
        self.next_update = 1

    def make(self, bot: Bot) -> list[Update]:
        chats = range(self.next_chat, self.next_chat + CHATS)
        self.next_chat += CHATS
        out = []
        for step in self.script:  # interleaved across prospects, as real traffic is
            for chat_id in chats:
                uid = self.next_update
                self.next_update += 1
                if "message" in step:
                    raw = text_update(uid, chat_id, step["message"]["text"])
                else:
                    q = step["callback_query"]
                    raw = press_update(uid, chat_id, q["data"], q["message"]["message_id"])
                out.append(Update.model_validate(raw, context={"bot": bot}))
        return out


def echo_dispatcher() -> Dispatcher:
    router = Router()

    @router.message()
    async def echo(message: Message) -> None:
        await message.answer(message.text or "")

    dp = Dispatcher()
    dp.include_router(router)
    return dp


async def timed(
    dp: Dispatcher, bot: Bot, updates: list[Update], after: Callable[[], Any] | None = None
) -> float:
    """Seconds per update, including the store's flush when ``after`` is given."""
    gc.collect()
    t0 = time.perf_counter()
    for update in updates:
        await dp.feed_update(bot, update)
    if after is not None:
        await after()
    return (time.perf_counter() - t0) / len(updates)


async def workload(
    name: str, script: list[dict[str, Any]], settings: Settings, engine: Engine, tmp: Path
) -> None:
    url = f"sqlite+aiosqlite:///{tmp / f'{name}.db'}"
    await upgrade(url)
    db = create_database(url)
    sql = SqlStore(db)
    memory = MemoryStore()
    # The full stack's bot is production's (build_bot: the retry and sending-limit middlewares, HTML
    # and no link previews by default) on the in-process session; echo's is a plain Bot.
    bots = {"echo": Bot(TOKEN, session=FakeSession(stock=True))}
    for kind in ("memory", "sqlite"):
        bots[kind] = build_bot(settings, session=FakeSession())
    dps = {
        "echo": echo_dispatcher(),
        "memory": build_dispatcher(settings, engine=engine, store=memory),
        "sqlite": build_dispatcher(settings, engine=engine, store=sql, analytics=Analytics(db)),
    }
    segments = Segments(script)
    echo_text = [
        text_update(0, 0, str(step["message"]["text"]) if "message" in step else "证书有效期多久")
        for step in script
    ]
    echo_segments = Segments(echo_text)
    per: dict[str, list[float]] = {k: [] for k in dps}
    order = ["echo", "memory", "sqlite"]
    for r in range(ROUNDS + 1):
        for kind in order[r % 3 :] + order[: r % 3]:  # rotate, so no kind always runs first
            bot = bots[kind]
            updates = (echo_segments if kind == "echo" else segments).make(bot)
            seconds = await timed(dps[kind], bot, updates, sql.flush if kind == "sqlite" else None)
            if r > 0:  # round 0 warms up
                per[kind].append(seconds)
    await sql.close()
    async with db.engine.connect() as conn:
        rows = (await conn.execute(text("SELECT count(*) FROM conversations"))).scalar_one()
    await db.dispose()
    expected = (ROUNDS + 1) * CHATS
    assert rows == expected, (rows, expected)  # every conversation reached the database
    ratio = {k: statistics.median(e / f for e, f in zip(per["echo"], per[k], strict=True)) for k in per}
    best = {k: 1 / min(v) for k, v in per.items()}
    print(f"\n{name}: {len(script)} updates per prospect, {CHATS} prospects x {ROUNDS} rounds per stack")
    print(f"  bare aiogram echo:         {best['echo']:8,.0f} updates/s (best round)")
    print(f"  full stack, memory state:  {best['memory']:8,.0f} updates/s")
    print(f"  full stack, SQLite state:  {best['sqlite']:8,.0f} updates/s")
    print(f"  ratio memory / echo:  {ratio['memory']:.2f}  (median of rounds; target >= 0.8)")
    print(f"  ratio SQLite / echo:  {ratio['sqlite']:.2f}  (median of rounds; target >= 0.5)")


async def footprint(settings: Settings, engine: Engine, script: list[dict[str, Any]], tmp: Path) -> None:
    """Memory per 10,000 conversations kept in memory, and SQLite file size per 10,000."""
    store = MemoryStore()
    dp = build_dispatcher(settings, engine=engine, store=store)
    bot = Bot(TOKEN, session=FakeSession())
    updates = Segments(script[:8]).make(bot)
    first = updates[0].message.chat.id if updates[0].message else 0
    for update in updates:  # one prospect half-way through the self-check
        chat = update.message.chat if update.message else update.callback_query.message.chat  # type: ignore[union-attr]
        if chat.id == first:
            await dp.feed_update(bot, update)
    record = next(iter(store.records.values()))
    encoded = json.dumps(record.to_dict())
    gc.collect()
    tracemalloc.start()
    from bot.storage import Record

    kept = {str(i): Record.from_dict(json.loads(encoded)) for i in range(10_000)}
    used, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    url = f"sqlite+aiosqlite:///{tmp / 'size.db'}"
    await upgrade(url)
    db = create_database(url)
    sql = SqlStore(db)
    for key, value in kept.items():
        await sql.save(key, value)
    await sql.close()
    async with db.engine.connect() as conn:
        await conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    await db.dispose()
    size = (tmp / "size.db").stat().st_size
    print(f"\none conversation record: {len(encoded)} bytes of JSON")
    print(f"memory per 10,000 conversations (in-memory store or cache): {used / 2**20:.1f} MiB")
    print(f"SQLite file per 10,000 conversations: {size / 2**20:.1f} MiB")


async def main() -> None:
    tmp = Path(tempfile.mkdtemp(prefix="bench-"))
    # Each simulated prospect taps as fast as the machine allows: the flood gate and the sending
    # limits (still in the path, their cost counted) must not pace them as they would a person.
    unpaced = {"flood_rate": 1e9, "rate_per_chat": 1e9, "rate_per_group": 1e9, "rate_global": 1e9}
    settings = Settings(_env_file=None, bot_token=TOKEN, **unpaced)  # type: ignore[call-arg]
    engine = Engine(load_content(ROOT / "flows"))
    buttons = await record_buttons(settings, engine)
    await workload("buttons", buttons, settings, engine, tmp)
    await workload("typed", typed_script(), settings, engine, tmp)
    await footprint(settings, engine, buttons, tmp)


if __name__ == "__main__":
    asyncio.run(main())
