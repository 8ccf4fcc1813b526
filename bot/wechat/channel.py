"""WeChat as a channel on the conversation core.

A push is answered within WeChat's 5 seconds with at most one passive reply, or WeChat tries
again (3 attempts in all) and then shows the user "该公众号暂时无法提供服务". So each push's turn
runs in a task of its own: if it is done within ``WECHAT_REPLY_WITHIN`` (4 s) of the push's
arrival, the first text of its answer is the passive reply and the rest go as customer-service
messages (``api``); if not, the push is answered ``success`` (WeChat stops trying) and the whole
answer goes as customer-service messages once the turn is done.

Every push is handled once. A push's dedupe key (the MsgId; for an event, which has none, its
time and kind) is claimed on arrival, where every replica sees it (Redis, else this process), and
kept longer than a push's timestamp is accepted (a captured push replayed is not a new turn). A
retry waits for the attempt that claimed the push to decide, then gets its passive reply again
(WeChat retries only what it did not get), or ``success`` when the answer goes by
customer-service messages. If that attempt never decides (its replica died), the retry takes the
push over; the conversation's record (``Turn.answered``) still makes sure no push is handled
twice, and a push whose turn is done already is answered with what that turn said.

A user's answers arrive in the order of their messages: while anything is on its way to them by
customer-service message (a slow turn's answer, the rest of a long one, a consultant's), the
next answers queue behind it instead of overtaking it as passive replies. (Within a replica; two
replicas answering one user at the same moment may still cross.)

No buttons: each view's buttons are numbered lines (``render``); a typed number presses that
button of the last view shown (a number typed where an answer is asked, or in a live chat, is
text). A number from before a content reload gets the engine's "this menu has expired" and the
current menu, as a stale button does in Telegram.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
import unicodedata
from collections.abc import Coroutine, Sequence
from typing import Any, Protocol, TypeVar

from aiohttp import web
from cachetools import TTLCache
from redis.asyncio import Redis

from bot.conversation.core import ConversationCore, Exchange
from bot.conversation.transcript import keep, last_buttons
from bot.conversation.turn import Turn
from bot.engine.events import Command, Event, Press, Reply, TextIn, Unsupported, parse_command
from bot.engine.state import State
from bot.prospect import ProspectId
from bot.settings import Settings
from bot.text import clean
from bot.wechat.api import Undeliverable, WeChatAPI
from bot.wechat.callback import MAX_SKEW, Crypto, Incoming, Refused, text_reply
from bot.wechat.render import texts

log = logging.getLogger(__name__)
T = TypeVar("T")

WECHAT = "wechat"
MARK_TTL = MAX_SKEW + 60
"""Seconds a push's dedupe key is kept: WeChat's retries come within about 15 s, and a push
captured and replayed is refused for its timestamp after MAX_SKEW."""
POLL = 0.05
"""Seconds between looks at a push's mark while a retry waits for the first attempt."""
MAX_TEXT = 2000
"""Characters of a text message read (WeChat sends at most 2048 bytes)."""
_NUMBER = re.compile(r"^\s*(\d{1,2})\s*[.。、)）]?\s*$")
QUIET_EVENTS = frozenset({"unsubscribe", "view", "location", "templatesendjobfinish", "masssendjobfinish"})
"""Events that need no answer (a user who left cannot be written to)."""
PENDING = "…"
BY_API = "api"


class Marks(Protocol):
    """Pushes seen, shared by every replica: what became of each."""

    async def claim(self, key: str) -> str | None:
        """None if ``key`` is new (it is now claimed); else what was recorded for it."""
        ...

    async def get(self, key: str) -> str | None: ...

    async def set(self, key: str, value: str) -> None: ...

    async def forget(self, key: str) -> None: ...


class MemoryMarks:
    """In this process (one process: no Redis)."""

    def __init__(self, ttl: float = MARK_TTL) -> None:
        self._marks: TTLCache[str, str] = TTLCache(maxsize=200_000, ttl=ttl)

    async def claim(self, key: str) -> str | None:
        found = self._marks.get(key)
        if found is None:
            self._marks[key] = PENDING
        return found

    async def get(self, key: str) -> str | None:
        return self._marks.get(key)

    async def set(self, key: str, value: str) -> None:
        self._marks[key] = value

    async def forget(self, key: str) -> None:
        self._marks.pop(key, None)


