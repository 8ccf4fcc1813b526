"""``flows check``: every problem in the content, as ``file:line: message``."""

from __future__ import annotations

import re
import unicodedata
from collections import deque
from collections.abc import Iterator
from pathlib import Path

import jinja2
import zhconv
from jinja2 import meta, nodes

from bot.content.compiled import REQUIRED_TEXTS, Content, split_target, texts_of
from bot.content.loader import Problem, RawContent, SourceFile, read_dir
from bot.content.model import (
    MENU_COMMANDS,
    BranchStep,
    CheckStep,
    ChoiceStep,
    FlowDef,
    HandoffStep,
    InputStep,
    Step,
    SummaryStep,
    Text,
    WeChatMenuEntry,
    menu_label,
)
from bot.engine.render import MESSAGE_LIMIT, html_problems, make_environment, visible_length

LABEL_LIMIT = 64
"""Longer button labels are cut off by Telegram clients."""
MAX_BUTTONS = 60
"""Buttons a step may have; with the payload format this keeps callback_data far below 64 bytes."""
TEMPLATE_NAMES = frozenset({"answers", "origin"})
VERDICT_NAMES = TEMPLATE_NAMES | {"missing"}


INTENT_ACTIONS = frozenset({"consultant", "lead", "menu", "back", "restart", "forget", "privacy"})
"""What a typed request can do (besides ``lang:LOCALE``); see ``CommonDef.intents``."""


class ContentError(Exception):
    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("\n".join(map(str, problems)))
        self.problems = problems


def check_dir(root: Path) -> list[Problem]:
    raw, problems = read_dir(root)
    if not problems:
        problems = check(raw)
    return sorted(set(problems))


def load_content(root: Path) -> Content:
    """Read, check and compile a content folder; raise ContentError listing every problem."""
    raw, problems = read_dir(root)
    if not problems:
        problems = check(raw)
    if problems:
        raise ContentError(sorted(set(problems)))
    return Content(raw)


def check(raw: RawContent) -> list[Problem]:
    return list(_Checker(raw).run())


def _edges(flow: FlowDef, step: Step) -> Iterator[tuple[str, tuple[str | int, ...]]]:
    """Targets a step leads to, with the path of the field naming each."""
    if isinstance(step, BranchStep):
        for i, case in enumerate(step.cases):
            yield case.goto, ("cases", i, "goto")
        yield step.default, ("default",)
        return
    for i, b in enumerate(step.buttons):
        if b.goto is not None:
            yield b.goto, ("buttons", i, "goto")
        if b.flow is not None:
            yield b.flow + ".", ("buttons", i, "flow")
    if isinstance(step, InputStep | ChoiceStep | SummaryStep):
        yield step.next, ("next",)
    if isinstance(step, SummaryStep):
        for i, f in enumerate(step.fields):
            yield f.step, ("fields", i, "step")


