"""The real bot in polling mode against the fake Bot API server, over HTTP on 127.0.0.1."""

from __future__ import annotations

import json
import logging

import pytest
from sqlalchemy import create_engine, text

from .fakebot import FakeBotAPI, Prospect
from .harness import BotRunner, make_settings


async def test_commands_are_registered_in_both_languages(api: FakeBotAPI, running: BotRunner) -> None:
    assert {c["command"] for c in api.commands["zh"]} >= {"start", "menu", "help", "lang", "cancel", "back"}
    assert any(c["description"] == "Main menu" for c in api.commands["en"])
    assert api.commands[""] == api.commands["zh"]


async def test_chinese_walk_through(api: FakeBotAPI, running: BotRunner) -> None:
    p = Prospect(api, 1001, language_code="zh-hans")
    [welcome] = await p.send("/start")
    assert "认证咨询助手" in welcome.visible and "🖥 ISO/IEC 20000 IT服务管理" in welcome.labels

    [intro] = await p.press("ISO/IEC 20000")
    assert intro.message_id != welcome.message_id  # a new step: a new message
    assert "投标加分" in intro.visible and "电议" in intro.visible
    [question] = await p.press("申请条件自测")
    assert "问题 1/6" in question.visible
    for _ in range(5):
        [edited] = await p.press("是")
        assert edited.message_id == question.message_id  # answering edits the question in place
    [verdict] = await p.press("否")
    assert verdict.message_id == question.message_id and verdict.edits == 6
    assert "暂时还不能申请" in verdict.visible and "一年内无行政处罚" in verdict.visible

    [materials] = await p.press("所需材料")
    assert "第 1/3 页" in materials.visible
    [page2] = await p.press("下一页")
    assert page2.message_id == materials.message_id and "服务级别协议" in page2.visible
    [process] = await p.press("认证流程")
    assert "第二阶段审核" in process.visible and "三年有效" in process.visible
    [validity] = await p.press("有效期与年审")
    assert "暂停" in validity.visible and "撤销" in validity.visible
    # every press was answered, so no spinner is left
    queries = [c for c in api.calls if c.method == "answerCallbackQuery"]
    presses = [u for u in range(1, p.last_update_id + 1)]
    assert len(queries) == len(presses) - 1  # all but /start were button presses


async def test_a_press_is_answered_once_its_reply_is_out(api: FakeBotAPI, running: BotRunner) -> None:
    p = Prospect(api, 1003, language_code="zh")
    await p.send("/start")
    await p.press("ISO/IEC 20000")  # a new message
    await p.press("申请条件自测")
    await p.press("是")  # an edit in place
    replies = {"sendMessage", "editMessageText"}
    mine = [
        c
        for c in api.calls
        if (c.method in replies and c.params.get("chat_id") == "1003") or c.method == "answerCallbackQuery"
    ]
    kinds = [c.method for c in mine]
    # /start; then each press: its reply, then its answer (one each)
    assert kinds == [
        "sendMessage",
        *["sendMessage", "answerCallbackQuery"] * 2,
        "editMessageText",
        "answerCallbackQuery",
    ]
    answered = [c.params["callback_query_id"] for c in mine if c.method == "answerCallbackQuery"]
    assert len(set(answered)) == 3 and p.last_query_id == answered[-1]


async def test_a_press_whose_reply_fails_is_answered_all_the_same(
    api: FakeBotAPI, running: BotRunner
) -> None:
    p = Prospect(api, 1004, language_code="zh")
    await p.send("/start")
    api.fail("sendMessage", 400, "Bad Request: chat not found", chat_id=1004)
    assert await p.press("ISO/IEC 20000") == []  # the reply could not go (a 400 is not retried)
    assert p.last_query_id in api.callback_answers  # but the spinner was stopped, once
    assert [c.method for c in api.calls].count("answerCallbackQuery") == 1
    [menu] = await p.send("/menu")  # and the conversation goes on
    assert "认证咨询助手" in menu.visible


