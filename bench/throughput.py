"""Updates per second of the full stack against bare aiogram echo, side by side in one run.

Both dispatchers are fed the same way (``Dispatcher.feed_update``) through the same in-process
fake session, which serialises each request as aiogram's aiohttp session does and answers it
without a network. The full stack is the real dispatcher from ``build_dispatcher``: middleware,
per-chat isolation, engine, rendering, keyboards and the conversation store. It replays real
conversations (menu, scheme, self-check, paging, typed text) across many chats.

Targets: full stack / echo >= 0.8 with state in memory, >= 0.5 with state persisted in SQLite.
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from aiogram import Bot, Dispatcher, Router  # noqa: E402
from aiogram.methods import TelegramMethod  # noqa: E402
from aiogram.methods.base import TelegramType  # noqa: E402
from aiogram.types import Message, Update  # noqa: E402
from sqlalchemy import text  # noqa: E402

from bot.content import load_content  # noqa: E402
from bot.db import Database, create_database, upgrade  # noqa: E402
from bot.engine.engine import Engine  # noqa: E402
from bot.settings import Settings  # noqa: E402
from bot.storage import ConversationStore, MemoryStore, SqlStore  # noqa: E402
from bot.telegram.app import build_dispatcher  # noqa: E402
from bot.telegram.session import BotSession  # noqa: E402

TOKEN = "123456789:BENCH-token"
CHATS = int(os.environ.get("BENCH_CHATS", "300"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))


class FakeSession(BotSession):
    """Serialises each request as the bot's real session does, then answers from memory."""

    def __init__(self) -> None:
        super().__init__()
        self.requests = 0
        self.sent: dict[int, dict[str, Any]] = {}
        self._ids = 0

    async def make_request(
        self,
        bot: Bot,
        method: TelegramMethod[TelegramType],
        timeout: int | None = None,  # noqa: ASYNC109 - aiogram's signature
    ) -> TelegramType:
        self.build_form_data(bot, method)
        self.requests += 1
        name = type(method).__name__
        if name in {"SendMessage", "EditMessageText"}:
            self._ids += 1
            chat_id = int(getattr(method, "chat_id", 0) or 0)
            markup = getattr(method, "reply_markup", None)
            message_id = getattr(method, "message_id", None) or self._ids
            self.sent[chat_id] = {"message_id": message_id, "markup": markup}
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


def text_update(uid: int, chat_id: int, text: str) -> dict[str, Any]:
    msg: dict[str, Any] = {
        "message_id": uid,
        "date": 0,
        "chat": {"id": chat_id, "type": "private"},
        "from": _user(chat_id),
        "text": text,
    }
    if text.startswith("/"):
        msg["entities"] = [{"type": "bot_command", "offset": 0, "length": len(text.split()[0])}]
    return {"update_id": uid, "message": msg}


def press_update(uid: int, chat_id: int, data: str, message_id: int) -> dict[str, Any]:
    return {
        "update_id": uid,
        "callback_query": {
            "id": str(uid),
            "from": _user(chat_id),
            "chat_instance": "x",
            "data": data,
            "message": {
                "message_id": message_id,
                "date": 0,
                "chat": {"id": chat_id, "type": "private"},
                "text": ".",
            },
        },
    }


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


async def record_script(settings: Settings, engine: Engine) -> list[dict[str, Any]]:
    """Play the script once for chat 1 and record the updates (payloads are deterministic)."""
    session = FakeSession()
    bot = Bot(TOKEN, session=session)
    dp = build_dispatcher(settings, engine=engine, store=MemoryStore())
    updates = []
    for uid, (kind, value) in enumerate(SCRIPT, 1):
        if kind == "text":
            raw = text_update(uid, 1, value)
        else:
            sent = session.sent[1]
            buttons = [b for row in sent["markup"].inline_keyboard for b in row]
            button = next(b for b in buttons if value in b.text)
            raw = press_update(uid, 1, button.callback_data, sent["message_id"])
        updates.append(raw)
        await dp.feed_update(bot, Update.model_validate(raw))
    return updates


def fan_out(script: list[dict[str, Any]], chats: int, bot: Bot) -> list[Update]:
    """The same conversation in many chats, interleaved round-robin as real traffic would be."""
    out = []
    uid = 0
    for step in script:
        for chat in range(chats):
            uid += 1
            chat_id = 10_000 + chat
            if "message" in step:
                raw = text_update(uid, chat_id, step["message"]["text"])
            else:
                q = step["callback_query"]
                raw = press_update(uid, chat_id, q["data"], q["message"]["message_id"])
            out.append(Update.model_validate(raw, context={"bot": bot}))
    return out


