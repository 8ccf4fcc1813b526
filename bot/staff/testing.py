"""Fakes of the staff targets for the tests and the benchmark (as aiogram_dialog ships its
``test_tools``): ``FakeRobots``, one HTTP server on 127.0.0.1 answering as WeCom's, DingTalk's and
Feishu's webhooks do, and ``SmtpSink``, an SMTP server (aiosmtpd) that keeps what it is sent.

As the vendors: WeCom takes ``/cgi-bin/webhook/send?key=KEY`` (a wrong key: 93000); DingTalk takes
``/robot/send?access_token=T&timestamp=MS&sign=S`` (an unknown token: 300001; a timestamp more than
an hour off, or a sign that is not base64(HMAC-SHA256(key=secret, msg="MS\\nsecret")): 310000);
Feishu takes ``/open-apis/bot/v2/hook/TOKEN`` with ``timestamp`` (seconds) and ``sign``
(base64(HMAC-SHA256(key="SECS\\nsecret", msg=""))) in the body (an unknown token: 19001; a bad
signature: 19021). Each robot takes ``per_minute`` messages in any rolling minute and answers the
vendor's rate-limit code beyond (45009, 130101, 11232), and refuses a message over the vendor's
size limit (WeCom markdown 4096 bytes and text 2048: 40058; DingTalk 20,000 bytes: 460101; Feishu
20 KB: 9499). A robot can be taken down (HTTP 502, or the connection dropped) and scripted to
fail (``fail``).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import email
import email.policy
import hashlib
import hmac
import json
import socket
import ssl
import time
from collections import defaultdict, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any, Literal

from aiohttp import web
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

Vendor = Literal["wecom", "dingtalk", "feishu"]
VENDORS: tuple[Vendor, ...] = ("wecom", "dingtalk", "feishu")
WINDOW = 3600.0
"""How far a signed timestamp may be from the fake's clock (DingTalk and Feishu: one hour)."""
RATE_CODE: dict[Vendor, int] = {"wecom": 45009, "dingtalk": 130101, "feishu": 11232}
LIMIT = {"wecom_markdown": 4096, "wecom_text": 2048, "dingtalk": 20_000, "feishu": 20 * 1024}