async def test_english_walk_through_with_contact_form(api: FakeBotAPI, running: BotRunner) -> None:
    p = Prospect(api, 1002, language_code="en-US")
    await p.send("/start")
    await p.press("ISO/IEC 20000")
    [verify] = await p.press("Verify")
    assert "a few working days" in verify.visible
    assert any(b.get("url") == "https://www.cnca.gov.cn/" for b in verify.buttons)
    [contact] = await p.press("Consultant")
    assert "Certification of interest: ISO/IEC 20000" in contact.visible
    await p.press("Leave my details")
    await p.send("<b>ACME</b> & Co")
    [wrong] = await p.send("12345")
    assert "doesn't look right" in wrong.visible
    [thanks, reference] = await p.send("+86 138 0013 8000")
    assert "&lt;b&gt;ACME&lt;/b&gt; &amp; Co" in thanks.text  # escaped HTML, accepted by "Telegram"
    assert "<b>ACME</b> & Co" in thanks.visible and "+8613800138000" in thanks.visible
    assert "Your reference number: Q000001" in reference.visible


async def test_typed_text_and_lang_switch(api: FakeBotAPI, running: BotRunner) -> None:
    p = Prospect(api, 1003, language_code="zh")
    await p.send("/start")
    [hint] = await p.send("嗯嗯")
    assert "没有看懂" in hint.visible and hint.buttons
    [prompt] = await p.send("/lang")
    assert "English" in prompt.labels
    replies = await p.press("English", prompt)
    assert "Switched to English" in p.text_since(replies) and "certification assistant" in p.text_since(
        replies
    )


async def test_state_survives_a_restart_mid_flow(api: FakeBotAPI, tmp_path) -> None:  # type: ignore[no-untyped-def]
    settings = make_settings(api, tmp_path)
    first = await BotRunner(api, settings).start()
    p = Prospect(api, 2001, language_code="zh")
    try:
        await p.send("/start")
        await p.press("ISO/IEC 20000")
        await p.press("申请条件自测")
        await p.press("是")
        [q3] = await p.press("是")
        assert "问题 3/6" in q3.visible
    finally:
        await first.stop()
    engine = create_engine(settings.database_url.replace("+aiosqlite", ""))
    with engine.connect() as conn:
        [(data,)] = conn.execute(text("select data from conversations where key = 'tg:2001'")).all()
    engine.dispose()
    assert json.loads(data)["c"]["p"] == ["iso20000", "selfcheck", 2]  # at question 3 (index 2)

    second = await BotRunner(api, settings).start()
    try:
        [q4] = await p.press("否")  # a button from before the restart still works
        assert q4.message_id == q3.message_id and "问题 4/6" in q4.visible
        for _ in range(3):
            [last] = await p.press("是")
        assert "体系运行3个月以上" in last.visible and "暂时还不能申请" in last.visible
    finally:
        await second.stop()


async def test_stale_buttons_and_double_taps(api: FakeBotAPI, running: BotRunner) -> None:
    p = Prospect(api, 3001, language_code="zh")
    [welcome] = await p.send("/start")
    await p.press("ISO/IEC 20000")
    await p.press("认证流程")
    # a button from an older message: expired, and the current menu again
    replies = await p.press("ISO 9001", welcome)
    assert "已过期" in replies[0].visible
    assert replies[-1].reply_markup and "第二阶段审核" in replies[-1].visible
    # a double tap: the second press of the same button arrives after the first moved on
    menu = p.menu
    data = p.button("审核关注点", menu)["callback_data"]
    await p.press_data(data, menu, wait=False)
    first_id = p.last_update_id
    before = len(p.messages)
    await p.press_data(data, menu)
    await api.wait_handled(first_id)
    assert len(p.messages) == before + 1  # one new view, no second message
    toast = api.callback_answers[p.last_query_id]
    assert "过期" in toast.get("text", "")


