"""Content reloaded while the bot runs: /reload (admins), the file watcher, and prospects on
steps that changed or vanished."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
from pathlib import Path

import pytest

from bot.telegram.reload import watch_content
from bot.telegram.runtime import Runtime

from .conftest import FLOWS
from .fakebot import FakeBotAPI, Prospect
from .harness import ADMIN, BotRunner, make_settings

WELCOME = "您好！我是认证咨询助手"


@pytest.fixture
async def live(api: FakeBotAPI, tmp_path: Path):  # type: ignore[no-untyped-def]
    """The bot on a copy of the content that the test edits."""
    flows = tmp_path / "flows"
    shutil.copytree(FLOWS, flows)
    runner = BotRunner(api, make_settings(api, tmp_path, flows_dir=flows, watch_flows=False))
    await runner.start()
    yield runner, flows
    await runner.stop()


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text, old
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


async def test_reload_swaps_valid_content_and_rejects_a_broken_edit(api: FakeBotAPI, live) -> None:  # type: ignore[no-untyped-def]
    _, flows = live
    p = Prospect(api, 9101, language_code="zh")
    admin = Prospect(api, ADMIN, language_code="zh")
    [welcome] = await p.send("/start")
    assert WELCOME in welcome.visible
    edit(flows / "main.yaml", WELCOME, "您好！我是新版认证助手")
    [done] = await admin.send("/reload")
    assert "loaded" in done.visible
    [fresh] = await p.send("/menu")
    assert "您好！我是新版认证助手" in fresh.visible

    edit(flows / "contact.yaml", "next: done", "next: nowhere")
    [rejected] = await admin.send("/reload")
    line = next(
        i for i, s in enumerate((flows / "contact.yaml").read_text().splitlines(), 1) if "nowhere" in s
    )
    assert "Content rejected" in rejected.visible
    assert f"flows/contact.yaml:{line}: step 'phone': unknown target 'nowhere'" in rejected.visible
    [still] = await p.send("/menu")  # the running content keeps serving
    assert "您好！我是新版认证助手" in still.visible


async def test_only_admins_can_reload(api: FakeBotAPI, live) -> None:  # type: ignore[no-untyped-def]
    runner, flows = live
    version = runner.dp["runtime"].engine.content.version
    edit(flows / "main.yaml", WELCOME, "改过了")
    p = Prospect(api, 9102, language_code="zh")
    await p.send("/start")
    [reply] = await p.send("/reload")
    assert "没有这个命令" in reply.visible  # no hint that the command exists
    assert runner.dp["runtime"].engine.content.version == version


async def test_a_prospect_on_a_removed_step_continues_at_the_flow_start(api: FakeBotAPI, live) -> None:  # type: ignore[no-untyped-def]
    _, flows = live
    p = Prospect(api, 9103, language_code="zh")
    await p.send("/start")
    await p.press("ISO/IEC 20000")
    [where] = await p.press("适用范围")
    assert "适用范围" in where.visible
    path = flows / "iso20000.yaml"
    text = path.read_text(encoding="utf-8")
    start, end = text.index("  applicability:\n"), text.index("  selfcheck:\n")
    text = text[:start] + text[end:]
    text = text.replace(
        '      - label: {zh: "👥 适用范围", en: "👥 Who it suits"}\n        goto: applicability\n', ""
    )
    path.write_text(text, encoding="utf-8")
    faq = flows / "faq.yaml"  # FAQ answers linked to it too; flows check would say so
    faq.write_text(faq.read_text(encoding="utf-8").replace("    link: iso20000.applicability\n", ""), "utf-8")
    [done] = await Prospect(api, ADMIN).send("/reload")
    assert "loaded" in done.visible
    replies = await p.send("嗯")
    assert "内容刚刚更新过" in replies[0].visible
    assert "✅ 申请条件自测" in replies[-1].labels  # carrying on at the flow's start
    stale = await p.press("自测", where)  # a button from the old message
    assert "已过期" in stale[0].visible


async def test_the_watcher_reloads_and_reports_rejections(api: FakeBotAPI, live) -> None:  # type: ignore[no-untyped-def]
    runner, flows = live
    runtime: Runtime = runner.dp["runtime"]
    assert runner.bot is not None
    watcher = asyncio.create_task(watch_content(runner.bot, runtime, flows, debounce_ms=50))
    try:
        await asyncio.sleep(0.3)
        before = runtime.engine.content.version
        edit(flows / "main.yaml", WELCOME, "您好！文件一改就生效")
        for _ in range(250):
            if runtime.engine.content.version != before:
                break
            await asyncio.sleep(0.02)
        assert runtime.engine.content.version != before
        assert "您好！文件一改就生效" in runtime.engine.content.render(
            runtime.engine.content.flows["main"].steps["menu"].text or "", "zh", {}
        )
        version = runtime.engine.content.version
        edit(flows / "lead.yaml", "next: email", "next: nowhere")
        for _ in range(250):
            if any("rejected" in m.visible for m in api.chat_messages(ADMIN)):
                break
            await asyncio.sleep(0.02)
        loaded, rejected = api.chat_messages(ADMIN)
        assert f"Content {version} loaded" in loaded.visible
        assert "Content rejected" in rejected.visible and "lead.yaml" in rejected.visible
        assert runtime.engine.content.version == version
    finally:
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher
