"""Load benchmark: N prospects at once, each through the whole flow up to a saved lead, over real HTTP.

Every prospect (Simplified Chinese) sends ``/start``, picks ISO/IEC 20000, takes the six-question
self-check, fills in the lead form (with two wrong answers corrected, as people do) and presses
"确认提交". Prospects start staggered over ``--ramp`` seconds and pause ``--think`` seconds
(uniform) between their actions, as people reading and typing do; ``--think 0`` makes a stress
run where each prospect sends again the moment it is answered.

The default pace, 3-8 s between actions, is a quick reader: the bot's replies run from one line
to a paragraph of 300 characters, and half the answers are typed (a company name, a phone number,
an e-mail address). 1,000 prospects at that pace offer about 180 updates/s (240 in the busiest
second). ``--think 1-3`` offers 500 updates/s, more than one process has (one core: its capacity
is what that run's "handled" line shows); past one core, the bot runs as webhook replicas.

The prospects and the fake Telegram Bot API server (``tests/fakebot.py``) run in this process;
the bot runs in processes of its own, so that it has a core to itself on a two-core machine rather
than sharing one event loop with the load it is measured against (this process's garbage collector
is off while the prospects run, so its own pauses do not count as the bot's):

- ``polling``: one bot process on a SQLite file, as ``python -m bot run`` assembles it (the same
  ``Service``, production timings), long-polling the fake server. Its only addition: it writes the
  id of each update it has finished handling to stdout, which is how this process knows.
- ``webhook``: ``--replicas`` processes of ``python -m bot webhook`` (unchanged) on a fresh
  PostgreSQL database (``certbot_bench_<hex>``, dropped afterwards) and Redis (a key prefix of its
  own, deleted afterwards); the fake server posts each update to them in turn, over kept-alive
  connections (at most 100, the most Telegram's ``max_connections`` allows), and an update counts as
  handled when a replica answers 2xx (a replica acknowledges only once it has handled the update).

Telegram's sending limits (``RATE_*``, ``FLOOD_RATE``) are lifted as in the tests: the fake server
has none, so this measures the bot's own capacity.

Run: ``python bench/load.py`` (1,000 prospects, think 3-8 s, ramp 10 s, both modes); see ``--help``,
e.g. ``python bench/load.py --prospects 200 --think 0 --mode polling``.

Output: first the load offered (what the prospects' pacing implies at its peak), then per mode:

- ``handled``: updates per second over the busy period (first update pushed to the last one
  handled) and in the busiest second. With think time this follows the offered load as long as
  the bot keeps up; ``--think 0`` gives the bot's capacity.
- ``reply latency``: from pushing an update to the moment the bot has handled it (its replies are
  at the fake server); p50, p90, p99 and max over every update, then by kind (the first
  ``/start``, button presses, typed answers, and the submission that saves the lead).
- ``leads``: rows in the ``leads`` table against prospects who submitted; ``lost`` and ``duplicated``
  (an ``external_id`` twice) must be 0. ``staff alerts``: messages the fake server got in the
  staff chat, each lead's exactly once.
- ``failed``: prospects who could not finish (a reply not handled within ``--timeout``, a reply
  without the text expected at that step); ``bot errors``: ERROR lines in the bot's log;
  ``undelivered``: updates the fake server could not deliver (webhook).
- ``CPU``: share of one core used by the bot process(es), by this process (prospects and fake
  server), by PostgreSQL and Redis, and of the whole machine, over the busy period. ``loop lag``:
  how late this process's event loop ran (p99): when high, latencies include this process's own
  delays rather than the bot's.

Timings are printed, never asserted. The exit status is 1 only when something is functionally
broken (a lead lost or duplicated, an alert missing or sent twice, a prospect who could not finish,
an update not delivered), printed loudly at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import itertools
import math
import os
import random
import re
import signal
import socket
import sqlite3
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SELF = Path(__file__).resolve()
ROOT = SELF.parent.parent
sys.path.insert(0, str(ROOT))

from tests.fakebot import TOKEN, BotMessage, FakeBotAPI, Prospect  # noqa: E402
from tests.harness import STAFF_CHAT, WEBHOOK_SECRET, make_settings  # noqa: E402

POSTGRES_URL = os.environ.get(
    "BENCH_POSTGRES_URL",
    os.environ.get("TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"),
)
REDIS_URL = os.environ.get("BENCH_REDIS_URL", os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0"))
USER_BASE = 20_000_000
SLOW = 10.0
"""Replies slower than this are counted apart (the tests' wait for a reply gives up here)."""
WEBHOOK_PATH = "/telegram/webhook"
MAX_CONNECTIONS = 100
"""Concurrent webhook deliveries (Telegram's ``max_connections`` is 1-100, 40 by default)."""


# --- the prospect's script --------------------------------------------------------------------------


@dataclass(frozen=True)
class Step:
    kind: str
    """``start``, ``press``, ``text`` or ``submit`` (a press that saves the lead)."""
    value: str
    expect: str | None = None
    """Text the bot's replies must contain."""


def script(user_id: int) -> list[Step]:
    """The whole flow for one prospect: own company, phone and e-mail, so each lead is told apart."""
    return [
        Step("start", "/start", "认证咨询助手"),
        Step("press", "ISO/IEC 20000", "ISO/IEC 20000"),
        Step("press", "申请条件自测", "问题 1/6"),
        Step("press", "是", "问题 2/6"),
        Step("press", "是", "问题 3/6"),
        Step("press", "否", "问题 4/6"),
        Step("press", "是", "问题 5/6"),
        Step("press", "是", "问题 6/6"),
        Step("press", "是", "结论"),
        Step("press", "留下联系方式", "留下联系方式"),
        Step("press", "同意并继续", "单位名称"),
        Step("text", f"压测科技{user_id}有限公司", "联系人"),
        Step("text", "王经理", "联系电话"),
        Step("text", "12345", "电话号码看起来不对"),
        Step("text", f"139{user_id % 10**8:08d}", "电子邮箱"),
        Step("text", f"p{user_id}@example.com", "城市"),
        Step("text", "北京", "员工"),
        Step("text", "很多人", "请输入员工人数"),
        Step("text", "80", "场所"),
        Step("text", "2", "想了解哪些认证"),
        Step("press", "选好了", "什么时候"),
        Step("press", "3–6 个月", "还有什么想告诉顾问"),
        Step("text", "希望年底前拿证", "请确认您的信息"),
        Step("submit", "确认提交", "已提交"),
    ]


STEPS = len(script(0))


# --- the fake server, timing what it sees handled -------------------------------------------------------


class BenchAPI(FakeBotAPI):
    """The tests' fake server, noting when each update was handled (the busiest second)."""

    def __init__(self, timeout: float) -> None:
        super().__init__()
        self.handled_timeout = timeout
        self.max_connections = MAX_CONNECTIONS
        self.handled_at: list[float] = []

    def mark_handled(self, update_id: int) -> None:
        if update_id not in self._handled:
            self.handled_at.append(time.perf_counter())
        super().mark_handled(update_id)


class BenchProspect(Prospect):
    """A prospect that times each update: from pushing it to the moment the bot has handled it."""

    started = 0.0
    latency = 0.0

    async def _push(
        self, body: dict[str, Any], *, wait: bool = True, update_id: int | None = None
    ) -> list[BotMessage]:
        before = {(m.message_id, m.edits) for m in self.messages}
        self.started = time.perf_counter()
        uid = await self.api.push(body, update_id)
        self.last_update_id = uid
        self.last_body = body
        await self.api.wait_handled(uid)
        self.latency = time.perf_counter() - self.started
        return [m for m in self.messages if (m.message_id, m.edits) not in before]


# --- measuring -------------------------------------------------------------------------------------------


@dataclass
class Sample:
    kind: str
    at: float
    seconds: float


@dataclass
class Drive:
    samples: list[Sample] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    finished: int = 0
    lag: list[float] = field(default_factory=list)
    cpu: dict[str, float] = field(default_factory=dict)
    busy: float = 0.0
    peak: int = 0


def percentile(values: list[float], q: float) -> float:
    """Nearest rank."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q / 100 * len(ordered)) - 1))]


TICK = os.sysconf("SC_CLK_TCK")


def process_cpu(pid: int) -> float:
    """CPU seconds a process has used (user + system), 0 if it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICK


def service_pids(names: tuple[str, ...]) -> list[int]:
    """Processes whose command name starts with one of ``names`` (PostgreSQL's, Redis's)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if entry.joinpath("comm").read_text().strip().startswith(names):
                    pids.append(int(entry.name))
    return pids


def machine_cpu() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + (values[4] if len(values) > 4 else 0)
    return (sum(values) - idle) / TICK, sum(values) / TICK


class CpuMeter:
    """CPU used over a period by groups of processes, found again at the end (a database server
    starts a process per new connection), by this process, and by the whole machine."""

    def __init__(self, groups: dict[str, Callable[[], list[int]]]) -> None:
        self.groups = groups
        self.start = {name: {pid: process_cpu(pid) for pid in find()} for name, find in groups.items()}
        self.own = time.process_time()
        self.machine = machine_cpu()
        self.t0 = time.perf_counter()

    def stop(self) -> dict[str, float]:
        """Shares of one core over the period (the machine: of all its cores)."""
        wall = time.perf_counter() - self.t0
        shares = {}
        for name, find in self.groups.items():
            before = self.start[name]
            shares[name] = sum(process_cpu(pid) - before.get(pid, 0.0) for pid in find()) / wall
        shares["load generator"] = (time.process_time() - self.own) / wall
        busy, total = machine_cpu()
        elapsed = total - self.machine[1]
        shares["machine"] = (busy - self.machine[0]) / elapsed if elapsed else 0.0
        return shares


async def watch_lag(out: list[float], every: float = 0.02) -> None:
    while True:
        t = time.perf_counter()
        await asyncio.sleep(every)
        out.append(time.perf_counter() - t - every)


async def prospect(api: BenchAPI, index: int, args: argparse.Namespace, drive: Drive) -> None:
    rng = random.Random(args.seed * 1_000_003 + index)
    user_id = USER_BASE + index
    p = BenchProspect(api, user_id, first_name="王", language_code="zh", username=f"bench{user_id}")
    await asyncio.sleep(rng.uniform(0, args.ramp))
    step = None
    try:
        for n, step in enumerate(script(user_id)):
            if n and args.think_max > 0:
                await asyncio.sleep(rng.uniform(args.think_min, args.think_max))
            if step.kind in ("start", "text"):
                replies = await p.send(step.value)
            else:
                replies = await p.press(step.value)
            drive.samples.append(Sample(step.kind, p.started, p.latency))
            shown = "\n".join(m.visible for m in replies)
            if step.expect is not None and step.expect not in shown:
                raise AssertionError(f"expected {step.expect!r} in the reply, got {shown[:120]!r}")
        drive.finished += 1
    except Exception as e:
        where = f"{step.kind} {step.value!r}" if step is not None else "start"
        drive.failures.append(f"prospect {user_id} at {where}: {type(e).__name__}: {e}")


async def run_prospects(
    api: BenchAPI, args: argparse.Namespace, cpu_groups: dict[str, Callable[[], list[int]]]
) -> Drive:
    drive = Drive()
    # This process's own pauses would count as the bot's latency. Its garbage collector is off
    # while the prospects run (a full collection walks every object of aiogram's pydantic models
    # and of the fake server's records: hundreds of milliseconds); what it holds is freed after.
    gc.collect()
    gc.freeze()
    gc.disable()
    lag = asyncio.create_task(watch_lag(drive.lag))
    meter = CpuMeter(cpu_groups)
    try:
        await asyncio.gather(*(prospect(api, i, args, drive) for i in range(args.prospects)))
    finally:
        drive.cpu = meter.stop()
        lag.cancel()
        gc.enable()
        gc.unfreeze()
    if drive.samples:
        first = min(s.at for s in drive.samples)
        last = max(s.at + s.seconds for s in drive.samples)
        drive.busy = last - first
        per_second = Counter(int(t - first) for t in api.handled_at if t >= first)
        drive.peak = max(per_second.values(), default=0)
    return drive


async def wait_for_alerts(api: BenchAPI, expected: int, quiet: float = 10.0) -> None:
    """Until the staff chat has ``expected`` alerts, or none came for ``quiet`` seconds; then a
    moment more, so an alert sent twice is seen."""
    seen, since = -1, time.monotonic()
    while len(api.chat_messages(STAFF_CHAT)) < expected and time.monotonic() - since < quiet:
        if len(api.chat_messages(STAFF_CHAT)) != seen:
            seen, since = len(api.chat_messages(STAFF_CHAT)), time.monotonic()
        await asyncio.sleep(0.1)
    await asyncio.sleep(1.0)


# --- the bot's processes ------------------------------------------------------------------------------


def bot_env(api: BenchAPI, tmp: Path, **overrides: str) -> dict[str, str]:
    """The environment of a bot process: the tests' settings (``make_settings``: Telegram's
    limits lifted, working hours always, the staff chat), nothing inherited that the bot reads."""
    from bot.settings import Settings

    s = make_settings(api, tmp)
    ours = {name.upper() for name in Settings.model_fields}
    env = {k: v for k, v in os.environ.items() if k.upper() not in ours}
    env.update(
        BOT_TOKEN=TOKEN,
        TELEGRAM_API_BASE=api.base_url,
        FLOWS_DIR=str(s.flows_dir),
        STAFF_CHAT_ID=str(STAFF_CHAT),
        WORKING_HOURS=s.working_hours,
        RATE_PER_CHAT=str(s.rate_per_chat),
        RATE_PER_GROUP=str(s.rate_per_group),
        RATE_GLOBAL=str(s.rate_global),
        FLOOD_RATE=str(s.flood_rate),
        WEB_ENABLED="false",
        WATCH_FLOWS="false",
        LOG_LEVEL="WARNING",
        PYTHONUNBUFFERED="1",
    )
    env.update(overrides)
    return env


async def spawn(args: list[str], env: dict[str, str], log: Path, cwd: Path) -> asyncio.subprocess.Process:
    with log.open("wb") as out:
        return await asyncio.create_subprocess_exec(
            sys.executable, *args, cwd=cwd, env=env, stdout=asyncio.subprocess.PIPE, stderr=out
        )


async def stop_process(proc: asyncio.subprocess.Process, sig: int, grace: float = 30.0) -> int | None:
    if proc.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(sig)
        try:
            await asyncio.wait_for(proc.wait(), grace)
        except TimeoutError:
            proc.kill()
            await proc.wait()
            return None
    return proc.returncode


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def healthy(proc: asyncio.subprocess.Process, url: str, seconds: float = 60.0) -> bool:
    """Until the process answers ``url`` with 200 (False if it exits or takes too long)."""
    import aiohttp

    deadline = time.monotonic() + seconds
    async with aiohttp.ClientSession() as http:
        while time.monotonic() < deadline and proc.returncode is None:
            with contextlib.suppress(aiohttp.ClientError, OSError):
                async with http.get(url) as response:
                    if response.status == 200:
                        return True
            await asyncio.sleep(0.1)
    return False


LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d")
EXCEPTION_LINE = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception|Timeout|Interrupt)\w*(:|$)")


def error_lines(logs: list[Path]) -> list[str]:
    """The ERROR lines of the bot's logs, each with the exception that ended its traceback."""
    errors = []
    for log in logs:
        with contextlib.suppress(OSError):
            lines = log.read_text(errors="replace").splitlines()
            for i, line in enumerate(lines):
                if " ERROR " not in line:
                    continue
                tail = list(itertools.takewhile(lambda t: not LOG_LINE.match(t), lines[i + 1 :]))
                raised = [t for t in tail if EXCEPTION_LINE.match(t)]
                errors.append(f"{line} -> {raised[-1].strip()}" if raised else line)
    return errors


