"""Staff alerts where the sales team works: a WeCom (企业微信) group robot, a DingTalk custom robot,
a Feishu/Lark custom bot and e-mail over SMTP. Each sender turns one ``Alert`` into one message and
either delivers it or raises ``Retry`` (try again later) or ``Refused`` (the configuration is
wrong, so trying again will not help); queueing, pacing and backoff are the outbox's job, which
reads ``per_minute`` for each target's pace.

Every value in an alert is what a prospect typed, so it is made inert for the target's format
before it is sent: on one line (a newline cannot start a fake field, a heading or a quote), with
no control or direction-override characters, and with the characters that mean something to the
target replaced by their full-width forms (``[`` ``]`` ``*`` ``_`` ``<`` ``>`` ... in markdown;
``<`` ``>`` and a word-initial ``@`` everywhere, so neither ``<@all>``, ``<at user_id="all">``
nor ``@all`` mentions anyone). Full-width forms are used rather than backslash escapes because
the vendors' markdown dialects are not documented to honour escapes, and they read naturally in
Chinese text. An e-mail address keeps its ``@`` (it is not word-initial). A bare URL stays as
text; a client may still make it clickable, but it shows where it goes, unlike ``[text](url)``.
The lead's own link (``Alert.link``) is ours, and is accepted only as an http(s) URL.

Each message is kept within the vendor's limit (WeCom markdown 4096 bytes, text 2048; DingTalk
20,000; Feishu 20 KB of request body) by shortening the longest values first, a whole character
at a time, so UTF-8 is never cut in the middle of a character.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import html
import json
import logging
import re
import ssl
import time
import unicodedata
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Any, Literal, Protocol
from urllib.parse import quote, urlsplit

import aiohttp
import aiosmtplib
from yarl import URL

log = logging.getLogger(__name__)

LINK_TEXT = "查看线索"
"""The text of the link to the lead's page."""
TITLE_CHARS = 120
"""A title is cut to this many characters (it is a notification's preview, and a mail subject)."""
ELLIPSIS = "…"
TIMEOUT = 10.0
"""Seconds an HTTP call to a robot may take."""

WECOM_MARKDOWN_BYTES = 4096
WECOM_TEXT_BYTES = 2048
DINGTALK_BYTES = 20_000
FEISHU_BYTES = 20_000
"""Feishu documents 20 KB per request body; 20,000 leaves room under either reading of "KB"."""
EMAIL_VALUE_CHARS = 20_000
"""E-mail has no vendor limit; a value is still cut somewhere so one alert stays a small mail."""

# --- vendors' error codes --------------------------------------------------------------------------
# Confirmed against public pages (vendors' docs or quoted responses): WeCom 45009 "api freq out of
# limit"; DingTalk 130101 "send too fast, exceed 20 times per minute" (then limited for 10
# minutes) and 310000 "sign not match" / keywords / IP; Feishu 19021 "sign match fail or timestamp
# is not within one hour", 19022 "Ip Not Allowed", 19024 "Key Words Not Found", 11232 (rate
# limited), 99991400 (gateway rate limit, with x-ogw-ratelimit-reset), 9499 (documented as "Bad
# Request" for a malformed or oversized body; other senders treat it as "too many requests" and
# retry: ours are never malformed nor over 20 KB, so here it is a retry).
# Not confirmed (taken from the brief and common reports): WeCom 93000 (invalid webhook URL / key),
# DingTalk 300001 (token does not exist) and 400013 (the group is gone), Feishu 19001 (the
# webhook's token is invalid).
WECOM_RETRY = {45009: 60.0}
WECOM_REFUSED = frozenset({93000})
DINGTALK_RETRY = {130101: 600.0}
DINGTALK_REFUSED = frozenset({300001, 310000, 400013})
FEISHU_RETRY: dict[int, float | None] = {9499: None, 11232: 60.0, 99991400: None}
FEISHU_REFUSED = frozenset({19001, 19021, 19022, 19024})


class RobotError(Exception):
    """A message was not delivered (see ``Retry`` and ``Refused``)."""

    def __init__(self, target: str, message: str, *, code: int | None = None) -> None:
        super().__init__(f"{target}: {message}")
        self.target = target
        self.code = code
        """The vendor's error code (or the HTTP or SMTP status), when there is one."""


