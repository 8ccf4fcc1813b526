"""A prospect who comes back again and again: what the lead keeps of their notes is bounded, and
the staff alert and card always fit Telegram's 4,096 characters. An alert Telegram refuses for
good (a 4xx other than 429) is not retried forever: it is marked failed, shown on the dashboard,
and can be sent again from there."""

from __future__ import annotations

import re
from pathlib import Path

import aiohttp
from sqlalchemy import select

from bot.content import Content
from bot.db.engine import Database
from bot.db.models import Outbox
from bot.engine.render import MESSAGE_LIMIT, visible_length
from bot.leads.repository import NOTE_LIMIT, LeadRepository, LeadSubmission
from bot.leads.summary import alert_text
from bot.prospect import ProspectId
from bot.settings import Settings
from bot.telegram.alerts import REFUSED_ATTEMPTS
from bot.telegram.staff import render_card

from .fakebot import FakeBotAPI, Prospect
from .harness import STAFF_CHAT, BotRunner, make_settings
from .test_leads_e2e import enquire, until

PASSWORD = "correct horse battery"


def returning(i: int) -> LeadSubmission:
    return LeadSubmission(
        kind="lead",
        key=f"77:{i}",
        answers={
            "company": "北京云服务科技有限公司",
            "contact_name": "王伟",
            "phone": "+8613800138000",
            "note": f"第{i}次留言：" + "我们希望尽快安排审核，" * 45,  # the form's 500 characters
        },
        question=f"第{i}个问题：" + "审核需要准备哪些材料" * 40,
        source_flow="iso20000",
        prospect=ProspectId.telegram(77),
        transcript=[f"> 第{n}句话" + "。" * 290 for n in range(60)],
    )


async def test_ten_returning_submissions_stay_within_bounds(db: Database, content: Content) -> None:
    repo = LeadRepository(db, staff_chat_id=STAFF_CHAT)
    for i in range(1, 11):
        saved = await repo.submit(returning(i))
        assert saved.lead_id == 1 and saved.created == (i == 1)
    lead = await repo.get(1)
    assert lead is not None and lead.note is not None and lead.question is not None
    assert len(lead.note) <= NOTE_LIMIT and len(lead.question) <= NOTE_LIMIT
    assert "第10次留言" in lead.note and "第1次留言" not in lead.note  # the newest are kept
    for _ in range(8):  # staff notes, each as long as they may be
        await repo.add_note(1, "跟进记录：" + "客户很关心审核时间。" * 200, actor="web:alice")
    text = alert_text(content, lead, updated=True)
    assert visible_length(text) <= MESSAGE_LIMIT and "第10次留言" in text
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    card, _ = render_card(content, settings, lead, await repo.events(1), "zh")
    assert visible_length(card) <= MESSAGE_LIMIT


async def test_an_alert_refused_for_good_is_marked_failed_and_can_be_sent_again(
    api: FakeBotAPI, tmp_path: Path
) -> None:
    settings = make_settings(api, tmp_path, web_enabled=True, web_port=0)
    runner = BotRunner(api, settings)
    await runner.start()
    assert runner.accounts is not None and runner.db is not None
    await runner.accounts.add("alice", PASSWORD)
    fault = api.fail("sendMessage", 400, "Bad Request: chat not found", times=100, chat_id=STAFF_CHAT)
    try:
        await enquire(Prospect(api, 8301, language_code="en"), "Li", "+86 139 1234 5678")

        async def failed() -> list[Outbox]:
            async with runner.db.sessions() as s:  # type: ignore[union-attr]
                return [o for o in await s.scalars(select(Outbox)) if o.failed_at is not None]

        async def marked() -> bool:
            return bool(await failed())

        await until(marked, seconds=20)
        [row] = await failed()
        assert (
            row.attempts == REFUSED_ATTEMPTS
            and row.sent_at is None
            and "chat not found" in (row.last_error or "")
        )
        assert 100 - fault.times == REFUSED_ATTEMPTS  # a 4xx is not retried within a request
        assert runner.leads is not None and await runner.leads.next_alert_at() is None  # nothing due
        async with aiohttp.ClientSession(runner.web_url, cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
            page = await (await http.get("/login")).text()
            token = re.search(r'name="csrf" value="([^"]+)"', page)
            assert token
            form = {"csrf": token.group(1), "name": "alice", "password": PASSWORD}
            await http.post("/login", data=form)
            overview = await (await http.get("/overview")).text()
            assert 'id="failed-alerts"' in overview and "Q000001" in overview and "chat not found" in overview
            csrf = re.search(r'name="csrf" value="([^"]+)"', overview)
            assert csrf
            # The group is fixed: sent again from the dashboard.
            fault.times = 0
            retried = await http.post(f"/alerts/{row.id}/retry", data={"csrf": csrf.group(1)})
            assert retried.status == 200 and 'id="failed-alerts"' not in await retried.text()
        await until(lambda: any("Q000001" in m.visible for m in api.chat_messages(STAFF_CHAT)))
    finally:
        await runner.stop()
