"""WeChat benchmark: the callback against a bare one, and 200 users at once, every push retried.

The fake WeChat (``bot.wechat.testing``) runs here and pushes signed messages over real HTTP to
the bot, which runs in a process of its own (as ``python -m bot run`` assembles it with WeChat's
settings and no Telegram token: conversations and leads on a SQLite file), calling the fake's API.

1. ``throughput``: pushes a second through the callback against a bare aiohttp callback that
   checks the signature, parses the XML and answers a fixed passive reply of the same size (the
   least a correct callback does), side by side: rounds of ``--seconds`` each, alternating bare
   and bot, ``--workers`` users each pushing their next message the moment it is answered. Each
   user of the bot walks between the main menu and the ISO/IEC 20000 page by numbers. The ratio is
   the median of the bot's rounds over the median of the bare rounds.
2. ``users``: ``--users`` (200) users at once, each following the account and walking to a saved
   lead (ISO/IEC 20000 by numbers, the lead form typed, "确认提交"), and every push delivered twice
   (WeChat's retry after a lost answer). Printed: p50/p90/p99/max of the passive replies' round
   trips (first attempts), then the turns the bot made (one per push: duplicates must be 0), the
   retries answered differently from the first attempt (must be 0) and the leads (lost and
   duplicated must be 0). Target: p99 < 100 ms.

Timings are printed, never asserted; the exit status is 1 only when something is functionally
broken. Everything runs on 127.0.0.1. Run: ``python bench/wechat.py``; ``--part users``.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import random
import re
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from servers import free_port, pct, spawn, stop  # noqa: E402

from bot.wechat.testing import FakeWeChat, WeChatUser  # noqa: E402

TOKEN, APP_ID, SECRET = "benchtoken", "wxbench000000001", "benchsecret"


# --- the servers (each in a process of its own) -------------------------------------------------------


async def serve_bot(port: int, db: Path, api_base: str) -> None:
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
        wechat_token=TOKEN,
        wechat_app_id=APP_ID,
        wechat_app_secret=SECRET,
        wechat_api_base=api_base,
    )
    service = await Service(settings).start()
    print("ready", service.web_port, flush=True)
    try:
        await until_stopped()
    finally:
        assert service.wechat is not None
        print("turns", service.wechat.turns, flush=True)
        await service.stop()


async def serve_bare(port: int, reply: str) -> None:
    from aiohttp import web

    from bot.service import until_stopped
    from bot.wechat.callback import Crypto, text_reply

    crypto = Crypto(TOKEN)

    async def handler(request: web.Request) -> web.Response:
        message = crypto.open(request.query, await request.read())
        return web.Response(
            text=text_reply(message.openid, message.account, reply), content_type="application/xml"
        )

    app = web.Application()
    app.router.add_post("/wechat", handler)
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


async def walker(wx: FakeWeChat, index: int, bare: bool, until: float) -> int:
    u = WeChatUser(wx, f"o_walker_{index:04d}_{'bare' if bare else 'bot'}_{time.monotonic_ns()}")
    await u.follow()
    pushes = 0
    while time.perf_counter() < until:
        await u.send("1" if bare or pushes % 2 == 0 else u.number("主菜单"))
        pushes += 1
    return pushes


async def throughput(args: argparse.Namespace, wx: FakeWeChat, tmp: Path) -> list[str]:
    bot, bot_url = await spawn(
        __file__, "serve-bot", str(free_port()), str(tmp / "throughput.db"), wx.base, path="/wechat"
    )
    try:
        wx.callback = bot_url
        probe = WeChatUser(wx)
        await probe.follow()
        sample = await probe.send("1")
        assert sample is not None
        (tmp / "reply.txt").write_text(sample, encoding="utf-8")
        bare, bare_url = await spawn(
            __file__, "serve-bare", str(free_port()), str(tmp / "reply.txt"), path="/wechat"
        )
        try:
            rates: dict[str, list[float]] = {"bare": [], "bot": []}
            for _round in range(args.rounds):
                for name, url in (("bare", bare_url), ("bot", bot_url)):
                    wx.callback = url
                    await walker(wx, 9999, name == "bare", time.perf_counter() + 0.3)  # warm
                    start = time.perf_counter()
                    until = start + args.seconds
                    counts = await asyncio.gather(
                        *(walker(wx, i, name == "bare", until) for i in range(args.workers))
                    )
                    rates[name].append(sum(counts) / (time.perf_counter() - start))
        finally:
            await stop(bare)
    finally:
        await stop(bot)
    bare_rate, bot_rate = statistics.median(rates["bare"]), statistics.median(rates["bot"])
    shown = {name: ", ".join(f"{r:.0f}" for r in values) for name, values in rates.items()}
    return [
        f"throughput ({args.workers} users, {args.rounds} rounds of {args.seconds:g} s each, side by side):",
        f"  bare signed callback  {bare_rate:8.0f} pushes/s  (rounds: {shown['bare']})",
        f"  WeChat channel        {bot_rate:8.0f} pushes/s  (rounds: {shown['bot']})",
        f"  ratio                 {bot_rate / bare_rate:8.2f}",
    ]


# --- part 2: users to a lead, every push retried ----------------------------------------------------------


class Walk:
    def __init__(self) -> None:
        self.latencies: list[float] = []
        self.pushes = 0
        self.differing: list[str] = []
        self.references: dict[str, str] = {}
        self.failed: list[str] = []


async def user(wx: FakeWeChat, index: int, args: argparse.Namespace, walk: Walk) -> None:
    rng = random.Random(index)
    await asyncio.sleep(rng.uniform(0, args.ramp))
    u = WeChatUser(wx, f"o_bench_user_{index:05d}")
    company = f"微信压测{index:04d}"
    steps: list[tuple[str, str]] = [
        ("follow", ""),
        ("choose", "ISO/IEC 20000"),
        ("choose", "留下联系方式"),
        ("choose", "同意并继续"),
        ("text", company),
        ("text", "王经理"),
        ("text", "12345"),  # wrong: asked again
        ("text", f"139{index:08d}"),
        ("text", f"w{index}@example.com"),
        ("text", "杭州"),
        ("text", "80"),
        ("text", "2"),
        ("choose", "选好了"),
        ("choose", "3–6 个月"),
        ("text", "希望年底前拿证"),
        ("choose", "确认提交"),
    ]
    try:
        answer: str | None = None
        for n, (kind, value) in enumerate(steps):
            if n and args.think_max > 0:
                await asyncio.sleep(rng.uniform(args.think_min, args.think_max))
            if kind == "follow":
                xml, _ = wx.xml(u.openid, "event", Event="subscribe")
            else:
                text = u.number(value) if kind == "choose" else value
                xml, _ = wx.xml(u.openid, "text", Content=text, MsgId=str(next(wx._ids)))
            wx.open_window(u.openid, event=kind == "follow")
            t0 = time.perf_counter()
            status, body = await wx._post(xml)
            walk.latencies.append(time.perf_counter() - t0)
            if status != 200:
                raise RuntimeError(f"HTTP {status}")
            answer = wx.read_reply(body)
            if answer is None:
                raise RuntimeError(f"no passive reply to {value or kind!r}")
            wx.seen[u.openid].add(answer)
            _, again = await wx._post(xml)  # WeChat's retry, as if the answer had been lost
            walk.pushes += 1
            if wx.read_reply(again) != answer:
                walk.differing.append(f"user {index}, {value or kind}")
        match = re.search(r"[LQ]\d{6}", answer or "")
        if match is None:
            walk.failed.append(f"user {index}: no reference in {(answer or '')[:80]!r}")
        else:
            walk.references[company] = match.group(0)
    except (LookupError, RuntimeError, OSError, TimeoutError) as e:
        walk.failed.append(f"user {index}: {type(e).__name__}: {e}")


async def users(args: argparse.Namespace, wx: FakeWeChat, tmp: Path) -> tuple[bool, list[str]]:
    db = tmp / "users.db"
    bot, url = await spawn(__file__, "serve-bot", str(free_port()), str(db), wx.base, path="/wechat")
    wx.callback = url
    walk = Walk()
    gc.disable()
    try:
        start = time.perf_counter()
        await asyncio.gather(*(user(wx, i, args, walk) for i in range(args.users)))
        elapsed = time.perf_counter() - start
    finally:
        gc.enable()
        printed = await stop(bot)
    found = re.search(r"^turns (\d+)$", printed, re.M)
    turns = int(found.group(1)) if found else -1
    con = sqlite3.connect(db)
    rows = con.execute("select company, channel from leads").fetchall()
    con.close()
    companies = [r[0] for r in rows]
    lost = [c for c in walk.references if c not in companies]
    duplicated = len(companies) - len(set(companies))
    duplicate_turns = turns - walk.pushes
    ok = (
        not (lost or duplicated or walk.failed or walk.differing or duplicate_turns)
        and len(walk.references) == args.users
        and all(r[1] == "wechat" for r in rows)
    )
    p99 = pct(walk.latencies, 0.99)
    lines = [
        f"users ({args.users} at once, ramp {args.ramp:g} s, think {args.think_min:g}-{args.think_max:g} s, "
        f"every push delivered twice, {elapsed:.0f} s in all):",
        f"  passive replies  p50 {pct(walk.latencies, 0.5):6.1f} ms  p90 {pct(walk.latencies, 0.9):6.1f} ms  "
        f"p99 {p99:6.1f} ms  max {max(walk.latencies) * 1000:6.1f} ms  "
        f"({len(walk.latencies)} first attempts)",
        f"  turns            {turns} for {walk.pushes} pushes: {duplicate_turns} duplicate; "
        f"{len(walk.differing)} retries answered differently",
        f"  leads            {len(rows)} saved for {len(walk.references)} references shown; "
        f"lost {len(lost)}, duplicated {duplicated}; failed users {len(walk.failed)}",
        f"  p99 target       < 100 ms: {'met' if p99 < 100 else 'NOT met'}",
    ]
    lines += [f"  ! {f}" for f in (walk.failed + walk.differing)[:10]]
    return ok, lines


def parse_think(value: str) -> tuple[float, float]:
    low, _, high = value.partition("-")
    return float(low), float(high or low)


async def main(args: argparse.Namespace) -> int:
    ok = True
    wx = await FakeWeChat(token=TOKEN, app_id=APP_ID, secret=SECRET).start()
    try:
        with tempfile.TemporaryDirectory(prefix="wechat-bench-") as folder:
            tmp = Path(folder)
            if args.part in ("throughput", "both"):
                print("\n".join(await throughput(args, wx, tmp)), flush=True)
            if args.part in ("users", "both"):
                fine, lines = await users(args, wx, tmp)
                print("\n".join(lines), flush=True)
                ok = ok and fine
    finally:
        await wx.stop()
    if not ok:
        print("FUNCTIONAL FAILURE: see the lines marked above", flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] in ("serve-bot", "serve-bare"):
        import uvloop

        if sys.argv[1] == "serve-bot":
            uvloop.run(serve_bot(int(sys.argv[2]), Path(sys.argv[3]), sys.argv[4]))
        else:
            uvloop.run(serve_bare(int(sys.argv[2]), Path(sys.argv[3]).read_text(encoding="utf-8")))
        sys.exit(0)
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--part", choices=("throughput", "users", "both"), default="both")
    parser.add_argument("--workers", type=int, default=32, help="users at once in the throughput part")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--users", type=int, default=200)
    parser.add_argument("--ramp", type=float, default=5.0)
    parser.add_argument(
        "--think", type=parse_think, default=(1.0, 3.0), help="seconds between pushes, e.g. 1-3"
    )
    ns = parser.parse_args()
    ns.think_min, ns.think_max = ns.think
    sys.exit(asyncio.run(main(ns)))
