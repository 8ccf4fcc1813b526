"""Attacks on the staff alerts to WeCom, DingTalk, Feishu and e-mail (``bot.staff.notify``, the
outbox's per-target rows in ``bot.leads.repository``, ``STAFF_NOTIFY`` in ``bot.settings``).

Each test that proves a defect fails on the code as reviewed; the others are regression guards."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from sqlalchemy import select

from bot.content import Content
from bot.db import create_database, upgrade
from bot.db.engine import Database
from bot.db.models import Outbox, utcnow
from bot.leads.repository import LeadRepository, LeadSubmission
from bot.prospect import ProspectId
from bot.settings import Settings
from bot.staff.notify import RobotAlertSender
from bot.staff.robots import Alert, DingTalkRobot, FeishuRobot, Retry

from .test_leads_e2e import until

# --- helpers -----------------------------------------------------------------------------------


class FakeTarget:
    """A Notifier that records when each send was made; can be made to block or to fail."""

    def __init__(self, name: str = "wecom", per_minute: int = 20) -> None:
        self.name = name
        self.per_minute = per_minute
        self.calls: list[float] = []
        self.sent: list[Alert] = []
        self.errors: list[Exception] = []
        self.block: asyncio.Event | None = None
        self.entered = asyncio.Event()

    async def send(self, alert: Alert) -> str | None:
        self.calls.append(time.monotonic())
        if self.block is not None:
            self.entered.set()
            await self.block.wait()
        if self.errors:
            raise self.errors.pop(0)
        self.sent.append(alert)
        return None


@pytest.fixture
async def sqlite(tmp_path: Path) -> AsyncIterator[Database]:
    url = f"sqlite+aiosqlite:///{tmp_path / 'alerts.db'}"
    await upgrade(url)
    database = create_database(url)
    yield database
    await database.dispose()


def submission(user: int) -> LeadSubmission:
    return LeadSubmission(
        kind="lead",
        key=f"k{user}",
        answers={
            "consent": True,
            "company": f"星河科技 {user}",
            "contact_name": "王经理",
            "phone": "+8613800138000",
            "email": "wang@example.com",
            "schemes": ["iso20000"],
        },
        source_flow="iso20000",
        locale="zh",
        prospect=ProspectId.telegram(1000 + user, "wang"),
    )


async def queue(repo: LeadRepository, count: int, start: int = 0) -> None:
    for i in range(start, start + count):
        await repo.submit(submission(i))


async def rows(db: Database) -> list[Outbox]:
    async with db.sessions() as s:
        return list(await s.scalars(select(Outbox).order_by(Outbox.id)))


def most_in_window(times: list[float], window: float) -> int:
    times = sorted(times)
    return max((sum(1 for t in times[i:] if t - start < window) for i, start in enumerate(times)), default=0)


# --- pacing ------------------------------------------------------------------------------------


async def test_a_paced_sender_does_not_poll_the_database_every_50_ms(
    sqlite: Database, content: Content
) -> None:
    """A burst larger than the pace: once the minute's sends are used up, the sender should
    sleep until the pace allows the next one (about a minute), not query the outbox 20 times a
    second for the whole burst (200 leads at 20/min: ~10 minutes of it, per target)."""
    repo = LeadRepository(sqlite, targets=["wecom"])
    await queue(repo, 6)
    target = FakeTarget(per_minute=2)
    sender = RobotAlertSender(target, repo, lambda: content)
    polls = 0
    original = repo.next_alert_at

    async def counting(t: str = "telegram"):  # type: ignore[no-untyped-def]
        nonlocal polls
        polls += 1
        return await original(t)

    repo.next_alert_at = counting  # type: ignore[method-assign]
    sender.start()
    try:
        await until(lambda: len(target.sent) == 2)
        before = polls
        await asyncio.sleep(1.0)
        assert len(target.sent) == 2  # the pace holds ...
        assert polls - before <= 3, f"{polls - before} outbox queries in 1 s while waiting for the pace"
    finally:
        await sender.stop()


async def test_feishu_is_not_sent_more_than_5_alerts_a_second(sqlite: Database, content: Content) -> None:
    """Feishu's custom bot takes 100 messages a minute AND 5 a second (自定义机器人使用指南: "单租户
    单机器人 100 次/分钟，5 次/秒"; beyond: 11232, and the sender then waits 60 s). A burst of leads
    is sent 10 at once."""
    repo = LeadRepository(sqlite, targets=["feishu"])
    await queue(repo, 12)
    target = FakeTarget("feishu", per_minute=FeishuRobot.per_minute)
    sender = RobotAlertSender(target, repo, lambda: content)
    await sender.deliver_due()
    await sender.deliver_due()
    assert target.sent
    assert most_in_window(target.calls, 1.0) <= 5, f"{most_in_window(target.calls, 1.0)} sends in 1 s"


async def test_a_restart_does_not_reset_the_targets_pace(sqlite: Database, content: Content) -> None:
    """The pace lives in the sender's memory: a process restarted (a deploy, a crash) within the
    minute starts with a full minute's allowance, so the robot gets twice its limit (DingTalk then
    blocks the robot for ten minutes: 130101)."""
    repo = LeadRepository(sqlite, targets=["dingtalk"])
    await queue(repo, 6)
    target = FakeTarget("dingtalk", per_minute=3)
    await RobotAlertSender(target, repo, lambda: content).deliver_due()
    assert len(target.sent) == 3
    await RobotAlertSender(target, repo, lambda: content).deliver_due()  # the process after a restart
    assert most_in_window(target.calls, 60.0) <= 3, f"{len(target.calls)} sends to one robot within a minute"


async def test_two_replicas_do_not_together_exceed_the_targets_pace(
    sqlite: Database, content: Content
) -> None:
    """Webhook replicas each run a sender per target with a pace of its own: two replicas send
    twice the vendor's limit to the same robot."""
    repo_a = LeadRepository(sqlite, targets=["wecom"])
    repo_b = LeadRepository(sqlite, targets=["wecom"])
    await queue(repo_a, 8)
    target = FakeTarget("wecom", per_minute=3)
    a = RobotAlertSender(target, repo_a, lambda: content)
    b = RobotAlertSender(target, repo_b, lambda: content)
    await asyncio.gather(a.deliver_due(), b.deliver_due())
    assert len({id(x) for x in target.sent}) == len(target.sent)  # none twice
    assert most_in_window(target.calls, 60.0) <= 3, f"{len(target.calls)} sends to one robot within a minute"


