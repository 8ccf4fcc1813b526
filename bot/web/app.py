"""The staff web dashboard, served by the bot process (aiohttp and jinja2, no front-end framework).

Pages: sign-in, the lead list (search, filters, sorting, pages, CSV export), a lead (details,
transcript, status, assignment, notes and their history), and an overview (leads per day and week,
per scheme and status; each flow's funnel, FAQ hits and unanswered questions).

Security: argon2 password hashes with a lock after repeated failures (and a limit per address),
an HttpOnly SameSite session cookie whose token is stored hashed, a CSRF token on every form
(double-submit cookie on the sign-in form), a strict Content-Security-Policy, no caching of pages.
"""

from __future__ import annotations

import contextlib
import hmac
import ipaddress
import secrets
import time
from collections import defaultdict, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import jinja2
from aiohttp import web

from bot.analytics import Analytics
from bot.content import Content
from bot.db.models import LEAD_STATUSES, Lead
from bot.leads.browse import LeadQuery
from bot.leads.export import export_chunks
from bot.leads.repository import NOTE_LIMIT, LeadRepository
from bot.leads.summary import alert_context
from bot.prospect import CHANNELS
from bot.settings import Settings
from bot.staff.accounts import SESSION_DAYS, StaffAccounts, WebIdentity
from bot.text import clean
from bot.web.i18n import translator
from bot.webchat import WebChat
from bot.webchat.http import client_address
from bot.wechat import WeChatChannel

HERE = Path(__file__).resolve().parent
SESSION_COOKIE = "sid"
LOGIN_COOKIE = "login_csrf"
IP_FAILURES = 20
"""Failed sign-ins from one address within ``IP_WINDOW`` seconds before it must wait."""
IP_WINDOW = 600.0
PUBLIC = ("/login", "/static/", "/healthz", "/favicon.ico")
CHAT = "/chat"
"""The web chat (``bot.webchat``): for visitors, with its own identity and security rules."""
CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)

