"""Conversation tests as content: stories in ``flows/tests/*.yaml``, run by ``python -m bot flows test``.

A story is what a prospect says or presses, and what the bot must answer::

    name: ISO 20000 self-check, one condition missing
    lang: zh
    steps:
      - say: /start
      - press: ISO/IEC 20000          # a button, by its label or a unique part of it
      - press: 申请条件自测
      - expect:
          contains: ["问题 1/6"]       # the bot's reply contains each of these
          buttons: ["✅ 是", "❌ 否"]   # and has these buttons
          not_contains: ["可以申请"]
      - lead: {company: "ACME"}        # a lead handed over has these answers

Stories run on the engine alone: no Telegram, no database.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

from bot.engine.conversation import Conversation
from bot.engine.engine import Engine
from bot.engine.events import SUBMISSIONS


@dataclass
class StoryResult:
    file: str
    name: str
    failures: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failures


def _diff(expected: str, actual: str) -> str:
    lines = difflib.unified_diff(
        expected.splitlines(), actual.splitlines(), "expected", "bot replied", lineterm="", n=2
    )
    return "\n".join("      " + line for line in lines)


def _check(conv: Conversation, expect: dict[str, Any], where: str) -> list[str]:
    problems = []
    text = conv.text
    for piece in expect.get("contains", []):
        if str(piece) not in text:
            problems.append(f"{where}: the reply does not contain {piece!r}\n{_diff(str(piece), text)}")
    for piece in expect.get("not_contains", []):
        if str(piece) in text:
            problems.append(f"{where}: the reply contains {piece!r}, which it must not")
    for label in expect.get("buttons", []):
        if str(label) not in conv.labels:
            problems.append(f"{where}: no button {label!r}; buttons: {conv.labels}")
    if "step" in expect:
        at = ".".join(conv.position[:2])
        if at != expect["step"]:
            problems.append(f"{where}: at step {at}, expected {expect['step']}")
    return problems


def run_story(engine: Engine, data: dict[str, Any], file: str) -> StoryResult:
    result = StoryResult(file, str(data.get("name", file)))
    conv = Conversation(engine, language_code=str(data.get("lang", engine.default_locale)))
    for n, step in enumerate(data.get("steps", []), 1):
        where = f"step {n}"
        try:
            if "say" in step:
                text = str(step["say"])
                if text.startswith("/"):
                    name, _, arg = text[1:].partition(" ")
                    conv.command(name, arg)
                else:
                    conv.send(text)
            elif "press" in step:
                conv.press(str(step["press"]))
            elif "expect" in step:
                result.failures += _check(conv, step["expect"], where)
            elif "lead" in step:
                handed = [e for e in conv.effects if isinstance(e, SUBMISSIONS)]
                if not handed:
                    result.failures.append(f"{where}: no lead or enquiry was handed over")
                    continue
                answers = handed[-1].answers
                for key, value in step["lead"].items():
                    if answers.get(key) != value:
                        result.failures.append(
                            f"{where}: lead field {key} is {answers.get(key)!r}, expected {value!r}"
                        )
            else:
                result.failures.append(f"{where}: unknown step {dict(step)} (use say, press, expect or lead)")
        except LookupError as e:
            result.failures.append(f"{where}: {e}")
        if result.failures and step.get("stop_on_failure", True) and "expect" not in step:
            break
    return result


def run_stories(engine: Engine, folder: Path) -> list[StoryResult]:
    results = []
    yaml = YAML(typ="safe")
    for path in sorted(folder.glob("*.yaml")):
        try:
            data = yaml.load(path.read_text(encoding="utf-8"))
        except YAMLError as e:
            results.append(StoryResult(path.name, path.name, [f"YAML: {e}"]))
            continue
        stories = data if isinstance(data, list) else [data]
        for story in stories:
            results.append(run_story(engine, story, path.name))
    return results
