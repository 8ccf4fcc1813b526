"""WeChat's pushes to the server: signatures (compared in constant time), safe mode's AES, the
XML of messages and events, and the passive reply.

URL verification and plain mode sign ``sha1(sorted([token, timestamp, nonce]))`` as
``signature``; safe mode (``encrypt_type=aes``) signs the body's ``Encrypt`` too, as
``msg_signature`` (``signature`` alone does not vouch for the body). A timestamp further than
``MAX_SKEW`` from now is refused: a captured push replayed later is not processed. The AES itself
(AES-256-CBC, PKCS#7, the app id checked) is wechatpy's.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from typing import Any
from xml.parsers.expat import ExpatError

import xmltodict

MAX_SKEW = 300
"""Seconds a push's timestamp may be off from our clock."""
MAX_BODY = 64 * 1024


class Refused(Exception):
    """A push that is not WeChat's (bad signature, stale timestamp, undecryptable, not XML)."""


def sign(*parts: str) -> str:
    """WeChat's signature: sha1 of the parts sorted and joined."""
    return hashlib.sha1("".join(sorted(parts)).encode("utf-8")).hexdigest()


def same(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode("utf-8", "surrogatepass"), expected.encode("ascii"))


@dataclass(frozen=True, slots=True)
class Incoming:
    """A message or event pushed by WeChat."""

    openid: str
    """Who sent it (FromUserName): the prospect's id for this account."""
    account: str
    """The account it was sent to (ToUserName): the reply comes from it."""
    created: int
    kind: str
    """MsgType: text, image, voice, video, shortvideo, location, link, event..."""
    text: str = ""
    """A text's Content, or a voice message's Recognition."""
    event: str = ""
    """An event's Event, lower case: subscribe, unsubscribe, click, view, scan..."""
    key: str = ""
    """An event's EventKey (a menu entry's key, a QR code's scene)."""
    msg_id: str = ""

    @property
    def dedupe(self) -> str:
        """The same for WeChat's retries of this push, and only for them: the MsgId, or for an
        event (which has none) its time and kind (the sender is the conversation)."""
        if self.msg_id:
            return f"m{self.msg_id}"
        return f"e{self.created}:{self.event}:{self.key}"[:64]


class Crypto:
    """Checks WeChat's pushes and wraps the replies; ``aes_key`` (EncodingAESKey): safe mode."""

    def __init__(self, token: str, app_id: str | None = None, aes_key: str | None = None) -> None:
        self.token = token
        self.app_id = app_id or ""
        self._prp: Any = None
        if aes_key:
            from wechatpy.crypto import PrpCrypto  # imported only when safe mode is on

            self._prp = PrpCrypto(base64.b64decode(aes_key + "="))

    @property
    def safe(self) -> bool:
        return self._prp is not None

    def _fresh(self, timestamp: str, now: float | None = None) -> None:
        try:
            when = int(timestamp)
        except ValueError:
            raise Refused("timestamp") from None
        if abs((now if now is not None else time.time()) - when) > MAX_SKEW:
            raise Refused("stale timestamp")

    def verify(self, query: Any, now: float | None = None) -> None:
        """The query's ``signature`` is WeChat's, over a fresh timestamp; else Refused."""
        signature, timestamp, nonce = (str(query.get(k, "")) for k in ("signature", "timestamp", "nonce"))
        if not (signature and timestamp and nonce) or not same(signature, sign(self.token, timestamp, nonce)):
            raise Refused("signature")
        self._fresh(timestamp, now)

    def open(self, query: Any, body: bytes, now: float | None = None) -> Incoming:
        """The message of a push: verified, decrypted in safe mode, parsed."""
        self.verify(query, now)
        xml = parse_xml(body)
        if query.get("encrypt_type", "raw") == "aes" or "Encrypt" in xml:
            if self._prp is None:
                raise Refused("an encrypted push, but WECHAT_AES_KEY is not set")
            encrypted = str(xml.get("Encrypt") or "")
            given = str(query.get("msg_signature", ""))
            timestamp, nonce = str(query.get("timestamp")), str(query.get("nonce"))
            if not encrypted or not given or not same(given, sign(self.token, timestamp, nonce, encrypted)):
                raise Refused("msg_signature")
            try:
                plain = self._prp.decrypt(encrypted, self.app_id)
            except Exception:  # a wrong key, padding or app id
                raise Refused("undecryptable") from None
            xml = parse_xml(plain.encode("utf-8") if isinstance(plain, str) else plain)
        elif self._prp is not None:
            raise Refused("a plain push, but safe mode is on")
        return incoming(xml)

    def wrap(self, reply_xml: str, query: Any) -> str:
        """The reply as WeChat expects it: encrypted and signed in safe mode."""
        if self._prp is None or query.get("encrypt_type", "raw") != "aes":
            return reply_xml
        timestamp = str(int(time.time()))
        nonce = secrets.token_hex(8)
        encrypted = self._prp.encrypt(reply_xml, self.app_id)
        encrypted = encrypted.decode() if isinstance(encrypted, bytes) else str(encrypted)
        return (
            f"<xml><Encrypt><![CDATA[{encrypted}]]></Encrypt>"
            f"<MsgSignature><![CDATA[{sign(self.token, timestamp, nonce, encrypted)}]]></MsgSignature>"
            f"<TimeStamp>{timestamp}</TimeStamp><Nonce><![CDATA[{nonce}]]></Nonce></xml>"
        )


