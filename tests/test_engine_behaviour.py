"""Navigation, commands, typed answers and bad input, through the pure engine."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from bot.content import Content, load_content
from bot.engine.conversation import Conversation
from bot.engine.engine import Engine
from bot.engine.events import Command, LiveRelay, Press, TextIn
from bot.engine.state import State

from .conftest import FLOWS


def test_state_is_small_json_and_never_mutated(engine: Engine) -> None:
    first = engine.handle(None, Command("start", "iso20000"))
    before = json.dumps(first.state.to_dict(), sort_keys=True)
    button = first.replies[-1].buttons[0][0]
    second = engine.handle(first.state, Press(button.payload or ""))
    assert json.dumps(first.state.to_dict(), sort_keys=True) == before
    assert second.state.position != first.state.position
    encoded = json.dumps(second.state.to_dict())
    assert len(encoded) < 400
    assert State.from_dict(json.loads(encoded)) == second.state


def test_locale_from_telegram_language_code(engine: Engine) -> None:
    assert Conversation(engine, language_code="zh-hant").start().state.locale == "zh"  # type: ignore[union-attr]
    assert Conversation(engine, language_code="de").start().state.locale == "en"  # type: ignore[union-attr]
    assert Conversation(engine, language_code=None).start().state.locale == "zh"  # type: ignore[union-attr]


def test_lang_switches_and_reshows_the_current_step(zh: Conversation) -> None:
    zh.press("ISO/IEC 20000").command("lang")
    assert "English" in zh.labels and "中文" in zh.labels
    zh.press("English")
    assert "Switched to English" in zh.text and "ISO/IEC 20000 IT service management" in zh.text
    assert zh.position == ("iso20000", "intro", 0)
    zh.command("lang", "zh")
    assert "已切换为中文" in zh.text


def test_back_goes_to_the_step_actually_visited(zh: Conversation) -> None:
    # verify is the last step in the file; we reach it from the intro directly
    zh.press("ISO/IEC 20000").press("证书真伪查询")
    assert zh.position[1] == "verify"
    zh.press("返回")
    assert zh.position == ("iso20000", "intro", 0)
    # materials -> process -> validity; back twice lands on materials, not on the file's neighbour
    zh.press("所需材料").press("认证流程").press("有效期与年审")
    zh.press("返回")
    assert zh.position[1] == "process"
    zh.press("返回")
    assert zh.position[1] == "materials"


def test_back_from_a_selfcheck_question_goes_to_the_previous_question(zh: Conversation) -> None:
    zh.press("ISO/IEC 20000").press("申请条件自测").press("是").press("否")
    assert zh.position == ("iso20000", "selfcheck", 2)
    zh.press("返回")
    assert zh.position == ("iso20000", "selfcheck", 1) and "问题 2/6" in zh.text
    zh.press("是")
    assert zh.state is not None and zh.state.answers["iso20000"]["system_built"] is True


def test_main_menu_from_everywhere(zh: Conversation) -> None:
    zh.press("ISO 27001") if "ISO 27001" in " ".join(zh.labels) else None
    zh.command("menu")
    zh.press("ISO/IEC 20000").press("申请条件自测").press("主菜单")
    assert zh.position == ("main", "menu", 0)
    assert "主菜单" not in zh.labels


def test_consultant_button_on_every_scheme_step(engine: Engine, content: Content) -> None:
    for fid, flow in content.flows.items():
        if flow.kind != "scheme":
            continue
        conv = Conversation(engine, language_code="en").start(fid)
        for label in [b.label for b in conv.buttons_all if b.payload][:8]:
            conv.press(label)
            assert "💬 Consultant" in conv.labels or conv.position[0] == "contact", (fid, conv.position)
            conv.command("back")


def test_restart_clears_answers_and_goes_to_the_flow_start(zh: Conversation) -> None:
    zh.press("ISO/IEC 20000").press("申请条件自测").press("否").press("是")
    zh.command("restart")
    assert "从头开始" in zh.text
    assert zh.position == ("iso20000", "intro", 0)
    assert zh.state is not None and zh.state.answers.get("iso20000", {}) == {}


def test_cancel_mid_form_drops_what_was_typed(zh: Conversation) -> None:
    zh.press("咨询顾问").press("留下联系方式").send("王经理")
    assert zh.position == ("contact", "phone", 0)
    zh.command("cancel")
    assert "已取消" in zh.text and zh.position == ("main", "menu", 0)
    assert zh.state is not None and "contact" not in zh.state.answers
    assert zh.effects == []


def test_contact_form_validates_then_hands_over_once(zh: Conversation) -> None:
    zh.press("ISO/IEC 20000").press("申请条件自测").press("否")
    zh.press("咨询顾问")
    assert "ISO/IEC 20000" in zh.text  # the certification of interest is carried over
    zh.press("留下联系方式").send("<b>ACME</b> & Co")
    zh.send("12345")
    assert "电话号码看起来不对" in zh.text and zh.position[1] == "phone"
    zh.send("138 0013 8000")
    assert zh.position == ("contact", "done", 0)
    assert "&lt;b&gt;ACME&lt;/b&gt; &amp; Co" in zh.html and "+8613800138000" in zh.text
    [effect] = zh.effects
    assert effect.name == "enquiry"
    assert effect.answers == {"name": "<b>ACME</b> & Co", "phone": "+8613800138000"}
    assert effect.origin == "iso20000"
    assert effect.origin_answers == {"licence": False}
    zh.command("help")  # showing the step again does not hand over again
    assert len(zh.effects) == 1


def test_retry_cap_escalates_instead_of_looping(zh: Conversation) -> None:
    zh.press("咨询顾问").press("留下联系方式").send("李四")
    zh.send("abc").send("12")
    assert "电话号码看起来不对" in zh.text
    zh.send("000")
    assert "顾问" in zh.text and "🏠 主菜单" in zh.labels and "电话号码看起来不对" not in zh.text
    zh.press("主菜单")
    assert zh.position == ("main", "menu", 0)


def test_unrecognised_text_at_a_menu_asks_to_choose_then_escalates(en: Conversation) -> None:
    en.press("ISO/IEC 20000")
    en.send("qwertyuiop")
    assert "didn't catch that" in en.text and "📋 Materials" in en.labels
    assert en.position == ("iso20000", "intro", 0)
    en.send("asdfgh").send("zxcvbn")
    assert "consultant can help" in en.text and "💬 Consultant" in en.labels


def test_typed_label_or_a_unique_part_of_it_works_like_the_button(zh: Conversation) -> None:
    zh.send("ISO/IEC 20000")
    assert zh.position == ("iso20000", "intro", 0)
    zh.send("材料")
    assert zh.position == ("iso20000", "materials", 0)


def test_stale_button_gets_expired_and_the_current_menu(engine: Engine) -> None:
    conv = Conversation(engine, language_code="zh").start()
    old = conv.find("ISO/IEC 20000")
    conv.press("ISO/IEC 20000").press("认证流程")
    position = conv.position
    conv.handle(Press(old.payload or ""))
    assert "已过期" in conv.text and conv.position == position
    assert any("审核关注点" in label for label in conv.labels)
    conv.handle(Press("garbage-without-colon"))
    assert "已过期" in conv.text
    conv.handle(Press(f"{conv.find('审核关注点').payload.split(':')[0]}:g99"))  # type: ignore[union-attr]
    assert "已过期" in conv.text and conv.position == position


def test_a_button_from_an_earlier_conversation_is_stale(engine: Engine) -> None:
    conv = Conversation(engine, language_code="en").start()
    conv.press("ISO/IEC 20000")
    old = conv.find("Process")
    conv.start()  # /start again: a new conversation
    conv.handle(Press(old.payload or ""))
    assert "expired" in conv.text and conv.position == ("main", "menu", 0)


def test_unsupported_message_gets_a_hint_and_the_step_again(zh: Conversation) -> None:
    zh.press("ISO/IEC 20000").send_unsupported("sticker")
    assert "只能读懂文字和选项" in zh.text and zh.position == ("iso20000", "intro", 0)
    assert "📋 所需材料" in zh.labels


def test_huge_text_is_handled_politely(zh: Conversation) -> None:
    zh.press("咨询顾问").press("留下联系方式").send("名" * 10_000)
    assert "不超过 60 个字" in zh.text and zh.position[1] == "name"
    zh.command("menu").send("x" * 10_000)
    assert "没有看懂" in zh.text


def test_unknown_command_and_help(zh: Conversation) -> None:
    zh.command("frobnicate")
    assert "没有这个命令" in zh.text
    zh.command("help")
    assert "/menu" in zh.text and "/lang" in zh.text


def test_first_message_without_start_greets_with_the_menu(engine: Engine) -> None:
    result = engine.handle(None, TextIn("你好"), language_code="zh-CN")
    assert "认证咨询助手" in result.replies[0].text
    assert result.state.position == ("main", "menu", 0)


def test_start_with_a_deep_link_opens_that_flow(engine: Engine) -> None:
    conv = Conversation(engine, language_code="en").start("iso27001")
    assert conv.position[0] == "iso27001"
    conv.start("no-such-flow")
    assert conv.position == ("main", "menu", 0)


def test_guide_branches_on_earlier_answers(zh: Conversation) -> None:
    zh.press("不确定选哪个").press("IT服务")
    assert "ISO/IEC 20000" in zh.text and zh.position == ("main", "rec_it", 0)
    zh.command("menu").press("不确定选哪个").press("生产").press("是，也要环境")
    assert zh.position == ("main", "rec_three", 0)
    zh.command("menu").press("不确定选哪个").press("生产").press("否，质量")
    assert zh.position == ("main", "rec_quality", 0)
    zh.press("了解 ISO 9001")
    assert zh.position[0] == "iso9001"


def test_buttons_made_with_other_content_are_expired(engine: Engine) -> None:
    conv = Conversation(engine, language_code="en").start("iso20000")
    assert conv.state is not None
    button = conv.find("Process")
    conv.state.version = "older-content"  # as if the content was reloaded since
    conv.handle(Press(button.payload or ""))
    assert "expired" in conv.text and conv.position == ("iso20000", "intro", 0)
    conv.press("Process")  # the fresh menu works
    assert conv.position[1] == "process"


def test_a_removed_step_continues_at_the_flow_start(engine: Engine) -> None:
    state = Conversation(engine, language_code="zh").start("iso20000").state
    assert state is not None
    state.step, state.version = "a_step_that_was_removed", "older-content"
    result = engine.handle(state, TextIn("你好"))
    assert "内容刚刚更新过" in result.replies[0].text
    assert result.state.position == ("iso20000", "intro", 0)


def test_an_unanswered_question_goes_with_the_enquiry(engine: Engine) -> None:
    conv = Conversation(engine, language_code="zh").start("iso20000")
    conv.send("你们办公室有<停车位>吗")
    conv.press("咨询顾问")
    assert "您的问题：你们办公室有<停车位>吗" in conv.text and "&lt;停车位&gt;" in conv.html
    conv.press("留下联系方式").send("孙女士").send("13912345678")
    [effect] = conv.effects
    assert effect.answers["question"] == "你们办公室有<停车位>吗"
    assert conv.state is not None and "question" not in conv.state.answers["contact"]


def test_english_words_pick_buttons_only_whole(en: Conversation) -> None:
    en.send("hi")  # "which" in "Not sure which one?" contains "hi": not a match
    assert en.position == ("main", "menu", 0) and "Hello" in en.text
    en.send("not sure")
    assert en.position == ("main", "guide_business", 0)


def test_a_live_chat_relays_everything_until_it_ends(zh: Conversation) -> None:
    from bot.engine.events import LiveClosed

    zh.press("ISO/IEC 20000").press("咨询顾问").press("现在和顾问聊")
    assert zh.position == ("contact", "live", 0) and zh.engine.in_live_chat(zh.state)
    assert [e.name for e in zh.effects] == ["live"] and zh.effects[0].origin == "iso20000"
    zh.send("证书有效期多久")  # a question the FAQ knows: it goes to the person instead
    assert zh.replies == [] and zh.effects[-1] == LiveRelay("text", "证书有效期多久")
    zh.send_unsupported("photo")
    assert zh.replies == [] and zh.effects[-1] == LiveRelay("photo")
    zh.handle(LiveClosed())  # staff ended it: no "prospect left" effect, the bot is back
    assert "顾问已结束本次对话" in zh.text and zh.position[:2] == ("main", "menu")
    assert [e.name for e in zh.effects] == ["live", "relay", "relay"]
    zh.send("证书有效期多久")
    assert "证书有效期为三年" in zh.text


def test_leaving_a_live_chat_ends_it(zh: Conversation) -> None:
    zh.press("咨询顾问").press("现在和顾问聊")
    zh.command("menu")
    assert [e.name for e in zh.effects] == ["live", "live_end"] and zh.position[:2] == ("main", "menu")
    zh.press("咨询顾问").press("现在和顾问聊").press("结束对话")
    assert [e.name for e in zh.effects][-2:] == ["live", "live_end"]


def test_a_selfcheck_question_is_built_once_for_everyone(engine: Engine) -> None:
    first = Conversation(engine, language_code="zh").start("iso20000").press("申请条件自测").press("是")
    second = Conversation(engine, language_code="zh").start("iso20000").press("申请条件自测").press("否")
    assert "问题 2/6" in first.text and first.replies[-1].kind == "view"
    # the same question (whatever was answered before) is the same view, built once
    assert first.replies[-1] is second.replies[-1]
    first.press("是").press("是").press("是").press("是").press("否")
    second.press("是").press("是").press("是").press("是").press("是")
    assert first.position[2] == second.position[2] == 6  # the verdicts are each prospect's own
    assert "至少一次管理评审" not in second.text and "至少一次管理评审" not in first.text
    # each verdict names that prospect's own gap: the last condition for one, the first for the other
    assert "一年内无行政处罚" in first.text and "营业执照或等效文件" not in first.text
    assert "营业执照或等效文件" in second.text and "一年内无行政处罚" not in second.text


def test_a_question_that_uses_earlier_answers_is_shown_to_each_as_answered(tmp_path: Path) -> None:
    flows = tmp_path / "flows"
    shutil.copytree(FLOWS, flows)
    path = flows / "iso20000.yaml"
    text = path.read_text(encoding="utf-8")
    old = 'zh: "IT 服务管理体系是否已按 ISO/IEC 20000 标准的要求建立？"'
    assert old in text
    new = "zh: \"（上一题：{{ '有' if answers.licence else '没有' }}执照）体系是否已建立？\""
    path.write_text(text.replace(old, new, 1), encoding="utf-8")
    engine = Engine(load_content(flows))
    yes = Conversation(engine, language_code="zh").start("iso20000").press("申请条件自测").press("是")
    no = Conversation(engine, language_code="zh").start("iso20000").press("申请条件自测").press("否")
    assert "上一题：有执照" in yes.text
    assert "上一题：没有执照" in no.text
    # the first question uses no answers: still one view for everyone
    again = Conversation(engine, language_code="zh").start("iso20000").press("申请条件自测")
    assert (
        again.replies[-1]
        is Conversation(engine, language_code="zh").start("iso20000").press("申请条件自测").replies[-1]
    )
