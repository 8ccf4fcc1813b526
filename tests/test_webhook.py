"""``python -m bot webhook``: the secret, acknowledging only what is handled, health and
readiness, duplicate deliveries; then replicas on PostgreSQL and Redis fed alternately, and one
killed with SIGKILL mid-conversation."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import aiohttp
from sqlalchemy import func, select

from bot.db.models import Lead, Outbox

from .conftest import REDIS_URL, ROOT
from .fakebot import TOKEN, FakeBotAPI, Prospect
from .harness import STAFF_CHAT, WEBHOOK_SECRET, Replica, webhook_settings
from .test_leads_e2e import enquire, fill_form, until


async def post(url: str, body: dict[str, object], secret: str | None) -> int:
    headers = {"X-Telegram-Bot-Api-Secret-Token": secret} if secret is not None else {}
    async with aiohttp.ClientSession() as http, http.post(url, json=body, headers=headers) as response:
        return response.status


async def count_leads(replica: Replica) -> int:
    assert replica.db is not None
    async with replica.db.sessions() as s:
        return int(await s.scalar(select(func.count()).select_from(Lead)) or 0)


async def test_the_secret_is_checked_and_an_update_is_answered_once_handled(
    api: FakeBotAPI, tmp_path: Path
) -> None:
    replica = await Replica(api, webhook_settings(api, tmp_path)).start()
    try:
        p = Prospect(api, 7001, language_code="en")
        update = {"update_id": 1, "message": p._message(text="hello")}
        assert await post(replica.url, update, None) == 401
        assert await post(replica.url, update, "wrong-secret") == 401
        assert api.chat_messages(7001) == []  # nothing processed
        assert await post(replica.url, update, WEBHOOK_SECRET) == 200
        # Acknowledged only once handled: the answer was sent before the 200.
        assert api.chat_messages(7001) and "certification assistant" in api.chat_messages(7001)[0].visible
        async with aiohttp.ClientSession() as http:
            base = replica.url.rsplit("/", 2)[0]
            async with http.get(base + "/healthz") as r:
                assert r.status == 200
            async with http.get(base + "/readyz") as r:
                assert r.status == 200 and (await r.json())["ok"] is True
            assert replica.server is not None
            replica.server.draining = True  # shutting down: the balancer is told
            async with http.get(base + "/readyz") as r:
                assert r.status == 503 and "shutting down" in (await r.json())["problems"]
    finally:
        await replica.stop()


async def test_a_duplicate_delivery_makes_no_duplicate_lead(api: FakeBotAPI, tmp_path: Path) -> None:
    replica = await Replica(api, webhook_settings(api, tmp_path)).start()
    api.use_webhook([replica.url], WEBHOOK_SECRET)
    try:
        p = Prospect(api, 7002)
        await enquire(p, "钱先生", "13912345678")
        assert await count_leads(replica) == 1
        last = {"update_id": p.last_update_id, **p.last_body}
        before = len(p.messages)
        assert await post(replica.url, last, WEBHOOK_SECRET) == 200  # Telegram delivers it again
        assert await count_leads(replica) == 1 and len(p.messages) == before
    finally:
        await replica.stop()


async def test_graceful_shutdown_finishes_the_update_in_flight(api: FakeBotAPI, tmp_path: Path) -> None:
    replica = await Replica(api, webhook_settings(api, tmp_path)).start()
    api.fail("sendMessage", 429, "Too Many Requests: retry after 1", retry_after=1)  # a slow reply
    try:
        p = Prospect(api, 7003, language_code="en")
        update = {"update_id": 5, "message": p._message(text="/start")}
        delivery = asyncio.create_task(post(replica.url, update, WEBHOOK_SECRET))
        await asyncio.sleep(0.3)  # the update is in flight, waiting out the 429
        assert replica.server is not None
        await replica.server.stop()
        assert await delivery == 200 and api.chat_messages(7003)
    finally:
        await replica.stop()


# --- several replicas on PostgreSQL and Redis ----------------------------------------------------


async def test_two_replicas_serve_the_same_chats_coherently(
    api: FakeBotAPI, tmp_path: Path, postgres_url: str, redis_prefix: str
) -> None:
    settings = webhook_settings(
        api, tmp_path, database_url=postgres_url, redis_url=REDIS_URL, redis_prefix=redis_prefix
    )
    one = await Replica(api, settings).start()
    two = await Replica(api, settings).start()
    api.use_webhook([one.url, two.url], WEBHOOK_SECRET)  # updates alternate between them
    try:
        prospects = [Prospect(api, 7100 + i, username=f"p{i}") for i in range(4)]

        async def through_the_form(p: Prospect) -> None:
            await p.send("/start")
            await p.press("ISO/IEC 20000")
            await p.press("申请条件自测")
            for answer in ["是", "是", "否", "是", "是", "是"]:
                await p.press(answer)
            await fill_form(p)
            replies = await p.press("确认提交")
            assert any("L0000" in m.visible for m in replies)

        await asyncio.gather(*(through_the_form(p) for p in prospects))
        urls = {url for _, url, _ in api.deliveries}
        assert urls == {one.url, two.url}  # both replicas took part
        assert api.undelivered == []
        assert one.db is not None
        async with one.db.sessions() as s:
            leads = list(await s.scalars(select(Lead).order_by(Lead.id)))
        assert sorted(int(lead.external_id or 0) for lead in leads) == [7100, 7101, 7102, 7103]
        assert all(lead.selfcheck["running_3m"] is False and lead.phone == "+8613800138000" for lead in leads)
        await until(lambda: len(api.chat_messages(STAFF_CHAT)) >= 4)
        await asyncio.sleep(0.3)  # both senders had time to send any alert twice
        async with one.db.sessions() as s:
            alerts = list(await s.scalars(select(Outbox)))
        assert len(api.chat_messages(STAFF_CHAT)) == 4 and all(a.sent_at is not None for a in alerts)
    finally:
        await one.stop()
        await two.stop()


async def test_a_replica_killed_mid_conversation(
    api: FakeBotAPI, tmp_path: Path, postgres_url: str, redis_prefix: str
) -> None:
    settings = webhook_settings(
        api,
        tmp_path,
        database_url=postgres_url,
        redis_url=REDIS_URL,
        redis_prefix=redis_prefix,
        redis_lock_timeout=2,
    )
    survivor = await Replica(api, settings).start()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("BOT_", "DATABASE_", "REDIS_", "WEB"))},
        "BOT_TOKEN": TOKEN,
        "TELEGRAM_API_BASE": api.base_url,
        "DATABASE_URL": postgres_url,
        "REDIS_URL": REDIS_URL,
        "REDIS_PREFIX": redis_prefix,
        "REDIS_LOCK_TIMEOUT": "2",
        "WEBHOOK_SECRET": WEBHOOK_SECRET,
        "WEBHOOK_HOST": "127.0.0.1",
        "WEBHOOK_PORT": "0",
        "WEB_ENABLED": "false",
        "WATCH_FLOWS": "false",
        "STAFF_CHAT_ID": str(STAFF_CHAT),
        "WORKING_HOURS": "always",
    }
    victim = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", "webhook", cwd=ROOT, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    try:
        assert victim.stdout is not None
        log = b""
        while b"webhook server on" not in log:
            line = await asyncio.wait_for(victim.stdout.readline(), 30)
            assert line, log.decode()
            log += line
        port = log.split(b"webhook server on 127.0.0.1:")[1].split(b"/")[0].decode()
        victim_url = f"http://127.0.0.1:{port}{settings.webhook_path}"
        api.use_webhook([victim_url], WEBHOOK_SECRET)
        p = Prospect(api, 7200)
        await p.send("/start")
        await p.press("ISO/IEC 20000")
        await p.press("申请条件自测")
        [q2] = await p.press("是")
        assert "问题 2/6" in q2.visible
        assert {url for _, url, _ in api.deliveries} == {victim_url}
        # Killed without warning; Telegram goes on delivering, to whichever replica answers.
        victim.send_signal(signal.SIGKILL)
        await victim.wait()
        api.use_webhook([victim_url, survivor.url], WEBHOOK_SECRET)
        [q3] = await p.press("否")
        assert "问题 3/6" in q3.visible and q3.message_id == q2.message_id  # the same conversation
        for _ in range(4):
            [last] = await p.press("是")
        assert "暂时还不能申请" in last.visible and "已按标准建立IT服务管理体系" in last.visible
        assert api.undelivered == []
    finally:
        if victim.returncode is None:
            victim.kill()
            await victim.wait()
        await survivor.stop()


async def test_an_update_that_failed_is_handled_when_telegram_delivers_it_again(
    api: FakeBotAPI, tmp_path: Path
) -> None:
    replica = await Replica(api, webhook_settings(api, tmp_path)).start()
    api.use_webhook([replica.url], WEBHOOK_SECRET)
    engine = replica.runtime.engine
    original = engine.handle
    failures = []

    def flaky(*args, **kwargs):  # type: ignore[no-untyped-def]
        if not failures:
            failures.append(1)
            raise ConnectionError("the database went away for a moment")
        return original(*args, **kwargs)

    engine.handle = flaky  # type: ignore[method-assign]
    try:
        p = Prospect(api, 7004, language_code="en")
        [welcome] = await p.send("/start")
        assert "certification assistant" in welcome.visible
        statuses = [status for uid, _, status in api.deliveries if uid == p.last_update_id]
        assert statuses == [500, 200]  # refused once, handled on the redelivery
    finally:
        await replica.stop()
