"""WeChat end to end: the real bot process (``Service``) serving WeChat's callback on its web
server, a fake WeChat (``bot.wechat.testing``) pushing signed messages to it over real HTTP with
WeChat's 5-second deadline and retries, and serving the token and customer-service API."""

from __future__ import annotations

import asyncio
import shutil
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from sqlalchemy import select

from bot.content import load_content
from bot.db.engine import Database
from bot.db.models import Lead, LiveChat
from bot.engine.engine import Engine
from bot.prospect import ProspectId
from bot.service import Service, Tuning
from bot.settings import Settings
from bot.wechat.api import DatabaseTokens, MemoryTokens, RedisTokens, Undeliverable, WeChatAPI
from bot.wechat.callback import sign
from bot.wechat.render import MAX_BYTES, texts
from bot.wechat.testing import FakeWeChat, WeChatUser, new_aes_key

from .conftest import FLOWS, REDIS_URL
from .fakebot import FakeBotAPI, Prospect
from .harness import STAFF_CHAT, BotRunner, make_settings


def wechat_settings(wx: FakeWeChat, tmp_path: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}",
        "flows_dir": FLOWS,
        "watch_flows": False,
        "web_port": 0,
        "working_hours": "always",
        "wechat_token": wx.token,
        "wechat_app_id": wx.app_id,
        "wechat_app_secret": wx.secret,
        "wechat_api_base": wx.base,
        **overrides,
    }
    if wx.aes_key:
        values["wechat_aes_key"] = wx.aes_key
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


@pytest.fixture
async def wx() -> AsyncIterator[FakeWeChat]:
    fake = await FakeWeChat().start()
    yield fake
    await fake.stop()


async def serve(wx: FakeWeChat, settings: Settings) -> Service:
    service = await Service(settings, tuning=Tuning(retry_base_pause=0.01)).start()
    wx.callback = f"http://127.0.0.1:{service.web_port}{settings.wechat_path}"
    return service


@pytest.fixture
async def bot(wx: FakeWeChat, tmp_path: Path) -> AsyncIterator[Service]:
    """The bot with WeChat and no Telegram token, as ``make run`` with WeChat's settings."""
    service = await serve(wx, wechat_settings(wx, tmp_path))
    yield service
    await service.stop()


async def leads(service: Service) -> list[Lead]:
    assert service.db is not None
    async with service.db.sessions() as s:
        return list(await s.scalars(select(Lead).order_by(Lead.id)))


def turns(service: Service) -> int:
    assert service.wechat is not None
    return service.wechat.turns


async def walk_to_summary(u: WeChatUser) -> None:
    """ISO/IEC 20000 by numbers and by typed labels, the self-check, the lead form typed."""
    welcome = await u.follow()
    assert welcome is not None and "认证咨询助手" in welcome and "回复 1：" in welcome
    shown = await u.choose("ISO/IEC 20000")
    assert shown is not None and "ISO/IEC 20000 信息技术服务管理体系认证" in shown
    await u.choose("申请条件自测")
    for answer in ["是", "是", "否", "是", "是"]:
        await u.choose(answer)
    verdict = await u.send("是")  # a button's label typed works as the button
    assert verdict is not None and "体系运行3个月以上" in verdict
    await u.choose("留下联系方式")
    await u.choose("同意并继续")
    await u.send("<b>星河</b> & Co")
    await u.send("王经理")
    wrong = await u.send("12345")
    assert wrong is not None and "电话号码看起来不对" in wrong
    await u.send("13800138000")
    await u.send("wang@example.com")
    await u.send("深圳")
    for number in ["80", "2"]:  # numbers typed in a form field are answers, not options
        await u.send(number)
    await u.choose("ISO 9001")  # ISO/IEC 20000 is chosen already: where they came from
    await u.choose("选好了")
    await u.choose("3–6 个月")
    summary = await u.send("希望年底前拿证")
    assert summary is not None and "请确认您的信息" in summary and "+8613800138000" in summary


