"""A fake Telegram Bot API server (aiohttp on 127.0.0.1) and a Prospect who chats with the bot.

It speaks the Bot API the way aiogram uses it: POST ``/bot<token>/<method>`` with url-encoded or
multipart bodies (non-string values JSON-encoded), answers ``{"ok": true, "result": ...}``, and
long-polls ``getUpdates``. It enforces Telegram's rules that tests should catch: HTML that
Telegram would reject, texts over 4096 characters, callback data over 64 bytes, an edit that
changes nothing. Faults can be injected per method (HTTP status, description, retry_after).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from bot.engine.render import MESSAGE_LIMIT, html_problems, visible_length, visible_text

TOKEN = "123456789:TEST-token_for_the_fake_server"
BOT_USER = {"id": 123456789, "is_bot": True, "first_name": "Cert Bot", "username": "cert_test_bot"}
JSON_FIELDS = {"reply_markup", "commands", "allowed_updates", "scope", "link_preview_options", "entities"}
PARSE_MODES = {"HTML", "MarkdownV2", "Markdown"}


@dataclass
class Fault:
    method: str
    status: int
    description: str
    retry_after: int | None = None
    times: int = 1
    chat_id: int | None = None
    """Only requests to this chat fail (None: any)."""
    delay: float = 0.0
    """Answer only after this long (a client with a shorter timeout gives up first)."""


@dataclass
class Call:
    method: str
    params: dict[str, Any]
    at: float = field(default_factory=time.monotonic)


@dataclass
class BotMessage:
    chat_id: int
    message_id: int
    text: str
    reply_markup: dict[str, Any] | None
    edits: int = 0
    document: dict[str, Any] | None = None
    thread_id: int | None = None
    """The forum topic it was posted in."""
    copied_from: tuple[int, int] | None = None
    """(chat, message) it is a copy of (copyMessage)."""

    @property
    def visible(self) -> str:
        return visible_text(self.text)

    @property
    def buttons(self) -> list[dict[str, Any]]:
        if not self.reply_markup:
            return []
        return [b for row in self.reply_markup.get("inline_keyboard", []) for b in row]

    @property
    def labels(self) -> list[str]:
        return [b["text"] for b in self.buttons]


class FakeBotAPI:
    def __init__(self, token: str = TOKEN) -> None:
        self.token = token
        self.calls: list[Call] = []
        self.updates: list[dict[str, Any]] = []
        self.messages: dict[int, list[BotMessage]] = defaultdict(list)
        self.callback_answers: dict[str, dict[str, Any]] = {}
        self.commands: dict[str, list[dict[str, Any]]] = {}
        self.faults: list[Fault] = []
        self.latency: dict[tuple[str, str | None], float] = {}
        """Seconds a method (to a chat, or to any) takes before it is carried out: ``slow``."""
        self.documents: list[dict[str, Any]] = []
        self.members: dict[tuple[int, int], str] = {}
        self.user_messages: dict[tuple[int, int], dict[str, Any]] = {}
        """What users sent, by (chat, message id): copyMessage copies these."""
        self.forums: set[int] = set()
        """Groups with topics."""
        self.topics: dict[tuple[int, int], dict[str, Any]] = {}
        self.blocked: set[int] = set()
        self.webhook_urls: list[str] = []
        self.webhook_secret = ""
        self._next_url = 0
        self._deliveries: set[asyncio.Task[None]] = set()
        self.deliveries: list[tuple[int, str, int | str]] = []
        """(update id, URL, HTTP status or error) of each webhook delivery attempt."""
        self.undelivered: list[int] = []
        """Chats of users who blocked the bot (403 on sending)."""
        self._update_ids = itertools.count(1)
        self._message_ids = itertools.count(1000)
        self._callback_ids = itertools.count(1)
        self._new_updates = asyncio.Condition()
        self._handled: set[int] = set()
        self.handled_times: dict[int, int] = defaultdict(int)
        """How many times the bot has handled each update (a duplicate delivery counts again)."""
        self._counting: dict[int, list[asyncio.Event]] = defaultdict(list)
        self._waiting: dict[int, list[asyncio.Future[None]]] = defaultdict(list)
        self.handled_timeout = 10.0
        """How long ``wait_handled`` waits."""
        self.max_connections = 100
        """Webhook deliveries share this many kept-alive connections (Telegram's most)."""
        self._http: Any = None
        self.redelivered = 0
        """Webhook deliveries tried again (after an error, a refused connection, a timeout)."""
        self._runner: web.AppRunner | None = None
        self._closing = False
        self.base_url = ""

    # --- server ---------------------------------------------------------------------------------

    async def start(self) -> str:
        app = web.Application(client_max_size=50 * 1024 * 1024)
        app.router.add_post("/bot{token}/{method}", self._handle)
        app.router.add_get("/bot{token}/{method}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.base_url = f"http://127.0.0.1:{port}"
        return self.base_url

    async def stop(self) -> None:
        self._closing = True
        async with self._new_updates:
            self._new_updates.notify_all()
        if self._http is not None:
            await self._http.close()
        if self._runner is not None:
            await self._runner.cleanup()

    def fail(
        self,
        method: str,
        status: int,
        description: str,
        *,
        retry_after: int | None = None,
        times: int = 1,
        chat_id: int | None = None,
        delay: float = 0.0,
    ) -> Fault:
        """The next ``times`` calls of ``method`` (to ``chat_id``, if given) fail (after ``delay``
        seconds: a timeout for a client that waits less; the request is not carried out)."""
        fault = Fault(method, status, description, retry_after, times, chat_id, delay)
        self.faults.append(fault)
        return fault

    def slow(self, method: str, seconds: float, *, chat_id: int | None = None) -> None:
        """``method`` (to ``chat_id``, if given) takes ``seconds`` before it is carried out, and
        succeeds: a slow network, a busy Telegram."""
        self.latency[(method, None if chat_id is None else str(chat_id))] = seconds

    async def _params(self, request: web.Request) -> dict[str, Any]:
        params: dict[str, Any] = dict(request.query)
        if request.can_read_body:
            if request.content_type == "application/json":
                params.update(await request.json())
            else:
                form = await request.post()
                for key, value in form.items():
                    if isinstance(value, web.FileField):
                        params[key] = {"filename": value.filename, "content": value.file.read()}
                    else:
                        params[key] = value
        attached = {k: v for k, v in params.items() if isinstance(v, str) and v.startswith("attach://")}
        for key, ref in attached.items():
            params[key] = params.pop(ref.removeprefix("attach://"), None)
        for key in JSON_FIELDS & params.keys():
            if isinstance(params[key], str):
                params[key] = json.loads(params[key])
        return params

    async def _handle(self, request: web.Request) -> web.Response:
        if request.match_info["token"] != self.token:
            return _error(401, "Unauthorized")
        method = request.match_info["method"]
        params = await self._params(request)
        self.calls.append(Call(method, params))
        for fault in self.faults:
            wrong_chat = fault.chat_id is not None and str(fault.chat_id) != str(params.get("chat_id"))
            if fault.method == method and fault.times > 0 and not wrong_chat:
                fault.times -= 1
                if fault.delay:
                    await asyncio.sleep(fault.delay)
                return _error(fault.status, fault.description, fault.retry_after)
        handler = getattr(self, f"m_{method}", None)
        if handler is None:
            return _error(404, f"Not Found: method {method} is not faked")
        if params.get("parse_mode", "HTML") not in PARSE_MODES:  # as Telegram refuses it
            return _error(400, "Bad Request: unsupported parse_mode")
        latency = self.latency.get((method, str(params.get("chat_id")))) or self.latency.get((method, None))
        if latency:
            await asyncio.sleep(latency)
        try:
            result = await handler(params)
        except ApiError as e:
            return _error(e.status, e.description)
        return web.json_response({"ok": True, "result": result})

    # --- methods --------------------------------------------------------------------------------

    async def m_getMe(self, p: dict[str, Any]) -> Any:
        return BOT_USER

    async def m_deleteWebhook(self, p: dict[str, Any]) -> Any:
        return True

    async def m_setMyCommands(self, p: dict[str, Any]) -> Any:
        self.commands[p.get("language_code", "")] = p["commands"]
        return True

    async def m_getUpdates(self, p: dict[str, Any]) -> Any:
        offset = int(p.get("offset", 0))
        timeout = float(p.get("timeout", 0))
        limit = int(p.get("limit", 100))
        if offset:
            self.updates = [u for u in self.updates if u["update_id"] >= offset]
        deadline = time.monotonic() + timeout
        async with self._new_updates:
            while not self.updates and time.monotonic() < deadline and not self._closing:
                try:
                    await asyncio.wait_for(self._new_updates.wait(), deadline - time.monotonic())
                except TimeoutError:
                    break
        return self.updates[:limit]

    def _check_text(self, text: str) -> None:
        if not text.strip():
            raise ApiError(400, "Bad Request: message text is empty")
        if visible_length(text) > MESSAGE_LIMIT:
            raise ApiError(400, "Bad Request: message is too long")
        problems = html_problems(text)
        if problems:
            raise ApiError(400, f"Bad Request: can't parse entities: {problems[0]}")

    def _check_markup(self, markup: dict[str, Any] | None) -> None:
        for row in (markup or {}).get("keyboard", []):
            for b in row:
                if not b.get("text"):
                    raise ApiError(400, "Bad Request: keyboard button text is empty")
        for row in (markup or {}).get("inline_keyboard", []):
            for b in row:
                data = b.get("callback_data")
                if data is not None and not 1 <= len(data.encode()) <= 64:
                    raise ApiError(400, "Bad Request: BUTTON_DATA_INVALID")
                if not b.get("text"):
                    raise ApiError(400, "Bad Request: text buttons are unallowed")

    def _message_json(self, m: BotMessage) -> dict[str, Any]:
        out: dict[str, Any] = {
            "message_id": m.message_id,
            "date": int(time.time()),
            "chat": _chat(m.chat_id),
            "from": BOT_USER,
            "text": m.visible,
        }
        if m.thread_id is not None:
            out["message_thread_id"] = m.thread_id
            out["is_topic_message"] = True
        if m.reply_markup and "inline_keyboard" in m.reply_markup:  # as Telegram: only inline ones
            out["reply_markup"] = m.reply_markup
        if m.document:
            out.pop("text")
            out["document"] = {
                "file_id": "doc",
                "file_unique_id": "doc",
                "file_name": m.document["file_name"],
            }
        return out

    async def m_sendMessage(self, p: dict[str, Any]) -> Any:
        chat_id = int(p["chat_id"])
        if chat_id in self.blocked:
            raise ApiError(403, "Forbidden: bot was blocked by the user")
        text = str(p.get("text", ""))
        if p.get("parse_mode") == "HTML":
            self._check_text(text)
        markup = p.get("reply_markup")
        self._check_markup(markup)
        m = BotMessage(chat_id, next(self._message_ids), text, markup, thread_id=_thread(p))
        self.messages[chat_id].append(m)
        return self._message_json(m)

    async def m_copyMessage(self, p: dict[str, Any]) -> Any:
        """Copies a message a user sent (or one of the bot's) into another chat, as the bot."""
        source = (int(p["from_chat_id"]), int(p["message_id"]))
        original = self.user_messages.get(source)
        if original is None:
            found = [m for m in self.messages[source[0]] if m.message_id == source[1]]
            if not found:
                raise ApiError(400, "Bad Request: message to copy not found")
            text = found[0].text
        else:
            text = original.get("text") or original.get("caption") or f"[{_kind(original)}]"
        chat_id = int(p["chat_id"])
        if chat_id in self.blocked:
            raise ApiError(403, "Forbidden: bot was blocked by the user")
        m = BotMessage(chat_id, next(self._message_ids), text, None, thread_id=_thread(p), copied_from=source)
        self.messages[chat_id].append(m)
        return {"message_id": m.message_id}

    async def m_getChat(self, p: dict[str, Any]) -> Any:
        chat_id = int(p["chat_id"])
        chat = {**_chat(chat_id), "accent_color_id": 0, "max_reaction_count": 11, "accepted_gift_types": {
            "unlimited_gifts": False, "limited_gifts": False, "unique_gifts": False,
            "premium_subscription": False, "gifts_from_channels": False}}  # fmt: skip
        if chat_id in self.forums:
            chat["is_forum"] = True
        return chat

    async def m_createForumTopic(self, p: dict[str, Any]) -> Any:
        chat_id = int(p["chat_id"])
        if chat_id not in self.forums:
            raise ApiError(400, "Bad Request: the chat is not a forum")
        topic_id = next(self._message_ids)
        self.topics[(chat_id, topic_id)] = {"name": p["name"], "closed": False}
        return {"message_thread_id": topic_id, "name": p["name"], "icon_color": 7322096}

    async def m_closeForumTopic(self, p: dict[str, Any]) -> Any:
        self.topics[(int(p["chat_id"]), int(p["message_thread_id"]))]["closed"] = True
        return True

    def _find(self, p: dict[str, Any]) -> BotMessage:
        chat_id, message_id = int(p["chat_id"]), int(p["message_id"])
        for m in self.messages[chat_id]:
            if m.message_id == message_id:
                return m
        raise ApiError(400, "Bad Request: message to edit not found")

    async def m_editMessageText(self, p: dict[str, Any]) -> Any:
        m = self._find(p)
        text = str(p.get("text", ""))
        self._check_text(text)
        markup = p.get("reply_markup")
        self._check_markup(markup)
        if text == m.text and markup == m.reply_markup:
            raise ApiError(
                400,
                "Bad Request: message is not modified: specified new message content and "
                "reply markup are exactly the same as a current content and reply markup of the message",
            )
        m.text, m.reply_markup = text, markup
        m.edits += 1
        return self._message_json(m)

    async def m_editMessageReplyMarkup(self, p: dict[str, Any]) -> Any:
        m = self._find(p)
        markup = p.get("reply_markup")
        self._check_markup(markup)
        if markup == m.reply_markup:
            raise ApiError(400, "Bad Request: message is not modified")
        m.reply_markup = markup
        m.edits += 1
        return self._message_json(m)

    async def m_answerCallbackQuery(self, p: dict[str, Any]) -> Any:
        query_id = str(p["callback_query_id"])
        if query_id in self.callback_answers:
            raise ApiError(
                400, "Bad Request: query is too old and response timeout expired or query ID is invalid"
            )
        self.callback_answers[query_id] = p
        return True

    async def m_sendDocument(self, p: dict[str, Any]) -> Any:
        chat_id = int(p["chat_id"])
        doc = p.get("document")
        if not isinstance(doc, dict):
            raise ApiError(400, "Bad Request: there is no document in the request")
        m = BotMessage(chat_id, next(self._message_ids), str(p.get("caption", "")), p.get("reply_markup"))
        m.document = {"file_name": doc["filename"], "content": doc["content"]}
        self.messages[chat_id].append(m)
        self.documents.append({"chat_id": chat_id, **m.document})
        return self._message_json(m)

    async def m_sendChatAction(self, p: dict[str, Any]) -> Any:
        return True

    async def m_getChatMember(self, p: dict[str, Any]) -> Any:
        """Members of a group: ``self.members[(chat_id, user_id)]`` is their status; others have left."""
        user_id = int(p["user_id"])
        status = self.members.get((int(p["chat_id"]), user_id), "left")
        member: dict[str, Any] = {
            "status": status,
            "user": {"id": user_id, "is_bot": False, "first_name": "U"},
        }
        if status == "creator":
            member["is_anonymous"] = False
        return member

    # --- feeding updates ------------------------------------------------------------------------

    async def push(self, body: dict[str, Any], update_id: int | None = None) -> int:
        """Queue an update (``body`` without update_id) for the bot's next getUpdates."""
        uid = next(self._update_ids) if update_id is None else update_id
        message = body.get("message")
        if message is not None:
            self.user_messages[(message["chat"]["id"], message["message_id"])] = message
        if self.webhook_urls:
            update = {"update_id": uid, **body}
            task = asyncio.get_running_loop().create_task(self._deliver(update))
            self._deliveries.add(task)
            task.add_done_callback(self._deliveries.discard)
            return uid
        async with self._new_updates:
            self.updates.append({"update_id": uid, **body})
            self._new_updates.notify_all()
        return uid

    # --- webhook mode -------------------------------------------------------------------------------

    def use_webhook(self, urls: list[str], secret: str) -> None:
        """Push updates to these webhook URLs (in turn, as several replicas behind a balancer),
        as Telegram does: an update counts as delivered on a 2xx answer; otherwise (an error, a
        refused connection, a timeout) it is delivered again, to the next URL."""
        self.webhook_urls = list(urls)
        self.webhook_secret = secret
        self._next_url = 0

    async def _deliver(self, update: dict[str, Any], *, attempts: int = 20) -> None:
        import aiohttp

        if self._http is None:
            self._http = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=self.max_connections))
        uid = update["update_id"]
        for attempt in range(attempts):
            url = self.webhook_urls[self._next_url % len(self.webhook_urls)]
            self._next_url += 1
            try:
                async with self._http.post(
                    url,
                    json=update,
                    headers={"X-Telegram-Bot-Api-Secret-Token": self.webhook_secret},
                    timeout=aiohttp.ClientTimeout(total=60),
                ) as response:
                    await response.read()
                    self.deliveries.append((uid, url, response.status))
                    if 200 <= response.status < 300:
                        self.mark_handled(uid)
                        return
            except (aiohttp.ClientError, TimeoutError) as e:
                self.deliveries.append((uid, url, type(e).__name__))
            self.redelivered += 1
            await asyncio.sleep(min(1.0, 0.05 * (attempt + 1)))
        self.undelivered.append(uid)

    def mark_handled(self, update_id: int) -> None:
        """The bot has handled the update: its waiters (only they) are woken."""
        self.handled_times[update_id] += 1
        for counting in self._counting.get(update_id, ()):
            counting.set()
        if update_id in self._handled:
            return  # a duplicate delivery, handled again (and dropped) by the bot
        self._handled.add(update_id)
        for waiter in self._waiting.pop(update_id, ()):
            if not waiter.done():
                waiter.set_result(None)

    async def wait_handled(self, update_id: int) -> None:
        """Until the bot has handled the update (``handled_timeout`` at most)."""
        if update_id in self._handled:
            return
        waiter = asyncio.get_running_loop().create_future()
        self._waiting[update_id].append(waiter)
        try:
            async with asyncio.timeout(self.handled_timeout):
                await waiter
        except TimeoutError:
            raise TimeoutError(
                f"update {update_id} not handled within {self.handled_timeout:.0f} s"
            ) from None
        finally:
            waiters = self._waiting.get(update_id, [])
            if waiter in waiters:
                waiters.remove(waiter)

    async def push_twice(self, body: dict[str, Any]) -> int:
        """Deliver an update twice with one update id, at once: twice in one getUpdates answer
        (polling), or two concurrent deliveries (webhook: one timed out, Telegram tries again)."""
        uid = next(self._update_ids)
        message = body.get("message")
        if message is not None:
            self.user_messages[(message["chat"]["id"], message["message_id"])] = message
        if self.webhook_urls:
            for _ in range(2):
                task = asyncio.get_running_loop().create_task(self._deliver({"update_id": uid, **body}))
                self._deliveries.add(task)
                task.add_done_callback(self._deliveries.discard)
            return uid
        async with self._new_updates:
            self.updates.extend([{"update_id": uid, **body}, {"update_id": uid, **body}])
            self._new_updates.notify_all()
        return uid

    async def wait_handled_times(self, update_id: int, times: int) -> None:
        """Until the bot has handled (or dropped as a duplicate) the update ``times`` times."""
        counting = asyncio.Event()
        self._counting[update_id].append(counting)
        try:
            async with asyncio.timeout(self.handled_timeout):
                while self.handled_times[update_id] < times:
                    await counting.wait()
                    counting.clear()
        finally:
            self._counting[update_id].remove(counting)
            if not self._counting[update_id]:
                del self._counting[update_id]

    def new_callback_id(self) -> str:
        return f"cbq{next(self._callback_ids)}"

    def chat_messages(self, chat_id: int) -> list[BotMessage]:
        return self.messages[chat_id]


