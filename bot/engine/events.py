"""What goes into the engine (events) and what comes out (replies, effects)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

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
    kind: Literal["view", "notice", "staff"] = "view"
    """``view`` shows a step (a button press may edit the message into it); ``notice`` is a
    remark; ``staff``: a consultant's answer in a live chat."""
    request_contact: str | None = None
    """Label of a "share my phone number" button the channel should offer with this reply."""


# --- effects: what the conversation core should do, one type each, dispatched by type -----------


@dataclass(frozen=True, slots=True)
class Handoff:
    """What a ``handoff`` step hands over: the answers collected in its flow, and where the
    prospect came from (the scheme, with its self-check answers)."""

    flow: str
    step: str
    answers: dict[str, Any] = field(default_factory=dict)
    origin: str | None = None
    """The scheme the prospect came through."""
    origin_answers: dict[str, Any] = field(default_factory=dict)
    """The answers given in that scheme's flow (its self-check)."""
    locale: str | None = None
    content_version: str | None = None

    name: ClassVar[str] = "handoff"

    @property
    def question(self) -> str | None:
        """The question the bot could not answer, carried by an enquiry."""
        value = self.answers.get("question")
        return str(value) if value else None


@dataclass(frozen=True, slots=True)
class LeadSubmitted(Handoff):
    """The lead form submitted (``effect: lead``): a lead is saved and staff are alerted."""

    name: ClassVar[str] = "lead"


@dataclass(frozen=True, slots=True)
class EnquirySubmitted(Handoff):
    """Asking a consultant (``effect: enquiry``): a lightweight lead, a name and a phone."""

    name: ClassVar[str] = "enquiry"


@dataclass(frozen=True, slots=True)
class LiveChatStarted(Handoff):
    """A live chat with a person begins (``effect: live``)."""

    name: ClassVar[str] = "live"


@dataclass(frozen=True, slots=True)
class LiveRelay:
    """Something the prospect sent during a live chat, for staff: ``text``, or another kind of
    message (``photo``, ``document``...) the channel passes on as it is."""

    kind: str
    text: str | None = None

    name: ClassVar[str] = "relay"


@dataclass(frozen=True, slots=True)
class LiveChatEnded:
    """The prospect left the live chat's step."""

    flow: str
    step: str

    name: ClassVar[str] = "live_end"


@dataclass(frozen=True, slots=True)
class ForgetRequested:
    """/forget confirmed: erase what is kept about the prospect."""

    locale: str | None = None

    name: ClassVar[str] = "forget"


Effect = LeadSubmitted | EnquirySubmitted | LiveChatStarted | LiveRelay | LiveChatEnded | ForgetRequested
"""Every effect; ``effect.name`` names it in logs and the terminal."""
SUBMISSIONS = (LeadSubmitted, EnquirySubmitted)
"""The effects that become leads."""
HANDOFFS: dict[str, type[Handoff]] = {
    "lead": LeadSubmitted,
    "enquiry": EnquirySubmitted,
    "live": LiveChatStarted,
}
"""A handoff step's ``effect`` to the effect it hands over."""


@dataclass(slots=True)
class Result:
    replies: list[Reply]
    state: State
    effects: list[Effect] = field(default_factory=list)
    notes: list[tuple[str, str]] = field(default_factory=list)
    """For analytics: ("faq", entry id) answered, ("unsure", question) answered with suggestions,
    ("unanswered", question) not answered."""