async def test_url_verification_echoes_only_a_signed_fresh_request(wx: FakeWeChat, bot: Service) -> None:
    now = str(int(time.time()))
    good = {"signature": sign(wx.token, now, "n1"), "timestamp": now, "nonce": "n1", "echostr": "e123"}
    async with aiohttp.ClientSession() as http:
        async with http.get(wx.callback, params=good) as r:
            assert (r.status, await r.text()) == (200, "e123")
        forged = {**good, "signature": sign("other-token", now, "n1")}
        async with http.get(wx.callback, params=forged) as r:
            assert r.status == 403 and "e123" not in await r.text()
        old = str(int(time.time()) - 3600)
        stale = {**good, "timestamp": old, "signature": sign(wx.token, old, "n1")}
        async with http.get(wx.callback, params=stale) as r:
            assert r.status == 403


async def test_a_follower_walks_to_a_lead_by_numbers_and_labels(wx: FakeWeChat, bot: Service) -> None:
    u = WeChatUser(wx)
    await walk_to_summary(u)
    done = await u.choose("确认提交")
    assert done is not None and "L000001" in done
    [lead] = await leads(bot)
    assert (lead.channel, lead.external_id, lead.company, lead.phone) == (
        "wechat",
        u.openid,
        "<b>星河</b> & Co",
        "+8613800138000",
    )
    assert lead.selfcheck["running_3m"] is False and lead.headcount == 80 and lead.sites == 2
    assert set(lead.schemes) == {"iso20000", "iso9001"} and lead.timeline == "6m"
    # Every passive reply fitted WeChat's limit, and nothing needed a second attempt.
    assert all(len(t.encode()) <= MAX_BYTES for t in u.texts)
    assert {attempt for _, attempt, _ in wx.attempts} == {1}


async def test_forged_stale_and_malformed_pushes_are_refused_unprocessed(
    wx: FakeWeChat, bot: Service
) -> None:
    xml, _ = wx.xml("o_forger", "text", Content="/start", MsgId="1")
    now = str(int(time.time()))
    async with aiohttp.ClientSession() as http:
        forged = {"signature": sign("not-the-token", now, "n"), "timestamp": now, "nonce": "n"}
        async with http.post(wx.callback, params=forged, data=xml.encode()) as r:
            assert r.status == 403
        old = str(int(time.time()) - 3600)  # a push captured an hour ago, replayed
        replay = {"signature": sign(wx.token, old, "n"), "timestamp": old, "nonce": "n"}
        async with http.post(wx.callback, params=replay, data=xml.encode()) as r:
            assert r.status == 403
        signed = {"signature": sign(wx.token, now, "n"), "timestamp": now, "nonce": "n"}
        bomb = b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa">]><xml>&a;</xml>'
        for body in (b"not xml", b"<xml><MsgType>text</MsgType></xml>", bomb):
            async with http.post(wx.callback, params=signed, data=body) as r:
                assert r.status == 403
    assert turns(bot) == 0
    assert bot.store is not None and await bot.store.load(ProspectId("wechat", "o_forger").key) is None


async def test_three_attempts_of_one_message_are_one_turn_and_one_lead(wx: FakeWeChat, bot: Service) -> None:
    u = WeChatUser(wx)
    await walk_to_summary(u)
    before = turns(bot)
    xml, _ = wx.xml(u.openid, "text", Content=u.number("确认提交"), MsgId="424242")
    answers = [await wx._post(xml) for _ in range(3)]  # WeChat's three attempts of one push
    first = wx.read_reply(answers[0][1])
    assert first is not None and "L000001" in first
    # A retry means WeChat did not get the answer: it gets the same one, not a second turn.
    assert [wx.read_reply(body) for _, body in answers[1:]] == [first, first]
    assert turns(bot) == before + 1
    assert len(await leads(bot)) == 1
    # Concurrent attempts (one still being handled when the next comes): one turn too.
    xml, _ = wx.xml(u.openid, "text", Content="证书有效期多久", MsgId="424243")
    bodies = await asyncio.gather(*(wx._post(xml) for _ in range(3)))
    replies = [wx.read_reply(body) for _, body in bodies]
    assert turns(bot) == before + 2
    assert sum(1 for r in replies if r is not None and "三年" in r) >= 1


