"""Schema of the content files in ``flows/`` (pydantic models).

A text is either one string (the same in every locale) or a mapping ``{zh: ..., en: ...}``.
Texts are jinja2 templates rendered for Telegram HTML; see ``bot.engine.render``.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag

Text = str | dict[str, str]
"""A localised text: one string for every locale, or one per locale code."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ButtonDef(_Model):
    """A button of a menu. Exactly one of ``goto``, ``flow`` or ``url``."""

    label: Text
    goto: str | None = None
    """A step of this flow (``materials``) or of another flow (``iso9001.intro``)."""
    flow: str | None = None
    """Start of another flow."""
    url: str | None = None
    """An external link (opens in the browser; no state change)."""
    set: dict[str, str | int | bool] = Field(default_factory=dict)
    """Answers recorded in the current flow when the button is pressed."""


class _StepBase(_Model):
    text: Text | None = None
    buttons: list[ButtonDef] = Field(default_factory=list)
    columns: int = Field(default=1, ge=1, le=4)
    nav: bool = True
    """Show the navigation row (back, main menu, consultant)."""


class MenuStep(_StepBase):
    type: Literal["menu"] = "menu"


class PagesStep(_StepBase):
    """Long content read page by page, or all in one message."""

    type: Literal["pages"]
    pages: list[Text] = Field(min_length=1)


class Condition(_Model):
    id: str
    name: Text
    """Short name of the condition, used in the verdict."""
    question: Text
    fix: Text
    """What to do when the condition is not met."""


class CheckStep(_StepBase):
    """A yes/no self-check, one question per condition, ending in a verdict."""

    type: Literal["check"]
    conditions: list[Condition] = Field(min_length=1)
    passed: Text
    """Verdict when every condition is met."""
    failed: Text
    """Verdict when some are not; the template gets ``missing`` (list of {name, question, fix})."""


InputKind = Literal["text", "integer", "phone", "email"]


class InputStep(_StepBase):
    """Collects one typed answer with validation and a retry cap."""

    type: Literal["input"]
    var: str
    kind: InputKind = "text"
    min: int | None = None
    max: int | None = None
    error: Text | None = None
    """Re-ask text; defaults to the common text for the kind."""
    max_retries: int = Field(default=3, ge=1, le=10)
    next: str
    optional: bool = False
    share_contact: bool = False
    """For a phone: also offer Telegram's "share my phone number" button."""


class Option(_Model):
    value: str
    label: Text


class ChoiceStep(_StepBase):
    """Pick one option, or several (``multiple``), from buttons; typing a label works too."""

    type: Literal["choice"]
    var: str
    options: list[Option] = Field(min_length=1)
    multiple: bool = False
    prefill: Literal["origin"] | None = None
    """``origin``: the certification scheme the prospect came from is chosen already."""
    next: str
    optional: bool = False


class SummaryField(_Model):
    var: str
    label: Text
    step: str
    """The step that asks for it: its "change" button goes there and comes back here."""


class SummaryStep(_StepBase):
    """All answers at a glance: confirm, or change any single one and come back."""

    type: Literal["summary"]
    fields: list[SummaryField] = Field(min_length=1)
    confirm: Text
    next: str


class Case(_Model):
    when: str
    """A jinja2 expression over ``answers``, e.g. ``answers.business == 'it'``."""
    goto: str


class BranchStep(_Model):
    """Goes on at once to the first case whose condition holds; shows nothing."""

    type: Literal["branch"]
    cases: list[Case] = Field(min_length=1)
    default: str


class HandoffStep(_StepBase):
    """Hands the collected answers over to the channel (an effect), then shows its text."""

    type: Literal["handoff"]
    effect: Literal["lead", "enquiry", "live"]
    """What is handed over: ``lead`` (a lead, staff alerted), ``enquiry`` (a lightweight lead),
    ``live`` (a live chat with a person, with ``live: true``)."""
    live: bool = False
    """A live chat with a person: while the prospect is on this step, what they type or send goes
    to staff (effect ``relay``); leaving the step ends the chat (effect ``live_end``)."""


def _step_tag(value: Any) -> str:
    if isinstance(value, dict):
        return str(value.get("type", "menu"))
    return str(getattr(value, "type", "menu"))


Step = Annotated[
    Annotated[MenuStep, Tag("menu")]
    | Annotated[PagesStep, Tag("pages")]
    | Annotated[CheckStep, Tag("check")]
    | Annotated[InputStep, Tag("input")]
    | Annotated[BranchStep, Tag("branch")]
    | Annotated[HandoffStep, Tag("handoff")]
    | Annotated[ChoiceStep, Tag("choice")]
    | Annotated[SummaryStep, Tag("summary")],
    Discriminator(_step_tag),
]


