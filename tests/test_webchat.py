"""The web chat's HTTP API end to end: the real bot process (``Service``, as ``python -m bot run``
assembles it) serving the web chat and the dashboard on one aiohttp server, the fake Bot API
server as the staff group's Telegram, and the database."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from sqlalchemy import select

from bot.db.models import Lead, LiveChat, Submission, WebVisitor
from bot.webchat.testing import ChatError, visible
from bot.webchat.testing import WebVisitor as Visitor

from .fakebot import FakeBotAPI, Prospect
from .harness import STAFF_CHAT, BotRunner, make_settings
from .test_leads_e2e import until

HOST = "https://www.consultancy.example"


@pytest.fixture
async def web(api: FakeBotAPI, tmp_path: Path) -> AsyncIterator[BotRunner]:
    runner = BotRunner(
        api,
        make_settings(
            api,
            tmp_path,
            web_enabled=True,
            webchat_origins=HOST,
            webchat_rate=1000.0,
            webchat_rate_per_address=1000.0,
            webchat_burst_per_address=1000.0,
        ),
    )
    await runner.start()
    yield runner
    await runner.stop()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    # Cookies from 127.0.0.1 are kept (aiohttp's default jar refuses cookies of IP addresses).
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
        yield session


async def visitor(web: BotRunner, http: aiohttp.ClientSession, **kw: Any) -> Visitor:
    return await Visitor(http, web.web_url, origin=kw.pop("origin", HOST), **kw).open()


async def leads(runner: BotRunner) -> list[Lead]:
    assert runner.db is not None
    async with runner.db.sessions() as s:
        return list(await s.scalars(select(Lead).order_by(Lead.id)))


async def walk_to_summary(v: Visitor) -> None:
    """ISO/IEC 20000, the self-check to its verdict, the lead form with a wrong phone first."""
    await v.start()
    await v.press("ISO/IEC 20000")
    await v.press("申请条件自测")
    for answer in ["是", "是", "否", "是", "是", "是"]:
        await v.press(answer)
    assert "体系运行3个月以上" in v.text  # the verdict names the gap
    await v.press("留下联系方式")
    await v.press("同意并继续")
    await v.send("<b>星河</b> & Co")
    await v.send("王经理")
    await v.send("12345")
    assert "电话号码看起来不对" in v.text
    await v.send("13800138000")
    await v.send("wang@example.com")
    await v.send("深圳")
    await v.send("80")
    await v.send("2")
    await v.press("选好了")
    await v.press("3–6 个月")
    await v.send("希望年底前拿证")
    assert "请确认您的信息" in v.text and "+8613800138000" in v.text


async def test_a_visitor_walks_to_a_lead_and_staff_are_alerted_once(
    api: FakeBotAPI, web: BotRunner, http: aiohttp.ClientSession
) -> None:
    v = await visitor(web, http)
    await walk_to_summary(v)
    await v.press("修改电话")
    await v.send("+852 5123 4567")
    assert "+85251234567" in v.text
    submit = v.button("确认提交")
    first = await v.act({"press": submit["payload"]}, client_id="submit-1")
    assert any("L000001" in visible(m["text"]) for m in first)
    # The same action sent again after a network error: the same answer, applied once.
    again = await v.act({"press": submit["payload"]}, client_id="submit-1")
    assert again == first
    # The summary's button pressed again as a new action: the menu has expired, no second lead.
    await v.act({"press": submit["payload"]})
    assert "已过期" in v.text or "expired" in v.text
    [lead] = await leads(web)
    assert (lead.channel, lead.company, lead.phone, lead.city) == (
        "web",
        "<b>星河</b> & Co",
        "+85251234567",
        "深圳",
    )
    assert lead.selfcheck["running_3m"] is False and lead.source_flow == "iso20000"
    assert lead.external_id and len(lead.external_id) == 16 and lead.reference == "L000001"
    await until(lambda: api.chat_messages(STAFF_CHAT))
    [alert] = api.chat_messages(STAFF_CHAT)
    assert "L000001" in alert.visible and "Web" in alert.visible and "<b>星河</b> & Co" in alert.visible
    # The visitor's HTML is shown as text everywhere: escaped in the transcript.
    typed = [m for m in v.transcript.values() if m["role"] == "visitor" and "星河" in m["text"]]
    assert typed and typed[0]["text"] == "&lt;b&gt;星河&lt;/b&gt; &amp; Co"
    assert db_count_alerts(api) == 1


def db_count_alerts(api: FakeBotAPI) -> int:
    return len([m for m in api.chat_messages(STAFF_CHAT) if "新线索" in m.visible])


async def test_the_transcript_comes_back_after_a_reload_and_goes_on(
    web: BotRunner, http: aiohttp.ClientSession
) -> None:
    v = await visitor(web, http)
    await v.start()
    await v.press("ISO/IEC 20000")
    seen = dict(v.transcript)
    # A reload: a new page with the same token reads the transcript again and carries on.
    again = Visitor(http, web.web_url, origin=HOST, token=v.token)
    await again.fetch(0)
    assert again.transcript == seen
    tail = await again.fetch(2)
    assert [m["seq"] for m in tail] == [m for m in sorted(seen) if m > 2]
    await again.press("申请条件")
    assert "自测" in again.text
    # It survives a restart of the bot too (the conversation is kept in the database).
    await web.stop()
    await web.start()
    restarted = Visitor(http, web.web_url, origin=HOST, token=v.token)
    await restarted.fetch(0)
    assert len(restarted.transcript) == len(again.transcript)
    await restarted.press(restarted.transcript[max(restarted.transcript)]["buttons"][0][0]["label"])
    assert restarted.replies and restarted.replies[-1]["role"] == "bot"


async def test_a_button_from_before_a_content_reload_has_expired(
    web: BotRunner, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    from bot.engine.engine import Engine

    v = await visitor(web, http)
    await v.start()
    old = v.button("ISO/IEC 20000")
    # New content (a changed text changes the version): every button from before is stale.
    content = web.content
    flows = tmp_path / "flows"
    import shutil

    from bot.content import load_content

    from .conftest import FLOWS

    shutil.copytree(FLOWS, flows)
    main = (flows / "main.yaml").read_text(encoding="utf-8")
    (flows / "main.yaml").write_text(main.replace("您好", "您好呀", 1), encoding="utf-8")
    new = load_content(flows)
    assert new.version != content.version
    web.engine = Engine(new)
    await v.act({"press": old["payload"]})
    assert "已过期" in v.text
    assert v.labels, "the current menu comes with it"


async def test_origins_tokens_and_sizes_are_checked(web: BotRunner, http: aiohttp.ClientSession) -> None:
    base = web.web_url
    # Another site may not talk to the API, not even to open a session.
    with pytest.raises(ChatError) as refused:
        await Visitor(http, base, origin="https://evil.example").open()
    assert refused.value.status == 403 and refused.value.body["error"] == "origin"
    v = await visitor(web, http)
    v.origin = "https://evil.example"
    with pytest.raises(ChatError) as refused:
        await v.start()
    assert refused.value.status == 403
    # A listed origin gets CORS headers; the preflight names what may be sent.
    async with http.options(
        base + "/chat/api/send",
        headers={"Origin": HOST, "Access-Control-Request-Method": "POST"},
    ) as pre:
        assert pre.status == 204 and pre.headers["Access-Control-Allow-Origin"] == HOST
        assert "Authorization" in pre.headers["Access-Control-Allow-Headers"]
    # Another site's request is refused before it is read, with a notice its page may show.
    async with http.post(
        base + "/chat/api/session", json={"lang": "zh"}, headers={"Origin": "https://evil.example"}
    ) as refused_post:
        assert refused_post.status == 403 and (await refused_post.json())["error"] == "origin"
        assert refused_post.headers["Access-Control-Allow-Origin"] == "https://evil.example"
    v.origin = HOST
    await v.start()
    # A forged or unknown token is refused without a word about why.
    forged = Visitor(http, base, origin=HOST, token="x" * 43)
    with pytest.raises(ChatError) as refused:
        await forged.send("你好")
    assert refused.value.status == 401
    # Too long, not JSON, no client id: a clear notice, and nothing handled.
    before = v.last
    with pytest.raises(ChatError) as refused:
        await v.send("长" * 2001)
    assert refused.value.status == 413 and "太长" in refused.value.body["notice"]
    async with http.post(base + "/chat/api/send", data=b"{not json", headers=v.headers) as bad:
        assert bad.status == 400 and "没能读懂" in (await bad.json())["notice"]
    async with http.post(base + "/chat/api/send", json={"text": "hi"}, headers=v.headers) as bad:
        assert bad.status == 400
    await v.fetch(0)
    assert v.last == before
    # The cookie is believed only from our own pages: a token in a cookie sent by another site is not.
    async with http.get(
        base + "/chat/api/messages",
        headers={"Origin": HOST, "Cookie": f"webchat={v.token}"},
    ) as response:
        assert response.status == 401


async def test_the_full_page_uses_an_httponly_cookie(web: BotRunner, http: aiohttp.ClientSession) -> None:
    base = web.web_url
    async with http.get(base + "/chat") as page:
        html = await page.text()
        assert page.status == 200 and "script-src 'self'" in page.headers["Content-Security-Policy"]
        assert '<script src="/chat/widget.js"' in html and "<noscript>" in html and "onclick" not in html
    own = base
    async with http.post(
        base + "/chat/api/session", json={"lang": "en", "page": True}, headers={"Origin": own}
    ) as r:
        assert r.status == 201 and (await r.json())["token"] is None
        cookie = r.cookies["webchat"]
        assert cookie["httponly"] and cookie["samesite"] == "Strict" and cookie["path"] == "/chat"
    body = {"client_id": "p1", "command": "start"}
    async with http.post(base + "/chat/api/send", json=body, headers={"Origin": own}) as r:
        assert r.status == 200
        assert "certification assistant" in (await r.json())["messages"][0]["text"]


async def test_a_flood_gets_429_while_another_visitor_is_served(
    api: FakeBotAPI, tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    runner = BotRunner(api, make_settings(api, tmp_path, web_enabled=True, webchat_rate=1.0, webchat_burst=5))
    await runner.start()
    try:
        flooder = await Visitor(http, runner.web_url).open()
        calm = await Visitor(http, runner.web_url).open()
        statuses = []
        notices = set()
        for i in range(12):
            try:
                await flooder.send(f"第{i}条")
                statuses.append(200)
            except ChatError as e:
                statuses.append(e.status)
                notices.add(e.body["notice"])
        assert statuses[:5] == [200] * 5 and statuses.count(429) >= 6
        assert notices == {"您发得太快了 🙂 请稍等几秒再发送。"}
        await calm.start()  # not slowed down by the other visitor
        assert calm.last_status == 200 and "认证咨询助手" in calm.text
        # What the flooder sent beyond the limit was not handled: 5 echoes, not 12.
        await flooder.fetch(0)
        assert len([m for m in flooder.transcript.values() if m["role"] == "visitor"]) == 5
    finally:
        await runner.stop()


async def test_new_sessions_are_capped_per_address(
    api: FakeBotAPI, tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    runner = BotRunner(api, make_settings(api, tmp_path, web_enabled=True, webchat_sessions_per_hour=3))
    await runner.start()
    try:
        for _ in range(3):
            await Visitor(http, runner.web_url).open()
        with pytest.raises(ChatError) as refused:
            await Visitor(http, runner.web_url).open()
        assert refused.value.status == 429 and refused.value.body["error"] == "too_many_sessions"
        assert runner.db is not None
        async with runner.db.sessions() as s:
            rows = list(await s.scalars(select(WebVisitor)))
        assert len(rows) == 3 and all(len(r.token_hash) == 64 for r in rows)  # hashes, not tokens
    finally:
        await runner.stop()


async def read_events(response: aiohttp.ClientResponse, count: int) -> list[dict[str, Any]]:
    """The next ``count`` message events of an SSE stream."""
    from bot import jsonio

    events: list[dict[str, Any]] = []
    event: dict[str, Any] = {}
    while len(events) < count:
        line = (await asyncio.wait_for(response.content.readline(), 10)).decode().rstrip("\r\n")
        if not line:
            if "data" in event:
                events.append({"id": int(event["id"]), **jsonio.loads(event["data"])})
            event = {}
        elif not line.startswith(":") and ":" in line:
            name, value = line.split(":", 1)
            event[name] = value.lstrip()
    return events


async def test_a_live_chat_between_a_web_visitor_and_the_staff_group(
    api: FakeBotAPI, web: BotRunner, http: aiohttp.ClientSession
) -> None:
    v = await visitor(web, http)
    await v.start()
    await v.press("咨询顾问")
    await v.press("现在和顾问聊")
    assert "正在为您接通顾问" in v.text
    [intro] = api.chat_messages(STAFF_CHAT)
    assert "在线咨询（Web）" in intro.visible
    await v.send("请问 <b>费用</b> 多少？")
    relayed = api.chat_messages(STAFF_CHAT)[-1]
    assert "请问 <b>费用</b> 多少？" in relayed.visible  # escaped for Telegram, shown literally
    [chat] = await _live_chats(web)
    assert chat.channel == "web" and chat.closed_at is None
    # The visitor listens on the stream, from where they are.
    stream = await http.get(
        web.web_url + "/chat/api/stream", headers={**v.headers, "Last-Event-ID": str(v.last)}
    )
    assert stream.status == 200 and stream.headers["Content-Type"].startswith("text/event-stream")
    staff = Prospect(api, 901, chat_id=STAFF_CHAT, username="li_sales")
    await staff.send("您好，<b>费用</b>要看人数，我稍后联系您。", reply_to=relayed)
    [answer] = await read_events(stream, 1)
    assert answer["role"] == "staff" and answer["id"] == v.last + 1
    # What staff typed is text (a tag typed in Telegram is shown as typed, never as markup).
    assert visible(answer["text"]) == "您好，<b>费用</b>要看人数，我稍后联系您。"
    assert "&lt;b&gt;费用&lt;/b&gt;" in answer["text"]
    stream.close()
    # Resumed after a break (a phone asleep): what came meanwhile arrives first.
    await staff.send("/close", reply_to=relayed)
    resumed = await http.get(
        web.web_url + "/chat/api/stream", headers={**v.headers, "Last-Event-ID": str(answer["id"])}
    )
    closed = await read_events(resumed, 2)
    resumed.close()
    assert "顾问已结束本次对话" in visible(closed[0]["text"]) and closed[1]["buttons"]
    # The bot answers again.
    await v.send("证书有效期多久")
    assert "证书有效期为三年" in v.text


async def _live_chats(runner: BotRunner) -> list[LiveChat]:
    assert runner.db is not None
    async with runner.db.sessions() as s:
        return list(await s.scalars(select(LiveChat)))


async def test_forget_erases_the_web_visitors_data(web: BotRunner, http: aiohttp.ClientSession) -> None:
    v = await visitor(web, http)
    await v.start()
    await v.press("💬")
    await v.press("📝")
    await v.send("李四")
    await v.send("13900139000")
    [lead] = await leads(web)
    assert lead.channel == "web" and lead.phone == "+8613900139000"
    await v.send("/forget")
    await v.press("删除")
    [lead] = await leads(web)
    assert lead.phone is None and lead.contact_name is None
    again = Visitor(http, web.web_url, origin=HOST, token=v.token)
    await again.fetch(0)
    assert not any("13900139000" in m["text"] or "李四" in m["text"] for m in again.transcript.values())


async def test_the_form_without_javascript_makes_a_lead(
    api: FakeBotAPI, web: BotRunner, http: aiohttp.ClientSession
) -> None:
    base = web.web_url
    async with http.get(base + "/chat/form") as page:
        html = await page.text()
    csrf = re.search(r'name="csrf" value="([^"]+)"', html)
    nonce = re.search(r'name="nonce" value="([^"]+)"', html)
    assert csrf and nonce and 'name="website"' in html and 'name="phone"' in html
    form = {
        "csrf": csrf.group(1),
        "nonce": nonce.group(1),
        "lang": "zh",
        "company": "<i>晨光</i>科技",
        "contact_name": "赵敏",
        "phone": "12345",
        "email": "",
        "city": "杭州",
        "headcount": "50",
        "sites": "1",
        "schemes": ["iso27001", "iso9001"],
        "timeline": "3m",
        "note": "",
        "consent": "yes",
    }
    data = aiohttp.FormData(
        [(k, v) for k, vs in form.items() for v in (vs if isinstance(vs, list) else [vs])]
    )
    async with http.post(base + "/chat/form", data=data) as bad:
        text = await bad.text()
        assert bad.status == 400 and "电话号码看起来不对" in text and "&lt;i&gt;晨光&lt;/i&gt;科技" in text
    assert await leads(web) == []
    form["phone"] = "13700137000"
    ok = aiohttp.FormData([(k, v) for k, vs in form.items() for v in (vs if isinstance(vs, list) else [vs])])
    async with http.post(base + "/chat/form", data=ok) as done:
        assert done.status == 200 and "L000001" in await done.text()
    # Posted twice (a double click, a reload of the result): one lead.
    twice = aiohttp.FormData(
        [(k, v) for k, vs in form.items() for v in (vs if isinstance(vs, list) else [vs])]
    )
    async with http.post(base + "/chat/form", data=twice) as done:
        assert done.status == 200
    [lead] = await leads(web)
    assert (lead.channel, lead.company, lead.phone, lead.schemes, lead.timeline) == (
        "web",
        "<i>晨光</i>科技",
        "+8613700137000",
        ["iso27001", "iso9001"],
        "3m",
    )
    assert lead.consent_at is not None
    await until(lambda: [m for m in api.chat_messages(STAFF_CHAT) if "L000001" in m.visible])
    # Without the CSRF token, or with the honeypot filled: no lead.
    no_csrf = {**form, "csrf": "forged-token-forged-token", "nonce": "n2"}
    async with http.post(base + "/chat/form", data=_form(no_csrf)) as refused:
        assert refused.status == 403 and "已过期" in await refused.text()
    robot = {**form, "nonce": "n3", "website": "http://spam.example"}
    async with http.post(base + "/chat/form", data=_form(robot)) as fake:
        assert fake.status == 200
    assert len(await leads(web)) == 1
    assert web.db is not None
    async with web.db.sessions() as s:
        assert len(list(await s.scalars(select(Submission)))) == 1


def _form(values: dict[str, Any]) -> aiohttp.FormData:
    return aiohttp.FormData(
        [(k, v) for k, vs in values.items() for v in (vs if isinstance(vs, list) else [vs])]
    )


async def test_a_visitors_oldest_stream_gives_way_to_a_new_one(
    web: BotRunner, http: aiohttp.ClientSession
) -> None:
    """A reload or a new tab opens a stream while the old one may still look open: at most four
    stay open for a visitor, the oldest ending when a fifth comes."""
    v = await visitor(web, http)
    await v.start()
    url = web.web_url + "/chat/api/stream"
    streams = [await http.get(url, headers=v.headers) for _ in range(4)]
    try:
        assert [s.status for s in streams] == [200] * 4
        fifth = await http.get(url, headers=v.headers)
        streams.append(fifth)
        assert fifth.status == 200
        rest = await asyncio.wait_for(streams[0].content.read(), 10)  # the oldest ends
        assert b"event: message" in rest
        other = await visitor(web, http)  # another visitor is not held up
        async with http.get(url, headers=other.headers) as theirs:
            assert theirs.status == 200
    finally:
        for s in streams:
            s.close()


async def test_two_replicas_on_postgresql_and_redis_serve_one_visitor(
    api: FakeBotAPI,
    tmp_path: Path,
    postgres_url: str,
    redis_prefix: str,
    http: aiohttp.ClientSession,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Behind a load balancer, a visitor's requests reach any replica: the session, the
    conversation and a resend's answer are shared, and a consultant's answer taken by one replica
    reaches a stream held by the other (read again at each keep-alive)."""
    from bot.webchat import channel

    from .conftest import REDIS_URL

    monkeypatch.setattr(channel, "PING", 0.2)
    settings = make_settings(
        api,
        tmp_path,
        web_enabled=True,
        database_url=postgres_url,
        redis_url=REDIS_URL,
        redis_prefix=redis_prefix,
        webchat_rate=1000.0,
    )
    a, b = BotRunner(api, settings), BotRunner(api, settings)
    await a.start()
    await b.start()
    try:
        v = await Visitor(http, a.web_url).open()
        await v.start()
        v.base = b.web_url  # the next request goes to the other replica
        await v.press("ISO/IEC 20000")
        assert "ISO/IEC 20000" in v.text
        first = await v.act({"press": v.button("申请条件")["payload"]}, client_id="same-action")
        v.base = a.web_url
        again = await v.act({"press": "anything: not read again"}, client_id="same-action")
        assert again == first
        # A live chat opened through A; the visitor listens on B; staff answer through A.
        await v.press("咨询顾问")
        await v.press("现在和顾问聊")
        await v.send("你好")
        relayed = api.chat_messages(STAFF_CHAT)[-1]
        stream = await http.get(
            b.web_url + "/chat/api/stream", headers={**v.headers, "Last-Event-ID": str(v.last)}
        )
        staff = Prospect(api, 901, chat_id=STAFF_CHAT, username="li_sales")
        await staff.send("您好，我是顾问小李", reply_to=relayed)
        [answer] = await read_events(stream, 1)
        stream.close()
        assert answer["role"] == "staff" and visible(answer["text"]) == "您好，我是顾问小李"
    finally:
        await b.stop()
        await a.stop()
