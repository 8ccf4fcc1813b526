"""Staff in Telegram: ``/leads`` (paged, filtered), ``/lead N`` (the card), ``/note N text``,
``/export`` (a CSV document), ``/stats``, and the buttons on lists, cards and new-lead alerts.

Staff are the admins and the staff group's members. Rights are checked again on every button
press: callback data is untrusted, and anyone else gets the spinner closed and nothing more.

Staff data is shown only in a staff place (a private chat with the staff member, or the staff
group). A staff member's command anywhere else (a group of outsiders) posts nothing there: they
are told privately where staff commands work. A staff button or a note reply elsewhere does nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import tempfile
from pathlib import Path
from typing import Any

from aiogram import Bot, Router
from aiogram.exceptions import TelegramAPIError, TelegramBadRequest
from aiogram.types import CallbackQuery, ForceReply, FSInputFile, Message

from bot.db.models import LEAD_STATUSES
from bot.leads.export import export_leads
from bot.leads.summary import alert_text
from bot.telegram.alerts import alert_buttons
from bot.telegram.filters import REFERENCE, answers_note_prompt
from bot.telegram.runtime import Runtime
from bot.telegram.staff import (
    ADMIN_COMMANDS,
    STAFF_COMMANDS,
    actor,
    command_word,
    filters_text,
    parse_list_args,
    parse_list_data,
    render_card,
    render_list,
    scheme_titles,
    status_label,
    who,
)

log = logging.getLogger(__name__)

DOCUMENT_LIMIT = 49 * 1024 * 1024


async def staff_command(message: Message, bot: Bot, runtime: Runtime) -> bool:
    """A staff member's command (an admin's /reload only outside staff places: in them the admin
    router, which comes first, takes it)."""
    word = command_word(message.text or "")
    if word in ADMIN_COMMANDS:
        return runtime.staff.is_admin(message.from_user)
    if word not in STAFF_COMMANDS or runtime.leads is None:
        return False
    return await runtime.staff.is_staff(bot, message.from_user, message.chat)


async def note_reply(message: Message, bot: Bot, runtime: Runtime) -> bool:
    """A staff member's reply to a note prompt, in a staff place (elsewhere it is ignored)."""
    if not answers_note_prompt(message, bot):
        return False
    staff = runtime.staff
    if not staff.in_staff_place(message.chat, message.from_user):
        return False
    return await staff.is_staff(bot, message.from_user, message.chat)


async def staff_button(query: CallbackQuery) -> bool:
    return (query.data or "")[:3] in ("sl:", "sc:", "st:")


async def on_command(message: Message, bot: Bot, runtime: Runtime) -> None:
    if not runtime.staff.in_staff_place(message.chat, message.from_user):
        await _not_here(message, bot, runtime)
        return
    text = message.text or ""
    word = command_word(text)
    args = text.split()[1:]
    handler = {
        "/leads": _leads,
        "/lead": _lead,
        "/note": _note,
        "/export": _export,
        "/stats": _stats,
    }.get(word)
    if handler is not None:
        await handler(message, bot, runtime, args)


def _locale(runtime: Runtime) -> str:
    return runtime.engine.content.default_locale


async def _not_here(message: Message, bot: Bot, runtime: Runtime) -> None:
    """A staff command outside staff places: nothing in that chat (the others there are not staff,
    and are not told that staff commands exist); the staff member is told privately, if they have
    started the bot."""
    user = message.from_user
    assert user is not None
    log.info("staff command from %s in chat %s (not a staff place): not answered", user.id, message.chat.id)
    try:
        await bot.send_message(user.id, runtime.engine.content.t("staff_not_here", _locale(runtime)))
    except TelegramAPIError as e:  # they never started the bot, or blocked it
        log.info("could not tell staff member %s where staff commands work: %s", user.id, e)


async def _leads(message: Message, bot: Bot, runtime: Runtime, args: list[str]) -> None:
    assert runtime.leads is not None
    content = runtime.engine.content
    query = parse_list_args(args, content)
    page = await runtime.leads.search(query)
    text, markup = render_list(content, runtime.settings, page, _locale(runtime))
    await message.answer(text, reply_markup=markup)


async def _lead(message: Message, bot: Bot, runtime: Runtime, args: list[str]) -> None:
    content, locale = runtime.engine.content, _locale(runtime)
    if not args:
        await message.answer(content.t("staff_lead_usage", locale))
        return
    await _send_card(message, runtime, args[0])


