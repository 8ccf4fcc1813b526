"""The HTTP session to the Bot API: aiogram's aiohttp session, serialising each keyboard once.

Most of what the bot sends carries an inline keyboard, and many prospects are shown the same
keyboard (the presenter builds each distinct one once). Turning a keyboard into JSON through
pydantic costs more than the rest of a request, so it is done once per keyboard object.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.methods import TelegramMethod
from aiogram.methods.base import TelegramType
from aiogram.types import InlineKeyboardMarkup, InputFile
from aiohttp import FormData

MARKUP_CACHE_SIZE = 4096


class BotSession(AiohttpSession):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._markups: OrderedDict[int, tuple[InlineKeyboardMarkup, str]] = OrderedDict()

    def _markup_json(self, bot: Bot, markup: InlineKeyboardMarkup) -> str:
        key = id(markup)
        hit = self._markups.get(key)
        if hit is not None and hit[0] is markup:
            self._markups.move_to_end(key)
            return hit[1]
        encoded = self.prepare_value(markup.model_dump(warnings=False), bot=bot, files={})
        self._markups[key] = (markup, encoded)  # holds the object, so its id is not reused
        while len(self._markups) > MARKUP_CACHE_SIZE:
            self._markups.popitem(last=False)
        return str(encoded)

    def build_form_data(self, bot: Bot, method: TelegramMethod[TelegramType]) -> FormData:
        markup = getattr(method, "reply_markup", None)
        if not isinstance(markup, InlineKeyboardMarkup):
            return super().build_form_data(bot, method)
        form = FormData(quote_fields=False)
        files: dict[str, InputFile] = {}
        for key, value in method.model_dump(warnings=False, exclude={"reply_markup"}).items():
            prepared = self.prepare_value(value, bot=bot, files=files)
            if prepared:
                form.add_field(key, prepared)
        form.add_field("reply_markup", self._markup_json(bot, markup))
        for key, file in files.items():
            form.add_field(key, file.read(bot), filename=file.filename or key)
        return form
