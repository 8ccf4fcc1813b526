"""The WeChat Official Account channel (微信公众号): one more adapter on the conversation core.

``callback``: WeChat's signed pushes (URL verification, messages, events), plain or safe mode.
``render``: the engine's replies as WeChat text (numbered options instead of buttons, 2048 bytes).
``api``: the customer-service messages (客服消息), the custom menu and the shared access_token.
``channel``: the turn of a pushed message, its passive reply within the deadline, the rest later.
"""

from bot.wechat.channel import WECHAT, WeChatChannel

__all__ = ["WECHAT", "WeChatChannel"]
