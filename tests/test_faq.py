"""Free questions: the matcher's measured quality, and answers mid-flow and mid-form."""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path

import zhconv
from rapidfuzz import fuzz

from bot.content import Content
from bot.content.model import FaqEntry
from bot.engine.conversation import Conversation
from bot.engine.engine import Engine
from bot.faq.evaluate import evaluate, load_questions, parts
from bot.faq.matcher import FaqMatcher
from bot.faq.passages import Passage, passages

EVAL = Path(__file__).resolve().parent / "faq_eval.yaml"
FAQ_NONE = FaqEntry.model_construct(id="none")


def _folded(text: str) -> str:
    """A question as written, in Simplified characters, for spotting copies: the characters only
    (the matcher's regional words, 稽核 read as 审核, are its understanding, not a copy)."""
    plain = zhconv.convert(unicodedata.normalize("NFKC", text), "zh-cn").lower()
    return re.sub(r"[\W_]+", "", plain)


def test_the_labelled_set_is_broad_and_independent_of_the_faq(content: Content) -> None:
    questions = load_questions(EVAL)
    assert len(questions) >= 150
    out = [q for q, e in questions if e == "none"]
    assert len(out) / len(questions) >= 0.20
    ids = {e.id for e in content.faq}
    assert {e for _, e in questions} - {"none"} <= ids
    assert ids <= {e for _, e in questions}, "every entry is asked about"
    assert any(re.search(r"[證費審認機構關]", q) for q, _ in questions), "Traditional Chinese"
    assert any(re.fullmatch(r"[ -~]+", q) for q, _ in questions), "English"
    examples = [_folded(x) for e in content.faq for xs in e.examples.values() for x in xs]
    for question, _ in questions:
        q = _folded(question)
        close = [x for x in examples if fuzz.ratio(q, x) >= 90]
        assert not close, f"{question!r} is (nearly) an FAQ example: {close}"


def test_the_held_out_part_is_kept_apart(content: Content) -> None:
    """The held-out questions are nobody's examples: none is (nearly) an FAQ example or a question
    of the development part, and the part is broad enough to measure with."""
    sets = parts(EVAL.parent)
    held, dev = sets["held-out"], sets["development"]
    assert len(held) + len(dev) >= 500 and len(held) >= 250
    assert sum(q.expect == "none" for q in held) / len(held) >= 0.15
    assert sum(q.expect == "passage" for q in held) >= 50
    examples = [_folded(x) for e in content.faq for xs in e.examples.values() for x in xs]
    seen = [_folded(q.q) for q in dev]
    for question in held:
        q = _folded(question.q)
        assert not [x for x in examples if fuzz.ratio(q, x) >= 90], (
            f"{question.q!r} is (nearly) an FAQ example"
        )
        assert not [x for x in seen if fuzz.ratio(q, x) >= 90], f"{question.q!r} is in the development part"
    ids = {e.id for e in content.faq}
    for question in held + dev:
        assert question.expect in ids | {"none", "passage"}, question
        if question.expect == "passage":
            assert question.step and question.contains, question
            flow, step = question.step.split(".")
            assert step in content.flows[flow].steps, question


def test_accuracy_and_rejection_meet_the_targets(content: Content) -> None:
    matcher = FaqMatcher(content.faq, out_of_scope=content.out_of_scope)
    report = evaluate(matcher, load_questions(EVAL))
    assert report.accuracy >= 0.90, "\n".join(report.lines())
    assert report.rejection >= 0.90, "\n".join(report.lines())


def test_traditional_and_simplified_match_alike(content: Content) -> None:
    matcher = FaqMatcher(content.faq, out_of_scope=content.out_of_scope)
    simplified, traditional = matcher.match("证书有效期是几年"), matcher.match("證書有效期是幾年")
    assert simplified.entry is not None and simplified.entry.id == "validity"
    assert traditional.entry == simplified.entry and traditional.confidence == simplified.confidence


