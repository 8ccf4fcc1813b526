"""The flow engine: (content, state, event) -> (replies, new state, effects).

Pure: no I/O and no Telegram import, so Telegram, the terminal simulator and the tests share it.
The input state is never mutated.
"""

from __future__ import annotations

import functools
import html
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from markupsafe import Markup, escape

from bot.content.compiled import LANGUAGE_NAMES, Content, texts_of
from bot.content.model import (
    BranchStep,
    CheckStep,
    ChoiceStep,
    HandoffStep,
    InputStep,
    PagesStep,
    Step,
    SummaryStep,
)
from bot.engine.events import (
    HANDOFFS,
    Button,
    Command,
    Effect,
    EnquirySubmitted,
    Event,
    ForgetRequested,
    LeadSubmitted,
    LiveChatEnded,
    LiveChatStarted,
    LiveClosed,
    LiveRelay,
    Press,
    Reply,
    Result,
    SharedContact,
    TextIn,
    Unsupported,
)
from bot.engine.intents import Intents
from bot.engine.render import split_message
from bot.engine.state import HISTORY_LIMIT, Answer, State
from bot.engine.validators import validate
from bot.faq.matcher import PASSAGE_PREFIX, FaqMatcher

_QUESTION = re.compile(
    r"[?？]|吗|呢|多少|怎么|怎样|什么|如何|能不能|可不可以|可以|是否|多久|多长|哪|为什么|要不要|有没有"
    r"|^(how|what|why|when|where|which|who|can|could|do|does|is|are|should|will|would)\b",
    re.IGNORECASE,
)


def looks_like_question(text: str) -> bool:
    """Whether typed text reads as a question (rather than, say, a company name)."""
    return bool(_QUESTION.search(text.strip()))


VIEW_CACHE = 10_000
"""Views kept ready (about a kilobyte each); beyond this, new ones are built each time."""
MENU_RETRY_CAP = 3
"""Unrecognised texts in a row at a menu before the bot offers a consultant."""
QUESTION_LIMIT = 500
FIELD_ACCEPT = 0.6
"""Confidence an FAQ answer needs to interrupt a form field (the text may be the answer)."""
INPUT_LIMIT = 4096
"""Longer texts are cut before matching or validation."""
BRANCH_DEPTH = 16

_YES = frozenset({"y", "yes", "yep", "yeah", "是", "是的", "对", "有", "满足", "已", "ok", "1"})
_NO = frozenset({"n", "no", "nope", "否", "不", "不是", "没有", "无", "没", "未", "不满足", "0"})

Row = list[tuple[str, str | None, str | None]]
"""A keyboard row: (label, action code, url)."""


_FOLD = re.compile(r"[\W_]+")


def normalise(text: str) -> str:
    """Case, spaces, punctuation and emoji folded away, for matching typed text to labels."""
    return _FOLD.sub("", text.casefold())


_normalise_label = functools.lru_cache(maxsize=4096)(normalise)


@functools.lru_cache(maxsize=4096)
def _label_words(label: str) -> tuple[str, ...]:
    return tuple(w for w in re.split(r"[\W_]+", label.casefold()) if w)


def _words_in(typed: str, words: tuple[str, ...]) -> bool:
    """Whether every word typed is one of the label's words."""
    wanted = _label_words(typed)
    return bool(wanted) and all(w in words for w in wanted)


"""Labels recur at every turn; typed text does not, so only labels are remembered."""


