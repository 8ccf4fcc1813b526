"""Who is staff, and what staff see in Telegram: the lead list, a lead's card, the figures.

Staff are the ``ADMIN_IDS`` and the members of the staff group (``STAFF_CHAT_ID``); membership is
asked of Telegram (getChatMember) and remembered for a few minutes. Anyone else gets no staff
command and no hint that one exists. Staff data goes only to a staff place: a private chat with the
staff member, or the staff group; a staff command given anywhere else shows nothing there.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, replace
from datetime import UTC
from typing import Any

from aiogram import Bot
from aiogram.enums import ChatMemberStatus
from aiogram.exceptions import TelegramAPIError
from aiogram.types import Chat, InlineKeyboardButton, InlineKeyboardMarkup, User
from markupsafe import Markup

from bot.content import Content
from bot.db.models import LEAD_STATUSES, Lead, LeadEvent
from bot.engine.render import MESSAGE_LIMIT, visible_length
from bot.leads.browse import LeadPage, LeadQuery
from bot.leads.summary import alert_text
from bot.settings import Settings

log = logging.getLogger(__name__)

MEMBER_TTL = 300.0
MEMBER_STATUSES = {ChatMemberStatus.CREATOR, ChatMemberStatus.ADMINISTRATOR, ChatMemberStatus.MEMBER}
STAFF_COMMANDS = ("/leads", "/lead", "/note", "/export", "/stats")
ADMIN_COMMANDS = ("/reload",)
LIST_PAGE = 8
CARD_TRANSCRIPT = 12
CARD_NOTES = 5
CARD_ALERT = 3000
"""The lead's summary on a card is cut to this (a long note or question), leaving room for the rest."""


class StaffDirectory:
    """Answers "is this user staff?" from the settings and the staff group's member list."""

    def __init__(self, settings: Settings, *, ttl: float = MEMBER_TTL) -> None:
        self.settings = settings
        self.ttl = ttl
        self._members: dict[int, tuple[bool, float]] = {}

    def is_admin(self, user: User | None) -> bool:
        return user is not None and user.id in self.settings.admin_ids

    def in_staff_place(self, chat: Chat | None, user: User | None) -> bool:
        """Where staff data may be shown to ``user``: a private chat with them, or the staff
        group. Anywhere else (a group of outsiders) it would reach people who are not staff."""
        if chat is None or user is None:
            return False
        if chat.type == "private":
            return chat.id == user.id
        return chat.id == self.settings.staff_chat_id

    async def is_staff(
        self, bot: Bot, user: User | None, chat: Chat | None = None, *, trust_chat: bool = True
    ) -> bool:
        """``trust_chat``: a message written in the staff group is a member's (only members can
        write there). A button press is not trusted so: it is checked with Telegram."""
        if user is None or user.is_bot:
            return False
        group = self.settings.staff_chat_id
        if user.id in self.settings.admin_ids:
            return True
        if trust_chat and chat is not None and group is not None and chat.id == group:
            return True
        if group is None:
            return False
        now = time.monotonic()
        known = self._members.get(user.id)
        if known is not None and known[1] > now:
            return known[0]
        try:
            member = await bot.get_chat_member(chat_id=group, user_id=user.id)
            member_now = member.status in MEMBER_STATUSES or bool(getattr(member, "is_member", False))
        except TelegramAPIError as e:
            log.info("staff check for %s failed: %s", user.id, e)
            member_now = False
        if len(self._members) > 10_000:
            self._members.clear()
        self._members[user.id] = (member_now, now + self.ttl)
        return member_now


def command_word(text: str) -> str:
    """``/leads@cert_bot new`` -> ``/leads``."""
    return text.split(maxsplit=1)[0].split("@", 1)[0].lower() if text.startswith("/") else ""


def actor(user: User) -> str:
    """How a Telegram user appears in a lead's history."""
    name = f"@{user.username}" if user.username else user.full_name
    return f"tg:{user.id} {name}"[:100]


def who(user: User) -> str:
    return f"@{user.username}" if user.username else user.full_name


def status_label(content: Content, status: str, locale: str) -> str:
    return content.t(f"status_{status}", locale)


def scheme_titles(content: Content, locale: str) -> dict[str, str]:
    return {
        fid: content.localise(flow.title, locale)
        for fid, flow in content.flows.items()
        if flow.kind == "scheme"
    }


def parse_list_args(words: list[str], content: Content) -> LeadQuery:
    """``/leads [status] [scheme] [words to search]``, in any order."""
    status = scheme = None
    rest = []
    schemes = scheme_titles(content, content.default_locale)
    for word in words:
        low = word.lower()
        if low in LEAD_STATUSES and status is None:
            status = low
        elif low in schemes and scheme is None:
            scheme = low
        else:
            rest.append(word)
    return LeadQuery(q=" ".join(rest)[:100], status=status, scheme=scheme, per_page=LIST_PAGE)


def _when(settings: Settings, moment: Any) -> str:
    if moment is None:
        return "—"
    aware = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return str(aware.astimezone(settings.zone).strftime("%m-%d %H:%M"))


def filters_text(content: Content, query: LeadQuery, locale: str) -> str:
    parts = []
    if query.status:
        parts.append(status_label(content, query.status, locale))
    if query.scheme:
        parts.append(scheme_titles(content, locale).get(query.scheme, query.scheme))
    if query.q:
        parts.append(f"“{query.q}”")
    return ", ".join(parts)