async def test_updates_of_one_chat_are_handled_in_order(api: FakeBotAPI, running: BotRunner) -> None:
    p = Prospect(api, 3002, language_code="en")
    await p.send("/start")
    await p.press("ISO/IEC 20000")
    await p.press("Can we apply")
    question = p.menu
    # five answers tapped in a burst, each on the message as it was edited
    ids = []
    for _ in range(5):
        await p.press("Yes", question, wait=False)
        ids.append(p.last_update_id)
        for uid in ids:
            await api.wait_handled(uid)
    [verdict] = await p.press("Yes", question)
    assert "you can apply now" in verdict.visible.lower()


UNEXPECTED = [
    {
        "sticker": {
            "file_id": "s",
            "file_unique_id": "s",
            "type": "regular",
            "width": 512,
            "height": 512,
            "is_animated": False,
            "is_video": False,
        }
    },
    {"photo": [{"file_id": "p", "file_unique_id": "p", "width": 90, "height": 90}]},
    {"voice": {"file_id": "v", "file_unique_id": "v", "duration": 3}},
    {"document": {"file_id": "d", "file_unique_id": "d", "file_name": "licence.pdf"}},
    {"location": {"latitude": 39.9, "longitude": 116.4}},
    {"video_note": {"file_id": "vn", "file_unique_id": "vn", "length": 240, "duration": 2}},
    {"animation": {"file_id": "a", "file_unique_id": "a", "width": 1, "height": 1, "duration": 1}},
    {"contact": {"phone_number": "+8613800138000", "first_name": "Wang"}},
    {"audio": {"file_id": "au", "file_unique_id": "au", "duration": 30}},
    {"dice": {"emoji": "🎲", "value": 3}},
]


async def test_fifty_unexpected_updates(
    api: FakeBotAPI, running: BotRunner, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR)
    p = Prospect(api, 4001, language_code="zh")
    await p.send("/start")
    await p.press("ISO/IEC 20000")
    menu = p.menu
    sent = 0
    for content in UNEXPECTED * 2:  # 20 kinds of non-text message
        [reply] = await p.send_other(**content)  # a hint, with the current buttons
        assert "只能读懂文字和选项" in reply.visible and reply.reply_markup, content
        sent += 1
    for i in range(5):  # edited messages
        [reply] = await p.edit(1, f"改了 {i}")
        assert "修改过的消息" in reply.visible and reply.reply_markup
        sent += 1
    for data in ["nonsense", "zz:g0", "x" * 64, "0:", ":", "999999:b", "1:g999", "1:l", "1:lxx", "1:p99"]:
        queries_before = len(api.callback_answers)
        replies = await p.press_data(data, menu)
        assert len(api.callback_answers) == queries_before + 1  # answered
        toast = api.callback_answers[p.last_query_id].get("text", "")
        assert (replies and "已过期" in replies[0].visible) or "过期" in toast, data
        sent += 1
    for body in [
        "x" * 10_000,
        "。" * 5000,
        " ",
        "/",
        "/unknown_cmd",
        "<script>alert(1)</script>",
        "&amp;&lt;",
        "\u0000\u200b",
        "💩" * 3000,
        "/start no_such_flow",
    ]:
        replies = await p.send(body)
        assert replies, body[:20]
        for r in replies:
            assert len(r.visible) <= 4096
        sent += 1
    # five duplicates: the same update delivered again must not be handled twice
    for _ in range(5):
        before = len(p.messages)
        await p.send("第一次")
        assert len(p.messages) == before + 1
        await api.push(p.last_body, update_id=p.last_update_id)  # delivered again
        [help_reply] = await p.send("/help")  # handled after the duplicate: its reply is the only new one
        assert "/menu" in help_reply.visible and len(p.messages) == before + 2
        sent += 1
    assert sent == 50
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], [
        r.getMessage() for r in caplog.records
    ]


