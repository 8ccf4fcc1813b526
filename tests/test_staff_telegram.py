"""Staff in Telegram, end to end through the fake Bot API server: who is staff, /leads, cards and
their buttons, notes, /export, /stats and the buttons on new-lead alerts."""

from __future__ import annotations

import csv
import io

from bot.leads.repository import LeadSubmission
from bot.prospect import ProspectId

from .fakebot import FakeBotAPI, Prospect
from .harness import ADMIN, STAFF_CHAT, BotRunner

MEMBER = 901
STRANGER = 902


async def add_leads(runner: BotRunner, count: int = 12) -> None:
    assert runner.leads is not None
    for i in range(1, count + 1):
        await runner.leads.submit(
            LeadSubmission(
                kind="lead",
                key=f"{i}:1",
                answers={
                    "company": f"<b>公司</b>{i:02d}" if i == 3 else f"测试公司{i:02d}",
                    "contact_name": f"联系人{i}",
                    "phone": f"+86138001380{i:02d}",
                    "schemes": ["iso9001" if i % 2 else "iso20000"],
                },
                source_flow="iso9001" if i % 2 else "iso20000",
                selfcheck={"licence": True, "system_built": False},
                prospect=ProspectId.telegram(5000 + i),
                transcript=["> 你好", "@iso20000.intro", f"> 第{i}个问题"],
            )
        )


async def lead_status(runner: BotRunner, lead_id: int) -> tuple[str, str | None]:
    assert runner.leads is not None
    lead = await runner.leads.get(lead_id)
    assert lead is not None
    return lead.status, lead.assigned_to


async def test_strangers_get_no_staff_command_and_no_hint(api: FakeBotAPI, running: BotRunner) -> None:
    await add_leads(running, 2)
    stranger = Prospect(api, STRANGER, language_code="en")
    await stranger.send("/start")
    for command in ("/leads", "/lead L000001", "/export", "/stats", "/note L000001 hi", "/reload"):
        [reply] = await stranger.send(command)
        assert "don't know that command" in reply.visible, command
        assert "L000001" not in reply.visible and "测试公司" not in reply.visible
    assert not api.documents
    # A forged staff button changes nothing and says nothing.
    menu = stranger.menu
    await stranger.press_data("sc:1:s.won", menu)
    await stranger.press_data("st:take:1", menu)
    assert api.callback_answers[stranger.last_query_id].get("text") is None
    assert await lead_status(running, 1) == ("new", None)


async def test_a_group_member_works_leads_from_a_private_chat(api: FakeBotAPI, running: BotRunner) -> None:
    await add_leads(running)
    api.members[(STAFF_CHAT, MEMBER)] = "member"
    staff = Prospect(api, MEMBER, username="li_sales", language_code="zh-hans")
    [listing] = await staff.send("/leads")
    assert "共 12 条，第 1/2 页" in listing.visible and "L000012" in listing.visible
    assert "▶️" in listing.labels
    await staff.press("▶️", listing)
    assert "第 2/2 页" in listing_text(staff) and "L000001" in listing_text(staff)
    await staff.press("状态：全部")  # cycles to "new"
    assert "（🆕 新线索）" in listing_text(staff)
    await staff.press("▶️")
    # Open a card from the list (the list message becomes the card).
    [card] = [m for m in await staff.press("L000003 · <b>公司</b>03")]
    assert "L000003" in card.visible and "<b>公司</b>03" in card.visible  # escaped: shown as typed
    assert "自测未满足：已按标准建立质量管理体系" in card.visible and "第3个问题" in card.visible
    await staff.press("已确认需求", card)
    assert await lead_status(running, 3) == ("qualified", None)
    assert "L000003：🎯 已确认需求" in api.callback_answers[staff.last_query_id]["text"]
    await staff.press("分配给我", staff.menu)
    assert await lead_status(running, 3) == ("qualified", "@li_sales")
    [prompt] = await staff.press("添加备注", staff.menu)
    assert prompt.reply_markup and prompt.reply_markup.get("force_reply") is True
    [saved] = await staff.send("客户周二下午方便，<i>先发资料</i>", reply_to=prompt)
    assert "备注已添加到 L000003" in saved.visible
    assert running.leads is not None
    events = await running.leads.events(3)
    assert [(e.kind, e.actor, e.new) for e in events] == [
        ("note", f"tg:{MEMBER} @li_sales", "客户周二下午方便，<i>先发资料</i>"),
        ("assign", f"tg:{MEMBER} @li_sales", "@li_sales"),
        ("status", f"tg:{MEMBER} @li_sales", "qualified"),
    ]
    [card] = await staff.send("/lead L000003")
    assert "客户周二下午方便，<i>先发资料</i>" in card.visible and "负责人：@li_sales" in card.visible
    # Someone who leaves the group is no longer staff (after the membership check expires).
    api.members[(STAFF_CHAT, MEMBER)] = "left"
    running.runtime.staff._members.clear()
    replies = await staff.send("/leads")
    assert replies and not any("L000012" in m.visible for m in replies)