def list_data(query: LeadQuery) -> str:
    """Callback data of a list page (no search words: they may not fit in 64 bytes)."""
    return f"sl:{query.status or '-'}:{query.scheme or '-'}:{query.page}"


def parse_list_data(data: str, content: Content) -> LeadQuery | None:
    parts = data.split(":")
    if len(parts) != 4 or not (parts[3].isascii() and parts[3].isdigit()):
        return None
    status = parts[1] if parts[1] in LEAD_STATUSES else None
    scheme = parts[2] if parts[2] in scheme_titles(content, content.default_locale) else None
    return LeadQuery(
        status=status, scheme=scheme, page=max(1, min(int(parts[3]), 100_000)), per_page=LIST_PAGE
    )


def render_list(
    content: Content, settings: Settings, page: LeadPage, locale: str
) -> tuple[str, InlineKeyboardMarkup]:
    query = page.query
    rows = [
        {
            "reference": r.reference or str(r.id),
            "status": status_label(content, r.status, locale),
            "company": r.company,
            "contact_name": r.contact_name,
            "phone": r.phone,
            "created": _when(settings, r.created_at),
        }
        for r in page.rows
    ]
    text = content.t(
        "staff_list",
        locale,
        rows=rows,
        total=page.total,
        capped=page.capped,
        page=query.page,
        pages=page.pages,
        filters=filters_text(content, query, locale),
    )
    keyboard: list[list[InlineKeyboardButton]] = []
    for r in page.rows:
        label = f"{r.reference or r.id} · {r.company or r.contact_name or '—'}"[:60]
        keyboard.append([InlineKeyboardButton(text=label, callback_data=f"sc:{r.id}:v")])
    nav = []
    if page.has_prev:
        nav.append(InlineKeyboardButton(text="◀️", callback_data=list_data(_with(query, page=query.page - 1))))
    if page.has_next:
        nav.append(InlineKeyboardButton(text="▶️", callback_data=list_data(_with(query, page=query.page + 1))))
    if nav and not query.q:
        keyboard.append(nav)
    if not query.q:  # the filters cycle: all -> new -> contacted ... -> all
        statuses = [None, *LEAD_STATUSES]
        next_status = statuses[(statuses.index(query.status) + 1) % len(statuses)]
        schemes = [None, *scheme_titles(content, locale)]
        next_scheme = schemes[(schemes.index(query.scheme) + 1) % len(schemes)]
        every = content.t("staff_filter_all", locale)
        keyboard.append(
            [
                InlineKeyboardButton(
                    text=content.t(
                        "staff_filter_status",
                        locale,
                        value=status_label(content, query.status, locale) if query.status else every,
                    ),
                    callback_data=list_data(_with(query, status=next_status, page=1)),
                ),
                InlineKeyboardButton(
                    text=content.t(
                        "staff_filter_scheme",
                        locale,
                        value=scheme_titles(content, locale).get(query.scheme, every)
                        if query.scheme
                        else every,
                    ),
                    callback_data=list_data(_with(query, scheme=next_scheme, page=1)),
                ),
            ]
        )
    return text, InlineKeyboardMarkup(inline_keyboard=keyboard)


def _with(query: LeadQuery, **changes: Any) -> LeadQuery:
    return replace(query, **changes)


@dataclass(frozen=True)
class _Note:
    when: str
    actor: str
    text: str


def render_card(
    content: Content, settings: Settings, lead: Lead, events: list[LeadEvent], locale: str
) -> tuple[str, InlineKeyboardMarkup]:
    notes = [
        _Note(_when(settings, e.at), e.actor.split(" ", 1)[-1], e.new or "")
        for e in events
        if e.kind == "note"
    ][:CARD_NOTES]
    transcript = list(lead.transcript[-CARD_TRANSCRIPT:])
    while True:  # the card is one message: the transcript excerpt gives way to the 4096 limit
        text = content.t(
            "staff_card",
            locale,
            alert=Markup(alert_text(content, lead, updated=False, limit=CARD_ALERT)),
            lead=lead,
            status=status_label(content, lead.status, locale),
            created=_when(settings, lead.created_at),
            forgotten=lead.forgotten_at is not None,
            notes=notes,
            transcript=transcript,
        )
        if visible_length(text) <= MESSAGE_LIMIT or not (transcript or notes):
            break
        if transcript:
            transcript.pop(0)
        else:
            notes = [_Note(n.when, n.actor, n.text[:200]) for n in notes[:-1]]
    statuses = [
        InlineKeyboardButton(
            text=("• " if s == lead.status else "") + status_label(content, s, locale),
            callback_data=f"sc:{lead.id}:s.{s}",
        )
        for s in LEAD_STATUSES
    ]
    keyboard = [
        statuses[:3],
        statuses[3:],
        [
            InlineKeyboardButton(text=content.t("staff_assign_me", locale), callback_data=f"sc:{lead.id}:me"),
            InlineKeyboardButton(text=content.t("staff_add_note", locale), callback_data=f"sc:{lead.id}:n"),
        ],
        [InlineKeyboardButton(text=content.t("staff_back_to_list", locale), callback_data="sl:-:-:1")],
    ]
    return text, InlineKeyboardMarkup(inline_keyboard=keyboard)
