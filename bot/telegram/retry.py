"""Retrying Bot API requests that failed for a passing reason.

- 429 Too Many Requests: wait ``retry_after`` (up to a minute), then again.
- 5xx and network errors or timeouts: again after 0.5 s, 1 s, 2 s.
- Anything else (400, 403 "bot was blocked by the user", ...) is not retried.

Installed on the bot's session, so every request (replies, edits, callback answers) has it. The
staff alerts have their own, longer retries on top (the outbox), which survive restarts.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from aiogram import Bot
from aiogram.client.session.middlewares.base import BaseRequestMiddleware, NextRequestMiddlewareType
from aiogram.exceptions import TelegramNetworkError, TelegramRetryAfter, TelegramServerError
from aiogram.methods import TelegramMethod
from aiogram.methods.base import TelegramType

log = logging.getLogger(__name__)

MAX_WAIT = 60.0


class RetryMiddleware(BaseRequestMiddleware):
    def __init__(self, *, attempts: int = 4, base_pause: float = 0.5) -> None:
        self.attempts = attempts
        self.base_pause = base_pause

    async def __call__(
        self,
        make_request: NextRequestMiddlewareType[TelegramType],
        bot: Bot,
        method: TelegramMethod[TelegramType],
    ) -> Any:
        for attempt in range(1, self.attempts + 1):
            try:
                return await make_request(bot, method)
            except TelegramRetryAfter as e:
                if attempt == self.attempts or e.retry_after > MAX_WAIT:
                    raise
                log.warning("%s: flood control, waiting %ss", method.__api_method__, e.retry_after)
                await asyncio.sleep(e.retry_after)
            except (TelegramServerError, TelegramNetworkError) as e:
                if attempt == self.attempts:
                    raise
                pause = self.base_pause * 2 ** (attempt - 1)
                log.warning(
                    "%s failed (%s); retrying in %.1fs", method.__api_method__, type(e).__name__, pause
                )
                await asyncio.sleep(pause)
        raise AssertionError("unreachable")
