"""Live handoff: a prospect, on any channel, talks to a person through the bot.

The engine's ``live`` handoff step emits ``LiveChatStarted`` on entering, ``LiveRelay`` for every
message the prospect sends while there, and ``LiveChatEnded`` when they leave. This desk carries
them out, keeping the live chats' records (``LiveChatRepository``), and posts the prospect's
messages in a staff room (the Telegram staff group: ``bot.telegram.live``); staff's answers go
back to the prospect in their own channel through the conversation core's outlets. Outside
working hours, or with no staff room, the prospect is told when to expect an answer and the
enquiry is kept as a lead, so it is not lost.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from bot.content import Content
from bot.conversation.core import ConversationCore
from bot.conversation.leads import submission_key
from bot.conversation.turn import Turn
from bot.db.models import LiveChat, utcnow
from bot.engine.events import (
    Effect,
    ForgetRequested,
    LiveChatEnded,
    LiveChatStarted,
    LiveClosed,
    LiveRelay,
    Reply,
)
from bot.leads.repository import LeadRepository, LeadSubmission
from bot.prospect import TELEGRAM, ProspectId, channel_name
from bot.settings import Settings
from bot.staff.livechats import LiveChatRepository

log = logging.getLogger(__name__)

RELAY_TEXT = 3800
"""What a prospect typed is cut to this length for staff (with the name it stays < 4096)."""


@dataclass(frozen=True, slots=True)
class Opened:
    """Where a live chat is shown to staff: the staff chat, its topic, the first message there."""

    staff_chat_id: int
    topic_id: int | None
    message_id: int


class StaffRoom(Protocol):
    """Where staff read and answer live chats."""

    async def open(self, prospect: ProspectId, name: str, intro: Callable[[bool], str]) -> Opened:
        """Show a new live chat; ``intro(topic)`` is its first message (``topic``: the chat has a
        thread of its own)."""
        ...

    async def post(self, live: LiveChat, text: str) -> int:
        """Post ``text`` (HTML) in the live chat; the message's id."""
        ...

    async def relay(self, live: LiveChat, turn: Turn, name: str, kind: str) -> Sequence[int]:
        """Pass on a message of another kind than text (a photo, a file) that the prospect sent
        (``turn.attachment``); the ids of the messages posted."""
        ...

    async def close(self, live: LiveChat) -> None:
        """The live chat ended: close its thread, if it has one."""
        ...