async def feed(
    dp: Dispatcher, bot: Bot, updates: list[Update], store: ConversationStore | None = None
) -> float:
    """Updates per second, counting until the store has written everything (its close flushes)."""
    gc.collect()
    t0 = time.perf_counter()
    for update in updates:
        await dp.feed_update(bot, update)
    if store is not None:
        await store.close()
    return len(updates) / (time.perf_counter() - t0)


def echo_dispatcher() -> Dispatcher:
    router = Router()

    @router.message()
    async def echo(message: Message) -> None:
        await message.answer(message.text or "")

    dp = Dispatcher()
    dp.include_router(router)
    return dp


async def clear(db: Database) -> None:
    async with db.engine.begin() as conn:
        await conn.execute(text("DELETE FROM conversations"))


async def footprint(settings: Settings, engine: Engine, script: list[dict[str, Any]], tmp: Path) -> None:
    """Memory per 10,000 conversations kept in memory, and SQLite file size per 10,000."""
    store = MemoryStore()
    dp = build_dispatcher(settings, engine=engine, store=store)
    bot = Bot(TOKEN, session=FakeSession())
    await feed(dp, bot, fan_out(script[:8], 1, bot))
    record = next(iter(store.records.values()))  # a prospect half-way through the self-check
    encoded = json.dumps(record)
    gc.collect()
    tracemalloc.start()
    kept = {str(10_000 + i): json.loads(encoded) for i in range(10_000)}
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
    print(f"one conversation record: {len(encoded)} bytes of JSON")
    print(f"memory per 10,000 conversations (in-memory store): {used / 2**20:.1f} MiB")
    print(f"SQLite file per 10,000 conversations: {size / 2**20:.1f} MiB")


async def main() -> None:
    tmp = Path(tempfile.mkdtemp(prefix="bench-"))
    settings = Settings(_env_file=None, bot_token=TOKEN, database_url=f"sqlite+aiosqlite:///{tmp / 'bot.db'}")  # type: ignore[call-arg]
    content = load_content(ROOT / "flows")
    engine = Engine(content)
    script = await record_script(settings, engine)
    n = CHATS * len(script)
    print(f"{n} updates per run: {CHATS} chats x {len(script)} steps; best of {ROUNDS} rounds")

    await upgrade(settings.database_url)
    db = create_database(settings.database_url)
    results: dict[str, list[float]] = {"echo": [], "memory": [], "sqlite": []}
    for _ in range(ROUNDS):  # interleaved, so drift on a shared machine hits all three alike
        bot = Bot(TOKEN, session=FakeSession())
        echo_updates = [
            Update.model_validate(text_update(i, 10_000 + i % CHATS, "证书有效期多久"), context={"bot": bot})
            for i in range(n)
        ]
        results["echo"].append(await feed(echo_dispatcher(), bot, echo_updates))
        for name in ("memory", "sqlite"):
            await clear(db)
            store: ConversationStore = MemoryStore() if name == "memory" else SqlStore(db)
            dp = build_dispatcher(settings, engine=engine, store=store)
            bot = Bot(TOKEN, session=FakeSession())
            results[name].append(await feed(dp, bot, fan_out(script, CHATS, bot), store))
    async with db.engine.connect() as conn:
        rows = (await conn.execute(text("SELECT count(*) FROM conversations"))).scalar_one()
    assert rows == CHATS, rows  # every conversation was written
    await db.dispose()
    best = {k: max(v) for k, v in results.items()}
    print(f"bare aiogram echo:          {best['echo']:8,.0f} updates/s")
    print(f"full stack, memory state:   {best['memory']:8,.0f} updates/s")
    print(f"full stack, SQLite state:   {best['sqlite']:8,.0f} updates/s")
    print(f"ratio memory / echo:  {best['memory'] / best['echo']:.2f}   (target >= 0.8)")
    print(f"ratio SQLite / echo:  {best['sqlite'] / best['echo']:.2f}   (target >= 0.5)")
    await footprint(settings, engine, script, tmp)


if __name__ == "__main__":
    asyncio.run(main())
