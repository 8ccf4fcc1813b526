# ruff: noqa: F811  (pytest fixtures imported from test_wechat)
"""Attacks on the WeChat channel: each test shows a defect (it fails on the code it was written
against) or guards a property that was checked and holds."""

from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from bot.prospect import ProspectId
from bot.service import Service
from bot.wechat.api import MemoryTokens, WeChatAPI, WeChatError
from bot.wechat.callback import sign
from bot.wechat.testing import FakeWeChat, WeChatUser

from .test_wechat import bot, leads, serve, turns, wechat_settings, wx  # noqa: F401  (fixtures)


async def _seen_eventually(u: WeChatUser, needle: str, within: float, since: int = 0) -> bool:
    """True once the user has seen, after their first ``since`` texts, a text containing
    ``needle`` (passive or customer-service)."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if any(needle in t for t in u.texts[since:]):
            return True
        seen = u.wechat.seen[u.openid]
        seen.changed.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(seen.changed.wait(), max(0.01, deadline - time.monotonic()))
    return any(needle in t for t in u.texts[since:])


# --- a retry of a push whose answer WeChat never got ------------------------------------------------


async def test_a_retry_after_the_answer_was_lost_in_a_restart_still_gets_the_answer(
    wx: FakeWeChat, tmp_path: Path
) -> None:
    """The replica did the turn and went down before WeChat had the passive reply (a deploy, an
    OOM kill): WeChat retries the push. The retry finds the turn done (``Turn.answered``) and
    answers ``success``: the user never sees the answer, and WeChat stops asking."""
    settings = wechat_settings(wx, tmp_path)
    first_replica = await serve(wx, settings)
    u = WeChatUser(wx)
    try:
        await u.follow()
        xml, _ = wx.xml(u.openid, "text", Content=u.number("ISO 27001"), MsgId="515151")
        _, lost = await wx._post(xml)  # answered, but the answer never reached WeChat
        answer = wx.read_reply(lost)
        assert answer is not None and "27001" in answer
    finally:
        await first_replica.stop()
    second = await serve(wx, settings)  # the restarted process (or the other replica)
    try:
        since = len(u.texts)
        status, body = await wx._post(xml)  # WeChat's retry of that push
        assert status == 200
        retried = wx.read_reply(body)
        if retried is not None:
            wx.seen[u.openid].add(retried)
        assert await _seen_eventually(u, "信息安全管理体系认证", within=3, since=since), (
            f"the retry was answered {retried!r}: the user never sees the answer"
        )
        assert turns(second) == 0  # and no second turn, of course
    finally:
        await second.stop()


async def test_a_retry_that_comes_while_the_first_attempt_is_still_running_is_not_answered_success(
    wx: FakeWeChat, bot: Service
) -> None:
    """WeChat's 5 s run from when it sends; the bot's 4 s from when its handler starts. With a
    second of transit (or a queue in front of the handler), WeChat gives up on attempt 1 while the
    bot still works on it, and retries. The retry finds the push PENDING, runs a second exchange
    that finds the turn done (``repeated``) and answers ``success``, and overwrites the mark with
    BY_API: the passive reply went to a connection WeChat had dropped, and nothing is sent by
    customer-service message either. (WeChat's clock is shortened to 1 s here to stand for the
    4 s spent in transit.)"""
    u = WeChatUser(wx)
    await u.follow()
    number = u.number("ISO 27001")
    assert bot.core is not None
    key = ProspectId("wechat", u.openid).key
    held = asyncio.Event()

    async def hold() -> None:  # the conversation busy for 1.6 s
        async with bot.core.locks.lock(key):  # type: ignore[union-attr]
            held.set()
            await asyncio.sleep(1.6)

    holder = asyncio.create_task(hold())
    await held.wait()
    since = len(u.texts)
    wx.deadline = 1.0
    try:
        passive = await u.send(number)
    finally:
        wx.deadline = 5.0
        await holder
    assert [a for _, a, _ in wx.attempts[-2:]] == [1, 2]  # attempt 1 abandoned, attempt 2 answered
    assert turns(bot) == 2  # the follow and this message, once each
    assert passive is not None or await _seen_eventually(u, "信息安全管理体系认证", within=3, since=since), (
        "WeChat's retry got 'success' and nothing followed: the answer is lost"
    )


# --- numbered options -----------------------------------------------------------------------------


async def test_an_option_label_with_an_ampersand_is_shown_as_typed_not_as_an_entity(
    wx: FakeWeChat, bot: Service
) -> None:
    """Regression guard. On b76baef ``wx_option`` was rendered per line by the content's jinja
    with autoescape on, after ``plain()`` had read the entities: "Validity & annual audits" reached
    WeChat as "Reply 6: Validity &amp; annual audits". Fixed (incidentally) by ee9acc0."""
    u = WeChatUser(wx)
    await u.follow()
    english = await u.send("/lang en")
    assert english is not None and "Reply 1: " in english
    shown = await u.choose("ISO/IEC 20000")
    assert shown is not None and "Reply " in shown
    lines = [line for line in shown.splitlines() if line.startswith("Reply ")]
    assert any("Validity" in line for line in lines), lines
    assert not any("&amp;" in line or "&#" in line for line in lines), lines


async def test_msgmenu_links_are_links_not_escaped_markup(wx: FakeWeChat, tmp_path: Path) -> None:
    """Regression guard. With ``WECHAT_MSGMENU`` each option is a ``weixin://bizmsgmenu`` link; on
    b76baef the ``<a href>`` went through the autoescaping ``wx_option`` template and WeChat showed
    the markup as text ("回复 1：&lt;a href=&#34;weixin://…"). Fixed (incidentally) by ee9acc0."""
    service = await serve(wx, wechat_settings(wx, tmp_path, wechat_msgmenu=True))
    try:
        welcome = await WeChatUser(wx).follow()
        assert welcome is not None and "weixin://bizmsgmenu" in welcome
        assert "&lt;a" not in welcome and '<a href="weixin://bizmsgmenu?' in welcome, welcome[-300:]
    finally:
        await service.stop()


# --- a slow turn that fails --------------------------------------------------------------------------


async def test_a_slow_turn_that_fails_tells_the_user_by_customer_service_message(
    wx: FakeWeChat, bot: Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A turn that fails within 4 s gets ``wx_error`` as the passive reply; one that fails after
    them (the database answers after 4.5 s with an error) was answered ``success`` and then
    nothing: ``_later`` only logs. The user waits for an answer that never comes."""
    u = WeChatUser(wx)
    await u.follow()
    assert bot.core is not None
    real = bot.core.exchange

    async def slow_then_failing(*args: Any, **kwargs: Any) -> Any:
        await asyncio.sleep(4.3)
        raise RuntimeError("the database went away")

    monkeypatch.setattr(bot.core, "exchange", slow_then_failing)
    since = len(u.texts)
    passive = await u.send("你好")
    assert passive is None  # "success": WeChat stops retrying
    monkeypatch.setattr(bot.core, "exchange", real)
    assert await _seen_eventually(u, "出了点问题", within=3, since=since), u.texts[since:]


