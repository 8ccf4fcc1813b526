from __future__ import annotations

import os
import uuid
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


POSTGRES_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres")
REQUIRE_SERVICES = os.environ.get("CI_REQUIRE_SERVICES") == "1"


async def _postgres_database() -> str:
    """A new, empty PostgreSQL database for one test; skipped (failed in CI) without a server."""
    import asyncpg  # type: ignore[import-untyped]

    base = POSTGRES_URL.replace("postgresql+asyncpg://", "postgresql://")
    try:
        admin = await asyncpg.connect(base, timeout=3)
    except (OSError, asyncpg.PostgresError) as e:
        if REQUIRE_SERVICES:
            pytest.fail(f"PostgreSQL is required here (CI_REQUIRE_SERVICES=1) but not reachable: {e}")
        pytest.skip(f"no PostgreSQL at {base}: {e}")
    name = f"certbot_test_{uuid.uuid4().hex[:12]}"
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    return name


async def _drop_postgres_database(name: str) -> None:
    import asyncpg

    admin = await asyncpg.connect(POSTGRES_URL.replace("postgresql+asyncpg://", "postgresql://"), timeout=3)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


@pytest.fixture(params=["sqlite", "postgresql"])
async def db(request, tmp_path):  # type: ignore[no-untyped-def]
    """A migrated database: a SQLite file, and a fresh PostgreSQL database."""
    from bot.db import create_database, upgrade

    pg_name = None
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'leads.db'}"
    else:
        pg_name = await _postgres_database()
        url = POSTGRES_URL.rsplit("/", 1)[0] + "/" + pg_name
    await upgrade(url)
    database = create_database(url)
    yield database
    await database.dispose()
    if pg_name is not None:
        await _drop_postgres_database(pg_name)


REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


@pytest.fixture
async def redis_prefix():  # type: ignore[no-untyped-def]
    """A key prefix of its own on the Redis server (its keys deleted afterwards); skipped (failed
    in CI) without a server."""
    from redis.asyncio import Redis
    from redis.exceptions import RedisError

    client = Redis.from_url(REDIS_URL, socket_connect_timeout=3)
    try:
        await client.ping()
    except (OSError, RedisError) as e:
        await client.aclose()
        if REQUIRE_SERVICES:
            pytest.fail(f"Redis is required here (CI_REQUIRE_SERVICES=1) but not reachable: {e}")
        pytest.skip(f"no Redis at {REDIS_URL}: {e}")
    prefix = f"certbot_test_{uuid.uuid4().hex[:12]}"
    yield prefix
    keys = [key async for key in client.scan_iter(match=f"{prefix}:*")]
    if keys:
        await client.delete(*keys)
    await client.aclose()


@pytest.fixture
async def postgres_url():  # type: ignore[no-untyped-def]
    """A fresh PostgreSQL database's URL (dropped afterwards)."""
    name = await _postgres_database()
    yield POSTGRES_URL.rsplit("/", 1)[0] + "/" + name
    await _drop_postgres_database(name)
