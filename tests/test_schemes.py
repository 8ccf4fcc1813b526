"""Every certification scheme walked whole through the engine, in both languages."""

from __future__ import annotations

import re

import pytest

from bot.content import Content
from bot.content.model import CheckStep, PagesStep
from bot.engine.conversation import Conversation
from bot.engine.engine import Engine
from bot.engine.render import MESSAGE_LIMIT, visible_length

SCHEMES = ["iso20000", "iso9001", "iso27001", "three"]
PRICE = re.compile(r"(\d[\d,.]*\s*(元|万|千|RMB|CNY|USD|yuan|dollars?))|([¥$€]\s*\d)", re.I)


def _walk(engine: Engine, content: Content, fid: str, lang: str) -> dict[str, str]:
    """Visit every step of a flow by pressing buttons; return the text seen at each step."""
    conv = Conversation(engine, language_code=lang).start(fid)
    flow = content.flows[fid]
    seen: dict[str, str] = {flow.start: conv.text}
    intro_labels = [b.label for b in conv.buttons_all if b.payload and b.label not in {"⬅️ Back", "⬅️ 返回"}]
    for label in intro_labels:
        conv.start(fid).press(label)
        flow_id, step_id, _ = conv.position
        if flow_id != fid:
            continue
        step = flow.steps[step_id]
        text = conv.text
        if isinstance(step, PagesStep):
            conv.press("📄")
            text = conv.text
        if isinstance(step, CheckStep):
            for _ in step.conditions:
                conv.press("✅")
            text += "\n" + conv.text
        for reply in conv.replies:
            assert visible_length(reply.text) <= MESSAGE_LIMIT
            for row in reply.buttons:
                for b in row:
                    assert b.payload is None or len(b.payload.encode()) <= 64
        seen[step_id] = text
    return seen


@pytest.mark.parametrize("lang", ["zh", "en"])
@pytest.mark.parametrize("fid", SCHEMES)
def test_whole_flow_is_reachable_from_its_menu_and_states_the_rules(
    engine: Engine, content: Content, fid: str, lang: str
) -> None:
    seen = _walk(engine, content, fid, lang)
    assert set(seen) == set(content.flows[fid].steps), "every step is one tap from the scheme's menu"
    everything = "\n".join(seen.values())
    assert not PRICE.search(everything), PRICE.search(everything)
    if lang == "zh":
        assert re.search(r"(三|3)\s*个月", seen["process"]), "system runs at least 3 months first"
        assert re.search(r"(三|3)\s*年", seen["validity"]) and "暂停" in seen["validity"]
        assert "撤销" in seen["validity"] or "撤消" in seen["validity"]
        assert "电议" in seen["intro"]
        assert "可以申请" in seen["selfcheck"]
        assert "认证结果" in seen["verify"] or "认监委" in seen["verify"]
        assert "无效" in seen["verify"]
    else:
        assert re.search(r"(three|3)\s*months", seen["process"], re.I)
        assert re.search(r"(three|3)\s*years", seen["validity"], re.I)
        assert "suspend" in seen["validity"].lower()
        assert "revoked" in seen["validity"].lower() or "withdrawn" in seen["validity"].lower()
        assert "apply now" in seen["selfcheck"].lower()
        assert "not valid" in seen["verify"].lower() or "invalid" in seen["verify"].lower()


@pytest.mark.parametrize("fid", SCHEMES)
def test_selfcheck_all_no_lists_every_condition(engine: Engine, content: Content, fid: str) -> None:
    step = content.flows[fid].steps["selfcheck"]
    assert isinstance(step, CheckStep)
    conv = Conversation(engine, language_code="en").start(fid).press("Can we apply")
    for _ in step.conditions:
        conv.press("❌ No")
    assert f"{len(step.conditions)} conditions" in conv.text
    for cond in step.conditions:
        assert content.localise(cond.name, "en") in conv.text
    assert conv.state is not None
    assert conv.state.answers[fid] == {c.id: False for c in step.conditions}


@pytest.mark.parametrize("fid", SCHEMES)
def test_every_scheme_leads_to_the_lead_form_with_the_scheme_chosen(engine: Engine, fid: str) -> None:
    conv = Conversation(engine, language_code="zh").start(fid)
    conv.press("留下联系方式").press("同意并继续")
    for answer in ["某某科技有限公司", "赵女士", "+86 139 1234 5678"]:
        conv.send(answer)
    conv.press("跳过")  # e-mail
    conv.send("上海").send("120").send("2")
    assert conv.position == ("lead", "schemes", 0)
    assert [label for label in conv.labels if label.startswith("✅")] != []  # pre-chosen
    conv.press("选好了").press("1–3 个月").press("跳过")
    conv.press("确认提交")
    [effect] = conv.effects
    assert effect.name == "lead" and effect.origin == fid
    assert effect.answers["schemes"] == [fid]
    assert effect.answers["phone"] == "+8613912345678"


def test_consultant_button_asks_name_and_phone_only(engine: Engine) -> None:
    conv = Conversation(engine, language_code="zh").start("iso9001")
    conv.press("咨询顾问").press("留下联系方式").send("钱先生").send("13912345678")
    [effect] = conv.effects
    assert effect.name == "enquiry" and effect.answers == {
        "name": "钱先生",
        "phone": "+8613912345678",
    }


def test_scheme_specific_facts(engine: Engine, content: Content) -> None:
    t27 = "\n".join(_walk(engine, content, "iso27001", "en").values())
    assert "27001:2022" in t27 and "Statement of Applicability" in t27 and "93" in t27
    three = "\n".join(_walk(engine, content, "three", "zh").values())
    for std in ("ISO 9001", "ISO 14001", "ISO 45001"):
        assert std in three
    q = "\n".join(_walk(engine, content, "iso9001", "zh").values())
    assert "ISO 9001:2015" in q
