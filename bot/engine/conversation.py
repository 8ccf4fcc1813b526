"""Drive the engine like a user would: send text, press buttons by label, read the replies.

Used by the tests and by content stories; it keeps the state the way a channel's store would.
"""

from __future__ import annotations

import json

from bot.engine.engine import Engine
from bot.engine.events import Button, Command, Effect, Event, Press, Reply, Result, TextIn, Unsupported
from bot.engine.render import visible_text
from bot.engine.state import State


class Conversation:
    def __init__(self, engine: Engine, *, language_code: str | None = None, persist: bool = True) -> None:
        self.engine = engine
        self.language_code = language_code
        self.persist = persist
        """Round-trip the state through JSON after every turn, as a database would."""
        self.state: State | None = None
        self.replies: list[Reply] = []
        self.effects: list[Effect] = []
        self.history: list[Result] = []

    # --- acting ---------------------------------------------------------------------------------

    def handle(self, event: Event) -> Conversation:
        result = self.engine.handle(self.state, event, language_code=self.language_code)
        state = result.state
        if self.persist:
            state = State.from_dict(json.loads(json.dumps(state.to_dict())))
        self.state = state
        self.replies = result.replies
        self.effects.extend(result.effects)
        self.history.append(result)
        return self

    def start(self, arg: str = "") -> Conversation:
        return self.handle(Command("start", arg))

    def command(self, name: str, arg: str = "") -> Conversation:
        return self.handle(Command(name, arg))

    def send(self, text: str) -> Conversation:
        return self.handle(TextIn(text))

    def send_unsupported(self, kind: str = "sticker") -> Conversation:
        return self.handle(Unsupported(kind))

    def press(self, label: str) -> Conversation:
        """Press the button of the last replies whose label equals, or uniquely contains, ``label``."""
        return self.handle(Press(self.find(label).payload or ""))

    def find(self, label: str) -> Button:
        buttons = [b for b in self.buttons_all if b.payload is not None]
        exact = [b for b in buttons if b.label == label]
        if exact:
            return exact[-1]
        partial = [b for b in buttons if label.casefold() in b.label.casefold()]
        if len(partial) == 1:
            return partial[0]
        labels = ", ".join(repr(b.label) for b in buttons)
        how = "several" if partial else "no"
        raise LookupError(f"{how} buttons match {label!r}; buttons: {labels}")

    # --- reading --------------------------------------------------------------------------------

    @property
    def text(self) -> str:
        """The visible text of the last replies, joined."""
        return "\n".join(visible_text(r.text) for r in self.replies)

    @property
    def html(self) -> str:
        return "\n".join(r.text for r in self.replies)

    @property
    def buttons_all(self) -> list[Button]:
        return [b for r in self.replies for row in r.buttons for b in row]

    @property
    def labels(self) -> list[str]:
        return [b.label for b in self.buttons_all]

    @property
    def position(self) -> tuple[str, str, int]:
        assert self.state is not None
        return self.state.position