IDENTITY = web.RequestKey("identity", WebIdentity)
"""Who is signed in (absent: nobody)."""

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class Dashboard:
    settings: Settings
    leads: LeadRepository
    accounts: StaffAccounts
    content: Callable[[], Content]
    """The content now serving (it changes when flows/ is reloaded)."""
    analytics: Analytics | None = None
    wake_alerts: Callable[[], None] | None = None
    """Tells the staff alert sender that an alert is due (one sent again from the overview)."""
    templates: jinja2.Environment = field(init=False)
    failures: dict[str, deque[float]] = field(default_factory=lambda: defaultdict(deque))
    open_paths: tuple[str, ...] = ()
    """Paths with their own authentication (WeChat's callback: its signature), not signed in."""

    def __post_init__(self) -> None:
        self.locale = self.settings.default_locale
        self.proxies = [ipaddress.ip_network(n, strict=False) for n in self.settings.web_trusted_proxies]
        self.templates = jinja2.Environment(
            loader=jinja2.FileSystemLoader(HERE / "templates"),
            autoescape=True,
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.templates.globals.update(
            _=translator(self.locale), statuses=LEAD_STATUSES, urlencode=urlencode, channels=CHANNELS
        )
        self.templates.filters["when"] = self._when

    def _when(self, moment: datetime | None) -> str:
        if moment is None:
            return "—"
        aware = moment if moment.tzinfo else moment.replace(tzinfo=self.settings.zone)
        return aware.astimezone(self.settings.zone).strftime("%Y-%m-%d %H:%M")

    def render(self, request: web.Request, name: str, *, status: int = 200, **context: Any) -> web.Response:
        identity = request.get(IDENTITY)
        html = self.templates.get_template(name).render(
            identity=identity, csrf=identity.csrf if identity else "", path=request.path, **context
        )
        return web.Response(text=html, content_type="text/html", charset="utf-8", status=status)

    # --- signing in and out --------------------------------------------------------------------------

    async def login_page(self, request: web.Request) -> web.StreamResponse:
        if request.get(IDENTITY) is not None:
            raise web.HTTPSeeOther("/leads")
        return self._login_form(request, error=None)

    def _client(self, request: web.Request) -> str:
        """The browser's address: the peer's, or the one our reverse proxy forwards for it."""
        return client_address(request, self.proxies)

    def _login_form(self, request: web.Request, *, error: str | None, status: int = 200) -> web.Response:
        # The same token while the cookie lasts: a second tab (or the browser fetching a favicon
        # through the sign-in redirect) must not make the first form stale.
        token = request.cookies.get(LOGIN_COOKIE, "")
        if not (20 <= len(token) <= 64 and token.replace("-", "").replace("_", "").isalnum()):
            token = secrets.token_urlsafe(24)
        response = self.render(
            request,
            "login.html",
            status=status,
            login_csrf=token,
            error=error,
            next=_safe_next(request.query.get("next")),
        )
        response.set_cookie(
            LOGIN_COOKIE,
            token,
            httponly=True,
            samesite="Strict",
            secure=self.settings.web_cookie_secure,
            path="/login",
            max_age=3600,
        )
        return response

    async def login(self, request: web.Request) -> web.StreamResponse:
        form = await _post(request)
        _ = translator(self.locale)
        cookie = request.cookies.get(LOGIN_COOKIE, "")
        if not cookie or not _same(str(form.get("csrf", "")), cookie):
            return self._login_form(request, error=_("The form has expired. Please try again."), status=403)
        address = self._client(request)
        if len(self.failures) > 10_000:  # many addresses: keep memory bounded
            self.failures.clear()
        recent = self.failures[address]
        now = time.monotonic()
        while recent and recent[0] < now - IP_WINDOW:
            recent.popleft()
        if len(recent) >= IP_FAILURES:
            message = _("Too many failed attempts from this address. Try again in a few minutes.")
            return self._login_form(request, error=message, status=429)
        # Counted as a failure before the wait (so attempts made at once cannot all pass the check
        # above, and one that fails with an error counts too); given back if it succeeds.
        recent.append(now)
        result = await self.accounts.sign_in(str(form.get("name", "")), str(form.get("password", "")))
        if result.user is None:
            if result.locked_until is not None:
                when = self._when(result.locked_until)[11:]
                message = _("Too many failed attempts. Try again after %(when)s.", when=when)
                return self._login_form(request, error=message, status=429)
            return self._login_form(request, error=_("Wrong name or password."), status=401)
        with contextlib.suppress(ValueError):  # gone if the window moved on, or the table was cleared
            recent.remove(now)
        token, _csrf = await self.accounts.open_session(result.user.id)
        response = web.HTTPSeeOther(_safe_next(str(form.get("next", ""))) or "/leads")
        response.set_cookie(
            SESSION_COOKIE,
            token,
            httponly=True,
            samesite="Lax",
            secure=self.settings.web_cookie_secure,
            path="/",
            max_age=SESSION_DAYS * 86400,
        )
        response.del_cookie(LOGIN_COOKIE, path="/login")
        return response

    async def logout(self, request: web.Request) -> web.StreamResponse:
        await self.accounts.close_session(request.cookies.get(SESSION_COOKIE, ""))
        response = web.HTTPSeeOther("/login")
        response.del_cookie(SESSION_COOKIE, path="/")
        return response

    # --- leads ---------------------------------------------------------------------------------------

    def _query(self, request: web.Request) -> LeadQuery:
        return LeadQuery.parse(dict(request.query), schemes=tuple(self._schemes()))

    def _schemes(self) -> dict[str, str]:
        content = self.content()
        return {
            fid: content.localise(flow.title, self.locale)
            for fid, flow in content.flows.items()
            if flow.kind == "scheme"
        }

    async def lead_list(self, request: web.Request) -> web.StreamResponse:
        query = self._query(request)
        page = await self.leads.search(query)
        return self.render(request, "leads.html", page=page, query=query, schemes=self._schemes())

    async def lead_detail(self, request: web.Request) -> web.StreamResponse:
        lead = await self._lead(request)
        content = self.content()
        return self.render(
            request,
            "lead.html",
            lead=lead,
            events=await self.leads.events(lead.id),
            info=alert_context(content, lead, self.locale),
            note_limit=NOTE_LIMIT,
            error=request.query.get("error"),
        )

    async def _lead(self, request: web.Request) -> Lead:
        lead = await self.leads.get(int(request.match_info["id"]))
        if lead is None:
            _ = translator(self.locale)
            raise web.HTTPNotFound(
                text=self.templates.get_template("error.html").render(
                    identity=request.get(IDENTITY),
                    csrf="",
                    path=request.path,
                    title=_("Not found"),
                    message=_("That lead does not exist."),
                ),
                content_type="text/html",
            )
        return lead

    def _actor(self, request: web.Request) -> str:
        identity = request[IDENTITY]
        return f"web:{identity.name}"

    async def change_status(self, request: web.Request) -> web.StreamResponse:
        lead = await self._lead(request)
        status = str((await _post(request)).get("status", ""))
        if status not in LEAD_STATUSES:
            raise web.HTTPBadRequest(text="unknown status")
        await self.leads.set_status(lead.id, status, actor=self._actor(request))
        raise web.HTTPSeeOther(f"/leads/{lead.id}")

    async def assign_me(self, request: web.Request) -> web.StreamResponse:
        lead = await self._lead(request)
        identity = request[IDENTITY]
        await self.leads.assign(lead.id, identity.name, actor=self._actor(request))
        raise web.HTTPSeeOther(f"/leads/{lead.id}")

    async def add_note(self, request: web.Request) -> web.StreamResponse:
        lead = await self._lead(request)
        text = clean(str((await _post(request)).get("note", ""))).strip()
        if not text:
            raise web.HTTPSeeOther(f"/leads/{lead.id}?error=empty")
        await self.leads.add_note(lead.id, text, actor=self._actor(request))
        raise web.HTTPSeeOther(f"/leads/{lead.id}")

    async def export(self, request: web.Request) -> web.StreamResponse:
        query = self._query(request)
        stamp = datetime.now(self.settings.zone).strftime("%Y%m%d-%H%M")
        response = web.StreamResponse(
            headers={
                "Content-Type": "text/csv; charset=utf-8",
                "Content-Disposition": f'attachment; filename="leads-{stamp}.csv"',
                "Cache-Control": "no-store",
            }
        )
        await response.prepare(request)
        async for chunk, _count in export_chunks(self.leads, fmt="csv", query=query, bom=True):
            await response.write(chunk.encode("utf-8"))
        await response.write_eof()
        return response

    # --- overview ------------------------------------------------------------------------------------

    async def overview(self, request: web.Request) -> web.StreamResponse:
        content = self.content()
        stats = await self.leads.stats(zone=self.settings.zone, days=30, weeks=8)
        totals = await self.analytics.totals(days=30) if self.analytics is not None else None
        return self.render(
            request,
            "overview.html",
            stats=stats,
            schemes=self._schemes(),
            funnels=totals.funnels(content, self.locale) if totals else [],
            faq=totals.of("faq")[:15] if totals else [],
            unanswered=totals.of("unanswered")[:30] if totals else [],
            unsure=totals.of("unsure")[:30] if totals else [],
            failed_alerts=await self.leads.failed_alerts(),
            waiting_alerts=await self.leads.waiting_alerts(),
            days=30,
        )

    async def retry_alert(self, request: web.Request) -> web.StreamResponse:
        if await self.leads.retry_alert(int(request.match_info["id"])) and self.wake_alerts is not None:
            self.wake_alerts()
        raise web.HTTPSeeOther("/overview")

    async def health(self, request: web.Request) -> web.StreamResponse:
        return web.json_response({"ok": True})

    async def favicon(self, request: web.Request) -> web.StreamResponse:
        return web.Response(status=204)

    async def home(self, request: web.Request) -> web.StreamResponse:
        raise web.HTTPSeeOther("/leads")

    # --- middlewares ---------------------------------------------------------------------------------

    @web.middleware
    async def guard(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Who is signed in; pages need a session (GET: to the sign-in page), forms a CSRF token."""
        if request.path == CHAT or request.path.startswith(CHAT + "/") or request.path in self.open_paths:
            return await handler(request)
        identity = await self.accounts.identify(request.cookies.get(SESSION_COOKIE, ""))
        if identity is not None:
            request[IDENTITY] = identity
        if request.path.startswith(PUBLIC):
            return await handler(request)
        if identity is None:
            if request.method in ("GET", "HEAD"):
                target = request.path_qs if request.path != "/" else "/leads"
                raise web.HTTPSeeOther("/login?" + urlencode({"next": target}))
            raise web.HTTPForbidden(text="sign in first")
        if request.method not in ("GET", "HEAD"):
            form = await _post(request)
            if not _same(str(form.get("csrf", "")), identity.csrf):
                _ = translator(self.locale)
                return self.render(
                    request,
                    "error.html",
                    status=403,
                    title=_("Forbidden"),
                    message=_(
                        "Refused: the form's security token is missing or wrong. "
                        "Reload the page and try again."
                    ),
                )
        return await handler(request)

    @web.middleware
    async def headers(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            response = await handler(request)
        except web.HTTPException as e:
            response = e
        response.headers.setdefault("Content-Security-Policy", CSP)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        if not request.path.startswith("/static/"):
            response.headers.setdefault("Cache-Control", "no-store")
        if isinstance(response, web.HTTPException) and response.status >= 300:
            raise response
        return response


def _same(given: str, expected: str) -> bool:
    """Constant-time comparison of two tokens (any text, even undecodable bytes of a header)."""
    return hmac.compare_digest(
        given.encode("utf-8", "surrogatepass"), expected.encode("utf-8", "surrogatepass")
    )


async def _post(request: web.Request) -> Any:
    """The request's form; 400 if it cannot be read (bytes that are not UTF-8)."""
    try:
        return await request.post()
    except (UnicodeDecodeError, ValueError):
        raise web.HTTPBadRequest(text="the form could not be read (not UTF-8?)") from None


def _safe_next(target: str | None) -> str:
    """A local path to go back to after signing in (never another site): no control characters
    or backslashes (browsers and URL libraries drop or turn them into slashes), no scheme or host."""
    if not target or not target.startswith("/") or target.startswith("//"):
        return ""
    if "\\" in target or any(ord(c) < 0x20 or ord(c) == 0x7F for c in target):
        return ""
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return ""
    return target


def build_web_app(
    settings: Settings,
    *,
    leads: LeadRepository,
    accounts: StaffAccounts,
    content: Callable[[], Content],
    analytics: Analytics | None = None,
    wake_alerts: Callable[[], None] | None = None,
    webchat: WebChat | None = None,
    wechat: WeChatChannel | None = None,
) -> web.Application:
    """The dashboard, and the web chat (``webchat``) and WeChat's callback (``wechat``) on the
    same server."""
    dash = Dashboard(settings, leads, accounts, content, analytics, wake_alerts)
    app = web.Application(middlewares=[dash.headers, dash.guard], client_max_size=64 * 1024)
    if webchat is not None:
        webchat.routes(app)
    if wechat is not None:
        dash.open_paths = (settings.wechat_path,)
        wechat.routes(app)
    app.router.add_get("/", dash.home)
    app.router.add_get("/healthz", dash.health)
    app.router.add_get("/favicon.ico", dash.favicon)
    app.router.add_get("/login", dash.login_page)
    app.router.add_post("/login", dash.login)
    app.router.add_post("/logout", dash.logout)
    app.router.add_get("/leads", dash.lead_list)
    app.router.add_get("/leads.csv", dash.export)
    app.router.add_get(r"/leads/{id:\d{1,12}}", dash.lead_detail)
    app.router.add_post(r"/leads/{id:\d{1,12}}/status", dash.change_status)
    app.router.add_post(r"/leads/{id:\d{1,12}}/assign", dash.assign_me)
    app.router.add_post(r"/leads/{id:\d{1,12}}/note", dash.add_note)
    app.router.add_get("/overview", dash.overview)
    app.router.add_post(r"/alerts/{id:\d{1,12}}/retry", dash.retry_alert)
    app.router.add_static("/static/", HERE / "static")
    return app


async def start_web(app: web.Application, host: str, port: int) -> tuple[web.AppRunner, int]:
    """Serve the dashboard; return the runner (to clean up) and the port it listens on."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    server = site._server
    sockets = getattr(server, "sockets", None) or []
    return runner, sockets[0].getsockname()[1] if sockets else port
