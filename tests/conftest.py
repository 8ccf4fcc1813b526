from __future__ import annotations

from pathlib import Path

import pytest

from bot.content import Content, load_content
from bot.engine.conversation import Conversation
from bot.engine.engine import Engine

ROOT = Path(__file__).resolve().parent.parent
FLOWS = ROOT / "flows"


@pytest.fixture(scope="session")
def content() -> Content:
    return load_content(FLOWS)


@pytest.fixture(scope="session")
def engine(content: Content) -> Engine:
    return Engine(content)


@pytest.fixture
def zh(engine: Engine) -> Conversation:
    return Conversation(engine, language_code="zh-hans").start()


@pytest.fixture
def en(engine: Engine) -> Conversation:
    return Conversation(engine, language_code="en").start()


@pytest.fixture
async def api():  # type: ignore[no-untyped-def]
    from .fakebot import FakeBotAPI

    server = FakeBotAPI()
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def running(api, tmp_path):  # type: ignore[no-untyped-def]
    """The real bot, polling the fake server, with conversations in a SQLite file."""
    from .harness import BotRunner, make_settings

    runner = BotRunner(api, make_settings(api, tmp_path))
    await runner.start()
    yield runner
    await runner.stop()


@pytest.fixture
async def db(tmp_path):  # type: ignore[no-untyped-def]
    """A migrated SQLite database in a temporary file."""
    from bot.db import create_database, upgrade

    url = f"sqlite+aiosqlite:///{tmp_path / 'leads.db'}"
    await upgrade(url)
    database = create_database(url)
    yield database
    await database.dispose()
