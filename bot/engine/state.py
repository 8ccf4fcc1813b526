"""The conversation state: a small JSON-serialisable value, so any store can keep it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

HISTORY_LIMIT = 30
STATE_FORMAT = 1

Answer = str | int | bool | list[str] | None


@dataclass(slots=True)
class State:
    locale: str
    flow: str
    step: str
    sub: int = 0
    """Page index (pages), question index (check); 0 elsewhere."""
    seq: int = 0
    """Bumped at every move; buttons carry it, so a button of an older view is recognised as stale."""
    retries: int = 0
    history: list[tuple[str, str, int]] = field(default_factory=list)
    answers: dict[str, dict[str, Answer]] = field(default_factory=dict)
    origin: str | None = None
    """The last certification scheme the prospect looked at (pre-fills the contact form)."""
    version: str = ""
    """Content version the state was made with."""
    ret: str | None = None
    """``flow.step`` to come back to once the step being changed is answered (from a summary)."""

    @property
    def position(self) -> tuple[str, str, int]:
        return (self.flow, self.step, self.sub)

    def clone(self) -> State:
        return State(
            locale=self.locale,
            flow=self.flow,
            step=self.step,
            sub=self.sub,
            seq=self.seq,
            retries=self.retries,
            history=list(self.history),
            answers={k: dict(v) for k, v in self.answers.items()},  # values are never mutated
            origin=self.origin,
            version=self.version,
            ret=self.ret,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "f": STATE_FORMAT,
            "l": self.locale,
            "p": [self.flow, self.step, self.sub],
            "n": self.seq,
            "r": self.retries,
            "h": [list(h) for h in self.history],
            "a": self.answers,
            "o": self.origin,
            "v": self.version,
            **({"ret": self.ret} if self.ret else {}),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> State:
        flow, step, sub = data["p"]
        return cls(
            locale=str(data["l"]),
            flow=str(flow),
            step=str(step),
            sub=int(sub),
            seq=int(data.get("n", 0)),
            retries=int(data.get("r", 0)),
            history=[(str(f), str(s), int(i)) for f, s, i in data.get("h", [])],
            answers={str(k): dict(v) for k, v in data.get("a", {}).items()},
            origin=data.get("o"),
            version=str(data.get("v", "")),
            ret=data.get("ret"),
        )