class ApiError(Exception):
    def __init__(self, status: int, description: str) -> None:
        super().__init__(description)
        self.status = status
        self.description = description


def _error(status: int, description: str, retry_after: int | None = None) -> web.Response:
    body: dict[str, Any] = {"ok": False, "error_code": status, "description": description}
    if retry_after is not None:
        body["parameters"] = {"retry_after": retry_after}
    return web.json_response(body, status=status)


def _thread(p: dict[str, Any]) -> int | None:
    return int(p["message_thread_id"]) if p.get("message_thread_id") else None


def _kind(message: dict[str, Any]) -> str:
    return next((k for k in ("photo", "document", "voice", "sticker", "location") if k in message), "message")


def _chat(chat_id: int) -> dict[str, Any]:
    if chat_id < 0:
        return {"id": chat_id, "type": "supergroup", "title": "Staff"}
    return {"id": chat_id, "type": "private", "first_name": "Prospect"}


class Prospect:
    """A Telegram user chatting with the bot through the fake server."""

    def __init__(
        self,
        api: FakeBotAPI,
        user_id: int,
        *,
        first_name: str = "Wang",
        language_code: str | None = "zh-hans",
        username: str | None = None,
        chat_id: int | None = None,
    ) -> None:
        self.api = api
        self.user_id = user_id
        self.chat_id = user_id if chat_id is None else chat_id
        self.user: dict[str, Any] = {"id": user_id, "is_bot": False, "first_name": first_name}
        if language_code:
            self.user["language_code"] = language_code
        if username:
            self.user["username"] = username
        self._message_ids = itertools.count(1)
        self.seen = 0
        self.last_update_id = 0

    @property
    def messages(self) -> list[BotMessage]:
        return self.api.chat_messages(self.chat_id)

    def _message(self, **content: Any) -> dict[str, Any]:
        return {
            "message_id": next(self._message_ids),
            "date": int(time.time()),
            "chat": _chat(self.chat_id),
            "from": self.user,
            **content,
        }

    async def _push(
        self, body: dict[str, Any], *, wait: bool = True, update_id: int | None = None
    ) -> list[BotMessage]:
        before = {(m.message_id, m.edits) for m in self.messages}
        uid = await self.api.push(body, update_id)
        self.last_update_id = uid
        self.last_body = body
        if wait:
            await self.api.wait_handled(uid)
        return [m for m in self.messages if (m.message_id, m.edits) not in before]

    async def send(
        self, text: str, *, reply_to: BotMessage | None = None, thread_id: int | None = None, **kw: Any
    ) -> list[BotMessage]:
        body: dict[str, Any] = {"message": self._message(text=text)}
        if reply_to is not None:
            body["message"]["reply_to_message"] = self.api._message_json(reply_to)
        if thread_id is not None:  # in a forum topic
            body["message"].update(message_thread_id=thread_id, is_topic_message=True)
        if text.startswith("/"):
            word = text.split()[0]
            body["message"]["entities"] = [{"type": "bot_command", "offset": 0, "length": len(word)}]
        return await self._push(body, **kw)

    def message_body(
        self, text: str, *, reply_to: BotMessage | None = None, thread_id: int | None = None
    ) -> dict[str, Any]:
        """The update (without its id) that ``send`` would deliver."""
        body: dict[str, Any] = {"message": self._message(text=text)}
        if reply_to is not None:
            body["message"]["reply_to_message"] = self.api._message_json(reply_to)
        if thread_id is not None:
            body["message"].update(message_thread_id=thread_id, is_topic_message=True)
        if text.startswith("/"):
            word = text.split()[0]
            body["message"]["entities"] = [{"type": "bot_command", "offset": 0, "length": len(word)}]
        return body

    async def send_twice(
        self, text: str, *, reply_to: BotMessage | None = None, thread_id: int | None = None
    ) -> list[BotMessage]:
        """``send``, the update delivered twice at once (``FakeBotAPI.push_twice``); until the bot
        has handled both deliveries."""
        body = self.message_body(text, reply_to=reply_to, thread_id=thread_id)
        before = {(m.message_id, m.edits) for m in self.messages}
        uid = await self.api.push_twice(body)
        self.last_update_id = uid
        self.last_body = body
        await self.api.wait_handled_times(uid, 2)
        return [m for m in self.messages if (m.message_id, m.edits) not in before]

    async def send_other(self, *, reply_to: BotMessage | None = None, **content: Any) -> list[BotMessage]:
        """A sticker, photo, voice, document, location... given as Bot API message fields."""
        body = {"message": self._message(**content)}
        if reply_to is not None:
            body["message"]["reply_to_message"] = self.api._message_json(reply_to)
        return await self._push(body)

    async def edit(self, message_id: int, text: str) -> list[BotMessage]:
        msg = self._message(text=text)
        msg["message_id"] = message_id
        msg["edit_date"] = int(time.time())
        return await self._push({"edited_message": msg})

    @property
    def menu(self) -> BotMessage:
        """The newest bot message that has buttons."""
        with_buttons = [m for m in self.messages if m.reply_markup]
        assert with_buttons, "the bot has sent no buttons"
        return max(with_buttons, key=lambda m: m.message_id)

    def button(self, label: str, message: BotMessage | None = None) -> dict[str, Any]:
        msg = message or self.menu
        exact = [b for b in msg.buttons if b["text"] == label]
        partial = [b for b in msg.buttons if label.casefold() in b["text"].casefold()]
        found = exact or (partial if len(partial) == 1 else [])
        if not found:
            raise LookupError(f"no single button {label!r} in {msg.labels}")
        return found[0]

    async def press(self, label: str, message: BotMessage | None = None, **kw: Any) -> list[BotMessage]:
        msg = message or self.menu
        return await self.press_data(self.button(label, msg)["callback_data"], msg, **kw)

    async def press_data(self, data: str, message: BotMessage, **kw: Any) -> list[BotMessage]:
        query = {
            "id": self.api.new_callback_id(),
            "from": self.user,
            "chat_instance": f"ci{self.chat_id}",
            "data": data,
            "message": self.api._message_json(message),
        }
        self.last_query_id = query["id"]
        return await self._push({"callback_query": query}, **kw)

    def text_since(self, messages: list[BotMessage]) -> str:
        return "\n".join(m.visible for m in messages)
