"""Staff alerts to WeCom, DingTalk, Feishu and e-mail, end to end: the bot as ``make run``
assembles it (no Telegram), a web visitor's lead, and the fake robots and SMTP sink receiving
what the outbox sends (``bot.staff.notify``)."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from sqlalchemy import select

from bot.db.models import Outbox
from bot.service import Service, Tuning
from bot.settings import Settings
from bot.staff.testing import FakeRobots, SmtpSink
from bot.webchat.testing import WebVisitor

from .conftest import FLOWS
from .test_leads_e2e import until

PUBLIC = "https://bot.consultancy.example"


def settings_for(tmp_path: Path, robots: FakeRobots, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}",
        "flows_dir": FLOWS,
        "watch_flows": False,
        "web_port": 0,
        "working_hours": "always",
        "web_public_url": PUBLIC,
        "wecom_webhook_url": robots.wecom_url,
        "dingtalk_webhook_url": robots.dingtalk_url,
        "dingtalk_secret": robots.dingtalk_secret,
        "feishu_webhook_url": robots.feishu_url,
        "feishu_secret": robots.feishu_secret,
        "webchat_rate": 1000.0,
        "webchat_rate_per_address": 1000.0,
        "webchat_burst_per_address": 1000.0,
        **overrides,
    }
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


@pytest.fixture
async def robots() -> AsyncIterator[FakeRobots]:
    fake = await FakeRobots().start()
    yield fake
    await fake.stop()


async def start(settings: Settings) -> Service:
    return await Service(settings, tuning=Tuning(alert_base_pause=0.05, retry_base_pause=0.01)).start()


async def web_lead(service: Service, company: str, phone: str = "13800138000") -> str:
    """A web visitor leaves their details; the reference they are shown."""
    async with aiohttp.ClientSession() as http:
        v = await WebVisitor(http, f"http://127.0.0.1:{service.web_port}").open()
        await v.start()
        await v.press("ISO/IEC 20000")
        await v.press("申请条件自测")
        for answer in ["是", "是", "否", "是", "是", "是"]:
            await v.press(answer)
        await v.press("留下联系方式")
        await v.press("同意并继续")
        for text in [company, "王经理", phone, "wang@example.com", "深圳", "80", "2"]:
            await v.send(text)
        await v.press("选好了")
        await v.press("3–6 个月")
        await v.send("希望年底前拿证")
        await v.press("确认提交")
        found = re.search(r"L\d{6}", v.text)
        assert found is not None, v.text
        return found.group(0)


async def outbox(service: Service) -> list[Outbox]:
    assert service.db is not None
    async with service.db.sessions() as s:
        return list(await s.scalars(select(Outbox).order_by(Outbox.id)))


async def test_with_only_wecom_a_web_lead_reaches_the_robot_once(tmp_path: Path, robots: FakeRobots) -> None:
    service = await start(settings_for(tmp_path, robots, staff_notify="wecom"))
    try:
        reference = await web_lead(service, "[星河](http://evil.example) <@all> & Co")
        [message] = await robots.wait("wecom", 1)
        content = message.body["markdown"]["content"]
        assert reference in content and "Web" in content and "王经理" in content
        assert f"{PUBLIC}/leads/1" in content and "体系运行3个月以上" in content  # the self-check's gap
        assert "](http://evil.example)" not in content and "<@all>" not in content  # made inert
        [row] = await outbox(service)
        assert (row.target, row.sent_at is not None, row.attempts) == ("wecom", True, 0)
        assert len(robots.messages["wecom"]) == 1 and not robots.messages["dingtalk"]
    finally:
        await service.stop()


async def test_every_target_gets_its_alert_and_one_down_holds_none_back(
    tmp_path: Path, robots: FakeRobots
) -> None:
    sink = await SmtpSink().start()
    robots.down("dingtalk")
    settings = settings_for(
        tmp_path,
        robots,
        staff_notify="wecom,dingtalk,feishu,email",
        smtp_host="127.0.0.1",
        smtp_port=sink.port,
        smtp_security="none",
        smtp_from="bot@consultancy.example",
        staff_emails="sales@consultancy.example,boss@consultancy.example",
    )
    service = await start(settings)
    try:
        reference = await web_lead(service, "星河科技")
        await robots.wait("wecom", 1)
        await robots.wait("feishu", 1)
        [mail] = await sink.wait(1)
        assert reference in str(mail.message["Subject"])
        plain = mail.message.get_body(("plain",))
        assert plain is not None and "星河科技" in plain.get_content()
        assert sorted(mail.recipients) == ["boss@consultancy.example", "sales@consultancy.example"]
        assert not robots.messages["dingtalk"]
        waiting = [o for o in await outbox(service) if o.target == "dingtalk"]
        assert waiting and waiting[0].sent_at is None and waiting[0].last_error
        assert service.leads is not None
        [(target, count, _oldest, error)] = await service.leads.waiting_alerts()  # the overview's list
        assert (target, count) == ("dingtalk", 1) and error is not None and "502" in error
        robots.up("dingtalk")  # back after a while: its alert goes, once
        [ding] = await robots.wait("dingtalk", 1, within=10)
        assert reference in json.dumps(ding.body, ensure_ascii=False)
        for target in ("wecom", "feishu"):
            assert len(robots.messages[target]) == 1
        assert len(sink.mails) == 1
    finally:
        await service.stop()
        await sink.stop()


async def test_an_alert_queued_before_a_restart_is_sent_after_it_once(
    tmp_path: Path, robots: FakeRobots
) -> None:
    robots.down("wecom")
    settings = settings_for(tmp_path, robots, staff_notify="wecom")
    first = await start(settings)
    try:
        reference = await web_lead(first, "星河科技")
        await robots.wait_refused("wecom")  # tried, the robot down: still queued at the stop
        assert not robots.messages["wecom"]
    finally:
        await first.stop()
    robots.up("wecom")
    second = await start(settings)
    try:
        [message] = await robots.wait("wecom", 1, within=10)
        assert reference in message.body["markdown"]["content"]
        [row] = await outbox(second)
        assert row.sent_at is not None
    finally:
        await second.stop()
    assert len(robots.messages["wecom"]) == 1


async def test_a_wrong_key_is_tried_three_times_then_listed_as_failed(
    tmp_path: Path, robots: FakeRobots
) -> None:
    wrong = robots.wecom_url.replace(robots.wecom_key, "not-the-key")
    service = await start(settings_for(tmp_path, robots, staff_notify="wecom", wecom_webhook_url=wrong))
    try:
        await web_lead(service, "星河科技")

        async def failed() -> bool:
            return (await outbox(service))[0].failed_at is not None

        await until(failed)
        [row] = await outbox(service)
        assert row.failed_at is not None and row.refusals == 3 and not robots.messages["wecom"]
        assert service.leads is not None
        [(failed, lead)] = await service.leads.failed_alerts()
        assert failed.target == "wecom" and lead.company == "星河科技"
    finally:
        await service.stop()


def test_a_target_without_its_settings_is_refused_at_start(tmp_path: Path, robots: FakeRobots) -> None:
    with pytest.raises(ValueError, match="STAFF_NOTIFY lists email: set SMTP_HOST, SMTP_FROM, STAFF_EMAILS"):
        Settings(_env_file=None, staff_notify="email", database_url="sqlite://")  # type: ignore[call-arg]
    with pytest.raises(ValueError, match="unknown target 'slack'"):
        Settings(_env_file=None, staff_notify="wecom,slack")  # type: ignore[call-arg]
