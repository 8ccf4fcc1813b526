"""The messages a conversation keeps to show again (``Turn.log``), whatever the channel: the web
chat shows them after a reload, WeChat numbers the buttons of the last one, staff read them."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from markupsafe import escape

from bot.conversation.turn import Turn
from bot.engine.events import Command, Event, Press, Reply, TextIn


def message_of(reply: Reply, role: str = "bot") -> dict[str, Any]:
    """A reply as it is kept (and sent to the web chat): its HTML text and buttons."""
    buttons = [
        [{"label": b.label, "url": b.url} if b.url else {"label": b.label, "payload": b.payload} for b in row]
        for row in reply.buttons
    ]
    return {
        "role": "staff" if reply.kind == "staff" else role,
        "kind": "notice" if reply.kind == "notice" else "view",
        "text": reply.text,
        "buttons": buttons,
    }


def keep(turn: Turn, replies: Sequence[Reply]) -> list[dict[str, Any]]:
    """Keep ``replies``, then the notices owed to the prospect, in the conversation's log; the
    messages kept."""
    kept = [turn.append(message_of(reply)) for reply in replies]
    while turn.pending:
        kept.append(
            turn.append({"role": "bot", "kind": "notice", "text": turn.pending.pop(0), "buttons": []})
        )
    return kept


def echo(turn: Turn, event: Event) -> str | None:
    """What the prospect's own bubble shows (escaped HTML): the text typed, the label pressed."""
    if isinstance(event, TextIn):
        return str(escape(event.text))
    if isinstance(event, Command) and event.name != "start":
        return str(escape(f"/{event.name} {event.arg}".rstrip()))
    if isinstance(event, Press):
        button = pressed(turn, event.payload)
        return str(escape(button["label"])) if button is not None else None
    return None


def pressed(turn: Turn, payload: str) -> dict[str, Any] | None:
    """The kept button with ``payload``, the latest first."""
    for message in reversed(turn.log):
        for row in message.get("buttons", ()):
            for button in row:
                if button.get("payload") == payload:
                    return dict(button)
    return None


def last_buttons(log: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The buttons (with a payload) of the last message of the bot's that has any, in reading
    order: what a typed number presses (WeChat)."""
    for message in reversed(log):
        if message.get("role") == "visitor":
            continue
        found = [b for row in message.get("buttons", ()) for b in row if b.get("payload")]
        if found:
            return found
    return []
