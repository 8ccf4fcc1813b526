"""Content ready to serve: validated definitions with every template compiled once."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from typing import Any

import jinja2
from jinja2 import meta

from bot.content.loader import RawContent
from bot.content.model import (
    BranchStep,
    CheckStep,
    ChoiceStep,
    FaqEntry,
    FlowDef,
    InputStep,
    PagesStep,
    Step,
    SummaryStep,
    Text,
)
from bot.engine.render import make_environment

log = logging.getLogger(__name__)

REQUIRED_TEXTS = (
    "back",
    "menu",
    "consultant",
    "yes",
    "no",
    "skip",
    "prev_page",
    "next_page",
    "all_pages",
    "page_of",
    "question_of",
    "expired",
    "unsupported",
    "edited",
    "choose",
    "retry_exhausted",
    "cancelled",
    "restarted",
    "lang_prompt",
    "lang_set",
    "help",
    "unknown_command",
    "step_gone",
    "error_text",
    "error_integer",
    "error_phone",
    "error_email",
    "done",
    "change",
    "contact_button",
    "contact_hint",
    "contact_received",
    "lead_saved",
    "save_failed",
    "staff_alert",
    "staff_take",
    "staff_contacted",
    "staff_taken_by",
    "staff_marked_contacted",
    "privacy",
    "forget_confirm",
    "forget_yes",
    "forget_no",
    "forgotten",
    "forget_kept",
    "none",
    "suggest",
    "off_topic",
    "faq_more",
    "faq_lead",
)
"""Common texts the engine itself uses; ``flows check`` insists on each."""

LANGUAGE_NAMES = {"zh": "中文", "en": "English"}


def texts_of(step: Step) -> Iterator[tuple[tuple[str | int, ...], Text]]:
    """Every localised text of a step with its path inside the step (for line numbers)."""
    if isinstance(step, BranchStep):
        return
    if step.text is not None:
        yield ("text",), step.text
    for i, b in enumerate(step.buttons):
        yield ("buttons", i, "label"), b.label
    if isinstance(step, PagesStep):
        for i, p in enumerate(step.pages):
            yield ("pages", i), p
    elif isinstance(step, CheckStep):
        for i, c in enumerate(step.conditions):
            yield ("conditions", i, "name"), c.name
            yield ("conditions", i, "question"), c.question
            yield ("conditions", i, "fix"), c.fix
        yield ("passed",), step.passed
        yield ("failed",), step.failed
    elif isinstance(step, InputStep) and step.error is not None:
        yield ("error",), step.error
    elif isinstance(step, ChoiceStep):
        for i, o in enumerate(step.options):
            yield ("options", i, "label"), o.label
    elif isinstance(step, SummaryStep):
        for i, f in enumerate(step.fields):
            yield ("fields", i, "label"), f.label
        yield ("confirm",), step.confirm


def split_target(target: str) -> tuple[str, str]:
    flow, _, step = target.partition(".")
    return flow, step


class Content:
    """The loaded content. Immutable once built; a reload builds a new one."""

    def __init__(self, raw: RawContent) -> None:
        assert raw.common is not None
        common = raw.common
        self.root = raw.root
        self.version = raw.version
        self.locales = list(common.locales)
        self.default_locale = common.default_locale
        self.start = split_target(common.start)
        self.consultant = split_target(common.consultant)
        self.lead_form = split_target(common.lead_form) if common.lead_form else None
        self.texts: dict[str, Text] = dict(common.texts)
        self.commands: dict[str, Text] = dict(common.commands)
        self.intents: dict[str, dict[str, list[str]]] = dict(common.intents)
        self.wechat_menu = list(common.wechat_menu)
        """WeChat's custom menu (see ``bot.wechat.menu``)."""
        self.flows: dict[str, FlowDef] = {fid: f for fid, (f, _) in raw.flows.items()}
        self.faq: list[FaqEntry] = list(raw.faq.entries) if raw.faq is not None else []
        self.smalltalk: frozenset[str] = frozenset(raw.faq.smalltalk) if raw.faq is not None else frozenset()
        self.out_of_scope: list[str] = (
            [x for xs in raw.faq.out_of_scope.values() for x in xs] if raw.faq is not None else []
        )
        self.synonyms: dict[str, str] = (
            {also: s.say for s in raw.faq.synonyms for also in s.also} if raw.faq is not None else {}
        )
        """Each word prospects say instead of the content's (计量器具), and the content's (测量设备)."""
        self._env = make_environment()
        self._lenient = jinja2.Environment(autoescape=True, undefined=jinja2.ChainableUndefined)
        self._templates: dict[str, jinja2.Template] = {}
        self._static: dict[str, str] = {}
        """Texts that use no variable, rendered once (most of them): a turn then renders little."""
        self._expressions: dict[str, Any] = {}
        self._memo: dict[tuple[Any, ...], str] = {}
        for text in self.texts.values():
            self._compile(text)
        for entry in self.faq:
            self._compile(entry.topic)
            self._compile(entry.answer)
        for flow in self.flows.values():
            self._compile(flow.title)
            for step in flow.steps.values():
                for _, text in texts_of(step):
                    self._compile(text)
                if isinstance(step, BranchStep):
                    for case in step.cases:
                        self._expressions[case.when] = self._env.compile_expression(case.when)

    def _compile(self, text: Text) -> None:
        sources = [text] if isinstance(text, str) else list(text.values())
        for src in sources:
            if src not in self._templates:
                self._templates[src] = template = self._env.from_string(src)
                if not meta.find_undeclared_variables(self._env.parse(src)):
                    self._static[src] = template.render().strip()

    # --- lookups -------------------------------------------------------------------------------

    def step(self, flow: str, step: str) -> Step | None:
        f = self.flows.get(flow)
        return None if f is None else f.steps.get(step)

    def resolve(self, target: str, current_flow: str) -> tuple[str, str] | None:
        """``step`` (in the current flow), ``flow.step`` or ``flow.`` (its start)."""
        if "." in target:
            flow, step = split_target(target)
            f = self.flows.get(flow)
            if f is None:
                return None
            step = step or f.start
            return (flow, step) if step in f.steps else None
        f = self.flows.get(current_flow)
        if f is not None and target in f.steps:
            return (current_flow, target)
        return None

    def locale_for(self, language_code: str | None) -> str:
        """Telegram's ``language_code``: zh-* gives Chinese, anything else English (if offered)."""
        code = (language_code or "").lower().split("-")[0]
        if code in self.locales:
            return code
        if not language_code:
            return self.default_locale
        return "en" if "en" in self.locales else self.default_locale

    # --- rendering -----------------------------------------------------------------------------

    def localise(self, text: Text, locale: str) -> str:
        if isinstance(text, str):
            return text
        return text.get(locale) or text.get(self.default_locale) or next(iter(text.values()))

    def render(self, text: Text, locale: str, context: Mapping[str, Any]) -> str:
        src = self.localise(text, locale)
        static = self._static.get(src)
        if static is not None:
            return static
        template = self._templates.get(src)
        if template is None:  # not from the content files (should not happen)
            template = self._env.from_string(src)
        try:
            return template.render(context).strip()
        except jinja2.TemplateError:
            # flows check rejects undefined variables; an answer skipped at run time renders empty.
            log.warning("template fell back to lenient rendering: %.60r", src)
            return self._lenient.from_string(src).render(context).strip()

    def is_static(self, text: Text, locale: str) -> bool:
        """Whether the text uses no variable (so its rendering never changes)."""
        return self.localise(text, locale) in self._static

    def t(self, key: str, locale: str, **context: Any) -> str:
        """A common text. Texts that take only numbers (page 2 of 3...) are remembered: they recur
        at every turn, while names and reference numbers would only fill the memo."""
        if not all(type(v) is int for v in context.values()):
            return self.render(self.texts[key], locale, context)
        memo_key = (key, locale, *context.items())
        hit = self._memo.get(memo_key)
        if hit is None:
            hit = self.render(self.texts[key], locale, context)
            if len(self._memo) < 10_000:
                self._memo[memo_key] = hit
        return hit

    def evaluate(self, expression: str, context: Mapping[str, Any]) -> bool:
        fn = self._expressions.get(expression) or self._env.compile_expression(expression)
        try:
            return bool(fn(**context))
        except jinja2.UndefinedError:
            return False