class Retry(RobotError):
    """Try again later: rate limited, the vendor or the network failed, a timeout."""

    def __init__(
        self,
        target: str,
        message: str,
        *,
        code: int | None = None,
        after: float | None = None,
        uncertain: bool = False,
    ) -> None:
        super().__init__(target, message, code=code)
        self.after = after
        """Seconds to wait at least, when the vendor says (or documents) how long."""
        self.uncertain = uncertain
        """The request went out and no answer came (a timeout, a dropped connection): the message
        may have been delivered, so a retry may show it twice. For a lead alert, twice is better
        than never, but the outbox may want to count these."""


class Refused(RobotError):
    """The target refused the message for a reason a retry will not fix: a wrong key, token or
    secret, a keyword or IP allow-list, a rejected mailbox or login. Someone must change a
    setting."""


@dataclass(frozen=True, slots=True)
class Alert:
    """One staff alert, in a form every target can render."""

    title: str
    """E.g. ``新线索 L000012``."""
    fields: tuple[tuple[str, str], ...] = ()
    """(label, value) pairs in order; values are the prospect's text and are escaped by the
    sender."""
    link: str | None = None
    """The lead's page in the dashboard."""
    mention: tuple[str, ...] = ()
    """Mobile numbers to @-mention (WeCom; ``@all`` for everyone). From settings, never from a
    prospect."""


class Notifier(Protocol):
    """One staff target."""

    name: str
    """``wecom``, ``dingtalk``, ``feishu`` or ``email``."""
    per_minute: int
    per_second: int | None
    """A limit per second too (Feishu: 5), or None."""
    """How many messages a minute the target takes (the outbox paces each target to it)."""

    async def send(self, alert: Alert) -> str | None:
        """Deliver ``alert``; the message id when the target gives one. Raises ``Retry`` or
        ``Refused``."""
        ...


# --- making values inert ---------------------------------------------------------------------------

_BREAKS = re.compile(r"\s*[\r\n\v\f\x1c-\x1e\x85\u2028\u2029]+\s*")
_SPACES = re.compile(r"[ \t]{2,}")
_HIDDEN = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\u200e\u200f\ufeff]")
"""Control characters and direction overrides (which can make text read backwards)."""
_MENTION = re.compile(r"(?<![\w.+-])@")
"""An ``@`` that could start a mention: not inside a word (``li@example.com`` keeps its own)."""
_ANGLES = str.maketrans({"<": "＜", ">": "＞"})
_MARKDOWN = str.maketrans(
    {
        "\\": "＼",
        "`": "｀",
        "*": "＊",
        "_": "＿",
        "[": "［",
        "]": "］",
        "~": "～",
        "|": "｜",
        "#": "＃",
        "<": "＜",
        ">": "＞",
    }
)
_TAIL = frozenset({"\u200d", "\ufe0f", "\ufe0e"})


def one_line(text: str) -> str:
    """``text`` on one line, without control or direction-override characters."""
    text = _BREAKS.sub(" ", str(text))
    text = _HIDDEN.sub("", text)
    return _SPACES.sub(" ", text).strip()


def plain(text: str) -> str:
    """``text`` inert in a chat message that is not markdown (Feishu's post, WeCom's text): one
    line, and no ``<``/``>`` tags nor ``@`` mentions."""
    return _MENTION.sub("＠", one_line(text).translate(_ANGLES))


def markdown(text: str) -> str:
    """``text`` inert in WeCom's and DingTalk's markdown: as ``plain``, and no emphasis, links,
    images, code, headings, quotes, tables or HTML."""
    return _MENTION.sub("＠", one_line(text).translate(_MARKDOWN))


def cut(text: str, chars: int) -> str:
    """``text`` cut to at most ``chars`` characters plus an ellipsis: never inside a character, and
    not between a character and what joins it (an accent, a skin tone, a zero-width joiner or a
    variation selector), so no half-emoji or stray accent is shown."""
    if len(text) <= chars:
        return text
    end = chars
    while end > 0 and (_joins(text[end]) or text[end - 1] == "\u200d"):
        end -= 1
    return text[:end] + ELLIPSIS


def _joins(char: str) -> bool:
    """``char`` belongs to the character before it."""
    return char in _TAIL or "\U0001f3fb" <= char <= "\U0001f3ff" or unicodedata.combining(char) != 0


