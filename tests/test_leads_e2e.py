"""Lead intake end to end: the real bot, the fake Bot API server, and the lead database."""

from __future__ import annotations

import asyncio
import csv
import io
from pathlib import Path

from sqlalchemy import select

from bot.db.models import Conversation, Lead, Outbox, Submission
from bot.leads.export import export_leads

from .fakebot import FakeBotAPI, Prospect
from .harness import ADMIN, STAFF_CHAT, BotRunner, make_settings


async def leads(runner: BotRunner) -> list[Lead]:
    assert runner.db is not None
    async with runner.db.sessions() as s:
        return list(await s.scalars(select(Lead).order_by(Lead.id)))


async def outbox(runner: BotRunner) -> list[Outbox]:
    assert runner.db is not None
    async with runner.db.sessions() as s:
        return list(await s.scalars(select(Outbox).order_by(Outbox.id)))


async def until(check, seconds: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    """Wait until ``check()`` (a function or a coroutine function) holds."""
    for _ in range(int(seconds / 0.02)):
        if await check() if asyncio.iscoroutinefunction(check) else check():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("condition not met in time")


async def enquire(p: Prospect, name: str, phone: str) -> None:
    """Ask a consultant from the main menu: a name and a phone number (an enquiry)."""
    await p.send("/start")
    await p.press("💬")
    await p.press("📝")
    await p.send(name)
    await p.send(phone)


async def fill_form(p: Prospect) -> None:
    """From a scheme's intro to the summary, with wrong values first."""
    await p.press("留下联系方式")
    await p.press("同意并继续")
    await p.send("<b>ACME</b> & Co")
    await p.send("王经理")
    [wrong] = await p.send("12345")
    assert "电话号码看起来不对" in wrong.visible
    await p.send("13800138000")
    [wrong] = await p.send("wang@")
    assert "邮箱地址看起来不对" in wrong.visible
    await p.send("Wang@Example.com")
    await p.send("北京")
    [wrong] = await p.send("很多人")
    assert "请输入员工人数" in wrong.visible
    await p.send("80")
    await p.send("2")
    await p.press("选好了")
    await p.press("3–6 个月")
    await p.send("希望年底前拿证")


async def test_form_to_lead_row_and_staff_alert(api: FakeBotAPI, running: BotRunner) -> None:
    p = Prospect(api, 8001, language_code="zh", username="wang_acme")
    await p.send("/start")
    await p.press("ISO/IEC 20000")
    await p.press("申请条件自测")
    for answer in ["是", "是", "否", "是", "是", "是"]:
        await p.press(answer)
    await fill_form(p)
    summary = p.menu
    assert "请确认您的信息" in summary.visible and "+8613800138000" in summary.visible
    await p.press("修改电话")
    await p.send("+852 5123 4567")
    summary = p.menu
    assert "+85251234567" in summary.visible and "+8613800138000" not in summary.visible
    replies = await p.press("确认提交")
    assert "已提交" in replies[0].visible and "L000001" in replies[-1].visible

    [lead] = await leads(running)
    assert (lead.company, lead.contact_name, lead.phone, lead.email) == (
        "<b>ACME</b> & Co",
        "王经理",
        "+85251234567",
        "Wang@example.com",  # the domain is normalised; the local part keeps its case
    )
    assert (lead.city, lead.headcount, lead.sites, lead.schemes, lead.timeline) == (
        "北京",
        80,
        2,
        ["iso20000"],
        "6m",
    )
    assert lead.note == "希望年底前拿证" and lead.status == "new" and lead.reference == "L000001"
    assert lead.selfcheck["running_3m"] is False and lead.source_flow == "iso20000"
    assert (lead.channel, lead.external_id, lead.handle, lead.locale) == (
        "telegram",
        "8001",
        "wang_acme",
        "zh",
    )
    assert "> 希望年底前拿证" in lead.transcript and "@lead.summary" in lead.transcript

    await until(lambda: api.chat_messages(STAFF_CHAT))
    [alert] = api.chat_messages(STAFF_CHAT)
    assert "&lt;b&gt;ACME&lt;/b&gt; &amp; Co" in alert.text  # shown literally, and accepted by the server
    for shown in ("新线索", "L000001", "<b>ACME</b> & Co", "王经理", "+85251234567", "80", "3–6 个月",
                  "ISO/IEC 20000", "自测未满足：体系运行3个月以上", "@wang_acme"):  # fmt: skip
        assert shown in alert.visible, shown
    assert alert.labels == ["🙋 我来跟进", "📞 已联系", "📋 详情"]

    async def delivered() -> bool:
        return all(row.sent_at is not None for row in await outbox(running))

    await until(delivered)
    [row] = await outbox(running)
    assert row.message_id == alert.message_id

    assert running.leads is not None
    exported = io.StringIO()
    await export_leads(running.leads, exported)
    [line] = list(csv.DictReader(io.StringIO(exported.getvalue())))
    assert (line["reference"], line["company"], line["phone"], line["schemes"], line["selfcheck_gaps"]) == (
        "L000001",
        "<b>ACME</b> & Co",
        "+85251234567",
        "iso20000",
        "running_3m",
    )


async def test_staff_buttons_check_rights(api: FakeBotAPI, running: BotRunner) -> None:
    p = Prospect(api, 8002, language_code="zh")
    await enquire(p, "钱先生", "13912345678")
    await until(lambda: api.chat_messages(STAFF_CHAT))
    [alert] = api.chat_messages(STAFF_CHAT)
    assert "新咨询" in alert.visible and "Q000001" in alert.visible
    # a prospect forging the callback in their own chat changes nothing
    await p.press_data("st:take:1", p.menu)
    [lead] = await leads(running)
    assert lead.assigned_to is None
    api.members[(STAFF_CHAT, 777)] = "member"  # Telegram confirms the presser is in the group
    staff = Prospect(api, 777, first_name="Zhao", username="zhao_sales", chat_id=STAFF_CHAT)
    await staff.press("我来跟进", alert)
    await staff.press("已联系", alert)
    [lead] = await leads(running)
    assert (lead.assigned_to, lead.status) == ("@zhao_sales", "contacted")
    assert "📞 @zhao_sales 已联系" in api.chat_messages(STAFF_CHAT)[0].visible
    admin = Prospect(api, ADMIN, username="boss", chat_id=ADMIN)  # an admin, from a private chat
    await admin.press_data("st:take:1", alert)
    [lead] = await leads(running)
    assert lead.assigned_to == "@boss"


async def test_double_submission_gives_one_lead(api: FakeBotAPI, running: BotRunner) -> None:
    p = Prospect(api, 8003, language_code="zh")
    await p.send("/start")
    await p.press("ISO 9001")
    await fill_form(p)
    summary = p.menu
    data = p.button("确认提交", summary)["callback_data"]
    await p.press_data(data, summary, wait=False)
    first = p.last_update_id
    await p.press_data(data, summary)  # a double tap
    await api.wait_handled(first)
    await api.push(p.last_body, update_id=p.last_update_id)  # and the same update delivered again
    await p.send("/menu")
    assert len(await leads(running)) == 1
    await until(lambda: len(api.chat_messages(STAFF_CHAT)) == 1)
    await asyncio.sleep(0.2)
    assert len(api.chat_messages(STAFF_CHAT)) == 1


async def test_a_submission_replayed_after_a_crash_gives_one_lead(api: FakeBotAPI, tmp_path: Path) -> None:
    settings = make_settings(api, tmp_path)
    # conversation changes are only written at a clean stop: a crash loses the last ones
    first = await BotRunner(api, settings, flush_interval=3600).start()
    p = Prospect(api, 8004, language_code="zh")
    try:
        await p.send("/start")
        await p.press("ISO 27001")
        await fill_form(p)
    finally:
        await first.stop()
    second = await BotRunner(api, settings, flush_interval=3600).start()
    summary = p.menu
    data = p.button("确认提交", summary)["callback_data"]
    try:
        await p.press_data(data, summary)
        submit_update, submit_id = p.last_body, p.last_update_id
        assert len(await leads(second)) == 1
    finally:
        await second.stop(crash=True)  # write-behind dropped: the turn with the lead was written at once
    third = await BotRunner(api, settings).start()
    try:
        # Telegram delivers the unconfirmed update again (the same update id, the same button press)
        saved_before = [m for m in p.messages if "L000001" in m.visible]
        await api.push(submit_update, update_id=submit_id)
        await api.wait_handled(submit_id)
        await p.send("/help")
        # A turn with a lead is written before it counts as handled (not behind): the redelivery
        # is recognised and dropped, and the lead saved once.
        assert len(saved_before) == 1
        assert len([m for m in p.messages if "L000001" in m.visible]) == 1
        assert len(await leads(third)) == 1
        assert third.db is not None
        async with third.db.sessions() as s:
            assert len(list(await s.scalars(select(Submission)))) == 1
    finally:
        await third.stop()


async def test_a_failing_alert_is_retried_and_delivered_after_a_restart(
    api: FakeBotAPI, tmp_path: Path
) -> None:
    settings = make_settings(api, tmp_path)
    # each delivery round tries 4 times (the request retries); the first round fails entirely
    fault = api.fail("sendMessage", 500, "Internal Server Error", times=6, chat_id=STAFF_CHAT)
    first = await BotRunner(api, settings).start()
    p = Prospect(api, 8005, language_code="en")
    try:
        await enquire(p, "Li", "+86 139 1234 5678")

        async def one_round_failed() -> bool:
            return [row.attempts for row in await outbox(first)] == [1]

        await until(one_round_failed)
    finally:
        await first.stop()
    assert api.chat_messages(STAFF_CHAT) == []
    [row] = await outbox(first)
    assert row.sent_at is None and row.attempts == 1 and "Internal Server Error" in (row.last_error or "")
    second = await BotRunner(api, settings).start()
    try:
        await until(lambda: len(api.chat_messages(STAFF_CHAT)) == 1)
        [alert] = api.chat_messages(STAFF_CHAT)
        assert "Q000001" in alert.visible and "+8613912345678" in alert.visible

        async def delivered() -> bool:
            return all(row.sent_at is not None for row in await outbox(second))

        await until(delivered)
        [row] = await outbox(second)
        assert row.attempts == 1 and fault.times == 0
    finally:
        await second.stop()


async def test_retry_after_is_honoured(api: FakeBotAPI, running: BotRunner) -> None:
    fault = api.fail(
        "sendMessage", 429, "Too Many Requests: retry after 1", retry_after=1, chat_id=STAFF_CHAT
    )
    p = Prospect(api, 8006, language_code="en")
    await enquire(p, "Li", "+86 139 1234 5678")
    await until(lambda: fault.times == 0)
    await asyncio.sleep(0.5)
    assert api.chat_messages(STAFF_CHAT) == []  # still waiting out retry_after
    await until(lambda: len(api.chat_messages(STAFF_CHAT)) == 1, seconds=5)


async def test_forget_leaves_no_personal_data(api: FakeBotAPI, running: BotRunner) -> None:
    p = Prospect(api, 8007, language_code="zh", username="to_forget")
    await p.send("/start")
    await p.press("ISO 9001")
    await fill_form(p)
    await p.press("确认提交")
    [privacy] = await p.send("/privacy")
    assert "我们保存" in privacy.visible and "30 天" in privacy.visible
    [confirm] = await p.send("/forget")
    [done] = await p.press("确认删除", confirm)
    assert "已删除" in done.visible
    await asyncio.sleep(0.1)
    [lead] = await leads(running)
    for name in ("company", "contact_name", "phone", "email", "city", "note", "question",
                 "external_id", "handle"):  # fmt: skip
        assert getattr(lead, name) is None, name
    assert lead.transcript == [] and lead.forgotten_at is not None
    assert running.db is not None and running.store is not None
    await running.store.close()  # write everything queued, then look
    async with running.db.sessions() as s:
        kept = await s.get(Conversation, "tg:8007")  # only the ids of the updates handled, for a day
        assert kept is not None and kept.data["c"] is None and kept.expires_at is not None
        assert set(kept.data) <= {"c", "u", "m", "r", "f"}
    [welcome] = await p.send("/start")  # and the prospect can start afresh
    assert "认证咨询助手" in welcome.visible


async def test_shared_contact_in_telegram(api: FakeBotAPI, running: BotRunner) -> None:
    p = Prospect(api, 8008, language_code="en")
    await p.send("/start")
    await p.press("ISO/IEC 20000")
    await p.press("Leave my details")
    await p.press("I agree")
    await p.send("ACME")
    [prompt, keyboard] = await p.send("Li")
    assert "Phone number" in prompt.visible
    assert keyboard.reply_markup is not None
    assert keyboard.reply_markup["keyboard"][0][0] == {
        "text": "📱 Share my phone number",
        "request_contact": True,
    }
    replies = await p.send_other(
        contact={"phone_number": "8613800138000", "first_name": "Li", "user_id": 8008}
    )
    assert replies[0].reply_markup == {"remove_keyboard": True} and "OK" in replies[0].visible
    assert "E-mail" in replies[-1].visible


async def test_a_new_submission_after_forget_is_a_new_lead(api: FakeBotAPI, running: BotRunner) -> None:
    # /forget deletes the conversation, so its sequence numbers start over: submissions must
    # still not be mistaken for the earlier one.
    p = Prospect(api, 8010, language_code="zh")
    await enquire(p, "周先生", "13912345678")
    [confirm] = await p.send("/forget")
    await p.press("确认删除", confirm)
    await enquire(p, "周先生", "13912345679")
    rows = await leads(running)
    assert len(rows) == 2 and rows[1].phone == "+8613912345679"
