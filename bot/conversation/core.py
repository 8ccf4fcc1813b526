"""The conversation core, the same for every channel.

A turn: load the conversation under its lock, hand the event to the engine, carry out the
engine's effects (a lead, a live chat, /forget: typed, each handler takes the kinds it knows),
keep the new state, and give the replies back for the channel to show; the conversation is saved
once the channel has shown them (``conversation``). Channels (Telegram, the web chat) are adapters:
they turn their updates into engine events and the replies into their own messages, and register
an ``Outlet`` so that what comes from elsewhere (a consultant's answer, the end of a live chat)
reaches the prospect in their channel.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any, Protocol

from bot.analytics import Analytics
from bot.conversation.locks import KeyLocks, Locks
from bot.conversation.transcript import echo, keep
from bot.conversation.turn import EMPTY, Turn
from bot.engine.engine import Engine
from bot.engine.events import (
    Command,
    Effect,
    Event,
    ForgetRequested,
    Reply,
    Result,
    SharedContact,
    TextIn,
)
from bot.engine.state import State
from bot.prospect import ProspectId
from bot.storage import ConversationStore, Record

log = logging.getLogger(__name__)


def now_ms() -> int:
    return time.time_ns() // 1_000_000


EffectHandler = Callable[[Effect, Turn], Awaitable[list[str]]]
"""Does what an effect asks (e.g. saves a lead); returns notices (HTML) owed to the prospect.
A handler ignores the kinds of effect it does not know."""


class Outlet(Protocol):
    """How a channel shows replies to a prospect outside a turn of their own (a consultant's
    answer, the end of a live chat), under the conversation's lock. False: they could not be
    delivered (WeChat: the prospect's window for messages is closed); staff are told."""

    async def show(self, turn: Turn, state: State, replies: Sequence[Reply]) -> bool: ...


@dataclasses.dataclass(frozen=True, slots=True)
class Exchange:
    """What a prospect's action produced, as kept in the conversation's log."""

    messages: list[dict[str, Any]]
    """The messages it produced: the prospect's own (``echo``), then the replies."""
    last: int
    """The last sequence number of the log."""
    repeated: bool = False
    """A resend of an action handled before: these are the messages it produced then."""
    locale: str | None = None
    """The conversation's language after it."""


async def log_effect(effect: Effect, turn: Turn) -> list[str]:
    log.info("effect %s from conversation %s", effect.name, turn.key)
    return []


def transcript_line(event: Event) -> str | None:
    """What staff read of an event in a lead's last lines."""
    if isinstance(event, TextIn):
        return "> " + event.text
    if isinstance(event, Command):
        return f"> /{event.name} {event.arg}".rstrip()
    if isinstance(event, SharedContact):
        return "> [shared contact]"
    return None


class ConversationCore:
    def __init__(
        self,
        engine: Engine,
        store: ConversationStore,
        *,
        locks: Locks | None = None,
        effect_handlers: Sequence[EffectHandler] = (log_effect,),
        analytics: Analytics | None = None,
        redeliver_failures: bool = False,
    ) -> None:
        self.engine = engine
        """The engine serving now: replaced as a whole when the content is reloaded."""
        self.store = store
        self.locks: Locks = locks or KeyLocks()
        self.effect_handlers = list(effect_handlers)
        self.analytics = analytics
        self.redeliver_failures = redeliver_failures
        """An event whose handling failed is left unrecorded, to be handled again when it comes
        again (a webhook's redelivery)."""
        self.epoch = now_ms()
        """When this core began (ms): the least sequence number of the messages it keeps."""
        self.outlets: dict[str, Outlet] = {}
        """Each channel's way to reach its prospects, by channel name."""

    # --- loading and saving ----------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def conversation(
        self,
        key: str,
        *,
        update_id: int | None = None,
        prospect: ProspectId | None = None,
        name: str | None = None,
        language: str | None = None,
    ) -> AsyncIterator[Turn | None]:
        """The conversation ``key`` under its lock, saved afterwards. With ``update_id`` (an event
        of the prospect): None if that event was handled before (a duplicate delivery)."""
        async with self.locks.lock(key):
            record = await self.store.load(key) or EMPTY
            if update_id is not None and record.seen(update_id):
                log.info("update %s for %s is a duplicate; dropped", update_id, key)
                yield None
                return
            turn = self.begin(key, record, update_id or record.last_update or 0, prospect)
            turn.name, turn.language = name, language
            try:
                yield turn
            except Exception:
                if not (self.redeliver_failures and update_id is not None):
                    await self.keep(turn, update_id)
                # else: not recorded as handled, so its redelivery is handled from the start
                raise
            await self.keep(turn, update_id)

    def begin(self, key: str, record: Record, update_id: int, prospect: ProspectId | None = None) -> Turn:
        """The conversation of ``record`` while ``update_id`` is handled. Its messages are
        numbered on from the record's, and above ``epoch`` (when this process started), or, for a
        conversation that starts now, above the time now (in ms): a number a client was shown is
        never given again, even if its record was lost in a crash or erased."""
        return Turn(
            key=key,
            update_id=update_id,
            prospect=prospect,
            state=record.state,
            menu_id=record.menu_id,
            transcript=list(record.transcript),
            contact_keyboard=record.contact_keyboard,
            loaded=record,
            pending=list(record.pending),
            log=list(record.log),
            seq=record.seq,
            floor=self.epoch if record.seq else now_ms(),
            clients=list(record.clients),
        )

    async def keep(self, turn: Turn, update_id: int | None) -> None:
        """Save the conversation after ``update_id`` (None: a change from staff); after /forget
        only the ids of the events handled are kept (for a day: an update may be redelivered)."""
        if turn.forgotten:
            # what answered the erasing action stays, to answer a resend of it the same way
            since = turn.loaded.seq
            tomb = dataclasses.replace(
                turn.loaded.tombstone(update_id),
                seq=turn.seq,
                log=tuple(m for m in turn.log if m["seq"] > since),
                clients=tuple(c for c in turn.clients if c[1] > since),
            )
            await self.store.save(turn.key, tomb, durable=True)
            return
        await self.store.save(
            turn.key, turn.record(turn.state, tuple(turn.pending), update_id), durable=turn.durable
        )

    # --- a turn ------------------------------------------------------------------------------------

    def handle(self, turn: Turn, event: Event) -> Result:
        """The engine's answer to ``event`` (nothing carried out yet: see ``apply``)."""
        return self.engine.handle(turn.state, event, language_code=turn.language)

    async def apply(self, turn: Turn, result: Result, event: Event | None = None) -> list[Reply] | None:
        """Carry out the effects of ``result``, then keep its state; the replies to show, or None
        if an effect failed (the lead could not be saved): then the state stays where it was, so
        the prospect can press the same button again, and the channel tells them so
        (``failure``)."""
        if result.effects:
            turn.durable = True  # a lead, a live chat...: the conversation is written before the ack
            turn.next_state = result.state
        for effect in result.effects:
            try:
                for handler in self.effect_handlers:
                    turn.pending.extend(await handler(effect, turn))
            except Exception:
                log.exception("effect %s of conversation %s failed", effect.name, turn.key)
                return None
            if isinstance(effect, ForgetRequested):
                turn.forgotten = True  # only once the leads are cleared: then the conversation goes too
                turn.pending.clear()
        before = turn.state
        if self.analytics is not None:
            self.analytics.observe(self.engine.content, turn.key, before, result)
        turn.state = result.state
        line = transcript_line(event) if event is not None else None
        if line is not None:
            turn.note(line)
        if before is None or (before.flow, before.step) != (result.state.flow, result.state.step):
            turn.note(f"@{result.state.flow}.{result.state.step}")
        return result.replies

    async def exchange(
        self,
        prospect: ProspectId,
        client_id: str,
        event: Event | Callable[[Turn], Event],
        *,
        language: str | None = None,
    ) -> Exchange:
        """One action of a prospect in a channel that keeps the log (the web chat, WeChat),
        handled once: a resend with the same ``client_id`` (a retry after a network error, a
        platform's redelivery) gets the messages the first produced. ``event`` may be read off
        the conversation (WeChat: a typed number presses a button of the last view)."""
        async with self.conversation(prospect.key, prospect=prospect, language=language) as turn:
            assert turn is not None
            done = turn.answered(client_id)
            if done is not None:
                locale = turn.state.locale if turn.state is not None else None
                return Exchange(done, turn.seq, repeated=True, locale=locale)
            if callable(event):
                event = event(turn)
            first = turn.next_seq
            turn.update_id = first  # the action's number: never repeats in the conversation
            mine = echo(turn, event)
            if mine is not None:
                turn.append({"role": "visitor", "kind": "view", "text": mine, "buttons": []})
            result = self.handle(turn, event)
            replies = await self.apply(turn, result, event)
            keep(turn, replies if replies is not None else [self.failure(turn, result)])
            turn.remember_client(client_id, first)
            return Exchange(turn.after(first - 1), turn.seq, locale=result.state.locale)

    def failure(self, turn: Turn, result: Result) -> Reply:
        """What the prospect is told when an effect of theirs failed."""
        locale = turn.state.locale if turn.state else result.state.locale
        return Reply(self.engine.content.t("save_failed", locale), kind="notice")

    # --- from elsewhere: staff -------------------------------------------------------------------

    async def push(self, prospect: ProspectId, replies: Callable[[Turn], Sequence[Reply]]) -> bool:
        """Show the prospect ``replies(turn)`` in their channel, under their conversation's lock
        (a consultant's answer). False if their channel is not served here."""
        outlet = self.outlets.get(prospect.channel)
        if outlet is None:
            log.warning(
                "no outlet for channel %s: a message to a prospect was not delivered", prospect.channel
            )
            return False
        async with self.conversation(prospect.key, prospect=prospect) as turn:
            assert turn is not None
            state = turn.state or self.engine.handle(None, Command("start")).state
            return await outlet.show(turn, state, replies(turn))

    async def push_event(self, prospect: ProspectId, event: Event, when: Callable[[Turn], bool]) -> bool:
        """Handle ``event`` in the prospect's conversation if ``when(turn)`` (e.g. staff closed
        the live chat the prospect is still in) and show the result in their channel."""
        outlet = self.outlets.get(prospect.channel)
        if outlet is None:
            return False
        async with self.conversation(prospect.key, prospect=prospect) as turn:
            assert turn is not None
            if not when(turn):
                return False
            result = self.handle(turn, event)
            replies = await self.apply(turn, result, event)
            return await outlet.show(
                turn, result.state, replies if replies is not None else [self.failure(turn, result)]
            )
