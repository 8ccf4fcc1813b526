"""A fake WeChat on 127.0.0.1 for the tests and the benchmark (as aiogram_dialog ships its
``test_tools``): it pushes users' messages to the bot's callback as WeChat does, and serves the
API the bot calls.

As WeChat: a push is signed (``signature``; in safe mode encrypted, with ``msg_signature``), the
bot has 5 seconds to answer it, and it is tried 3 times in all when no answer comes in time (then
the user would see "该公众号暂时无法提供服务"). ``cgi-bin/stable_token`` hands out a token that stays
the same while it is valid (``force_refresh`` makes a new one and ends the old); customer-service
messages are refused outside the user's window (45015: 48 hours after their last message, 1
minute after a menu click, a follow or a scan) or beyond its count (45047: 5 messages after a
message, 3 after an event), with a bad or expired token (40001, 42001), or over 2048 bytes
(45002). Errors can be scripted (``fail``).
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import re
import secrets
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web

from bot.wechat.callback import _cdata, parse_xml, sign

OPTION = re.compile(r"^(?:回复|Reply) (\d+)[：:] ?(.*)$", re.M)
"""An option line (``wx_option``)."""
DEADLINE = 5.0
ATTEMPTS = 3
ACCOUNT = "gh_fakeaccount"


@dataclass
class Window:
    """A user's customer-service window: until when, and how many messages are left."""

    until: float = 0.0
    left: int = 0


@dataclass
class Seen:
    """What a user saw: the passive replies and customer-service messages, in order."""

    texts: list[str] = field(default_factory=list)
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def add(self, text: str) -> None:
        self.texts.append(text)
        self.changed.set()


