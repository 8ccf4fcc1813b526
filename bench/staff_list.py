"""Staff lead list benchmark: the /leads page with 1,000,000 leads in SQLite, against 1,000 leads.

Requirement: with a million leads in SQLite the list page (the first page, a filter, a search) is
served in under 100 ms. This measures it end to end: the real dashboard (``build_web_app``) served
over real HTTP on 127.0.0.1 (aiohttp's test server and client), signed in as a staff account, one
GET of ``/leads?...`` per sample, timed from the request to the last byte of the rendered page.

Data: two SQLite files built once with the real schema (every Alembic migration, the FTS5 trigram
search table and its triggers included) and reused afterwards: ``data/bench/leads-1m.db`` and
``data/bench/leads-1k.db``, filled with the same generator: Chinese companies (city, brand and
trade pieces, 有限公司...), 2–3 character names with common surnames, some English companies and
names, mostly unique phone numbers, three years of creation times, statuses skewed towards
new/contacted, one or two schemes, short transcripts; about a third are enquiries.

Each case (a first page, filters, searches, sorts, a deep page) is warmed up, then requested in
rounds that alternate the two databases, so the 1M/1k ratio is measured side by side in one run
on a noisy machine (the median of the per-round ratios is printed). A case passes when its median
at 1M is under the target; the result is printed, never asserted (the exit status is 0 either
way). For a case over the target, the SQL that ``list_leads`` ran is captured and shown with its
``EXPLAIN QUERY PLAN`` and its own time in plain sqlite3.

Run: ``python bench/staff_list.py`` (the first run builds the databases, a few minutes);
``--rounds N`` samples per case and size, ``--rebuild`` builds the databases again,
``--explain`` shows the plan of every case, not only the slow ones.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import contextlib
import itertools
import json
import random
import re
import sqlite3
import statistics
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from aiohttp.test_utils import TestClient, TestServer  # noqa: E402
from sqlalchemy import event  # noqa: E402

from bot.content import load_content  # noqa: E402
from bot.db import create_database  # noqa: E402
from bot.db.engine import Database  # noqa: E402
from bot.db.migrate import upgrade_sync  # noqa: E402
from bot.leads.browse import LeadQuery, list_leads  # noqa: E402
from bot.leads.repository import LeadRepository  # noqa: E402
from bot.settings import Settings  # noqa: E402
from bot.staff.accounts import AccountError, StaffAccounts  # noqa: E402
from bot.web.app import build_web_app  # noqa: E402

DATA = ROOT / "data" / "bench"
SIZES = {"1m": 1_000_000, "1k": 1_000}
TARGET_MS = 100.0
STAFF = ("bench", "bench list password")
BATCH = 50_000
SEED = 20261125
NOW = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)
SPAN = timedelta(days=3 * 365)

# --- the data ----------------------------------------------------------------------------------------

CITIES = (
    "北京 上海 深圳 广州 杭州 成都 武汉 南京 苏州 西安 天津 重庆 长沙 郑州 青岛 厦门 合肥 济南 宁波 东莞 "
    "佛山 无锡 大连 沈阳 昆明 福州 南昌 石家庄 哈尔滨 长春 太原 贵阳 南宁 温州 常州 珠海 中山 烟台 潍坊 泉州"
).split()
BRAND = "华中恒鑫盛达泰信通远安康源宏德博瑞智云海天新科联创汇益正和丰金永明嘉俊卓越星辰腾飞宇航伟业集思广"
TRADES = (
    "科技 信息技术 软件 网络科技 电子 机械 建设工程 物业管理 医疗器械 食品 贸易 咨询 环保科技 新材料 物流 "
    "数据服务 系统集成 智能制造 检测技术 教育科技 供应链管理 精密模具 汽车配件 化工 印刷包装 人力资源 "
    "建筑设计 安防技术 电力工程 云计算"
).split()
SUFFIXES = ("有限公司",) * 8 + ("股份有限公司", "集团有限公司")
EN_WORDS = (
    "Acme Blue River Summit Pacific Orient Golden Bridge Nova Vertex Harbor Silver Maple Apex Lotus "
    "Crystal Pioneer Unity Zenith Evergreen Northstar Brightline Sino Asia Global"
).split()
EN_TRADES = (
    "Technology",
    "Data Systems",
    "Logistics",
    "Consulting",
    "Electronics",
    "Software",
    "Trading",
    "Manufacturing",
    "Medical",
)
EN_SUFFIXES = ("Ltd", "Co., Ltd.", "Limited", "Inc.", "GmbH", "Pte. Ltd.")
SURNAMES = (
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈"
)
GIVEN = (
    "伟 芳 娜 敏 静 丽 强 磊 军 洋 勇 艳 杰 娟 涛 明 超 秀英 霞 平 刚 桂英 建华 文 华 鹏 辉 玲 婷 雪 "
    "晨 欣 宇 浩 俊 嘉 子涵 梓轩 思远 海燕 志强 国平 立新 红 斌 颖 琳 佳 晓东"
).split()
TITLES = ("经理", "总", "工", "老师", "主任")
EN_FIRST = "David Sarah Michael Emma James Olivia Daniel Sophia Kevin Grace Peter Linda Tom Amy".split()
EN_LAST = "Chen Wong Miller Smith Lee Brown Tan Lim Garcia Müller Schmidt Taylor Ng Ho".split()
MAIL = ("qq.com", "163.com", "126.com", "sina.com", "gmail.com", "outlook.com")
SCHEMES = ("iso9001", "three", "iso27001", "iso20000")
SCHEME_WEIGHTS = (40, 25, 20, 15)
STATUSES = ("new", "contacted", "qualified", "won", "lost")
STATUS_WEIGHTS = (42, 30, 12, 5, 11)
STAFF_NAMES = ("alice", "bob", "王芳", "李强", "chen", "zhang.wei", "lucy", "刘洋")
CONDITIONS = ("licence", "running_3m", "system_built", "internal_audit", "management_review")
QUESTIONS = (
    "证书有效期多久",
    "审核需要几天",
    "费用大概多少",
    "可以加急吗",
    "需要准备哪些材料",
    "多个地址怎么审核",
    "How long does certification take?",
    "Do you audit in English?",
)
PROMPTS = (
    "> 你好",
    "> 我们想做认证",
    "> 多少钱",
    "> 要多久",
    "> 好的",
    "> 谢谢",
    "> 需要现场审核吗",
    "> 有分公司怎么办",
    "> Hello",
    "> price?",
)


def _pick(rnd: random.Random, items: tuple[str, ...] | list[str]) -> str:
    return items[int(rnd.random() * len(items))]


def _transcripts(rnd: random.Random, count: int) -> list[str]:
    """A pool of JSON transcripts (10–40 short lines: the prospect's words and the steps shown)."""
    pool = []
    for _ in range(count):
        flow = _pick(rnd, SCHEMES)
        lines = [_pick(rnd, PROMPTS), f"@{flow}.intro"]
        steps = ("selfcheck", "price", "duration", "documents", "sites", "faq")
        while len(lines) < rnd.randint(10, 40):
            if rnd.random() < 0.5:
                lines.append(_pick(rnd, PROMPTS))
            else:
                lines.append(f"@{flow}.{_pick(rnd, steps)}")
        lines.append("@lead.summary")
        pool.append(json.dumps(lines))
    return pool


def _company(rnd: random.Random) -> str:
    if rnd.random() < 0.08:
        words = " ".join(rnd.sample(EN_WORDS, rnd.randint(1, 2)))
        return f"{words} {_pick(rnd, EN_TRADES)} {_pick(rnd, EN_SUFFIXES)}"
    brand = "".join(rnd.choice(BRAND) for _ in range(rnd.choice((2, 2, 2, 3))))
    trade, suffix = _pick(rnd, TRADES), _pick(rnd, SUFFIXES)
    r = rnd.random()
    if r < 0.55:
        return f"{_pick(rnd, CITIES)}{brand}{trade}{suffix}"
    if r < 0.75:
        return f"{_pick(rnd, CITIES)}市{brand}{trade}{suffix}"
    if r < 0.9:
        return f"{brand}{trade}({_pick(rnd, CITIES)}){suffix}"
    return f"{brand}{trade}{suffix}"


def _person(rnd: random.Random) -> tuple[str, bool]:
    """A name, and whether it is an English one."""
    if rnd.random() < 0.07:
        return f"{_pick(rnd, EN_FIRST)} {_pick(rnd, EN_LAST)}", True
    surname = SURNAMES[min(int(rnd.expovariate(1 / 12)), len(SURNAMES) - 1)]  # 王, 李, 张 most common
    if rnd.random() < 0.1:
        return surname + _pick(rnd, TITLES), False
    return surname + _pick(rnd, GIVEN), False


def _times(rnd: random.Random, rows: int) -> list[datetime]:
    """Creation times over three years, oldest first, growing busier (density rising linearly)."""
    start = NOW - SPAN
    seconds = SPAN.total_seconds()
    return [start + timedelta(seconds=seconds * x) for x in sorted(rnd.random() ** 0.5 for _ in range(rows))]


def _stamp(moment: datetime) -> str:
    """How SQLAlchemy stores a DateTime in SQLite (UTC, no zone)."""
    return moment.strftime("%Y-%m-%d %H:%M:%S.%f")


COLUMNS = (
    "id reference kind status company contact_name phone email city headcount sites schemes timeline note "
    "question source_flow selfcheck content_version locale consent_at channel external_id handle "
    "transcript assigned_to forgotten_at created_at updated_at"
).split()


def leads(rows: int, seed: int = SEED) -> Iterator[tuple[Any, ...]]:
    """Rows for the ``leads`` table in COLUMNS order, ids 1..rows."""
    rnd = random.Random(seed)
    transcripts = _transcripts(rnd, 4000)
    created = _times(rnd, rows)
    status_cum = list(itertools.accumulate(STATUS_WEIGHTS))
    scheme_cum = list(itertools.accumulate(SCHEME_WEIGHTS))
    users = rnd.sample(range(100_000_000, 8_000_000_000), rows)
    for i in range(rows):
        lead_id = i + 1
        enquiry = rnd.random() < 0.3
        kind = "enquiry" if enquiry else "lead"
        status = STATUSES[bisect.bisect(status_cum, rnd.random() * status_cum[-1])]
        name, english = _person(rnd)
        if english and rnd.random() < 0.5:
            phone = f"+852{rnd.randint(5, 9)}{rnd.randrange(10**7):07d}"
        else:
            phone = f"+861{rnd.choice('3456789')}{rnd.randrange(10**9):09d}"
        first = SCHEMES[bisect.bisect(scheme_cum, rnd.random() * scheme_cum[-1])]
        schemes = [first]
        if rnd.random() < 0.25:
            other = _pick(rnd, SCHEMES)
            if other != first:
                schemes.append(other)
        made = created[i]
        updated = made + timedelta(seconds=rnd.randint(1, 600))
        if status != "new":
            updated = max(made, min(NOW, made + timedelta(hours=rnd.uniform(1, 24 * 60))))
        company = email = city = timeline = note = question = None
        headcount = sites = None
        if enquiry:
            if rnd.random() < 0.3:
                company = _company(rnd)
            if rnd.random() < 0.4:
                question = _pick(rnd, QUESTIONS)
            if rnd.random() < 0.3:
                schemes = []
        else:
            company = _company(rnd)
            if rnd.random() < 0.8:
                handle = f"{rnd.choice('abcdefghjklmnpqrstwxyz')}{rnd.randrange(10**6)}"
                email = f"{handle}@{_pick(rnd, MAIL)}"
            city = _pick(rnd, CITIES)
            headcount = int(rnd.lognormvariate(4, 1.2)) + 1
            sites = 1 + int(rnd.expovariate(1.5))
            timeline = _pick(rnd, ("1m", "3m", "6m", "later"))
            if rnd.random() < 0.3:
                note = _pick(rnd, ("希望年底前拿证", "需要报价", "请周一上午联系", "Please call after 2pm"))
        selfcheck = {c: rnd.random() < 0.7 for c in CONDITIONS[: rnd.randint(0, 5)]}
        transcript = _pick(rnd, transcripts)
        forgotten = None
        if rnd.random() < 0.002:  # asked to be forgotten: every personal field is empty
            company = name = phone = email = note = question = None
            transcript = "[]"
            forgotten = _stamp(updated)
        username = f"u{users[i] % 10**7}" if rnd.random() < 0.6 else None
        assigned = None if status == "new" and rnd.random() < 0.9 else _pick(rnd, STAFF_NAMES)
        yield (
            lead_id,
            f"{'Q' if enquiry else 'L'}{lead_id:06d}",
            kind,
            status,
            company,
            name,
            phone,
            email,
            city,
            headcount,
            sites,
            json.dumps(schemes),
            timeline,
            note,
            question,
            schemes[0] if schemes else None,
            json.dumps(selfcheck),
            "2026.11.1",
            "en" if english else "zh",
            None if enquiry else _stamp(made),
            "telegram",
            str(users[i]),
            username,
            transcript,
            assigned,
            forgotten,
            _stamp(made),
            _stamp(updated),
        )


# --- building the databases --------------------------------------------------------------------------


def url_of(path: Path) -> str:
    return f"sqlite+aiosqlite:///{path}"


def complete(path: Path, rows: int) -> bool:
    if not path.exists():
        return False
    try:
        with sqlite3.connect(path) as conn:
            return conn.execute("SELECT max(id) FROM leads").fetchone()[0] == rows
    except sqlite3.Error:
        return False


def build(path: Path, rows: int) -> None:
    """Migrate a new file and fill it with the stdlib sqlite3 module (the FTS triggers fire), then
    move it into place: a file at ``path`` is always a complete database."""
    partial = path.with_name(path.name + ".partial")
    for leftover in (partial, *(partial.with_name(partial.name + x) for x in ("-wal", "-shm"))):
        leftover.unlink(missing_ok=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    upgrade_sync(url_of(partial))
    conn = sqlite3.connect(partial, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=OFF")
    conn.execute("PRAGMA cache_size=-1000000")  # 1 GB while loading: the indexes are filled at random
    sql = f"INSERT INTO leads ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})"
    source = leads(rows)
    done = 0
    while batch := list(itertools.islice(source, BATCH)):
        conn.execute("BEGIN")
        conn.executemany(sql, batch)
        conn.execute("COMMIT")
        done += len(batch)
        if rows >= 100_000:
            rate = done / (time.perf_counter() - t0)
            print(f"  {path.name}: {done:,} leads, {rate:,.0f}/s", end="\r", flush=True)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    partial.rename(path)
    seconds = time.perf_counter() - t0
    size = path.stat().st_size / 2**20
    print(f"built {path.relative_to(ROOT)}: {rows:,} leads in {seconds:,.1f} s, {size:,.0f} MiB" + " " * 20)


def prepare(rebuild: bool) -> dict[str, Path]:
    paths = {}
    for label, rows in SIZES.items():
        path = DATA / f"leads-{label}.db"
        if rebuild:
            for old in (path, *(path.with_name(path.name + x) for x in ("-wal", "-shm"))):
                old.unlink(missing_ok=True)
        if complete(path, rows):
            size = path.stat().st_size / 2**20
            print(f"reusing {path.relative_to(ROOT)}: {rows:,} leads, {size:,.0f} MiB")
            upgrade_sync(url_of(path))  # a migration added since is applied, as in production
        else:
            build(path, rows)
        paths[label] = path
    return paths


# --- the cases ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    name: str
    params: dict[str, str]


CASES = (
    Case("first page", {}),
    Case("status=won (5%)", {"status": "won"}),
    Case("scheme=iso20000", {"scheme": "iso20000"}),
    Case("kind=enquiry", {"kind": "enquiry"}),
    Case("search company 4 chars", {"q": "恒达软件"}),
    Case("search trade (broad)", {"q": "信息技术"}),
    Case("search most leads, 4 chars", {"q": "有限公司"}),
    Case("search city 2 chars", {"q": "深圳"}),
    Case("search name 2 chars", {"q": "王伟"}),
    Case("search 2 chars, no match", {"q": "赵六"}),
    Case("search surname 1 char", {"q": "李"}),
    Case("search phone digits", {"q": "138001"}),
    Case("search, no match", {"q": "不存在的公司"}),
    Case("search, no match, common 3-grams", {"q": "+8612"}),
    Case("search + status", {"q": "信息技术", "status": "won"}),
    Case("sort=company", {"sort": "company"}),
    Case("sort=updated", {"sort": "updated"}),
    Case("page 40", {"page": "40"}),
)


@dataclass
class Samples:
    ms: dict[str, list[float]] = field(default_factory=lambda: {label: [] for label in SIZES})
    ratios: list[float] = field(default_factory=list)
    count: dict[str, str] = field(default_factory=dict)


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[max(0, -(-len(ordered) * 95 // 100) - 1)]


# --- serving and timing ------------------------------------------------------------------------------


@dataclass
class Site:
    db: Database
    client: TestClient[Any, Any]
    schemes: tuple[str, ...]


async def serve(path: Path) -> Site:
    url = url_of(path)
    db = create_database(url)
    content = load_content(ROOT / "flows")
    accounts = StaffAccounts(db)
    with contextlib.suppress(AccountError):  # added by an earlier run
        await accounts.add(*STAFF)
    settings = Settings(_env_file=None, database_url=url)  # type: ignore[call-arg]
    app = build_web_app(settings, leads=LeadRepository(db), accounts=accounts, content=lambda: content)
    client: TestClient[Any, Any] = TestClient(TestServer(app, host="127.0.0.1"))
    await client.start_server()
    page = await client.get("/login")
    token = re.search(r'name="csrf" value="([^"]+)"', await page.text())
    if token is None:
        raise RuntimeError("no CSRF token on the sign-in page")
    form = {"csrf": token.group(1), "name": STAFF[0], "password": STAFF[1]}
    signed = await client.post("/login", data=form, allow_redirects=False)
    if signed.status != 303:
        raise RuntimeError(f"sign-in failed: HTTP {signed.status}")
    schemes = tuple(fid for fid, flow in content.flows.items() if flow.kind == "scheme")
    return Site(db, client, schemes)


COUNT = re.compile(r'<p class="count" id="count">([^<]*)</p>')


async def fetch(site: Site, case: Case) -> tuple[float, str]:
    """One GET of the list page: milliseconds to the last byte, and the number of matches shown."""
    target = "/leads" + ("?" + urlencode(case.params) if case.params else "")
    t0 = time.perf_counter()
    response = await site.client.get(target, allow_redirects=False)
    body = await response.text()
    ms = (time.perf_counter() - t0) * 1000
    found = COUNT.search(body)
    if response.status != 200 or found is None:
        raise RuntimeError(f"{target}: HTTP {response.status}, not the lead list")
    number = re.search(r"\d[\d,]*", found.group(1))
    capped = "超过" in found.group(1) or "more" in found.group(1)
    return ms, (">" if capped else "") + (number.group(0) if number else "?")


async def measure(sites: dict[str, Site], rounds: int, warmup: int) -> dict[str, Samples]:
    results = {case.name: Samples() for case in CASES}
    for case in CASES:
        for label, site in sites.items():
            for _ in range(warmup):
                _ms, results[case.name].count[label] = await fetch(site, case)
    labels = list(sites)
    for n in range(rounds):
        for case in CASES:
            samples = results[case.name]
            order = labels if n % 2 == 0 else labels[::-1]  # which size goes first alternates
            got = {}
            for label in order:
                got[label], _count = await fetch(sites[label], case)
                samples.ms[label].append(got[label])
            samples.ratios.append(got["1m"] / got["1k"])
        print(f"  round {n + 1}/{rounds}", end="\r", flush=True)
    print(" " * 30, end="\r")
    return results


def table(results: dict[str, Samples]) -> list[str]:
    name_w = max(len(c.name) for c in CASES)
    head = (
        f"{'case':<{name_w}}  {'1M median':>9} {'1M p95':>7}  {'1k median':>9} {'1k p95':>7}  "
        f"{'1M/1k':>6}  {'<100 ms':<7}  matches at 1M"
    )
    lines = [head, "-" * len(head)]
    for case in CASES:
        s = results[case.name]
        big, small = s.ms["1m"], s.ms["1k"]
        verdict = "PASS" if statistics.median(big) < TARGET_MS else "FAIL"
        lines.append(
            f"{case.name:<{name_w}}  {statistics.median(big):>9.1f} {p95(big):>7.1f}  "
            f"{statistics.median(small):>9.1f} {p95(small):>7.1f}  {statistics.median(s.ratios):>6.1f}  "
            f"{verdict:<7}  {s.count['1m']}"
        )
    return lines


# --- why a case is slow ------------------------------------------------------------------------------


async def statements(site: Site, case: Case) -> list[tuple[str, tuple[Any, ...]]]:
    """The SQL that ``list_leads`` runs for this case (the page's rows, then the capped count)."""
    seen: list[tuple[str, tuple[Any, ...]]] = []

    def record(_conn: Any, _cursor: Any, sql: str, params: Any, _context: Any, _many: bool) -> None:
        if "FROM leads" in sql:
            seen.append((sql, tuple(params)))

    engine = site.db.engine.sync_engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        await list_leads(site.db, LeadQuery.parse(case.params, schemes=site.schemes))
    finally:
        event.remove(engine, "before_cursor_execute", record)
    return seen


def explain(path: Path, sql: str, params: tuple[Any, ...]) -> tuple[list[str], float]:
    """EXPLAIN QUERY PLAN as an indented tree, and the statement's median time in plain sqlite3."""
    with sqlite3.connect(path) as conn:
        nodes = conn.execute("EXPLAIN QUERY PLAN " + sql, params).fetchall()
        depth: dict[int, int] = {0: -1}
        plan = []
        for node, parent, _unused, detail in nodes:
            depth[node] = depth.get(parent, -1) + 1
            plan.append("  " * depth[node] + detail)
        times = []
        for _ in range(5):
            t0 = time.perf_counter()
            conn.execute(sql, params).fetchall()
            times.append((time.perf_counter() - t0) * 1000)
    return plan, statistics.median(times)


async def diagnose(site: Site, path: Path, cases: list[Case]) -> None:
    for case in cases:
        print(f"\n{case.name}  /leads?{urlencode(case.params)}")
        for sql, params in await statements(site, case):
            plan, ms = explain(path, sql, params)
            print(f"  {ms:7.1f} ms  " + " ".join(sql.split()))
            print(f"             params {params!r}")
            for line in plan:
                print(f"             | {line}")


async def run(paths: dict[str, Path], rounds: int, warmup: int, explain_all: bool) -> None:
    sites = {label: await serve(path) for label, path in paths.items()}
    try:
        t0 = time.perf_counter()
        results = await measure(sites, rounds, warmup)
        seconds = time.perf_counter() - t0
        print(
            f"\nGET /leads over HTTP, signed in, whole page, in ms; {rounds} rounds alternating "
            f"1M and 1k leads ({seconds:.0f} s); 1M/1k: median of per-round ratios; "
            f"target: 1M median < {TARGET_MS:.0f} ms"
        )
        print("\n".join(table(results)))
        slow = [c for c in CASES if explain_all or statistics.median(results[c.name].ms["1m"]) >= TARGET_MS]
        if slow:
            print("\nSQL that list_leads ran at 1M (its time alone in sqlite3, EXPLAIN QUERY PLAN):")
            await diagnose(sites["1m"], paths["1m"], slow)
    finally:
        for site in sites.values():
            await site.client.close()
            await site.db.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--rounds", type=int, default=20, help="samples per case and size (default 20)")
    parser.add_argument("--warmup", type=int, default=2, help="requests per case and size first (default 2)")
    parser.add_argument("--rebuild", action="store_true", help="build the databases again")
    parser.add_argument("--explain", action="store_true", help="show the query plan of every case")
    args = parser.parse_args()
    paths = prepare(args.rebuild)  # before the event loop: Alembic's env.py runs one of its own
    asyncio.run(run(paths, max(1, args.rounds), max(0, args.warmup), args.explain))


if __name__ == "__main__":
    main()
