"""``python -m bot faq eval``: the matcher measured on labelled question sets.

Each question expects a FAQ topic (its id), a specific passage of a flow step (``passage``, with
the step ``flow.step`` and a piece of the passage's text it must contain), or nothing (``none``:
out of scope, the bot must decline). The sets come in two parts: a development part, which
engineers read and tune against, and a held-out part, which nobody tunes against (its questions
are not read while the matcher is changed): only the held-out figures say how the bot does on
questions nobody prepared it for.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ruamel.yaml import YAML

from bot.content import Content
from bot.faq.matcher import FaqMatcher

NONE = "none"
PASSAGE = "passage"
_CJK = re.compile(r"[\u3400-\u9fff]")


@dataclass(frozen=True, slots=True)
class Question:
    q: str
    expect: str
    """A FAQ id, ``passage`` or ``none``."""
    step: str | None = None
    """For a passage: the step it stands in (``flow.step``)."""
    contains: str | None = None
    """For a passage: a piece of its text (in the language of the answer)."""

    @property
    def locale(self) -> str:
        return "zh" if _CJK.search(self.q) else "en"


@dataclass
class Report:
    name: str = ""
    answered: int = 0
    """Topic questions answered with the expected entry."""
    topics: int = 0
    passages_right: int = 0
    """Specific questions answered with their passage (its step, containing its text)."""
    passages: int = 0
    rejected: int = 0
    """Out-of-scope questions not answered with any entry."""
    out_of_scope: int = 0
    confusions: Counter[tuple[str, str]] = field(default_factory=Counter)
    misses: list[tuple[str, str, str, float]] = field(default_factory=list)
    """(question, expected, got, confidence) for every mistake."""

    @property
    def in_scope(self) -> int:
        return self.topics + self.passages

    @property
    def accuracy(self) -> float:
        """Topic questions answered right."""
        return self.answered / self.topics if self.topics else 0.0

    @property
    def passage_accuracy(self) -> float:
        return self.passages_right / self.passages if self.passages else 0.0

    @property
    def right(self) -> float:
        """Every in-scope question (topic or specific) answered right."""
        return (self.answered + self.passages_right) / self.in_scope if self.in_scope else 0.0

    @property
    def rejection(self) -> float:
        return self.rejected / self.out_of_scope if self.out_of_scope else 0.0

    def lines(self, *, mistakes: bool = True) -> list[str]:
        title = f"{self.name}: " if self.name else ""
        out = [
            f"{title}questions: {self.in_scope + self.out_of_scope} ({self.topics} on a topic, "
            f"{self.passages} specific, {self.out_of_scope} out of scope)",
            f"  right answer (in scope):    {self.right:.1%}  "
            f"({self.answered + self.passages_right}/{self.in_scope})",
            f"  top-1 topic:                {self.accuracy:.1%}  ({self.answered}/{self.topics})",
        ]
        if self.passages:
            out.append(
                f"  right passage (specific):   {self.passage_accuracy:.1%}  "
                f"({self.passages_right}/{self.passages})"
            )
        out.append(
            f"  out-of-scope rejection:     {self.rejection:.1%}  ({self.rejected}/{self.out_of_scope})"
        )
        if mistakes and self.confusions:
            out.append("  confusions (expected -> got: count):")
            out += [f"    {e} -> {g}: {n}" for (e, g), n in self.confusions.most_common()]
            out.append("  mistakes:")
            out += [f"    [{e} -> {g} {c:.2f}] {q}" for q, e, g, c in self.misses]
        return out


def load_labelled(path: Path) -> list[Question]:
    data = YAML(typ="safe").load(path.read_text(encoding="utf-8"))
    return [
        Question(
            str(item["q"]),
            str(item["expect"]),
            str(item["step"]) if item.get("step") else None,
            str(item["contains"]) if item.get("contains") else None,
        )
        for item in data["questions"]
    ]


def load_questions(path: Path) -> list[tuple[str, str]]:
    """(question, expected) pairs (a specific question expects ``passage``)."""
    return [(q.q, q.expect) for q in load_labelled(path)]


def evaluate(
    matcher: FaqMatcher, questions: Sequence[Question | tuple[str, str]], content: Content | None = None
) -> Report:
    """How the matcher answers ``questions``. A specific question is answered right by an entry
    that links to its step and whose answer (in the question's language) holds its text."""
    report = Report()
    for item in questions:
        question = item if isinstance(item, Question) else Question(*item)
        match = matcher.match(question.q)
        entry = match.entry
        got = entry.id if entry is not None else NONE
        if question.expect == NONE:
            report.out_of_scope += 1
            right = got == NONE
            report.rejected += right
        elif question.expect == PASSAGE:
            report.passages += 1
            right = (
                entry is not None
                and content is not None
                and entry.link == question.step
                and (question.contains or "") in content.localise(entry.answer, question.locale)
            )
            report.passages_right += right
            if entry is not None and not right:
                got = f"{got} ({entry.link or 'no step'})"
        else:
            report.topics += 1
            right = got == question.expect
            report.answered += right
        if not right:
            expected = f"passage {question.step}" if question.expect == PASSAGE else question.expect
            report.confusions[(expected, got)] += 1
            report.misses.append((question.q, expected, got, match.confidence))
    return report


DEVELOPMENT = ("faq_eval.yaml", "faq_eval_dev.yaml", "faq_eval_dev2.yaml")
"""The development part (in ``tests/``): read and tuned against."""
HELD_OUT = ("faq_eval_heldout.yaml",)
"""The held-out part: never tuned against."""


def parts(folder: Path) -> dict[str, list[Question]]:
    """The two parts of the labelled set kept in ``folder`` (``tests/``)."""
    return {
        "development": [q for name in DEVELOPMENT for q in load_labelled(folder / name)],
        "held-out": [q for name in HELD_OUT for q in load_labelled(folder / name)],
    }
