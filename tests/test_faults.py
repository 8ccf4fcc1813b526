"""Bot API faults and floods, end to end through the fake server: every lead and every staff
alert accounted for through 429s, 500s and timeouts; a prospect who blocked the bot is marked
and no longer sent to; sending is paced to Telegram's limits; a flooding prospect is slowed with
one notice while others are served as usual."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from aiogram.exceptions import TelegramForbiddenError
from sqlalchemy import select

from bot.db.models import BlockedChat, Lead, Outbox

from .fakebot import FakeBotAPI, Prospect
from .harness import STAFF_CHAT, BotRunner, make_settings
from .test_handoff import ask_for_a_person, group_messages
from .test_leads_e2e import enquire, until


async def test_every_lead_and_alert_survives_429_500_and_timeouts(api: FakeBotAPI, tmp_path: Path) -> None:
    runner = await BotRunner(api, make_settings(api, tmp_path), request_timeout=0.5).start()
    try:
        api.fail("sendMessage", 500, "Internal Server Error", times=3)
        api.fail("sendMessage", 429, "Too Many Requests: retry after 1", retry_after=1)
        api.fail("sendMessage", 502, "Bad Gateway", delay=1.0)  # the client gives up first
        api.fail("answerCallbackQuery", 500, "Internal Server Error", times=2)
        api.fail("sendMessage", 500, "Internal Server Error", times=2, chat_id=STAFF_CHAT)
        prospects = [Prospect(api, 8100 + i, first_name=f"P{i}") for i in range(6)]
        await asyncio.gather(*(enquire(p, f"客户{i}", f"1391234567{i}") for i, p in enumerate(prospects)))
        for p in prospects:
            assert any("顾问会通过" in m.visible for m in p.messages), p.user_id
        assert runner.db is not None
        async with runner.db.sessions() as s:
            leads = list(await s.scalars(select(Lead)))
        assert sorted(int(lead.external_id or 0) for lead in leads) == [8100 + i for i in range(6)]
        await until(lambda: len(api.chat_messages(STAFF_CHAT)) >= 6)
        async with runner.db.sessions() as s:
            alerts = list(await s.scalars(select(Outbox)))
        assert len(alerts) == 6 and all(a.sent_at is not None for a in alerts)
        assert len(api.chat_messages(STAFF_CHAT)) == 6  # each alert once
        assert all(f.times == 0 for f in api.faults)  # every fault was met
    finally:
        await runner.stop()


async def test_a_prospect_who_blocked_the_bot_is_marked_and_left_alone(
    api: FakeBotAPI, running: BotRunner
) -> None:
    p = Prospect(api, 8200, first_name="Zhou")
    await ask_for_a_person(p)
    await p.send("你好")
    relayed = group_messages(api)[-1]
    api.blocked.add(8200)
    staff = Prospect(api, 901, chat_id=STAFF_CHAT)
    await staff.send("您好？", reply_to=relayed)
    assert running.db is not None
    async with running.db.sessions() as s:
        assert [b.chat_id for b in await s.scalars(select(BlockedChat))] == [8200]
    tries = len([c for c in api.calls if str(c.params.get("chat_id")) == "8200"])
    # Nothing more goes out to them, not even an attempt.
    assert running.bot is not None
    with pytest.raises(TelegramForbiddenError):
        await running.bot.send_message(8200, "还在吗？")
    assert len([c for c in api.calls if str(c.params.get("chat_id")) == "8200"]) == tries
    # They unblock and write again: they are answered again.
    api.blocked.discard(8200)
    [reply] = await p.send("/start")
    assert "ISO" in reply.visible
    async with running.db.sessions() as s:
        assert list(await s.scalars(select(BlockedChat))) == []


async def test_blocking_and_unblocking_through_membership_updates(
    api: FakeBotAPI, running: BotRunner
) -> None:
    p = Prospect(api, 8300)
    await p.send("/start")
    member = {"user": p.user, "status": "member"}
    kicked = {"user": p.user, "status": "kicked", "until_date": 0}
    body = {"chat": {"id": 8300, "type": "private", "first_name": "P"}, "from": p.user, "date": 0}
    await p._push({"my_chat_member": {**body, "old_chat_member": member, "new_chat_member": kicked}})
    assert 8300 in running.runtime.blocked
    await p._push({"my_chat_member": {**body, "old_chat_member": kicked, "new_chat_member": member}})
    assert 8300 not in running.runtime.blocked


async def test_sending_is_paced_per_chat(api: FakeBotAPI, tmp_path: Path) -> None:
    runner = await BotRunner(api, make_settings(api, tmp_path, rate_per_chat=5.0)).start()
    try:
        bot = runner.bot
        assert bot is not None
        queued = [asyncio.create_task(bot.send_message(8400, f"m{i}")) for i in range(15)]
        await asyncio.sleep(0)  # the 15 are queued first
        await bot.send_message(8401, "other")
        await asyncio.gather(*queued)
        sends = [c for c in api.calls if c.method == "sendMessage"]
        times = sorted(c.at for c in sends if c.params["chat_id"] == "8400")
        # A burst of 5, then 5 a second: the 15th goes out no sooner than 2 s after the first.
        assert len(times) == 15 and times[-1] - times[0] >= 1.9
        # Another chat is not held up behind the first one's queue: it goes out before that ends.
        other = next(c.at for c in sends if c.params["chat_id"] == "8401")
        assert other < times[-1]
    finally:
        await runner.stop()


async def test_a_flooding_prospect_is_slowed_with_one_notice(api: FakeBotAPI, tmp_path: Path) -> None:
    runner = await BotRunner(api, make_settings(api, tmp_path, flood_rate=10.0)).start()
    try:
        flooder = Prospect(api, 8500, language_code="en")
        await flooder.send("/start")
        ids = [await api.push({"message": flooder._message(text=f"spam {i}")}) for i in range(30)]
        calm = Prospect(api, 8501, language_code="en")
        [welcome] = await calm.send("/start")  # served while the flood is being worked through
        assert "certification assistant" in welcome.visible
        assert not all(uid in api._handled for uid in ids)  # the flood was still waiting
        for uid in ids:
            await api.wait_handled(uid)  # none lost
        notices = [m for m in flooder.messages if "That's a lot at once" in m.visible]
        assert len(notices) == 1
    finally:
        await runner.stop()


async def test_a_flood_beyond_the_backlog_is_not_read_and_the_prospect_is_told_once(
    api: FakeBotAPI, tmp_path: Path
) -> None:
    runner = await BotRunner(api, make_settings(api, tmp_path, flood_rate=20.0)).start()
    try:
        flooder = Prospect(api, 8600, language_code="en")
        await flooder.send("/start")
        ids = [await api.push({"message": flooder._message(text=f"spam {i}")}) for i in range(1000)]
        for uid in ids:
            await api.wait_handled(uid)  # every update is taken (acknowledged), read or not
        texts = [m.visible for m in flooder.messages]
        assert len([t for t in texts if "That's a lot at once" in t]) == 1
        assert len([t for t in texts if "some messages were skipped" in t]) == 1
        assert len(texts) < 300  # most of the flood was not read: one reply or two for each read
        [welcome] = await flooder.send("/start")  # and the prospect is served as usual afterwards
        assert "certification assistant" in welcome.visible
    finally:
        await runner.stop()
