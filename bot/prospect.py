"""Who a prospect is, whatever channel they came through: the channel and that channel's own id
for them, with a handle to show staff. Leads and live chats are keyed by it."""

from __future__ import annotations

from dataclasses import dataclass

TELEGRAM = "telegram"
CHANNELS = {TELEGRAM: "Telegram", "web": "Web", "wechat": "WeChat"}
"""Every channel, with the name staff see."""
PREFIXES = {TELEGRAM: "tg", "web": "web", "wechat": "wx"}
"""Each channel's prefix in conversation keys: ``tg:123``, ``web:…``, ``wx:openid``."""


@dataclass(frozen=True, slots=True)
class ProspectId:
    channel: str
    external_id: str
    """The channel's own id (Telegram: the user id, as text)."""
    handle: str | None = None
    """What staff see for them there (Telegram: the @username, without the @)."""

    @classmethod
    def telegram(cls, user_id: int, username: str | None = None) -> ProspectId:
        return cls(TELEGRAM, str(user_id), username)

    @property
    def key(self) -> str:
        """The conversation's key in the store: the channel's prefix and its own id."""
        return conversation_key(self.channel, self.external_id)

    @property
    def telegram_chat(self) -> int:
        """The Telegram private chat (the user id); a ValueError for another channel."""
        if self.channel != TELEGRAM:
            raise ValueError(f"{self.channel} is not Telegram")
        return int(self.external_id)


def conversation_key(channel: str, external_id: str | int) -> str:
    return f"{PREFIXES[channel]}:{external_id}"


def telegram_key(chat_id: int) -> str:
    """A Telegram chat's conversation (a prospect's private chat, or a group's record)."""
    return f"tg:{chat_id}"


def channel_name(channel: str | None) -> str:
    return CHANNELS.get(channel or TELEGRAM, channel or TELEGRAM)
