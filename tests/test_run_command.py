"""``python -m bot run`` as a user starts it: against the fake Bot API server, stopped with Ctrl-C."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
import sys
from pathlib import Path

import aiohttp

from .conftest import FLOWS, ROOT
from .fakebot import TOKEN, FakeBotAPI, Prospect


def _env(api: FakeBotAPI, tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in {"BOT_TOKEN", "DATABASE_URL", "FLOWS_DIR"}}
    env.update(
        BOT_TOKEN=TOKEN,
        TELEGRAM_API_BASE=api.base_url,
        DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path / 'data' / 'bot.db'}",
        LOG_LEVEL="INFO",
        WEB_PORT="0",
        WATCH_FLOWS="false",
        **extra,
    )
    return env


async def test_run_polls_answers_and_stops_cleanly_on_ctrl_c(api: FakeBotAPI, tmp_path: Path) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", "run",
        cwd=ROOT, env=_env(api, tmp_path),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    assert proc.stdout is not None
    log = b""
    try:
        while b"is running" not in log:
            line = await asyncio.wait_for(proc.stdout.readline(), 30)
            assert line, log.decode()
            log += line
        assert b"bot @cert_test_bot is running" in log
        # The staff dashboard is served by the same process: signed out, a page leads to sign-in.
        match = re.search(rb"staff dashboard on (http://127\.0\.0\.1:\d+)/", log)
        assert match, log.decode()
        url = match.group(1).decode() + "/leads"
        async with aiohttp.ClientSession() as http, http.get(url, allow_redirects=False) as response:
            assert response.status == 303
            assert response.headers["Location"].startswith("/login?next=")
        assert TOKEN.encode() not in log  # the token is never logged
        p = Prospect(api, 5001, language_code="en")
        await api.push(
            {
                "message": p._message(
                    text="/start", entities=[{"type": "bot_command", "offset": 0, "length": 6}]
                )
            }
        )
        for _ in range(300):
            if p.messages:
                break
            await asyncio.sleep(0.02)
        assert "certification assistant" in p.messages[0].visible
        assert {c["command"] for c in api.commands["en"]} >= {"start", "menu", "lang"}
    finally:
        proc.send_signal(signal.SIGINT)
        rest = await asyncio.wait_for(proc.stdout.read(), 30)
        code = await asyncio.wait_for(proc.wait(), 30)
    assert code == 0, (log + rest).decode()
    assert b"Traceback" not in log + rest
    assert (tmp_path / "data" / "bot.db").exists()  # migrated on start


async def test_run_without_a_token_serves_the_web_chat(tmp_path: Path) -> None:
    """A new user's first ``make run``: no BOT_TOKEN, and the web chat works all the same."""
    env = {k: v for k, v in os.environ.items() if k not in {"BOT_TOKEN", "DATABASE_URL", "FLOWS_DIR"}}
    env.update(
        DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path / 'data' / 'bot.db'}",
        LOG_LEVEL="INFO",
        WEB_PORT="0",
        WATCH_FLOWS="false",
    )
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", "run",
        cwd=tmp_path, env={**env, "FLOWS_DIR": str(FLOWS)},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    assert proc.stdout is not None
    log = b""
    try:
        while b"web chat on" not in log:
            line = await asyncio.wait_for(proc.stdout.readline(), 30)
            assert line, log.decode()
            log += line
        match = re.search(rb"web chat on (http://127\.0\.0\.1:\d+)/chat", log)
        assert match, log.decode()
        base = match.group(1).decode()
        async with aiohttp.ClientSession() as http:
            async with http.get(base + "/chat") as page:
                assert page.status == 200 and 'id="certbot-chat"' in await page.text()
            async with http.post(base + "/chat/api/session", json={"lang": "en"}) as response:
                token = (await response.json())["token"]
            headers = {"Authorization": f"Bearer {token}"}
            body = {"client_id": "c1", "command": "start"}
            async with http.post(base + "/chat/api/send", json=body, headers=headers) as response:
                messages = (await response.json())["messages"]
        assert "certification assistant" in messages[0]["text"]
    finally:
        proc.send_signal(signal.SIGINT)
        rest = await asyncio.wait_for(proc.stdout.read(), 30)
        code = await asyncio.wait_for(proc.wait(), 30)
    assert code == 0, (log + rest).decode()
    assert b"Traceback" not in log + rest
    assert b"BOT_TOKEN is not set: Telegram is off" in log + rest


async def test_run_refuses_invalid_content(api: FakeBotAPI, tmp_path: Path) -> None:
    flows = tmp_path / "flows"
    shutil.copytree(FLOWS, flows)
    text = (flows / "contact.yaml").read_text(encoding="utf-8").replace("next: done", "next: nowhere")
    (flows / "contact.yaml").write_text(text, encoding="utf-8")
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", "run",
        cwd=ROOT, env=_env(api, tmp_path, FLOWS_DIR=str(flows)),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 1
    assert "contact.yaml:" in err.decode() and "unknown target 'nowhere'" in err.decode()
    assert not [c for c in api.calls if c.method == "getUpdates"]


async def test_db_upgrade_command(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'x.db'}"
    env = {**os.environ, "DATABASE_URL": url}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", "db", "upgrade", cwd=ROOT, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()
    import sqlite3

    con = sqlite3.connect(tmp_path / "x.db")
    tables = {r[0] for r in con.execute("select name from sqlite_master where type='table'")}
    mode = con.execute("pragma journal_mode").fetchone()[0]
    con.close()
    assert {"conversations", "alembic_version"} <= tables and mode == "wal"