class LiveDesk:
    def __init__(
        self,
        core: ConversationCore,
        repo: LiveChatRepository,
        settings: Settings,
        *,
        room: StaffRoom | None = None,
        leads: LeadRepository | None = None,
        wake_alerts: Callable[[], None] | None = None,
    ) -> None:
        self.core = core
        self.repo = repo
        self.settings = settings
        self.room = room
        """None: nobody to talk to (no staff group); an enquiry is kept as a lead instead."""
        self.leads = leads
        self.wake_alerts = wake_alerts

    @property
    def content(self) -> Content:
        return self.core.engine.content

    @property
    def locale(self) -> str:
        """Staff's language."""
        return self.content.default_locale

    # --- the prospect's side (effects of the engine) --------------------------------------------------

    async def on_effect(self, effect: Effect, turn: Turn) -> list[str]:
        if turn.prospect is None:
            return []
        if isinstance(effect, LiveChatStarted):
            return await self.open(turn, effect)
        if isinstance(effect, LiveRelay):
            return await self.relay(turn, effect)
        if isinstance(effect, LiveChatEnded):
            await self.end(turn.prospect, "prospect", "live_prospect_left", name=self.name(turn))
        if isinstance(effect, ForgetRequested):
            # An open live chat ends (staff are told, without a name); nothing staff write there
            # reaches the prospect any more (the records go with the rest of their data).
            await self.end(turn.prospect, "forgotten", "live_forgotten")
        return []

    @staticmethod
    def name(turn: Turn) -> str:
        """What staff see for the prospect."""
        assert turn.prospect is not None
        if turn.name:
            return turn.name
        return f"{channel_name(turn.prospect.channel)} {turn.prospect.external_id[:8]}"

    async def open(self, turn: Turn, effect: LiveChatStarted) -> list[str]:
        prospect = turn.prospect
        assert prospect is not None
        if await self.repo.open_for(prospect) is not None:
            return []
        settings, content = self.settings, self.content
        now = utcnow()
        offline = not settings.hours.is_open(now)
        locale = effect.locale or content.default_locale
        reference = None
        lead_id = None
        if (offline or self.room is None) and self.leads is not None:
            # Nobody may read it for a while: keep the enquiry as a lead, so it is not lost.
            saved = await self.leads.submit(
                LeadSubmission.from_effect(
                    effect, key=submission_key(turn), prospect=prospect, transcript=turn.transcript
                )
            )
            reference, lead_id = saved.reference, saved.lead_id
            if self.wake_alerts is not None:
                self.wake_alerts()
        notices = []
        if offline or self.room is None:
            opening = settings.hours.next_opening(now).astimezone(settings.zone)
            notices.append(
                content.t(
                    "live_offline",
                    locale,
                    hours=settings.working_hours,
                    when=opening.strftime("%Y-%m-%d %H:%M"),
                    reference=reference or "—",
                )
            )
        if self.room is None:
            log.warning("a prospect asked for a live chat, but there is no staff group to take it")
            return notices
        flow = content.flows.get(effect.origin or "")
        name = self.name(turn)

        def intro(topic: bool) -> str:
            return content.t(
                "live_staff_intro",
                self.locale,
                name=name,
                username=prospect.handle if prospect.channel == TELEGRAM else None,
                user_id=prospect.external_id,
                channel=None if prospect.channel == TELEGRAM else channel_name(prospect.channel),
                origin=content.localise(flow.title, self.locale) if flow else None,
                question=effect.question,
                reference=reference,
                offline=offline,
                topic=topic,
            )

        opened = await self.room.open(prospect, name, intro)
        live = await self.repo.open(
            prospect=prospect,
            staff_chat_id=opened.staff_chat_id,
            topic_id=opened.topic_id,
            locale=locale,
            lead_id=lead_id,
        )
        await self.repo.remember(live, opened.message_id)
        return notices

    async def relay(self, turn: Turn, effect: LiveRelay) -> list[str]:
        prospect = turn.prospect
        assert prospect is not None
        notices: list[str] = []
        if self.room is None:
            return notices  # nobody to pass it to; the enquiry was kept when the chat began
        live = await self.repo.open_for(prospect)
        if live is None:  # not opened (no group then, or lost): open it now
            where = (turn.state.flow, turn.state.step) if turn.state is not None else ("", "")
            notices = await self.open(turn, LiveChatStarted(*where, locale=self.locale))
            live = await self.repo.open_for(prospect)
            if live is None:
                return notices
        if effect.kind == "text":
            text = (effect.text or "")[:RELAY_TEXT]
            sent = await self.room.post(
                live, self.content.t("live_from_prospect", self.locale, name=self.name(turn), text=text)
            )
            await self.repo.remember(live, sent)
            return notices
        for message_id in await self.room.relay(live, turn, self.name(turn), effect.kind):
            await self.repo.remember(live, message_id)
        if prospect.channel != TELEGRAM:  # the web chat and WeChat pass on text only
            notices.append(
                self.content.t("live_media_unseen", turn.state.locale if turn.state else self.locale)
            )
        return notices

    async def end(self, prospect: ProspectId, by: str, notice: str, **values: str) -> None:
        """The prospect left (or was erased): the chat is closed and staff are told."""
        live = await self.repo.open_for(prospect)
        if live is None or not await self.repo.close(live.id, by):
            return
        if self.room is not None:
            with contextlib.suppress(Exception):  # best effort: the record is closed
                await self.room.post(live, self.content.t(notice, self.locale, **values))
            await self.room.close(live)

    # --- staff's side ---------------------------------------------------------------------------------

    @staticmethod
    def prospect_of(live: LiveChat) -> ProspectId:
        return ProspectId(live.channel, live.external_id or "")

    async def answer(self, live: LiveChat, html: str) -> bool:
        """A consultant's answer (HTML) to the prospect, in their channel; False if it could not
        be delivered (their channel is not served here)."""
        return await self.core.push(self.prospect_of(live), lambda turn: [Reply(html, kind="staff")])

    async def close(self, live: LiveChat, by: str) -> bool:
        """Staff end the chat: the prospect is told and the bot resumes. False if it had ended."""
        if not await self.repo.close(live.id, by):
            return False
        engine_live = self.core.engine.in_live_chat
        try:
            await self.core.push_event(
                self.prospect_of(live), LiveClosed(), lambda turn: engine_live(turn.state)
            )
        except Exception as e:  # the prospect blocked the bot...: the chat is closed all the same
            log.info("live chat %s: the prospect could not be told it ended: %s", live.id, e)
        if self.room is not None:
            await self.room.close(live)
        return True