def safe_link(link: str | None) -> str | None:
    """``link`` if it is an http(s) URL, with the characters that could end a markdown link or an
    HTML attribute percent-encoded; else None (no link is better than a wrong one)."""
    if not link:
        return None
    link = link.strip()
    parts = urlsplit(link)
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        return None
    return quote(link, safe=":/?#@!$&'*+,;=%~-._") if not _HIDDEN.search(link) else None


def fit(alert: Alert, size: Callable[[Alert], int], limit: int) -> Alert:
    """``alert`` with its longest values shortened just enough that ``size(alert) <= limit``
    (found by bisecting a cap on every value's length, so short values stay whole)."""
    alert = replace(alert, title=cut(one_line(alert.title), TITLE_CHARS))
    if size(alert) <= limit:
        return alert

    def capped(chars: int) -> Alert:
        return replace(alert, fields=tuple((label, cut(value, chars)) for label, value in alert.fields))

    low, high = 0, max((len(value) for _, value in alert.fields), default=0)
    if size(capped(0)) > limit:
        raise Refused("alert", f"{len(alert.fields)} fields do not fit in {limit} bytes even when empty")
    while low < high:
        middle = (low + high + 1) // 2
        if size(capped(middle)) <= limit:
            low = middle
        else:
            high = middle - 1
    return capped(low)


def _json(body: Mapping[str, Any]) -> bytes:
    """The request body as the vendors count it: UTF-8, not ``\\u`` escapes (which would make
    Chinese text twice as long)."""
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()


def _hmac_base64(key: bytes, message: bytes) -> str:
    return base64.b64encode(hmac.new(key, message, hashlib.sha256).digest()).decode()


def dingtalk_sign(secret: str, timestamp_ms: int) -> str:
    """DingTalk's ``sign`` (before URL encoding): base64(HMAC-SHA256(key=secret,
    msg="{timestamp}\\n{secret}"))."""
    return _hmac_base64(secret.encode(), f"{timestamp_ms}\n{secret}".encode())


def feishu_sign(secret: str, timestamp: int) -> str:
    """Feishu's ``sign``: base64(HMAC-SHA256(key="{timestamp}\\n{secret}", msg="")) - key and
    message the other way round from DingTalk's."""
    return _hmac_base64(f"{timestamp}\n{secret}".encode(), b"")


# --- HTTP robots ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Answer:
    status: int
    body: dict[str, Any] | None
    headers: Mapping[str, str]


def _seconds(value: str | None) -> float | None:
    try:
        return max(0.0, float(value)) if value else None
    except ValueError:
        return None


class _HttpRobot:
    """What the three webhook robots share: one POST of a JSON body, and the HTTP-level errors."""

    name = "robot"
    per_minute = 20
    per_second: int | None = None

    def __init__(self, http: aiohttp.ClientSession, timeout: float) -> None:
        self.http = http
        self.timeout = timeout

    async def send(self, alert: Alert) -> str | None:
        raise NotImplementedError

    async def _post(self, url: str | URL, data: bytes) -> _Answer:
        try:
            async with self.http.post(
                url,
                data=data,
                headers={"Content-Type": "application/json; charset=utf-8"},
                timeout=aiohttp.ClientTimeout(total=self.timeout),
                allow_redirects=False,
            ) as response:
                raw = await response.read()
                status, headers = response.status, response.headers
        except TimeoutError:
            raise Retry(self.name, f"no answer within {self.timeout:g} s", uncertain=True) from None
        except aiohttp.InvalidURL:
            raise Refused(self.name, "the webhook setting is not a URL") from None
        except aiohttp.ClientConnectorError as error:
            # Never the exception's text: aiohttp's names the URL, whose query holds the key or
            # token (and the signature), and errors are logged and shown on the overview.
            raise Retry(
                self.name, f"cannot connect ({type(error).__name__}, {error.os_error.strerror})"
            ) from None
        except aiohttp.ClientResponseError as error:
            raise Retry(self.name, f"{type(error).__name__} (HTTP {error.status})", uncertain=True) from None
        except aiohttp.ClientError as error:
            raise Retry(self.name, type(error).__name__, uncertain=True) from None
        if status == 429 or status >= 500:
            after = _seconds(headers.get("Retry-After") or headers.get("x-ogw-ratelimit-reset"))
            raise Retry(self.name, f"HTTP {status}", code=status, after=after)
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
        if not isinstance(body, dict):
            body = None
        if body is None and status >= 300:
            # No vendor's JSON: a wrong URL (404, or a redirect to a login page), a blocked caller.
            raise Refused(self.name, f"HTTP {status}: {raw[:200]!r}", code=status)
        return _Answer(status, body, headers)

    def _errcode(self, answer: _Answer, retry: Mapping[int, float | None], refused: Iterable[int]) -> None:
        """WeCom's and DingTalk's ``{"errcode": 0, "errmsg": "ok"}``; a known configuration error is
        refused, any other non-zero code retried (they do not document every code)."""
        body = answer.body
        if body is None or not isinstance(body.get("errcode"), int):
            raise Retry(self.name, f"unexpected answer (HTTP {answer.status}): {body!r:.200}")
        code, message = body["errcode"], str(body.get("errmsg", ""))
        if code == 0:
            return
        if code in refused:
            raise Refused(self.name, f"{code} {message}", code=code)
        raise Retry(self.name, f"{code} {message}", code=code, after=retry.get(code))


