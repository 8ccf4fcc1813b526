"""The Alembic migrations build exactly the schema the models describe, on SQLite and PostgreSQL,
and can be rolled back and forth."""

from __future__ import annotations

import asyncio
from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection, create_engine, text
from sqlalchemy.ext.asyncio import create_async_engine

from bot.db.engine import Database
from bot.db.migrate import downgrade_sync, upgrade_sync
from bot.db.models import Base


def _differences(connection: Connection) -> list[object]:
    diff = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    return [d for d in diff if "leads_search" not in str(d)]  # SQLite's FTS5 index is migration-only


async def test_migrations_match_the_models(db: Database) -> None:
    async with db.engine.connect() as connection:
        assert await connection.run_sync(_differences) == []


def test_downgrade_and_upgrade_keep_the_search_index_working(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'm.db'}"
    upgrade_sync(url)
    downgrade_sync(url, "0003")
    upgrade_sync(url)
    engine = create_engine(f"sqlite:///{tmp_path / 'm.db'}")
    with engine.begin() as c:
        c.execute(
            text(
                "INSERT INTO leads (kind, status, company, schemes, selfcheck, transcript, created_at, "
                "updated_at) VALUES ('lead', 'new', '北京云服务科技', '[]', '{}', '[]', '2026-01-01', "
                "'2026-01-01')"
            )
        )
        c.execute(text("UPDATE leads SET company = '上海质量咨询' WHERE id = 1"))
        hits = c.execute(text("SELECT rowid FROM leads_search WHERE leads_search MATCH '\"质量咨\"'")).all()
        stale = c.execute(text("SELECT rowid FROM leads_search WHERE leads_search MATCH '\"云服务\"'")).all()
    engine.dispose()
    assert hits == [(1,)] and stale == []


async def test_replicas_starting_together_migrate_once(postgres_url: str) -> None:
    """Three processes migrating the same PostgreSQL database at once (replicas starting): they
    take turns (an advisory lock), and the schema is made once."""
    import asyncio
    import os
    import sys

    from bot.db import create_database

    env = {**os.environ, "DATABASE_URL": postgres_url}
    command = (sys.executable, "-m", "bot", "db", "upgrade")
    out = asyncio.subprocess.PIPE
    procs = [
        await asyncio.create_subprocess_exec(*command, env=env, stdout=out, stderr=asyncio.subprocess.STDOUT)
        for _ in range(3)
    ]
    outputs = [(await asyncio.wait_for(p.communicate(), 120))[0].decode() for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], outputs
    db = create_database(postgres_url)
    async with db.engine.connect() as connection:
        versions = (await connection.execute(text("SELECT version_num FROM alembic_version"))).all()
        differences = await connection.run_sync(_differences)
    await db.dispose()
    assert len(versions) == 1 and differences == []


def test_0007_keeps_alerts_and_conversations_and_drops_questions_that_could_name_someone(
    tmp_path: Path,
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'm7.db'}"
    upgrade_sync(url, "0006")
    engine = create_engine(f"sqlite:///{tmp_path / 'm7.db'}")
    with engine.begin() as c:
        c.execute(
            text(
                "INSERT INTO leads (id, kind, status, schemes, selfcheck, transcript, created_at, "
                "updated_at) VALUES (1, 'lead', 'new', '[]', '{}', '[]', '2026-01-01', '2026-01-01')"
            )
        )
        c.execute(
            text(
                "INSERT INTO outbox (kind, lead_id, chat_id, attempts, next_attempt_at, created_at) "
                "VALUES ('new_lead', 1, -1001, 2, '2026-01-01', '2026-01-01')"
            )
        )
        c.execute(
            text(
                "INSERT INTO conversations (key, data, updated_at) VALUES ('42', '{\"u\": 7}', '2026-01-01')"
            )
        )
        c.execute(
            text(
                "INSERT INTO stats (day, kind, key, count) VALUES "
                "('2026-01-01', 'unanswered', '王伟的公司能做吗', 3), "
                "('2026-01-01', 'unsure', '李明问价格', 1), ('2026-01-01', 'faq', 'fees', 5)"
            )
        )
    for _ in range(2):  # up, down and up again: every row but the old questions is kept
        upgrade_sync(url)
        with engine.connect() as c:
            assert c.execute(
                text("SELECT attempts, claimed_by, sending_at, failed_at FROM outbox")
            ).all() == [(2, None, None, None)]
            assert c.execute(text("SELECT key, expires_at FROM conversations")).all() == [("tg:42", None)]
            assert c.execute(text("SELECT kind, key, count FROM stats")).all() == [("faq", "fees", 5)]
        downgrade_sync(url, "0006")
        with engine.connect() as c:
            assert c.execute(text("SELECT count(*) FROM outbox")).scalar() == 1
    engine.dispose()


