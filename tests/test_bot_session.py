"""The Bot API session: requests encoded exactly as aiogram encodes them, keyboards once, replies parsed
to what the bot reads, reply models kept across garbage collections."""

from __future__ import annotations

import gc
import json
import weakref
from typing import Any
from urllib.parse import parse_qsl, quote_plus

import pytest
from aiogram import Bot
from aiogram.client.default import Default
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.enums import ChatAction, ParseMode
from aiogram.exceptions import ClientDecodeError, TelegramBadRequest
from aiogram.methods import (
    AnswerCallbackQuery,
    EditMessageText,
    GetUpdates,
    SendDocument,
    SendMessage,
    SetMyCommands,
    TelegramMethod,
)
from aiogram.methods.base import Response
from aiogram.types import (
    BotCommand,
    BufferedInputFile,
    ForceReply,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    KeyboardButton,
    LinkPreviewOptions,
    Message,
    ReplyKeyboardMarkup,
)
from aiohttp import FormData

from bot import jsonio
from bot.settings import Settings
from bot.telegram.app import build_bot
from bot.telegram.session import BotSession, Quoter

REPLY = json.dumps(
    {
        "ok": True,
        "result": {
            "message_id": 7,
            "date": 1700000000,
            "chat": {"id": 42, "type": "private"},
            "text": "你好",
        },
    }
)


def production_bot(session: BotSession) -> Bot:
    """A bot as ``python -m bot run`` makes it (its default properties, parse mode an enum), on
    ``session``."""
    return build_bot(Settings(_env_file=None, bot_token="42:TEST"), session=session)  # type: ignore[call-arg]


def fields(form: FormData) -> dict[str, str]:
    return {options["name"]: value for options, _headers, value in form._fields}


async def test_reply_models_survive_garbage_collection() -> None:
    session = BotSession()
    bot = Bot("42:TEST", session=session)
    method = SendMessage(chat_id=42, text="你好")
    model = weakref.ref(type(session.check_response(bot, method, 200, REPLY)))
    gc.collect()
    # pydantic's cache of generic models is weak: without the session's reference, the model would
    # be gone after a collection and rebuilt (milliseconds) by the next reply.
    assert model() is not None and Response[Message] is model()
    second = session.check_response(bot, method, 200, REPLY)
    assert type(second) is model()
    assert isinstance(second.result, Message) and second.result.message_id == 7
    await bot.session.close()


KEYBOARD = InlineKeyboardMarkup(
    inline_keyboard=[[InlineKeyboardButton(text="ISO 9001", callback_data="v1:m:9001")]]
)
METHODS = [
    SendMessage(chat_id=42, text="选一个", reply_markup=KEYBOARD),
    SendMessage(chat_id=42, text="<b>粗</b>", parse_mode=Default("parse_mode"), message_thread_id=7),
    SendMessage(
        chat_id=-100,
        text="x",
        reply_markup=ReplyKeyboardMarkup(
            keyboard=[[KeyboardButton(text="分享", request_contact=True)]], resize_keyboard=True
        ),
        link_preview_options=LinkPreviewOptions(is_disabled=True),
    ),
    SendMessage(chat_id=42, text="备注?", reply_markup=ForceReply(force_reply=True), extra_field="kept"),
    EditMessageText(chat_id=42, message_id=5, text="已更新", reply_markup=KEYBOARD),
    AnswerCallbackQuery(callback_query_id="abc", text="菜单已过期", show_alert=False),
    SendMessage(chat_id=42, text="<i>x</i>", parse_mode=ParseMode.HTML, action=ChatAction.TYPING),
    SetMyCommands(commands=[BotCommand(command="start", description="开始")]),
    GetUpdates(offset=10, timeout=30, allowed_updates=["message", "callback_query"]),
]


@pytest.mark.parametrize("method", METHODS, ids=lambda m: type(m).__name__)
async def test_requests_are_encoded_exactly_as_aiogram_does(method: TelegramMethod[Any]) -> None:
    session = BotSession()
    bot = production_bot(session)  # with the defaults production uses
    ours = fields(session.build_form_data(bot, method))
    assert ours == fields(AiohttpSession(json_dumps=session.json_dumps).build_form_data(bot, method))
    theirs = fields(AiohttpSession().build_form_data(bot, method))  # the standard library's JSON
    assert ours.keys() == theirs.keys()
    for key, value in theirs.items():
        assert ours[key] == value or json.loads(ours[key]) == json.loads(value), key
    body = session.encode(bot, method)  # what make_request posts: url-encoded as aiohttp would
    assert isinstance(body, bytes)
    assert parse_qsl(body.decode(), keep_blank_values=True) == list(ours.items())
    await bot.session.close()


ODD_TEXTS = [
    "a&b=c+d %e ~*'()! 中文 😀\n<b>粗</b>",
    "证书有效期" * 1000,  # beyond what is remembered: quoted each time, the same way
    " ",
]