class WeComRobot(_HttpRobot):
    """A WeCom group robot (群机器人): the webhook URL as WeCom shows it
    (``https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=KEY``); the key is the only secret.

    Markdown, unless the alert mentions someone: WeCom's markdown cannot mention by mobile number,
    so then the message is text with ``mentioned_mobile_list``."""

    name = "wecom"
    per_minute = 20

    def __init__(self, webhook_url: str, http: aiohttp.ClientSession, *, timeout: float = TIMEOUT) -> None:
        super().__init__(http, timeout)
        self.url = webhook_url

    def body(self, alert: Alert) -> dict[str, Any]:
        """The request body for ``alert``, within WeCom's limits."""
        link = safe_link(alert.link)
        mobiles = [m for m in alert.mention if re.fullmatch(r"\+?[0-9-]{5,20}|@all", m)]
        if mobiles:

            def text(alert: Alert) -> str:
                lines = [plain(alert.title), *(f"{plain(k)}：{plain(v)}" for k, v in alert.fields)]
                return "\n".join([*lines, *([f"{LINK_TEXT}：{link}"] if link else [])])

            alert = fit(alert, lambda a: len(text(a).encode()), WECOM_TEXT_BYTES)
            return {"msgtype": "text", "text": {"content": text(alert), "mentioned_mobile_list": mobiles}}

        def content(alert: Alert) -> str:
            lines = [
                f"**{markdown(alert.title)}**",
                *(f"{markdown(k)}：{markdown(v)}" for k, v in alert.fields),
            ]
            return "\n".join([*lines, *([f"[{LINK_TEXT}]({link})"] if link else [])])

        alert = fit(alert, lambda a: len(content(a).encode()), WECOM_MARKDOWN_BYTES)
        return {"msgtype": "markdown", "markdown": {"content": content(alert)}}

    async def send(self, alert: Alert) -> str | None:
        answer = await self._post(self.url, _json(self.body(alert)))
        self._errcode(answer, WECOM_RETRY, WECOM_REFUSED)
        return None


class DingTalkRobot(_HttpRobot):
    """A DingTalk custom robot (自定义机器人): the webhook URL as DingTalk shows it
    (``https://oapi.dingtalk.com/robot/send?access_token=T``) and, when the robot is set to sign
    (加签), its ``SEC...`` secret: each request then carries ``timestamp`` (milliseconds, within an
    hour of DingTalk's clock) and ``sign`` in the query."""

    name = "dingtalk"
    per_minute = 20

    def __init__(
        self,
        webhook_url: str,
        secret: str | None,
        http: aiohttp.ClientSession,
        *,
        clock: Callable[[], float] = time.time,
        timeout: float = TIMEOUT,
    ) -> None:
        super().__init__(http, timeout)
        self.url = URL(webhook_url)
        self.secret = secret or None
        self.clock = clock

    def signed_url(self) -> URL:
        if self.secret is None:
            return self.url
        timestamp = int(self.clock() * 1000)
        # yarl percent-encodes the value (``+``, ``/``, ``=``), which is DingTalk's urlEncode step.
        return self.url.update_query(timestamp=str(timestamp), sign=dingtalk_sign(self.secret, timestamp))

    def body(self, alert: Alert) -> dict[str, Any]:
        """The request body for ``alert``, within DingTalk's 20,000 bytes. Markdown needs a blank
        line between lines."""
        link = safe_link(alert.link)

        def build(alert: Alert) -> dict[str, Any]:
            title = markdown(alert.title)
            lines = [f"#### {title}", *(f"**{markdown(k)}**：{markdown(v)}" for k, v in alert.fields)]
            text = "\n\n".join([*lines, *([f"[{LINK_TEXT}]({link})"] if link else [])])
            return {"msgtype": "markdown", "markdown": {"title": title, "text": text}}

        return build(fit(alert, lambda a: len(_json(build(a))), DINGTALK_BYTES))

    async def send(self, alert: Alert) -> str | None:
        answer = await self._post(self.signed_url(), _json(self.body(alert)))
        self._errcode(answer, DINGTALK_RETRY, DINGTALK_REFUSED)
        return None


