"""A lead as staff read it wherever they are (the staff group's alert, a Telegram card, the
dashboard's lead page): names instead of codes, the self-check's gaps, the channel, and a text
that always fits one Telegram message."""

from __future__ import annotations

from typing import Any

from bot.content import Content
from bot.content.model import CheckStep
from bot.db.models import Lead
from bot.engine.render import MESSAGE_LIMIT, visible_length
from bot.prospect import TELEGRAM, channel_name

SHOWN_NOTE = 1500
"""At most this much of a lead's note and of its question in an alert (less if it must fit)."""

TIMELINES = {
    "1m": {"zh": "1 个月内", "en": "within a month"},
    "3m": {"zh": "1–3 个月", "en": "1–3 months"},
    "6m": {"zh": "3–6 个月", "en": "3–6 months"},
    "later": {"zh": "更晚/不确定", "en": "later / not sure"},
}


def alert_context(content: Content, lead: Lead, locale: str) -> dict[str, Any]:
    """What the staff alert shows besides the lead's own fields: names instead of codes."""
    titles = [
        content.localise(content.flows[s].title, locale) if s in content.flows else s for s in lead.schemes
    ]
    gaps: list[str] = []
    flow = content.flows.get(lead.source_flow or "")
    for step in flow.steps.values() if flow else ():
        if isinstance(step, CheckStep):
            gaps += [
                content.localise(c.name, locale) for c in step.conditions if lead.selfcheck.get(c.id) is False
            ]
    if lead.handle:
        who = f"@{lead.handle}" if lead.channel == TELEGRAM else lead.handle
    else:
        who = lead.external_id or "—"
    timeline = TIMELINES.get(lead.timeline or "", {}).get(locale, lead.timeline or "")
    return {
        "lead": lead,
        "schemes": ("、" if locale == "zh" else ", ").join(titles),
        "gaps": gaps,
        "channel": channel_name(lead.channel),
        "who": who,
        "timeline": timeline,
    }


class _Shown:
    """A lead as an alert shows it: its note and question cut to ``limit`` (the newest part)."""

    def __init__(self, lead: Lead, limit: int) -> None:
        self._lead = lead
        self.note = _cut(lead.note, limit)
        self.question = _cut(lead.question, limit)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._lead, name)


def _cut(text: str | None, limit: int) -> str | None:
    if text is None or len(text) <= limit:
        return text
    return "…" + text[-max(limit - 1, 0) :]


def alert_text(
    content: Content,
    lead: Lead,
    *,
    updated: bool,
    footer: str | None = None,
    repeat: bool = False,
    limit: int = MESSAGE_LIMIT,
) -> str:
    """The alert, within ``limit`` (Telegram's 4,096): a long note or question is cut down."""
    locale = content.default_locale
    shown = SHOWN_NOTE
    while True:
        context = alert_context(content, lead, locale)
        context["lead"] = _Shown(lead, shown)
        text = content.t("staff_alert", locale, updated=updated, **context)
        if repeat:
            text = f"{content.t('staff_alert_repeat', locale)}\n{text}"
        if footer:
            text = f"{text}\n\n{footer}"
        if visible_length(text) <= limit or shown == 0:
            return text
        shown //= 2
