"""The ISO/IEC 20000 flow walked through the engine, asserting the content from the source page."""

from __future__ import annotations

import re

from bot.engine.conversation import Conversation
from bot.engine.render import MESSAGE_LIMIT, visible_length


def test_intro_states_scope_fees_and_area(zh: Conversation) -> None:
    zh.press("ISO/IEC 20000")
    assert zh.position == ("iso20000", "intro", 0)
    assert "内部的 IT 部门" in zh.text and "外部的服务提供商" in zh.text
    assert "ISO/IEC 20000-1:2018" in zh.text
    assert "投标加分" in zh.text and "全国" in zh.text and "电议" in zh.text
    assert not re.search(r"\d+\s*(元|万|RMB|CNY)", zh.text), "no invented price"


def test_applicability_lists_the_six_kinds_of_organisation(zh: Conversation) -> None:
    zh.press("ISO/IEC 20000").press("适用范围")
    for phrase in ("投标", "供应链", "IT 服务管理基准", "独立评估", "满足顾客要求", "提高服务质量"):
        assert phrase in zh.text
    assert zh.text.count("•") == 6


def _answer(conv: Conversation, answers: list[bool]) -> None:
    for yes in answers:
        conv.press("是" if yes else "否")


def test_selfcheck_all_yes_says_apply_now(zh: Conversation) -> None:
    zh.press("ISO/IEC 20000").press("申请条件自测")
    assert "问题 1/6" in zh.text and "营业执照" in zh.text
    _answer(zh, [True] * 6)
    assert "可以申请" in zh.text and "暂时还不能" not in zh.text
    assert zh.state is not None
    assert zh.state.answers["iso20000"] == {
        "licence": True,
        "system_built": True,
        "running_3m": True,
        "internal_audit": True,
        "management_review": True,
        "no_penalty": True,
    }


def test_selfcheck_lists_exactly_the_missing_conditions_with_fixes(zh: Conversation) -> None:
    zh.press("ISO/IEC 20000").press("申请条件自测")
    _answer(zh, [True, True, False, True, False, True])
    text = zh.text
    assert "暂时还不能申请" in text and "2 项条件" in text
    assert "体系运行3个月以上" in text and "至少三个月" in text
    assert "至少一次管理评审" in text
    assert "营业执照" not in text and "内部审核" not in text and "行政处罚" not in text


def test_selfcheck_questions_come_in_order_and_cover_the_source_conditions(zh: Conversation) -> None:
    zh.press("ISO/IEC 20000").press("申请条件自测")
    seen = []
    for _ in range(6):
        seen.append(zh.text)
        zh.press("是")
    joined = "\n".join(seen)
    for phrase in (
        "营业执照",
        "外国企业",
        "按 ISO/IEC 20000 标准的要求建立",
        "3 个月以上",
        "内部 IT 服务管理体系审核",
        "管理评审",
        "行政处罚",
    ):
        assert phrase in joined
    assert [f"问题 {i}/6" in s for i, s in enumerate(seen, 1)] == [True] * 6


def test_selfcheck_accepts_typed_yes_and_no(en: Conversation) -> None:
    en.press("ISO/IEC 20000").press("Can we apply")
    for word in ["yes", "Yes!", "no", "y", "YES", "n"]:
        en.send(word)
    assert "Verdict: not yet" in en.text and "2 conditions" in en.text
    assert "System running for 3+ months" in en.text and "No administrative penalty" in en.text


def test_materials_page_through_and_all_at_once(zh: Conversation) -> None:
    zh.press("ISO/IEC 20000").press("所需材料")
    assert "第 1/3 页" in zh.text and "营业执照" in zh.text and "组织简介（1000 字左右）" in zh.text
    assert "上一页" not in " ".join(zh.labels)
    zh.press("下一页")
    assert "第 2/3 页" in zh.text and "服务级别协议" in zh.text and "整个体系文件的结构和清单" in zh.text
    zh.press("下一页")
    assert "第 3/3 页" in zh.text and "ISO/IEC 20000-1:2018(E)" in zh.text and "保密性或敏感性声明" in zh.text
    assert "下一页" not in " ".join(zh.labels)
    zh.press("一次看全部")
    for n in range(1, 9):
        assert f"{n}. " in zh.text
    assert "第 " not in zh.text


def test_process_has_seven_steps_with_stage_one_and_two(zh: Conversation) -> None:
    zh.press("ISO/IEC 20000").press("认证流程")
    text = zh.text
    numbered = re.findall(r"^(\d)\. ", text, flags=re.M)
    assert numbered == ["1", "2", "3", "4", "5", "6", "7"]
    assert (
        "最少三个月" in text and "预审（第一阶段）" in text and "第二阶段审核" in text and "三年有效" in text
    )


def test_audit_focus_lists_the_records(zh: Conversation) -> None:
    zh.press("ISO/IEC 20000").press("审核关注点")
    assert "合规性和有效性" in zh.text and "(1) IT 服务项目合同、订单" in zh.text
    zh.press("一次看全部")
    assert "(19) 合格供应商名录" in zh.text and "SWOT" in zh.text
    assert "企业体系资质服务平台" not in zh.text  # the source page's spam is not repeated


def test_validity_three_years_annual_audits_suspension_then_revocation(zh: Conversation) -> None:
    zh.press("ISO/IEC 20000").press("有效期与年审")
    text = zh.text
    assert "三年" in text and "每一年都需要年审" in text
    suspended, revoked = text.index("暂停"), text.index("撤销")
    assert suspended < revoked
    assert "半年内" in text and "3 个月" in text and "重新进行认证" in text


def test_verify_at_cnca_with_the_caveats(zh: Conversation) -> None:
    zh.press("ISO/IEC 20000").press("证书真伪查询")
    text = zh.text
    assert "国家认监委" in text and "认证结果" in text and "几个工作日" in text
    assert "即使在认监委官网上能查询到证书信息，证书也是无效的" in text
    urls = [b.url for b in zh.buttons_all if b.url]
    assert urls == ["https://www.cnca.gov.cn/"]


def test_english_walk_through(en: Conversation) -> None:
    assert "certification assistant" in en.text
    en.press("ISO/IEC 20000")
    assert "internal IT department" in en.text
    en.press("Process")
    assert "at least three months" in en.text and "Stage 2 audit" in en.text
    en.press("Validity")
    assert "three years" in en.text and "suspended" in en.text and "revoked" in en.text
    en.press("Verify")
    assert "a few working days" in en.text and "not valid" in en.text


def test_every_view_fits_telegram(en: Conversation, zh: Conversation) -> None:
    for conv in (en, zh):
        conv.press("ISO/IEC 20000")
        for label in list(conv.labels)[:8]:
            conv.press(label)
            for reply in conv.replies:
                assert visible_length(reply.text) <= MESSAGE_LIMIT
                for row in reply.buttons:
                    for b in row:
                        assert b.payload is None or len(b.payload.encode()) <= 64
            conv.command("back")
