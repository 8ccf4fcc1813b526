"""Typed requests do what their buttons do, at a menu; in a form field, text is the answer."""

from __future__ import annotations

import pytest

from bot.content import Content
from bot.engine.conversation import Conversation
from bot.engine.engine import Engine
from bot.engine.intents import Intents


@pytest.mark.parametrize(
    ("text", "action"),
    [
        ("我想找人工客服", "consultant"),
        ("轉人工", "consultant"),
        ("talk to a human please", "consultant"),
        ("can I speak to someone", "consultant"),
        ("我要留个电话", "lead"),
        ("leave my details", "lead"),
        ("回主菜单", "menu"),
        ("Main menu!", "menu"),
        ("返回上一步", "back"),
        ("go back", "back"),
        ("重新開始", "restart"),
        ("start over", "restart"),
        ("换成英文", "lang:en"),
        ("English please", "lang:en"),
        ("切换中文", "lang:zh"),
        ("switch to Chinese", "lang:zh"),
        # questions that merely contain a phrase are not requests
        ("人工智能公司适合做27001吗", None),
        ("证书被撤销了还能返回正常状态吗", None),
        ("what is the background of ISO 20000", None),
        ("can we get our money back if the audit fails", None),
        ("is there an English version of the certificate", None),
        ("证书有效期多久", None),
    ],
)
def test_a_short_request_is_recognised_and_a_question_is_not(
    content: Content, text: str, action: str | None
) -> None:
    assert Intents(content.intents).find(text) == action


def test_requests_typed_at_a_menu_do_what_the_buttons_do(engine: Engine) -> None:
    conv = Conversation(engine, language_code="zh").start()
    conv.press("ISO/IEC 20000").press("所需材料")
    conv.send("返回上一步")
    assert (conv.state.flow, conv.state.step) == ("iso20000", "intro")
    conv.send("转人工")
    assert (conv.state.flow, conv.state.step) == ("contact", "intro")
    conv.send("回主菜单")
    assert (conv.state.flow, conv.state.step) == ("main", "menu")
    conv.send("English please")
    assert conv.state.locale == "en" and "Switched to English" in conv.history[-1].replies[0].text
    conv.send("leave my details")
    assert (conv.state.flow, conv.state.step) == ("lead", "intro")
    assert ("intent", "lead") in conv.history[-1].notes


def test_in_a_form_field_a_phrase_is_the_answer(engine: Engine) -> None:
    conv = Conversation(engine, language_code="zh").start()
    conv.press("ISO/IEC 20000").press("留下联系方式").press("同意并继续")
    assert conv.state.step == "company"
    conv.send("返回科技")  # a company name, not "go back"
    assert conv.state.answers["lead"]["company"] == "返回科技"
