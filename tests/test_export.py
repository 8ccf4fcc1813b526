"""``leads export``: CSV (with or without the BOM Excel wants) and JSON lines, filtered, streamed."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path

from bot.db.engine import Database
from bot.leads.export import COLUMNS, export_leads
from bot.leads.repository import LeadRepository

from .conftest import ROOT
from .test_lead_repository import sub


async def test_csv_and_jsonl(db: Database) -> None:
    repo = LeadRepository(db)
    await repo.submit(sub("1:1", user=1))
    second = await repo.submit(
        sub("2:1", user=2, company='乙公司, "引号"\n换行', schemes=["iso9001", "three"])
    )
    await repo.set_status(second.lead_id, "qualified")

    out = io.StringIO()
    assert await export_leads(repo, out) == 2
    rows = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert list(rows[0]) == list(COLUMNS)
    assert rows[0]["reference"] == "L000001" and rows[0]["company"] == "<b>ACME</b> & Co"
    assert rows[0]["selfcheck_gaps"] == "running_3m" and rows[0]["phone"] == "+8613800138000"
    assert rows[1]["company"] == '乙公司, "引号"\n换行' and rows[1]["schemes"] == "iso9001;three"

    only = io.StringIO()
    assert await export_leads(repo, only, status="qualified", fmt="jsonl") == 1
    [line] = only.getvalue().splitlines()
    record = json.loads(line)
    assert record["reference"] == "L000002" and record["schemes"] == ["iso9001", "three"]
    assert record["selfcheck"] == {"licence": True, "running_3m": False}

    bom = io.StringIO()
    await export_leads(repo, bom, bom=True)
    assert bom.getvalue().startswith("\ufeffreference,")

    from datetime import UTC, datetime, timedelta

    none = io.StringIO()
    assert await export_leads(repo, none, since=datetime.now(UTC) + timedelta(days=1)) == 0
    assert none.getvalue().strip() == ",".join(COLUMNS)


def _cli(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bot", *args], capture_output=True, text=True, cwd=ROOT, env=env, timeout=60
    )


async def test_cli_writes_a_file(db: Database, tmp_path: Path) -> None:
    await LeadRepository(db).submit(sub("1:1", user=1))
    target = tmp_path / "leads.csv"
    env = {**os.environ, "DATABASE_URL": db.url}
    args = ["leads", "export", "--format", "csv", "--bom", "-o", str(target)]
    proc = await asyncio.to_thread(_cli, args, env)
    assert proc.returncode == 0, proc.stderr
    assert "1 leads exported" in proc.stderr
    data = target.read_bytes()
    assert data.startswith(b"\xef\xbb\xbfreference,") and "王经理".encode() in data
    bad = await asyncio.to_thread(_cli, ["leads", "export", "--status", "maybe"], env)
    assert bad.returncode != 0 and "new, contacted" in bad.stderr