async def _send_card(message: Message, runtime: Runtime, ref: str) -> None:
    assert runtime.leads is not None
    content, locale = runtime.engine.content, _locale(runtime)
    lead = await runtime.leads.by_reference(ref[:20])
    if lead is None:
        await message.answer(content.t("staff_no_lead", locale, ref=ref[:20]))
        return
    text, markup = render_card(content, runtime.settings, lead, await runtime.leads.events(lead.id), locale)
    await message.answer(text, reply_markup=markup)


async def _note(message: Message, bot: Bot, runtime: Runtime, args: list[str]) -> None:
    assert runtime.leads is not None and message.from_user is not None
    content, locale = runtime.engine.content, _locale(runtime)
    parts = (message.text or "").split(maxsplit=2)
    if len(parts) < 3:
        await message.answer(content.t("staff_note_usage", locale))
        return
    await _save_note(message, runtime, parts[1], parts[2])


async def _save_note(message: Message, runtime: Runtime, ref: str, text: str) -> None:
    assert runtime.leads is not None and message.from_user is not None
    content, locale = runtime.engine.content, _locale(runtime)
    lead = await runtime.leads.by_reference(ref[:20])
    if lead is None:
        await message.answer(content.t("staff_no_lead", locale, ref=ref[:20]))
        return
    await runtime.leads.add_note(lead.id, text, actor=actor(message.from_user))
    await message.answer(content.t("staff_note_saved", locale, reference=lead.reference))


async def on_note_reply(message: Message, bot: Bot, runtime: Runtime) -> None:
    replied = message.reply_to_message
    assert replied is not None
    match = REFERENCE.search(replied.text or "")
    assert match is not None
    text = (message.text or "").strip()
    if text:
        await _save_note(message, runtime, match.group(1), text)


