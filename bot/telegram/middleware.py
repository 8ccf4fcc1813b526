"""Loads a chat's conversation before its update is handled and saves it after.

Registered as an outer middleware on updates, after aiogram's FSM middleware, so it runs inside
the per-chat lock of the dispatcher's event isolation: one chat's updates are handled one at a
time and in order. An update whose id is not newer than the last one handled for the chat is a
duplicate (a redelivery, a double delivery after a restart) and is dropped.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiogram import BaseMiddleware
from aiogram.dispatcher.event.bases import UNHANDLED
from aiogram.types import Chat, TelegramObject, Update

from bot.telegram.runtime import ChatSession, Runtime

log = logging.getLogger(__name__)


def conversation_key(chat: Chat) -> str:
    return str(chat.id)


class ConversationMiddleware(BaseMiddleware):
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    async def __call__(
        self,
        handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
        event: TelegramObject,
        data: dict[str, Any],
    ) -> Any:
        chat: Chat | None = data.get("event_chat")
        if not isinstance(event, Update) or chat is None or chat.type != "private":
            return await handler(event, data)
        key = conversation_key(chat)
        store = self.runtime.store
        record = await store.load(key) or {}
        last = record.get("u")
        if last is not None and event.update_id <= int(last):
            log.info("update %s for %s is a duplicate; dropped", event.update_id, key)
            if event.callback_query is not None:
                await event.callback_query.answer()
            return UNHANDLED
        session = ChatSession(key=key, record=record, update_id=event.update_id)
        data["chat_session"] = session
        try:
            return await handler(event, data)
        finally:
            await store.save(key, {**session.record, "u": event.update_id})
