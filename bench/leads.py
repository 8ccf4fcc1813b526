"""Lead benchmark: leads written per second (SQLite, and PostgreSQL when one is reachable), and
the time and peak memory of exporting 1,000,000 leads (target: under 100 MB resident).

The export runs as ``python -m bot leads export`` in a child process, so its peak resident memory
is measured alone (``ru_maxrss`` of the child).
"""

from __future__ import annotations

import asyncio
import os
import random
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import insert  # noqa: E402

from bot.db import Database, create_database, upgrade  # noqa: E402
from bot.db.models import Lead, utcnow  # noqa: E402
from bot.leads.repository import LeadRepository, LeadSubmission  # noqa: E402
from bot.prospect import ProspectId  # noqa: E402

EXPORT_ROWS = int(os.environ.get("BENCH_EXPORT_ROWS", "1000000"))
SUBMISSIONS = int(os.environ.get("BENCH_SUBMISSIONS", "2000"))
POSTGRES = os.environ.get("TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres")


def submission(i: int) -> LeadSubmission:
    return LeadSubmission(
        kind="lead",
        key=f"{i}:1",
        answers={
            "consent": True,
            "company": f"某某信息技术有限公司 {i}",
            "contact_name": "王经理",
            "phone": f"+86138{i:08d}",
            "email": f"user{i}@example.com",
            "city": "北京",
            "headcount": 50 + i % 500,
            "sites": 1 + i % 3,
            "schemes": ["iso20000"],
            "timeline": "3m",
            "note": "希望年底前拿证",
        },
        source_flow="iso20000",
        selfcheck={"licence": True, "running_3m": i % 2 == 0},
        prospect=ProspectId.telegram(i, f"user{i}"),
        transcript=["> 你好", "@iso20000.intro", "@lead.summary"],
    )


async def writes(db: Database, label: str) -> None:
    repo = LeadRepository(db, staff_chat_id=-100)
    t0 = time.perf_counter()
    for i in range(SUBMISSIONS):
        await repo.submit(submission(1_000_000 + i))
    sequential = SUBMISSIONS / (time.perf_counter() - t0)
    t0 = time.perf_counter()
    for start in range(0, SUBMISSIONS, 50):  # 50 prospects submitting at the same moment
        await asyncio.gather(*(repo.submit(submission(2_000_000 + i)) for i in range(start, start + 50)))
    concurrent = SUBMISSIONS / (time.perf_counter() - t0)
    print(f"{label}: {sequential:,.0f} leads/s one after another, {concurrent:,.0f} leads/s 50 at a time")


async def fill(db: Database, rows: int) -> None:
    """Bulk-insert synthetic leads (straight into the table: this is set-up, not measured)."""
    now = utcnow()
    rnd = random.Random(1)
    batch = []
    for i in range(rows):
        batch.append(
            {
                "reference": f"L{i + 1:07d}",
                "kind": "lead",
                "status": rnd.choice(["new", "contacted", "qualified", "won", "lost"]),
                "company": f"某某信息技术有限公司 {i}",
                "contact_name": "王经理",
                "phone": f"+86139{i:08d}",
                "email": f"user{i}@example.com",
                "city": "上海",
                "headcount": rnd.randint(5, 2000),
                "sites": rnd.randint(1, 5),
                "schemes": ["iso9001", "iso27001"],
                "timeline": "6m",
                "note": "备注" * 10,
                "source_flow": "iso9001",
                "selfcheck": {"licence": True, "running_3m": False},
                "locale": "zh",
                "channel": "telegram",
                "external_id": str(10_000_000 + i),
                "handle": f"u{i}",
                "transcript": ["> 你好", "@iso9001.intro"],
                "created_at": now - timedelta(seconds=rows - i),
                "updated_at": now,
            }
        )
        if len(batch) == 20_000:
            async with db.engine.begin() as conn:
                await conn.execute(insert(Lead), batch)
            batch = []
    if batch:
        async with db.engine.begin() as conn:
            await conn.execute(insert(Lead), batch)


def export(url: str, fmt: str, target: Path) -> tuple[float, float, int]:
    """Run the export command; return its seconds, its own peak resident MiB, and the count.

    The peak is the child's VmHWM, read from /proc while it runs (``ru_maxrss`` would include the
    memory of this process, which the child shares between fork and exec)."""
    env = {**os.environ, "DATABASE_URL": url}
    args = [sys.executable, "-m", "bot", "leads", "export", "--format", fmt, "--bom", "-o", str(target)]
    t0 = time.perf_counter()
    proc = subprocess.Popen(args, cwd=ROOT, env=env, stderr=subprocess.PIPE, text=True)
    peak_kib = 0
    status = Path(f"/proc/{proc.pid}/status")
    while proc.poll() is None:
        try:
            for line in status.read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peak_kib = max(peak_kib, int(line.split()[1]))
        except (FileNotFoundError, ProcessLookupError, ValueError):
            pass
        time.sleep(0.02)
    seconds = time.perf_counter() - t0
    stderr = proc.stderr.read() if proc.stderr else ""
    if proc.returncode != 0:
        raise RuntimeError(stderr)
    return seconds, peak_kib / 1024, int(stderr.split()[0])


async def postgres_database() -> tuple[str, str] | None:
    try:
        import asyncpg  # type: ignore[import-untyped]

        admin = await asyncpg.connect(POSTGRES.replace("+asyncpg", ""), timeout=3)
    except Exception as e:
        print(f"PostgreSQL: not measured ({type(e).__name__})")
        return None
    name = f"certbot_bench_{os.getpid()}"
    await admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
    await admin.execute(f'CREATE DATABASE "{name}"')
    await admin.close()
    return POSTGRES.rsplit("/", 1)[0] + "/" + name, name


async def drop_postgres(name: str) -> None:
    import asyncpg

    admin = await asyncpg.connect(POSTGRES.replace("+asyncpg", ""), timeout=3)
    await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    await admin.close()


async def main() -> None:
    tmp = Path(tempfile.mkdtemp(prefix="bench-leads-"))
    url = f"sqlite+aiosqlite:///{tmp / 'leads.db'}"
    await upgrade(url)
    db = create_database(url)
    await writes(db, "SQLite")
    await db.dispose()

    pg = await postgres_database()
    if pg is not None:
        pg_url, name = pg
        try:
            await upgrade(pg_url)
            pdb = create_database(pg_url)
            await writes(pdb, "PostgreSQL")
            await pdb.dispose()
        finally:
            await drop_postgres(name)

    big = f"sqlite+aiosqlite:///{tmp / 'million.db'}"
    await upgrade(big)
    bdb = create_database(big)
    t0 = time.perf_counter()
    await fill(bdb, EXPORT_ROWS)
    await bdb.dispose()
    print(f"filled {EXPORT_ROWS:,} leads in {time.perf_counter() - t0:.0f} s (set-up)")
    for fmt in ("csv", "jsonl"):
        target = tmp / f"leads.{fmt}"
        seconds, peak_mib, count = export(big, fmt, target)
        size = target.stat().st_size / 2**20
        print(
            f"export {count:,} leads as {fmt}: {seconds:.1f} s ({count / seconds:,.0f} leads/s), "
            f"{size:,.0f} MiB written, peak resident memory {peak_mib:.0f} MiB (target < 100)"
        )
        target.unlink()


if __name__ == "__main__":
    asyncio.run(main())
