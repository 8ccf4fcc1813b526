"""Live handoff: a prospect talks to a person through the bot.

The engine's ``live`` handoff step emits ``live`` on entering, ``relay`` for every message the
prospect sends while there, and ``live_end`` when they leave. This desk carries them out: it posts
the prospect's messages in the staff group (in a forum topic of their own when the group has
topics, otherwise as messages staff reply to), and sends staff's answers back as the bot
(``copyMessage``: text, pictures, files alike). ``/close`` from staff ends the chat and the bot
resumes. Outside working hours the prospect is told when to expect an answer, and the enquiry is
kept as a lead; their messages still reach the group.
"""

from __future__ import annotations

import contextlib
import logging

from aiogram import Bot
from aiogram.exceptions import TelegramAPIError, TelegramForbiddenError
from aiogram.types import Message, User

from bot.db.models import LiveChat, utcnow
from bot.engine.events import (
    Effect,
    ForgetRequested,
    LiveChatEnded,
    LiveChatStarted,
    LiveClosed,
    LiveRelay,
)
from bot.leads.repository import LeadSubmission
from bot.prospect import ProspectId
from bot.staff.livechats import LiveChatRepository
from bot.telegram.presenter import present
from bot.telegram.runtime import ChatSession, Runtime

log = logging.getLogger(__name__)

RELAY_TEXT = 3800
"""What a prospect typed is cut to this length in the staff group (with the name it stays < 4096)."""
KINDS = {
    "photo": {"zh": "一张图片", "en": "photo"},
    "document": {"zh": "一个文件", "en": "file"},
    "voice": {"zh": "一条语音", "en": "voice message"},
    "video": {"zh": "一段视频", "en": "video"},
    "sticker": {"zh": "一个贴纸", "en": "sticker"},
    "location": {"zh": "一个位置", "en": "location"},
}


