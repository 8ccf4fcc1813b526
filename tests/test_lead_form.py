"""The lead form through the engine: consent, validation, choices, the summary and its changes."""

from __future__ import annotations

from bot.engine.conversation import Conversation
from bot.engine.engine import Engine
from bot.engine.events import SharedContact


def _to_summary(conv: Conversation) -> Conversation:
    conv.press("同意并继续")
    conv.send("<b>ACME</b> & Co")
    conv.send("王经理")
    conv.send("13800138000")
    conv.send("wang@Example.com")
    conv.send("北京")
    conv.send("80人")
    conv.send("3")
    conv.press("选好了")
    conv.press("3–6 个月")
    conv.send("希望年底前拿证")
    return conv


def test_consent_is_asked_first_and_declining_keeps_nothing(engine: Engine) -> None:
    conv = Conversation(engine, language_code="zh").start("lead")
    assert "隐私说明" in conv.text and "/forget" in conv.text
    conv.press("不同意")
    assert "没有保存任何信息" in conv.text and conv.effects == []
    assert conv.state is not None and "company" not in conv.state.answers.get("lead", {})


def test_wrong_values_are_asked_again(engine: Engine) -> None:
    conv = Conversation(engine, language_code="zh").start("lead").press("同意并继续")
    conv.send("   ")
    assert "请输入单位名称" in conv.text and conv.position[1] == "company"
    conv.send("某公司").send("李").send("123")
    assert "电话号码看起来不对" in conv.text and conv.position[1] == "phone"
    conv.send("13800138000").send("not-an-email")
    assert "邮箱地址看起来不对" in conv.text
    conv.send("a@b.cn").send("深圳").send("很多")
    assert "请输入员工人数" in conv.text
    conv.send("0")
    assert conv.position[1] == "headcount"
    conv.send("25")
    assert conv.position[1] == "sites"


def test_summary_shows_everything_escaped_and_one_field_can_be_changed(engine: Engine) -> None:
    conv = _to_summary(Conversation(engine, language_code="zh").start("iso27001").press("留下联系方式"))
    assert conv.position == ("lead", "summary", 0)
    html = conv.html
    assert "&lt;b&gt;ACME&lt;/b&gt; &amp; Co" in html and "<b>ACME</b>" not in html
    for shown in (
        "王经理",
        "+8613800138000",
        "wang@example.com",
        "北京",
        "80",
        "ISO 27001",
        "3–6 个月",
        "希望年底前拿证",
    ):
        assert shown in conv.text, shown
    conv.press("修改电话")
    assert conv.position[1] == "phone"
    conv.send("+852 5123 4567")
    assert conv.position == ("lead", "summary", 0)  # straight back to the summary
    assert "+85251234567" in conv.text and "+8613800138000" not in conv.text
    conv.press("修改认证")
    conv.press("ISO 9001")  # ticks a second one
    assert "✅ ISO 9001" in conv.labels and "✅ ISO 27001" in conv.labels
    conv.press("选好了")
    assert conv.position == ("lead", "summary", 0) and "ISO 9001、ISO 27001" in conv.text
    conv.press("确认提交")
    [effect] = conv.effects
    assert effect.answers == {
        "consent": True,
        "company": "<b>ACME</b> & Co",
        "contact_name": "王经理",
        "phone": "+85251234567",
        "email": "wang@example.com",
        "city": "北京",
        "headcount": 80,
        "sites": 3,
        "schemes": ["iso9001", "iso27001"],
        "timeline": "6m",
        "note": "希望年底前拿证",
    }
    assert effect.origin == "iso27001"


def test_shared_contact_answers_the_phone_question(engine: Engine) -> None:
    conv = Conversation(engine, language_code="en").start("lead").press("I agree")
    conv.send("ACME").send("Li")
    assert conv.replies[-1].request_contact == "📱 Share my phone number"
    conv.handle(SharedContact("8613800138000"))  # Telegram sends it without "+"
    assert conv.position[1] == "email"
    assert conv.state is not None and conv.state.answers["lead"]["phone"] == "+8613800138000"
    conv.handle(SharedContact("8613800138000"))  # not expected here: a hint
    assert "only read text" in conv.text and conv.position[1] == "email"


def test_multiple_choice_needs_one_option(engine: Engine) -> None:
    conv = Conversation(engine, language_code="en").start("lead").press("I agree")
    for answer in ["ACME", "Li", "+86 138 0013 8000", "li@acme.cn", "Shanghai", "10", "1"]:
        conv.send(answer)
    assert conv.position[1] == "schemes" and not [x for x in conv.labels if x.startswith("✅")]
    conv.press("Done")
    assert conv.position[1] == "schemes" and "didn't catch that" in conv.text
    conv.send("ISO 9001")  # typing a label ticks it
    assert "✅ ISO 9001" in conv.labels
    conv.press("Done")
    assert conv.position[1] == "timeline"