async def test_a_new_alert_waits_out_the_vendors_rate_limit(sqlite: Database, content: Content) -> None:
    """The robot answered "rate limited, wait 60 s": the queued alerts are put back for 60 s,
    but the next new lead (which wakes the sender) is sent at once, into the limit; each such
    request fails, counts an attempt, and with DingTalk may prolong the block."""
    repo = LeadRepository(sqlite, targets=["wecom"])
    target = FakeTarget("wecom")
    target.errors = [Retry("wecom", "45009 api freq out of limit", code=45009, after=60.0)]
    sender = RobotAlertSender(target, repo, lambda: content)
    await queue(repo, 1)
    await sender.deliver_due()
    assert len(target.calls) == 1
    await queue(repo, 1, start=1)  # a new lead a second later
    await sender.deliver_due()
    assert len(target.calls) == 1, "sent to a robot that asked to wait 60 s"


# --- restarts ----------------------------------------------------------------------------------


async def test_an_alert_cut_off_by_a_stop_is_sent_at_the_next_start(
    sqlite: Database, content: Content
) -> None:
    """Stopping the service (a deploy) while a send is in flight leaves the alert claimed for the
    whole lease (ALERT_LEASE, 5 minutes): the next start does not send it (the Telegram sender
    takes back its earlier run's claims at start; the robot senders do not, and do not give the
    alert back when cancelled)."""
    repo = LeadRepository(sqlite, targets=["wecom"])
    await queue(repo, 1)
    target = FakeTarget("wecom")
    target.block = asyncio.Event()
    first = RobotAlertSender(target, repo, lambda: content)
    first.start()
    await asyncio.wait_for(target.entered.wait(), 5)
    await first.stop()  # SIGTERM mid-send
    target.block = None
    second = RobotAlertSender(target, repo, lambda: content)  # the next start
    second.start()
    try:
        await until(lambda: bool(target.sent), 3.0)
    finally:
        await second.stop()
    [row] = await rows(sqlite)
    assert row.sent_at is not None


# --- secrets and settings ----------------------------------------------------------------------


