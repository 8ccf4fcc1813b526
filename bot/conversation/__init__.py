"""The channel-neutral conversation core: turns, their effects, and each channel's outlet."""

from bot.conversation.core import ConversationCore, EffectHandler, Outlet, transcript_line
from bot.conversation.locks import KeyLocks, Locks, RedisLocks
from bot.conversation.turn import Turn

__all__ = [
    "ConversationCore",
    "EffectHandler",
    "KeyLocks",
    "Locks",
    "Outlet",
    "RedisLocks",
    "Turn",
    "transcript_line",
]
