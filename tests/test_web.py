"""The staff dashboard over real HTTP (aiohttp's test server and client), on a migrated SQLite file."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from aiohttp import ClientResponse
from aiohttp.test_utils import TestClient, TestServer

from bot.analytics import Analytics
from bot.content import Content
from bot.db import create_database, upgrade
from bot.db.engine import Database
from bot.db.models import utcnow
from bot.leads.repository import LeadRepository, LeadSubmission
from bot.prospect import ProspectId
from bot.settings import Settings
from bot.staff.accounts import FREE_FAILURES, StaffAccounts
from bot.web.app import build_web_app

PASSWORD = "correct horse battery"


class Web:
    def __init__(self, client: TestClient, db: Database, repo: LeadRepository, analytics: Analytics) -> None:
        self.client, self.db, self.repo, self.analytics = client, db, repo, analytics

    async def login(self, name: str = "alice", password: str = PASSWORD, **extra: str) -> ClientResponse:
        page = await self.client.get("/login")
        token = re.search(r'name="csrf" value="([^"]+)"', await page.text())
        assert token
        form = {"csrf": token.group(1), "name": name, "password": password, **extra}
        return await self.client.post("/login", data=form, allow_redirects=False)

    async def csrf(self, path: str = "/leads") -> str:
        token = re.search(r'name="csrf" value="([^"]+)"', await (await self.client.get(path)).text())
        assert token, "no CSRF token on the page"
        return token.group(1)


@pytest.fixture
async def web(tmp_path: Path, content: Content) -> AsyncIterator[Web]:
    url = f"sqlite+aiosqlite:///{tmp_path / 'web.db'}"
    await upgrade(url)
    db = create_database(url)
    repo = LeadRepository(db)
    accounts = StaffAccounts(db)
    await accounts.add("alice", PASSWORD)
    await accounts.add("bob", PASSWORD)
    analytics = Analytics(db, flush_interval=0.01)
    settings = Settings(_env_file=None, database_url=url)  # type: ignore[call-arg]
    app = build_web_app(settings, leads=repo, accounts=accounts, content=lambda: content, analytics=analytics)
    client = TestClient(TestServer(app))
    await client.start_server()
    yield Web(client, db, repo, analytics)
    await client.close()
    await analytics.close()
    await db.dispose()


async def add_lead(repo: LeadRepository, user: int, **answers: object) -> int:
    base: dict[str, object] = {
        "company": "北京云服务科技有限公司",
        "contact_name": "王伟",
        "phone": "+8613800138000",
        "schemes": ["iso20000"],
    }
    saved = await repo.submit(
        LeadSubmission(
            kind="lead",
            key=f"{user}:1",
            answers={**base, **answers},
            source_flow="iso20000",
            selfcheck={"licence": True, "system_built": False},
            prospect=ProspectId.telegram(user, f"user{user}"),
            transcript=["> 你好", "@iso20000.intro", "> 证书有效期多久"],
        )
    )
    return saved.lead_id


async def test_pages_need_a_session_and_forms_need_it_too(web: Web) -> None:
    response = await web.client.get("/leads?status=new", allow_redirects=False)
    assert response.status == 303
    location = urlsplit(response.headers["Location"])
    assert location.path == "/login" and parse_qs(location.query) == {"next": ["/leads?status=new"]}
    for path in ("/leads/1", "/leads.csv", "/overview", "/"):
        response = await web.client.get(path, allow_redirects=False)
        assert response.status == 303 and response.headers["Location"].startswith("/login"), path
    assert (await web.client.post("/leads/1/status", data={"status": "won"})).status == 403
    assert (await web.client.get("/healthz")).status == 200


async def test_sign_in_sets_a_safe_cookie_and_returns_to_the_page_asked_for(web: Web) -> None:
    response = await web.login(next="/leads?status=won")
    assert response.status == 303 and response.headers["Location"] == "/leads?status=won"
    cookie = response.headers.getall("Set-Cookie")
    session = next(c for c in cookie if c.startswith("sid="))
    assert "HttpOnly" in session and "SameSite=Lax" in session and "Path=/" in session
    page = await web.client.get("/leads")
    assert page.status == 200 and "alice" in await page.text()
    assert page.headers["Cache-Control"] == "no-store"
    assert "frame-ancestors 'none'" in page.headers["Content-Security-Policy"]
    # Already signed in: the sign-in page leads on.
    assert (await web.client.get("/login", allow_redirects=False)).status == 303


async def test_no_open_redirect_after_sign_in(web: Web) -> None:
    for target in ("//evil.example/", "/\t/evil.example", "/\r/evil.example", "/\\evil.example",
                   "https://evil.example/", "/%09/evil.example".replace("%09", "\t")):  # fmt: skip
        response = await web.login(next=target)
        assert response.headers["Location"] == "/leads", target
        await web.client.post("/logout", data={"csrf": await web.csrf()})


async def test_a_wrong_password_is_refused_and_repeated_failures_lock(web: Web) -> None:
    response = await web.login(password="wrong password")
    assert response.status == 401 and "用户名或密码错误" in await response.text()
    assert "sid" not in {c.key for c in web.client.session.cookie_jar}
    unknown = await web.login(name="mallory")
    assert unknown.status == 401
    for _ in range(FREE_FAILURES - 1):
        await web.login(name="mallory")
    # A name that does not exist locks exactly as a real one: nothing tells them apart.
    assert (await web.login(name="mallory")).status == 429
    for _ in range(FREE_FAILURES - 1):
        await web.login(password="wrong password")
    locked = await web.login()  # the right password, but too late
    assert locked.status == 429 and "失败次数过多" in await locked.text()
    assert (await web.client.get("/leads", allow_redirects=False)).status == 303
    # Another account is not affected.
    assert (await web.login(name="bob")).status == 303


async def test_the_sign_in_form_needs_its_csrf_token(web: Web) -> None:
    await web.client.get("/login")
    response = await web.client.post("/login", data={"name": "alice", "password": PASSWORD})
    assert response.status == 403
    assert (await web.client.get("/leads", allow_redirects=False)).status == 303


async def test_list_search_filters_and_pages(web: Web) -> None:
    first = await add_lead(web.repo, 1)
    await add_lead(web.repo, 2, company="上海<b>质量</b>咨询", contact_name="李娜", phone="+8613911112222",
                   schemes=["iso9001"])  # fmt: skip
    for user in range(3, 30):
        await add_lead(web.repo, user, company=f"公司{user:03d}", schemes=["iso27001"])
    await web.repo.set_status(first, "won", actor="test")
    await web.login()
    html = await (await web.client.get("/leads")).text()
    assert "共 29 条" in html and "第 1 / 2 页" in html and 'rel="next"' in html
    assert html.index("公司029") < html.index("公司028")  # newest first
    second = await (await web.client.get("/leads?page=2")).text()
    assert "北京云服务科技有限公司" in second and 'rel="prev"' in second
    assert "上海&lt;b&gt;质量&lt;/b&gt;咨询" in second  # typed by a prospect: shown, never markup
    found = await (await web.client.get("/leads", params={"q": "<b>质量"})).text()
    assert "共 1 条" in found and "李娜" in found
    found = await (await web.client.get("/leads", params={"q": "13911"})).text()
    assert "李娜" in found and "共 1 条" in found
    won = await (await web.client.get("/leads", params={"status": "won"})).text()
    assert "共 1 条" in won and "北京云服务科技有限公司" in won
    scheme = await (await web.client.get("/leads", params={"scheme": "iso9001"})).text()
    assert "共 1 条" in scheme and "李娜" in scheme
    empty = await (await web.client.get("/leads", params={"q": "没有这家公司"})).text()
    assert "没有符合条件的线索" in empty
    odd = await web.client.get("/leads", params={"page": "²", "sort": "');--", "status": "<script>"})
    assert odd.status == 200 and "<script>" not in await odd.text()


async def test_lead_page_status_assignment_and_notes_with_history(web: Web) -> None:
    lead_id = await add_lead(web.repo, 1)
    await web.login()
    html = await (await web.client.get(f"/leads/{lead_id}")).text()
    assert "L000001" in html and "+8613800138000" in html and "证书有效期多久" in html  # transcript
    assert "已按标准建立IT服务管理体系" in html and "营业执照" not in html  # the gap, by name
    token = await web.csrf(f"/leads/{lead_id}")
    # Without the CSRF token: refused, nothing changed.
    refused = await web.client.post(f"/leads/{lead_id}/status", data={"status": "won"})
    assert refused.status == 403 and "安全令牌" in await refused.text()
    wrong = await web.client.post(f"/leads/{lead_id}/status", data={"status": "won", "csrf": "forged"})
    assert wrong.status == 403
    lead = await web.repo.get(lead_id)
    assert lead is not None and lead.status == "new"
    # With it: changed, and the history says who did it.
    done = await web.client.post(
        f"/leads/{lead_id}/status", data={"status": "qualified", "csrf": token}, allow_redirects=False
    )
    assert done.status == 303 and done.headers["Location"] == f"/leads/{lead_id}"
    await web.client.post(f"/leads/{lead_id}/assign", data={"csrf": token})
    await web.client.post(f"/leads/{lead_id}/note", data={"csrf": token, "note": "<i>周二</i> 回电"})
    bad = await web.client.post(f"/leads/{lead_id}/status", data={"status": "hacked", "csrf": token})
    assert bad.status == 400
    lead = await web.repo.get(lead_id)
    assert lead is not None and (lead.status, lead.assigned_to) == ("qualified", "alice")
    events = await web.repo.events(lead_id)
    assert [(e.kind, e.actor, e.new) for e in events] == [
        ("note", "web:alice", "<i>周二</i> 回电"),
        ("assign", "web:alice", "alice"),
        ("status", "web:alice", "qualified"),
    ]
    html = await (await web.client.get(f"/leads/{lead_id}")).text()
    assert "&lt;i&gt;周二&lt;/i&gt; 回电" in html and "状态：新线索 → 已确认需求" in html
    assert (await web.client.get("/leads/999999")).status == 404


async def test_csv_export_follows_the_filters(web: Web) -> None:
    await add_lead(web.repo, 1)
    await add_lead(web.repo, 2, company='=HYPERLINK("http://x")', contact_name="李娜", schemes=["iso9001"])
    await web.login()
    response = await web.client.get("/leads.csv", params={"scheme": "iso9001"})
    assert response.status == 200 and response.headers["Content-Type"] == "text/csv; charset=utf-8"
    assert "attachment" in response.headers["Content-Disposition"]
    body = (await response.read()).decode("utf-8")
    assert body.startswith("\ufeff")  # for Excel
    rows = list(csv.DictReader(io.StringIO(body.lstrip("\ufeff"))))
    assert [r["contact_name"] for r in rows] == ["李娜"]
    assert rows[0]["company"].startswith("'=")  # not run as a formula by a spreadsheet
    everything = (await (await web.client.get("/leads.csv")).read()).decode("utf-8")
    assert len(list(csv.DictReader(io.StringIO(everything.lstrip("\ufeff"))))) == 2


async def test_sign_out_ends_the_session(web: Web) -> None:
    await web.login()
    token = await web.csrf()
    cookie = next(c for c in web.client.session.cookie_jar if c.key == "sid").value
    response = await web.client.post("/logout", data={"csrf": token}, allow_redirects=False)
    assert response.status == 303 and response.headers["Location"] == "/login"
    web.client.session.cookie_jar.update_cookies({"sid": cookie})  # the old cookie, replayed
    assert (await web.client.get("/leads", allow_redirects=False)).status == 303


async def test_overview_shows_the_figures(web: Web) -> None:
    for user in range(1, 4):
        await add_lead(web.repo, user, schemes=["iso20000"])
    await web.login()
    html = await (await web.client.get("/overview")).text()
    assert html.count("<rect") == 30 and ": 3</title>" in html  # a bar per day; today has 3
    assert re.search(r'status=new">新线索</a></td><td class="num">3<', html)
    assert "ISO/IEC 20000" in html


async def test_overview_shows_where_prospects_drop_off_and_what_went_unanswered(web: Web) -> None:
    counts = [("flow", "iso9001", 10), ("step", "iso9001.intro", 10), ("step", "iso9001.materials", 6),
              ("step", "iso9001.process", 3), ("lead", "iso9001", 2), ("faq", "fee", 7),
              ("unanswered", "你们有停车场吗", 4), ("unsure", "多久能拿证书和费用", 2)]  # fmt: skip
    for kind, key, n in counts:
        web.analytics.count(kind, key, n)
    await web.login()
    html = await (await web.client.get("/overview")).text()
    funnel = html[html.index('id="funnels"') :]
    assert "ISO 9001" in funnel and "10 开始, 2 线索" in funnel
    # reached, share of starts, and the drop from the step before
    assert re.search(r"<td>materials</td><td class=\"num\">6</td><td class=\"num\">60%</td>"
                     r"<td class=\"num\">40%</td>", funnel)  # fmt: skip
    assert re.search(r"<td>process</td><td class=\"num\">3</td><td class=\"num\">30%</td>"
                     r"<td class=\"num\">50%</td>", funnel)  # fmt: skip
    assert '<td>fee</td><td class="num">7</td>' in html
    unanswered = html[html.index('id="unanswered"') :]
    assert '你们有停车场吗</td><td class="num">4' in unanswered


async def test_leads_show_and_filter_their_channel(web: Web) -> None:
    await add_lead(web.repo, 61)
    await web.repo.submit(
        LeadSubmission(
            kind="enquiry",
            key="web:v1:1",
            answers={"name": "访客张", "phone": "+8613700000000"},
            prospect=ProspectId("web", "v1"),
        )
    )
    await web.login()
    every = await (await web.client.get("/leads")).text()
    assert every.count('class="channel">Telegram<') == 1 and every.count('class="channel">Web<') == 1
    only_web = await (await web.client.get("/leads?channel=web")).text()
    assert "访客张" in only_web and "王伟" not in only_web
    assert "王伟" in await (await web.client.get("/leads?channel=telegram")).text()
    assert "访客张" in await (await web.client.get("/leads?channel=nonsense")).text()  # unknown: no filter
    page = await (await web.client.get("/leads/2")).text()
    assert "<dt>Web</dt><dd>v1</dd>" in page
    telegram = await (await web.client.get("/leads/1")).text()
    assert '<a href="https://t.me/user61">@user61</a>' in telegram


async def test_overview_lists_the_alerts_still_on_their_way_per_target(
    tmp_path: Path, content: Content
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'targets.db'}"
    await upgrade(url)
    db = create_database(url)
    repo = LeadRepository(db, targets=["wecom", "email"])
    accounts = StaffAccounts(db)
    await accounts.add("alice", PASSWORD)
    settings = Settings(_env_file=None, database_url=url)  # type: ignore[call-arg]
    app = build_web_app(settings, leads=repo, accounts=accounts, content=lambda: content)
    client = TestClient(TestServer(app))
    await client.start_server()
    try:
        await add_lead(repo, 1, schemes=["iso20000"])
        await add_lead(repo, 2, schemes=["iso9001"])
        [due] = await repo.due_alerts(sender="t", target="wecom", limit=1)
        await repo.alert_failed(due.id, "wecom: HTTP 502", utcnow() + timedelta(minutes=1))
        web = Web(client, db, repo, Analytics(db, flush_interval=0.01))
        await web.login()
        html = await (await client.get("/overview")).text()
        waiting = html[html.index('id="waiting-alerts"') :]
        assert "<td>email</td><td>2</td>" in waiting and "<td>wecom</td><td>2</td>" in waiting
        assert "wecom: HTTP 502" in waiting
    finally:
        await client.close()
        await db.dispose()