class FlowDef(_Model):
    id: str = Field(pattern=r"^[a-z][a-z0-9_]{0,19}$")
    title: Text
    start: str
    kind: Literal["scheme", "menu", "form"] = "scheme"
    """``scheme`` flows are certification schemes: the contact form is pre-filled from them."""
    aliases: dict[str, list[str]] = Field(default_factory=dict)
    """A scheme's names as prospects type them, by locale ("9001", "质量管理体系"): a question
    that names the scheme is answered from its flow."""
    steps: dict[str, Step] = Field(min_length=1)


class WeChatMenuEntry(_Model):
    """An entry of WeChat's custom menu (自定义菜单): a flow to start, a command, a web page, or
    (at the top) a list of sub-entries. Exactly one of them."""

    label: Text
    flow: str | None = None
    """A flow, started as ``/start FLOW`` (as a Telegram deep link)."""
    command: str | None = None
    """A command (``menu``, ``help``, ``privacy``, ``forget``, ``consultant``, ``details`` (the lead form),
    ``lang en``), as if typed."""
    url: str | None = None
    entries: list[WeChatMenuEntry] = Field(default_factory=list)


MENU_COMMANDS = frozenset({"menu", "help", "privacy", "forget", "consultant", "details", "lang"})
"""What a WeChat menu entry may do besides starting a flow."""


def menu_label(entry: WeChatMenuEntry, locale: str) -> str:
    """The entry's name in ``locale`` (WeChat's menu has one language)."""
    label = entry.label
    if isinstance(label, str):
        return label
    return label.get(locale) or next(iter(label.values()), "")


def menu_key(entry: WeChatMenuEntry) -> str:
    """What a click on the entry sends (its EventKey): a command, as if typed."""
    if entry.flow is not None:
        return f"/start {entry.flow}"
    return f"/{entry.command}"


class CommonDef(_Model):
    locales: list[str] = Field(min_length=1)
    default_locale: str
    start: str
    """The main menu: ``flow.step``."""
    consultant: str
    """Where the consultant button leads: ``flow.step``."""
    lead_form: str | None = None
    """The lead form (``flow.step``), offered with answers such as the one about fees."""
    texts: dict[str, Text]
    commands: dict[str, Text] = Field(default_factory=dict)
    """Bot commands and their descriptions, registered with Telegram (setMyCommands) per language."""
    wechat_menu: list[WeChatMenuEntry] = Field(default_factory=list)
    """WeChat's custom menu, published with ``python -m bot wechat menu`` (one language: the
    default locale's labels)."""
    intents: dict[str, dict[str, list[str]]] = Field(default_factory=dict)
    """What typed requests do, as a button would (at a menu, not in a form field): an action
    (``consultant``, ``lead``, ``menu``, ``back``, ``restart``, ``lang:en``...) and, by locale,
    the phrases that ask for it ("转人工", "talk to a human")."""


class FaqEntry(_Model):
    """An answer to a question prospects type, with the ways they ask it."""

    id: str = Field(pattern=r"^[a-z][a-z0-9_]{0,39}$")
    topic: Text
    """A short name, shown on a suggestion button."""
    answer: Text
    examples: dict[str, list[str]]
    """Phrasings per locale, e.g. {zh: ["多少钱", ...], en: ["how much is it", ...]}."""
    keywords: dict[str, list[str]] = Field(default_factory=dict)
    link: str | None = None
    """A step with more detail (``flow.step``): the answer gets a button to it."""
    lead: bool = False
    """Offer "leave my details" with the answer (a quote, a call back)."""


class Synonym(_Model):
    """Words prospects use for a thing the content names otherwise."""

    say: str = Field(min_length=1)
    """The word the content uses (测量设备, financial)."""
    also: list[str] = Field(min_length=1)
    """What prospects say instead (计量器具, 量具; finance): read as ``say`` in a question."""


class FaqDef(_Model):
    entries: list[FaqEntry] = Field(min_length=1)
    smalltalk: list[str] = Field(default_factory=lambda: ["greeting", "thanks", "bye"])
    """Entry ids that are small talk: answered briefly, never suggested as a topic."""
    out_of_scope: dict[str, list[str]] = Field(default_factory=dict)
    """Questions the bot must not answer (other services, chatter): when one of these is the
    closest, the bot says so instead of answering with the nearest entry."""
    synonyms: list[Synonym] = Field(default_factory=list)
    """Words of questions read as the content's words (in any locale; Traditional characters are
    read as Simplified first)."""
