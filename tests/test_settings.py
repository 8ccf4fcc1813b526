"""Settings: every one documented in .env.example; working hours read and applied."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError

from bot.hours import WorkingHours
from bot.settings import Settings

from .conftest import ROOT


def test_env_example_documents_every_setting() -> None:
    lines = (ROOT / ".env.example").read_text(encoding="utf-8").splitlines()
    documented = {line.split("=", 1)[0] for line in lines if line and not line.startswith("#")}
    assert documented == {name.upper() for name in Settings.model_fields}


def test_working_hours() -> None:
    shanghai = ZoneInfo("Asia/Shanghai")
    hours = WorkingHours.parse("mon-fri 09:00-18:00; sat 10:00-12:00", shanghai)
    wednesday_noon = datetime(2026, 11, 25, 12, 0, tzinfo=shanghai)
    assert hours.is_open(wednesday_noon)
    assert not hours.is_open(datetime(2026, 11, 25, 18, 0, tzinfo=shanghai))
    friday_evening = datetime(2026, 11, 27, 19, 0, tzinfo=shanghai)
    assert hours.next_opening(friday_evening) == datetime(2026, 11, 28, 10, 0, tzinfo=shanghai)
    saturday_late = datetime(2026, 11, 28, 13, 0, tzinfo=shanghai)
    assert hours.next_opening(saturday_late) == datetime(2026, 11, 30, 9, 0, tzinfo=shanghai)
    assert hours.is_open(datetime(2026, 11, 25, 4, 0, tzinfo=UTC))  # 12:00 in Shanghai
    assert WorkingHours.parse("always").is_open(datetime(2026, 11, 29, 3, 0, tzinfo=UTC))
    assert WorkingHours.parse("fri-mon 20:00-22:00").is_open(datetime(2026, 11, 29, 21, 0, tzinfo=UTC))


@pytest.mark.parametrize("spec", ["", "weekdays 9-5", "mon 18:00-09:00", "mon-fri"])
def test_bad_working_hours_are_refused(spec: str) -> None:
    with pytest.raises(ValidationError):
        Settings(_env_file=None, working_hours=spec)  # type: ignore[call-arg]
    with pytest.raises(ValidationError):
        Settings(_env_file=None, timezone="Mars/Olympus")  # type: ignore[call-arg]


def test_the_shipped_env_example_loads(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """`cp .env.example .env` and fill in the token: every empty line means "not set"."""
    env = (ROOT / ".env.example").read_text(encoding="utf-8").replace("BOT_TOKEN=", "BOT_TOKEN=1:x")
    (tmp_path / ".env").write_text(env, encoding="utf-8")
    settings = Settings(_env_file=tmp_path / ".env")  # type: ignore[call-arg]
    assert settings.webhook_secret is None and settings.staff_chat_id is None and settings.redis_url is None
    assert settings.bot_token is not None and settings.web_trusted_proxies == []