async def test_a_robots_access_token_does_not_reach_the_overview_or_the_log(
    sqlite: Database, content: Content, caplog: pytest.LogCaptureFixture
) -> None:
    """A malformed HTTP answer (a proxy, a WAF) makes aiohttp raise ClientResponseError, whose
    text carries the full request URL: DingTalk's access_token (and sign) end up in ``last_error``,
    shown to every staff member on the overview, and in the log."""

    async def garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(65536)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: abc\r\n\r\n{}")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(garbage, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    token = "TOKENabc123SECRETdef456"
    repo = LeadRepository(sqlite, targets=["dingtalk"])
    await queue(repo, 1)
    caplog.set_level(logging.INFO)
    try:
        async with aiohttp.ClientSession() as http:
            robot = DingTalkRobot(f"http://127.0.0.1:{port}/robot/send?access_token={token}", "SECx", http)
            await RobotAlertSender(robot, repo, lambda: content).deliver_due()
    finally:
        server.close()
        await server.wait_closed()
    [(target, _n, _oldest, error)] = await repo.waiting_alerts()
    assert target == "dingtalk" and error
    assert token not in error, error
    assert token not in caplog.text


def test_a_webhook_setting_that_is_not_a_url_is_refused_at_start() -> None:
    """Pasting only WeCom's key (or the URL without https://) is accepted; every alert then fails
    with InvalidUrlClientError, retried as an *uncertain* send forever (never refused, never listed
    as failed, each retry marked "possibly a repeat")."""
    with pytest.raises(ValueError, match="WECOM_WEBHOOK_URL"):
        Settings(  # type: ignore[call-arg]
            _env_file=None, staff_notify="wecom", wecom_webhook_url="693a91f6-7xxx-4bc4-97a0-0ec2sifa5aaa"
        )
    with pytest.raises(ValueError, match="DINGTALK_WEBHOOK_URL"):
        Settings(  # type: ignore[call-arg]
            _env_file=None,
            staff_notify="dingtalk",
            dingtalk_webhook_url="oapi.dingtalk.com/robot/send?access_token=abc",
        )


def test_telegram_listed_without_a_bot_token_is_refused_at_start() -> None:
    """``STAFF_NOTIFY=telegram,wecom`` with ``STAFF_CHAT_ID`` but no ``BOT_TOKEN`` (the web chat
    alone): a Telegram row is queued for every lead and never sent (no AlertSender without a
    bot); the overview lists them as "on their way" forever. The validator checks each target's
    settings but not this one's token."""
    with pytest.raises(ValueError, match="BOT_TOKEN"):
        Settings(  # type: ignore[call-arg]
            _env_file=None,
            staff_notify="telegram,wecom",
            staff_chat_id=-1001234567890,
            wecom_webhook_url="https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=abc",
        )


# --- the overview ------------------------------------------------------------------------------


async def test_the_overview_shows_the_last_error_not_the_greatest(sqlite: Database) -> None:
    """``waiting_alerts`` reports ``max(last_error)``: the alphabetically greatest error of the
    target's waiting rows, not the last one met. The network came back, the key is now wrong,
    and the overview still says "cannot connect"."""
    repo = LeadRepository(sqlite, targets=["wecom"])
    await queue(repo, 2)
    first, second = await repo.due_alerts(target="wecom", sender="s")
    later = utcnow()
    await repo.alert_failed(first.id, "wecom: cannot connect: [Errno 111]", later)
    await repo.alert_failed(second.id, "wecom: 93000 invalid webhook url", later, answered=True, refused=True)
    [(target, count, _oldest, error)] = await repo.waiting_alerts()
    assert (target, count) == ("wecom", 2)
    assert error == "wecom: 93000 invalid webhook url", error


# --- regression guards -------------------------------------------------------------------------


async def test_guard_each_sender_claims_only_its_own_targets_rows_and_forget_drops_queued_ones(
    sqlite: Database, content: Content
) -> None:
    """The Telegram sender (default target) never claims a robot's row, nor a robot sender the
    Telegram group's; /forget drops the robots' queued alerts too."""
    repo = LeadRepository(sqlite, staff_chat_id=-100, targets=["telegram", "wecom", "email"])
    await queue(repo, 1)
    assert [r.target for r in await rows(sqlite)] == ["telegram", "wecom", "email"]
    [tg] = await repo.due_alerts(sender="tg")
    assert tg.target == "telegram"
    [wecom] = await repo.due_alerts(sender="w", target="wecom")
    assert wecom.target == "wecom"
    assert await repo.due_alerts(sender="tg2") == []
    await repo.release_alerts([tg.id, wecom.id], utcnow())
    await repo.forget(ProspectId.telegram(1000, "wang"))
    assert await rows(sqlite) == []
    target = FakeTarget("email")
    await RobotAlertSender(target, repo, lambda: content).deliver_due()
    assert target.calls == []