@pytest.mark.parametrize("text", ODD_TEXTS, ids=["punctuation", "long", "space"])
async def test_a_body_is_byte_for_byte_what_aiohttp_would_post(text: str) -> None:
    session = BotSession()
    bot = production_bot(session)
    stock = AiohttpSession(json_dumps=session.json_dumps)
    for method in (
        SendMessage(chat_id=42, text=text, reply_markup=KEYBOARD),
        EditMessageText(chat_id=42, message_id=5, text=text),
        AnswerCallbackQuery(callback_query_id=text.strip() or "x", text=text),
    ):
        theirs = stock.build_form_data(bot, method)()._value  # what aiohttp makes of the form
        assert session.encode(bot, method) == theirs
        assert session.encode(bot, method) == theirs  # and again, from what was remembered
    await bot.session.close()


def test_the_quoter_remembers_texts_within_its_budget() -> None:
    view = "认证流程 & 费用"
    pages = [f"第{i}页 共9页" for i in range(10)]
    quote = Quoter(budget=3 * Quoter.cost(pages[0], quote_plus(pages[0])))  # room for 3 such texts
    encoded = quote(view)
    assert encoded == quote_plus(view) and quote(view) is encoded  # remembered
    for value in ("42", "-100", "chat_id", "a.b-c_d~e"):  # left as they are: nothing to remember
        assert quote(value) == quote_plus(value) and value not in quote.known
    for page in pages:  # other texts push the oldest out: the budget holds
        assert quote(page) == quote_plus(page)
        assert quote.size == sum(Quoter.cost(k, v) for k, v in quote.known.items()) <= quote.budget
    assert list(quote.known) == pages[-3:] and quote(view) == encoded
    huge = "证" * 5000  # longer than any message: encoded, not remembered
    assert quote(huge) == quote_plus(huge) and huge not in quote.known


async def test_a_keyboard_is_encoded_once() -> None:
    session = BotSession()
    bot = Bot("42:TEST", session=session)
    encoded = fields(session.build_form_data(bot, METHODS[0]))["reply_markup"]
    assert json.loads(encoded) == {"inline_keyboard": [[{"text": "ISO 9001", "callback_data": "v1:m:9001"}]]}
    assert fields(session.build_form_data(bot, METHODS[4]))["reply_markup"] is encoded
    await bot.session.close()


async def test_a_sent_message_is_parsed_to_what_the_bot_reads() -> None:
    session = BotSession()
    bot = Bot("42:TEST", session=session)
    reply = json.loads(REPLY)
    reply["result"] |= {"message_thread_id": 3, "reply_markup": KEYBOARD.model_dump(), "entities": []}
    sent = session.check_response(bot, METHODS[0], 200, json.dumps(reply)).result
    assert isinstance(sent, Message)
    assert (sent.message_id, sent.chat.id, sent.message_thread_id) == (7, 42, 3)
    assert sent.text is None and sent.reply_markup is None
    # other methods' replies are parsed in full
    document = json.loads(REPLY)
    document["result"] |= {"document": {"file_id": "f", "file_unique_id": "u", "file_name": "leads.csv"}}
    upload = SendDocument(chat_id=42, document=BufferedInputFile(b"a,b\n", "leads.csv"))
    form = session.encode(bot, upload)  # a file goes as multipart
    assert isinstance(form, FormData) and form.is_multipart
    posted = session.check_response(bot, upload, 200, json.dumps(document)).result
    assert isinstance(posted, Message) and posted.document is not None and posted.text == "你好"
    # errors and malformed replies are aiogram's, in full
    with pytest.raises(TelegramBadRequest, match="message is not modified"):
        session.check_response(
            bot,
            METHODS[4],
            400,
            json.dumps({"ok": False, "error_code": 400, "description": "message is not modified"}),
        )
    with pytest.raises(ClientDecodeError):
        session.check_response(bot, METHODS[0], 200, json.dumps({"ok": True, "result": {"message_id": "x"}}))
    with pytest.raises(ClientDecodeError):
        session.check_response(bot, METHODS[0], 200, "<html>bad gateway</html>")
    await bot.session.close()


async def test_an_inline_message_edit_answered_true_is_parsed_in_full() -> None:
    session = BotSession()
    bot = Bot("42:TEST", session=session)
    edit = EditMessageText(inline_message_id="abc", text="x")
    assert session.check_response(bot, edit, 200, '{"ok": true, "result": true}').result is True
    await bot.session.close()


async def test_json_a_lone_surrogate_does_not_stop_a_whole_reply() -> None:
    session = BotSession()
    bot = Bot("42:TEST", session=session)
    # orjson refuses a lone UTF-16 surrogate, the standard library takes it: one odd update must
    # not make the whole getUpdates reply unreadable (polling would retry it for ever)
    raw = (
        '{"ok": true, "result": [{"update_id": 1, "message": {"message_id": 1, "date": 0,'
        ' "chat": {"id": 5, "type": "private"}, "text": "\\ud83d broken emoji"}}]}'
    )
    [update] = session.check_response(bot, GetUpdates(), 200, raw).result
    assert update.message is not None and update.message.text == "\ud83d broken emoji"
    assert jsonio.loads(jsonio.dumps({"t": "\ud83d", 1: "中"})) == {"t": "\ud83d", "1": "中"}
    await bot.session.close()