async def test_0008_turns_telegram_ids_into_channel_ids_and_back(db: Database) -> None:
    """Leads and live chats held Telegram's ids; after 0008 they hold a channel, the channel's id
    and a handle, every row kept; down and up again keeps them too (and, on SQLite, the search
    index still follows changes: the table was altered in place, its triggers kept)."""
    url = db.url
    await db.dispose()
    engine = create_async_engine(url)
    await asyncio.to_thread(downgrade_sync, url, "0007")
    async with engine.begin() as c:
        await c.execute(
            text(
                "INSERT INTO leads (id, kind, status, company, schemes, selfcheck, transcript, created_at, "
                "updated_at, telegram_user_id, telegram_username) VALUES "
                "(1, 'lead', 'new', '云服务科技', '[]', '{}', '[]', '2026-01-01', '2026-01-01', "
                "8001, 'wang'), "
                "(2, 'lead', 'lost', NULL, '[]', '{}', '[]', '2026-01-02', '2026-01-02', NULL, NULL)"
            )
        )
        await c.execute(
            text(
                "INSERT INTO live_chats (chat_id, staff_chat_id, opened_at) "
                "VALUES (8001, -1001, '2026-01-01')"
            )
        )
    for _ in range(2):
        await _run(url, "head")
        async with engine.begin() as c:
            leads = (
                await c.execute(text("SELECT id, channel, external_id, handle FROM leads ORDER BY id"))
            ).all()
            assert [tuple(r) for r in leads] == [(1, "telegram", "8001", "wang"), (2, "telegram", None, None)]
            live = (await c.execute(text("SELECT channel, external_id, staff_chat_id FROM live_chats"))).all()
            assert [tuple(r) for r in live] == [("telegram", "8001", -1001)]
            if engine.dialect.name == "sqlite":
                await c.execute(text("UPDATE leads SET company = '质量咨询中心' WHERE id = 1"))
                hits = await c.execute(
                    text("SELECT rowid FROM leads_search WHERE leads_search MATCH '\"质量咨\"'")
                )
                assert hits.all() == [(1,)]
        await asyncio.to_thread(downgrade_sync, url, "0007")
        async with engine.begin() as c:
            leads = (
                await c.execute(text("SELECT id, telegram_user_id, telegram_username FROM leads ORDER BY id"))
            ).all()
            assert [tuple(r) for r in leads] == [(1, 8001, "wang"), (2, None, None)]
            live = (await c.execute(text("SELECT chat_id FROM live_chats"))).all()
            assert [tuple(r) for r in live] == [(8001,)]
    await _run(url, "head")
    await engine.dispose()


async def _run(url: str, target: str) -> None:
    await asyncio.to_thread(upgrade_sync, url, target)


async def test_0009_keys_conversations_and_submissions_by_channel(db: Database) -> None:
    """A conversation ``123`` becomes ``tg:123`` and a submission ``123:456`` ``tg:123:456`` (so a
    redelivered update is still recognised after the upgrade); down and up again keeps them."""
    url = db.url
    await db.dispose()
    engine = create_async_engine(url)
    await asyncio.to_thread(downgrade_sync, url, "0008")
    async with engine.begin() as c:
        await c.execute(
            text(
                "INSERT INTO conversations (key, data, updated_at) VALUES "
                "('8001', '{\"u\": 7}', '2026-01-01'), ('-1001', '{\"u\": 9}', '2026-01-01')"
            )
        )
        await c.execute(
            text(
                "INSERT INTO leads (id, kind, status, schemes, selfcheck, transcript, created_at, "
                "updated_at) VALUES (1, 'lead', 'new', '[]', '{}', '[]', '2026-01-01', '2026-01-01')"
            )
        )
        await c.execute(
            text("INSERT INTO submissions (key, lead_id, created_at) VALUES ('8001:456', 1, '2026-01-01')")
        )
    for _ in range(2):
        await _run(url, "head")
        async with engine.connect() as c:
            keys = (await c.execute(text("SELECT key FROM conversations ORDER BY key"))).scalars().all()
            assert keys == ["tg:-1001", "tg:8001"]
            assert (await c.execute(text("SELECT key FROM submissions"))).scalars().all() == ["tg:8001:456"]
        await asyncio.to_thread(downgrade_sync, url, "0008")
        async with engine.connect() as c:
            keys = (await c.execute(text("SELECT key FROM conversations ORDER BY key"))).scalars().all()
            assert keys == ["-1001", "8001"]
            assert (await c.execute(text("SELECT key FROM submissions"))).scalars().all() == ["8001:456"]
    await _run(url, "head")
    await engine.dispose()


async def test_0012_keeps_the_alerts_queued_for_the_telegram_group(db: Database) -> None:
    """Every alert queued before 0012 went to the Telegram group: it keeps going there; down and
    up again keeps it (an alert for another target has nowhere to go before 0012: dropped)."""
    url = db.url
    await db.dispose()
    engine = create_async_engine(url)
    await asyncio.to_thread(downgrade_sync, url, "0011")
    async with engine.begin() as c:
        await c.execute(
            text(
                "INSERT INTO leads (id, kind, status, schemes, selfcheck, transcript, created_at, "
                "updated_at) VALUES (1, 'lead', 'new', '[]', '{}', '[]', '2026-01-01', '2026-01-01')"
            )
        )
        await c.execute(
            text(
                "INSERT INTO outbox (id, kind, lead_id, chat_id, attempts, next_attempt_at, refusals, "
                "created_at) VALUES (1, 'new_lead', 1, -1001, 0, '2026-01-01', 0, '2026-01-01')"
            )
        )
    await _run(url, "head")
    async with engine.begin() as c:
        rows = (await c.execute(text("SELECT id, target, chat_id FROM outbox"))).all()
        assert [tuple(r) for r in rows] == [(1, "telegram", -1001)]
        await c.execute(
            text(
                "INSERT INTO outbox (id, kind, lead_id, chat_id, target, attempts, next_attempt_at, "
                "refusals, created_at) "
                "VALUES (2, 'new_lead', 1, 0, 'wecom', 0, '2026-01-01', 0, '2026-01-01')"
            )
        )
    await asyncio.to_thread(downgrade_sync, url, "0011")
    async with engine.connect() as c:
        assert (await c.execute(text("SELECT id, chat_id FROM outbox"))).all() == [(1, -1001)]
    await _run(url, "head")
    async with engine.connect() as c:
        assert (await c.execute(text("SELECT target FROM outbox"))).scalars().all() == ["telegram"]
    await engine.dispose()