async def read_handled(proc: asyncio.subprocess.Process, api: BenchAPI) -> None:
    """The polling bot's stdout: one handled update id a line."""
    assert proc.stdout is not None
    while line := await proc.stdout.readline():
        with contextlib.suppress(ValueError):
            api.mark_handled(int(line))


async def drain(proc: asyncio.subprocess.Process) -> None:
    assert proc.stdout is not None
    while await proc.stdout.read(65536):
        pass


def serve_polling() -> None:
    """The child of ``polling``: ``bot.service.run`` (what ``python -m bot run`` runs), writing the
    id of each update it has finished handling to stdout."""
    import logging

    from bot.service import Service, run_loop
    from bot.settings import Settings

    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )

    async def main() -> None:
        service = Service(settings)
        try:
            await service.start()
            await service.announce()
            assert service.dp is not None
            dp = service.dp
            original = dp.feed_update

            async def feed_update(bot: Any, update: Any, **kwargs: Any) -> Any:
                try:
                    return await original(bot, update, **kwargs)
                finally:
                    os.write(1, b"%d\n" % update.update_id)

            dp.feed_update = feed_update  # type: ignore[method-assign]
            await service.poll(handle_signals=True)
        finally:
            await service.stop()

    run_loop(main())


# --- the modes ---------------------------------------------------------------------------------------------


