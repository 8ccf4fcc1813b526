"""The web chat channel: an embeddable widget and a full page, on the conversation core."""

from bot.conversation.transcript import message_of
from bot.webchat.channel import WEB, Refused, WebChat
from bot.webchat.visitors import Visitors

__all__ = ["WEB", "Refused", "Visitors", "WebChat", "message_of"]
