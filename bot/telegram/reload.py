"""Reloading the content while the bot runs: ``/reload`` (admins) and a watcher on ``flows/``.

Invalid content is rejected and the checker's ``file:line`` messages go to the admins; the
running content keeps serving. Valid content is swapped in at once (one assignment, between two
updates); each load has a version (a hash of the files) that conversations and leads record. A
prospect on a step that changed carries on there; on one that is gone, at the start of its flow.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from aiogram import Bot
from aiogram.types import Message

from bot.content import ContentError, load_content
from bot.engine.engine import Engine
from bot.settings import Settings
from bot.telegram.runtime import Runtime

if TYPE_CHECKING:
    from bot.telegram.alerts import AlertSender

log = logging.getLogger(__name__)

PROBLEMS_SHOWN = 30


@dataclass
class Reloaded:
    ok: bool
    version: str
    changed: bool = False
    problems: list[str] = field(default_factory=list)
    loaded_at: datetime = field(default_factory=lambda: datetime.now(UTC))


class Serving(Protocol):
    """What serves the content: the engine is replaced when it is reloaded (the bot process, or
    the Telegram adapter's runtime)."""

    settings: Settings
    engine: Engine
    alerts: AlertSender | None


async def reload_content(runtime: Serving) -> Reloaded:
    """Load, check and compile the content off the event loop; swap it in if it is valid."""
    settings = runtime.settings
    current = runtime.engine
    try:
        content = await asyncio.to_thread(load_content, settings.flows_dir)
    except ContentError as e:
        log.warning(
            "content rejected: %d problem(s); still serving %s", len(e.problems), current.content.version
        )
        return Reloaded(False, current.content.version, problems=[str(p) for p in e.problems])
    if content.version == current.content.version:
        return Reloaded(True, content.version)
    engine = await asyncio.to_thread(
        Engine, content, default_locale=settings.default_locale, retention_days=settings.retention_days
    )
    runtime.engine = engine
    if runtime.alerts is not None:
        runtime.alerts.content = content
    log.info("content %s loaded (was %s)", content.version, current.content.version)
    return Reloaded(True, content.version, changed=True)


def report(result: Reloaded) -> str:
    """A message for admins (plain text: file:line messages may hold any character)."""
    if not result.ok:
        shown = result.problems[:PROBLEMS_SHOWN]
        more = len(result.problems) - len(shown)
        lines = [
            f"Content rejected ({len(result.problems)} problems); still serving {result.version}:",
            *shown,
        ]
        if more:
            lines.append(f"... and {more} more (python -m bot flows check)")
        return "\n".join(lines)
    if result.changed:
        return f"Content {result.version} loaded at {result.loaded_at:%Y-%m-%d %H:%M:%S} UTC."
    return f"Content unchanged ({result.version})."


async def notify_admins(bot: Bot, runtime: Serving, text: str) -> None:
    for admin in runtime.settings.admin_ids:
        try:
            await bot.send_message(chat_id=admin, text=text[:4000], parse_mode=None)
        except Exception as e:  # an admin who never started the bot, a network error...
            log.warning("could not tell admin %s about the content: %s", admin, e)


async def watch_content(bot: Bot | None, runtime: Serving, folder: Path, *, debounce_ms: int = 500) -> None:
    """Reload whenever a file under ``folder`` changes; tell the admins (in Telegram, when it
    runs) when it is rejected."""
    from watchfiles import awatch

    async for _changes in awatch(folder, debounce=debounce_ms, recursive=True):
        result = await reload_content(runtime)
        if bot is not None and (not result.ok or result.changed):
            await notify_admins(bot, runtime, report(result))


async def on_reload(message: Message, runtime: Runtime) -> None:
    """``/reload`` from an admin; anyone else is answered by the conversation (unknown command)."""
    result = await reload_content(runtime)
    await message.answer(report(result), parse_mode=None)
