"""Rendering texts for Telegram HTML: jinja2 with autoescape and StrictUndefined, and splitting.

Literal template text may use Telegram's HTML tags (``<b>``, ``<i>``, ``<a href>``...); every
value put in with ``{{ ... }}`` is escaped, so a company called ``<b>ACME</b> & Co`` shows literally.
"""

from __future__ import annotations

import html
import re
from html.parser import HTMLParser

import jinja2

MESSAGE_LIMIT = 4096
"""Telegram's limit for one message text, counted after entity parsing."""
CALLBACK_LIMIT = 64
"""Telegram's limit for ``callback_data``, in bytes."""

ALLOWED_TAGS = frozenset(
    {"b", "strong", "i", "em", "u", "ins", "s", "strike", "del", "a", "code", "pre", "span"}
    | {"tg-spoiler", "tg-emoji", "blockquote"}
)


def make_environment() -> jinja2.Environment:
    return jinja2.Environment(
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=False,
        trim_blocks=True,
        lstrip_blocks=True,
    )


class _TagChecker(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.errors: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in ALLOWED_TAGS:
            self.errors.append(f"tag <{tag}> is not supported by Telegram HTML")
        if tag == "a" and not any(k == "href" for k, _ in attrs):
            self.errors.append("<a> needs an href")
        self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> does not close an open tag")
            if tag in self.stack:
                while self.stack and self.stack.pop() != tag:
                    pass
            return
        self.stack.pop()


def html_problems(text: str) -> list[str]:
    """Problems Telegram would reject the text for ("can't parse entities")."""
    checker = _TagChecker()
    checker.feed(text)
    checker.close()
    errors = checker.errors
    if checker.stack:
        errors.append(f"<{checker.stack[-1]}> is never closed")
    for amp in re.finditer(r"&(?!#\d+;|#x[0-9a-fA-F]+;|lt;|gt;|amp;|quot;)", text):
        errors.append(f"bare '&' at offset {amp.start()}: write &amp;")
        break
    return errors


_TAG = re.compile(r"<(/?)([a-zA-Z][\w-]*)([^>]*)>")


def visible_text(text: str) -> str:
    """The text a user sees: tags removed, entities decoded."""
    return html.unescape(_TAG.sub("", text))


def visible_length(text: str) -> int:
    """Length as Telegram counts it: UTF-16 code units of the visible text."""
    return len(visible_text(text).encode("utf-16-le")) // 2


def split_message(text: str, limit: int = MESSAGE_LIMIT) -> list[str]:
    """Split an HTML text into messages of at most ``limit`` visible characters.

    Cuts at paragraph, then line, then word boundaries; tags open at a cut are closed at the end
    of one part and opened again at the start of the next, so each part is valid on its own.
    """
    if len(text) * 2 <= limit or visible_length(text) <= limit:  # a character is 1 or 2 UTF-16 units
        return [text]
    tokens = _tokens(text)
    parts: list[str] = []
    current: list[str] = []
    length = 0
    open_tags: list[tuple[str, str]] = []  # (name, full opening tag)
    last_break = -1  # index in `current` after which a cut is nice
    last_break_len = 0
    last_break_tags: list[tuple[str, str]] = []

    def flush(upto: int, tags_at_cut: list[tuple[str, str]]) -> list[str]:
        head = current[:upto]
        rest = current[upto:]
        closing = "".join(f"</{name}>" for name, _ in reversed(tags_at_cut))
        chunk = "".join(head).rstrip("\n") + closing
        if visible_text(chunk).strip():
            parts.append(chunk)
        reopen = [opening for _, opening in tags_at_cut]
        while rest and not rest[0].startswith("<") and not rest[0].strip():
            rest.pop(0)
        return reopen + rest

    for tok in tokens:
        if tok.startswith("<"):
            m = _TAG.match(tok)
            if m:
                if m.group(1):
                    if open_tags and open_tags[-1][0] == m.group(2).lower():
                        open_tags.pop()
                else:
                    open_tags.append((m.group(2).lower(), tok))
            current.append(tok)
            continue
        size = visible_length(tok)
        if length + size > limit and current:
            if last_break > 0 and last_break_len > limit // 2:
                current[:] = flush(last_break, last_break_tags)
            else:
                current[:] = flush(len(current), list(open_tags))
            length = sum(visible_length(t) for t in current if not t.startswith("<"))
            last_break, last_break_len = -1, 0
        current.append(tok)
        length += size
        if tok.endswith("\n"):
            last_break, last_break_len, last_break_tags = len(current), length, list(open_tags)
    if current:
        chunk = "".join(current).rstrip("\n")
        if visible_text(chunk).strip():
            parts.append(chunk)
    return parts


_TOKEN = re.compile(r"<[^>]*>|&#?\w+;|[^<&\n ]{1,200}|\n+| +|&")


def _tokens(text: str) -> list[str]:
    """Tags, entities, words of at most 200 characters, spaces and newlines."""
    return _TOKEN.findall(text)