def dingtalk_sign(secret: str, timestamp_ms: int) -> str:
    """As DingTalk documents it (written out here, not imported, so the fake checks the sender)."""
    digest = hmac.new(secret.encode(), f"{timestamp_ms}\n{secret}".encode(), hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def feishu_sign(secret: str, timestamp: int) -> str:
    """As Feishu documents it: the key is "timestamp\nsecret" and the message is empty."""
    digest = hmac.new(f"{timestamp}\n{secret}".encode(), b"", hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


@dataclass(frozen=True, slots=True)
class Received:
    """One request a robot accepted: its body as sent (bytes) and parsed, and its query."""

    raw: bytes
    body: dict[str, Any]
    query: dict[str, str]


class FakeRobots:
    """The three vendors' webhooks on one server; ``wecom_url``, ``dingtalk_url`` and ``feishu_url``
    are the URLs a user would paste."""

    def __init__(
        self,
        *,
        wecom_key: str = "wecom-key-0001",
        dingtalk_token: str = "dingtalk-token-0001",
        dingtalk_secret: str | None = "SECdingtalksecret0001",
        feishu_token: str = "0f8a3c2e-feishu-token-0001",
        feishu_secret: str | None = "feishusecret0001",
        feishu_legacy: bool = False,
        per_minute: dict[Vendor, int] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.wecom_key = wecom_key
        self.dingtalk_token = dingtalk_token
        self.dingtalk_secret = dingtalk_secret
        self.feishu_token = feishu_token
        self.feishu_secret = feishu_secret
        self.feishu_legacy = feishu_legacy
        """Answer as older Feishu did (``{"StatusCode": 0, ...}`` without ``code``)."""
        self.per_minute: dict[Vendor, int] = {
            "wecom": 20,
            "dingtalk": 20,
            "feishu": 100,
            **(per_minute or {}),
        }
        self.clock = clock
        self.window = 60.0
        """Seconds over which ``per_minute`` counts (a benchmark shortens it to run faster)."""
        self.messages: dict[Vendor, list[Received]] = defaultdict(list)
        """Accepted messages, per robot."""
        self.refused: list[tuple[Vendor, int]] = []
        """(robot, error code or HTTP status) of each request refused, in order."""
        self.requests: dict[Vendor, int] = defaultdict(int)
        self.changed = asyncio.Event()
        self._accepted: dict[Vendor, deque[float]] = defaultdict(deque)
        self._script: dict[Vendor, list[int]] = defaultdict(list)
        self._down: dict[Vendor, str] = {}
        self._delay: dict[Vendor, float] = {}
        self._runner: web.AppRunner | None = None
        self.base = ""

    async def start(self) -> FakeRobots:
        app = web.Application(client_max_size=1024**2)
        app.router.add_post("/cgi-bin/webhook/send", self._handler("wecom", self._wecom))
        app.router.add_post("/robot/send", self._handler("dingtalk", self._dingtalk))
        app.router.add_post("/open-apis/bot/v2/hook/{token}", self._handler("feishu", self._feishu))
        from bot.web.app import start_web

        self._runner, port = await start_web(app, "127.0.0.1", 0)
        self.base = f"http://127.0.0.1:{port}"
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    @property
    def wecom_url(self) -> str:
        return f"{self.base}/cgi-bin/webhook/send?key={self.wecom_key}"

    @property
    def dingtalk_url(self) -> str:
        return f"{self.base}/robot/send?access_token={self.dingtalk_token}"

    @property
    def feishu_url(self) -> str:
        return f"{self.base}/open-apis/bot/v2/hook/{self.feishu_token}"

    # --- scripting --------------------------------------------------------------------------------

    def down(self, vendor: Vendor, how: Literal["502", "drop"] = "502") -> None:
        """The robot fails every request until ``up``: HTTP 502, or the connection closed without
        an answer (as a reset or a dead proxy)."""
        self._down[vendor] = how

    def up(self, vendor: Vendor) -> None:
        self._down.pop(vendor, None)

    def fail(self, vendor: Vendor, code: int, times: int = 1) -> None:
        """The next ``times`` requests get ``code``: the vendor's error code, or an HTTP status
        (below 1000; 429 comes with ``Retry-After: 7``)."""
        self._script[vendor].extend([code] * times)

    def slow(self, vendor: Vendor, seconds: float) -> None:
        """The robot answers after ``seconds`` (0: at once again)."""
        self._delay[vendor] = seconds

    async def wait(self, vendor: Vendor, count: int, within: float = 5.0) -> list[Received]:
        """Wait until the robot has accepted ``count`` messages in all; those messages."""
        async with asyncio.timeout(within):
            while len(self.messages[vendor]) < count:
                self.changed.clear()
                await self.changed.wait()
        return self.messages[vendor][:count]

    async def wait_refused(self, vendor: Vendor, count: int = 1, within: float = 5.0) -> None:
        """Wait until the robot has refused ``count`` requests in all."""
        async with asyncio.timeout(within):
            while sum(1 for v, _code in self.refused if v == vendor) < count:
                self.changed.clear()
                await self.changed.wait()

    # --- the endpoints ------------------------------------------------------------------------------

    def _handler(
        self, vendor: Vendor, check: Callable[[web.Request, bytes, dict[str, Any]], Awaitable[int]]
    ) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        async def handle(request: web.Request) -> web.StreamResponse:
            self.requests[vendor] += 1
            raw = await request.read()
            if self._delay.get(vendor):
                await asyncio.sleep(self._delay[vendor])
            how = self._down.get(vendor)
            if how == "drop":
                if request.transport is not None:
                    request.transport.close()
                self.refused.append((vendor, -1))
                return web.Response(status=502)
            if how == "502":
                return self._refuse(vendor, 502)
            try:
                body = json.loads(raw)
            except ValueError:
                body = None
            if not isinstance(body, dict):
                return self._refuse(vendor, 400)
            code = self._script[vendor].pop(0) if self._script[vendor] else await check(request, raw, body)
            if not code:
                code = self._rate(vendor)
            if code:
                return self._refuse(vendor, code)
            self.messages[vendor].append(Received(raw, body, dict(request.query)))
            self.changed.set()
            if vendor == "feishu":
                legacy = {"Extra": None, "StatusCode": 0, "StatusMessage": "success"}
                return web.json_response(
                    legacy if self.feishu_legacy else {"code": 0, "data": {}, "msg": "success", **legacy}
                )
            return web.json_response({"errcode": 0, "errmsg": "ok"})

        return handle

    def _rate(self, vendor: Vendor) -> int:
        now = time.monotonic()
        accepted = self._accepted[vendor]
        while accepted and accepted[0] <= now - self.window:
            accepted.popleft()
        if len(accepted) >= self.per_minute[vendor]:
            return RATE_CODE[vendor]
        accepted.append(now)
        return 0

    def _refuse(self, vendor: Vendor, code: int) -> web.StreamResponse:
        self.refused.append((vendor, code))
        self.changed.set()
        if 500 <= code < 600:
            return web.Response(status=code, text="Bad Gateway" if code == 502 else "error")
        if code == 429:
            return web.Response(status=429, text="Too Many Requests", headers={"Retry-After": "7"})
        if code < 1000:
            return web.Response(status=code, text="error")
        if vendor == "feishu":
            # Feishu answers a rate limit with HTTP 400 and a body; other errors with HTTP 200.
            return web.json_response(
                {"code": code, "data": {}, "msg": f"error {code}"}, status=400 if code == 11232 else 200
            )
        return web.json_response({"errcode": code, "errmsg": f"error {code}"})

    async def _wecom(self, request: web.Request, raw: bytes, body: dict[str, Any]) -> int:
        if request.query.get("key") != self.wecom_key:
            return 93000
        kind = body.get("msgtype")
        if kind not in ("markdown", "text") or not isinstance(body.get(kind), dict):
            return 40008
        content = body[kind].get("content")
        if not isinstance(content, str) or not content:
            return 44004
        if len(content.encode()) > LIMIT[f"wecom_{kind}"]:
            return 40058
        return 0

    async def _dingtalk(self, request: web.Request, raw: bytes, body: dict[str, Any]) -> int:
        query = request.query
        if query.get("access_token") != self.dingtalk_token:
            return 300001
        if self.dingtalk_secret is not None:
            try:
                stamp = int(query.get("timestamp", ""))
            except ValueError:
                return 310000
            if abs(self.clock() * 1000 - stamp) > WINDOW * 1000:
                return 310000
            if not hmac.compare_digest(query.get("sign", ""), dingtalk_sign(self.dingtalk_secret, stamp)):
                return 310000
        markdown = body.get("markdown")
        if body.get("msgtype") != "markdown" or not isinstance(markdown, dict):
            return 40035
        if not markdown.get("title") or not markdown.get("text"):
            return 40035
        if len(raw) > LIMIT["dingtalk"]:
            return 460101
        return 0

    async def _feishu(self, request: web.Request, raw: bytes, body: dict[str, Any]) -> int:
        if request.match_info["token"] != self.feishu_token:
            return 19001
        if len(raw) > LIMIT["feishu"]:
            return 9499
        if self.feishu_secret is not None:
            try:
                stamp = int(str(body.get("timestamp", "")))
                sign = str(body.get("sign", ""))
                binascii.a2b_base64(sign, strict_mode=True)
            except (ValueError, binascii.Error):
                return 19021
            if abs(self.clock() - stamp) > WINDOW:
                return 19021
            if not hmac.compare_digest(sign, feishu_sign(self.feishu_secret, stamp)):
                return 19021
        if body.get("msg_type") not in ("text", "post") or not isinstance(body.get("content"), dict):
            return 9499
        return 0


# --- SMTP -------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Mail:
    """One message the sink accepted: the envelope and the message as received."""

    sender: str
    recipients: list[str]
    data: bytes
    tls: bool
    """It came over TLS (STARTTLS or implicit)."""

    @property
    def message(self) -> EmailMessage:
        parsed = email.message_from_bytes(self.data, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        return parsed


@dataclass
class _Handler:
    sink: SmtpSink

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        reply = self.sink.rcpt_replies.get(address)
        if reply:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if self.sink.data_replies:
            return self.sink.data_replies.pop(0)
        content = envelope.original_content or envelope.content or b""
        data = content if isinstance(content, bytes) else content.encode()
        # ``session.ssl`` is set by STARTTLS only; implicit TLS shows on the transport.
        tls = session.ssl is not None or (
            server.transport is not None and server.transport.get_extra_info("ssl_object") is not None
        )
        mail = Mail(str(envelope.mail_from), list(envelope.rcpt_tos), data, tls)
        self.sink._arrived(mail)
        return "250 Message accepted for delivery"


class _Controller(Controller):
    """aiosmtpd's controller, on a port the system picks (it would connect to port 0 otherwise)."""

    def _create_server(self) -> Awaitable[asyncio.AbstractServer]:
        async def bind() -> asyncio.AbstractServer:
            server = await self.loop.create_server(
                self._factory_invoker, host=self.hostname, port=0, ssl=self.ssl_context
            )
            self.port = server.sockets[0].getsockname()[1]
            return server

        return bind()


@dataclass
class SmtpSink:
    """An SMTP server on 127.0.0.1 that keeps every message (in its own thread, as aiosmtpd runs).

    ``starttls``: offer STARTTLS with this context (and require it if ``require_tls``);
    ``implicit_tls``: TLS from the first byte (port 465 style); ``users``: require AUTH with these
    logins and passwords (a wrong one gets 535)."""

    starttls: ssl.SSLContext | None = None
    implicit_tls: ssl.SSLContext | None = None
    require_tls: bool = False
    users: dict[str, str] | None = None
    mails: list[Mail] = field(default_factory=list)
    rcpt_replies: dict[str, str] = field(default_factory=dict)
    """Addresses to refuse, with the reply (``"550 5.1.1 no such user"``, ``"450 try later"``)."""
    data_replies: list[str] = field(default_factory=list)
    """Replies to the next DATA commands instead of accepting (``"451 4.3.0 busy"``)."""
    host: str = "127.0.0.1"
    port: int = 0
    _controller: _Controller | None = None
    _loop: asyncio.AbstractEventLoop | None = None
    _changed: asyncio.Event = field(default_factory=asyncio.Event)

    async def start(self) -> SmtpSink:
        self._loop = asyncio.get_running_loop()
        options: dict[str, Any] = {}
        if self.starttls is not None:
            options |= {"tls_context": self.starttls, "require_starttls": self.require_tls}
        if self.users is not None:
            options |= {
                "authenticator": self._authenticate,
                "auth_required": True,
                "auth_require_tls": self.starttls is not None or self.implicit_tls is not None,
            }
        self._controller = _Controller(
            _Handler(self), hostname=self.host, port=0, ssl_context=self.implicit_tls, **options
        )
        await asyncio.to_thread(self._controller.start)
        self.port = self._controller.port
        return self

    async def stop(self) -> None:
        if self._controller is not None:
            await asyncio.to_thread(self._controller.stop)

    def _authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        if isinstance(data, LoginPassword) and self.users is not None:
            login, password = data.login.decode(), data.password.decode()
            return AuthResult(success=self.users.get(login) == password, handled=False)
        return AuthResult(success=False, handled=False)

    def _arrived(self, mail: Mail) -> None:
        """Called in the server's thread."""
        self.mails.append(mail)
        assert self._loop is not None
        self._loop.call_soon_threadsafe(self._changed.set)

    async def wait(self, count: int, within: float = 5.0) -> list[Mail]:
        """Wait until ``count`` messages have arrived in all; those messages."""
        async with asyncio.timeout(within):
            while len(self.mails) < count:
                self._changed.clear()
                await self._changed.wait()
        return self.mails[:count]


def free_port() -> int:
    """A port nothing listens on (for "connection refused")."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port
