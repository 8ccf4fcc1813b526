"""What goes into the engine (events) and what comes out (replies, effects)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Literal

from bot.engine.state import State


@dataclass(frozen=True, slots=True)
class TextIn:
    """Free text typed by the user."""

    text: str


@dataclass(frozen=True, slots=True)
class Press:
    """A button pressed: its payload (Telegram's callback_data)."""

    payload: str


@dataclass(frozen=True, slots=True)
class Command:
    """A command such as ``/start iso20000``: name without the slash, and its argument."""

    name: str
    arg: str = ""


@dataclass(frozen=True, slots=True)
class Unsupported:
    """Something the engine cannot read: a sticker, photo, voice note, file, location..."""

    kind: str


@dataclass(frozen=True, slots=True)
class SharedContact:
    """A phone number shared with Telegram's "share my phone number" button."""

    phone: str


@dataclass(frozen=True, slots=True)
class LiveClosed:
    """Staff ended the live chat the prospect is in."""


Event = TextIn | Press | Command | Unsupported | SharedContact | LiveClosed

_COMMAND = re.compile(r"^/([A-Za-z0-9_]{1,32})(?:@\w+)?(?:\s+(.*))?$", re.S)


def parse_command(text: str) -> Command | None:
    """``/start iso20000`` or ``/help@SomeBot`` as a Command; None if the text is not a command."""
    m = _COMMAND.match(text.strip())
    if m is None:
        return None
    return Command(m.group(1).lower(), (m.group(2) or "").strip())


@dataclass(frozen=True, slots=True)
class Button:
    label: str
    payload: str | None = None
    url: str | None = None


@dataclass(frozen=True, slots=True)
class Reply:
    text: str
    """Telegram HTML."""
    buttons: tuple[tuple[Button, ...], ...] = ()
    kind: Literal["view", "notice"] = "view"
    """``view`` shows a step (a button press may edit the message into it); ``notice`` is a remark."""
    request_contact: str | None = None
    """Label of a "share my phone number" button the channel should offer with this reply."""


@dataclass(frozen=True, slots=True)
class Effect:
    """Something the channel should do, e.g. ``enquiry`` with the collected answers."""

    name: str
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class Result:
    replies: list[Reply]
    state: State
    effects: list[Effect] = field(default_factory=list)
    notes: list[tuple[str, str]] = field(default_factory=list)
    """For analytics: ("faq", entry id) answered, ("unsure", question) answered with suggestions,
    ("unanswered", question) not answered."""
