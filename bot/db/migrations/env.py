"""Alembic environment: async engines, batch mode on SQLite (ALTER TABLE support)."""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy import text
from sqlalchemy.engine import Connection

from bot.db.engine import create_database
from bot.db.models import Base

target_metadata = Base.metadata
MIGRATION_LOCK = 7_202_611_250_001
"""PostgreSQL advisory lock held while migrating."""


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        if connection.dialect.name == "postgresql":
            # Replicas starting together migrate one at a time; the others then find it done.
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK})
        context.run_migrations()


async def _online() -> None:
    url = context.config.get_main_option("sqlalchemy.url")
    assert url
    db = create_database(url)
    try:
        async with db.writer.connect() as connection:
            await connection.run_sync(_run)
            await connection.commit()
    finally:
        await db.dispose()


def _offline() -> None:
    context.configure(
        url=context.config.get_main_option("sqlalchemy.url"),
        target_metadata=target_metadata,
        literal_binds=True,
        render_as_batch=True,
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    _offline()
else:
    asyncio.run(_online())