# --- the API ------------------------------------------------------------------------------------------


async def _odd_server(handler: Any) -> tuple[web.AppRunner, str]:
    app = web.Application()
    app.router.add_post("/{tail:.*}", handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return runner, f"http://127.0.0.1:{port}"


async def test_an_answer_that_is_not_json_is_a_wechat_error_not_a_crash() -> None:
    """A 200 whose body is not JSON (a proxy's or gateway's HTML page) escapes ``_post`` as a bare
    ValueError: ``_send`` catches only WeChatError, so a consultant's answer (``show``) raises
    instead of being marked undelivered and staff are not told."""

    async def html_page(request: web.Request) -> web.StreamResponse:
        if request.path.endswith("stable_token"):
            return web.json_response({"access_token": "t" * 40, "expires_in": 7200})
        return web.Response(text="<html><body>502 Bad Gateway</body></html>", content_type="text/html")

    runner, base = await _odd_server(html_page)
    api = WeChatAPI(base, "wxapp", "secret", MemoryTokens(), base_pause=0.01)
    try:
        with pytest.raises(WeChatError):
            await api.send_text("o1", "您好")
    finally:
        await api.close()
        await runner.cleanup()


async def test_a_failed_token_fetch_does_not_block_the_next_one_for_the_lease() -> None:
    """``token()`` claims the refresh lease and, when ``stable_token`` fails (busy four times), keeps
    it: every call after, on this replica and the others, waits out REFRESH_LEASE (10 s) before
    anyone asks again, although WeChat is fine again."""
    calls = 0

    async def flaky(request: web.Request) -> web.StreamResponse:
        nonlocal calls
        calls += 1
        if calls <= 4:
            return web.json_response({"errcode": -1, "errmsg": "system busy"})
        return web.json_response({"access_token": "t" * 40, "expires_in": 7200})

    runner, base = await _odd_server(flaky)
    api = WeChatAPI(base, "wxapp", "secret", MemoryTokens(), base_pause=0.01)
    try:
        with pytest.raises(WeChatError):
            await api.token()
        started = time.monotonic()
        try:
            token = await asyncio.wait_for(api.token(), 3)  # WeChat answers again: no reason to wait
        except TimeoutError:
            pytest.fail("token() still waits out the lease its own failed fetch left behind")
        assert token == "t" * 40 and time.monotonic() - started < 1
    finally:
        await api.close()
        await runner.cleanup()


async def test_a_customer_service_message_that_timed_out_is_not_sent_twice() -> None:
    """``_post`` retries a timeout (and a dropped connection) like -1: but a timed-out
    ``message/custom/send`` may well have been delivered, and the retry sends the user the
    same message again (WeChat has no idempotency key)."""
    delivered: list[str] = []

    async def slow_but_delivering(request: web.Request) -> web.StreamResponse:
        if request.path.endswith("stable_token"):
            return web.json_response({"access_token": "t" * 40, "expires_in": 7200})
        body = await request.json()
        delivered.append(body["text"]["content"])
        if len(delivered) == 1:
            await asyncio.sleep(1.0)  # WeChat slow to answer: the message is already on its way
        return web.json_response({"errcode": 0, "errmsg": "ok"})

    runner, base = await _odd_server(slow_but_delivering)
    api = WeChatAPI(base, "wxapp", "secret", MemoryTokens(), base_pause=0.01, timeout=0.3)
    try:
        with contextlib.suppress(WeChatError):  # what matters is what the user got
            await api.send_text("o1", "您好，费用要看人数。")  # every retry it makes is made by now
    finally:
        await api.close()
        await runner.cleanup()
    assert delivered == ["您好，费用要看人数。"], f"the user got it {len(delivered)} times"


# --- order: a slow turn's customer-service answer and the next turn's passive reply -----------------


class SlowServiceWeChat(FakeWeChat):
    """WeChat whose customer-service API takes 0.3 s to answer (a server far from WeChat's)."""

    async def _custom_send(self, request: web.Request) -> web.StreamResponse:
        await asyncio.sleep(0.3)
        return await super()._custom_send(request)


async def test_a_slow_turns_answer_does_not_arrive_after_the_next_turns_answer(tmp_path: Path) -> None:
    """Turn A is slow (answered ``success``; its view goes by customer-service message once done);
    the user sends B meanwhile, whose turn runs right after A's and gets a passive reply at once.
    A's message is still on its way to WeChat's API: the user sees B's menu, then A's older view
    last, whose numbers now press B's buttons (``last_buttons``). Nothing keeps a user's messages
    in order across turns."""
    wx = await SlowServiceWeChat().start()
    service = await serve(wx, wechat_settings(wx, tmp_path))
    try:
        u = WeChatUser(wx)
        await u.follow()
        number = u.number("ISO 27001")
        assert service.core is not None
        key = ProspectId("wechat", u.openid).key
        held = asyncio.Event()

        async def hold() -> None:
            async with service.core.locks.lock(key):  # type: ignore[union-attr]
                held.set()
                await asyncio.sleep(4.5)

        holder = asyncio.create_task(hold())
        await held.wait()
        since = len(u.texts)
        first = asyncio.create_task(u.send(number))  # A: "success" at 4 s
        await asyncio.sleep(1.0)
        menu = await u.send("主菜单")  # B, a second later: its turn runs once A's is done
        assert await first is None
        await holder
        await u.wait(since + 2, within=5)
        shown = u.texts[since:]
        assert "信息安全管理体系认证" in shown[0] and "认证咨询助手" in shown[1], (
            "the user saw B's menu, then A's older view last: " + " | ".join(t.splitlines()[0] for t in shown)
        )
        # B's answer waited for A's (it went by customer-service message too), and the numbers
        # the user reads last are the ones a number presses.
        assert menu is None and len(u.texts) == since + 2
        shown_iso = await u.choose("ISO 27001")
        assert shown_iso is not None and "信息安全管理体系认证" in shown_iso
    finally:
        await service.stop()
        await wx.stop()


# --- replay ----------------------------------------------------------------------------------------------


async def test_a_captured_push_replayed_within_the_timestamp_window_is_not_a_second_turn(
    wx: FakeWeChat, bot: Service
) -> None:
    """A push is accepted for MAX_SKEW after its timestamp; its dedupe mark must outlive that,
    since ``Turn.answered`` remembers only the last 16 actions. A push captured on the wire
    (WeChat allows a plain-HTTP callback) and replayed later, after the user has gone on
    talking, must not be handled as theirs again."""
    from bot.wechat.callback import MAX_SKEW
    from bot.wechat.channel import MARK_TTL

    assert MARK_TTL > MAX_SKEW  # the mark lives while the timestamp is still accepted
    u = WeChatUser(wx)
    await u.follow()
    now = str(int(time.time()))
    query = {"signature": sign(wx.token, now, "cap"), "timestamp": now, "nonce": "cap"}
    xml, _ = wx.xml(u.openid, "text", Content="1", MsgId="777000777")
    async with aiohttp.ClientSession() as http:
        async with http.post(wx.callback, params=query, data=xml.encode()) as r:
            assert r.status == 200
        for i in range(20):  # the user goes on talking, past what the conversation remembers
            await u.send(f"问题 {i}")
        before = turns(bot)
        async with http.post(wx.callback, params=query, data=xml.encode()) as r:
            assert r.status == 200  # the replay, its signature and timestamp as captured
    assert turns(bot) == before, "the replayed push was handled as a new turn"


def test_a_reply_text_cannot_close_its_cdata_section() -> None:
    """Regression guard (holds): ``]]>`` in a reply's text (a company name echoed in the summary)
    cannot end the CDATA section and inject elements into the passive reply."""
    from bot.wechat.callback import parse_xml, text_reply

    evil = "星河]]></Content><MsgType><![CDATA[news]]></MsgType><Content><![CDATA[x"
    parsed = parse_xml(text_reply("o1", "gh_x", evil).encode())
    assert parsed["MsgType"] == "text" and parsed["Content"] == evil
