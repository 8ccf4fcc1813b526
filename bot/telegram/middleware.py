"""Loads a chat's conversation before its update is handled and saves it after.

It holds the chat's lock of an event isolation (in-process, or Redis for several replicas) from
loading to saving: one chat's updates are handled one at a time and in order. An update whose id
is not newer than the last one handled for the chat is a duplicate (a redelivery, a double
delivery after a restart) and is dropped.

Groups' updates (the staff group's: commands, notes, answers in live chats) are deduplicated the
same way, under the group's lock, in a record of the group's own that holds only the ids of the
updates handled (no engine state, nothing personal). No flood gate applies to groups, and their
handlers get no ``chat_session``.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiogram import BaseMiddleware, Bot
from aiogram.dispatcher.event.bases import UNHANDLED
from aiogram.exceptions import TelegramAPIError
from aiogram.fsm.storage.base import BaseEventIsolation, StorageKey
from aiogram.types import Chat, TelegramObject, Update

from bot.prospect import telegram_key
from bot.storage import Record
from bot.telegram.runtime import EMPTY, Runtime

log = logging.getLogger(__name__)


def conversation_key(chat: Chat) -> str:
    return telegram_key(chat.id)


class ConversationMiddleware(BaseMiddleware):
    def __init__(self, runtime: Runtime, isolation: BaseEventIsolation) -> None:
        self.runtime = runtime
        self.isolation = isolation

    async def __call__(
        self,
        handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
        event: TelegramObject,
        data: dict[str, Any],
    ) -> Any:
        chat: Chat | None = data.get("event_chat")
        if not isinstance(event, Update) or chat is None:
            return await handler(event, data)
        if chat.type != "private":
            return await self._in_group(handler, event, data, chat)
        key = conversation_key(chat)
        bot: Bot = data["bot"]
        runtime = self.runtime
        if not await runtime.flood.admit(chat.id, lambda text: self._flood_notice(bot, chat.id, data, text)):
            await _answer(event)
            return UNHANDLED
        if chat.id in runtime.blocked:
            await runtime.blocked.unmark(chat.id)  # they write again: they unblocked the bot
        async with self.isolation.lock(StorageKey(bot_id=bot.id, chat_id=chat.id, user_id=chat.id)):
            return await self._handle(handler, event, data, key)

    async def _handle(
        self,
        handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
        event: Update,
        data: dict[str, Any],
        key: str,
    ) -> Any:
        store = self.runtime.store
        record = await store.load(key) or EMPTY
        if record.seen(event.update_id):
            log.info("update %s for %s is a duplicate; dropped", event.update_id, key)
            await _answer(event)
            return UNHANDLED
        session = self.runtime.session_of(key, event_chat_id(data), data["bot"], record, event.update_id)
        data["chat_session"] = session
        try:
            result = await handler(event, data)
        except Exception:
            if not self.runtime.redeliver_failures:
                await self.runtime.keep(session, event.update_id)
            # else: not recorded as handled, so Telegram's redelivery is handled from the start
            raise
        await self.runtime.keep(session, event.update_id)
        return result

    async def _in_group(
        self,
        handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
        event: Update,
        data: dict[str, Any],
        chat: Chat,
    ) -> Any:
        """A group's update, handled once. The group's lock is taken here only: handlers may take
        a prospect's lock (``/close`` in a live chat), never the group's."""
        key = conversation_key(chat)
        bot: Bot = data["bot"]
        store = self.runtime.store
        async with self.isolation.lock(StorageKey(bot_id=bot.id, chat_id=chat.id, user_id=chat.id)):
            record = await store.load(key) or EMPTY
            if record.seen(event.update_id):
                log.info("update %s for %s is a duplicate; dropped", event.update_id, key)
                await _answer(event)
                return UNHANDLED
            try:
                result = await handler(event, data)
            except Exception:
                if not self.runtime.redeliver_failures:
                    await self._handled_in_group(key, record, event.update_id)
                raise
            await self._handled_in_group(key, record, event.update_id)
            return result

    async def _handled_in_group(self, key: str, record: Record, update_id: int) -> None:
        last, recent = record.after(update_id)
        # Written at once: a staff note or answer redelivered after a crash must not count twice.
        await self.runtime.store.save(key, Record(last_update=last, recent=recent), durable=True)

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


def event_chat_id(data: dict[str, Any]) -> int:
    chat: Chat = data["event_chat"]
    return chat.id
