"""The HTTP session to the Bot API: aiogram's aiohttp session, made cheaper where the bot spends
its time: building requests, parsing replies.

Most of what the bot sends carries an inline keyboard, and many prospects are shown the same
keyboard (the presenter builds each distinct one once). Turning a keyboard into JSON through
pydantic costs more than the rest of a request, so it is done once per keyboard object.

aiogram parses each reply with ``Response[method.__returning__]``, a generic pydantic model that
pydantic caches only weakly: once the garbage collector has run, the next reply rebuilds the model
(5-7 ms of schema building, for every call after a collection: under load a tenth of the bot's
time). The session keeps a strong reference to each one it has used.

Telegram answers every message sent or edited with the whole message: its text, entities and
keyboard, which the bot itself just sent. Validating all of that into aiogram's models costs more
than the rest of the reply; the bot reads only the message's id (and chat, thread, date). So a
successful reply to ``sendMessage`` or ``editMessageText`` is parsed to those fields alone
(``MESSAGE_FIELDS``): the ``Message`` returned has no ``text`` or ``reply_markup``. Errors, and the
replies to every other method (documents, copies, ...), are parsed by aiogram in full.

The url-encoded body is built from the fields directly, each value percent-encoded once per
distinct value (``Quoter``): a reply's text is mostly one of the content's views, sent to many
prospects, and the standard library quotes a Chinese text byte by byte in Python (about 25 µs for a
300-character reply, as much as the rest of the request).

JSON goes through orjson both ways (``bot.jsonio``).
"""

from __future__ import annotations

import re
import sys
from collections import OrderedDict
from http import HTTPStatus
from typing import Any, cast
from urllib.parse import quote_plus

from aiogram import Bot
from aiogram.client.default import Default
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.exceptions import ClientDecodeError, TelegramNetworkError
from aiogram.methods import EditMessageText, SendMessage, TelegramMethod
from aiogram.methods.base import Response, TelegramType
from aiogram.types import InlineKeyboardMarkup, InputFile, LinkPreviewOptions
from aiohttp import ClientError, ClientTimeout, FormData
from pydantic import ValidationError

from bot import jsonio

MARKUP_CACHE_SIZE = 4096
MESSAGE_FIELDS = frozenset({"message_id", "message_thread_id", "is_topic_message", "date", "chat", "from"})
"""What is parsed of a message the bot has sent or edited as text."""
FORM_HEADERS = {"Content-Type": "application/x-www-form-urlencoded"}
LEAN_REPLIES = (SendMessage, EditMessageText)
"""The methods whose replies are parsed to ``MESSAGE_FIELDS`` (nearly all the bot sends)."""
QUOTE_BUDGET = 4 << 20
"""Bytes of values and their encodings remembered at most (their objects' sizes and the entry's)."""
QUOTE_ENTRY = 100
"""Bytes an entry of the cache itself takes, beyond its two strings."""
QUOTE_MAX_CHARS = 4096
"""Values longer than a message can be are quoted each time (none of the bot's own are)."""


_UNCHANGED = re.compile(r"[A-Za-z0-9_.~-]*").fullmatch
"""What ``quote_plus`` leaves as it is: field names, ids, numbers, plain words."""


class Quoter:
    """Percent-encodes form values as ``urlencode`` (and so aiohttp's ``FormData``) does, each
    distinct text once: the least recently used are forgotten beyond ``budget`` bytes. Values the
    encoding leaves as they are (ids, numbers, plain ASCII words) are not remembered."""

    def __init__(self, budget: int = QUOTE_BUDGET) -> None:
        self.budget = budget
        self.size = 0
        self.known: OrderedDict[str, str] = OrderedDict()

    def __call__(self, value: str) -> str:
        if _UNCHANGED(value):
            return value
        hit = self.known.get(value)
        if hit is not None:
            self.known.move_to_end(value)
            return hit
        encoded = quote_plus(value)
        if len(value) <= QUOTE_MAX_CHARS:
            self.known[value] = encoded
            self.size += self.cost(value, encoded)
            while self.size > self.budget:
                old, old_encoded = self.known.popitem(last=False)
                self.size -= self.cost(old, old_encoded)
        return encoded

    @staticmethod
    def cost(value: str, encoded: str) -> int:
        return sys.getsizeof(value) + sys.getsizeof(encoded) + QUOTE_ENTRY