def parse_xml(body: bytes) -> dict[str, Any]:
    """The ``<xml>`` element of a push as a dict; Refused for anything else. No DTD: entities
    are not expanded."""
    if len(body) > MAX_BODY or b"<!DOCTYPE" in body[:4096].upper() or b"<!ENTITY" in body.upper():
        raise Refused("not a push")
    try:
        parsed = xmltodict.parse(body, disable_entities=True)
    except (ExpatError, ValueError):
        raise Refused("not XML") from None
    xml = parsed.get("xml") if isinstance(parsed, dict) else None
    if not isinstance(xml, dict):
        raise Refused("not a push")
    return xml


def _text(xml: dict[str, Any], name: str) -> str:
    value = xml.get(name)
    return value if isinstance(value, str) else ""


def incoming(xml: dict[str, Any]) -> Incoming:
    openid, account, kind = _text(xml, "FromUserName"), _text(xml, "ToUserName"), _text(xml, "MsgType")
    try:
        created = int(_text(xml, "CreateTime") or "0")
    except ValueError:
        created = 0
    if not openid or not account or not kind or len(openid) > 64:
        raise Refused("not a message")
    kind = kind.lower()
    text = _text(xml, "Content") if kind == "text" else _text(xml, "Recognition") if kind == "voice" else ""
    return Incoming(
        openid=openid,
        account=account,
        created=created,
        kind=kind,
        text=text,
        event=_text(xml, "Event").lower() if kind == "event" else "",
        key=_text(xml, "EventKey") if kind == "event" else "",
        msg_id=_text(xml, "MsgId")[:32],
    )


def text_reply(to: str, account: str, text: str, now: int | None = None) -> str:
    """A passive text reply (XML); the text's characters escaped for XML."""
    when = now if now is not None else int(time.time())
    return (
        f"<xml><ToUserName><![CDATA[{_cdata(to)}]]></ToUserName>"
        f"<FromUserName><![CDATA[{_cdata(account)}]]></FromUserName>"
        f"<CreateTime>{when}</CreateTime><MsgType><![CDATA[text]]></MsgType>"
        f"<Content><![CDATA[{_cdata(text)}]]></Content></xml>"
    )


def _cdata(text: str) -> str:
    """Text inside CDATA: ``]]>`` split so that it cannot end the section."""
    return text.replace("]]>", "]]]]><![CDATA[>")