class FeishuRobot(_HttpRobot):
    """A Feishu/Lark custom bot (自定义机器人): the webhook URL as Feishu shows it
    (``https://open.feishu.cn/open-apis/bot/v2/hook/UUID``, or Lark's ``open.larksuite.com``) and,
    when signature verification (签名校验) is on, its secret: the body then carries ``timestamp``
    (seconds) and ``sign``. A rich-text ``post`` message, whose text elements are shown as they are
    (no markdown), with the lead's link as a link element."""

    name = "feishu"
    per_minute = 100
    per_second: int | None = 5

    def __init__(
        self,
        webhook_url: str,
        secret: str | None,
        http: aiohttp.ClientSession,
        *,
        clock: Callable[[], float] = time.time,
        timeout: float = TIMEOUT,
    ) -> None:
        super().__init__(http, timeout)
        self.url = webhook_url
        self.secret = secret or None
        self.clock = clock

    def body(self, alert: Alert) -> dict[str, Any]:
        """The request body for ``alert`` (signed when there is a secret), within 20 KB."""
        link = safe_link(alert.link)
        head: dict[str, Any] = {}
        if self.secret is not None:
            timestamp = int(self.clock())
            head = {"timestamp": str(timestamp), "sign": feishu_sign(self.secret, timestamp)}

        def build(alert: Alert) -> dict[str, Any]:
            rows: list[list[dict[str, Any]]] = [
                [
                    {"tag": "text", "text": f"{plain(k)}：", "style": ["bold"]},
                    {"tag": "text", "text": plain(v)},
                ]
                for k, v in alert.fields
            ]
            if link:
                rows.append([{"tag": "a", "text": LINK_TEXT, "href": link}])
            post = {"zh_cn": {"title": plain(alert.title), "content": rows}}
            return {**head, "msg_type": "post", "content": {"post": post}}

        return build(fit(alert, lambda a: len(_json(build(a))), FEISHU_BYTES))

    async def send(self, alert: Alert) -> str | None:
        answer = await self._post(self.url, _json(self.body(alert)))
        body = answer.body
        # Feishu answers {"code": 0, "msg": "success", ...}; older versions only {"StatusCode": 0}.
        code = body.get("code", body.get("StatusCode")) if body is not None else None
        if not isinstance(code, int):
            raise Retry(self.name, f"unexpected answer (HTTP {answer.status}): {body!r:.200}")
        if code == 0:
            return None
        message = str(body.get("msg") or body.get("StatusMessage") or "") if body else ""
        if code in FEISHU_REFUSED:
            raise Refused(self.name, f"{code} {message}", code=code)
        after = _seconds(answer.headers.get("x-ogw-ratelimit-reset")) or FEISHU_RETRY.get(code)
        raise Retry(self.name, f"{code} {message}", code=code, after=after)


# --- e-mail ---------------------------------------------------------------------------------------

Security = Literal["starttls", "tls", "none"]


