"""What the Telegram adapter's handlers share: the conversation core, and Telegram's own things
(who is staff, the flood gate, prospects who blocked the bot, the staff group's live chats)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from bot.conversation.core import ConversationCore
from bot.engine.engine import Engine
from bot.settings import Settings
from bot.telegram.limits import BlockedChats, FloodGate
from bot.telegram.staff import StaffDirectory

if TYPE_CHECKING:
    from bot.analytics import Analytics
    from bot.leads.repository import LeadRepository
    from bot.telegram.alerts import AlertSender
    from bot.telegram.live import TelegramStaffRoom


@dataclass
class Runtime:
    settings: Settings
    core: ConversationCore
    leads: LeadRepository | None = None
    alerts: AlertSender | None = None
    live: TelegramStaffRoom | None = None
    """Live chats in the staff group (when there is a database and a staff group)."""
    blocked: BlockedChats = field(default_factory=lambda: BlockedChats(None))
    """Prospects who blocked the bot."""
    flood: FloodGate = field(init=False)
    staff: StaffDirectory = field(init=False)
    """Who is staff (admins, members of the staff group)."""

    def __post_init__(self) -> None:
        self.staff = StaffDirectory(self.settings)
        self.flood = FloodGate(self.settings.flood_rate)

    @property
    def engine(self) -> Engine:
        return self.core.engine

    @engine.setter
    def engine(self, engine: Engine) -> None:
        self.core.engine = engine

    @property
    def analytics(self) -> Analytics | None:
        return self.core.analytics