def _b36(n: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while True:
        n, r = divmod(n, 36)
        out = digits[r] + out
        if n == 0:
            return out


@dataclass
class _Turn:
    st: State
    replies: list[Reply] = field(default_factory=list)
    effects: list[Effect] = field(default_factory=list)
    notes: list[tuple[str, str]] = field(default_factory=list)
    closing: bool = False
    """Staff ended the live chat: leaving its step is not the prospect leaving."""


class Engine:
    def __init__(
        self,
        content: Content,
        *,
        faq: FaqMatcher | None = None,
        default_locale: str | None = None,
        retention_days: int = 30,
    ) -> None:
        self.content = content
        self.retention_days = retention_days
        """Said in the /privacy text: idle conversations are deleted after this many days."""
        self.faq = faq if faq is not None else (FaqMatcher.of(content) if content.faq else None)
        """Answers free questions; built from the content's FAQ and its flows' passages unless given."""
        self.intents = Intents(content.intents)
        """Typed requests that do what a button does (at a menu)."""
        self.default_locale = default_locale if default_locale in content.locales else content.default_locale
        self._entries = [*content.faq, *(self.faq.passage_entries if self.faq is not None else ())]
        """What a free question may be answered with: the FAQ's entries, then the passages."""
        self._faq_index = {e.id: i for i, e in enumerate(self._entries)}
        self._labels: dict[str, dict[str, str]] = {}
        self._rows_cache: dict[tuple[str, str, str], list[Row]] = {}
        self._views: dict[tuple[str, str, int, str, bool, int], tuple[Reply, ...]] = {}
        """Views that are the same for every prospect at that point (most are): built once."""
        self._static_steps: dict[tuple[str, str, str, int], bool] = {}

    # --- public ---------------------------------------------------------------------------------

    def new_state(self, locale: str | None = None) -> State:
        flow, step = self.content.start
        loc = locale if locale in self.content.locales else self.content.default_locale
        return State(
            locale=loc or self.content.default_locale, flow=flow, step=step, version=self.content.version
        )

    def handle(self, state: State | None, event: Event, *, language_code: str | None = None) -> Result:
        if state is None:
            turn = _Turn(self.new_state(self.locale_for(language_code)))
            if not (isinstance(event, Command) and event.name == "start"):
                # A first contact that is not /start: greet with the main menu, then answer.
                if isinstance(event, Press):  # a button from a conversation we no longer have
                    self._notice(turn, self._t(turn, "expired"))
                    self._show(turn)
                    return Result(turn.replies, turn.st, turn.effects, turn.notes)
                self._show(turn)
        else:
            turn = _Turn(state.clone())
            self._sync(turn)
        if isinstance(event, Command):
            self._command(turn, event)
        elif isinstance(event, Press):
            self._press(turn, event.payload)
        elif isinstance(event, TextIn):
            self._text(turn, event.text[:INPUT_LIMIT])
        elif isinstance(event, Unsupported):
            if event.kind != "edited" and self.in_live_chat(turn.st):
                turn.effects.append(LiveRelay(event.kind))
            else:
                self._hint(turn, "edited" if event.kind == "edited" else "unsupported")
        elif isinstance(event, SharedContact):
            self._contact(turn, event.phone)
        elif isinstance(event, LiveClosed):
            self._live_closed(turn)
        return Result(turn.replies, turn.st, turn.effects, turn.notes)

    def in_live_chat(self, state: State | None) -> bool:
        """Whether the prospect is talking to a person (what they send goes to staff)."""
        if state is None:
            return False
        step = self.content.step(state.flow, state.step)
        return isinstance(step, HandoffStep) and step.live

    def locale_for(self, language_code: str | None) -> str:
        """Telegram's ``language_code``: zh-* gives Chinese, anything else English (if offered)."""
        if not language_code:
            return self.default_locale
        return self.content.locale_for(language_code)

    def awaiting_input(self, state: State | None) -> bool:
        """Whether the current step asks for a typed answer (so a number typed is an answer)."""
        return state is not None and isinstance(self.content.step(state.flow, state.step), InputStep)

    def asks_for_contact(self, state: State) -> bool:
        """Whether the current step offers Telegram's "share my phone number" button."""
        step = self.content.step(state.flow, state.step)
        return isinstance(step, InputStep) and step.share_contact

    def age(self, state: State | None, payload: str) -> int | None:
        """How many views ago a button was made: 0 for the current view, None if unknown."""
        if state is None or state.version != self.content.version:
            return None
        try:
            seq = int(payload.partition(":")[0], 36)
        except ValueError:
            return None
        return state.seq - seq if seq <= state.seq else None

    # --- state upkeep ---------------------------------------------------------------------------

    def _sync(self, turn: _Turn) -> None:
        """Bring a state made with other content (or a bad locale) in line with this content."""
        st, c = turn.st, self.content
        if st.locale not in c.locales:
            st.locale = c.default_locale
        if st.version == c.version:
            return
        st.version = c.version
        st.seq += 1  # buttons made with other content are stale
        st.history = [h for h in st.history if self._valid_position(*h)]
        if not self._valid_position(st.flow, st.step, st.sub):
            self._notice(turn, self._t(turn, "step_gone"))
            flow = c.flows.get(st.flow)
            if flow is not None and st.step in flow.steps:
                st.sub = 0
            elif flow is not None:
                self._set_position(turn, st.flow, flow.start)
            else:
                self._set_position(turn, *c.start)

    def _valid_position(self, flow: str, step: str, sub: int) -> bool:
        s = self.content.step(flow, step)
        if s is None or isinstance(s, BranchStep):
            return False
        if isinstance(s, PagesStep):
            return 0 <= sub <= len(s.pages)
        if isinstance(s, CheckStep):
            return 0 <= sub <= len(s.conditions)
        return sub == 0

    def _answers(self, st: State, flow: str | None = None) -> dict[str, Answer]:
        return st.answers.setdefault(flow or st.flow, {})

    # --- moves ----------------------------------------------------------------------------------

    def _goto(self, turn: _Turn, flow: str, step: str, *, push: bool = True, emit: bool = True) -> None:
        """Move to a step (through branches), remember where we were, and show it."""
        st, c = turn.st, self.content
        for _ in range(BRANCH_DEPTH):
            s = c.step(flow, step)
            if not isinstance(s, BranchStep):
                break
            ctx = {"answers": st.answers.get(flow, {})}
            target = next((case.goto for case in s.cases if c.evaluate(case.when, ctx)), s.default)
            resolved = c.resolve(target, flow)
            if resolved is None:  # flows check prevents this
                flow, step = c.start
                break
            flow, step = resolved
        if push and (flow, step, 0) != st.position:
            st.history.append(st.position)
            del st.history[:-HISTORY_LIMIT]
        self._set_position(turn, flow, step)
        s = c.step(flow, step)
        if isinstance(s, CheckStep):
            answers = self._answers(st, flow)
            for cond in s.conditions:
                answers.pop(cond.id, None)
        if isinstance(s, ChoiceStep) and s.prefill == "origin":
            answers = self._answers(st, flow)
            if s.var not in answers and st.origin in {o.value for o in s.options}:
                answers[s.var] = [st.origin] if s.multiple else st.origin
        if isinstance(s, HandoffStep) and emit:
            turn.effects.append(self._effect(st, s))
            self._answers(st, flow).pop("question", None)  # handed over with this enquiry
        self._show(turn)

    def _set_position(self, turn: _Turn, flow: str, step: str, sub: int = 0) -> None:
        st = turn.st
        if (st.flow, st.step) != (flow, step) and self.in_live_chat(st) and not turn.closing:
            turn.effects.append(LiveChatEnded(st.flow, st.step))
        st.flow, st.step, st.sub = flow, step, sub
        st.seq += 1
        st.retries = 0
        if st.ret is not None and not st.ret.startswith(flow + "."):
            st.ret = None  # left the form whose summary asked for a change
        f = self.content.flows.get(flow)
        if f is not None and f.kind == "scheme":
            st.origin = flow

    def _move_sub(self, turn: _Turn, sub: int, *, push: bool) -> None:
        st = turn.st
        if push:
            st.history.append(st.position)
            del st.history[:-HISTORY_LIMIT]
        self._set_position(turn, st.flow, st.step, sub)
        self._show(turn)

    def _back(self, turn: _Turn) -> None:
        st = turn.st
        while st.history:
            flow, step, sub = st.history.pop()
            if self._valid_position(flow, step, sub):
                self._set_position(turn, flow, step, sub)
                self._show(turn)
                return
        self._goto(turn, *self.content.start, push=False)

    def _effect(self, st: State, step: HandoffStep) -> Effect:
        origin = st.origin
        effect = HANDOFFS[step.effect](
            flow=st.flow,
            step=st.step,
            answers=dict(st.answers.get(st.flow, {})),
            origin=origin,
            origin_answers=dict(st.answers.get(origin, {})) if origin else {},
            locale=st.locale,
            content_version=self.content.version,
        )
        assert isinstance(effect, LeadSubmitted | EnquirySubmitted | LiveChatStarted)  # for mypy
        return effect

    # --- events ---------------------------------------------------------------------------------

    def _command(self, turn: _Turn, cmd: Command) -> None:
        st, c = turn.st, self.content
        name = cmd.name.lower()
        if name == "start":
            st.answers.clear()
            st.history.clear()
            target = c.resolve(cmd.arg.strip() + ".", "") if cmd.arg.strip() else None
            self._goto(turn, *(target or c.start), push=False)
        elif name == "menu":
            self._goto(turn, *c.start)
        elif name == "back":
            self._back(turn)
        elif name == "restart":
            st.answers.pop(st.flow, None)
            self._notice(turn, self._t(turn, "restarted"))
            flow = c.flows[st.flow]
            self._goto(turn, st.flow, flow.start)
        elif name == "cancel":
            st.answers.pop(st.flow, None)
            st.history.clear()
            self._notice(turn, self._t(turn, "cancelled"))
            self._goto(turn, *c.start, push=False)
        elif name == "lang":
            arg = cmd.arg.strip().lower()
            if arg in c.locales:
                self._set_locale(turn, arg)
            else:
                row: Row = [(LANGUAGE_NAMES.get(loc, loc), "l" + loc, None) for loc in c.locales]
                turn.replies.append(
                    Reply(self._t(turn, "lang_prompt"), self._keyboard(turn, [row]), "notice")
                )
        elif name == "help":
            self._hint(turn, "help")
        elif name == "privacy":
            turn.replies.append(Reply(self._t(turn, "privacy", days=self.retention_days), (), "notice"))
        elif name == "forget":
            row = [(self._label(turn, "forget_yes"), "F", None), (self._label(turn, "forget_no"), "K", None)]
            turn.replies.append(Reply(self._t(turn, "forget_confirm"), self._keyboard(turn, [row]), "notice"))
        elif name == "consultant":  # what its button does (a WeChat menu entry sends it)
            self._act(turn, "c")
        elif name == "details" and c.lead_form is not None:
            self._goto(turn, *c.lead_form)
        else:
            self._hint(turn, "unknown_command")

    def _set_locale(self, turn: _Turn, locale: str) -> None:
        turn.st.locale = locale
        turn.st.seq += 1  # buttons in the other language are stale
        self._notice(turn, self._t(turn, "lang_set"))
        self._show(turn)

    def _press(self, turn: _Turn, payload: str) -> None:
        seq, _, code = payload.partition(":")
        if seq != _b36(turn.st.seq) or not code:
            self._notice(turn, self._t(turn, "expired"))
            self._show(turn)
            return
        if not self._act(turn, code):
            self._notice(turn, self._t(turn, "expired"))
            self._show(turn)

    def _act(self, turn: _Turn, code: str) -> bool:
        """Carry out a button's action; False if the code does not fit the current step."""
        st, c = turn.st, self.content
        step = c.step(st.flow, st.step)
        if step is None:
            return False
        op, arg = code[0], code[1:]
        if op == "b":
            self._back(turn)
        elif op == "m":
            self._goto(turn, *c.start)
        elif op == "c":
            self._goto(turn, *c.consultant)
        elif op == "l" and arg in c.locales:
            self._set_locale(turn, arg)
        elif (
            op == "g"
            and arg.isdigit()
            and not isinstance(step, BranchStep)
            and int(arg) < len(step.buttons)
            and not (isinstance(step, CheckStep) and st.sub < len(step.conditions))
        ):
            button = step.buttons[int(arg)]
            if button.set:
                self._answers(st).update(button.set)
            target = c.resolve(button.flow + "." if button.flow else button.goto or "", st.flow)
            if target is None:
                return False
            self._goto(turn, *target)
        elif op == "p" and arg.isdigit() and isinstance(step, PagesStep) and int(arg) < len(step.pages):
            self._move_sub(turn, int(arg), push=False)
        elif op == "a" and isinstance(step, PagesStep):
            self._move_sub(turn, len(step.pages), push=False)
        elif op in "yn" and not arg and isinstance(step, CheckStep) and st.sub < len(step.conditions):
            self._answers(st)[step.conditions[st.sub].id] = op == "y"
            self._move_sub(turn, st.sub + 1, push=True)
        elif op == "s" and isinstance(step, InputStep | ChoiceStep) and step.optional:
            self._answered(
                turn, step.var, [] if isinstance(step, ChoiceStep) and step.multiple else "", step.next
            )
        elif op == "o" and arg.isdigit() and isinstance(step, ChoiceStep) and int(arg) < len(step.options):
            value = step.options[int(arg)].value
            if not step.multiple:
                self._answered(turn, step.var, value, step.next)
                return True
            chosen = self._answers(st).get(step.var)
            chosen = list(chosen) if isinstance(chosen, list) else []
            chosen = [v for v in chosen if v != value] if value in chosen else [*chosen, value]
            self._answers(st)[step.var] = [o.value for o in step.options if o.value in chosen]
            st.seq += 1  # the same step, shown again with the new ticks
            self._show(turn)
        elif op == "d" and isinstance(step, ChoiceStep) and step.multiple:
            chosen = self._answers(st).get(step.var)
            if not chosen and not step.optional:
                self._hint(turn, "choose")
                return True
            self._answered(turn, step.var, chosen if isinstance(chosen, list) else [], step.next)
        elif op == "e" and arg.isdigit() and isinstance(step, SummaryStep) and int(arg) < len(step.fields):
            target = c.resolve(step.fields[int(arg)].step, st.flow)
            if target is None:
                return False
            self._goto(turn, *target)
            st.ret = f"{st.history[-1][0]}.{st.history[-1][1]}" if st.history else None
        elif op == "k" and isinstance(step, SummaryStep):
            self._goto_target(turn, step.next)
        elif op == "f" and arg.isdigit() and int(arg) < len(self._entries):
            self._faq_reply(turn, int(arg))
        elif op == "j" and arg.isdigit() and int(arg) < len(self._entries) and self._entries[int(arg)].link:
            self._goto_target(turn, self._entries[int(arg)].link or "")
        elif op == "L" and c.lead_form is not None:
            self._goto(turn, *c.lead_form)
        elif op == "F":
            # /forget confirmed: the channel deletes what it keeps; the conversation starts afresh.
            turn.effects.append(ForgetRequested(st.locale))
            turn.st = self.new_state(st.locale)
            turn.st.seq = st.seq + 1
            turn.replies.append(Reply(self._t(turn, "forgotten"), (), "notice"))
        elif op == "K":
            self._notice(turn, self._t(turn, "forget_kept"))
            self._show(turn)
        else:
            return False
        return True

    def _answered(self, turn: _Turn, var: str, value: Answer, next_target: str) -> None:
        """Keep an answer and go on: back to the summary if it asked for the change, else onwards."""
        st = turn.st
        self._answers(st)[var] = value
        target, st.ret = (st.ret or next_target), None
        self._goto_target(turn, target)

    def _contact(self, turn: _Turn, phone: str) -> None:
        """A shared contact answers a phone question; anywhere else it is not expected."""
        step = self.content.step(turn.st.flow, turn.st.step)
        if not isinstance(step, InputStep) or step.kind != "phone":
            self._hint(turn, "unsupported")
            return
        digits = phone.strip()
        ok, value = validate("phone", digits if digits.startswith("+") else "+" + digits)
        if not ok:
            ok, value = validate("phone", digits)
        if ok:
            self._answered(turn, step.var, value, step.next)
        else:
            self._text(turn, phone)

    def _goto_target(self, turn: _Turn, target: str) -> None:
        resolved = self.content.resolve(target, turn.st.flow)
        self._goto(turn, *(resolved or self.content.start))

    def _live_closed(self, turn: _Turn) -> None:
        if not self.in_live_chat(turn.st):
            return
        turn.closing = True
        self._notice(turn, self._t(turn, "live_closed"))
        self._goto(turn, *self.content.start, push=False)

    def _text(self, turn: _Turn, text: str) -> None:
        st, c = turn.st, self.content
        step = c.step(st.flow, st.step)
        if isinstance(step, HandoffStep) and step.live:
            # Talking to a person: the text goes to staff as it is; buttons still work by label.
            code = self._match(text, self._rows(turn), exact=True)
            if code is not None:
                self._act(turn, code)
            else:
                turn.effects.append(LiveRelay("text", text))
            return
        rows = self._rows(turn)
        if isinstance(step, InputStep):
            code = self._match(text, rows, exact=True)
            if code is not None:
                self._act(turn, code)
                return
            if looks_like_question(text) and self._answer_question(turn, text, suggest=False):
                return  # a question, not the answer to this field: answered, and asked again
            ok, value = validate(step.kind, text, min=step.min, max=step.max)
            if ok:
                self._answered(turn, step.var, value, step.next)
                return
            if step.kind != "text" and self._answer_question(turn, text, suggest=False):
                return
            st.retries += 1
            if st.retries >= step.max_retries:
                self._escalate(turn, optional=step.optional)
            else:
                error = step.error if step.error is not None else c.texts[f"error_{step.kind}"]
                turn.replies.append(
                    Reply(c.render(error, st.locale, self._context(st)), self._keyboard(turn, rows))
                )
            return
        if isinstance(step, CheckStep) and st.sub < len(step.conditions):
            word = normalise(text)
            if word in _YES or word in _NO:
                self._act(turn, "y" if word in _YES else "n")
                return
        code = self._match(text, rows, exact=False)
        if code is not None:
            self._act(turn, code)
            return
        if self._intent(turn, text):
            return
        if self._answer_question(turn, text, suggest=True):
            return
        # Kept for a consultant: asking one from here carries the question the bot could not answer.
        st.answers.setdefault(c.consultant[0], {})["question"] = text[:QUESTION_LIMIT]
        if looks_like_question(text):
            turn.notes.append(("unanswered", self._redact(text)))
        st.retries += 1
        if st.retries >= MENU_RETRY_CAP:
            self._escalate(turn, optional=False)
        else:
            self._hint(turn, "off_topic" if self.faq is not None and looks_like_question(text) else "choose")

    def _intent(self, turn: _Turn, text: str) -> bool:
        """Do what a typed request asks for, as its button would ("转人工", "go back")."""
        action = self.intents.find(text)
        if action is None:
            return False
        c = self.content
        turn.notes.append(("intent", action))
        if action == "consultant":
            self._act(turn, "c")
        elif action == "lead" and c.lead_form is not None:
            self._goto(turn, *c.lead_form)
        elif action in ("menu", "back", "restart", "forget", "privacy"):
            self._command(turn, Command(action))
        elif action.startswith("lang:") and action[5:] in c.locales:
            self._set_locale(turn, action[5:])
        else:
            return False
        return True

    def _redact(self, question: str) -> str:
        """A question for the operators' figures: only the FAQ's own words (no names, numbers)."""
        return self.faq.redact(question) if self.faq is not None else "…"

    def _answer_question(self, turn: _Turn, text: str, *, suggest: bool) -> bool:
        """Answer from the FAQ and stay where we are; or, unsure, offer the closest topics.

        ``suggest`` is off while a form field is asked: then only a clear answer (no small talk)
        interrupts, since the text may be the field's value."""
        if self.faq is None:
            return False
        flow = self.content.flows.get(turn.st.flow)
        match = self.faq.match(text, scheme=flow.id if flow is not None and flow.kind == "scheme" else None)
        st = turn.st
        entry = match.entry
        if (
            entry is not None
            and not suggest
            and (entry.id in self.content.smalltalk or match.confidence < FIELD_ACCEPT)
        ):
            entry = None
        if entry is not None:
            self._faq_reply(turn, self._faq_index[entry.id])
            return True
        topics = [e for e in match.suggestions if e.id not in self.content.smalltalk]
        if not suggest or not topics:
            return False
        turn.notes.append(("unsure", self._redact(text)))
        st.answers.setdefault(self.content.consultant[0], {})["question"] = text[:QUESTION_LIMIT]
        rows: list[Row] = []
        for e in topics:
            topic = html.unescape(self.content.render(e.topic, st.locale, {}))
            rows.append([(topic, f"f{self._faq_index[e.id]}", None)])
        here = self._rows(turn)
        if not any(code == "c" for row in here for _, code, _ in row):
            rows.append([(self._label(turn, "consultant"), "c", None)])
        keyboard = self._keyboard(turn, rows + here)
        turn.replies.append(Reply(self._t(turn, "suggest"), keyboard, "notice"))
        return True

    def _faq_reply(self, turn: _Turn, index: int) -> None:
        """An FAQ answer, with its own buttons, then the buttons (and question) of where we are."""
        st, c = turn.st, self.content
        entry = self._entries[index]
        if entry.id.startswith(PASSAGE_PREFIX):  # a passage of a step: counted by its step
            turn.notes.append(("passage", entry.link or ""))
        else:
            turn.notes.append(("faq", entry.id))
        text = c.render(entry.answer, st.locale, {})
        step = c.step(st.flow, st.step)
        if isinstance(step, InputStep) or (isinstance(step, CheckStep) and st.sub < len(step.conditions)):
            text += "\n\n" + self._body(turn, step)
        extra: list[Row] = []
        if entry.link is not None:
            extra.append([(self._label(turn, "faq_more"), f"j{index}", None)])
        if entry.lead and c.lead_form is not None and st.flow != c.lead_form[0]:
            extra.append([(self._label(turn, "faq_lead"), "L", None)])
        turn.replies.append(Reply(text, self._keyboard(turn, extra + self._rows(turn)), "notice"))

    def _hint(self, turn: _Turn, key: str) -> None:
        """A short remark with the current buttons (and, when an answer is awaited, the question)."""
        st = turn.st
        text = self._t(turn, key)
        step = self.content.step(st.flow, st.step)
        if isinstance(step, InputStep) or (isinstance(step, CheckStep) and st.sub < len(step.conditions)):
            text += "\n\n" + self._body(turn, step)
        turn.replies.append(Reply(text, self._keyboard(turn, self._rows(turn)), "notice"))

    def _escalate(self, turn: _Turn, *, optional: bool) -> None:
        """Too many failed tries: offer a way out instead of asking again and again."""
        c = self.content
        turn.st.retries = 0
        row: Row = []
        if optional:
            row.append((self._label(turn, "skip"), "s", None))
        if turn.st.flow != c.consultant[0]:
            row.append((self._label(turn, "consultant"), "c", None))
        row.append((self._label(turn, "menu"), "m", None))
        turn.replies.append(Reply(self._t(turn, "retry_exhausted"), self._keyboard(turn, [row]), "notice"))

    @staticmethod
    def _match(text: str, rows: Sequence[Row], *, exact: bool) -> str | None:
        """The action of the button whose label the text names (equal, or a unique part of one)."""
        word = normalise(text)
        if not word:
            return None
        labelled = [
            (_normalise_label(label), code) for row in rows for label, code, _ in row if code is not None
        ]
        for label, code in labelled:
            if label == word:
                return code
        if exact or len(word) < 2:
            return None
        if word.isascii():
            # Whole words only: "hi" must not pick "Not sure which one?".
            hits = {
                code
                for row in rows
                for label, code, _ in row
                if code is not None and _words_in(text, _label_words(label))
            }
        else:
            hits = {code for label, code in labelled if word in label}
        return hits.pop() if len(hits) == 1 else None

    # --- showing --------------------------------------------------------------------------------

    def _t(self, turn: _Turn, key: str, **context: Any) -> str:
        return self.content.t(key, turn.st.locale, **context)

    def _label(self, turn: _Turn, key: str) -> str:
        """A common text as a button label: plain text, not HTML."""
        labels = self._labels.get(turn.st.locale)
        if labels is None:
            labels = self._labels[turn.st.locale] = {}
        label = labels.get(key)
        if label is None:
            label = labels[key] = html.unescape(self._t(turn, key))
        return label

    def _notice(self, turn: _Turn, text: str) -> None:
        turn.replies.append(Reply(text, (), "notice"))

    def _context(self, st: State) -> dict[str, Any]:
        origin = self.content.flows.get(st.origin) if st.origin else None
        return {
            "answers": st.answers.get(st.flow, {}),
            "origin": self.content.localise(origin.title, st.locale) if origin else "",
        }

    def _keyboard(self, turn: _Turn, rows: Sequence[Row]) -> tuple[tuple[Button, ...], ...]:
        prefix = _b36(turn.st.seq) + ":"
        return tuple(
            tuple(Button(label, prefix + code if code is not None else None, url) for label, code, url in row)
            for row in rows
            if row
        )

    def _step_rows(self, flow: str, step_id: str, step: Step, locale: str, ctx: dict[str, Any]) -> list[Row]:
        """A step's own buttons in rows; cached when no label depends on the answers."""
        key = (flow, step_id, locale)
        cached = self._rows_cache.get(key)
        if cached is not None:
            return cached
        c = self.content
        rows: list[Row] = []
        row: Row = []
        assert not isinstance(step, BranchStep)
        for i, b in enumerate(step.buttons):
            label = html.unescape(c.render(b.label, locale, ctx))
            row.append((label, None, b.url) if b.url else (label, f"g{i}", None))
            if len(row) == step.columns:
                rows.append(row)
                row = []
        rows.append(row)
        if all(c.is_static(b.label, locale) for b in step.buttons):
            self._rows_cache[key] = rows
        return rows

    def _choice_rows(self, turn: _Turn, step: ChoiceStep) -> list[Row]:
        st, c = turn.st, self.content
        chosen = st.answers.get(st.flow, {}).get(step.var)
        picked = set(chosen) if isinstance(chosen, list) else {chosen}
        rows: list[Row] = []
        row: Row = []
        for i, o in enumerate(step.options):
            label = html.unescape(c.render(o.label, st.locale, {}))
            if step.multiple:
                label = ("✅ " if o.value in picked else "▫️ ") + label
            elif o.value in picked:
                label = "✅ " + label
            row.append((label, f"o{i}", None))
            if len(row) == step.columns:
                rows.append(row)
                row = []
        rows.append(row)
        if step.multiple:
            rows.append([(self._label(turn, "done"), "d", None)])
        return rows

    def _rows(self, turn: _Turn) -> list[Row]:
        """The buttons of the current view, as rows of (label, action code, url)."""
        st, c = turn.st, self.content
        step = c.step(st.flow, st.step)
        if step is None or isinstance(step, BranchStep):
            return []
        rows: list[Row] = []
        ctx = self._context(st) if step.buttons else {}
        if isinstance(step, PagesStep) and st.sub < len(step.pages):
            paging: Row = []
            if st.sub > 0:
                paging.append((self._label(turn, "prev_page"), f"p{st.sub - 1}", None))
            if st.sub + 1 < len(step.pages):
                paging.append((self._label(turn, "next_page"), f"p{st.sub + 1}", None))
            rows.append(paging)
            rows.append([(self._label(turn, "all_pages"), "a", None)])
        if isinstance(step, CheckStep) and st.sub < len(step.conditions):
            rows.append([(self._label(turn, "yes"), "y", None), (self._label(turn, "no"), "n", None)])
        elif isinstance(step, ChoiceStep):
            rows.extend(self._choice_rows(turn, step))
        elif isinstance(step, SummaryStep):
            change = self.content.texts["change"]
            for i, f in enumerate(step.fields):
                name = html.unescape(c.render(f.label, st.locale, ctx))
                label = html.unescape(c.render(change, st.locale, {"label": name}))
                rows.append([(label, f"e{i}", None)])
            rows.append([(html.unescape(c.render(step.confirm, st.locale, ctx)), "k", None)])
        else:
            rows.extend(self._step_rows(st.flow, st.step, step, st.locale, ctx))
        if isinstance(step, InputStep | ChoiceStep) and step.optional:
            rows.append([(self._label(turn, "skip"), "s", None)])
        if step.nav:
            nav: Row = []
            if st.history:
                nav.append((self._label(turn, "back"), "b", None))
            if (st.flow, st.step) != c.start:
                nav.append((self._label(turn, "menu"), "m", None))
            if st.flow != c.consultant[0]:
                nav.append((self._label(turn, "consultant"), "c", None))
            rows.append(nav)
        return [r for r in rows if r]

    def _body(self, turn: _Turn, step: Step) -> str:
        st, c = turn.st, self.content
        ctx = self._context(st)
        loc = st.locale
        head = c.render(step.text, loc, ctx) if not isinstance(step, BranchStep) and step.text else ""
        parts: list[str] = []
        if isinstance(step, PagesStep):
            n = len(step.pages)
            if st.sub < n:
                parts = [
                    head,
                    c.render(step.pages[st.sub], loc, ctx),
                    self._t(turn, "page_of", page=st.sub + 1, pages=n),
                ]
            else:
                parts = [head, *(c.render(p, loc, ctx) for p in step.pages)]
        elif isinstance(step, CheckStep):
            n = len(step.conditions)
            if st.sub < n:
                question = c.render(step.conditions[st.sub].question, loc, ctx)
                parts = [
                    head if st.sub == 0 else "",
                    self._t(turn, "question_of", number=st.sub + 1, count=n),
                    question,
                ]
            else:
                answers = st.answers.get(st.flow, {})
                missing = [
                    {
                        "name": Markup(c.render(cond.name, loc, ctx)),
                        "question": Markup(c.render(cond.question, loc, ctx)),
                        "fix": Markup(c.render(cond.fix, loc, ctx)),
                    }
                    for cond in step.conditions
                    if answers.get(cond.id) is not True
                ]
                verdict = step.failed if missing else step.passed
                parts = [c.render(verdict, loc, {**ctx, "missing": missing})]
        elif isinstance(step, SummaryStep):
            parts = [head, self._summary(turn, step)]
        else:
            parts = [head]
        return "\n\n".join(p for p in parts if p)

    def _summary(self, turn: _Turn, step: SummaryStep) -> str:
        """Each answer on a line, escaped: they are what the prospect typed."""
        st, c = turn.st, self.content
        answers = st.answers.get(st.flow, {})
        options = self._option_labels(st.flow, st.locale)
        lines = []
        for f in step.fields:
            value = answers.get(f.var)
            if isinstance(value, list):
                sep = "、" if st.locale == "zh" else ", "
                shown = sep.join(options.get((f.var, v), v) for v in value) if value else ""
            elif isinstance(value, bool):
                shown = self._label(turn, "yes" if value else "no")
            elif value is None or value == "":
                shown = ""
            else:
                shown = options.get((f.var, str(value)), str(value))
            label = c.render(f.label, st.locale, {})
            lines.append(f"<b>{label}</b>: {escape(shown) if shown else self._t(turn, 'none')}")
        return "\n".join(lines)

    def _option_labels(self, flow: str, locale: str) -> dict[tuple[str, str], str]:
        """Labels of choice options by (variable, value), to show a choice as the prospect saw it."""
        out: dict[tuple[str, str], str] = {}
        f = self.content.flows.get(flow)
        for step in f.steps.values() if f else ():
            if isinstance(step, ChoiceStep):
                for o in step.options:
                    out[(step.var, o.value)] = html.unescape(self.content.render(o.label, locale, {}))
        return out

    def _show(self, turn: _Turn) -> None:
        st = turn.st
        step = self.content.step(st.flow, st.step)
        if step is None or isinstance(step, BranchStep):  # only after a broken reload
            st.flow, st.step, st.sub = *self.content.start, 0
            step = self.content.step(st.flow, st.step)
            assert step is not None
        key = (st.flow, st.step, st.sub, st.locale, bool(st.history), st.seq)
        cached = self._views.get(key)
        if cached is not None:
            turn.replies.extend(cached)
            return
        keyboard = self._keyboard(turn, self._rows(turn))
        chunks = split_message(self._body(turn, step))
        view = [Reply(chunk, (), "view") for chunk in chunks[:-1]]
        share = isinstance(step, InputStep) and step.share_contact
        view.append(
            Reply(chunks[-1], keyboard, "view", self._label(turn, "contact_button") if share else None)
        )
        turn.replies.extend(view)
        if self._is_static(st.flow, st.step, step, st.sub, st.locale) and len(self._views) < VIEW_CACHE:
            self._views[key] = tuple(view)

    def _is_static(self, flow: str, step_id: str, step: Step, sub: int, locale: str) -> bool:
        """Whether a view is the same for every prospect (no answers in it): then it is cached."""
        if isinstance(step, CheckStep) and sub >= len(step.conditions):
            return False  # the verdict lists this prospect's answers
        if isinstance(step, ChoiceStep | SummaryStep):
            return False  # ticks and answers are this prospect's
        key = (flow, step_id, locale, sub if isinstance(step, CheckStep) else 0)
        static = self._static_steps.get(key)
        if static is None:
            if isinstance(step, CheckStep):  # a question shows the intro and that question only
                shown = [t for t in (step.text, step.conditions[sub].question) if t is not None]
            else:
                shown = [text for _, text in texts_of(step)]
            static = self._static_steps[key] = all(self.content.is_static(t, locale) for t in shown)
        return static
