"""Database access: the async engine (SQLite by default, PostgreSQL for scale-out) and migrations."""

from __future__ import annotations

from bot.db.engine import Database, create_database


async def upgrade(url: str, revision: str = "head") -> None:
    """Create or upgrade the schema (Alembic, imported only when needed)."""
    from bot.db.migrate import upgrade as run

    await run(url, revision)


__all__ = ["Database", "create_database", "upgrade"]
