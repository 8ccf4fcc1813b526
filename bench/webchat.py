"""Web chat benchmark: the HTTP API against a bare aiohttp handler, and 1,000 visitors to a lead.

Two parts, each server in a process of its own (so that it has a core to itself on a two-core
machine, the visitors and the client in this process having the other):

1. ``throughput``: turns per second through ``POST /chat/api/send`` (the bot as ``python -m bot run``
   assembles it without a Telegram token: the web chat on its aiohttp server, conversations on a
   SQLite file, written behind as in production) against a bare aiohttp handler that returns a
   fixed JSON reply of the same size (a real reply of the bot's, captured first), measured side
   by side: rounds of ``--seconds`` each, alternating bare and bot, ``--workers`` visitors each
   sending its next action the moment it is answered over one kept-alive client. Each visitor of
   the bot walks between the main menu and the ISO/IEC 20000 page (a button press a turn, as in
   ``bench/throughput.py``); the bare handler gets the same requests. The ratio is the median of
   the bot's rounds over the median of the bare rounds. Target: >= 0.5.
2. ``visitors``: ``--visitors`` (1,000) visitors at once, each opening a session and walking from
   the first message to a saved lead (ISO/IEC 20000, the lead form with every field, a wrong
   phone corrected, "确认提交"), starting staggered over ``--ramp`` seconds and pausing
   ``--think`` seconds between actions as people reading and typing do (as ``bench/load.py``).
   Printed: p50/p90/p99/max latency of every action (the client's round trip), and of the
   submissions alone; then the leads in the database: lost and duplicated must be 0. Target:
   p99 < 100 ms on SQLite.

Timings are printed, never asserted; the exit status is 1 only when something is functionally
broken (a lead lost or duplicated, a visitor who could not finish). Everything runs on 127.0.0.1.

Run: ``python bench/webchat.py`` (both parts); ``--part throughput``; ``--visitors 200 --think 0``
(a stress run).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import random
import re
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from servers import free_port, pct, spawn, stop  # noqa: E402

from bot.webchat.testing import ChatError, WebVisitor  # noqa: E402

LOOP = ("ISO/IEC 20000", "主菜单")


# --- the servers (each in a process of its own) -------------------------------------------------------


async def serve_bot(port: int, db: Path) -> None:
    from bot.service import Service, until_stopped
    from bot.settings import Settings

    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        database_url=f"sqlite+aiosqlite:///{db}",
        flows_dir=ROOT / "flows",
        web_port=port,
        watch_flows=False,
        working_hours="always",
        log_level="WARNING",
        webchat_rate=1000.0,
        webchat_burst=1000.0,
        webchat_rate_per_address=1e6,
        webchat_burst_per_address=1e6,
        webchat_sessions_per_hour=1_000_000,
    )
    service = await Service(settings).start()
    print("ready", service.web_port, flush=True)
    try:
        await until_stopped()
    finally:
        await service.stop()


async def serve_bare(port: int, reply: bytes) -> None:
    from aiohttp import web

    from bot.service import until_stopped

    async def handler(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(body=reply, content_type="application/json")

    app = web.Application()
    app.router.add_post("/chat/api/send", handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    print("ready", port, flush=True)
    try:
        await until_stopped()
    finally:
        await runner.cleanup()


# --- part 1: throughput --------------------------------------------------------------------------------


async def walker(
    http: aiohttp.ClientSession, base: str, bare: bool, until: float, sample: dict[str, Any]
) -> int:
    """One visitor pressing buttons back and forth until ``until``; the turns it made."""
    v = WebVisitor(http, base, token="x" * 43) if bare else await WebVisitor(http, base).open()
    if bare:
        v.transcript = {1: sample}
    else:
        await v.start()
    turns = 0
    while time.perf_counter() < until:
        label = LOOP[1] if bare else LOOP[turns % 2]  # the bare reply is always the same page
        await v.act({"press": v.button(label)["payload"]})
        if bare:
            v.transcript = {1: sample}
        turns += 1
    return turns


async def throughput(args: argparse.Namespace, tmp: Path) -> tuple[float, list[str]]:
    bot, bot_url = await spawn(__file__, "serve-bot", str(free_port()), str(tmp / "throughput.db"))
    try:
        # A real reply of the bot, for the bare handler to send back.
        connector = aiohttp.TCPConnector(limit=args.workers)
        async with aiohttp.ClientSession(connector=connector) as http:
            probe = await WebVisitor(http, bot_url).open()
            await probe.start()
            await probe.press(LOOP[0])
            import orjson

            reply = orjson.dumps({"messages": probe.replies, "last": probe.last})
            sample = probe.replies[-1]
        sample_file = tmp / "reply.json"
        sample_file.write_bytes(reply)
        bare, bare_url = await spawn(__file__, "serve-bare", str(free_port()), str(sample_file))
        try:
            rates: dict[str, list[float]] = {"bare": [], "bot": []}
            for _round in range(args.rounds):
                for name, url in (("bare", bare_url), ("bot", bot_url)):
                    connector = aiohttp.TCPConnector(limit=args.workers)
                    async with aiohttp.ClientSession(connector=connector) as http:
                        await walker(http, url, name == "bare", time.perf_counter() + 0.3, sample)  # warm
                        start = time.perf_counter()
                        until = start + args.seconds
                        counts = await asyncio.gather(
                            *(walker(http, url, name == "bare", until, sample) for _ in range(args.workers))
                        )
                        rates[name].append(sum(counts) / (time.perf_counter() - start))
        finally:
            await stop(bare)
    finally:
        await stop(bot)
    bare_rate, bot_rate = statistics.median(rates["bare"]), statistics.median(rates["bot"])
    ratio = bot_rate / bare_rate
    shown = {name: ", ".join(f"{r:.0f}" for r in values) for name, values in rates.items()}
    lines = [
        f"throughput ({args.workers} visitors, {args.rounds} rounds of {args.seconds:g} s each, "
        "side by side):",
        f"  bare aiohttp handler  {bare_rate:8.0f} turns/s  (rounds: {shown['bare']})",
        f"  web chat (SQLite)     {bot_rate:8.0f} turns/s  (rounds: {shown['bot']})",
        f"  ratio                 {ratio:8.2f}  (target >= 0.5)",
    ]
    return ratio, lines


# --- part 2: visitors to a lead --------------------------------------------------------------------------


class Walk:
    def __init__(self) -> None:
        self.latencies: list[float] = []
        self.submits: list[float] = []
        self.references: dict[str, str] = {}
        self.failed: list[str] = []


async def visit(
    http: aiohttp.ClientSession, base: str, index: int, args: argparse.Namespace, walk: Walk
) -> None:
    rng = random.Random(index)
    await asyncio.sleep(rng.uniform(0, args.ramp))
    v = WebVisitor(http, base)
    steps: list[tuple[str, str]] = [
        ("start", ""),
        ("press", "ISO/IEC 20000"),
        ("press", "留下联系方式"),
        ("press", "同意并继续"),
        ("text", f"压测公司{index:04d}"),
        ("text", "王经理"),
        ("text", "12345"),  # wrong: asked again
        ("text", f"138{index:08d}"),
        ("text", f"v{index}@example.com"),
        ("text", "深圳"),
        ("text", "80"),
        ("text", "2"),
        ("press", "选好了"),
        ("press", "3–6 个月"),
        ("text", "希望年底前拿证"),
        ("press", "确认提交"),
    ]
    try:
        t0 = time.perf_counter()
        await v.open()
        walk.latencies.append(time.perf_counter() - t0)
        for n, (kind, value) in enumerate(steps):
            if n and args.think_max > 0:
                await asyncio.sleep(rng.uniform(args.think_min, args.think_max))
            t0 = time.perf_counter()
            if kind == "start":
                await v.start()
            elif kind == "press":
                await v.press(value)
            else:
                await v.send(value)
            took = time.perf_counter() - t0
            walk.latencies.append(took)
            if value == "确认提交":
                walk.submits.append(took)
        match = re.search(r"[LQ]\d{6}", v.text)
        if match is None:
            walk.failed.append(f"visitor {index}: no reference in {v.text[:80]!r}")
        else:
            walk.references[f"压测公司{index:04d}"] = match.group(0)
    except (ChatError, LookupError, aiohttp.ClientError, TimeoutError) as e:
        walk.failed.append(f"visitor {index}: {type(e).__name__}: {e}")


async def visitors(args: argparse.Namespace, tmp: Path) -> tuple[bool, float, list[str]]:
    db = tmp / "visitors.db"
    bot, url = await spawn(__file__, "serve-bot", str(free_port()), str(db))
    walk = Walk()
    gc.disable()
    try:
        connector = aiohttp.TCPConnector(limit=0)
        timeout = aiohttp.ClientTimeout(total=60)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as http:
            start = time.perf_counter()
            await asyncio.gather(*(visit(http, url, i, args, walk) for i in range(args.visitors)))
            elapsed = time.perf_counter() - start
    finally:
        gc.enable()
        await stop(bot)
    con = sqlite3.connect(db)
    rows = con.execute("select company, reference, channel from leads").fetchall() if db.exists() else []
    con.close()
    companies = [r[0] for r in rows]
    lost = [c for c in walk.references if c not in companies]
    duplicated = len(companies) - len(set(companies))
    wrong_channel = [r for r in rows if r[2] != "web"]
    ok = not (lost or duplicated or wrong_channel or walk.failed) and len(walk.references) == args.visitors
    p99 = pct(walk.latencies, 0.99)
    lines = [
        f"visitors ({args.visitors} at once, ramp {args.ramp:g} s, "
        f"think {args.think_min:g}-{args.think_max:g} s, "
        f"{elapsed:.0f} s in all, {len(walk.latencies) / elapsed:.0f} requests/s):",
        f"  every action  p50 {pct(walk.latencies, 0.5):6.1f} ms  p90 {pct(walk.latencies, 0.9):6.1f} ms  "
        f"p99 {p99:6.1f} ms  max {max(walk.latencies) * 1000:6.1f} ms  ({len(walk.latencies)} requests)",
        f"  submissions   p50 {pct(walk.submits, 0.5):6.1f} ms  p99 {pct(walk.submits, 0.99):6.1f} ms"
        if walk.submits
        else "  submissions   none",
        f"  leads         {len(rows)} saved for {len(walk.references)} references shown; lost {len(lost)}, "
        f"duplicated {duplicated}, not web {len(wrong_channel)}; failed visitors {len(walk.failed)}",
        f"  p99 target    < 100 ms: {'met' if p99 < 100 else 'NOT met'}",
    ]
    lines += [f"  ! {f}" for f in walk.failed[:10]]
    return ok, p99, lines


def parse_think(value: str) -> tuple[float, float]:
    low, _, high = value.partition("-")
    return float(low), float(high or low)


async def main(args: argparse.Namespace) -> int:
    ok = True
    with tempfile.TemporaryDirectory(prefix="webchat-bench-") as folder:
        tmp = Path(folder)
        if args.part in ("throughput", "both"):
            _ratio, lines = await throughput(args, tmp)
            print("\n".join(lines), flush=True)
        if args.part in ("visitors", "both"):
            fine, _p99, lines = await visitors(args, tmp)
            print("\n".join(lines), flush=True)
            ok = ok and fine
    if not ok:
        print("FUNCTIONAL FAILURE: see the lines marked above", flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] in ("serve-bot", "serve-bare"):
        import uvloop

        if sys.argv[1] == "serve-bot":
            uvloop.run(serve_bot(int(sys.argv[2]), Path(sys.argv[3])))
        else:
            uvloop.run(serve_bare(int(sys.argv[2]), Path(sys.argv[3]).read_bytes()))
        sys.exit(0)
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--part", choices=("throughput", "visitors", "both"), default="both")
    parser.add_argument("--workers", type=int, default=32, help="visitors at once in the throughput part")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--visitors", type=int, default=1000)
    parser.add_argument("--ramp", type=float, default=10.0)
    parser.add_argument(
        "--think", type=parse_think, default=(3.0, 8.0), help="seconds between actions, e.g. 3-8"
    )
    ns = parser.parse_args()
    ns.think_min, ns.think_max = ns.think
    os.environ.setdefault("PYTHONHASHSEED", "0")
    sys.exit(asyncio.run(main(ns)))
