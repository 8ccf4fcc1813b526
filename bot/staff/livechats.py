"""Live chats between prospects and staff, in the database (so they survive restarts and work
the same from every replica): which prospect a forum topic or a staff-group message belongs to."""

from __future__ import annotations

from sqlalchemy import select, update

from bot.db.engine import Database
from bot.db.models import LiveChat, RelayMessage, utcnow
from bot.prospect import ProspectId


class LiveChatRepository:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def open_for(self, prospect: ProspectId) -> LiveChat | None:
        async with self.db.sessions() as session:
            return await session.scalar(
                select(LiveChat)
                .where(
                    LiveChat.channel == prospect.channel,
                    LiveChat.external_id == prospect.external_id,
                    LiveChat.closed_at.is_(None),
                )
                .order_by(LiveChat.id.desc())
                .limit(1)
            )

    async def open(
        self,
        *,
        prospect: ProspectId,
        staff_chat_id: int,
        topic_id: int | None,
        locale: str | None,
        lead_id: int | None = None,
    ) -> LiveChat:
        live = LiveChat(
            channel=prospect.channel,
            external_id=prospect.external_id,
            staff_chat_id=staff_chat_id,
            topic_id=topic_id,
            locale=locale,
            lead_id=lead_id,
            opened_at=utcnow(),
        )
        await self.db.run_write(lambda session: session.add(live))
        return live

    async def by_topic(self, staff_chat_id: int, topic_id: int) -> LiveChat | None:
        """The newest live chat of a forum topic (open or closed)."""
        async with self.db.sessions() as session:
            return await session.scalar(
                select(LiveChat)
                .where(LiveChat.staff_chat_id == staff_chat_id, LiveChat.topic_id == topic_id)
                .order_by(LiveChat.id.desc())
                .limit(1)
            )

    async def by_message(self, staff_chat_id: int, message_id: int) -> LiveChat | None:
        """The live chat a message the bot posted in the staff group belongs to."""
        async with self.db.sessions() as session:
            return await session.scalar(
                select(LiveChat)
                .join(RelayMessage, RelayMessage.live_chat_id == LiveChat.id)
                .where(RelayMessage.staff_chat_id == staff_chat_id, RelayMessage.message_id == message_id)
            )

    async def remember(self, live: LiveChat, message_id: int) -> None:
        relay = RelayMessage(staff_chat_id=live.staff_chat_id, message_id=message_id, live_chat_id=live.id)
        await self.db.run_write(lambda session: session.add(relay))

    async def close(self, live_id: int, by: str) -> bool:
        """End a live chat; False if it had already ended."""
        stmt = (
            update(LiveChat)
            .where(LiveChat.id == live_id, LiveChat.closed_at.is_(None))
            .values(closed_at=utcnow(), closed_by=by[:100])
        )
        result = await self.db.run_write(lambda session: session.execute(stmt))
        return bool(result.rowcount)  # type: ignore[attr-defined]