class RedisMarks:
    """In Redis, for every replica."""

    def __init__(self, redis: Redis, prefix: str = "certbot", ttl: int = MARK_TTL) -> None:
        self.redis = redis
        self.prefix = f"{prefix}:wechat:push:"
        self.ttl = ttl

    async def claim(self, key: str) -> str | None:
        if await self.redis.set(self.prefix + key, PENDING, nx=True, ex=self.ttl):
            return None
        found = await self.redis.get(self.prefix + key)
        if found is None:
            return PENDING
        return found.decode() if isinstance(found, bytes) else str(found)

    async def get(self, key: str) -> str | None:
        found = await self.redis.get(self.prefix + key)
        if found is None:
            return None
        return found.decode() if isinstance(found, bytes) else str(found)

    async def set(self, key: str, value: str) -> None:
        await self.redis.set(self.prefix + key, value, ex=self.ttl)

    async def forget(self, key: str) -> None:
        await self.redis.delete(self.prefix + key)


class WeChatChannel:
    """The WeChat callback (``WECHAT_PATH``) and the outlet that reaches WeChat users."""

    def __init__(
        self,
        settings: Settings,
        core: ConversationCore,
        *,
        api: WeChatAPI | None = None,
        marks: Marks | None = None,
    ) -> None:
        assert settings.wechat_token is not None, "WECHAT_TOKEN is not set"
        aes = settings.wechat_aes_key.get_secret_value() if settings.wechat_aes_key else None
        if aes and not settings.wechat_app_id:
            raise ValueError("WECHAT_AES_KEY is set: set WECHAT_APP_ID too (safe mode checks it)")
        self.settings = settings
        self.core = core
        self.api = api
        self.crypto = Crypto(settings.wechat_token.get_secret_value(), settings.wechat_app_id, aes)
        self.marks: Marks = marks or MemoryMarks()
        self.reply_within = settings.wechat_reply_within
        self.links = settings.wechat_msgmenu
        self._tasks: set[asyncio.Task[Any]] = set()
        self._queues: dict[str, asyncio.Task[bool]] = {}
        """The last send queued for each user (by openid), while it is under way."""
        self._option_lines: dict[tuple[str, str], str] = {}
        """``wx_option`` by content version and language, its number and label to fill in."""
        self.turns = 0
        """Turns handled here (the benchmark counts duplicates with it)."""
        core.outlets[WECHAT] = self
        if api is None:
            log.warning(
                "WECHAT_APP_ID / WECHAT_APP_SECRET are not set: WeChat gets passive replies only "
                "(a slow turn's answer and consultants' answers cannot be sent)"
            )

    # --- rendering -----------------------------------------------------------------------------------

    def texts(self, messages: Sequence[dict[str, Any]], locale: str | None) -> list[str]:
        content = self.core.engine.content
        loc = locale or content.default_locale
        key = (content.version, loc)
        shape = self._option_lines.get(key)
        if shape is None:  # the template rendered once per content and language, not per line
            if len(self._option_lines) > 8:  # earlier contents' (reloads)
                self._option_lines.clear()
            shape = self._option_lines[key] = content.t("wx_option", loc, number="\x01", label="\x02")

        def line(number: int, label: str) -> str:
            return shape.replace("\x01", str(number)).replace("\x02", label)

        return texts(messages, line, links=self.links)

    # --- the callback ------------------------------------------------------------------------------

    async def verify(self, request: web.Request) -> web.StreamResponse:
        """WeChat's URL verification: ``echostr`` back if the signature is right."""
        try:
            self.crypto.verify(request.query)
        except Refused as e:
            log.warning("wechat: a verification request refused (%s)", e)
            return web.Response(status=403, text="forbidden")
        return web.Response(text=request.query.get("echostr", ""), content_type="text/plain")

    async def receive(self, request: web.Request) -> web.StreamResponse:
        arrived = time.monotonic()
        try:
            body = await request.read()
            message = self.crypto.open(request.query, body)
        except web.HTTPRequestEntityTooLarge:
            return web.Response(status=413, text="too large")
        except Refused as e:
            log.warning("wechat: a push refused (%s)", e)
            return web.Response(status=403, text="forbidden")
        reply = await self.answer(message, arrived + self.reply_within)
        if reply is None:
            return web.Response(text="success", content_type="text/plain")
        xml = self.crypto.wrap(text_reply(message.openid, message.account, reply), request.query)
        return web.Response(text=xml, content_type="application/xml")

    async def answer(self, message: Incoming, deadline: float) -> str | None:
        """The passive reply to ``message`` (None: ``success``; the answer goes by
        customer-service messages, or there is none)."""
        if message.kind == "event" and message.event in QUIET_EVENTS:
            return None
        mark = f"{message.openid}:{message.dedupe}"
        seen = await self.marks.claim(mark)
        if seen is None:
            return await self._first(message, mark, deadline)
        # A retry: WeChat did not get the answer to an earlier attempt (or is impatient). Wait
        # for that attempt to decide; its passive reply is given again, as WeChat never had it.
        while seen == PENDING and time.monotonic() < deadline:
            await asyncio.sleep(POLL)
            seen = await self.marks.get(mark)
            if seen is None:  # expired meanwhile: this attempt is the first now
                return await self.answer(message, deadline)
        log.info("wechat: push %s again (a retry)", mark)
        if seen == PENDING:
            # The attempt that claimed it did not decide within a deadline of its own: its
            # replica is gone. This one takes the push over, answering by customer-service message.
            await self.marks.set(mark, BY_API)
            prospect = ProspectId(WECHAT, message.openid)
            self._queue(prospect, self._spawn(self._exchange(prospect, message)))
            return None
        return None if seen == BY_API else seen

    async def _first(self, message: Incoming, mark: str, deadline: float) -> str | None:
        prospect = ProspectId(WECHAT, message.openid)
        task = self._spawn(self._exchange(prospect, message))
        try:
            done = await asyncio.wait_for(asyncio.shield(task), max(0.0, deadline - time.monotonic()))
        except TimeoutError:
            await self.marks.set(mark, BY_API)
            log.info("wechat: the turn of %s is slow; its answer goes by customer-service messages", mark)
            self._queue(prospect, task)  # and the user's next answers go behind it, in order
            return None
        except Exception:
            log.exception("wechat: handling push %s failed", mark)
            await self.marks.forget(mark)
            return self._error_text()
        # A turn done before (``repeated``) is answered again: WeChat retries only what it did not
        # get, and this process never saw the first attempt (a restart, an expired mark).
        out = self.texts(done.messages, done.locale)
        if not out or self._behind(prospect):
            # nothing to say, or earlier answers still on their way: this one goes after them
            await self.marks.set(mark, BY_API)
            if out:
                self._queue(prospect, out)
            return None
        await self.marks.set(mark, out[0])
        if out[1:]:
            self._queue(prospect, out[1:])
        return out[0]

    def _error_text(self, locale: str | None = None) -> str:
        content = self.core.engine.content
        return content.t("wx_error", locale or content.default_locale)

    async def _exchange(self, prospect: ProspectId, message: Incoming) -> Exchange:
        done = await self.core.exchange(
            prospect, message.dedupe, lambda turn: self.event(message, turn), language=None
        )
        if not done.repeated:
            self.turns += 1
        return done

    def _spawn(self, job: Coroutine[Any, Any, T]) -> asyncio.Task[T]:
        task = asyncio.ensure_future(job)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # --- customer-service messages, in order -------------------------------------------------------

    def _behind(self, prospect: ProspectId) -> bool:
        """Whether answers to the user are still on their way by customer-service message."""
        tail = self._queues.get(prospect.external_id)
        return tail is not None and not tail.done()

    def _queue(
        self, prospect: ProspectId, what: Sequence[str] | asyncio.Task[Exchange]
    ) -> asyncio.Task[bool]:
        """Send ``what`` (texts, or a slow turn's answer once it is done) by customer-service
        messages after everything queued for the user before: a user sees their answers in the
        order of their messages, so a number typed presses a button of the view seen last."""
        openid = prospect.external_id
        before = self._queues.get(openid)
        tail = self._spawn(self._send_after(before, prospect, what))
        self._queues[openid] = tail

        def drop(done: asyncio.Task[bool]) -> None:
            if self._queues.get(openid) is done:
                del self._queues[openid]

        tail.add_done_callback(drop)
        return tail

    async def _send_after(
        self,
        before: asyncio.Task[bool] | None,
        prospect: ProspectId,
        what: Sequence[str] | asyncio.Task[Exchange],
    ) -> bool:
        if before is not None:
            await asyncio.wait([before])
        if isinstance(what, asyncio.Task):
            await asyncio.wait([what])
            if what.cancelled():
                return False
            error = what.exception()
            if error is not None:  # the slow turn failed: the user, answered "success", is told
                log.error("wechat: a slow turn of %s failed", prospect.key, exc_info=error)
                return await self._send(prospect, [self._error_text()])
            done = what.result()
            return await self._send(prospect, self.texts(done.messages, done.locale))
        return await self._send(prospect, what)

    async def _send(self, prospect: ProspectId, pieces: Sequence[str]) -> bool:
        """Customer-service messages now; False if they could not all be delivered."""
        if not pieces:
            return True
        if self.api is None:
            log.warning("wechat: %d message(s) for %s not sent: no API settings", len(pieces), prospect.key)
            return False
        for piece in pieces:
            try:
                await self.api.send_text(prospect.external_id, piece)
            except Undeliverable as e:
                log.warning("wechat: %s cannot be written to now (%s)", prospect.key, e.code)
                return False
            except Exception as e:
                log.error("wechat: a message to %s was not sent (%s)", prospect.key, e)
                return False
        return True

    def event(self, message: Incoming, turn: Turn) -> Event:
        """The engine event of a push, read against the conversation (a typed number)."""
        kind = message.kind
        if kind == "text" or (kind == "voice" and message.text):
            text = clean(message.text)[:MAX_TEXT].strip()
            if not text:
                return Unsupported(kind)
            if text.startswith("/"):
                command = parse_command(text)
                if command is not None:
                    return command
            press = self._number(text, turn)
            return press if press is not None else TextIn(text)
        if kind == "event":
            key = clean(message.key)[:64]
            if message.event in ("subscribe", "scan"):
                scene = key.removeprefix("qrscene_")
                return Command("start", scene if scene.isidentifier() else "")
            if message.event == "click" and key:
                return parse_command(key) or TextIn(key)
            return Unsupported(message.event or kind)
        return Unsupported(kind)

    def _number(self, text: str, turn: Turn) -> Press | None:
        """A typed number: the button with that number in the last view shown."""
        found = _NUMBER.match(unicodedata.normalize("NFKC", text))
        engine = self.core.engine
        if found is None or engine.awaiting_input(turn.state) or engine.in_live_chat(turn.state):
            return None
        buttons = last_buttons(turn.log)
        number = int(found.group(1))
        if 1 <= number <= len(buttons):
            return Press(str(buttons[number - 1]["payload"]))
        return None

    # --- the outlet ---------------------------------------------------------------------------------

    async def show(self, turn: Turn, state: State, replies: Sequence[Reply]) -> bool:
        """A consultant's answer (or the end of a live chat) by customer-service message, after
        what is on its way to the user already. Kept in the log either way; one that could not be
        delivered is marked so for staff."""
        assert turn.prospect is not None
        kept = keep(turn, replies)
        delivered = await self._queue(turn.prospect, self.texts(kept, state.locale))
        if not delivered:
            for message in kept:
                message["undelivered"] = True
        return delivered

    def routes(self, app: web.Application) -> None:
        path = self.settings.wechat_path
        app.router.add_get(path, self.verify)
        app.router.add_post(path, self.receive)
        app.on_shutdown.append(self._finish)

    async def settled(self, within: float = 10.0) -> None:
        """Until the turns and messages under way have finished (at most ``within`` seconds)."""
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=within)

    async def _finish(self, app: web.Application) -> None:
        """The server stops: let the turns and messages under way finish."""
        await self.settled()

    async def close(self) -> None:
        await self.settled()
        if self.api is not None:
            await self.api.close()


def channel_marks(redis: Redis | None, prefix: str) -> Marks:
    return RedisMarks(redis, prefix) if redis is not None else MemoryMarks()


__all__ = ["WECHAT", "Marks", "MemoryMarks", "RedisMarks", "WeChatChannel", "channel_marks"]
