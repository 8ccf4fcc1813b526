"""The engine's replies as WeChat text.

WeChat shows a text message as it is, except ``<a href="…">…</a>`` (a link); it has no inline
buttons. So a message's markup is taken out (its links kept), and the buttons of the last message
that has any become numbered lines ("回复 1：适用范围"): a typed number presses that button
(``channel``). With ``WECHAT_MSGMENU`` each option is also a ``weixin://bizmsgmenu`` link, which
sends the option back as the user's message when tapped. A text is at most 2048 bytes (UTF-8, not
characters): a longer one is split on line boundaries.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import quote

MAX_BYTES = 2048
_LINK = re.compile(r'<a\s+href="([^"]*)"\s*>(.*?)</a>', re.S | re.I)
_TAG = re.compile(r"<[^>]*>")
_BREAK = re.compile(r"<br\s*/?>|</(?:p|div|blockquote|pre|li)>", re.I)
_BLANKS = re.compile(r"\n{3,}")


def plain(markup: str) -> str:
    """Telegram HTML as WeChat text: tags out (links kept as WeChat shows them), entities read."""
    links: list[str] = []

    def keep(found: re.Match[str]) -> str:
        url, label = html.unescape(found.group(1)), html.unescape(_TAG.sub("", found.group(2)))
        if url.lower().startswith(("https://", "http://")):
            links.append(f'<a href="{_href(url)}">{label}</a>')
            return f"\x00{len(links) - 1}\x00"
        return label

    text = _LINK.sub(keep, markup)
    text = _BREAK.sub("\n", text)
    text = html.unescape(_TAG.sub("", text))
    text = re.sub(r"\x00(\d+)\x00", lambda m: links[int(m.group(1))], text)
    return _BLANKS.sub("\n\n", text).strip()


Option = Callable[[int, str], str]
"""An option's line: its number and label."""


def options(buttons: Sequence[dict[str, Any]], line: Option, *, links: bool = False) -> list[str]:
    """Numbered lines for ``buttons`` (those with a payload; a URL button is a link line)."""
    out = []
    number = 0
    for button in buttons:
        label = str(button.get("label", ""))
        if button.get("payload"):
            number += 1
            if links:
                target = f"weixin://bizmsgmenu?msgmenucontent={_href(label, '&#')}&msgmenuid={number}"
                label = f'<a href="{target}">{label}</a>'
            out.append(line(number, label))
        elif button.get("url"):
            out.append(f'<a href="{_href(str(button["url"]))}">{label}</a>')
    return out


def texts(
    messages: Sequence[dict[str, Any]], line: Option, *, links: bool = False, limit: int = MAX_BYTES
) -> list[str]:
    """What a turn's messages show in WeChat, as few texts as fit: the messages one after the
    other, the buttons of the last that has any as numbered lines; each text at most ``limit``
    bytes."""
    last = max((i for i, m in enumerate(messages) if _buttons(m)), default=-1)
    parts = []
    for i, message in enumerate(messages):
        if message.get("role") == "visitor":
            continue
        body = plain(str(message.get("text", "")))
        if i == last:
            body = "\n".join([body, "", *options(_buttons(message), line, links=links)]).strip()
        if body:
            parts.append(body)
    return split("\n\n".join(parts), limit) if parts else []


def _href(url: str, also: str = "") -> str:
    """``url`` as it can stand in WeChat's ``href="…"`` (WeChat reads it as it is, ``&`` too)."""
    return "".join(quote(c, safe="") if c in '"<>' + also else c for c in url)


def _buttons(message: dict[str, Any]) -> list[dict[str, Any]]:
    if message.get("role") == "visitor":
        return []
    return [b for row in message.get("buttons", ()) for b in row]


def split(text: str, limit: int = MAX_BYTES) -> list[str]:
    """``text`` in pieces of at most ``limit`` UTF-8 bytes, cut at line ends where it can be (a
    line longer than that is cut between characters)."""
    if len(text.encode()) <= limit:
        return [text]
    pieces: list[str] = []
    current = ""
    for line in text.split("\n"):
        candidate = f"{current}\n{line}" if current else line
        if len(candidate.encode()) <= limit:
            current = candidate
            continue
        if current:
            pieces.append(current)
        while len(line.encode()) > limit:
            head = line.encode()[:limit].decode("utf-8", "ignore")
            pieces.append(head)
            line = line[len(head) :]
        current = line
    if current.strip():
        pieces.append(current)
    return [p.strip("\n") for p in pieces if p.strip()]
