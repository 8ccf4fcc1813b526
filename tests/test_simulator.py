"""``python -m bot chat`` on piped stdin, and ``python -m bot run`` without a token."""

from __future__ import annotations

import os
import subprocess
import sys

from .conftest import ROOT


def _run(
    args: list[str], stdin: str = "", env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if k != "BOT_TOKEN"}
    return subprocess.run(
        [sys.executable, "-m", "bot", *args],
        input=stdin,
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
        env={**base, **(env or {})},
    )


def test_piped_iso20000_walk_through() -> None:
    script = "\n".join(
        [
            "1",  # ISO/IEC 20000 (first button of the main menu)
            "适用范围",
            "/back",
            "申请条件自测",
            "是",
            "是",
            "否",  # not yet running for 3 months
            "是",
            "是",
            "是",
            "所需材料",
            "一次看全部",
            "认证流程",
            "审核关注点",
            "有效期与年审",
            "证书真伪查询",
            "留下联系方式",
            "同意并继续",
            "天津某信息技术有限公司",
            "张三",
            "13800138000",
            "跳过",
            "天津",
            "60",
            "1",
            "选好了",
            "1–3 个月",
            "跳过",
            "确认提交",
        ]
    )
    proc = _run(["chat", "--lang", "zh"], script + "\n")
    out = proc.stdout
    assert proc.returncode == 0, proc.stderr
    assert "> 申请条件自测" in out  # inputs are echoed when stdin is not a terminal
    for fact in (
        "将以其服务进行投标的机构",
        "暂时还不能申请",
        "体系运行3个月以上",
        "整个体系文件的结构和清单",
        "第二阶段审核",
        "三年有效",
        "暂停",
        "撤销",
        "认证结果",
        "单位: 天津某信息技术有限公司",
        "✅ ISO/IEC 20000",
        "已提交，谢谢 张三",
        "[lead handed over: consent=True, company=天津某信息技术有限公司, contact_name=张三,",
        "phone=+8613800138000,",
        "schemes=['iso20000'], timeline=3m, note=; about: iso20000]",
    ):
        assert fact in out, fact
    assert "[1] 🖥 ISO/IEC 20000" in out


def test_english_chat_and_numbers() -> None:
    proc = _run(["chat", "--lang", "en"], "1\n3\n")
    assert proc.returncode == 0
    assert (
        "certification assistant" in proc.stdout
        and "Materials for an ISO/IEC 20000 application" in proc.stdout
    )


def test_run_with_nothing_to_run_names_bot_token_and_points_to_chat() -> None:
    proc = _run(["run"], env={"BOT_TOKEN": "", "WEB_ENABLED": "false"})
    assert proc.returncode == 2
    assert "BOT_TOKEN" in proc.stderr and "python -m bot chat" in proc.stderr
