"""WeChat's custom menu (自定义菜单), built from ``wechat_menu`` in ``flows/common.yaml``: a click
sends its entry's command as the EventKey (``/start iso9001``, ``/consultant``), which the channel
handles as if typed."""

from __future__ import annotations

from typing import Any

from bot.content import Content
from bot.content.model import WeChatMenuEntry, menu_key
from bot.settings import Settings


def build_menu(content: Content, locale: str | None = None) -> dict[str, Any]:
    """The body of ``cgi-bin/menu/create``."""
    loc = locale or content.default_locale

    def entry(e: WeChatMenuEntry) -> dict[str, Any]:
        name = content.localise(e.label, loc)
        if e.entries:
            return {"name": name, "sub_button": [entry(sub) for sub in e.entries]}
        if e.url is not None:
            return {"type": "view", "name": name, "url": e.url}
        return {"type": "click", "name": name, "key": menu_key(e)}

    return {"button": [entry(e) for e in content.wechat_menu]}


async def publish_menu(settings: Settings, content: Content) -> dict[str, Any]:
    """Publish the menu with the account's API (the token shared as the bot shares it)."""
    from redis.asyncio import Redis

    from bot.db import create_database, upgrade
    from bot.wechat.api import DatabaseTokens, RedisTokens, TokenCache, WeChatAPI

    if not settings.wechat_app_id or settings.wechat_app_secret is None:
        raise ValueError("set WECHAT_APP_ID and WECHAT_APP_SECRET first")
    body = build_menu(content)
    redis = Redis.from_url(settings.redis_url) if settings.redis_url else None
    db = None
    tokens: TokenCache
    if redis is not None:
        tokens = RedisTokens(redis, settings.wechat_app_id, settings.redis_prefix)
    else:
        await upgrade(settings.database_url)
        db = create_database(settings.database_url)
        tokens = DatabaseTokens(db, settings.wechat_app_id)
    api = WeChatAPI(
        settings.wechat_api_base,
        settings.wechat_app_id,
        settings.wechat_app_secret.get_secret_value(),
        tokens,
    )
    try:
        await api.create_menu(body)
    finally:
        await api.close()
        if redis is not None:
            await redis.aclose()
        if db is not None:
            await db.dispose()
    return body