class _Checker:
    def __init__(self, raw: RawContent) -> None:
        assert raw.common is not None and raw.common_src is not None
        self.raw = raw
        self.common = raw.common
        self.csrc: SourceFile = raw.common_src
        self.locales = list(raw.common.locales)
        self.env = make_environment()

    def resolve(self, target: str, flow: str) -> tuple[str, str] | None:
        if "." in target:
            fid, sid = split_target(target)
            if fid not in self.raw.flows:
                return None
            f = self.raw.flows[fid][0]
            sid = sid or f.start
            return (fid, sid) if sid in f.steps else None
        f = self.raw.flows[flow][0]
        return (flow, target) if target in f.steps else None

    def run(self) -> Iterator[Problem]:
        yield from self.check_common()
        for fid, (flow, src) in self.raw.flows.items():
            yield from self.check_flow(fid, flow, src)
        yield from self.check_reachability()
        yield from self.check_faq()

    def check_faq(self) -> Iterator[Problem]:
        faq, src = self.raw.faq, self.raw.faq_src
        if faq is None or src is None:
            return
        seen: dict[str, int] = {}
        for i, entry in enumerate(faq.entries):
            base: tuple[str | int, ...] = ("entries", i)
            if entry.id in seen:
                yield Problem(src.rel, src.line(*base, "id"), f"duplicate FAQ id {entry.id!r}")
            seen[entry.id] = i
            topic = (*base, "topic")
            yield from self.check_text(
                src, topic, entry.topic, names=frozenset(), answer_vars=None, label=True
            )
            yield from self.check_text(
                src, (*base, "answer"), entry.answer, names=frozenset(), answer_vars=None
            )
            for loc in self.locales:
                if len(entry.examples.get(loc, [])) < 2:
                    yield Problem(
                        src.rel, src.line(*base, "examples"), f"{entry.id}: give at least 2 {loc} examples"
                    )
            for field_name in ("examples", "keywords"):
                for loc in getattr(entry, field_name):
                    if loc not in self.locales:
                        yield Problem(src.rel, src.line(*base, field_name, loc), f"unknown locale {loc!r}")
            if entry.link is not None and ("." not in entry.link or self.resolve(entry.link, "") is None):
                yield Problem(src.rel, src.line(*base, "link"), f"{entry.id}: unknown step {entry.link!r}")
        for name in faq.smalltalk:
            if name not in seen:
                yield Problem(src.rel, src.line("smalltalk"), f"smalltalk: no entry {name!r}")
        yield from self.check_synonyms()

    def check_synonyms(self) -> Iterator[Problem]:
        """Each synonym leads to a word the content says, which is no synonym itself, and no word
        is read two ways."""
        faq, src = self.raw.faq, self.raw.faq_src
        if faq is None or src is None or not faq.synonyms:
            return
        said = self._said()
        seen: dict[str, str] = {}
        for synonym in faq.synonyms:
            for word in synonym.also:
                seen.setdefault(_folded(word), synonym.say)
        read: dict[str, str] = {}
        for i, synonym in enumerate(faq.synonyms):
            line = src.line("synonyms", i)
            say = _folded(synonym.say)
            if not _says(said, say):
                yield Problem(src.rel, line, f"synonym {synonym.say!r}: the content never says it")
            if say in seen:
                yield Problem(
                    src.rel, line, f"synonym {synonym.say!r} is itself read as {seen[say]!r}: write that"
                )
            for word in synonym.also:
                folded = _folded(word)
                if not folded.strip():
                    yield Problem(src.rel, line, f"synonym {synonym.say!r}: an empty word")
                elif folded in read or folded == say:
                    yield Problem(
                        src.rel, line, f"synonym {word!r} is read as {read.get(folded, word)!r} already"
                    )
                read.setdefault(folded, synonym.say)

    def _said(self) -> str:
        """Every text of the content that a question is matched against, folded, one per line."""
        texts: list[Text] = []
        for flow, _ in self.raw.flows.values():
            texts.append(flow.title)
            for step in flow.steps.values():
                texts.extend(text for _, text in texts_of(step))
        if self.raw.faq is not None:
            for entry in self.raw.faq.entries:
                texts += [entry.topic, entry.answer]
                texts += [x for xs in (*entry.examples.values(), *entry.keywords.values()) for x in xs]
        return "\n".join(_folded(t) for text in texts for t in _localised(text))

    # --- common ---------------------------------------------------------------------------------

    def check_common(self) -> Iterator[Problem]:
        c, src = self.common, self.csrc
        if c.default_locale not in c.locales:
            yield Problem(
                src.rel, src.line("default_locale"), f"default_locale {c.default_locale!r} not in locales"
            )
        for key in ("start", "consultant", "lead_form"):
            target = getattr(c, key)
            if target is None:
                continue
            if "." not in target or self.resolve(target, "") is None:
                yield Problem(src.rel, src.line(key), f"{key}: unknown step {target!r} (write flow.step)")
        for key in REQUIRED_TEXTS:
            if key not in c.texts:
                yield Problem(src.rel, src.line("texts"), f"texts: missing {key!r}, which the engine uses")
        for key, text in c.texts.items():
            yield from self.check_text(src, ("texts", key), text, names=None, answer_vars=None)
        for action in c.intents:
            locale = action.removeprefix("lang:")
            if action not in INTENT_ACTIONS and not (action.startswith("lang:") and locale in c.locales):
                yield Problem(
                    src.rel,
                    src.line("intents", action),
                    f"intents: unknown action {action!r} "
                    f"(one of {', '.join(sorted(INTENT_ACTIONS))}, lang:LOCALE)",
                )
        yield from self.check_wechat_menu()
        for name, text in c.commands.items():
            if not re.fullmatch(r"[a-z0-9_]{1,32}", name):
                yield Problem(src.rel, src.line("commands", name), f"command {name!r}: use a-z, 0-9 and _")
            path = ("commands", name)
            yield from self.check_text(src, path, text, names=frozenset(), answer_vars=None, label=True)

    def check_wechat_menu(self) -> Iterator[Problem]:
        """WeChat's limits (3 entries, 5 sub-entries; names of 16 and 60 bytes) and targets that
        exist."""
        c, src = self.common, self.csrc
        menu = c.wechat_menu
        if len(menu) > 3:
            yield Problem(src.rel, src.line("wechat_menu"), "wechat_menu: at most 3 entries (WeChat's limit)")
        for i, entry in enumerate(menu):
            yield from self._menu_entry(entry, ("wechat_menu", i), top=True)

    def _menu_entry(
        self, entry: WeChatMenuEntry, path: tuple[str | int, ...], *, top: bool
    ) -> Iterator[Problem]:
        c, src = self.common, self.csrc
        line = src.line(*path)
        yield from self.check_text(
            src, (*path, "label"), entry.label, names=frozenset(), answer_vars=None, label=True
        )
        name = menu_label(entry, c.default_locale)
        limit = 16 if top else 60
        if not name.strip() or len(name.encode()) > limit:
            yield Problem(src.rel, line, f"wechat_menu: {name!r} must be 1–{limit} bytes (WeChat's limit)")
        kinds = [k for k in ("flow", "command", "url") if getattr(entry, k)] + (
            ["entries"] if entry.entries else []
        )
        if len(kinds) != 1:
            yield Problem(
                src.rel, line, f"wechat_menu: {name!r} needs exactly one of flow, command, url, entries"
            )
        if entry.entries:
            if not top:
                yield Problem(src.rel, line, f"wechat_menu: {name!r}: only a top entry has entries")
            if len(entry.entries) > 5:
                yield Problem(src.rel, line, f"wechat_menu: {name!r}: at most 5 entries (WeChat's limit)")
            for j, sub in enumerate(entry.entries):
                yield from self._menu_entry(sub, (*path, "entries", j), top=False)
        if entry.flow is not None and entry.flow not in self.raw.flows:
            yield Problem(src.rel, line, f"wechat_menu: {name!r}: unknown flow {entry.flow!r}")
        if entry.command is not None:
            command, _, arg = entry.command.partition(" ")
            if command not in MENU_COMMANDS or (command == "lang" and arg not in c.locales):
                yield Problem(
                    src.rel,
                    line,
                    f"wechat_menu: {name!r}: unknown command {entry.command!r} "
                    f"(one of {', '.join(sorted(MENU_COMMANDS))}; lang LOCALE)",
                )
        if entry.url is not None and not entry.url.startswith(("https://", "http://")):
            yield Problem(src.rel, line, f"wechat_menu: {name!r}: the url must start with https://")

    # --- flows ----------------------------------------------------------------------------------

    def check_flow(self, fid: str, flow: FlowDef, src: SourceFile) -> Iterator[Problem]:
        if flow.start not in flow.steps:
            yield Problem(src.rel, src.line("start"), f"start: no step {flow.start!r} in flow {fid!r}")
        yield from self.check_text(src, ("title",), flow.title, names=frozenset(), answer_vars=set())
        answer_vars = self.answer_vars(flow)
        for sid, step in flow.steps.items():
            base: tuple[str | int, ...] = ("steps", sid)
            for target, path in _edges(flow, step):
                if self.resolve(target, fid) is None:
                    yield Problem(src.rel, src.line(*base, *path), f"step {sid!r}: unknown target {target!r}")
            yield from self.check_step(fid, sid, step, src, base, answer_vars)

    def answer_vars(self, flow: FlowDef) -> set[str]:
        names: set[str] = set()
        for step in flow.steps.values():
            if isinstance(step, InputStep | ChoiceStep):
                names.add(step.var)
            if isinstance(step, CheckStep):
                names.update(c.id for c in step.conditions)
            if not isinstance(step, BranchStep):
                for b in step.buttons:
                    names.update(b.set)
        return names

    def check_step(
        self,
        fid: str,
        sid: str,
        step: Step,
        src: SourceFile,
        base: tuple[str | int, ...],
        answer_vars: set[str],
    ) -> Iterator[Problem]:
        if isinstance(step, BranchStep):
            for i, case in enumerate(step.cases):
                yield from self.check_expression(src, (*base, "cases", i, "when"), case.when, answer_vars)
            yield from self.check_branch_cycle(fid, sid, src, base)
            return
        for i, b in enumerate(step.buttons):
            chosen = [k for k in ("goto", "flow", "url") if getattr(b, k) is not None]
            if len(chosen) != 1:
                yield Problem(
                    src.rel,
                    src.line(*base, "buttons", i),
                    f"step {sid!r}: a button needs one of goto, flow, url",
                )
            if b.url is not None and not b.url.startswith(("https://", "http://", "tg://")):
                yield Problem(src.rel, src.line(*base, "buttons", i, "url"), f"not a link: {b.url!r}")
            if b.url is not None and b.set:
                yield Problem(
                    src.rel, src.line(*base, "buttons", i, "set"), "a link button cannot set answers"
                )
        if len(step.buttons) > MAX_BUTTONS:
            yield Problem(src.rel, src.line(*base, "buttons"), f"more than {MAX_BUTTONS} buttons")
        if step.text is None and not isinstance(step, CheckStep):
            yield Problem(src.rel, src.line(*base), f"step {sid!r}: text is missing")
        if (
            not step.nav
            and not step.buttons
            and not isinstance(step, InputStep | CheckStep | ChoiceStep | SummaryStep)
        ):
            yield Problem(src.rel, src.line(*base), f"step {sid!r}: a dead end (no buttons and nav: false)")
        if (
            isinstance(step, InputStep)
            and step.min is not None
            and step.max is not None
            and step.min > step.max
        ):
            yield Problem(src.rel, src.line(*base, "min"), "min is greater than max")
        if isinstance(step, CheckStep):
            seen: set[str] = set()
            for i, cond in enumerate(step.conditions):
                if cond.id in seen:
                    yield Problem(
                        src.rel, src.line(*base, "conditions", i, "id"), f"duplicate condition {cond.id!r}"
                    )
                seen.add(cond.id)
        if isinstance(step, SummaryStep):
            for i, f in enumerate(step.fields):
                if f.var not in answer_vars:
                    yield Problem(
                        src.rel, src.line(*base, "fields", i, "var"), f"no step sets answers.{f.var}"
                    )
        if isinstance(step, ChoiceStep) and len({o.value for o in step.options}) != len(step.options):
            yield Problem(
                src.rel, src.line(*base, "options"), f"step {sid!r}: two options have the same value"
            )
        if isinstance(step, HandoffStep) and not step.effect.isidentifier():
            yield Problem(src.rel, src.line(*base, "effect"), f"effect must be a name, not {step.effect!r}")
        for path, text in texts_of(step):
            is_label = path[0] in {"buttons", "options", "confirm", "fields"}
            names = VERDICT_NAMES if path[0] in {"passed", "failed"} else TEMPLATE_NAMES
            yield from self.check_text(
                src, (*base, *path), text, names=names, answer_vars=answer_vars, label=is_label
            )

    def check_branch_cycle(
        self, fid: str, sid: str, src: SourceFile, base: tuple[str | int, ...]
    ) -> Iterator[Problem]:
        seen = {(fid, sid)}
        todo = [(fid, sid)]
        while todo:
            f, s = todo.pop()
            step = self.raw.flows[f][0].steps.get(s)
            if not isinstance(step, BranchStep):
                continue
            for target in [c.goto for c in step.cases] + [step.default]:
                nxt = self.resolve(target, f)
                if nxt == (fid, sid):
                    yield Problem(src.rel, src.line(*base), f"branch {sid!r} can loop back to itself")
                    return
                if nxt is not None and nxt not in seen:
                    seen.add(nxt)
                    todo.append(nxt)

    # --- texts ----------------------------------------------------------------------------------

    def check_text(
        self,
        src: SourceFile,
        path: tuple[str | int, ...],
        text: Text,
        *,
        names: frozenset[str] | None,
        answer_vars: set[str] | None,
        label: bool = False,
    ) -> Iterator[Problem]:
        if isinstance(text, dict):
            for loc in self.locales:
                if not (text.get(loc) or "").strip():
                    yield Problem(src.rel, src.line(*path), f"missing translation {loc!r}")
            for loc in text:
                if loc not in self.locales:
                    yield Problem(src.rel, src.line(*path, loc), f"unknown locale {loc!r}")
            items = [(loc, (*path, loc), value) for loc, value in text.items()]
        else:
            items = [("", path, text)]
        for _, vpath, source in items:
            first_line = src.value_line(*vpath)
            try:
                ast = self.env.parse(source)
            except jinja2.TemplateSyntaxError as e:
                yield Problem(src.rel, first_line + (e.lineno or 1) - 1, f"template: {e.message}")
                continue
            if names is not None:
                for name in sorted(meta.find_undeclared_variables(ast) - names):
                    yield Problem(src.rel, first_line, f"template: undefined variable {name!r}")
            if answer_vars is not None:
                for attr in sorted(_answer_refs(ast) - answer_vars):
                    yield Problem(src.rel, first_line, f"template: no step sets answers.{attr}")
            static = _static_text(ast)
            if not label:  # labels are plain text in Telegram
                for msg in html_problems(static):
                    yield Problem(src.rel, first_line, f"HTML: {msg}")
            size = visible_length(static)
            if label and size > LABEL_LIMIT:
                yield Problem(src.rel, first_line, f"button label longer than {LABEL_LIMIT} characters")
            elif size > MESSAGE_LIMIT:
                yield Problem(
                    src.rel,
                    first_line,
                    f"text of {size} characters exceeds {MESSAGE_LIMIT}: use a pages step",
                )

    def check_expression(
        self, src: SourceFile, path: tuple[str | int, ...], expr: str, answer_vars: set[str]
    ) -> Iterator[Problem]:
        try:
            ast = self.env.parse("{{ " + expr + " }}")
        except jinja2.TemplateSyntaxError as e:
            yield Problem(src.rel, src.line(*path), f"condition: {e.message}")
            return
        for name in sorted(meta.find_undeclared_variables(ast) - {"answers"}):
            yield Problem(src.rel, src.line(*path), f"condition: undefined variable {name!r}")
        for attr in sorted(_answer_refs(ast) - answer_vars):
            yield Problem(src.rel, src.line(*path), f"condition: no step sets answers.{attr}")

    # --- reachability ---------------------------------------------------------------------------

    def check_reachability(self) -> Iterator[Problem]:
        starts = [self.resolve(t, "") for t in (self.common.start, self.common.consultant)]
        seen: set[tuple[str, str]] = set()
        queue = deque(s for s in starts if s is not None)
        seen.update(queue)
        while queue:
            fid, sid = queue.popleft()
            flow = self.raw.flows[fid][0]
            for target, _ in _edges(flow, flow.steps[sid]):
                nxt = self.resolve(target, fid)
                if nxt is not None and nxt not in seen:
                    seen.add(nxt)
                    queue.append(nxt)
        for fid, (flow, src) in self.raw.flows.items():
            unreached = [sid for sid in flow.steps if (fid, sid) not in seen]
            if len(unreached) == len(flow.steps):
                yield Problem(src.rel, src.line("id"), f"flow {fid!r} cannot be reached from the main menu")
                continue
            for sid in unreached:
                yield Problem(src.rel, src.line("steps", sid), f"step {sid!r} cannot be reached")


