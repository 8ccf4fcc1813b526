"""Loads a chat's conversation before its update is handled and saves it after.

It holds the conversation's lock (in-process, or Redis for several replicas) from
loading to saving: one chat's updates are handled one at a time and in order. An update whose id
is not newer than the last one handled for the chat is a duplicate (a redelivery, a double
delivery after a restart) and is dropped.

Groups' updates (the staff group's: commands, notes, answers in live chats) are deduplicated the
same way, under the group's lock, in a record of the group's own that holds only the ids of the
updates handled (no engine state, nothing personal). No flood gate applies to groups, and their
handlers get no ``turn``.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiogram import BaseMiddleware, Bot
from aiogram.dispatcher.event.bases import UNHANDLED
from aiogram.exceptions import TelegramAPIError
from aiogram.types import Chat, TelegramObject, Update, User

from bot.prospect import ProspectId, telegram_key
from bot.storage import Record
from bot.telegram.runtime import Runtime

log = logging.getLogger(__name__)

Handler = Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]]


class ConversationMiddleware(BaseMiddleware):
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        chat: Chat | None = data.get("event_chat")
        if not isinstance(event, Update) or chat is None:
            return await handler(event, data)
        if chat.type != "private":
            return await self._in_group(handler, event, data, chat)
        bot: Bot = data["bot"]
        runtime = self.runtime
        if not await runtime.flood.admit(chat.id, lambda text: self._flood_notice(bot, chat.id, data, text)):
            await _answer(event)
            return UNHANDLED
        if chat.id in runtime.blocked:
            await runtime.blocked.unmark(chat.id)  # they write again: they unblocked the bot
        user: User | None = data.get("event_from_user")
        async with runtime.core.conversation(
            telegram_key(chat.id),
            update_id=event.update_id,
            prospect=ProspectId.telegram(chat.id, user.username if user else None),
            name=user.full_name if user else None,
            language=user.language_code if user else None,
        ) as turn:
            if turn is None:  # handled before: a redelivery
                await _answer(event)
                return UNHANDLED
            data["turn"] = turn
            return await handler(event, data)

    async def _in_group(self, handler: Handler, event: Update, data: dict[str, Any], chat: Chat) -> Any:
        """A group's update, handled once. The group's lock is taken here only: handlers may take
        a prospect's lock (``/close`` in a live chat), never the group's."""
        key = telegram_key(chat.id)
        core = self.runtime.core
        async with core.locks.lock(key):
            record = await core.store.load(key) or Record()
            if record.seen(event.update_id):
                log.info("update %s for %s is a duplicate; dropped", event.update_id, key)
                await _answer(event)
                return UNHANDLED
            try:
                result = await handler(event, data)
            except Exception:
                if not core.redeliver_failures:
                    await self._handled_in_group(key, record, event.update_id)
                raise
            await self._handled_in_group(key, record, event.update_id)
            return result

    async def _handled_in_group(self, key: str, record: Record, update_id: int) -> None:
        last, recent = record.after(update_id)
        # Written at once: a staff note or answer redelivered after a crash must not count twice.
        await self.runtime.core.store.save(key, Record(last_update=last, recent=recent), durable=True)

    async def _flood_notice(self, bot: Bot, chat_id: int, data: dict[str, Any], text: str) -> None:
        user = data.get("event_from_user")
        engine = self.runtime.engine
        locale = engine.locale_for(getattr(user, "language_code", None))
        await bot.send_message(chat_id, engine.content.t(text, locale))


async def _answer(update: Update) -> None:
    """Stop the spinner of a press that is not handled (a duplicate, a flood). Telegram may refuse
    (a redelivered press was answered the first time): nothing depends on it."""
    if update.callback_query is None:
        return
    try:
        await update.callback_query.answer()
    except TelegramAPIError as e:
        log.info("could not answer a press that is dropped: %s", e)