class LiveDesk:
    def __init__(self, runtime: Runtime, repo: LiveChatRepository) -> None:
        self.runtime = runtime
        self.repo = repo
        self._forum: dict[int, bool] = {}

    @property
    def locale(self) -> str:
        return self.runtime.engine.content.default_locale

    # --- the prospect's side (effects of the engine) --------------------------------------------------

    async def on_effect(self, effect: Effect, chat: ChatSession, user: User | None) -> list[str]:
        if chat.bot is None or chat.chat_id is None or user is None:
            return []
        if isinstance(effect, LiveChatStarted):
            return await self.open(chat.bot, chat, user, effect)
        if isinstance(effect, LiveRelay):
            return await self.relay(chat.bot, chat, user, effect)
        if isinstance(effect, LiveChatEnded):
            await self.prospect_left(chat.bot, chat.chat_id, user)
        if isinstance(effect, ForgetRequested):
            await self.forgotten(chat.bot, chat.chat_id)
        return []

    async def open(self, bot: Bot, chat: ChatSession, user: User, effect: LiveChatStarted) -> list[str]:
        settings, content = self.runtime.settings, self.runtime.engine.content
        assert chat.chat_id is not None
        if await self.repo.open_for(ProspectId.telegram(chat.chat_id)) is not None:
            return []
        now = utcnow()
        offline = not settings.hours.is_open(now)
        group = settings.staff_chat_id
        locale = effect.locale or content.default_locale
        question = effect.question
        reference = None
        lead_id = None
        leads = self.runtime.leads
        if (offline or group is None) and leads is not None:
            # Nobody may read it for a while: keep the enquiry as a lead, so it is not lost.
            saved = await leads.submit(
                LeadSubmission.from_effect(
                    effect,  # kept as an enquiry
                    key=f"{chat.key}:{chat.update_id}",
                    prospect=ProspectId.telegram(user.id, user.username),
                    transcript=chat.transcript,
                )
            )
            reference, lead_id = saved.reference, saved.lead_id
            if self.runtime.alerts is not None:
                self.runtime.alerts.wake()
        notices = []
        if offline or group is None:
            opening = settings.hours.next_opening(now).astimezone(settings.zone)
            notices.append(
                content.t(
                    "live_offline",
                    locale,
                    hours=settings.working_hours,
                    when=opening.strftime("%Y-%m-%d %H:%M"),
                    reference=reference or "—",
                )
            )
        if group is None:
            log.warning("a prospect asked for a live chat, but STAFF_CHAT_ID is not set")
            return notices
        topic_id = await self._topic(bot, group, user)
        origin = effect.origin
        flow = content.flows.get(origin or "")
        intro = content.t(
            "live_staff_intro",
            self.locale,
            name=user.full_name,
            username=user.username,
            user_id=user.id,
            origin=content.localise(flow.title, self.locale) if flow else None,
            question=question,
            reference=reference,
            offline=offline,
            topic=topic_id is not None,
        )
        sent = await bot.send_message(group, intro, message_thread_id=topic_id)
        live = await self.repo.open(
            prospect=ProspectId.telegram(chat.chat_id),
            staff_chat_id=group,
            topic_id=topic_id,
            locale=locale,
            lead_id=lead_id,
        )
        await self.repo.remember(live, sent.message_id)
        return notices

    async def _topic(self, bot: Bot, group: int, user: User) -> int | None:
        """A forum topic for this prospect, if the staff group has topics."""
        if group not in self._forum:
            try:
                info = await bot.get_chat(group)
                self._forum[group] = bool(info.is_forum)
            except TelegramAPIError as e:
                log.warning("could not read the staff group: %s", e)
                return None
        if not self._forum[group]:
            return None
        try:
            topic = await bot.create_forum_topic(group, name=f"💬 {user.full_name} · {user.id}"[:128])
        except TelegramAPIError as e:  # no right to manage topics: reply threads instead
            log.warning("could not create a forum topic: %s", e)
            return None
        return topic.message_thread_id

    async def relay(self, bot: Bot, chat: ChatSession, user: User, effect: LiveRelay) -> list[str]:
        assert chat.chat_id is not None
        notices: list[str] = []
        if self.runtime.settings.staff_chat_id is None:
            return notices  # nobody to pass it to; the enquiry was kept when the chat began
        prospect = ProspectId.telegram(chat.chat_id)
        live = await self.repo.open_for(prospect)
        if live is None:  # not opened (no group then, or lost): open it now
            where = (chat.state.flow, chat.state.step) if chat.state is not None else ("", "")
            notices = await self.open(bot, chat, user, LiveChatStarted(*where, locale=self.locale))
            live = await self.repo.open_for(prospect)
            if live is None:
                return notices
        content = self.runtime.engine.content
        if effect.kind == "text":
            text = (effect.text or "")[:RELAY_TEXT]
            sent = await bot.send_message(
                live.staff_chat_id,
                content.t("live_from_prospect", self.locale, name=user.full_name, text=text),
                message_thread_id=live.topic_id,
            )
            await self.repo.remember(live, sent.message_id)
            return notices
        message = chat.message
        if message is None:
            return notices
        kind = KINDS.get(effect.kind, {}).get(self.locale) or effect.kind
        header = await bot.send_message(
            live.staff_chat_id,
            content.t("live_prospect_sent", self.locale, name=user.full_name, kind=kind),
            message_thread_id=live.topic_id,
        )
        await self.repo.remember(live, header.message_id)
        copied = await bot.copy_message(
            live.staff_chat_id, chat.chat_id, message.message_id, message_thread_id=live.topic_id
        )
        await self.repo.remember(live, copied.message_id)
        return notices

    async def prospect_left(self, bot: Bot, chat_id: int, user: User) -> None:
        live = await self.repo.open_for(ProspectId.telegram(chat_id))
        if live is None or not await self.repo.close(live.id, "prospect"):
            return
        content = self.runtime.engine.content
        with contextlib.suppress(TelegramAPIError):
            await bot.send_message(
                live.staff_chat_id,
                content.t("live_prospect_left", self.locale, name=user.full_name),
                message_thread_id=live.topic_id,
            )
        await self._close_topic(bot, live)

    async def forgotten(self, bot: Bot, chat_id: int) -> None:
        """/forget: an open live chat ends (staff are told, without a name); nothing staff write
        there reaches the prospect any more (the records go with the rest of their data)."""
        live = await self.repo.open_for(ProspectId.telegram(chat_id))
        if live is None or not await self.repo.close(live.id, "forgotten"):
            return
        content = self.runtime.engine.content
        with contextlib.suppress(TelegramAPIError):
            await bot.send_message(
                live.staff_chat_id, content.t("live_forgotten", self.locale), message_thread_id=live.topic_id
            )
        await self._close_topic(bot, live)

    # --- staff's side (messages in the staff group) ---------------------------------------------------

    async def find(self, message: Message) -> LiveChat | None:
        """The live chat a staff-group message belongs to: by its forum topic, or by the bot
        message it replies to."""
        group = message.chat.id
        if message.is_topic_message and message.message_thread_id is not None:
            live = await self.repo.by_topic(group, message.message_thread_id)
            if live is not None:
                return live
        replied = message.reply_to_message
        if replied is not None:
            return await self.repo.by_message(group, replied.message_id)
        return None

    async def answer(self, bot: Bot, message: Message, live: LiveChat) -> None:
        """A staff member's message, to the prospect as the bot."""
        content = self.runtime.engine.content
        if live.closed_at is not None:
            await message.reply(content.t("live_not_open", self.locale))
            return
        try:
            await bot.copy_message(_prospect_chat(live), message.chat.id, message.message_id)
        except TelegramForbiddenError:
            await self.repo.close(live.id, "blocked")
            await message.reply(content.t("live_blocked", self.locale))

    async def close(self, bot: Bot, message: Message, live: LiveChat, by: str) -> None:
        """``/close`` from staff: end the chat; the prospect is told and the bot resumes."""
        content = self.runtime.engine.content
        if not await self.repo.close(live.id, by):
            await message.reply(content.t("live_not_open", self.locale))
            return
        await message.answer(content.t("live_closed_by", self.locale, who=by))
        chat_id = _prospect_chat(live)
        async with self.runtime.conversation(bot, chat_id) as chat:
            assert chat is not None
            if self.runtime.engine.in_live_chat(chat.state):
                result = self.runtime.engine.handle(chat.state, LiveClosed())
                try:
                    await present(bot, self.runtime, chat_id, chat, result)
                except TelegramForbiddenError:
                    log.info("live chat %s: the prospect has blocked the bot", live.id)
        await self._close_topic(bot, live)

    async def _close_topic(self, bot: Bot, live: LiveChat) -> None:
        if live.topic_id is not None:
            with contextlib.suppress(TelegramAPIError):
                await bot.close_forum_topic(live.staff_chat_id, live.topic_id)


def _prospect_chat(live: LiveChat) -> int:
    """The Telegram chat of a live chat's prospect."""
    return ProspectId(live.channel, live.external_id or "").telegram_chat
