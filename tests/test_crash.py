"""The bot process (``python -m bot run``, polling on SQLite) killed with SIGKILL at several points
of a lead submission: afterwards the lead is saved once, the staff alert is delivered (once, or
again marked as a possible repeat when it may have arrived), and the prospect sees the reference."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from .conftest import FLOWS, ROOT
from .fakebot import TOKEN, FakeBotAPI, Prospect
from .harness import STAFF_CHAT, BotRunner, make_settings
from .test_leads_e2e import fill_form, until

REPEAT = "可能重复"


def _env(api: FakeBotAPI, db_file: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BOT_", "DATABASE_", "REDIS_", "WEB"))}
    env.update(
        BOT_TOKEN=TOKEN,
        TELEGRAM_API_BASE=api.base_url,
        DATABASE_URL=f"sqlite+aiosqlite:///{db_file}",
        FLOWS_DIR=str(FLOWS),
        STAFF_CHAT_ID=str(STAFF_CHAT),
        WEB_ENABLED="false",
        WATCH_FLOWS="false",
        WORKING_HOURS="always",
        # Conversation changes written behind only after a minute: a kill loses them (the worst case).
        STATE_FLUSH_MS="60000",
        RATE_PER_CHAT="1000",
        RATE_PER_GROUP="1000",
        RATE_GLOBAL="10000",
        FLOOD_RATE="1000",
        LOG_LEVEL="INFO",
    )
    return env


class Killable:
    """``python -m bot run`` in a process of its own, to be killed with SIGKILL."""

    def __init__(self, api: FakeBotAPI, db_file: Path) -> None:
        self.api, self.db_file = api, db_file
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        polls = len([c for c in self.api.calls if c.method == "getUpdates"])
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot", "run", cwd=ROOT, env=_env(self.api, self.db_file),
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
        await until(lambda: len([c for c in self.api.calls if c.method == "getUpdates"]) > polls, 30)

    async def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        await self.proc.wait()

    def rows(self, sql: str) -> list[tuple[Any, ...]]:
        """Read the bot's database file from outside, as it is on disk (WAL included)."""
        with sqlite3.connect(self.db_file) as conn:
            return conn.execute(sql).fetchall()


@pytest.fixture
async def killable(api: FakeBotAPI, tmp_path: Path) -> AsyncIterator[Killable]:
    bot = Killable(api, tmp_path / "bot.db")
    yield bot
    if bot.proc is not None and bot.proc.returncode is None:
        await bot.kill()


def hang(api: FakeBotAPI, chat_id: int, *, after: bool) -> Callable[[], int]:
    """From now on ``sendMessage`` to ``chat_id`` never answers: carried out first (``after``: it
    reached the chat) or not at all. Returns how many such requests arrived."""
    original = api.m_sendMessage
    arrived = [0]

    async def held(p: dict[str, Any]) -> Any:
        if str(p.get("chat_id")) != str(chat_id):
            return await original(p)
        arrived[0] += 1
        if after:
            await original(p)
        await asyncio.Event().wait()  # never answered

    api.m_sendMessage = held  # type: ignore[method-assign]

    def count() -> int:
        return arrived[0]

    def restore() -> None:
        api.m_sendMessage = original  # type: ignore[method-assign]

    count.restore = restore  # type: ignore[attr-defined]
    return count


async def at_summary(api: FakeBotAPI, tmp_path: Path, user: int) -> Prospect:
    """A prospect at the lead form's summary (the conversation written at a clean stop)."""
    settings = make_settings(api, tmp_path)
    runner = await BotRunner(api, settings).start()
    p = Prospect(api, user, language_code="zh")
    try:
        await p.send("/start")
        await p.press("ISO 27001")
        await fill_form(p)
        assert "确认提交" in " ".join(p.menu.labels)
    finally:
        await runner.stop()
    return p


def alerts(api: FakeBotAPI) -> list[str]:
    return [m.visible for m in api.chat_messages(STAFF_CHAT) if "L000001" in m.visible]