async def test_a_slow_turn_is_answered_by_customer_service_messages_once(
    wx: FakeWeChat, bot: Service
) -> None:
    u = WeChatUser(wx)
    await u.follow()
    await u.send("你好")
    shown = len(u.texts)
    assert bot.core is not None
    key = ProspectId("wechat", u.openid).key
    held = asyncio.Event()

    async def hold() -> None:  # the conversation busy for 6 s (a database that does not answer)
        async with bot.core.locks.lock(key):  # type: ignore[union-attr]
            held.set()
            await asyncio.sleep(6)

    holder = asyncio.create_task(hold())
    await held.wait()
    started = time.monotonic()
    passive = await u.choose("ISO/IEC 20000")
    assert passive is None and time.monotonic() - started < 5  # "success" in time: no retry
    [text] = (await u.wait(shown + 1, within=15))[shown:]
    assert "ISO/IEC 20000 信息技术服务管理体系认证" in text and "回复 1：" in text
    await holder
    assert [a for _, a, _ in wx.attempts[-1:]] == [1] and turns(bot) == 3
    assert bot.wechat is not None
    await bot.wechat.settled()  # everything the turn sent has gone: once
    assert len(u.texts) == shown + 1 and len(wx.sent) == 1


async def test_what_a_user_cannot_send_gets_a_polite_answer_and_an_unfollow_none(
    wx: FakeWeChat, bot: Service
) -> None:
    u = WeChatUser(wx)
    await u.follow()
    answer = await u.picture()
    assert answer is not None and "只能读懂文字" in answer and "回复 1：" in answer
    assert await wx.push(u.openid, "event", Event="unsubscribe") is None
    scanned = await WeChatUser(wx).follow(scene="iso9001")  # a QR code with a scene: that flow
    assert scanned is not None and "ISO 9001" in scanned.splitlines()[0]
    big = await u.send("证" * 5000)  # longer than WeChat sends: read in part, answered
    assert big is not None and len(big.encode()) <= MAX_BYTES


async def test_a_number_from_before_a_content_reload_gets_the_current_menu(
    wx: FakeWeChat, bot: Service, tmp_path: Path
) -> None:
    u = WeChatUser(wx)
    await u.follow()
    number = u.number("ISO 27001")
    edited = tmp_path / "flows"
    shutil.copytree(FLOWS, edited)
    main = edited / "main.yaml"
    main.write_text(main.read_text(encoding="utf-8") + "\n# edited\n", encoding="utf-8")
    assert bot.core is not None
    bot.core.engine = Engine(load_content(edited))  # as a reload does
    assert bot.core.engine.content.version != load_content(FLOWS).version
    answer = await u.send(number)
    assert answer is not None and "菜单已过期" in answer and "回复 1：" in answer
    assert "信息安全管理体系" not in answer.split("菜单已过期")[0]


async def test_safe_mode_decrypts_pushes_and_encrypts_replies(tmp_path: Path) -> None:
    wx = await FakeWeChat(aes_key=new_aes_key()).start()
    service = await serve(wx, wechat_settings(wx, tmp_path))
    try:
        u = WeChatUser(wx)
        welcome = await u.follow()  # read_reply checks MsgSignature and decrypts
        assert welcome is not None and "认证咨询助手" in welcome
        shown = await u.choose("ISO 9001")
        assert shown is not None and "ISO 9001" in shown
        # A plain push (an attacker who knows the token but not the key) is refused.
        xml, _ = wx.xml(u.openid, "text", Content="1", MsgId="77")
        now = str(int(time.time()))
        plain = {"signature": sign(wx.token, now, "n"), "timestamp": now, "nonce": "n"}
        async with aiohttp.ClientSession() as http:
            async with http.post(wx.callback, params=plain, data=xml.encode()) as r:
                assert r.status == 403
            # An encrypted body with a msg_signature that does not cover it is refused too.
            forged = {**plain, "encrypt_type": "aes", "msg_signature": sign(wx.token, now, "n", "x")}
            body = f"<xml><Encrypt><![CDATA[{'A' * 64}]]></Encrypt></xml>"
            async with http.post(wx.callback, params=forged, data=body.encode()) as r:
                assert r.status == 403
        assert turns(service) == 2
    finally:
        await service.stop()
        await wx.stop()


def test_a_long_answer_is_split_on_line_ends_within_2048_bytes() -> None:
    lines = [f"第 {i} 行：" + "审核关注的记录" * 8 for i in range(30)]  # ~2,500 bytes or more
    message = {"role": "bot", "text": "\n".join(lines), "buttons": [[{"label": "返回", "payload": "1:b"}]]}
    pieces = texts([message], lambda n, label: f"回复 {n}：{label}")
    assert len("\n".join(lines).encode()) > 2500 and len(pieces) >= 2
    assert all(len(p.encode()) <= MAX_BYTES for p in pieces)
    assert "\n".join(pieces).splitlines() == [*lines, "", "回复 1：返回"]