_DICT_METHODS = frozenset({"get", "items", "keys", "values"})


def _answer_refs(ast: nodes.Template) -> set[str]:
    refs: set[str] = set()
    for node in ast.find_all(nodes.Getattr):
        assert isinstance(node, nodes.Getattr)
        if (
            isinstance(node.node, nodes.Name)
            and node.node.name == "answers"
            and node.attr not in _DICT_METHODS
        ):
            refs.add(node.attr)
    for item in ast.find_all(nodes.Getitem):
        assert isinstance(item, nodes.Getitem)
        if (
            isinstance(item.node, nodes.Name)
            and item.node.name == "answers"
            and isinstance(item.arg, nodes.Const)
        ):
            refs.add(str(item.arg.value))
    return refs


def _static_text(ast: nodes.Template) -> str:
    """The literal text of a template (what content authors wrote, without ``{{ }}`` parts)."""
    return "".join(str(n.data) for n in ast.find_all(nodes.TemplateData))


def _localised(text: Text) -> list[str]:
    return [text] if isinstance(text, str) else list(text.values())


def _folded(text: str) -> str:
    """As a question is read: NFKC, Simplified characters, lower case."""
    return str(zhconv.convert(unicodedata.normalize("NFKC", text), "zh-cn")).lower()


def _says(said: str, word: str) -> bool:
    """Whether the folded content ``said`` holds ``word`` (an English word as a whole word)."""
    if word.isascii():
        return re.search(rf"(?<![a-z0-9]){re.escape(word)}(?![a-z0-9])", said) is not None
    return word in said
