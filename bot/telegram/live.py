"""The Telegram staff group as the room where staff read and answer live chats.

A prospect's messages (from any channel) are posted in the staff group: in a forum topic of
their own when the group has topics, otherwise as messages staff reply to. Staff's answers go back
to the prospect: to a Telegram prospect as the bot (``copyMessage``: text, pictures, files alike),
to a prospect on another channel as text, through the conversation core. ``/close`` from staff
ends the chat and the bot resumes. The live chats' records and the prospect's side are the
channel-neutral ``bot.conversation.live.LiveDesk``.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Sequence

from aiogram import Bot
from aiogram.exceptions import TelegramAPIError, TelegramForbiddenError
from aiogram.types import Message

from bot.content import Content
from bot.conversation.live import LiveDesk, Opened
from bot.conversation.turn import Turn
from bot.db.models import LiveChat
from bot.prospect import TELEGRAM, ProspectId, channel_name

log = logging.getLogger(__name__)

KINDS = {
    "photo": {"zh": "一张图片", "en": "photo"},
    "document": {"zh": "一个文件", "en": "file"},
    "voice": {"zh": "一条语音", "en": "voice message"},
    "video": {"zh": "一段视频", "en": "video"},
    "sticker": {"zh": "一个贴纸", "en": "sticker"},
    "location": {"zh": "一个位置", "en": "location"},
    "image": {"zh": "一张图片", "en": "picture"},
    "shortvideo": {"zh": "一段视频", "en": "video"},
    "link": {"zh": "一个链接", "en": "link"},
    "file": {"zh": "一个文件", "en": "file"},
}


class TelegramStaffRoom:
    """``StaffRoom`` in the Telegram group ``group``."""

    def __init__(self, bot: Bot, group: int, locale: Callable[[], str]) -> None:
        self.bot = bot
        self.group = group
        self.locale = locale
        self.desk: LiveDesk | None = None
        """Set once the desk is built (it holds this room)."""
        self._forum: dict[int, bool] = {}

    @property
    def content(self) -> Content:
        assert self.desk is not None
        return self.desk.content

    async def open(self, prospect: ProspectId, name: str, intro: Callable[[bool], str]) -> Opened:
        topic_id = await self._topic(name, prospect)
        sent = await self.bot.send_message(
            self.group, intro(topic_id is not None), message_thread_id=topic_id
        )
        return Opened(self.group, topic_id, sent.message_id)

    async def _topic(self, name: str, prospect: ProspectId) -> int | None:
        """A forum topic for this prospect, if the staff group has topics."""
        group = self.group
        if group not in self._forum:
            try:
                info = await self.bot.get_chat(group)
                self._forum[group] = bool(info.is_forum)
            except TelegramAPIError as e:
                log.warning("could not read the staff group: %s", e)
                return None
        if not self._forum[group]:
            return None
        try:
            topic = await self.bot.create_forum_topic(group, name=f"💬 {name} · {prospect.external_id}"[:128])
        except TelegramAPIError as e:  # no right to manage topics: reply threads instead
            log.warning("could not create a forum topic: %s", e)
            return None
        return topic.message_thread_id

    async def post(self, live: LiveChat, text: str) -> int:
        sent = await self.bot.send_message(live.staff_chat_id, text, message_thread_id=live.topic_id)
        return sent.message_id

    async def relay(self, live: LiveChat, turn: Turn, name: str, kind: str) -> Sequence[int]:
        message = turn.attachment
        locale = self.locale()
        what = KINDS.get(kind, {}).get(locale) or kind
        if not isinstance(message, Message):  # from another channel: it cannot be shown here
            return [
                await self.post(
                    live, self.content.t("live_prospect_sent_unseen", locale, name=name, kind=what)
                )
            ]
        header = await self.post(live, self.content.t("live_prospect_sent", locale, name=name, kind=what))
        copied = await self.bot.copy_message(
            live.staff_chat_id, message.chat.id, message.message_id, message_thread_id=live.topic_id
        )
        return [header, copied.message_id]

    async def close(self, live: LiveChat) -> None:
        if live.topic_id is not None:
            with contextlib.suppress(TelegramAPIError):
                await self.bot.close_forum_topic(live.staff_chat_id, live.topic_id)

    # --- staff's side (messages in the staff group) ---------------------------------------------------

    async def find(self, message: Message) -> LiveChat | None:
        """The live chat a staff-group message belongs to: by its forum topic, or by the bot
        message it replies to."""
        assert self.desk is not None
        repo = self.desk.repo
        group = message.chat.id
        if message.is_topic_message and message.message_thread_id is not None:
            live = await repo.by_topic(group, message.message_thread_id)
            if live is not None:
                return live
        replied = message.reply_to_message
        if replied is not None:
            return await repo.by_message(group, replied.message_id)
        return None

    async def answer(self, message: Message, live: LiveChat) -> None:
        """A staff member's message, to the prospect: as the bot in Telegram; as text elsewhere."""
        assert self.desk is not None
        locale = self.locale()
        if live.closed_at is not None:
            await message.reply(self.content.t("live_not_open", locale))
            return
        if live.channel == TELEGRAM:
            try:
                chat = LiveDesk.prospect_of(live).telegram_chat
                await self.bot.copy_message(chat, message.chat.id, message.message_id)
            except TelegramForbiddenError:
                await self.desk.repo.close(live.id, "blocked")
                await message.reply(self.content.t("live_blocked", locale))
            return
        html = message.html_text if (message.text or message.caption) else ""
        if not html:  # a picture, a file...: the web chat shows text only
            await message.reply(self.content.t("live_text_only", locale, channel=channel_name(live.channel)))
            return
        if not await self.desk.answer(live, html):
            await message.reply(self.content.t("live_not_delivered", locale))

    async def close_by(self, message: Message, live: LiveChat, by: str) -> None:
        """``/close`` from staff: end the chat; the prospect is told and the bot resumes."""
        assert self.desk is not None
        locale = self.locale()
        if not await self.desk.close(live, by):
            await message.reply(self.content.t("live_not_open", locale))
            return
        await message.answer(self.content.t("live_closed_by", locale, who=by))