# --- the API: token, errors --------------------------------------------------------------------------


async def test_customer_service_errors_are_retried_refreshed_or_given_up(wx: FakeWeChat) -> None:
    api = WeChatAPI(wx.base, wx.app_id, wx.secret, MemoryTokens(), base_pause=0.01)
    try:
        wx.open_window("o1")
        await api.send_text("o1", "a")
        assert wx.token_calls == 1
        wx.invalidate_token()  # 40001: a new token, the message sent once
        await api.send_text("o1", "b")
        assert wx.token_calls == 2 and [m["text"]["content"] for m in wx.sent] == ["a", "b"]
        wx.expire_token()  # 42001 (the cache thought it fresh): renewed the same way
        await api.send_text("o1", "c")
        assert wx.token_calls == 3
        wx.fail(40001)  # refused, but stable_token hands the same one back: forced once
        await api.send_text("o1", "c2")
        assert wx.forced == 1 and wx.token_calls == 5
        wx.fail(-1, 500)  # busy, then HTTP 500: retried with a pause
        await api.send_text("o1", "d")
        assert [m["text"]["content"] for m in wx.sent] == ["a", "b", "c", "c2", "d"]
        wx.windows["o1"].until = 0  # the 48 hours are over: 45015, not retried
        calls = api.calls
        with pytest.raises(Undeliverable) as e:
            await api.send_text("o1", "e")
        assert e.value.code == 45015 and api.calls == calls + 1
        wx.open_window("o2")
        wx.windows["o2"].left = 0
        with pytest.raises(Undeliverable) as e:
            await api.send_text("o2", "f")
        assert e.value.code == 45047 and len(wx.sent) == 5
    finally:
        await api.close()


async def test_replicas_share_one_token_in_the_database(wx: FakeWeChat, db: Database) -> None:
    apis = [WeChatAPI(wx.base, wx.app_id, wx.secret, DatabaseTokens(db, wx.app_id)) for _ in range(3)]
    try:
        tokens = await asyncio.gather(*(api.token() for api in apis for _ in range(5)))
        assert len(set(tokens)) == 1 and wx.token_calls == 1
        wx.invalidate_token()  # one replica learns it is refused: every replica takes the new one
        fresh = await apis[0].token(refused=tokens[0])
        assert fresh != tokens[0] and await apis[1].token() == fresh and wx.token_calls == 2
    finally:
        for api in apis:
            await api.close()


async def test_replicas_share_one_token_in_redis(wx: FakeWeChat, redis_prefix: str) -> None:
    from redis.asyncio import Redis

    redis = Redis.from_url(REDIS_URL)
    apis = [
        WeChatAPI(wx.base, wx.app_id, wx.secret, RedisTokens(redis, wx.app_id, redis_prefix))
        for _ in range(3)
    ]
    try:
        tokens = await asyncio.gather(*(api.token() for api in apis for _ in range(5)))
        assert len(set(tokens)) == 1 and wx.token_calls == 1
    finally:
        for api in apis:
            await api.close()
        await redis.aclose()


# --- live chat ----------------------------------------------------------------------------------------