def listing_text(p: Prospect) -> str:
    return p.menu.visible


async def test_staff_group_commands_export_and_stats(api: FakeBotAPI, running: BotRunner) -> None:
    await add_leads(running, 5)
    assert running.leads is not None
    await running.leads.set_status(2, "won", actor="test")
    group = Prospect(api, MEMBER, chat_id=STAFF_CHAT, username="li_sales")
    [card] = await group.send("/lead@cert_test_bot l000002")
    assert "L000002" in card.visible and "🏆 已成交" in card.visible
    [missing] = await group.send("/lead L999999")
    assert "没有找到线索 L999999" in missing.visible
    [usage] = await group.send("/lead")
    assert "用法" in usage.visible
    [saved] = await group.send("/note L000002 已签合同")
    assert "备注已添加到 L000002" in saved.visible
    [filtered] = await group.send("/leads iso9001")
    assert "共 3 条" in filtered.visible and "L000002" not in filtered.visible
    [searched] = await group.send("/leads 测试公司04")
    assert "共 1 条" in searched.visible and "L000004" in searched.visible
    [document] = await group.send("/export won")
    assert document.document is not None and document.document["file_name"].endswith(".csv")
    assert "1 条线索（🏆 已成交）" in document.visible
    rows = list(csv.DictReader(io.StringIO(document.document["content"].decode("utf-8-sig"))))
    assert [(r["reference"], r["status"]) for r in rows] == [("L000002", "won")]
    everything = await group.send("/export")
    assert len(list(csv.DictReader(io.StringIO(everything[0].document["content"].decode("utf-8-sig"))))) == 5
    stats = await group.send("/stats")
    assert "线索统计</b>（共 5 条）" in stats[0].text and "🏆 已成交：1" in stats[0].visible


async def test_alert_buttons_take_mark_contacted_and_open_the_card(
    api: FakeBotAPI, running: BotRunner
) -> None:
    await add_leads(running, 1)
    assert running.alerts is not None
    await running.alerts.deliver_due()
    [alert] = api.chat_messages(STAFF_CHAT)
    assert "L000001" in alert.visible and len(alert.labels) == 3
    # A press in the staff group by someone Telegram does not list as a member does nothing.
    outsider = Prospect(api, 903, chat_id=STAFF_CHAT)
    await outsider.press("我来跟进", alert)
    assert await lead_status(running, 1) == ("new", None)
    api.members[(STAFF_CHAT, MEMBER)] = "member"
    member = Prospect(api, MEMBER, chat_id=STAFF_CHAT, username="li_sales")
    await member.press("我来跟进", alert)
    assert await lead_status(running, 1) == ("new", "@li_sales")
    assert "@li_sales 跟进中" in api.chat_messages(STAFF_CHAT)[0].visible  # the alert says who
    await member.press("已联系", alert)
    assert await lead_status(running, 1) == ("contacted", "@li_sales")
    [card] = await member.press("详情", alert)
    assert card.message_id != alert.message_id and "L000001" in card.visible  # a new message below
    # The admin may press them from anywhere; a stranger's press in a private chat does nothing.
    admin = Prospect(api, ADMIN, chat_id=STAFF_CHAT)
    await admin.press("💤 已流失", card)
    assert await lead_status(running, 1) == ("lost", "@li_sales")
