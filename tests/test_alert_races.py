"""Races around staff alerts and erasure, found by an attack pass on the #14 change: an alert on
its way when the prospect is erased, a slow send and a second replica, refusals after passing
errors, "send again" after STAFF_CHAT_ID is fixed, a later flood, and a /forget during an export."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, update

from bot.content import Content
from bot.db import create_database, upgrade
from bot.db.engine import Database
from bot.db.models import Outbox
from bot.leads import repository
from bot.leads.repository import LeadRepository, LeadSubmission
from bot.prospect import ProspectId
from bot.telegram.alerts import AlertSender
from bot.telegram.app import build_bot
from bot.telegram.limits import FloodGate
from bot.telegram.retry import RetryMiddleware

from .fakebot import FakeBotAPI, Prospect
from .harness import STAFF_CHAT, BotRunner, make_settings
from .test_leads_e2e import fill_form, until


async def test_an_alert_on_its_way_when_the_prospect_is_erased_is_emptied(
    api: FakeBotAPI, tmp_path: Path
) -> None:
    """/forget while the staff alert is on its way (a slow Bot API, the group's sending limit):
    the alert the sender was posting is emptied as soon as it is out, so the prospect's details do
    not stay in the staff group (before: the outbox row was deleted under the sender, and nobody
    edited what it posted)."""
    runner = await BotRunner(api, make_settings(api, tmp_path)).start()
    try:
        api.slow("sendMessage", 1.5, chat_id=STAFF_CHAT)
        p = Prospect(api, 8501, language_code="zh", username="slow_alert")
        await p.send("/start")
        await p.press("ISO 9001")
        await fill_form(p)
        await p.press("确认提交")
        await until(
            lambda: any(
                c.method == "sendMessage" and str(c.params.get("chat_id")) == str(STAFF_CHAT)
                for c in api.calls
            )
        )
        [confirm] = await p.send("/forget")
        [done] = await p.press("确认删除", confirm)
        assert "已删除" in done.visible

        def emptied() -> bool:
            posted = api.chat_messages(STAFF_CHAT)
            return bool(posted) and all("王经理" not in m.visible and "13800138000" not in m.visible
                                        for m in posted)  # fmt: skip

        await until(emptied, 10)
        assert any("已清除" in m.visible for m in api.chat_messages(STAFF_CHAT))
    finally:
        await runner.stop()


def _submission(i: int) -> LeadSubmission:
    return LeadSubmission(
        kind="lead",
        key=f"{7000 + i}:1",
        answers={"contact_name": f"客户{i}", "phone": "+8613800138000"},
        prospect=ProspectId.telegram(7000 + i),
    )


async def test_a_slow_send_is_not_taken_over_by_a_second_replica(
    api: FakeBotAPI, db: Database, content: Content, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two webhook replicas. Replica A claims two alerts and its first send is held up (Telegram's
    429 retry_after is waited out up to three times, a minute each, by the retry middleware).
    130 s later replica B finds nothing to claim (the lease of all A holds was renewed as the send
    began), and A sends only what it still holds: 2 alerts, 2 messages (before: 4)."""
    repo = LeadRepository(db, staff_chat_id=STAFF_CHAT)
    for i in (1, 2):
        await repo.submit(_submission(i))
    bot = build_bot(make_settings(api, tmp_path))
    try:
        a, b = AlertSender(bot, repo, content), AlertSender(bot, repo, content)
        api.slow("sendMessage", 1.0, chat_id=STAFF_CHAT)
        first = asyncio.create_task(a.deliver_due())
        await until(lambda: any(c.method == "sendMessage" for c in api.calls))
        real = repository.utcnow
        monkeypatch.setattr(repository, "utcnow", lambda: real() + timedelta(seconds=130))
        await b.deliver_due()
        await first
        alerts = [m.visible for m in api.chat_messages(STAFF_CHAT)]
        assert len(alerts) == 2, alerts
    finally:
        await bot.session.close()


async def test_a_later_flood_is_told_again() -> None:
    """One notice per flood, and one "some messages were skipped" per flood: once the prospect has
    been calm (the bucket full again), a later flood is told again (before: never, since the reset
    was checked right after a token was taken, when the bucket cannot be full)."""
    gate = FloodGate(500.0)
    notices: list[str] = []

    async def notify(text: str) -> None:
        notices.append(text)

    async def flood() -> list[bool]:
        return list(await asyncio.gather(*(gate.admit(1, notify) for _ in range(100))))

    def calm() -> bool:
        return gate.buckets.get(1).full

    first = await flood()
    assert first.count(False) > 0 and notices == ["flood_notice", "flood_dropped"]
    await until(calm)  # calm again: the bucket is full
    assert await gate.admit(1, notify)
    await until(calm)
    second = await flood()
    assert second.count(False) > 0  # messages dropped again...
    assert notices == ["flood_notice", "flood_dropped"] * 2, notices  # ...and the prospect is told


async def _deliver_until_settled(sender: AlertSender, repo: LeadRepository, rounds: int = 10) -> None:
    """Run delivery rounds, each with whatever is claimed made due at once (no waiting out pauses)."""
    for _ in range(rounds):
        async with repo.db.sessions() as s:
            rows = list(await s.scalars(select(Outbox)))
        if all(o.sent_at is not None or o.failed_at is not None for o in rows):
            return
        await repo.db.run_write(
            lambda s: s.execute(
                update(Outbox).where(Outbox.sent_at.is_(None)).values(next_attempt_at=datetime.now(UTC))
            )
        )
        await sender.deliver_due()


async def test_only_refusals_in_a_row_mark_an_alert_failed(
    api: FakeBotAPI, db: Database, content: Content, tmp_path: Path
) -> None:
    """A 4xx other than 429 "is tried 3 times, then marked failed": 3 refusals in a row, not 3
    failures of any kind. Two 502s and then one 403 (a bot briefly without the right to post)
    leave the alert to be delivered once the group works again."""
    repo = LeadRepository(db, staff_chat_id=STAFF_CHAT)
    await repo.submit(_submission(1))
    bot = build_bot(make_settings(api, tmp_path), retry=RetryMiddleware(attempts=1))
    try:
        sender = AlertSender(bot, repo, content, base_pause=0.01)
        api.fail("sendMessage", 502, "Bad Gateway", times=2, chat_id=STAFF_CHAT)
        api.fail("sendMessage", 403, "Forbidden: bot is not a member of the supergroup chat",
                 times=1, chat_id=STAFF_CHAT)  # fmt: skip
        await _deliver_until_settled(sender, repo)
        async with db.sessions() as s:
            [row] = list(await s.scalars(select(Outbox)))
        assert row.failed_at is None and row.sent_at is not None, (row.attempts, row.last_error)
    finally:
        await bot.session.close()


async def test_send_again_goes_to_the_staff_group_as_configured_now(
    api: FakeBotAPI, db: Database, content: Content, tmp_path: Path
) -> None:
    """The commonest permanent 4xx is "chat not found" (a wrong or changed STAFF_CHAT_ID). Once
    STAFF_CHAT_ID is fixed and the bot restarted, "send again" sends the failed alert to the group
    as configured now, not to the chat it was queued for."""
    old, new = -1001, -100777
    repo = LeadRepository(db, staff_chat_id=old)
    await repo.submit(_submission(1))
    bot = build_bot(make_settings(api, tmp_path), retry=RetryMiddleware(attempts=1))
    try:
        api.fail("sendMessage", 400, "Bad Request: group chat was upgraded to a supergroup chat",
                 times=100, chat_id=old)  # fmt: skip
        await _deliver_until_settled(AlertSender(bot, repo, content), repo)
        [(failed, _lead)] = await repo.failed_alerts()
        # The operator sets STAFF_CHAT_ID to the supergroup and restarts, then presses "send again".
        repo = LeadRepository(db, staff_chat_id=new)
        assert await repo.retry_alert(failed.id)
        await _deliver_until_settled(AlertSender(bot, repo, content), repo)
        assert any("L000001" in m.visible for m in api.chat_messages(new)), await repo.failed_alerts()
    finally:
        await bot.session.close()


async def test_a_forget_during_an_export_empties_the_wal_once_the_export_ends(tmp_path: Path) -> None:
    """On SQLite an erasure empties the WAL (``Database.erase_traces``), which cannot happen while
    a reader uses it (a CSV export being streamed). It is tried in the background, without waiting
    inside SQLite (a checkpoint that waits bars every writer meanwhile: before, another prospect's
    lead waited about 5 s behind one /forget): writes go on, and the WAL is emptied as soon as
    the export ends."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'x.db'}"
    await upgrade(url)
    db = create_database(url)
    try:
        repo = LeadRepository(db, staff_chat_id=STAFF_CHAT)
        for i in range(1, 4):
            await repo.submit(_submission(i))
        export = repo.stream(batch=1)
        await export.__anext__()  # the dashboard's export, mid-stream
        await repo.submit(_submission(4))
        forget = asyncio.create_task(repo.forget(ProspectId.telegram(7001)))
        for i in range(5, 10):
            await repo.submit(_submission(i))  # other prospects submit meanwhile, and succeed
        await forget
        assert db._erasing is not None and not db._erasing.done()  # still trying, without waiting
        await export.aclose()
        await db.traces_erased()  # the reader gone, the WAL is emptied
        assert (tmp_path / "x.db-wal").stat().st_size == 0
    finally:
        await db.dispose()
