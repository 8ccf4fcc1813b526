"""Where staff data may go, and staff-group updates delivered twice, end to end through the fake
Bot API server.

Staff data goes only to a staff place: a private chat with the staff member, or the staff group.
A staff member's command in a group of outsiders posts nothing there (they are told privately);
staff buttons and note replies there do nothing. The staff group's updates are handled once, as
private chats' are: a redelivered /note is one note, a redelivered answer in a live chat reaches
the prospect once."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from bot.service import Service

from .fakebot import BotMessage, FakeBotAPI, Prospect
from .harness import ADMIN, STAFF_CHAT, WEBHOOK_SECRET, BotRunner, Replica, webhook_settings
from .test_handoff import ask_for_a_person, group_messages
from .test_leads_e2e import until
from .test_staff_telegram import add_leads, lead_status
from .test_webhook import post

MEMBER = 901
STRANGER = 902
OUTSIDERS = -2002
"""A group the bot is in with people who are not staff."""
HINT = "员工命令只能在与机器人的私聊或员工群中使用"
COMMANDS = (
    "/export",
    "/export won",
    "/leads",
    "/leads iso9001",
    "/lead L000001",
    "/lead",
    "/stats",
    "/note L000001 客户要求回电",
    "/note",
    "/export@cert_test_bot",
)


def calls_to(api: FakeBotAPI, chat_id: int) -> list[str]:
    return [c.method for c in api.calls if str(c.params.get("chat_id")) == str(chat_id)]


async def notes(runner: Service, lead_id: int = 1) -> list[str | None]:
    assert runner.leads is not None
    return [e.new for e in await runner.leads.events(lead_id) if e.kind == "note"]


async def test_staff_commands_in_an_outsider_group_show_nothing_there(
    api: FakeBotAPI, running: BotRunner, caplog: pytest.LogCaptureFixture
) -> None:
    await add_leads(running, 2)
    api.members[(STAFF_CHAT, MEMBER)] = "member"
    for user, commands in ((ADMIN, (*COMMANDS, "/reload")), (MEMBER, COMMANDS)):
        staff = Prospect(api, user, chat_id=OUTSIDERS, username=f"staff{user}")
        for command in commands:
            before = len(api.chat_messages(user))
            assert await staff.send(command) == [], command
            # told privately, once, where staff commands work
            [hint] = api.chat_messages(user)[before:]
            assert HINT in hint.visible and "L000001" not in hint.visible, command
    assert calls_to(api, OUTSIDERS) == []  # not a message, a document, a chat action
    assert api.documents == []
    assert await notes(running) == []
    # The English text exists too.
    assert "only in a private chat" in running.runtime.engine.content.t("staff_not_here", "en")
    # A staff member who never started the bot cannot be told: nothing in the group all the same.
    api.members[(STAFF_CHAT, 904)] = "member"
    api.fail("sendMessage", 403, "Forbidden: bot can't initiate conversation with a user", chat_id=904)
    caplog.set_level(logging.INFO)
    assert await Prospect(api, 904, chat_id=OUTSIDERS).send("/export") == []
    assert calls_to(api, OUTSIDERS) == [] and api.chat_messages(904) == []
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    # Strangers there get nothing: no answer, no hint that staff commands exist.
    stranger = Prospect(api, STRANGER, chat_id=OUTSIDERS)
    for command in (*COMMANDS, "/reload"):
        assert await stranger.send(command) == []
    assert api.chat_messages(STRANGER) == [] and calls_to(api, OUTSIDERS) == []


async def test_staff_buttons_and_note_replies_in_an_outsider_group_do_nothing(
    api: FakeBotAPI, running: BotRunner
) -> None:
    await add_leads(running, 2)
    # A card and a note prompt left in an outsider group (a bot from before this rule posted them).
    card = BotMessage(
        OUTSIDERS, 7001, "L000001", {"inline_keyboard": [[{"text": "🏆", "callback_data": "sc:1:s.won"}]]}
    )
    prompt = BotMessage(OUTSIDERS, 7002, "📝 L000001：请回复这条消息，写下备注。", {"force_reply": True})
    api.messages[OUTSIDERS] += [card, prompt]
    admin = Prospect(api, ADMIN, chat_id=OUTSIDERS, username="boss")
    for data in ("sc:1:v", "sc:1:V", "sc:1:s.won", "sc:1:me", "sc:1:n", "sl:-:-:1", "sl:won:-:2",
                 "st:take:1", "st:done:1"):  # fmt: skip
        assert await admin.press_data(data, card) == [], data
        answer = api.callback_answers[admin.last_query_id]  # the spinner stopped, and nothing said
        assert answer.get("text") is None, data
    assert await admin.send("客户周二方便", reply_to=prompt) == []
    assert await lead_status(running, 1) == ("new", None)
    assert await notes(running) == []
    assert [m for m in calls_to(api, OUTSIDERS) if m != "answerCallbackQuery"] == []
    assert card.edits == 0 and api.chat_messages(ADMIN) == []


@pytest.mark.parametrize("place", ["private", "staff group"])
async def test_staff_commands_and_buttons_still_work_in_staff_places(
    api: FakeBotAPI, running: BotRunner, place: str
) -> None:
    await add_leads(running, 2)
    assert running.alerts is not None
    await running.alerts.deliver_due()  # the new-lead alerts are out before the staff group is used
    await until(lambda: len(api.chat_messages(STAFF_CHAT)) == 2)
    staff = Prospect(api, ADMIN, chat_id=ADMIN if place == "private" else STAFF_CHAT, username="boss")
    [listing] = await staff.send("/leads")
    assert "共 2 条" in listing.visible and "L000002" in listing.visible
    [card] = await staff.send("/lead L000001")
    assert "L000001" in card.visible and "测试公司01" in card.visible
    [saved] = await staff.send("/note L000001 客户要求回电")
    assert "备注已添加到 L000001" in saved.visible
    [document] = await staff.send("/export")
    assert document.document is not None and document.document["file_name"].endswith(".csv")
    stats = await staff.send("/stats")
    assert "线索统计" in stats[0].text
    [reloaded] = await staff.send("/reload")
    assert "Content unchanged" in reloaded.visible
    await staff.press("已成交", card)
    assert await lead_status(running, 1) == ("won", None)
    [prompt] = await staff.press("添加备注", staff.menu)
    [saved] = await staff.send("周二下午", reply_to=prompt)
    assert "备注已添加到 L000001" in saved.visible
    assert await notes(running) == ["周二下午", "客户要求回电"]
    assert not [m for m in api.chat_messages(ADMIN) if HINT in m.visible]


# --- the staff group's updates are handled once ------------------------------------------------------


async def test_a_note_delivered_twice_in_the_staff_group_is_saved_once(
    api: FakeBotAPI, running: BotRunner
) -> None:
    await add_leads(running, 1)
    api.members[(STAFF_CHAT, MEMBER)] = "member"
    group = Prospect(api, MEMBER, chat_id=STAFF_CHAT, username="li_sales")
    [saved] = await group.send_twice("/note L000001 已签合同")
    assert "备注已添加到 L000001" in saved.visible
    assert await notes(running) == ["已签合同"]
    # Other updates of the group go on as before, and a note reply delivered twice is one note too.
    [card] = await group.send("/lead L000001")
    [prompt] = await group.press("添加备注", card)
    [saved] = await group.send_twice("周二回电", reply_to=prompt)
    assert await notes(running) == ["周二回电", "已签合同"]
    # The group's record holds the updates handled, and nothing of any conversation.
    record = await running.runtime.core.store.load(f"tg:{STAFF_CHAT}")
    assert record is not None and group.last_update_id in record.recent
    assert (record.state, record.menu_id, record.transcript) == (None, None, ())


async def test_a_staff_answer_delivered_twice_reaches_the_prospect_once(
    api: FakeBotAPI, running: BotRunner
) -> None:
    p = Prospect(api, 3101, first_name="Wang")
    await ask_for_a_person(p)
    await p.send("请问费用多少？")
    relayed = group_messages(api)[-1]
    staff = Prospect(api, MEMBER, chat_id=STAFF_CHAT, username="li_sales")
    await staff.send_twice("您好，我稍后给您打电话。", reply_to=relayed)
    copies = [c for c in api.calls if c.method == "copyMessage" and c.params["chat_id"] == "3101"]
    assert len(copies) == 1
    assert [m.visible for m in p.messages if m.copied_from is not None] == ["您好，我稍后给您打电话。"]
    # /close delivered twice: ended once; the prospect is told once, staff are not told "ended".
    closing = await staff.send_twice("/close", reply_to=relayed)
    assert [m.visible for m in closing] == ["✅ 对话已由 @li_sales 结束。"]
    assert len([m for m in p.messages if "顾问已结束本次对话" in m.visible]) == 1


async def test_by_webhook_a_staff_group_update_is_handled_once_and_a_failed_one_again(
    api: FakeBotAPI, tmp_path: Path
) -> None:
    replica = await Replica(api, webhook_settings(api, tmp_path)).start()
    api.use_webhook([replica.url], WEBHOOK_SECRET)
    try:
        await add_leads(replica, 1)
        group = Prospect(api, MEMBER, chat_id=STAFF_CHAT)
        [saved] = await group.send("/note L000001 一")
        assert "备注已添加到 L000001" in saved.visible
        update = {"update_id": group.last_update_id, **group.last_body}
        assert await post(replica.url, update, WEBHOOK_SECRET) == 200  # Telegram delivers it again
        assert await notes(replica) == ["一"]
        assert len([m for m in group.messages if "备注已添加" in m.visible]) == 1
        # Saving fails for a moment: answered 500, not recorded as handled; the redelivery saves it.
        assert replica.leads is not None
        leads = replica.leads
        original = leads.add_note
        failures: list[int] = []

        async def flaky(*args, **kwargs):  # type: ignore[no-untyped-def]
            if not failures:
                failures.append(1)
                raise ConnectionError("the database went away for a moment")
            return await original(*args, **kwargs)

        leads.add_note = flaky  # type: ignore[method-assign]
        await group.send("/note L000001 二")
        statuses = [status for uid, _, status in api.deliveries if uid == group.last_update_id]
        assert statuses == [500, 200]
        assert await notes(replica) == ["二", "一"]
    finally:
        await replica.stop()