async def _export(message: Message, bot: Bot, runtime: Runtime, args: list[str]) -> None:
    assert runtime.leads is not None
    content, locale = runtime.engine.content, _locale(runtime)
    query = parse_list_args(args, content)
    await bot.send_chat_action(message.chat.id, "upload_document")
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "leads.csv"
        count = await _write_export(runtime, query, path)
        size = path.stat().st_size
        if size > DOCUMENT_LIMIT:
            await message.answer(content.t("staff_export_too_big", locale, size=size // (1024 * 1024)))
            return
        stamp = _stamp(runtime)
        await message.answer_document(
            FSInputFile(path, filename=f"leads-{stamp}.csv"),
            caption=content.t(
                "staff_export_caption", locale, count=count, filters=filters_text(content, query, locale)
            ),
        )


async def _write_export(runtime: Runtime, query: Any, path: Path) -> int:
    assert runtime.leads is not None
    out = await asyncio.to_thread(path.open, "w", encoding="utf-8", newline="")
    try:
        return await export_leads(runtime.leads, out, fmt="csv", query=query, bom=True)
    finally:
        out.close()


def _stamp(runtime: Runtime) -> str:
    from datetime import datetime

    return datetime.now(runtime.settings.zone).strftime("%Y%m%d-%H%M")


async def _stats(message: Message, bot: Bot, runtime: Runtime, args: list[str]) -> None:
    assert runtime.leads is not None
    content, locale = runtime.engine.content, _locale(runtime)
    stats = await runtime.leads.stats(zone=runtime.settings.zone, days=7, weeks=4)
    titles = scheme_titles(content, locale)
    await message.answer(
        content.t(
            "staff_stats",
            locale,
            total=stats.total,
            days=[(d.strftime("%m-%d"), n) for d, n in stats.days],
            weeks=[(d.strftime("%m-%d"), n) for d, n in stats.weeks],
            schemes=[(titles.get(s, s), n) for s, n in stats.by_scheme.items()],
            statuses=[(status_label(content, s, locale), stats.by_status[s]) for s in LEAD_STATUSES],
        )
    )
    if runtime.analytics is not None:  # where prospects go and what they ask (no personal data)
        totals = await runtime.analytics.totals(days=7)
        await message.answer(totals.report(content, locale)[:4000], parse_mode=None)


# --- buttons ----------------------------------------------------------------------------------------


async def on_button(query: CallbackQuery, bot: Bot, runtime: Runtime) -> Any:
    message = query.message
    chat = message.chat if message is not None else None
    staff = runtime.staff
    if (
        runtime.leads is None
        or not staff.in_staff_place(chat, query.from_user)  # a card or list shown elsewhere: nothing
        or not await staff.is_staff(bot, query.from_user, chat, trust_chat=False)
    ):
        return await query.answer()
    data = query.data or ""
    if data.startswith("sl:"):
        return await _list_button(query, runtime, data)
    if data.startswith("st:"):
        return await _alert_button(query, bot, runtime, data)
    return await _card_button(query, bot, runtime, data)


async def _edit(query: CallbackQuery, text: str, markup: Any) -> None:
    message = query.message
    if not isinstance(message, Message):
        return
    try:
        await message.edit_text(text, reply_markup=markup)
    except TelegramBadRequest as e:
        if "not modified" not in e.message:
            raise


async def _list_button(query: CallbackQuery, runtime: Runtime, data: str) -> None:
    assert runtime.leads is not None
    content = runtime.engine.content
    lead_query = parse_list_data(data, content)
    if lead_query is None:
        await query.answer()
        return
    await query.answer()
    page = await runtime.leads.search(lead_query)
    await _edit(query, *render_list(content, runtime.settings, page, _locale(runtime)))


async def _card_button(query: CallbackQuery, bot: Bot, runtime: Runtime, data: str) -> None:
    assert runtime.leads is not None
    content, locale = runtime.engine.content, _locale(runtime)
    parts = data.split(":")
    if len(parts) != 3 or not (parts[1].isascii() and parts[1].isdigit()):
        await query.answer()
        return
    lead_id, action = int(parts[1]), parts[2]
    user = query.from_user
    lead = await runtime.leads.get(lead_id)
    if lead is None:
        await query.answer(content.t("staff_no_lead", locale, ref=str(lead_id)))
        return
    toast = None
    if action.startswith("s.") and action[2:] in LEAD_STATUSES:
        lead = await runtime.leads.set_status(lead_id, action[2:], actor=actor(user)) or lead
        toast = content.t(
            "staff_status_set",
            locale,
            reference=lead.reference,
            status=status_label(content, lead.status, locale),
        )
    elif action == "me":
        lead = await runtime.leads.assign(lead_id, who(user), actor=actor(user)) or lead
        toast = content.t("staff_assigned", locale, reference=lead.reference, who=who(user))
    elif action == "n":
        await query.answer()
        if query.message is not None:
            await bot.send_message(
                query.message.chat.id,
                content.t("staff_note_prompt", locale, reference=lead.reference),
                reply_markup=ForceReply(selective=True, input_field_placeholder=lead.reference),
                message_thread_id=getattr(query.message, "message_thread_id", None),
            )
        return
    elif action not in ("v", "V"):
        await query.answer()
        return
    await query.answer(toast)
    text, markup = render_card(content, runtime.settings, lead, await runtime.leads.events(lead_id), locale)
    if action == "V" and query.message is not None:  # from an alert: the card comes below it
        await bot.send_message(
            query.message.chat.id,
            text,
            reply_markup=markup,
            message_thread_id=getattr(query.message, "message_thread_id", None),
        )
        return
    await _edit(query, text, markup)


async def _alert_button(query: CallbackQuery, bot: Bot, runtime: Runtime, data: str) -> Any:
    """The buttons on a new-lead alert: take it, or mark it contacted; the alert shows who did."""
    assert runtime.leads is not None
    parts = data.split(":")
    if len(parts) != 3 or not (parts[2].isascii() and parts[2].isdigit()):
        return await query.answer()
    action, lead_id = parts[1], int(parts[2])
    user = query.from_user
    content = runtime.engine.content
    locale = content.default_locale
    if action == "take":
        lead = await runtime.leads.assign(lead_id, who(user), actor=actor(user))
        footer = content.t("staff_taken_by", locale, who=who(user))
    elif action == "done":
        lead = await runtime.leads.set_status(lead_id, "contacted", actor=actor(user))
        footer = content.t("staff_marked_contacted", locale, who=who(user))
    else:
        return await query.answer()
    if lead is None:
        return await query.answer()
    await query.answer(footer)
    message = query.message
    if message is not None:
        with contextlib.suppress(TelegramBadRequest):
            await bot.edit_message_text(
                chat_id=message.chat.id,
                message_id=message.message_id,
                text=alert_text(content, lead, updated=False, footer=footer),
                reply_markup=alert_buttons(content, lead.id),
            )
    return None


def build_router() -> Router:
    router = Router(name="staff")
    router.message.register(on_command, staff_command)
    router.message.register(on_note_reply, note_reply)
    router.callback_query.register(on_button, staff_button)
    return router
