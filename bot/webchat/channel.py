"""The web chat: a channel on the conversation core, served by the same aiohttp server as the
dashboard.

Transport. Each visitor action (text, a button press, a command) is a ``POST /chat/api/send``
that returns the replies; every message of the conversation is kept with a sequence number in the
conversation's record (``Record.log``), so the transcript can be fetched again after a reload
(``GET /chat/api/messages?after=SEQ``), and what comes later (a consultant's answer in a live chat)
arrives over ``GET /chat/api/stream`` (Server-Sent Events, resumed with ``Last-Event-ID``).

Identity. ``POST /chat/api/session`` issues a random token (never chosen by the client, never put
in a URL): the embedded widget keeps it in the host page's storage and sends it as a bearer token;
the full page at ``/chat`` gets it as a first-party HttpOnly SameSite cookie instead, which is
believed only from our own origin. Other origins may call the API only if ``WEBCHAT_ORIGINS``
lists them (CORS), so another site cannot talk to the API with a visitor's session.

Each action carries a client id: a resend after a network error is answered with the messages the
first one produced, not handled again. Limits: per-address and per-visitor rates (a flood gets a
polite notice and HTTP 429, others are not slowed), new sessions per address per hour, the size of
a message. HTML from visitors is always escaped.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
from collections import defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import jinja2
from aiohttp import web
from markupsafe import Markup

from bot import jsonio
from bot.content import Content
from bot.conversation.core import ConversationCore
from bot.conversation.transcript import keep
from bot.conversation.turn import Turn
from bot.engine.events import Event, Press, Reply, TextIn, parse_command
from bot.engine.state import State
from bot.leads.repository import LeadRepository
from bot.prospect import ProspectId
from bot.settings import Settings, canonical_origin
from bot.text import clean
from bot.webchat.form import LeadForm
from bot.webchat.http import PAGE_CSP, client_address, limit_key, own_origin
from bot.webchat.limits import Buckets, HourlyCap
from bot.webchat.visitors import Visitor, Visitors

log = logging.getLogger(__name__)

HERE = Path(__file__).resolve().parent
WEB = "web"
COOKIE = "webchat"
CLIENT_ID = 64
PING = 15.0
"""Seconds between keep-alives on a stream (proxies and phones drop silent connections); the
stream also reads the conversation again then, so a message from another replica gets through."""
API = "/chat/api/"
STREAMS_PER_VISITOR = 4
"""Open streams one visitor may hold (a few tabs); an address holds at most this many for each
session it may open in an hour."""


class Refused(Exception):
    """An action the chat does not take: answered with ``status`` and a notice for the visitor."""

    def __init__(self, status: int, error: str, notice: str) -> None:
        super().__init__(error)
        self.status = status
        self.error = error
        self.notice = notice


class WebChat:
    """The web chat channel: its HTTP API and pages, and its outlet on the core."""

    def __init__(
        self,
        settings: Settings,
        core: ConversationCore,
        visitors: Visitors,
        *,
        leads: LeadRepository | None = None,
        wake_alerts: Callable[[], None] | None = None,
    ) -> None:
        self.settings = settings
        self.core = core
        self.visitors = visitors
        self.origins = frozenset(settings.webchat_origins)
        """As browsers send them (``canonical_origin``)."""
        self.proxies = [ipaddress.ip_network(n, strict=False) for n in settings.web_trusted_proxies]
        self.per_address = Buckets(settings.webchat_rate_per_address, settings.webchat_burst_per_address)
        self.per_visitor = Buckets(settings.webchat_rate, settings.webchat_burst)
        self.new_sessions = HourlyCap(settings.webchat_sessions_per_hour)
        self.max_text = settings.webchat_max_text
        self._waiters: defaultdict[str, dict[asyncio.Event, bool]] = defaultdict(dict)
        """Each visitor's open streams, oldest first: a stream's event, and whether it must end."""
        self._closing = False
        self._streams: dict[str, int] = {}
        """Open streams per address."""
        self.templates = jinja2.Environment(
            loader=jinja2.FileSystemLoader(HERE / "templates"),
            autoescape=True,
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.form = LeadForm(self, leads, wake_alerts) if leads is not None else None
        core.outlets[WEB] = self

    @property
    def content(self) -> Content:
        return self.core.engine.content

    def locale(self, request: web.Request) -> str:
        """The page's language: ``?lang=``, else the browser's first choice we have, else ours."""
        content = self.content
        wanted = request.query.get("lang", "")
        if wanted in content.locales:
            return wanted
        for part in request.headers.get("Accept-Language", "").split(","):
            code = part.split(";")[0].strip().lower()[:2]
            if code in content.locales:
                return code
        return content.default_locale

    def text(self, key: str, locale: str | None = None, **values: Any) -> str:
        content = self.content
        return content.t(key, locale or content.default_locale, **values)

    # --- the outlet: messages from elsewhere (a consultant) --------------------------------------

    async def show(self, turn: Turn, state: State, replies: Sequence[Reply]) -> bool:
        """Keep ``replies`` (and what is owed) in the visitor's transcript; the stream sends them
        once the conversation is saved."""
        keep(turn, replies)
        asyncio.get_running_loop().call_soon(self._wake, turn.key)
        return True

    def _wake(self, key: str) -> None:
        for waiter in self._waiters.get(key, ()):
            waiter.set()

    # --- the API ------------------------------------------------------------------------------------

    def _origin_ok(self, request: web.Request) -> tuple[bool, bool]:
        """(allowed, same origin): a request without an Origin (a top-level page) is our own; so
        is one from the origin the browser sees us at (behind the TLS proxy: its https://)."""
        given = request.headers.get("Origin")
        if given is None:
            return True, True
        origin = canonical_origin(given)
        if origin is None:  # "null" (a sandboxed frame, a file), or not an origin at all
            return False, False
        if origin == own_origin(request, self.proxies):
            return True, True
        return origin in self.origins, False

    def address(self, request: web.Request) -> str:
        """Who the limits count a request against (an address, or an IPv6 /64)."""
        return limit_key(client_address(request, self.proxies))

    @web.middleware
    async def cors(self, request: web.Request, handler: Callable[[web.Request], Any]) -> web.StreamResponse:
        """CORS for the API: only our own pages and the origins in ``WEBCHAT_ORIGINS`` are served.

        A request from another origin is refused (403) before anything is read or handled. Its
        refusal is readable by the page (it says only that this site may not use the chat), so
        the widget can tell the visitor instead of retrying as if offline; for that the preflight
        of any origin is answered (a preflight exposes nothing and changes nothing)."""
        if not request.path.startswith(API):
            response: web.StreamResponse = await handler(request)
            return response
        allowed, same = self._origin_ok(request)
        origin = request.headers.get("Origin", "")
        if request.method == "OPTIONS":
            response = web.Response(status=204)
        elif not allowed:
            log.info("web chat: a request from origin %r refused", origin[:100])
            response = self._refusal(Refused(403, "origin", self.text("web_origin")))
        else:
            try:
                response = await handler(request)
            except Refused as e:
                response = self._refusal(e)
        if not same:
            response.headers["Access-Control-Allow-Origin"] = origin
            response.headers["Vary"] = "Origin"
            if request.method == "OPTIONS":
                response.headers["Access-Control-Allow-Methods"] = "GET, POST"
                response.headers["Access-Control-Allow-Headers"] = (
                    "Authorization, Content-Type, Last-Event-ID"
                )
                response.headers["Access-Control-Max-Age"] = "600"
        return response

    @staticmethod
    def _refusal(e: Refused) -> web.Response:
        return web.json_response({"error": e.error, "notice": e.notice}, status=e.status, dumps=jsonio.dumps)

    async def _visitor(self, request: web.Request) -> Visitor:
        """Who is asking: a bearer token, or (from our own pages only) the cookie."""
        header = request.headers.get("Authorization", "")
        token = header[7:].strip() if header[:7].lower() == "bearer " else ""
        if not token:
            _allowed, same = self._origin_ok(request)
            if same:
                token = request.cookies.get(COOKIE, "")
        visitor = await self.visitors.find(token) if token else None
        if visitor is None:
            raise Refused(401, "session", "")
        return visitor

    def _admit(self, request: web.Request) -> None:
        """Within the address's limit: checked before anything is read (a token looked up)."""
        if not self.per_address.take(self.address(request)):
            raise Refused(429, "flood", self.text("web_busy", self.locale(request)))

    async def new_session(self, request: web.Request) -> web.StreamResponse:
        body = await self._json(request)  # at most 64 KB (client_max_size), parsed or refused
        locale = str(body.get("lang") or "")
        if locale not in self.content.locales:
            locale = self.locale(request)
        page = bool(body.get("page"))
        _allowed, same = self._origin_ok(request)
        address = self.address(request)
        if not self.per_address.take(address):
            raise Refused(429, "flood", self.text("web_busy", locale))
        if not self.new_sessions.take(address):
            raise Refused(429, "too_many_sessions", self.text("web_too_many_sessions", locale))
        token, _visitor = await self.visitors.create(locale)
        if page and same:
            response = web.json_response({"token": None, "lang": locale}, status=201)
            response.set_cookie(
                COOKIE,
                token,
                httponly=True,
                samesite="Strict",
                secure=self.settings.web_cookie_secure,
                path="/chat",
                max_age=self.settings.retention_days * 86400,
            )
            return response
        return web.json_response({"token": token, "lang": locale}, status=201)

    async def _json(self, request: web.Request) -> dict[str, Any]:
        try:
            raw = await request.read()
            body = jsonio.loads(raw) if raw else {}
        except web.HTTPRequestEntityTooLarge:
            raise Refused(413, "too_long", self.text("web_too_long", limit=self.max_text)) from None
        except ValueError:  # not JSON (or nested past what the parser takes)
            raise Refused(400, "bad_request", self.text("web_bad_request")) from None
        if not isinstance(body, dict):
            raise Refused(400, "bad_request", self.text("web_bad_request"))
        return body

    def _event(self, body: dict[str, Any], locale: str | None) -> Event:
        """The engine event of an action; what cannot be stored (control characters, lone
        surrogates) taken out of what the visitor typed."""
        text, press, command = body.get("text"), body.get("press"), body.get("command")
        if isinstance(text, str):
            if len(text) > self.max_text:
                raise Refused(413, "too_long", self.text("web_too_long", locale, limit=self.max_text))
            text = clean(text)
            if not text.strip():
                raise Refused(400, "bad_request", self.text("web_bad_request", locale))
            return (parse_command(text) if text.startswith("/") else None) or TextIn(text)
        if isinstance(press, str) and 0 < len(press) <= 64 and press.isprintable():
            return Press(press)
        if isinstance(command, str) and 0 < len(command) <= 32 and command.isascii() and command.isalnum():
            arg = body.get("arg")
            parsed = parse_command(f"/{command} {clean(arg[:64]) if isinstance(arg, str) else ''}")
            if parsed is not None:
                return parsed
        raise Refused(400, "bad_request", self.text("web_bad_request", locale))

    async def send(self, request: web.Request) -> web.StreamResponse:
        self._admit(request)
        visitor = await self._visitor(request)
        body = await self._json(request)
        client_id = body.get("client_id")
        if not isinstance(client_id, str) or not 0 < len(client_id) <= CLIENT_ID:
            raise Refused(400, "bad_request", self.text("web_bad_request", visitor.locale))
        event = self._event(body, visitor.locale)
        if not self.per_visitor.take(visitor.external_id):  # actions (what is refused costs little)
            raise Refused(429, "flood", self.text("web_flood", visitor.locale))
        messages, last = await self.turn(visitor, client_id, event)
        return web.json_response({"messages": messages, "last": last}, dumps=jsonio.dumps)

    async def turn(self, visitor: Visitor, client_id: str, event: Event) -> tuple[list[dict[str, Any]], int]:
        """One action of a visitor: the messages it produced (the same ones again for a resend),
        and the last sequence number of the transcript."""
        prospect = ProspectId(WEB, visitor.external_id)
        done = await self.core.exchange(prospect, client_id, event, language=visitor.locale)
        if not done.repeated:
            self._wake(prospect.key)
        return done.messages, done.last

    async def messages(self, request: web.Request) -> web.StreamResponse:
        self._admit(request)
        visitor = await self._visitor(request)
        try:
            after = max(0, int(request.query.get("after", "0")))
        except ValueError:
            raise Refused(400, "bad_request", self.text("web_bad_request", visitor.locale)) from None
        record = await self.core.store.load(ProspectId(WEB, visitor.external_id).key)
        log_ = record.log if record is not None else ()
        messages = [m for m in log_ if m["seq"] > after]
        last = record.seq if record is not None else 0
        return web.json_response({"messages": messages, "last": last}, dumps=jsonio.dumps)

    async def stream(self, request: web.Request) -> web.StreamResponse:
        """Server-Sent Events: the messages after ``Last-Event-ID``, then each new one."""
        self._admit(request)
        visitor = await self._visitor(request)
        try:
            last = max(0, int(request.headers.get("Last-Event-ID", "0") or 0))
        except ValueError:
            last = 0
        key = ProspectId(WEB, visitor.external_id).key
        address = self.address(request)
        if self._streams.get(address, 0) >= self.settings.webchat_sessions_per_hour * STREAMS_PER_VISITOR:
            raise Refused(429, "streams", self.text("web_busy", visitor.locale))
        mine = self._waiters[key]
        live = [w for w, ending in mine.items() if not ending]
        for oldest in live[: max(0, len(live) - STREAMS_PER_VISITOR + 1)]:
            mine[oldest] = True  # a reload or another tab: the oldest stream gives way (the
            oldest.set()  # connection behind it is likely gone, noticed only at the next write)
        waiter = asyncio.Event()
        mine[waiter] = False
        self._streams[address] = self._streams.get(address, 0) + 1
        response = web.StreamResponse(
            headers={
                "Content-Type": "text/event-stream; charset=utf-8",
                "Cache-Control": "no-store",
                "X-Accel-Buffering": "no",
            }
        )
        _allowed, same = self._origin_ok(request)
        if not same:
            response.headers["Access-Control-Allow-Origin"] = request.headers.get("Origin", "")
            response.headers["Vary"] = "Origin"
        try:
            await response.prepare(request)
            await response.write(b"retry: 2000\n\n")
            while not (self._closing or mine.get(waiter)):
                waiter.clear()
                async with self.core.locks.lock(key):  # a turn in progress is saved first
                    record = await self.core.store.load(key)
                for message in record.log if record is not None else ():
                    if message["seq"] > last:
                        data = jsonio.dumps(message)
                        await response.write(
                            f"id: {message['seq']}\nevent: message\ndata: {data}\n\n".encode()
                        )
                        last = message["seq"]
                try:
                    await asyncio.wait_for(waiter.wait(), PING)
                except TimeoutError:
                    await response.write(b": ping\n\n")
        except ConnectionResetError:  # the visitor went away (a reload, a phone asleep)
            pass
        finally:
            self._streams[address] -= 1
            if not self._streams[address]:
                del self._streams[address]
            mine.pop(waiter, None)
            if not mine and self._waiters.get(key) is mine:
                del self._waiters[key]
        return response

    # --- pages and files ---------------------------------------------------------------------------

    async def page(self, request: web.Request) -> web.StreamResponse:
        """The full-page chat; without JavaScript, the plain form (when leads are kept)."""
        locale = self.locale(request)
        if self.form is not None:
            return self.form.render(request, "chat.html", locale)
        html = self.templates.get_template("chat.html").render(
            t=lambda key, **v: Markup(self.text(key, locale, **v)), locale=locale, form=None
        )
        response = web.Response(text=html, content_type="text/html", charset="utf-8")
        response.headers["Content-Security-Policy"] = PAGE_CSP
        return response

    async def static(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        kind = {"widget.js": "application/javascript", "widget.css": "text/css", "page.css": "text/css"}[name]
        response = web.FileResponse(
            HERE / "static" / name, headers={"Content-Type": f"{kind}; charset=utf-8"}
        )
        response.headers["Cache-Control"] = "public, max-age=300"
        response.headers["Cross-Origin-Resource-Policy"] = "cross-origin"
        response.headers["Access-Control-Allow-Origin"] = "*"  # a stylesheet loaded by a host page
        return response

    def routes(self, app: web.Application) -> None:
        app.router.add_get("/chat", self.page)
        app.router.add_get(r"/chat/{name:(widget\.js|widget\.css|page\.css)}", self.static)
        app.router.add_route("OPTIONS", API + "{tail:.*}", self._preflight)
        app.router.add_post(API + "session", self.new_session)
        app.router.add_post(API + "send", self.send)
        app.router.add_get(API + "messages", self.messages)
        app.router.add_get(API + "stream", self.stream)
        if self.form is not None:
            app.router.add_get("/chat/form", self.form.show)
            app.router.add_post("/chat/form", self.form.submit)
        app.middlewares.append(self.cors)
        app.on_shutdown.append(self._closing_down)

    async def _closing_down(self, app: web.Application) -> None:
        """The server stops: open streams end (the widget reconnects to another replica, or
        when this one is back), instead of holding the shutdown up."""
        self._closing = True
        for waiters in self._waiters.values():
            for waiter in waiters:
                waiter.set()

    async def _preflight(self, request: web.Request) -> web.StreamResponse:
        return web.Response(status=204)  # answered by ``cors``