async def test_killed_after_the_lead_is_saved_before_the_prospect_is_answered(
    api: FakeBotAPI, tmp_path: Path, killable: Killable
) -> None:
    p = await at_summary(api, tmp_path, 8101)
    summary = p.menu
    await killable.start()
    to_prospect = hang(api, p.chat_id, after=False)
    await p.press("确认提交", summary, wait=False)
    await until(lambda: to_prospect() >= 1, 30)  # the lead is saved; its reply is on its way
    await until(lambda: killable.rows("SELECT count(*) FROM outbox WHERE sent_at IS NOT NULL") == [(1,)], 30)
    await killable.kill()
    to_prospect.restore()  # type: ignore[attr-defined]
    assert not [m for m in p.messages if "L000001" in m.visible]  # the prospect saw nothing yet

    runner = await BotRunner(api, make_settings(api, tmp_path)).start()
    try:
        # The old summary's button submits nothing more: it shows where the prospect is, and the
        # reference owed to them.
        replies = await p.press("确认提交", summary)
        text = p.text_since(replies)
        assert "L000001" in text and "已提交" in text
        assert runner.db is not None
        assert killable.rows("SELECT count(*) FROM leads") == [(1,)]
        assert killable.rows("SELECT count(*) FROM submissions") == [(1,)]
        await p.send("/help")
        assert len(alerts(api)) == 1 and "更新" not in alerts(api)[0]  # no "updated lead" alert
        assert len([m for m in p.messages if "L000001" in m.visible]) == 1  # told once
    finally:
        await runner.stop()


async def test_killed_once_the_alert_reached_the_group_before_it_was_marked_sent(
    api: FakeBotAPI, tmp_path: Path, killable: Killable
) -> None:
    p = await at_summary(api, tmp_path, 8102)
    await killable.start()
    to_staff = hang(api, STAFF_CHAT, after=True)
    [done, reference] = await _submit(p)
    assert "已提交" in done.visible
    assert "L000001" in reference.visible
    await until(lambda: to_staff() >= 1, 30)
    await killable.kill()
    to_staff.restore()  # type: ignore[attr-defined]
    assert len(alerts(api)) == 1
    assert killable.rows("SELECT sent_at IS NULL, sending_at IS NOT NULL FROM outbox") == [(1, 1)]

    runner = await BotRunner(api, make_settings(api, tmp_path)).start()
    try:
        # Sent again at once (not when the two-minute lease ends), marked: it may be a repeat.
        await until(lambda: len(alerts(api)) == 2, 10)
        first, second = alerts(api)
        assert REPEAT not in first and REPEAT in second
        await until(lambda: killable.rows("SELECT count(*) FROM outbox WHERE sent_at IS NULL") == [(0,)])
        assert killable.rows("SELECT count(*) FROM leads") == [(1,)]
    finally:
        await runner.stop()
    assert len(alerts(api)) == 2


async def test_killed_after_the_alert_was_claimed_before_it_was_sent(
    api: FakeBotAPI, tmp_path: Path, killable: Killable
) -> None:
    p = await at_summary(api, tmp_path, 8103)
    await killable.start()
    to_staff = hang(api, STAFF_CHAT, after=False)
    await _submit(p)
    await until(lambda: to_staff() >= 1, 30)  # claimed, and on its way: it never arrives
    await killable.kill()
    to_staff.restore()  # type: ignore[attr-defined]
    assert alerts(api) == []
    [(lease_end,)] = killable.rows("SELECT next_attempt_at FROM outbox")
    assert lease_end is not None

    runner = await BotRunner(api, make_settings(api, tmp_path)).start()
    try:
        await until(lambda: len(alerts(api)) == 1, 10)  # soon after the restart, not in 2 minutes
        await until(lambda: killable.rows("SELECT count(*) FROM outbox WHERE sent_at IS NULL") == [(0,)])
    finally:
        await runner.stop()
    assert len(alerts(api)) == 1


async def _submit(p: Prospect) -> list[Any]:
    """Press "submit" on the summary, the bot being another process: until both replies are out."""
    before = len(p.messages)
    await p.press("确认提交", wait=False)
    await until(lambda: len(p.messages) >= before + 2, 30)
    return p.messages[before : before + 2]