def test_a_question_at_a_menu_is_answered_and_the_menu_stays(engine: Engine) -> None:
    conv = Conversation(engine, language_code="zh").start("iso20000").press("所需材料").press("下一页")
    before = conv.position
    conv.send("證書有效期多久？")
    assert conv.position == before
    assert "三年" in conv.text or "3 年" in conv.text
    assert "下一页 ▶️" in conv.labels and "◀️ 上一页" in conv.labels  # the page's buttons are still here
    conv.press("下一页")
    assert conv.position == ("iso20000", "materials", 2)


def test_fees_are_never_a_number_and_offer_a_quote(engine: Engine) -> None:
    conv = Conversation(engine, language_code="en").start()
    conv.send("how much does it cost?")
    assert not re.search(r"\d+\s*(yuan|rmb|cny|usd|\$|元)", conv.text, re.I)
    conv.press("Leave my details for a quote")
    assert conv.position == ("lead", "intro", 0)


def test_more_detail_goes_to_the_step(engine: Engine) -> None:
    conv = Conversation(engine, language_code="zh").start()
    conv.send("年审没做会怎么样")
    assert "暂停" in conv.text
    conv.press("详细了解")
    assert conv.position[1] == "validity"


def test_a_question_typed_into_a_form_field_is_answered_not_stored(engine: Engine) -> None:
    conv = Conversation(engine, language_code="zh").start("lead").press("同意并继续")
    conv.send("测试科技").send("周经理")
    assert conv.position[1] == "phone"
    conv.send("证书有效期多久？")
    assert conv.position[1] == "phone" and "联系电话" in conv.text  # answered, then asked again
    conv.send("13800138000")
    assert conv.state is not None and conv.state.answers["lead"]["phone"] == "+8613800138000"
    conv.send("Wang@example.com").send("外资企业可以申请吗？")  # a question in a free-text field
    assert conv.position[1] == "city"
    conv.send("杭州")
    assert conv.state.answers["lead"]["city"] == "杭州"


def test_unsure_offers_topics_then_answers_the_chosen_one(engine: Engine) -> None:
    conv = Conversation(engine, language_code="en").start()
    matcher = engine.faq
    assert matcher is not None
    question = "audit question"
    match = matcher.match(question)
    assert match.entry is None and match.suggestions, match
    conv.send(question)
    assert "not sure" in conv.text and "💬 Consultant" in conv.labels
    for entry in match.suggestions:
        assert engine.content.localise(entry.topic, "en") in conv.labels
    first = engine.content.localise(match.suggestions[0].topic, "en")
    conv.press(first)
    assert engine.content.render(match.suggestions[0].answer, "en", {})[:30] in conv.html


def test_greetings_thanks_and_chatter(engine: Engine) -> None:
    conv = Conversation(engine, language_code="zh").start()
    conv.send("你好")
    greeting = engine.content.render(
        next(e for e in engine.content.faq if e.id == "greeting").answer, "zh", {}
    )
    assert conv.replies[0].text == greeting
    conv.send("谢谢！")
    assert conv.position == ("main", "menu", 0) and conv.replies[0].buttons
    conv.send("今天股市怎么样？")
    assert "回答不了" in conv.text


def test_little_words_are_not_guessed_at(engine: Engine) -> None:
    matcher = engine.faq
    assert matcher is not None
    for text in ("是", "否", "一下", "the", "吗"):
        assert matcher.match(text).entry is None, text
    conv = Conversation(engine, language_code="zh").start("lead")
    conv.send("是")  # at the consent step: not an FAQ answer, a hint with the buttons
    assert "没有看懂" in conv.text and "✅ 同意并继续" in conv.labels


