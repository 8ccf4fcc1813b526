"""/forget forgets: after it, no table holds anything of the prospect (every column of every row
is searched for their values), their live chat is closed (a staff reply no longer reaches them),
the staff alert is emptied, a redelivered old update is not handled again, and on SQLite the
database file itself (and its WAL) no longer contains the values."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import inspect, select, text

from bot.db.models import Conversation, Lead, LiveChat

from .conftest import _drop_postgres_database, _postgres_database
from .fakebot import FakeBotAPI, Prospect
from .harness import STAFF_CHAT, BotRunner, make_settings
from .test_handoff import group_messages
from .test_leads_e2e import until

USER = 8801
COMPANY = "紫藤湾ZEBRACO有限公司"
NAME = "钱多多"
PHONE = "13912345678"
E164 = "+8613912345678"
EMAIL = "qian.duoduo@zebra-example.cn"
CITY = "ZEBRATOWN"
NOTE = "请找钱多多NOTEMARK"
USERNAME = "qianduoduo_zebra"
QUESTION = f"{NAME}的{COMPANY}能去火星做审核吗？"
MEMBER = 901
VALUES = (COMPANY, NAME, PHONE, E164, EMAIL, CITY, "NOTEMARK", USERNAME, "ZEBRACO")


@pytest.fixture(params=["sqlite", "postgresql"])
async def runner(request: pytest.FixtureRequest, api: FakeBotAPI, tmp_path: Path) -> AsyncIterator[BotRunner]:
    pg_name = None
    overrides = {}
    if request.param == "postgresql":
        from .conftest import POSTGRES_URL

        pg_name = await _postgres_database()
        overrides["database_url"] = POSTGRES_URL.rsplit("/", 1)[0] + "/" + pg_name
    bot = await BotRunner(api, make_settings(api, tmp_path, **overrides)).start()
    yield bot
    await bot.stop()
    if pg_name is not None:
        await _drop_postgres_database(pg_name)


async def leave_everything(api: FakeBotAPI, runner: BotRunner, p: Prospect) -> None:
    """A prospect who leaves a trace everywhere: an unanswered question naming them, a lead
    with an alert, a staff note about it, a live chat with a staff reply."""
    await p.send("/start")
    await p.send(QUESTION)
    await p.press("ISO 9001")
    await p.press("留下联系方式")
    await p.press("同意并继续")
    await p.send(COMPANY)
    await p.send(NAME)
    await p.send(PHONE)
    await p.send(EMAIL)
    await p.send(CITY)
    await p.send("80")
    await p.send("2")
    await p.press("选好了")
    await p.press("3–6 个月")
    await p.send(NOTE)
    await p.press("确认提交")
    assert any("L000001" in m.visible for m in p.messages)
    await until(lambda: any("L000001" in m.visible for m in api.chat_messages(STAFF_CHAT)))
    assert runner.leads is not None
    await runner.leads.add_note(1, f"已联系{NAME}，电话{PHONE}", actor="web:alice")
    await runner.leads.set_status(1, "contacted", actor="web:alice")
    await p.send("/start")
    await p.press("ISO/IEC 20000")
    await p.press("咨询顾问")
    await p.press("现在和顾问聊")
    await p.send(f"我是{NAME}，想尽快办理")
    assert runner.analytics is not None
    await runner.analytics.flush()


async def every_value(runner: BotRunner) -> dict[str, list[tuple[str, str]]]:
    """Every row of every table as text: {table: [(column, value), ...]}."""
    assert runner.db is not None
    out: dict[str, list[tuple[str, str]]] = {}
    async with runner.db.engine.connect() as conn:
        tables = await conn.run_sync(lambda sync: inspect(sync).get_table_names())
        for table in tables:
            if table.startswith("leads_search"):  # SQLite's search index: read through leads
                continue
            rows = (await conn.execute(text(f'SELECT * FROM "{table}"'))).mappings().all()
            out[table] = [(k, str(v)) for row in rows for k, v in row.items() if v is not None]
    return out


async def test_forget_erases_the_prospect_everywhere(api: FakeBotAPI, runner: BotRunner) -> None:
    p = Prospect(api, USER, language_code="zh", username=USERNAME, first_name=NAME)
    await leave_everything(api, runner, p)
    before = await every_value(runner)
    assert any(NAME in v for _, v in before["lead_events"]) and any(NAME in v for _, v in before["leads"])
    assert any(str(USER) in v for _, v in before["submissions"] + before["live_chats"])
    [relayed] = [m for m in group_messages(api) if "想尽快办理" in m.visible]
    redelivery = p.last_body, p.last_update_id

    [confirm] = await p.send("/forget")
    replies = await p.press("确认删除", confirm)
    assert "已删除" in p.text_since(replies)

    after = await every_value(runner)
    for table, cells in after.items():
        for column, value in cells:
            for secret in VALUES:
                assert secret not in value, (table, column, secret)
            if table != "conversations":
                assert value != str(USER), (table, column)
    # What is left of the conversation: the ids of the updates handled, for a day.
    assert runner.db is not None
    async with runner.db.sessions() as s:
        tombstone = await s.get(Conversation, f"tg:{USER}")
        assert tombstone is not None and tombstone.expires_at is not None
        assert set(tombstone.data) <= {"c", "u", "m", "r", "f"} and tombstone.data["c"] is None
        [lead] = list(await s.scalars(select(Lead)))
        assert lead.forgotten_at is not None and lead.status == "contacted"  # the figures stay
        assert list(await s.scalars(select(LiveChat))) == []
    # The live chat is over: staff are told, and a reply to the prospect's message goes nowhere.
    assert any("删除其个人信息" in m.visible for m in group_messages(api))
    received = len(p.messages)
    staff = Prospect(api, MEMBER, chat_id=STAFF_CHAT, username="li_sales")
    await staff.send("钱先生您好，还在吗？", reply_to=relayed)
    assert len(p.messages) == received
    # The alert in the staff group no longer shows the details.
    [alert] = [m for m in api.chat_messages(STAFF_CHAT) if "L000001" in m.visible]
    assert NAME not in alert.visible and PHONE not in alert.visible and "已清除" in alert.visible
    # An old update delivered again is not handled again (no second lead, no reply).
    await api.push(redelivery[0], update_id=redelivery[1])
    await api.wait_handled(redelivery[1])
    assert len(p.messages) == received
    # And the prospect can start afresh.
    [welcome] = await p.send("/start")
    assert "认证咨询助手" in welcome.visible


async def test_forget_leaves_nothing_in_the_sqlite_file(api: FakeBotAPI, tmp_path: Path) -> None:
    runner = await BotRunner(api, make_settings(api, tmp_path)).start()
    try:
        p = Prospect(api, USER, language_code="zh", username=USERNAME, first_name=NAME)
        await leave_everything(api, runner, p)
        db_file = tmp_path / "bot.db"
        files = [db_file, db_file.with_name("bot.db-wal")]
        assert any(NAME.encode() in f.read_bytes() for f in files if f.exists())
        [confirm] = await p.send("/forget")
        await p.press("确认删除", confirm)
        assert runner.store is not None
        await runner.store.close()  # the write-behind queue too
        assert runner.db is not None
        await runner.db.traces_erased()  # the WAL emptied, in the background
        for f in files:
            if not f.exists():
                continue
            data = f.read_bytes()
            for secret in VALUES:
                assert secret.encode() not in data, (f.name, secret)
    finally:
        await runner.stop()
