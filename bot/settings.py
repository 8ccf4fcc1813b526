"""Settings: one pydantic-settings model, read from the environment and ``.env``, passed in."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

PUBLIC_BOT_API = "https://api.telegram.org"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    bot_token: SecretStr | None = Field(default=None, description="Token from @BotFather")
    telegram_api_base: str = Field(default=PUBLIC_BOT_API, description="Bot API server base URL")
    database_url: str = Field(default="sqlite+aiosqlite:///data/bot.db")
    flows_dir: Path = Field(default=Path("flows"))
    default_locale: str = Field(default="zh")
    log_level: str = Field(default="INFO")
    state_flush_ms: int = Field(
        default=50, ge=0, description="Write conversation changes behind, every N ms (0: at once)"
    )
