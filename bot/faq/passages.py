"""Passages: the specific pieces of the flows' content, each with the step it stands in.

A specific question ("营业执照年检证明要不要复印", "does the audit look at the SWOT analysis?") is
answered with the one piece of content that says it, not with the topic's whole answer. The pieces
are taken from every step of every flow, in every locale:

- each line of a step's text (its first line, when bold, is the step's heading, shown with it);
- each item of a list on a page, and each sub-item with the item it belongs to
  ("5. 申请组织的体系文件，需包含……： 7) 信息安全管理流程");
- each self-check condition: its name, its question and what to do when it is not met;
- a self-check's verdict when passed.

A form's questions (the lead form's fields) are not passages, nor is the greeting (what /start
shows): they say nothing about certification.

Lines that use variables (``{{ origin }}``) are left out, and so are the HTML tags: a passage is
shown as text under its heading. Locales are paired item by item where a step's blocks have the
same shape in each; otherwise each locale's items stand alone (and are shown in their own
language). Built from the content when it is loaded, like everything else the engine uses.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from dataclasses import dataclass

from bot.content import Content
from bot.content.model import CheckStep, ChoiceStep, FlowDef, InputStep, PagesStep, Step, SummaryStep, Text

_TAG = re.compile(r"<[^>]+>")
_TEMPLATE_TAG = re.compile(r"{%.*?%}")
_SUB_ITEM = re.compile(r"(?<![^\s；;，,：:])(?=\d{1,2}\)\s*[^\s:：,，.。)])")
"""Where ``1) …；2) …`` sub-items start: at the start or after a space or a separator, and followed
by words (not "(stage 1): " nor a number such as 20000-1:2018)."""
MIN_LENGTH = 4
"""Visible characters a passage has at least (shorter lines say nothing on their own)."""


@dataclass(frozen=True, slots=True)
class Passage:
    flow: str
    step: str
    text: dict[str, str]
    """By locale: the passage as text (HTML-escaped), without its heading."""
    heading: dict[str, str]
    """By locale: the heading of the step it stands in (escaped text; may be empty)."""

    @property
    def link(self) -> str:
        return f"{self.flow}.{self.step}"

    def answer(self) -> dict[str, str]:
        """The passage as an answer (Telegram HTML), by locale: its heading in bold, then it."""
        return {
            locale: (f"<b>{self.heading[locale]}</b>\n{text}" if self.heading.get(locale) else text)
            for locale, text in self.text.items()
        }


def plain(line: str) -> str:
    """A line of content as escaped text (no tags, no template tags)."""
    text = html.unescape(_TAG.sub("", _TEMPLATE_TAG.sub("", line))).strip()
    return html.escape(" ".join(text.split()), quote=False)


def _items(block: str) -> tuple[str, list[str]]:
    """A block of text (one locale) as its heading and its items (see the module)."""
    lines = [line for line in block.splitlines() if line.strip()]
    heading = ""
    if lines and lines[0].strip().startswith("<b>") and lines[0].strip().endswith("</b>"):
        heading = plain(lines.pop(0))
    items: list[str] = []
    parent = ""
    for line in lines:
        if "{{" in line:
            continue
        indented = line[:1].isspace()
        text = plain(line)
        if len(text) < MIN_LENGTH:
            continue
        subs = [s.strip() for s in _SUB_ITEM.split(text) if s.strip()]
        if indented and parent:
            items.extend(f"{parent} {sub}" for sub in subs)
            continue
        items.append(text)
        if len(subs) > 1:  # a line of sub-items: each one with what it is an item of
            lead, *rest = subs
            items.extend(f"{lead} {sub}" for sub in rest)
        parent = text
    return heading, items


def _named(content: Content, flow: FlowDef, heading: str, locale: str) -> str:
    """A scheme's heading that does not name the scheme ("申请条件自测"), with its name."""
    if flow.kind != "scheme":
        return heading
    names = [alias.lower() for aliases in flow.aliases.values() for alias in aliases]
    if any(n in heading.lower() for n in names):
        return heading
    return f"{plain(content.localise(flow.title, locale))} · {heading}"


def _blocks(step: Step) -> Iterator[tuple[str, Text]]:
    """The texts of a step whose items are passages, each with a name (pairs the locales). A
    form's questions ("联系人怎么称呼？") are not: they tell nothing."""
    if isinstance(step, InputStep | ChoiceStep | SummaryStep):
        return
    text = getattr(step, "text", None)
    if text is not None:
        yield "text", text
    if isinstance(step, PagesStep):
        for i, page in enumerate(step.pages):
            yield f"page{i}", page
    if isinstance(step, CheckStep):
        yield "passed", step.passed


def _by_locale(content: Content, text: Text) -> dict[str, str]:
    if isinstance(text, str):
        return dict.fromkeys(content.locales, text)
    return {locale: text[locale] for locale in content.locales if text.get(locale)}


def passages(content: Content) -> list[Passage]:
    """Every passage of the content's flows, in the order they appear."""
    out: list[Passage] = []
    for flow in content.flows.values():
        for name, step in flow.steps.items():
            if (flow.id, name) != content.start:  # the greeting: what the bot does, not a fact
                out.extend(_of_step(content, flow, name, step))
    return out


def _of_step(content: Content, flow: FlowDef, name: str, step: Step) -> Iterator[Passage]:
    heading: dict[str, str] = {}
    for _block, text in _blocks(step):
        parsed = {locale: _items(block) for locale, block in _by_locale(content, text).items()}
        for locale, (head, _unused) in parsed.items():
            if head and locale not in heading:
                heading[locale] = _named(content, flow, head, locale)
        counts = {len(items) for _head, items in parsed.values()}
        if len(counts) == 1:  # the same shape in every locale: one passage in all of them
            for i in range(counts.pop()):
                texts = {locale: items[i] for locale, (_head, items) in parsed.items()}
                yield Passage(flow.id, name, texts, heading)
        else:
            for locale, (_head, items) in parsed.items():
                for item in items:
                    yield Passage(flow.id, name, {locale: item}, heading)
    if isinstance(step, CheckStep):
        for condition in step.conditions:
            names, questions, fixes = (
                _by_locale(content, condition.name),
                _by_locale(content, condition.question),
                _by_locale(content, condition.fix),
            )
            texts = {
                locale: f"{plain(names[locale])}: {plain(questions.get(locale, ''))} "
                f"{plain(fixes.get(locale, ''))}".strip()
                for locale in names
            }
            yield Passage(flow.id, name, texts, heading)
