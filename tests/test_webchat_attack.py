"""An attack pass on the web chat (bot/webchat): identity, idempotency, limits, the stream, the
no-JavaScript form, privacy and robustness, over real HTTP against the bot as ``python -m bot run``
assembles it (``BotRunner``), with the fake Bot API as the staff group's Telegram.

The tests in the first part each found a defect, since fixed: each docstring says what an
attacker or a visitor did and what went wrong then (in the past tense of the code they were
written against). The tests in the second part are attacks that held up from the start."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from sqlalchemy import select, update

from bot import jsonio
from bot.db.models import Conversation, Stat, WebVisitor, utcnow
from bot.prospect import ProspectId
from bot.storage import SqlStore
from bot.webchat.testing import ChatError, visible
from bot.webchat.testing import WebVisitor as Visitor

from .fakebot import FakeBotAPI
from .harness import STAFF_CHAT, BotRunner, make_settings
from .test_leads_e2e import until
from .test_webchat import HOST, _form, _live_chats, leads, read_events, visitor, walk_to_summary

PUBLIC = "chat.consultancy.example"
"""The name the dashboard and the full-page chat are served under (Caddy's DASHBOARD_DOMAIN)."""


@pytest.fixture
async def web(api: FakeBotAPI, tmp_path: Path) -> AsyncIterator[BotRunner]:
    """The bot serving the web chat, as in tests/test_webchat.py (limits out of the way)."""
    runner = BotRunner(api, chat_settings(api, tmp_path))
    await runner.start()
    yield runner
    await runner.stop()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    # Cookies from 127.0.0.1 are kept (aiohttp's default jar refuses cookies of IP addresses).
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
        yield session


def chat_settings(api: FakeBotAPI, tmp_path: Path, **overrides: Any) -> Any:
    values: dict[str, Any] = {
        "web_enabled": True,
        "webchat_origins": HOST,
        "webchat_rate": 1000.0,
        "webchat_rate_per_address": 1000.0,
        "webchat_burst_per_address": 1000.0,
        **overrides,
    }
    return make_settings(api, tmp_path, **values)


class running:
    """``async with running(api, settings) as bot``: a bot of its own for one test."""

    def __init__(self, api: FakeBotAPI, settings: Any, **kw: Any) -> None:
        self.runner = BotRunner(api, settings, **kw)

    async def __aenter__(self) -> BotRunner:
        await self.runner.start()
        return self.runner

    async def __aexit__(self, *exc: object) -> None:
        await self.runner.stop()


async def raw_status(port: int, request: bytes) -> int:
    """Send ``request`` as bytes (headers aiohttp's client would not send) and read the status."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        await writer.drain()
        line = await asyncio.wait_for(reader.readline(), 10)
        return int(line.split()[1])
    finally:
        writer.close()


async def form_page(http: aiohttp.ClientSession, base: str) -> dict[str, Any]:
    """The no-JS form's hidden fields (its CSRF cookie lands in ``http``'s jar) and valid answers."""
    async with http.get(base + "/chat/form") as page:
        html = await page.text()
    csrf = re.search(r'name="csrf" value="([^"]+)"', html)
    nonce = re.search(r'name="nonce" value="([^"]+)"', html)
    assert csrf and nonce
    return {
        "csrf": csrf.group(1),
        "nonce": nonce.group(1),
        "lang": "zh",
        "company": "晨光科技",
        "contact_name": "赵敏",
        "phone": "13700137000",
        "email": "",
        "city": "杭州",
        "headcount": "50",
        "sites": "1",
        "schemes": ["iso9001"],
        "timeline": "3m",
        "note": "",
        "consent": "yes",
    }


# =====================================================================================================
# Defects found (each fixed; the docstrings tell what went wrong before)
# =====================================================================================================

# --- identity -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("listed", [False, True], ids=["own-origin-not-listed", "own-origin-listed"])
async def test_the_full_page_chat_is_refused_behind_the_documented_tls_proxy(
    api: FakeBotAPI, tmp_path: Path, http: aiohttp.ClientSession, listed: bool
) -> None:
    """Production (docker-compose.yml, deploy/Caddyfile) serves /chat through Caddy, which ends
    TLS and forwards plain HTTP with the original Host and X-Forwarded-Proto: https. A visitor who
    opens https://DASHBOARD_DOMAIN/chat (the link to share, the QR code) gets a page whose widget
    POSTs /chat/api/session with ``Origin: https://DASHBOARD_DOMAIN``; ``_origin_ok`` compares it
    with ``request.scheme`` (``http``: aiohttp sees no TLS) and decides it is another site. Not
    listed in WEBCHAT_ORIGINS: 403 "this site may not use the chat". Listed: a bearer token in the
    JSON instead of the page's cookie, which the page never sends, so every action is a 401. The
    full-page chat cannot work in the documented deployment at all."""
    origin = f"https://{PUBLIC}"
    origins = f"{HOST},{origin}" if listed else HOST
    settings = chat_settings(
        api, tmp_path, webchat_origins=origins, web_cookie_secure=True, web_trusted_proxies="127.0.0.1/32"
    )
    async with running(api, settings) as bot:
        caddy = {  # what Caddy's reverse_proxy sends on for the browser
            "Host": PUBLIC,
            "Origin": origin,
            "X-Forwarded-Proto": "https",
            "X-Forwarded-Host": PUBLIC,
            "X-Forwarded-For": "203.0.113.7",
        }
        async with http.post(
            bot.web_url + "/chat/api/session", json={"lang": "zh", "page": True}, headers=caddy
        ) as r:
            status, body = r.status, await r.json()
            cookie = r.cookies.get("webchat")
    assert (status, body.get("token"), cookie is not None) == (201, None, True), (
        f"the page's own session over HTTPS: HTTP {status}, {body}, cookie set: {cookie is not None}"
    )


async def test_an_active_visitor_is_purged_as_idle_while_their_token_is_cached(
    web: BotRunner, http: aiohttp.ClientSession
) -> None:
    """A visitor opened the chat 40 days ago and came back today; the bot process has been up all
    along, so their token is in ``Visitors``' cache. ``find`` answers from the cache and never
    writes ``last_seen`` (only a cache miss does), so the hourly purge takes the visitor who chatted
    a minute ago for one idle for RETENTION_DAYS: their token stops working mid-conversation (the
    widget opens a new, empty chat; their conversation and open lead are orphaned)."""
    v = await visitor(web, http)
    await v.start()
    assert web.db is not None and web.webchat is not None
    long_ago = utcnow() - timedelta(days=40)
    async with web.db.sessions() as s:  # the row as written when the chat was opened, 40 days ago
        await s.execute(update(WebVisitor).values(created_at=long_ago, last_seen=long_ago))
        await s.commit()
    await v.press("ISO/IEC 20000")  # active today...
    await v.send("证书有效期多久")
    purged = await web.webchat.visitors.purge(web.settings.retention_days)  # the hourly purge
    try:
        await v.send("还有一个问题")
        status = 200
    except ChatError as e:
        status = e.status
    assert (purged, status) == (0, 200), f"a visitor active a moment ago: purged {purged}, then HTTP {status}"


class CountingDb:
    """The visitors' database, counting the reads of a token (a read session each)."""

    def __init__(self, db: Any) -> None:
        self._db = db
        self.reads = 0

    def sessions(self) -> Any:
        self.reads += 1
        return self._db.sessions()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._db, name)