class FakeWeChat:
    """WeChat's side: the API server, and the pushes to the bot at ``callback``."""

    def __init__(
        self,
        *,
        token: str = "wxtoken",
        app_id: str = "wxfakeappid0000001",
        secret: str = "fakesecret",
        aes_key: str | None = None,
        token_ttl: int = 7200,
        deadline: float = DEADLINE,
    ) -> None:
        self.token = token
        self.app_id = app_id
        self.secret = secret
        self.aes_key = aes_key
        self.token_ttl = token_ttl
        self.deadline = deadline
        self.callback = ""
        """The bot's callback URL (``http://127.0.0.1:PORT/wechat``)."""
        self.access: tuple[str, float] | None = None
        """The valid access_token and when it expires."""
        self.token_calls = 0
        self.forced = 0
        self.windows: dict[str, Window] = defaultdict(Window)
        self.seen: dict[str, Seen] = defaultdict(Seen)
        self.sent: list[dict[str, Any]] = []
        """Every customer-service message accepted."""
        self.refused: list[tuple[str, int]] = []
        """(openid, errcode) of each customer-service message refused."""
        self.menus: list[dict[str, Any]] = []
        self.attempts: list[tuple[str, int, float]] = []
        """(dedupe key, attempt, seconds the bot took or -1 for no answer in time), per push."""
        self.script: list[int] = []
        """Error codes the next customer-service calls get, one each."""
        self._ids = itertools.count(10**15)
        self._runner: web.AppRunner | None = None
        self._http: aiohttp.ClientSession | None = None
        self.base = ""

    # --- the API ---------------------------------------------------------------------------------

    async def start(self) -> FakeWeChat:
        app = web.Application()
        app.router.add_post("/cgi-bin/stable_token", self._stable_token)
        app.router.add_post("/cgi-bin/message/custom/send", self._custom_send)
        app.router.add_post("/cgi-bin/menu/create", self._menu_create)
        from bot.web.app import start_web

        self._runner, port = await start_web(app, "127.0.0.1", 0)
        self.base = f"http://127.0.0.1:{port}"
        self._http = aiohttp.ClientSession()
        return self

    async def stop(self) -> None:
        if self._http is not None:
            await self._http.close()
        if self._runner is not None:
            await self._runner.cleanup()

    def fail(self, *codes: int) -> None:
        """The next customer-service calls get these error codes (-1: busy; 500: HTTP 500)."""
        self.script.extend(codes)

    def expire_token(self) -> None:
        """The token expires now (as after 2 hours)."""
        if self.access is not None:
            self.access = (self.access[0], time.time() - 1)

    def invalidate_token(self) -> None:
        """The token stops working at once (as when someone calls the classic ``cgi-bin/token``)."""
        self.access = None

    async def _stable_token(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.token_calls += 1
        if body.get("appid") != self.app_id or body.get("secret") != self.secret:
            return web.json_response({"errcode": 40013, "errmsg": "invalid appid"})
        now = time.time()
        if body.get("force_refresh"):
            self.forced += 1
            self.access = None
        if self.access is None or self.access[1] <= now:
            self.access = (secrets.token_urlsafe(48), now + self.token_ttl)
        value, expires = self.access
        return web.json_response({"access_token": value, "expires_in": int(expires - now)})

    def _check_token(self, request: web.Request) -> int:
        given = request.query.get("access_token", "")
        if self.access is None or given != self.access[0]:
            return 40001
        if self.access[1] <= time.time():
            return 42001
        return 0

    async def _custom_send(self, request: web.Request) -> web.StreamResponse:
        code = self._check_token(request)
        body = await request.json()
        openid = str(body.get("touser", ""))
        if not code and self.script:
            code = self.script.pop(0)
            if code == 500:
                return web.Response(status=500, text="busy")
        if not code:
            content = str(body.get("text", {}).get("content", ""))
            window = self.windows[openid]
            if body.get("msgtype") != "text":
                code = 40008
            elif len(content.encode()) > 2048:
                code = 45002
            elif window.until < time.time():
                code = 45015
            elif window.left <= 0:
                code = 45047
            else:
                window.left -= 1
                self.sent.append(body)
                self.seen[openid].add(content)
        if code:
            self.refused.append((openid, code))
            return web.json_response({"errcode": code, "errmsg": f"error {code}"})
        return web.json_response({"errcode": 0, "errmsg": "ok"})

    async def _menu_create(self, request: web.Request) -> web.StreamResponse:
        code = self._check_token(request)
        body = await request.json()
        buttons = body.get("button") if isinstance(body, dict) else None
        if not code and (
            not isinstance(buttons, list)
            or not 1 <= len(buttons) <= 3
            or any(len(b.get("sub_button", [])) > 5 for b in buttons)
        ):
            code = 40016
        if code:
            return web.json_response({"errcode": code, "errmsg": f"error {code}"})
        self.menus.append(body)
        return web.json_response({"errcode": 0, "errmsg": "ok"})

    # --- pushes to the bot ---------------------------------------------------------------------------

    def open_window(self, openid: str, *, event: bool = False) -> None:
        """What a user's message (or an event) does to their customer-service window."""
        if event:
            self.windows[openid] = Window(time.time() + 60, 3)
        else:
            self.windows[openid] = Window(time.time() + 48 * 3600, 5)

    def xml(self, openid: str, kind: str, **fields: str) -> tuple[str, str]:
        """A push's XML and its dedupe key."""
        created = str(int(time.time()))
        parts = {
            "ToUserName": ACCOUNT,
            "FromUserName": openid,
            "CreateTime": created,
            "MsgType": kind,
            **fields,
        }
        key = fields.get("MsgId") or f"{openid}:{created}:{fields.get('Event', '')}"
        inner = "".join(
            f"<{k}>{v}</{k}>" if k == "CreateTime" else f"<{k}><![CDATA[{_cdata(str(v))}]]></{k}>"
            for k, v in parts.items()
        )
        return f"<xml>{inner}</xml>", key

    async def push(self, openid: str, kind: str, *, attempts: int = ATTEMPTS, **fields: Any) -> str | None:
        """Push a message as WeChat does, retrying when no answer comes within the deadline;
        the passive reply the user saw (None: ``success`` or nothing)."""
        if kind == "text" and "MsgId" not in fields:
            fields["MsgId"] = str(next(self._ids))
        xml, key = self.xml(openid, kind, **fields)
        self.open_window(openid, event=kind == "event")
        for attempt in range(1, attempts + 1):
            started = time.monotonic()
            try:
                status, body = await asyncio.wait_for(self._post(xml), self.deadline)
            except TimeoutError:
                self.attempts.append((key, attempt, -1.0))
                continue
            self.attempts.append((key, attempt, time.monotonic() - started))
            if status != 200:
                raise AssertionError(f"the bot answered a push with HTTP {status}: {body[:200]!r}")
            reply = self.read_reply(body)
            if reply is not None:
                self.seen[openid].add(reply)
            return reply
        return None

    async def _post(self, xml: str) -> tuple[int, bytes]:
        assert self._http is not None and self.callback, "start() and set callback first"
        timestamp, nonce = str(int(time.time())), secrets.token_hex(5)
        query = {"signature": sign(self.token, timestamp, nonce), "timestamp": timestamp, "nonce": nonce}
        body = xml
        if self.aes_key:
            encrypted = self._prp().encrypt(xml, self.app_id)
            encrypted = encrypted.decode() if isinstance(encrypted, bytes) else str(encrypted)
            query |= {
                "encrypt_type": "aes",
                "msg_signature": sign(self.token, timestamp, nonce, encrypted),
            }
            body = (
                f"<xml><ToUserName><![CDATA[{ACCOUNT}]]></ToUserName>"
                f"<Encrypt><![CDATA[{encrypted}]]></Encrypt></xml>"
            )
        async with self._http.post(self.callback, params=query, data=body.encode()) as response:
            return response.status, await response.read()

    def _prp(self) -> Any:
        from wechatpy.crypto import PrpCrypto

        assert self.aes_key is not None
        return PrpCrypto(base64.b64decode(self.aes_key + "="))

    def read_reply(self, body: bytes) -> str | None:
        """The text a passive reply shows (decrypted and checked in safe mode)."""
        if body in (b"", b"success"):
            return None
        xml = parse_xml(body)
        if "Encrypt" in xml:
            encrypted = str(xml["Encrypt"])
            expected = sign(self.token, str(xml["TimeStamp"]), str(xml["Nonce"]), encrypted)
            if xml.get("MsgSignature") != expected:
                raise AssertionError("the reply's MsgSignature is wrong")
            xml = parse_xml(self._prp().decrypt(encrypted, self.app_id).encode())
        if xml.get("MsgType") != "text":
            raise AssertionError(f"not a text reply: {xml}")
        content = str(xml.get("Content") or "")
        if len(content.encode()) > 2048:
            raise AssertionError("a passive reply over 2048 bytes")
        return content


class WeChatUser:
    """One WeChat user of the fake, talking to the bot."""

    def __init__(self, wechat: FakeWeChat, openid: str | None = None) -> None:
        self.wechat = wechat
        self.openid = openid or "o" + secrets.token_urlsafe(20)

    @property
    def texts(self) -> list[str]:
        return self.wechat.seen[self.openid].texts

    async def send(self, text: str, **options: Any) -> str | None:
        return await self.wechat.push(self.openid, "text", Content=text, **options)

    def number(self, label: str) -> str:
        """The number of the newest option whose label contains ``label``."""
        for text in reversed(self.texts):
            for found in OPTION.finditer(text):
                if label in found.group(2):
                    return found.group(1)
        raise LookupError(f"no option {label!r} in {self.texts[-1:]}")

    async def choose(self, label: str) -> str | None:
        """Reply with the number of the option ``label``."""
        return await self.send(self.number(label))

    async def follow(self, scene: str = "") -> str | None:
        fields: dict[str, Any] = {"Event": "subscribe"}
        if scene:
            fields["EventKey"] = "qrscene_" + scene
        return await self.wechat.push(self.openid, "event", **fields)

    async def click(self, key: str) -> str | None:
        return await self.wechat.push(self.openid, "event", Event="CLICK", EventKey=key)

    async def picture(self) -> str | None:
        return await self.wechat.push(
            self.openid,
            "image",
            PicUrl="http://127.0.0.1/x.jpg",
            MediaId="m1",
            MsgId=str(next(self.wechat._ids)),
        )

    async def wait(self, count: int, within: float = 10.0) -> list[str]:
        """Wait until the user has seen ``count`` texts in all; those texts."""
        seen = self.wechat.seen[self.openid]
        async with asyncio.timeout(within):
            while len(seen.texts) < count:
                seen.changed.clear()
                await seen.changed.wait()
        return seen.texts[:count]


def new_aes_key() -> str:
    """A random EncodingAESKey (43 characters)."""
    return base64.b64encode(secrets.token_bytes(32)).decode().rstrip("=")