@dataclass
class Outcome:
    name: str
    drive: Drive
    saved: list[tuple[int | None, str | None]]
    alerts: list[str]
    errors: list[str]
    undelivered: int = 0
    redelivered: int = 0
    notes: list[str] = field(default_factory=list)


async def polling_mode(args: argparse.Namespace, tmp: Path) -> Outcome:
    api = BenchAPI(args.timeout)
    await api.start()
    db_file = tmp / "polling.db"
    log = tmp / "polling-bot.log"
    env = bot_env(api, tmp, DATABASE_URL=f"sqlite+aiosqlite:///{db_file}")
    proc = await spawn([str(SELF), "--serve-polling"], env, log, tmp)
    reader = asyncio.create_task(read_handled(proc, api))
    try:
        for _ in range(600):  # until its first getUpdates
            if any(c.method == "getUpdates" for c in api.calls) or proc.returncode is not None:
                break
            await asyncio.sleep(0.1)
        if proc.returncode is not None or not any(c.method == "getUpdates" for c in api.calls):
            raise RuntimeError(f"the polling bot did not start; its log:\n{log.read_text()[-3000:]}")
        drive = await run_prospects(api, args, {"bot": lambda: [proc.pid]})
        await wait_for_alerts(api, drive.finished)
        code = await stop_process(proc, signal.SIGINT)
        notes = [] if code == 0 else [f"the bot exited with status {code} on SIGINT"]
    finally:
        await stop_process(proc, signal.SIGKILL, 5)
        reader.cancel()
        await api.stop()
    with contextlib.closing(sqlite3.connect(db_file)) as conn:
        saved = conn.execute("SELECT CAST(external_id AS INTEGER), reference FROM leads").fetchall()
    return Outcome(
        "polling, SQLite, one bot process",
        drive,
        saved,
        [m.visible for m in api.chat_messages(STAFF_CHAT)],
        error_lines([log]),
        notes=notes,
    )