async def test_forged_tokens_bypass_the_per_address_limit_and_each_costs_a_database_read(
    api: FakeBotAPI, tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    """An attacker sends /chat/api/send (or /messages, /stream) with random token-shaped bearer
    tokens. ``send`` looks the token up (``_visitor``: a database read for every token not cached)
    before ``_admit`` counts the request against the address, so the flood is never limited: each
    request is an unthrottled SELECT on web_visitors, from one address, without a session."""
    settings = chat_settings(api, tmp_path, webchat_burst_per_address=5, webchat_rate_per_address=0.01)
    async with running(api, settings) as bot:
        assert bot.webchat is not None
        counting = CountingDb(bot.webchat.visitors.db)
        bot.webchat.visitors.db = counting  # type: ignore[assignment]
        statuses = []
        for i in range(20):
            forged = f"Forged{i:037d}"  # 43 characters, shaped like a real token
            async with http.post(
                bot.web_url + "/chat/api/send",
                json={"client_id": f"c{i}", "text": "hi"},
                headers={"Authorization": f"Bearer {forged}"},
            ) as r:
                statuses.append(r.status)
    assert statuses.count(429) >= 10, (
        f"20 requests from one address limited to a burst of 5: {statuses}; database reads: {counting.reads}"
    )


# --- the no-JS form ------------------------------------------------------------------------------------


async def test_a_double_click_on_the_no_js_form_gets_an_error_page_on_postgresql(
    api: FakeBotAPI, tmp_path: Path, http: aiohttp.ClientSession, postgres_url: str
) -> None:
    """A visitor without JavaScript double-clicks "submit" (or the browser resends): the same form
    (the same nonce) is posted twice at once. On PostgreSQL both transactions find no submission
    with that key and insert one; the second fails on the primary key (IntegrityError, not caught)
    and the visitor gets "500 Internal Server Error" instead of the thank-you page with the
    reference, so they think the enquiry was lost (one lead is kept)."""
    settings = chat_settings(api, tmp_path, database_url=postgres_url)
    async with running(api, settings) as bot:
        base = bot.web_url
        outcomes = []
        for _ in range(3):  # a few rounds: the race is won or lost by scheduling
            form = await form_page(http, base)

            async def post(form: dict[str, Any] = form) -> int:
                async with http.post(base + "/chat/form", data=_form(form)) as r:
                    await r.read()
                    return r.status

            outcomes.append(await asyncio.gather(*[post() for _ in range(6)]))
        made = len(await leads(bot))
    assert all(s == 200 for round_ in outcomes for s in round_), f"statuses per round: {outcomes}"
    assert made == 3


async def test_failed_form_submissions_use_up_the_addresss_new_chat_quota(
    api: FakeBotAPI, tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    """A visitor of the no-JS form mistypes their phone number a few times. Each refused
    submission takes one of the address's WEBCHAT_SESSIONS_PER_HOUR new chats (``submit`` counts
    before it validates), so the correct form is then refused with "too many new chats" and no
    lead is made; behind a shared address (an office, carrier-grade NAT, common in China) the
    quota is everyone's."""
    async with running(api, chat_settings(api, tmp_path, webchat_sessions_per_hour=3)) as bot:
        form = await form_page(http, bot.web_url)
        for _ in range(3):
            async with http.post(bot.web_url + "/chat/form", data=_form({**form, "phone": "12345"})) as bad:
                assert bad.status == 400
        async with http.post(bot.web_url + "/chat/form", data=_form(form)) as good:
            status = good.status
        made = await leads(bot)
    assert (status, len(made)) == (200, 1), f"the corrected form: HTTP {status}, {len(made)} lead(s)"


# --- limits ----------------------------------------------------------------------------------------------


async def test_one_ipv6_network_opens_unlimited_new_chats(
    api: FakeBotAPI, tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    """Every IPv6 subscriber holds at least a /64 (2^64 addresses). The per-address limits (new
    chats per hour, requests per second, open streams) are keyed by the full address, so one
    client rotating through its own /64 opens as many sessions (and leads, and live chats in the
    staff group) as it likes."""
    settings = chat_settings(api, tmp_path, webchat_sessions_per_hour=3, web_trusted_proxies="127.0.0.1/32")
    async with running(api, settings) as bot:
        statuses = []
        for i in range(8):
            async with http.post(
                bot.web_url + "/chat/api/session",
                json={"lang": "zh"},
                headers={"Origin": HOST, "X-Forwarded-For": f"2001:db8:1:2::{i + 1:x}"},
            ) as r:
                statuses.append(r.status)
    assert statuses.count(429) >= 5, f"8 new chats from one /64, at most 3 an hour: {statuses}"


async def test_one_visitor_grows_their_conversation_record_to_over_half_a_megabyte(
    web: BotRunner, http: aiohttp.ClientSession
) -> None:
    """``Record.log`` is bounded by count (60 messages, "~350 bytes" each), not by size, and the
    visitor's bubble is kept HTML-escaped (a ``"`` is stored as ``&#34;``, five times its length).
    A visitor in a live chat sends 60 messages of 2,000 quotes: their record becomes ~640 KB,
    read and written in full on every action and every stream wake, cached in memory (10,000
    records) and, in production, moved to and from Redis each time."""
    v = await visitor(web, http)
    await v.start()
    await v.press("咨询顾问")
    await v.press("现在和顾问聊")
    for _ in range(60):
        await v.send('"' * web.settings.webchat_max_text)
    assert web.store is not None
    assert web.webchat is not None and v.token is not None
    found = await web.webchat.visitors.find(v.token)
    assert found is not None
    record = await web.store.load(ProspectId("web", found.external_id).key)
    assert record is not None
    size = len(jsonio.dumps(record.to_dict()).encode())
    assert size < 128 * 1024, f"one visitor's record: {size // 1024} KB"
    await v.fetch(0)  # what is kept is the newest, in order, the last message whole
    kept = sorted(v.transcript)
    assert kept[-1] == v.last and len(kept) >= 10


# --- malformed input answered with 500 ------------------------------------------------------------------


async def test_deeply_nested_json_is_answered_with_a_server_error(
    web: BotRunner, http: aiohttp.ClientSession
) -> None:
    """Anyone POSTs ``[[[[…`` (30,000 deep, under the 64 KB body limit) to /chat/api/session. orjson
    refuses it, ``jsonio.loads`` falls back to the standard library, which raises RecursionError
    (not a ValueError, so ``_json`` does not catch it): HTTP 500 with a traceback in the log, before
    any rate limit is applied (``new_session`` reads the body first)."""
    async with http.post(web.web_url + "/chat/api/session", data=b"[" * 30000, headers={"Origin": HOST}) as r:
        assert r.status == 400, f"HTTP {r.status}"


async def test_an_origin_header_that_is_not_utf8_is_answered_with_a_server_error(web: BotRunner) -> None:
    """Anyone sends ``Origin: http://\\xff\\xfe`` (bytes that are not UTF-8) to any /chat/api/ path.
    aiohttp decodes it with surrogate escapes, and ``_origin_ok`` calls ``origin.encode()`` for
    ``hmac.compare_digest``: UnicodeEncodeError, HTTP 500 and a traceback, on every request,
    before any limit."""
    status = await raw_status(
        web.web_port or 0,
        b"POST /chat/api/session HTTP/1.1\r\nHost: 127.0.0.1\r\nOrigin: http://\xff\xfe\r\n"
        b"Content-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}",
    )
    assert status in (400, 403), f"HTTP {status}"


async def test_a_form_post_that_is_not_utf8_is_answered_with_a_server_error(
    web: BotRunner, http: aiohttp.ClientSession
) -> None:
    """Anyone posts the no-JS form (or any dashboard form) with bytes that are not UTF-8:
    ``request.post()`` raises UnicodeDecodeError, which nothing catches: HTTP 500 and a traceback,
    without a CSRF token or a limit in the way."""
    async with http.post(
        web.web_url + "/chat/form",
        data=b"company=\xff\xfe&consent=yes",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    ) as r:
        assert r.status < 500, f"HTTP {r.status}"


# --- data ---------------------------------------------------------------------------------------------


async def _enquire_with(
    bot: BotRunner, http: aiohttp.ClientSession, odd: str
) -> tuple[list[str | None], str]:
    """A question the bot cannot answer, with ``odd`` in it; then a consultant, a name, a phone."""
    v = await visitor(bot, http)
    await v.start()
    await v.send(f"火星上的猫喜欢吃什么{odd}？")
    await v.press("💬")
    await v.press("📝")
    await v.send("李四")
    await v.send("13900139000")
    return [lead.phone for lead in await leads(bot)], v.text.encode("unicode_escape")[:120].decode()


async def test_a_lone_surrogate_in_a_question_loses_the_visitors_enquiry(
    api: FakeBotAPI, tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    """A visitor types a question the bot cannot answer containing a lone UTF-16 surrogate (which
    Telegram never delivers, but JSON carries: JSON.stringify sends it as ``\\ud800``), then asks
    a consultant and leaves a name and phone number. The web channel keeps the text as typed
    (``_event`` does not clean it), it becomes the enquiry's ``question``, and SQLite cannot bind
    it ("surrogates not allowed"): the enquiry is not saved and the visitor is told "could not
    save" at every try, until they type some other unanswerable text."""
    async with running(api, chat_settings(api, tmp_path)) as bot:
        saved, told = await _enquire_with(bot, http, "\ud800")
    assert saved == ["+8613900139000"], f"leads: {saved}; the visitor was told: {told}"


async def test_a_nul_in_a_question_loses_the_visitors_enquiry_on_postgresql(
    api: FakeBotAPI, tmp_path: Path, http: aiohttp.ClientSession, postgres_url: str
) -> None:
    """The same with a NUL character (pasted text) on PostgreSQL, the production database: a text
    column cannot hold NUL, the enquiry is not saved, the visitor is told "could not save"."""
    async with running(api, chat_settings(api, tmp_path, database_url=postgres_url)) as bot:
        saved, told = await _enquire_with(bot, http, "\x00")
    assert saved == ["+8613900139000"], f"leads: {saved}; the visitor was told: {told}"


async def test_a_nul_in_one_visitors_question_stops_all_analytics_on_postgresql(
    api: FakeBotAPI, tmp_path: Path, http: aiohttp.ClientSession, postgres_url: str
) -> None:
    """An anonymous web visitor sends one question the bot cannot answer with a NUL in it. The
    FAQ's ``redact`` keeps characters it does not know (the NUL among them), so the operators'
    "not answered" counter is keyed by a text PostgreSQL cannot store. The analytics batch that
    carries it fails, is put back ("kept for the next try") and fails again at every flush: from
    then on no figures of any conversation are written (the overview's funnels and FAQ counts
    freeze) until the process restarts, and what was pending is lost then."""
    async with running(api, chat_settings(api, tmp_path, database_url=postgres_url)) as bot:
        attacker = await visitor(bot, http)
        await attacker.start()
        await attacker.send("火星上的猫喜欢吃什么\x00？")
        someone = await visitor(bot, http)
        await someone.start()
        await someone.press("ISO/IEC 20000")
        assert bot.analytics is not None and bot.db is not None
        await bot.analytics.flush()
        async with bot.db.sessions() as s:
            written = list(await s.scalars(select(Stat.kind)))
        left = len(bot.analytics.pending)
    assert written and not left, f"{len(written)} counters written, {left} stuck in memory"


async def test_a_command_carries_a_text_far_past_the_length_limit(
    web: BotRunner, http: aiohttp.ClientSession
) -> None:
    """``_event`` checks the length of ``text`` only. ``{"command": "start <60,000 characters>"}``
    passes (``parse_command`` accepts "/start" and an argument) and the raw string, not the parsed
    name, becomes the command's name: the visitor's bubble keeps all of it, HTML-escaped (five
    times longer for quotes), so one action stores ~300 KB in the conversation record, 150 times
    WEBCHAT_MAX_TEXT."""
    v = await visitor(web, http)
    await v.start()
    limit = web.settings.webchat_max_text
    try:
        replies = await v.act({"command": "start " + "&" * 60_000})
        status = 200
    except ChatError as e:
        replies, status = [], e.status
    kept = max((len(m["text"]) for m in replies), default=0)
    assert status in (400, 413) or kept <= 6 * limit, f"HTTP {status}; a message of {kept} characters kept"


# --- sequence numbers, idempotency ------------------------------------------------------------------


async def test_sequence_numbers_start_again_once_the_forget_tombstone_expires(
    web: BotRunner, http: aiohttp.ClientSession
) -> None:
    """A visitor uses /forget; what /forget leaves of the conversation (its ``seq``) expires after
    a day and is purged, but the visitor's token stays valid. Coming back (the widget still open,
    or its stream resumed with Last-Event-ID), their next messages are numbered from 1 again,
    below what the widget has shown: ``render`` drops every message whose seq is not above
    ``last``, and the stream skips them, so the visitor's words vanish and no answer appears."""
    v = await visitor(web, http)
    await v.start()
    await v.press("ISO/IEC 20000")
    await v.send("/forget")
    await v.press("删除")
    shown = v.last
    assert web.db is not None
    async with web.db.sessions() as s:  # a day later
        await s.execute(update(Conversation).values(expires_at=utcnow() - timedelta(minutes=1)))
        await s.commit()
    assert isinstance(web.store, SqlStore)
    assert await web.store.purge(web.settings.retention_days) == 1  # the hourly purge
    again = await v.send("你好")
    assert min(m["seq"] for m in again) > shown, (
        f"the widget has shown up to {shown}; the new messages: {[m['seq'] for m in again]}"
    )


async def test_a_crash_after_a_reply_reuses_sequence_numbers_the_visitor_has_seen(
    api: FakeBotAPI, tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    """The answer to a web action is sent before its conversation is written (write-behind, every
    STATE_FLUSH_MS). If the process dies then (OOM, kill -9, a node lost), the record goes back to
    before the action, and the next messages get sequence numbers the visitor has already seen:
    the widget drops them (``render`` skips seq <= last), so after the restart the visitor's
    messages seem to go unanswered until they reload the page; a resend of the lost action is
    applied again too (its client id was not kept)."""
    async with running(api, chat_settings(api, tmp_path)) as bot:
        v = await visitor(bot, http)
        await v.start()
        await asyncio.sleep(0.3)  # written
        await v.press("ISO/IEC 20000")
        shown = v.last
        await bot.stop(crash=True)  # at once: the last turn was not written yet
        await bot.start()
        again = Visitor(http, bot.web_url, origin=HOST, token=v.token)
        got = await again.send("证书有效期多久")
    assert min(m["seq"] for m in got) > shown, (
        f"the widget has shown up to {shown}; after the restart: {[m['seq'] for m in got]}"
    )


async def test_a_resend_of_the_erasing_action_is_handled_again_after_forget(
    web: BotRunner, http: aiohttp.ClientSession
) -> None:
    """A visitor confirms /forget; the answer is lost on the way (the phone switched networks),
    and the widget resends the action with the same client id, as it does after a network error.
    The tombstone /forget leaves drops the remembered client ids, so the resend is handled as a
    new action: the visitor is told "this menu has expired" and shown the greeting, never that
    their data was deleted, and a new conversation record is started right after the erasure."""
    v = await visitor(web, http)
    await v.start()
    await v.send("/forget")
    erase = v.button("删除")
    first = await v.act({"press": erase["payload"]}, client_id="erase-1")
    again = await v.act({"press": erase["payload"]}, client_id="erase-1")
    assert [visible(m["text"]) for m in again] == [visible(m["text"]) for m in first]


# --- configuration ------------------------------------------------------------------------------------


async def test_a_listed_origin_is_refused_unless_typed_exactly_as_browsers_send_it(
    api: FakeBotAPI, tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    """The operator sets WEBCHAT_ORIGINS=https://WWW.Consultancy.example:443 (the site's address
    as written on its brochure, with the default port). The setting is accepted, but browsers send
    ``Origin: https://www.consultancy.example`` (lower case, no default port) and origins are
    compared as strings: the widget on the consultancy's own site is refused with "this site may
    not use the chat", with nothing in the settings check to say why."""
    settings = chat_settings(api, tmp_path, webchat_origins="https://WWW.Consultancy.example:443")
    async with running(api, settings) as bot:
        try:
            await Visitor(http, bot.web_url, origin=HOST).open()
            status = 201
        except ChatError as e:
            status = e.status
    assert status == 201, f"the listed site's widget: HTTP {status}"


# =====================================================================================================
# Attacks that held up (regression tests)
# =====================================================================================================


async def test_cross_site_requests_cannot_use_the_page_cookie(web: BotRunner) -> None:
    """The full page's HttpOnly cookie, replayed by another site: a text/plain form POST (no
    preflight) from an unlisted origin, a sandboxed frame (``Origin: null``), a listed widget
    origin (the cookie is believed only from our own pages) and a Host header of the attacker's
    own choosing on a different origin: none of them acts for the visitor."""
    base = web.web_url
    async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as plain:
        async with plain.post(base + "/chat/api/session", json={"page": True}, headers={"Origin": base}) as r:
            assert r.status == 201
            token = r.cookies["webchat"].value
        cookie = {"Cookie": f"webchat={token}"}
        body = jsonio.dumps({"client_id": "x1", "text": "hi"})
        attempts = [
            ({"Origin": "https://evil.example", "Content-Type": "text/plain"}, 403),
            ({"Origin": "null", "Content-Type": "text/plain"}, 403),
            ({"Origin": HOST, "Content-Type": "application/json"}, 401),
            ({"Origin": base.replace("127.0.0.1", "localhost"), "Content-Type": "text/plain"}, 403),
            ({"Origin": base + ".evil.example", "Content-Type": "text/plain"}, 403),
        ]
        for headers, expected in attempts:
            async with plain.post(base + "/chat/api/send", data=body, headers={**cookie, **headers}) as r:
                assert r.status == expected, (headers, r.status)
        async with plain.get(base + "/chat/api/messages", headers=cookie) as r:  # our own page
            assert r.status == 200 and (await r.json())["messages"] == []


async def test_x_forwarded_for_is_not_believed_without_a_trusted_proxy(
    api: FakeBotAPI, tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    """A flooder sets a new X-Forwarded-For on every request: without WEB_TRUSTED_PROXIES it is
    ignored, and the cap on new chats per address holds."""
    async with running(api, chat_settings(api, tmp_path, webchat_sessions_per_hour=3)) as bot:
        statuses = []
        for i in range(5):
            async with http.post(
                bot.web_url + "/chat/api/session",
                json={},
                headers={"Origin": HOST, "X-Forwarded-For": f"198.51.100.{i}"},
            ) as r:
                statuses.append(r.status)
    assert statuses == [201, 201, 201, 429, 429]


async def test_malformed_actions_are_refused_and_nothing_is_handled(
    web: BotRunner, http: aiohttp.ClientSession
) -> None:
    """Bodies that are not an object, missing or odd client ids, texts over the limit, odd
    presses, a body over 64 KB, ``after`` and Last-Event-ID garbage: a 4xx each, nothing handled.
    Texts at the limit and with RTL marks, emoji and zero-width joiners are taken as typed."""
    v = await visitor(web, http)
    await v.start()
    url = web.web_url + "/chat/api/send"
    bad: list[tuple[bytes, int]] = [
        (b"[]", 400),
        (b"null", 400),
        (b'"text"', 400),
        (b"{not json", 400),
        (jsonio.dumps({"text": "hi"}).encode(), 400),
        (jsonio.dumps({"client_id": "", "text": "hi"}).encode(), 400),
        (jsonio.dumps({"client_id": "c" * 65, "text": "hi"}).encode(), 400),
        (jsonio.dumps({"client_id": 5, "text": "hi"}).encode(), 400),
        (jsonio.dumps({"client_id": "a1", "text": 5}).encode(), 400),
        (jsonio.dumps({"client_id": "a2", "text": " \n\t "}).encode(), 400),
        (jsonio.dumps({"client_id": "a3", "text": "长" * 2001}).encode(), 413),
        (jsonio.dumps({"client_id": "a4", "press": "p" * 65}).encode(), 400),
        (jsonio.dumps({"client_id": "a5", "press": ""}).encode(), 400),
        (jsonio.dumps({"client_id": "a6", "press": {"$gt": ""}}).encode(), 400),
        (jsonio.dumps({"client_id": "a7", "command": "/start"}).encode(), 400),
        (jsonio.dumps({"client_id": "a9", "command": 7}).encode(), 400),
        (jsonio.dumps({"client_id": "a8", "text": "x" * 70_000}).encode(), 413),
    ]
    before = v.last
    for body, expected in bad:
        async with http.post(url, data=body, headers=v.headers) as r:
            assert r.status == expected, (body[:40], r.status, await r.text())
            assert "notice" in await r.json()
    await v.fetch(0)
    assert v.last == before
    for after in ("abc", "1e3", "9" * 5000):
        async with http.get(
            web.web_url + "/chat/api/messages", params={"after": after}, headers=v.headers
        ) as r:
            assert r.status == 400
    long = "长" * (web.settings.webchat_max_text - 1) + "😀"  # exactly the limit, a 4-byte character last
    odd = "\u202eabc\u202c 👩‍💻 \u200b‏שלום"
    for text in (long, odd):
        [echo, *_] = await v.send(text)
        assert echo["role"] == "visitor" and visible(echo["text"]) == text


async def test_the_same_action_sent_at_once_is_applied_once(
    web: BotRunner, http: aiohttp.ClientSession
) -> None:
    """The widget's retry overlaps the original (both in flight): one is handled, the other is
    answered with the same messages."""
    v = await visitor(web, http)
    await v.start()
    answers = await asyncio.gather(*[v.act({"text": "你好"}, client_id="twice") for _ in range(5)])
    assert all(a == answers[0] for a in answers) and answers[0]
    await v.fetch(0)
    assert [m["text"] for m in v.transcript.values() if m["role"] == "visitor"] == ["你好"]


async def test_the_summary_confirmed_from_two_tabs_at_once_makes_one_lead(
    api: FakeBotAPI, web: BotRunner, http: aiohttp.ClientSession
) -> None:
    """Two tabs (or a double tap racing the disabled button) confirm the lead form at once, with
    different client ids: one lead, one staff alert; the other press finds the menu expired."""
    v = await visitor(web, http)
    await walk_to_summary(v)
    submit = v.button("确认提交")
    await asyncio.gather(*[v.act({"press": submit["payload"]}) for _ in range(3)])
    assert len(await leads(web)) == 1
    await until(lambda: [m for m in api.chat_messages(STAFF_CHAT) if "新线索" in m.visible])
    await asyncio.sleep(0.2)
    assert len([m for m in api.chat_messages(STAFF_CHAT) if "新线索" in m.visible]) == 1


async def test_a_visitors_text_cannot_forge_events_on_the_stream(
    web: BotRunner, http: aiohttp.ClientSession
) -> None:
    """A visitor types SSE framing (blank lines, ``id:``, ``data:``, bare CRs) hoping to make
    the stream carry a fake consultant's message: the stream's events are exactly the
    transcript's messages, one each, in order."""
    v = await visitor(web, http)
    await v.start()
    await v.send('x\n\nid: 999\nevent: message\ndata: {"role":"staff","text":"fake","seq":999}\n\n')
    await v.send('y\r\rdata: {"role":"staff","text":"fake2"}\r\r')
    stream = await http.get(web.web_url + "/chat/api/stream", headers={**v.headers, "Last-Event-ID": "0"})
    try:
        events = await read_events(stream, len(v.transcript))
    finally:
        stream.close()
    assert [e["id"] for e in events] == sorted(v.transcript) and len(events) == len(v.transcript)
    assert not any(e["role"] == "staff" for e in events)


async def test_the_no_js_form_refuses_csrf_bypass_attempts(web: BotRunner) -> None:
    """Posting the form with no cookie and an empty token, an empty cookie and token, a cookie
    and no token, or a token that is not the cookie: 403 each, no lead."""
    base = web.web_url
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as browser:
        form = await form_page(browser, base)
        cookie = next(c.value for c in browser.cookie_jar if c.key == "webchat_form")
    async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as attacker:
        attempts: list[tuple[dict[str, str], str | None]] = [
            ({}, ""),
            ({"Cookie": "webchat_form="}, ""),
            ({"Cookie": f"webchat_form={cookie}"}, None),
            ({"Cookie": f"webchat_form={cookie}"}, cookie[:-1] + ("A" if cookie[-1] != "A" else "B")),
            ({"Cookie": "webchat_form=" + "é" * 24}, "é" * 24),
        ]
        for headers, given in attempts:
            values = {k: v for k, v in form.items() if k != "csrf"}
            if given is not None:
                values["csrf"] = given
            async with attacker.post(base + "/chat/form", data=_form(values), headers=headers) as r:
                assert r.status == 403, (headers, given, r.status)
    assert await leads(web) == []


async def test_a_consultants_answer_during_a_visitors_action_arrives_once_and_in_order(
    api: FakeBotAPI, web: BotRunner, http: aiohttp.ClientSession
) -> None:
    """A consultant answers while the visitor's next message is in flight: the transcript has
    every message once, numbered without gaps, the action's reply is one unbroken run of it, and
    the answer is in it exactly once."""
    v = await visitor(web, http)
    await v.start()
    await v.press("咨询顾问")
    await v.press("现在和顾问聊")
    [live] = await _live_chats(web)
    assert web.desk is not None
    for i in range(5):
        reply, delivered = await asyncio.gather(v.send(f"第{i}个问题"), web.desk.answer(live, f"顾问答复{i}"))
        assert delivered
        seqs = [m["seq"] for m in reply]
        assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))
    check = Visitor(http, web.web_url, origin=HOST, token=v.token)
    await check.fetch(0)
    first = min(check.transcript)
    assert sorted(check.transcript) == list(range(first, check.last + 1))
    answers = [visible(m["text"]) for m in check.transcript.values() if m["role"] == "staff"]
    assert answers == [f"顾问答复{i}" for i in range(5)]
