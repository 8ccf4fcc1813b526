"""``python -m bot faq eval``: the matcher measured on a labelled question set."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from ruamel.yaml import YAML

from bot.faq.matcher import FaqMatcher

NONE = "none"


@dataclass
class Report:
    answered: int = 0
    """In-scope questions answered with the expected entry."""
    in_scope: int = 0
    rejected: int = 0
    """Out-of-scope questions not answered with any entry."""
    out_of_scope: int = 0
    confusions: Counter[tuple[str, str]] = field(default_factory=Counter)
    misses: list[tuple[str, str, str, float]] = field(default_factory=list)
    """(question, expected, got, confidence) for every mistake."""

    @property
    def accuracy(self) -> float:
        return self.answered / self.in_scope if self.in_scope else 0.0

    @property
    def rejection(self) -> float:
        return self.rejected / self.out_of_scope if self.out_of_scope else 0.0

    def lines(self) -> list[str]:
        out = [
            f"questions: {self.in_scope + self.out_of_scope} ({self.in_scope} in scope, "
            f"{self.out_of_scope} out of scope)",
            f"top-1 accuracy (in scope):  {self.accuracy:.1%}  ({self.answered}/{self.in_scope})",
            f"out-of-scope rejection:     {self.rejection:.1%}  ({self.rejected}/{self.out_of_scope})",
        ]
        if self.confusions:
            out.append("confusions (expected -> got: count):")
            out += [f"  {e} -> {g}: {n}" for (e, g), n in self.confusions.most_common()]
            out.append("mistakes:")
            out += [f"  [{e} -> {g} {c:.2f}] {q}" for q, e, g, c in self.misses]
        return out


def load_questions(path: Path) -> list[tuple[str, str]]:
    data = YAML(typ="safe").load(path.read_text(encoding="utf-8"))
    return [(str(item["q"]), str(item["expect"])) for item in data["questions"]]


def evaluate(matcher: FaqMatcher, questions: list[tuple[str, str]]) -> Report:
    report = Report()
    for question, expected in questions:
        match = matcher.match(question)
        got = match.entry.id if match.entry is not None else NONE
        if expected == NONE:
            report.out_of_scope += 1
            report.rejected += got == NONE
        else:
            report.in_scope += 1
            report.answered += got == expected
        if got != expected:
            report.confusions[(expected, got)] += 1
            report.misses.append((question, expected, got, match.confidence))
    return report