async def test_an_edit_that_fails_falls_back_to_a_new_message(api: FakeBotAPI, running: BotRunner) -> None:
    p = Prospect(api, 6001, language_code="zh")
    await p.send("/start")
    await p.press("ISO/IEC 20000")
    [question] = await p.press("申请条件自测")
    api.fail("editMessageText", 400, "Bad Request: message can't be edited")
    [fresh] = await p.press("是")
    assert fresh.message_id != question.message_id and "问题 2/6" in fresh.visible
    [edited] = await p.press("是", fresh)  # and the new message is the one edited next
    assert edited.message_id == fresh.message_id and "问题 3/6" in edited.visible


async def test_fake_server_parses_multipart_uploads(api: FakeBotAPI, running: BotRunner) -> None:
    from aiogram.types import BufferedInputFile

    assert running.bot is not None
    sent = await running.bot.send_document(
        7001, BufferedInputFile("公司,电话\n".encode(), "leads.csv"), caption="x"
    )
    assert sent.document is not None and sent.document.file_name == "leads.csv"
    [doc] = api.documents
    assert doc["chat_id"] == 7001 and doc["content"].decode() == "公司,电话\n"


async def test_questions_mid_flow_and_mid_form(api: FakeBotAPI, running: BotRunner) -> None:
    p = Prospect(api, 9001, language_code="zh-hant")
    await p.send("/start")
    await p.press("ISO/IEC 20000")
    [question] = await p.press("申请条件自测")
    [answer] = await p.send("證書有效期多久？")  # Traditional Chinese, mid self-check
    assert "三年" in answer.visible or "3 年" in answer.visible
    assert "问题 1/6" in answer.visible and {"✅ 是", "❌ 否"} <= set(answer.labels)
    [edited] = await p.press("是", question)  # and the self-check goes on where it was
    assert "问题 2/6" in edited.visible
    await p.send("/menu")
    await p.press("ISO 9001")
    await p.press("留下联系方式")
    await p.press("同意并继续")
    await p.send("某公司")
    await p.send("林先生")
    [answer] = await p.send("外资企业可以申请吗？")  # asked while the phone number is expected
    assert "外国企业" in answer.visible or "外资" in answer.visible
    assert "联系电话" in answer.visible  # and the field is asked again
    replies = await p.send("13800138000")
    assert "电子邮箱" in replies[-1].visible


async def test_passing_bot_api_errors_are_retried(api: FakeBotAPI, running: BotRunner) -> None:
    p = Prospect(api, 9501, language_code="en")
    api.fail("sendMessage", 502, "Bad Gateway", times=2, chat_id=9501)
    [welcome] = await p.send("/start")  # delivered on the third try
    assert "certification assistant" in welcome.visible
    api.fail("answerCallbackQuery", 429, "Too Many Requests: retry after 1", retry_after=1)
    [intro] = await p.press("ISO/IEC 20000")
    assert "ISO/IEC 20000" in intro.visible and p.last_query_id in api.callback_answers
    api.fail("sendMessage", 400, "Bad Request: chat not found", times=1, chat_id=9501)
    assert await p.send("/menu") == []  # a 400 is not retried (and nothing crashes)
    [menu] = await p.send("/menu")
    assert "certification assistant" in menu.visible


async def test_a_press_telegram_will_not_let_us_answer_is_handled_all_the_same(
    api: FakeBotAPI, running: BotRunner, caplog: pytest.LogCaptureFixture
) -> None:
    p = Prospect(api, 9601, language_code="zh")
    await p.send("/start")
    api.fail("answerCallbackQuery", 400, "Bad Request: query is too old and response timeout expired")
    [intro] = await p.press("ISO/IEC 20000")  # the reply comes, though the spinner could not be stopped
    assert "ISO/IEC 20000" in intro.visible and p.last_query_id not in api.callback_answers
    [selfcheck] = await p.press("申请条件自测")  # and the conversation goes on from there
    assert "问题 1/6" in selfcheck.visible and p.last_query_id in api.callback_answers
    assert "could not answer a button press" in caplog.text
    assert not [r for r in caplog.records if r.levelname == "ERROR"]
