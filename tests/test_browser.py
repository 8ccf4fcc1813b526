"""The staff dashboard in a real browser: Playwright driving Debian's Chromium (/usr/bin/chromium,
installed by .ci/run with apt-get; never a browser download). The dashboard is served by the bot
process as ``python -m bot run`` assembles it. Screenshots go to tests/artifacts/."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from .conftest import REQUIRE_SERVICES, ROOT
from .fakebot import FakeBotAPI
from .harness import BotRunner, make_settings
from .test_web import PASSWORD, add_lead

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = ROOT / "tests" / "artifacts"


def _need_browser() -> None:
    missing = None
    try:
        import playwright.async_api  # noqa: F401
    except ImportError:
        missing = "the playwright package is not installed"
    if missing is None and not (Path(CHROMIUM).exists() or shutil.which(CHROMIUM)):
        missing = f"no Chromium at {CHROMIUM} (apt-get install chromium)"
    if missing:
        if REQUIRE_SERVICES:
            pytest.fail(f"browser tests must run here (CI_REQUIRE_SERVICES=1): {missing}")
        pytest.skip(missing)


@pytest.fixture
async def dashboard(api: FakeBotAPI, tmp_path: Path) -> AsyncIterator[BotRunner]:
    _need_browser()
    runner = BotRunner(api, make_settings(api, tmp_path, web_enabled=True, web_port=0))
    await runner.start()
    assert runner.accounts is not None and runner.leads is not None
    await runner.accounts.add("alice", PASSWORD)
    for user in range(1, 31):
        await add_lead(runner.leads, user, company=f"测试公司{user:02d}", contact_name=f"联系人{user}")
    await add_lead(
        runner.leads, 99, company="星河数据服务有限公司", contact_name="赵敏", phone="+8613712345678"
    )
    yield runner
    await runner.stop()


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        chromium = await pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield chromium
        await chromium.close()


async def sign_in(page: Any, base: str, password: str = PASSWORD) -> None:
    await page.goto(base + "/leads")
    assert "/login" in page.url  # a page opened without a session goes to sign-in
    await page.fill("input[name=name]", "alice")
    await page.fill("input[name=password]", password)
    await page.click("#login-form button[type=submit]")


async def test_staff_work_through_the_dashboard(dashboard: BotRunner, browser: Any) -> None:
    base = dashboard.web_url
    context = await browser.new_context(accept_downloads=True, viewport={"width": 1280, "height": 900})
    page = await context.new_page()
    await sign_in(page, base, password="not the password")
    assert "/login" in page.url and "用户名或密码错误" in await page.inner_text("#login-error")
    await sign_in(page, base)
    await page.wait_for_url(re.compile(r"/leads$"))
    assert "共 31 条" in await page.inner_text("#count")
    assert await page.locator("#leads tbody tr").count() == 25
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / "leads-list.png"), full_page=True)

    # Search, by a piece of a company name, then by a phone fragment.
    await page.fill("input[name=q]", "星河数据")
    await page.click("#search")
    await page.wait_for_url(re.compile(r"q=%E6%98%9F"))
    assert await page.locator("#leads tbody tr").count() == 1
    await page.fill("input[name=q]", "13712")
    await page.click("#search")
    await page.wait_for_url(re.compile(r"q=13712"))
    assert "赵敏" in await page.inner_text("#leads")

    # Open the lead, change its status, add a note.
    await page.click("#leads a.ref")
    await page.wait_for_url(re.compile(r"/leads/\d+$"))
    assert "星河数据服务有限公司" in await page.inner_text("#lead")
    await page.select_option("#status-form select[name=status]", "qualified")
    await page.click("#status-form button")
    await page.wait_for_load_state()
    assert await page.inner_text("#status") == "已确认需求"
    await page.fill("#note-form textarea", "已电话沟通，下周报价")
    await page.click("#note-form button")
    await page.wait_for_load_state()
    history = await page.inner_text("#history")
    assert "web:alice" in history and "已电话沟通，下周报价" in history and "已确认需求" in history
    await page.screenshot(path=str(ARTIFACTS / "lead-detail.png"), full_page=True)
    lead_id = int(page.url.rsplit("/", 1)[1])
    assert dashboard.leads is not None
    lead = await dashboard.leads.get(lead_id)
    assert lead is not None and lead.status == "qualified"

    # A form posted without its CSRF token is refused, and changes nothing.
    await page.evaluate("document.querySelector('#status-form input[name=csrf]').remove()")
    await page.select_option("#status-form select[name=status]", "lost")
    await page.click("#status-form button")
    await page.wait_for_load_state()
    assert "安全令牌" in await page.inner_text("main")
    lead = await dashboard.leads.get(lead_id)
    assert lead is not None and lead.status == "qualified"

    # Export what the list shows.
    await page.goto(base + "/leads?status=qualified")
    async with page.expect_download() as info:
        await page.click("#export")
    download = await info.value
    body = (await asyncio.to_thread(Path(await download.path()).read_bytes)).decode("utf-8-sig")
    lines = body.strip().splitlines()
    assert len(lines) == 2 and "星河数据服务有限公司" in lines[1] and "qualified" in lines[1]
    await context.close()


async def test_the_dashboard_fits_a_phone_screen(dashboard: BotRunner, browser: Any) -> None:
    context = await browser.new_context(viewport={"width": 375, "height": 740}, is_mobile=True)
    page = await context.new_page()
    await sign_in(page, dashboard.web_url)
    await page.wait_for_url(re.compile(r"/leads$"))
    for path in ("/leads", "/leads/1", "/overview"):
        await page.goto(dashboard.web_url + path)
        overflow = await page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0, f"{path} is {overflow}px wider than the screen"
    await page.goto(dashboard.web_url + "/leads")
    await page.screenshot(path=str(ARTIFACTS / "leads-phone.png"), full_page=False)
    await context.close()