def test_passages_are_the_items_of_every_step_in_both_languages(content: Content) -> None:
    found = passages(content)
    by_step: dict[str, list[Passage]] = {}
    for p in found:
        by_step.setdefault(p.link, []).append(p)
    materials = by_step["iso20000.materials"]
    # a sub-item comes with the item it belongs to, paired across the languages
    [security] = [p for p in materials if "7) 信息安全管理流程" in p.text["zh"]]
    assert security.text["zh"].startswith("5. 申请组织的体系文件")
    assert "information security management process" in security.text["en"]
    assert security.heading["zh"] == "申请 ISO/IEC 20000 认证需要的材料"
    assert security.answer()["en"].startswith("<b>Materials for an ISO/IEC 20000 application</b>\n5.")
    # a self-check condition: its name, question and what to do; headed with its scheme
    [penalty] = [p for p in by_step["iso9001.selfcheck"] if "行政许可" in p.text["zh"]]
    assert penalty.heading["zh"].startswith("ISO 9001") and "认证范围不能超出许可范围" in penalty.text["zh"]
    # no form questions, no greeting, no line with a variable, no tags
    assert not {"lead.company", "lead.phone", "main.menu"} & set(by_step)
    assert all("{{" not in t and "<" not in t for p in found for t in p.text.values())
    assert any("不会提供给第三方" in p.text["zh"] for p in by_step["lead.intro"])
    assert all(set(p.text) == {"zh", "en"} for p in found), "every passage in both languages"


def test_a_specific_question_gets_its_passage_and_a_named_scheme_its_own_answer(content: Content) -> None:
    matcher = FaqMatcher.of(content)
    cases = {
        "组织简介要写多少字": ("iso20000.materials", "1000 字左右"),
        "稽核會看SWOT分析表嗎": ("iso20000.audit_focus", "SWOT"),
        "will the auditors ask for configuration audit reports": (
            "iso20000.audit_focus",
            "configuration audit",
        ),
        "9001要交作业指导书吗": ("iso9001.materials", "作业指导书"),
    }
    for question, (step, text) in cases.items():
        entry = matcher.match(question).entry
        assert entry is not None and entry.link == step, (question, entry)
        assert any(text in answer for answer in entry.answer.values()), (question, entry.answer)
    assert matcher.scheme_of("三体系（ISO 9001 + 14001 + 45001）要多久") == "three"
    assert matcher.scheme_of("ISO 9001 要多久") == "iso9001"
    assert matcher.scheme_of("证书要多久") is None
    # A topic about ISO/IEC 20000 (its suspension rules) is not the answer for ISO 9001.
    for question in ("9001证书暂停最长多久", "iso 9001 suspended certificate, how long max"):
        entry = matcher.match(question).entry
        assert entry is None or (entry.link or "").startswith("iso9001."), (question, entry)
    # The topics still answer topic questions.
    assert (matcher.match("材料清单有哪些").entry or FAQ_NONE).id == "materials"


def test_a_passage_answer_in_a_conversation_counts_its_step_and_links_to_it(engine: Engine) -> None:
    conv = Conversation(engine, language_code="zh").start()
    conv.send("审核会看离职交接单吗")
    [reply] = conv.history[-1].replies
    assert "离职交接单" in reply.text and ("passage", "iso20000.audit_focus") in conv.history[-1].notes
    conv.press("详细了解")
    assert (conv.state.flow, conv.state.step) == ("iso20000", "audit_focus")


def test_words_prospects_say_are_read_as_the_contents(content: Content) -> None:
    """A synonym (``synonyms`` in faq.yaml) reads a prospect's word as the content's: a word the
    content never says, written in Traditional characters too, finds the line about 测量设备; a word
    inside an English word is not replaced."""
    base = FaqMatcher.of(content)

    def built(synonyms: dict[str, str]) -> FaqMatcher:
        return FaqMatcher(
            content.faq,
            out_of_scope=base.out_of_scope,
            passages=base.passages,
            schemes=base.schemes,
            titles=base.titles,
            synonyms=synonyms,
        )

    question = "9001審核會看測天儀器嗎"  # a word no text of the content says, nor anything like it
    unread = built({}).match(question).entry
    assert unread is None or "测量设备" not in str(content.localise(unread.answer, "zh")), unread
    found = built({"测天仪器": "测量设备", "fee": "fax"}).match(question).entry
    assert found is not None and found.link == "iso9001.audit_focus", found
    assert "测量设备" in str(content.localise(found.answer, "zh"))
    fees = built({"fee": "weather"}).match("what are your fees")  # "fees" is not "fee"
    assert fees.entry is not None and fees.entry.id == "fee"
