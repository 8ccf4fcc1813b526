"""Live handoff, both ways, end to end through the fake Bot API server: a prospect asks for a
consultant, their messages reach the staff group (a forum topic each, or reply threads), staff
answers come back as the bot, /close ends it; outside working hours the enquiry is kept as a lead."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy import select

from bot.db.models import Lead, LiveChat

from .fakebot import BotMessage, FakeBotAPI, Prospect
from .harness import STAFF_CHAT, BotRunner, make_settings

MEMBER = 901


async def live_chats(runner: BotRunner) -> list[LiveChat]:
    assert runner.db is not None
    async with runner.db.sessions() as s:
        return list(await s.scalars(select(LiveChat).order_by(LiveChat.id)))


def group_messages(api: FakeBotAPI, since: int = 0) -> list[BotMessage]:
    return [m for m in api.chat_messages(STAFF_CHAT) if m.message_id > since]


async def ask_for_a_person(p: Prospect) -> list[BotMessage]:
    await p.send("/start")
    await p.press("ISO/IEC 20000")
    await p.press("咨询顾问")
    return await p.press("现在和顾问聊")


async def test_a_live_chat_in_reply_threads(api: FakeBotAPI, running: BotRunner) -> None:
    p = Prospect(api, 3001, first_name="Wang", username="wang_it")
    [view] = await ask_for_a_person(p)
    assert "正在为您接通顾问" in view.visible and view.labels == ["✖️ 结束对话"]
    [intro] = group_messages(api)
    assert "在线咨询" in intro.visible and "Wang @wang_it（3001）" in intro.visible
    assert "ISO/IEC 20000" in intro.visible and "回复（reply）" in intro.visible
    # What the prospect types goes to the staff group, not to the FAQ.
    assert await p.send("请问 <b>费用</b> 多少钱？") == []
    [relayed] = group_messages(api, intro.message_id)
    assert relayed.visible == "💬 Wang：请问 <b>费用</b> 多少钱？"
    assert await p.send_other(photo=[{"file_id": "p1", "file_unique_id": "u1", "width": 9, "height": 9}],
                              caption="营业执照") == []  # fmt: skip
    header, photo = group_messages(api, relayed.message_id)
    assert "发来了一张图片" in header.visible and photo.visible == "营业执照"
    assert photo.copied_from == (3001, p.last_body["message"]["message_id"])
    # A staff member answers by replying: the prospect gets it from the bot.
    staff = Prospect(api, MEMBER, chat_id=STAFF_CHAT, username="li_sales")
    before = len(p.messages)
    await staff.send("您好，费用需要根据人数评估，我稍后给您打电话。", reply_to=relayed)
    [answer] = p.messages[before:]
    assert (
        answer.visible == "您好，费用需要根据人数评估，我稍后给您打电话。" and answer.copied_from is not None
    )
    await staff.send("也可以直接回复介绍消息", reply_to=intro)
    assert p.messages[-1].visible == "也可以直接回复介绍消息"
    # Staff talking among themselves stays in the group.
    await staff.send("这个客户我来跟")
    assert p.messages[-1].visible == "也可以直接回复介绍消息"
    # /close ends it: both sides are told, and the bot is back.
    closing = await staff.send("/close", reply_to=relayed)
    assert "对话已由 @li_sales 结束" in closing[0].visible
    told = p.messages[-2:]
    assert "顾问已结束本次对话" in told[0].visible
    assert any("ISO/IEC 20000" in label for label in told[1].labels)  # the main menu
    [chat] = await live_chats(running)
    assert chat.closed_at is not None and chat.closed_by == "@li_sales"
    late = await staff.send("还在吗？", reply_to=relayed)
    assert "这段对话已经结束" in late[0].visible and p.messages[-1].visible != "还在吗？"
    # Free text is the bot's again.
    reply = await p.send("证书有效期多久")
    assert "证书有效期为三年" in reply[0].visible


async def test_a_live_chat_in_a_forum_topic(api: FakeBotAPI, running: BotRunner) -> None:
    api.forums.add(STAFF_CHAT)
    p = Prospect(api, 3002, first_name="Li", language_code="en")
    await p.send("/start")
    await p.press("💬 Consultant")
    await p.press("Chat with a consultant now")
    [(topic_key, topic)] = api.topics.items()
    topic_id = topic_key[1]
    assert "Li · 3002" in topic["name"]
    [intro] = group_messages(api)
    assert intro.thread_id == topic_id and "在本话题中发消息" in intro.visible
    await p.send("Do you do ISO 27001 too?")
    assert group_messages(api)[-1].thread_id == topic_id
    staff = Prospect(api, MEMBER, chat_id=STAFF_CHAT)
    await staff.send("Yes, we do. I'll send details.", thread_id=topic_id)
    assert p.messages[-1].visible == "Yes, we do. I'll send details."
    # The prospect leaves: staff are told, the topic is closed.
    await p.press("End the chat")
    assert "Li 已离开对话" in group_messages(api)[-1].visible
    assert api.topics[topic_key]["closed"] is True
    [chat] = await live_chats(running)
    assert chat.closed_by == "prospect" and chat.topic_id == topic_id
    before = len(p.messages)
    await staff.send("anything else?", thread_id=topic_id)
    assert len(p.messages) == before  # closed: nothing reaches the prospect


async def test_outside_working_hours_the_enquiry_is_kept(api: FakeBotAPI, tmp_path: Path) -> None:
    tomorrow = (datetime.now(ZoneInfo("Asia/Shanghai")) + timedelta(days=1)).strftime("%a").lower()
    settings = make_settings(api, tmp_path, working_hours=f"{tomorrow} 09:00-18:00")
    runner = await BotRunner(api, settings).start()
    try:
        p = Prospect(api, 3003, first_name="Zhao")
        await p.send("/start")
        await p.send("你们能做ISO 20000认证吗，我想了解一下流程和时间安排，还有审核需要准备什么")  # unsure
        await p.press("咨询顾问")
        replies = await p.press("现在和顾问聊")
        offline = replies[-1].visible
        assert "非工作时间" in offline and "Q000001" in offline and "09:00" in offline
        assert runner.db is not None
        async with runner.db.sessions() as s:
            [lead] = list(await s.scalars(select(Lead)))
        assert (lead.kind, lead.channel, lead.external_id, lead.reference) == (
            "enquiry",
            "telegram",
            "3003",
            "Q000001",
        )
        [intro] = [m for m in group_messages(api) if "在线咨询" in m.visible]
        assert "已登记为咨询 Q000001（非工作时间）" in intro.visible
        await p.send("明天上午联系我也可以")
        assert group_messages(api)[-1].visible == "💬 Zhao：明天上午联系我也可以"  # still relayed
    finally:
        await runner.stop()


async def test_a_live_chat_survives_a_restart(api: FakeBotAPI, tmp_path: Path) -> None:
    settings = make_settings(api, tmp_path)
    first = await BotRunner(api, settings).start()
    p = Prospect(api, 3004, first_name="Sun")
    try:
        await ask_for_a_person(p)
    finally:
        await first.stop()
    second = await BotRunner(api, settings).start()
    try:
        await p.send("重启后还在吗")
        relayed = group_messages(api)[-1]
        assert relayed.visible == "💬 Sun：重启后还在吗"
        staff = Prospect(api, MEMBER, chat_id=STAFF_CHAT)
        await staff.send("在的", reply_to=relayed)
        assert p.messages[-1].visible == "在的"
        assert len(await live_chats(second)) == 1
    finally:
        await second.stop()


async def test_a_prospect_who_blocked_the_bot(api: FakeBotAPI, running: BotRunner) -> None:
    p = Prospect(api, 3005, first_name="Qian")
    await ask_for_a_person(p)
    await p.send("你好")
    relayed = group_messages(api)[-1]
    api.blocked.add(3005)
    staff = Prospect(api, MEMBER, chat_id=STAFF_CHAT)
    [warning] = await staff.send("您好？", reply_to=relayed)
    assert "客户已屏蔽机器人" in warning.visible
    [chat] = await live_chats(running)
    assert chat.closed_by == "blocked"


async def test_a_press_that_opens_a_live_chat_is_answered_at_once(
    api: FakeBotAPI, running: BotRunner
) -> None:
    p = Prospect(api, 3009, first_name="Zhao")
    await p.send("/start")
    await p.press("ISO/IEC 20000")
    await p.press("咨询顾问")
    api.slow("sendMessage", 1.0, chat_id=STAFF_CHAT)  # the staff group is slow to take the intro
    [view] = await p.press("现在和顾问聊")
    assert "正在为您接通顾问" in view.visible
    [answer] = [c for c in api.calls if c.params.get("callback_query_id") == p.last_query_id]
    [intro] = [c for c in api.calls if c.method == "sendMessage" and c.params["chat_id"] == str(STAFF_CHAT)]
    # the spinner was stopped while the staff group still had the intro, not after the reply
    assert answer.at < intro.at + 0.5
    [reply] = [c for c in api.calls if c.method == "sendMessage" and c.params["chat_id"] == "3009"][-1:]
    assert reply.at >= intro.at + 1.0 > answer.at
