"""One conversation while a turn of it is handled: loaded under its lock, saved afterwards."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from bot.engine.state import State
from bot.prospect import ProspectId
from bot.storage import Record

EMPTY = Record()
TRANSCRIPT_LINES = 60
TRANSCRIPT_LINE = 300
LOG_LIMIT = 60
"""Messages a channel keeps to show again (the web chat after a reload): a walk to a lead is
about 40; each costs ~350 bytes of JSON in the record (the views' texts are shared in memory)."""
LOG_CHARS = 32_000
"""...and at most this many characters of text in all (a walk to a lead takes ~12,000): a
visitor's long messages, escaped (a quote is kept as ``&#34;``), must not grow the record that is
read and written at each action past ~100 KB; the oldest messages give way."""
CLIENTS_KEPT = 16
"""Client ids remembered for resends."""


@dataclass(slots=True)
class Turn:
    """A conversation while one event of it is handled (an update, a web visitor's action, a
    consultant's answer). Whatever channel it is on: the channel's own things (the Telegram
    message being handled) travel in ``attachment``."""

    key: str
    """The conversation: the channel's prefix and its own id (``tg:123``, ``web:…``)."""
    update_id: int
    """The event being handled (Telegram: the update id; web: the visitor's action number)."""
    prospect: ProspectId | None = None
    """Who the prospect is (leads, live chats and /forget are keyed by it)."""
    name: str | None = None
    """What staff see for the prospect (Telegram: their name)."""
    language: str | None = None
    """The client's language code (chooses the locale of a new conversation)."""
    state: State | None = None
    menu_id: int | None = None
    """The message that shows the current view with its buttons (Telegram)."""
    transcript: list[str] = field(default_factory=list)
    contact_keyboard: bool = False
    forgotten: bool = False
    """Set by /forget: only the ids of the events handled are kept."""
    attachment: Any = None
    """The channel's own message being handled, if any (a live chat copies it to staff)."""
    loaded: Record = EMPTY
    """The record as it was loaded (its update ids are kept until this event is handled)."""
    pending: list[str] = field(default_factory=list)
    """Notices owed to the prospect (see ``Record.pending``): shown at the end of the turn."""
    next_state: State | None = None
    """The state this turn ends in, while its effects are carried out."""
    durable: bool = False
    """Write the conversation before the event counts as handled (a turn with effects)."""
    log: list[dict[str, Any]] = field(default_factory=list)
    """Messages kept to be shown again (the web chat's transcript; see ``Record.log``)."""
    seq: int = 0
    floor: int = 0
    """The next message is numbered above this too: numbers never go back to ones a client has
    seen, even when what it saw was not written (a crash: the numbers of a new process start
    above any of an earlier one) or was erased (a new conversation after /forget starts above
    any of the old one). See ``ConversationCore.begin``."""
    clients: list[tuple[str, int, int]] = field(default_factory=list)

    def note(self, line: str) -> None:
        """Add a line to the bounded transcript."""
        self.transcript.append(line[:TRANSCRIPT_LINE])
        del self.transcript[:-TRANSCRIPT_LINES]

    @property
    def next_seq(self) -> int:
        """The number the next message kept gets."""
        return max(self.seq, self.floor) + 1

    def append(self, message: dict[str, Any]) -> dict[str, Any]:
        """Keep ``message`` in the log with the next sequence number; returns it with its ``seq``."""
        self.seq = message["seq"] = self.next_seq
        log = self.log
        log.append(message)
        del log[:-LOG_LIMIT]
        size = sum(len(m["text"]) for m in log)
        while size > LOG_CHARS and len(log) > 1:
            size -= len(log.pop(0)["text"])
        return message

    def after(self, seq: int) -> list[dict[str, Any]]:
        """The kept messages after ``seq`` (the log is in order: read from its end)."""
        log = self.log
        i = len(log)
        while i and log[i - 1]["seq"] > seq:
            i -= 1
        return log[i:]

    def answered(self, client_id: str) -> list[dict[str, Any]] | None:
        """What was answered to the client action ``client_id`` already (None: it is new)."""
        for cid, first, last in self.clients:
            if cid == client_id:
                return [m for m in self.log if first <= m["seq"] <= last]
        return None

    def remember_client(self, client_id: str, first: int) -> None:
        self.clients.append((client_id, first, self.seq))
        del self.clients[:-CLIENTS_KEPT]

    def record(self, state: State | None, pending: tuple[str, ...], update_id: int | None) -> Record:
        """The conversation in ``state`` with ``pending`` owed, after ``update_id`` (None: not
        counted yet)."""
        last, recent = self.loaded.after(update_id)
        return Record(
            state,
            last,
            self.menu_id,
            tuple(self.transcript),
            self.contact_keyboard,
            recent,
            pending,
            log=tuple(self.log),
            seq=self.seq,
            clients=tuple(self.clients),
        )

    def snapshot(self, state: State | None, pending: tuple[str, ...]) -> Record:
        """The conversation in ``state`` with ``pending`` owed, this event not yet counted as
        handled (a redelivery of it is handled again, and shows what is owed)."""
        return self.record(state, pending, None)