async def services_problem() -> str | None:
    """Why the webhook mode cannot run here (None: PostgreSQL and Redis answer)."""
    import asyncpg  # type: ignore[import-untyped]
    from redis.asyncio import Redis

    try:
        conn = await asyncpg.connect(
            POSTGRES_URL.replace("postgresql+asyncpg://", "postgresql://"), timeout=3
        )
        await conn.close()
    except Exception as e:
        return f"no PostgreSQL at {POSTGRES_URL}: {type(e).__name__}: {e}"
    client = Redis.from_url(REDIS_URL, socket_connect_timeout=3)
    try:
        await client.ping()
    except Exception as e:
        return f"no Redis at {REDIS_URL}: {type(e).__name__}: {e}"
    finally:
        await client.aclose()
    return None


async def webhook_mode(args: argparse.Namespace, tmp: Path) -> Outcome:
    import asyncpg
    from redis.asyncio import Redis

    admin_url = POSTGRES_URL.replace("postgresql+asyncpg://", "postgresql://")
    name = f"certbot_bench_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(admin_url, timeout=3)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    database_url = POSTGRES_URL.rsplit("/", 1)[0] + "/" + name
    prefix = name
    api = BenchAPI(args.timeout)
    await api.start()
    logs = [tmp / f"replica-{i + 1}.log" for i in range(args.replicas)]
    procs: list[asyncio.subprocess.Process] = []
    drains: list[asyncio.Task[None]] = []
    try:
        urls = []
        for log in logs:
            # A port chosen here: the replica logs the one it got only at INFO (LOG_LEVEL is WARNING).
            port = free_port()
            env = bot_env(
                api,
                tmp,
                DATABASE_URL=database_url,
                REDIS_URL=REDIS_URL,
                REDIS_PREFIX=prefix,
                WEBHOOK_SECRET=WEBHOOK_SECRET,
                WEBHOOK_HOST="127.0.0.1",
                WEBHOOK_PORT=str(port),
                WEBHOOK_PATH=WEBHOOK_PATH,
            )
            procs.append(await spawn(["-m", "bot", "webhook"], env, log, tmp))
            drains.append(asyncio.create_task(drain(procs[-1])))
            urls.append(f"http://127.0.0.1:{port}{WEBHOOK_PATH}")
        for proc, log, url in zip(procs, logs, urls, strict=True):
            if not await healthy(proc, url.rsplit("/", 2)[0] + "/healthz"):
                raise RuntimeError(f"a replica did not start; its log:\n{log.read_text()[-3000:]}")
        api.use_webhook(urls, WEBHOOK_SECRET)
        groups: dict[str, Callable[[], list[int]]] = {
            "bot": lambda: [p.pid for p in procs],
            "PostgreSQL": lambda: service_pids(("postgres",)),
            "Redis": lambda: service_pids(("redis-server",)),
        }
        drive = await run_prospects(api, args, groups)
        await wait_for_alerts(api, drive.finished)
        notes = []
        for i, proc in enumerate(procs, 1):
            code = await stop_process(proc, signal.SIGTERM)
            if code != 0:
                notes.append(f"replica {i} exited with status {code} on SIGTERM")
        used = Counter(url for _, url, status in api.deliveries if status == 200)
        notes.append("updates per replica: " + ", ".join(str(used[url]) for url in urls))
        conn = await asyncpg.connect(admin_url.rsplit("/", 1)[0] + "/" + name, timeout=3)
        try:
            rows = await conn.fetch("SELECT CAST(external_id AS BIGINT) AS external_id, reference FROM leads")
        finally:
            await conn.close()
        saved = [(r["external_id"], r["reference"]) for r in rows]
    finally:
        for proc in procs:
            await stop_process(proc, signal.SIGKILL, 5)
        for task in drains:
            task.cancel()
        await api.stop()
        admin = await asyncpg.connect(admin_url, timeout=3)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()
        client = Redis.from_url(REDIS_URL)
        keys = [key async for key in client.scan_iter(match=f"{prefix}:*")]
        if keys:
            await client.delete(*keys)
        await client.aclose()
    return Outcome(
        f"webhook, {args.replicas} replicas, PostgreSQL + Redis",
        drive,
        saved,
        [m.visible for m in api.chat_messages(STAFF_CHAT)],
        error_lines(logs),
        undelivered=len(api.undelivered),
        redelivered=api.redelivered,
        notes=notes,
    )


