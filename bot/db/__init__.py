"""Database access: the async engine (SQLite by default, PostgreSQL for scale-out) and migrations."""

from bot.db.engine import Database, create_database
from bot.db.migrate import upgrade

__all__ = ["Database", "create_database", "upgrade"]