class BotSession(AiohttpSession):
    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("json_loads", jsonio.loads)
        kwargs.setdefault("json_dumps", jsonio.dumps)
        super().__init__(**kwargs)
        self._objects: OrderedDict[int, tuple[InlineKeyboardMarkup | LinkPreviewOptions, str]] = OrderedDict()
        self._response_models: dict[Any, type[Response[Any]]] = {}
        self.quote = Quoter()

    def check_response(
        self, bot: Bot, method: TelegramMethod[TelegramType], status_code: int, content: str
    ) -> Response[TelegramType]:
        returning = method.__returning__
        model = self._response_models.get(returning)
        if model is None:  # aiogram's lookup then finds it in pydantic's cache
            model = self._response_models[returning] = Response[returning]  # type: ignore[valid-type]
        if isinstance(method, LEAN_REPLIES) and HTTPStatus.OK <= status_code <= HTTPStatus.IM_USED:
            try:
                data = self.json_loads(content)
            except ValueError:
                data = None
            result = data.get("result") if isinstance(data, dict) and data.get("ok") is True else None
            if isinstance(result, dict):
                data["result"] = {k: v for k, v in result.items() if k in MESSAGE_FIELDS}
                try:
                    return cast(Response[TelegramType], model.model_validate(data, context={"bot": bot}))
                except ValidationError as e:
                    raise ClientDecodeError("Failed to deserialize object", e, data) from e
        return super().check_response(bot, method, status_code, content)

    def _object_json(self, bot: Bot, obj: InlineKeyboardMarkup | LinkPreviewOptions) -> str:
        """The JSON of an object the bot sends again and again as it is: a keyboard the presenter
        built once, the default link preview options."""
        key = id(obj)
        hit = self._objects.get(key)
        if hit is not None and hit[0] is obj:
            self._objects.move_to_end(key)
            return hit[1]
        encoded = str(self.prepare_value(obj.model_dump(warnings=False), bot=bot, files={}))
        self._objects[key] = (obj, encoded)  # holds the object, so its id is not reused
        while len(self._objects) > MARKUP_CACHE_SIZE:
            self._objects.popitem(last=False)
        return encoded

    def fields(
        self, bot: Bot, method: TelegramMethod[TelegramType]
    ) -> tuple[list[tuple[str, str]], dict[str, InputFile]]:
        """The request's form fields and files, as aiogram's ``build_form_data`` makes them, with
        the method's fields read as they are instead of through ``model_dump`` (``prepare_value``
        turns nested objects into JSON itself), unset ones skipped at once, the bot's defaults
        looked up directly, texts and numbers taken as they are, and keyboards cached."""
        pairs: list[tuple[str, str]] = []
        files: dict[str, InputFile] = {}
        values = method.__dict__
        if method.__pydantic_extra__:
            values = {**values, **method.__pydantic_extra__}
        for key, value in values.items():
            if value is None:
                continue
            if type(value) is Default:
                value = bot.default[value.name]
                if value is None:
                    continue
            kind = type(value)
            if kind is str:
                prepared: Any = value
            elif kind is int:
                prepared = str(value)  # what JSON makes of an int
            elif kind is InlineKeyboardMarkup or kind is LinkPreviewOptions:
                prepared = self._object_json(bot, value)
            else:
                prepared = self.prepare_value(value, bot=bot, files=files)
                if isinstance(prepared, str) and type(prepared) is not str:
                    # a str enum (ParseMode.HTML, the bot's default): its value, as urlencode and
                    # aiohttp send it, never its name
                    prepared = str.__str__(prepared)
            if prepared:
                pairs.append((key, prepared))
        return pairs, files

    def build_form_data(self, bot: Bot, method: TelegramMethod[TelegramType]) -> FormData:
        pairs, files = self.fields(bot, method)
        form = FormData(quote_fields=False)
        for key, value in pairs:
            form.add_field(key, value)
        for key, file in files.items():
            form.add_field(key, file.read(bot), filename=file.filename or key)
        return form

    def encode(self, bot: Bot, method: TelegramMethod[TelegramType]) -> bytes | FormData:
        """The request body: url-encoded bytes (what aiohttp's ``FormData`` makes of fields without
        files, made directly), or multipart ``FormData`` when a file is attached."""
        pairs, files = self.fields(bot, method)
        if files:
            return self.build_form_data(bot, method)
        quote = self.quote
        return "&".join([f"{quote(key)}={quote(value)}" for key, value in pairs]).encode()

    async def make_request(
        self,
        bot: Bot,
        method: TelegramMethod[TelegramType],
        timeout: int | None = None,  # noqa: ASYNC109 - aiogram's signature
    ) -> TelegramType:
        """aiogram's, with the body from ``encode``."""
        session = await self.create_session()
        url = self.api.api_url(token=bot.token, method=method.__api_method__)
        body = self.encode(bot, method)
        headers = FORM_HEADERS if isinstance(body, bytes) else None
        limit = ClientTimeout(total=self.timeout if timeout is None else timeout)
        try:
            async with session.post(url, data=body, headers=headers, timeout=limit) as resp:
                raw_result = await resp.text()
        except TimeoutError as e:
            raise TelegramNetworkError(method=method, message="Request timeout error") from e
        except ClientError as e:
            raise TelegramNetworkError(method=method, message=f"{type(e).__name__}: {e}") from e
        response = self.check_response(bot=bot, method=method, status_code=resp.status, content=raw_result)
        return cast(TelegramType, response.result)