# --- the report ------------------------------------------------------------------------------------------


def ms(seconds: float) -> str:
    return f"{seconds * 1000:,.1f}"


def latency_line(label: str, values: list[float]) -> str:
    if not values:
        return f"    {label:<22} -"
    p50, p90, p99 = (percentile(values, q) for q in (50, 90, 99))
    return (
        f"    {label:<22} p50 {ms(p50):>7}  p90 {ms(p90):>7}  p99 {ms(p99):>7}  max {ms(max(values)):>8} ms"
        f"   (n={len(values):,})"
    )


def report(outcome: Outcome, args: argparse.Namespace) -> list[str]:
    """Print one mode's figures; return what is functionally broken."""
    d = outcome.drive
    every = [s.seconds for s in d.samples]
    print(f"\n== {outcome.name} ==")
    handled = len(d.samples)
    rate = handled / d.busy if d.busy else 0.0
    print(
        f"  handled: {handled:,} updates in {d.busy:.1f} s busy: {rate:,.0f} updates/s"
        f" (busiest second {d.peak:,})"
    )
    print("  reply latency (push -> handled):")
    print(latency_line("all updates", every))
    for kind, label in (("start", "/start (first)"), ("press", "button presses"), ("text", "typed answers")):
        print(latency_line(label, [s.seconds for s in d.samples if s.kind == kind]))
    print(latency_line("submit (lead saved)", [s.seconds for s in d.samples if s.kind == "submit"]))
    slow = sum(v > SLOW for v in every)
    if slow:
        print(f"    replies slower than {SLOW:.0f} s: {slow:,}")

    submitted = {USER_BASE + i for i in range(args.prospects)}
    per_user = Counter(user for user, _ in outcome.saved)
    lost = sorted(submitted - per_user.keys())
    duplicated = sorted(u for u, n in per_user.items() if n > 1)
    stray = sorted(u for u in per_user if u not in submitted)
    print(
        f"  leads: {len(outcome.saved):,} saved / {len(submitted):,} expected;"
        f" lost {len(lost)}, duplicated {len(duplicated)}" + (f", unexpected {len(stray)}" if stray else "")
    )
    references = {ref for _, ref in outcome.saved}
    alerted = Counter(m.group(0) for text in outcome.alerts if (m := re.search(r"\bL\d{6,}\b", text)))
    twice = sorted(ref for ref, n in alerted.items() if n > 1)
    missing = sorted(references - alerted.keys())
    unknown = sorted(alerted.keys() - references)
    print(
        f"  staff alerts: {len(outcome.alerts):,} for {len(references):,} leads;"
        f" missing {len(missing)}, sent twice {len(twice)}"
        + (f", for no saved lead {len(unknown)}" if unknown else "")
    )
    print(
        f"  prospects: {d.finished:,} finished, {len(d.failures)} failed;"
        f" bot errors logged {len(outcome.errors)}"
        + (
            f"; undelivered {outcome.undelivered}, redelivered {outcome.redelivered}"
            if "webhook" in outcome.name
            else ""
        )
    )
    for failure in d.failures[:5]:
        print(f"    {failure}")
    for line in outcome.errors[:5]:
        print(f"    bot: {line[:300]}")
    cpu = d.cpu
    parts = [f"{name} {share:.0%}" for name, share in cpu.items() if name != "machine"]
    print(
        f"  CPU (share of one core): {', '.join(parts)};"
        f" machine {cpu.get('machine', 0):.0%} of {os.cpu_count()} cores"
    )
    print(
        f"  load generator loop lag: p99 {ms(percentile(d.lag, 99))} ms, max {ms(max(d.lag, default=0))} ms"
    )
    for note in outcome.notes:
        print(f"  {note}")

    broken = []
    name = outcome.name.split(",")[0]
    if lost:
        broken.append(f"{name}: {len(lost)} leads LOST (e.g. users {lost[:5]})")
    if duplicated:
        broken.append(f"{name}: {len(duplicated)} leads DUPLICATED (e.g. users {duplicated[:5]})")
    if stray:
        broken.append(f"{name}: {len(stray)} leads from users who never submitted")
    if missing:
        broken.append(f"{name}: {len(missing)} staff alerts MISSING (e.g. {missing[:5]})")
    if twice:
        broken.append(f"{name}: {len(twice)} staff alerts SENT TWICE (e.g. {twice[:5]})")
    if unknown:
        broken.append(f"{name}: {len(unknown)} staff alerts for no saved lead (e.g. {unknown[:5]})")
    if d.failures:
        broken.append(f"{name}: {len(d.failures)} prospects could not finish")
    if outcome.undelivered:
        broken.append(f"{name}: {outcome.undelivered} updates never delivered")
    return broken