async def test_a_live_chat_with_a_wechat_user_and_an_answer_outside_the_window(
    api: FakeBotAPI, wx: FakeWeChat, tmp_path: Path
) -> None:
    runner = BotRunner(api, make_settings(api, tmp_path, web_enabled=True, **_wechat_overrides(wx)))
    await runner.start()
    wx.callback = f"http://127.0.0.1:{runner.web_port}/wechat"
    try:
        u = WeChatUser(wx)
        await u.follow()
        await u.choose("咨询顾问")
        connecting = await u.choose("现在和顾问聊")
        assert connecting is not None and "正在为您接通顾问" in connecting
        [intro] = api.chat_messages(STAFF_CHAT)
        assert "在线咨询（WeChat）" in intro.visible
        await u.send("请问费用多少？")
        relayed = api.chat_messages(STAFF_CHAT)[-1]
        assert "请问费用多少？" in relayed.visible
        staff = Prospect(api, 901, chat_id=STAFF_CHAT, username="li_sales")
        seen = len(u.texts)
        await staff.send("您好，<b>费用</b>要看人数。", reply_to=relayed)
        [answer] = (await u.wait(seen + 1))[seen:]
        assert answer == "您好，<b>费用</b>要看人数。"  # what staff typed, shown as typed
        # A picture cannot be passed on from WeChat: staff are told, and so is the user.
        note = await u.picture()
        assert note is not None and "看不到图片" in note
        assert "发来了一张图片，这里无法显示" in api.chat_messages(STAFF_CHAT)[-1].visible
        seen = len(u.texts)
        # The user's window closes (48 hours without a message): staff are told, nothing lost.
        wx.windows[u.openid].until = 0
        await staff.send("还在吗？", reply_to=relayed)
        note = api.chat_messages(STAFF_CHAT)[-1]
        assert "未能送达" in note.visible and "48 小时" in note.visible
        assert len(u.texts) == seen and (u.openid, 45015) in wx.refused
        assert runner.store is not None
        record = await runner.store.load(ProspectId("wechat", u.openid).key)
        assert record is not None and record.log[-1].get("undelivered") is True
        async with runner.db.sessions() as s:  # type: ignore[union-attr]
            [chat] = list(await s.scalars(select(LiveChat)))
        assert chat.channel == "wechat" and chat.external_id == u.openid
    finally:
        await runner.stop()


def _wechat_overrides(wx: FakeWeChat) -> dict[str, Any]:
    return {
        "wechat_token": wx.token,
        "wechat_app_id": wx.app_id,
        "wechat_app_secret": wx.secret,
        "wechat_api_base": wx.base,
    }


async def test_the_custom_menu_is_published_from_content_and_its_clicks_start_flows(
    wx: FakeWeChat, bot: Service
) -> None:
    from bot.wechat.menu import publish_menu

    body = await publish_menu(bot.settings, bot.content)
    [published] = wx.menus
    assert published == body and [b["name"] for b in body["button"]] == ["认证项目", "咨询顾问", "更多"]
    keys = {b["name"]: b["key"] for top in body["button"] for b in top.get("sub_button", [top])}
    u = WeChatUser(wx)
    await u.follow()
    shown = await u.click(keys["ISO 9001 质量管理"])
    assert shown is not None and "ISO 9001" in shown and "回复 1：" in shown
    consultant = await u.click(keys["咨询顾问"])
    assert consultant is not None and "顾问" in consultant
    english = await u.click(keys["English"])
    assert english is not None and "Reply 1: " in english
    # A click in the middle of the lead form does what it says; it is not taken as an answer.
    await u.click(keys["留下联系方式"])
    await u.send("1")  # agree
    asked = await u.click(keys["主菜单"])
    assert asked is not None and "Reply 1: " in asked and not await leads(bot)


async def test_two_replicas_on_postgresql_and_redis_share_one_dedupe_and_one_token(
    wx: FakeWeChat, tmp_path: Path, postgres_url: str, redis_prefix: str
) -> None:
    shared = {"database_url": postgres_url, "redis_url": REDIS_URL, "redis_prefix": redis_prefix}
    a = await serve(wx, wechat_settings(wx, tmp_path, **shared))
    b = await Service(wechat_settings(wx, tmp_path, **shared), tuning=Tuning(retry_base_pause=0.01)).start()
    try:
        url_a, url_b = wx.callback, f"http://127.0.0.1:{b.web_port}/wechat"
        u = WeChatUser(wx)
        await u.follow()  # through replica a
        xml, _ = wx.xml(u.openid, "text", Content=u.number("ISO 27001"), MsgId="9001")
        _, first = await wx._post(xml)
        wx.callback = url_b  # WeChat's retry reaches the other replica
        _, again = await wx._post(xml)
        shown = wx.read_reply(first)
        assert shown is not None and "27001" in shown and wx.read_reply(again) == shown
        wx.seen[u.openid].add(shown)
        assert turns(a) + turns(b) == 2  # the follow and the message: once each
        # The conversation goes on at replica b, from where replica a left it.
        more = await u.choose("所需材料")
        assert more is not None and "材料" in more and turns(b) == 1
        wx.callback = url_a
        assert a.wechat is not None and b.wechat is not None
        assert a.wechat.api is not None and b.wechat.api is not None
        tokens = await asyncio.gather(a.wechat.api.token(), b.wechat.api.token(), a.wechat.api.token())
        assert len(set(tokens)) == 1 and wx.token_calls == 1
    finally:
        await b.stop()
        await a.stop()