class EmailNotifier:
    """E-mail over SMTP (``aiosmtplib``): one message to all ``recipients``, with a plain-text part
    and an HTML alternative. ``security``: ``starttls`` (port 587), ``tls`` (implicit TLS, port
    465) or ``none`` (a relay on the same host). ``tls_context`` replaces the system's trusted
    certificates (a private CA, or a test's own)."""

    name = "email"

    def __init__(
        self,
        *,
        host: str,
        port: int,
        sender: str,
        recipients: Sequence[str],
        username: str | None = None,
        password: str | None = None,
        security: Security = "starttls",
        timeout: float = 30.0,
        per_minute: int = 30,
        tls_context: ssl.SSLContext | None = None,
    ) -> None:
        if security not in ("starttls", "tls", "none"):
            raise ValueError(f"security must be starttls, tls or none, not {security!r}")
        addresses = [sender, *recipients]
        if not recipients or any(not a or _BREAKS.search(a) or _HIDDEN.search(a) for a in addresses):
            raise ValueError("a sender and at least one recipient, each an address on one line")
        self.host = host
        self.port = port
        self.sender = sender
        self.recipients = list(recipients)
        self.username = username or None
        self.password = password
        self.security = security
        self.timeout = timeout
        self.per_minute = per_minute
        self.per_second: int | None = None
        self.tls_context = tls_context

    def message(self, alert: Alert) -> EmailMessage:
        """The e-mail for ``alert``: the subject on one line (no header can be added through it),
        every value on one line in the text and HTML-escaped in the HTML."""
        title = cut(one_line(alert.title), TITLE_CHARS)
        fields = [(one_line(k), cut(one_line(v), EMAIL_VALUE_CHARS)) for k, v in alert.fields]
        link = safe_link(alert.link)
        text = "\n".join(
            [title, "", *(f"{k}: {v}" for k, v in fields), *(["", f"{LINK_TEXT}: {link}"] if link else [])]
        )
        rows = "".join(
            f'<tr><th align="left" style="padding:2px 12px 2px 0">{html.escape(k)}</th>'
            f"<td>{html.escape(v)}</td></tr>"
            for k, v in fields
        )
        anchor = f'<p><a href="{html.escape(link)}">{html.escape(LINK_TEXT)}</a></p>' if link else ""
        page = (
            '<!doctype html><html><head><meta charset="utf-8"></head><body>'
            f"<h2>{html.escape(title)}</h2><table>{rows}</table>{anchor}</body></html>"
        )
        message = EmailMessage()
        message["Subject"] = title
        message["From"] = self.sender
        message["To"] = ", ".join(self.recipients)
        message["Date"] = formatdate(localtime=True)
        domain = self.sender.rpartition("@")[2].strip("> ") or None
        message["Message-ID"] = make_msgid(domain=domain)
        message.set_content(text + "\n")
        message.add_alternative(page, subtype="html")
        return message

    async def send(self, alert: Alert) -> str | None:
        message = self.message(alert)
        try:
            refused, _ = await aiosmtplib.send(
                message,
                sender=self.sender,
                recipients=self.recipients,
                hostname=self.host,
                port=self.port,
                username=self.username,
                password=self.password if self.username else None,
                use_tls=self.security == "tls",
                start_tls=self.security == "starttls",
                tls_context=self.tls_context,
                timeout=self.timeout,
            )
        except aiosmtplib.SMTPRecipientsRefused as error:
            codes = [r.code for r in error.recipients]
            if any(400 <= c < 500 for c in codes):
                raise Retry(self.name, f"recipients refused for now: {codes}", code=min(codes)) from None
            raise Refused(
                self.name, f"recipients refused: {error}", code=codes[0] if codes else None
            ) from None
        except aiosmtplib.SMTPResponseException as error:
            # Auth (535), sender (550/553), data (552/554): a setting; 4xx: the server's "later".
            if 500 <= error.code < 600:
                raise Refused(self.name, f"{error.code} {error.message}", code=error.code) from None
            raise Retry(self.name, f"{error.code} {error.message}", code=error.code) from None
        except aiosmtplib.SMTPNotSupported as error:
            raise Refused(self.name, f"the server does not support it: {error}") from None
        except aiosmtplib.SMTPTimeoutError as error:
            raise Retry(self.name, f"timed out: {error}", uncertain=True) from None
        except (aiosmtplib.SMTPException, OSError) as error:
            if isinstance(error.__cause__ or error, ssl.SSLCertVerificationError):
                raise Refused(self.name, f"the server's certificate is not trusted: {error}") from None
            raise Retry(self.name, f"{type(error).__name__}: {error}") from None
        if refused:
            # Some recipients have it: sending again would give them a second copy.
            log.warning("email %s: refused by %s", message["Message-ID"], sorted(refused))
        return str(message["Message-ID"])