def parse_think(value: str) -> tuple[float, float]:
    low, _, high = value.partition("-")
    bounds = (float(low), float(high or low))
    if bounds[0] < 0 or bounds[1] < bounds[0]:
        raise argparse.ArgumentTypeError("a number of seconds or a range such as 1-3")
    return bounds


async def main(args: argparse.Namespace) -> int:
    mean = (args.think_min + args.think_max) / 2
    print(
        f"Load: {args.prospects:,} prospects at once, each {STEPS} updates (/start, ISO/IEC 20000, the "
        f"6-question self-check, the lead form with 2 wrong answers, submit):"
        f" {args.prospects * STEPS:,} updates"
    )
    if mean > 0:
        session = (STEPS - 1) * mean
        peak = args.prospects / mean if args.ramp < session else args.prospects * STEPS / max(args.ramp, 1e-9)
        print(
            f"  think {args.think_min:g}-{args.think_max:g} s between actions,"
            f" starts spread over {args.ramp:g} s:"
            f" offered ≈ {peak:,.0f} updates/s at the peak, a prospect's session ≈ {session:.0f} s"
        )
    else:
        print(
            f"  no think time (stress): each prospect sends again once answered; starts over {args.ramp:g} s"
        )
    print(
        "  Telegram's sending limits are lifted (RATE_*, FLOOD_RATE high): the fake server has none,"
        " so this measures the bot's own capacity."
    )
    print(
        "  prospects and the fake Bot API server run in this process; the bot in its own process(es),"
        f" production timings; machine: {os.cpu_count()} cores"
    )
    broken: list[str] = []
    outcomes: dict[str, Outcome] = {}
    with tempfile.TemporaryDirectory(prefix="certbot-load-") as tmp_name:
        tmp = Path(tmp_name)
        if args.mode in ("polling", "both"):
            outcomes["polling"] = await polling_mode(args, tmp)
            broken += report(outcomes["polling"], args)
        if args.mode in ("webhook", "both"):
            problem = await services_problem()
            if problem is not None:
                print(f"\n== webhook: SKIPPED: {problem} ==")
            else:
                outcomes["webhook"] = await webhook_mode(args, tmp)
                broken += report(outcomes["webhook"], args)
    if len(outcomes) == 2:
        p, w = outcomes["polling"].drive, outcomes["webhook"].drive
        pl, wl = [s.seconds for s in p.samples], [s.seconds for s in w.samples]
        if pl and wl:
            print("\n== webhook / polling ==")
            print(
                f"  p50 latency x{percentile(wl, 50) / percentile(pl, 50):.2f},"
                f" p99 latency x{percentile(wl, 99) / percentile(pl, 99):.2f},"
                f" updates/s x{(len(wl) / w.busy) / (len(pl) / p.busy):.2f}"
            )
    if not outcomes:
        print("\nnothing was measured")
        return 0
    if broken:
        print("\n" + "!" * 78)
        print("FUNCTIONALLY BROKEN:")
        for line in broken:
            print(f"  {line}")
        print("!" * 78)
        return 1
    print("\nno lead lost or duplicated, every alert sent once")
    return 0


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--prospects", type=int, default=1000, help="prospects, all at once (default 1000)")
    parser.add_argument(
        "--think",
        type=parse_think,
        default=(3.0, 8.0),
        help="seconds between a prospect's actions, uniform in A-B, or one number; 0: stress (default 3-8)",
    )
    parser.add_argument("--ramp", type=float, default=10.0, help="starts spread over this many seconds (10)")
    parser.add_argument("--mode", choices=("polling", "webhook", "both"), default="both")
    parser.add_argument("--replicas", type=int, default=2, help="webhook replicas (default 2)")
    parser.add_argument(
        "--timeout", type=float, default=60.0, help="a prospect gives up on a reply after this long (60 s)"
    )
    parser.add_argument("--seed", type=int, default=1, help="random seed of the think times and starts")
    parser.add_argument("--serve-polling", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.think_min, args.think_max = args.think
    return args


if __name__ == "__main__":
    options = arguments()
    if options.serve_polling:
        serve_polling()
    else:
        sys.exit(asyncio.run(main(options)))
