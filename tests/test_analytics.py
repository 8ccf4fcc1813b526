"""Analytics for operators: funnels, FAQ hits and open questions, without personal data."""

from __future__ import annotations

from sqlalchemy import select

from bot.analytics import Analytics, scrub
from bot.content import Content
from bot.db.engine import Database
from bot.db.models import Stat
from bot.engine.conversation import Conversation
from bot.engine.engine import Engine

from .fakebot import FakeBotAPI, Prospect
from .harness import ADMIN, BotRunner

WALK = [
    ("command", "start"),
    ("press", "ISO/IEC 20000"),
    ("press", "所需材料"),
    ("send", "证书有效期多久？"),
    ("send", "你们办公室在哪层楼吗，我电话13800138000"),
    ("command", "back"),
    ("press", "所需材料"),
]


def walk(engine: Engine, analytics: Analytics, who: str) -> None:
    conv = Conversation(engine, language_code="zh")
    for kind, value in WALK:
        before = conv.state
        if kind == "command":
            conv.command(value)
        elif kind == "press":
            conv.press(value)
        else:
            conv.send(value)
        analytics.observe(engine.content, who, before, conv.history[-1])


def test_scrub_removes_numbers_and_addresses() -> None:
    assert scrub("我的电话 138 0013 8000，邮箱 wang@acme.cn 多少钱") == "我的电话 …，邮箱 … 多少钱"


async def test_counts_reach_the_database_and_the_report(
    engine: Engine, content: Content, db: Database
) -> None:
    analytics = Analytics(db, flush_interval=3600)
    walk(engine, analytics, "a")
    walk(engine, analytics, "b")
    await analytics.flush()
    async with db.sessions() as s:
        rows = {(r.kind, r.key): r.count for r in await s.scalars(select(Stat))}
    assert rows[("flow", "iso20000")] == 2
    assert rows[("step", "iso20000.materials")] == 2  # going back and in again is not a new visit
    assert rows[("faq", "validity")] == 2
    [(question, n)] = [(k, n) for (kind, k), n in rows.items() if kind == "unanswered"]
    assert n == 2 and "13800138000" not in question and "…" in question
    report = (await analytics.totals()).report(content, "zh")
    assert "ISO/IEC 20000 IT服务管理体系认证: 2 started, 0 leads" in report
    assert "materials: 2 (100%)" in report and "validity 2" in report
    # only the FAQ's own words are kept (what they are follows the content): never the number
    [line] = [x for x in report.splitlines() if x.strip().startswith("2× ")]
    assert line.strip().startswith("2× 你们") and "在哪" in line and "…" in line, line
    assert not any(c.isdigit() for c in line.replace("2×", "")) and "层楼" not in line, line
    await analytics.close()


async def test_admin_stats_in_telegram(api: FakeBotAPI, running: BotRunner) -> None:
    p = Prospect(api, 9301, language_code="en")
    await p.send("/start")
    await p.press("ISO 9001")
    await p.press("Materials")
    await p.send("do you have a parking lot?")
    leads, stats = await Prospect(api, ADMIN, language_code="en").send("/stats")
    assert "线索统计" in leads.visible and "按状态" in leads.visible  # staff read the default language
    assert "ISO 9001" in stats.visible and "1 started" in stats.visible
    assert "materials: 1" in stats.visible and "do you have a … lot?" in stats.visible  # FAQ words only
    other = Prospect(api, 9302, language_code="en")
    await other.send("/start")
    [reply] = await other.send("/stats")
    assert "don't know that command" in reply.visible


async def test_a_counter_the_database_refuses_is_dropped_and_the_rest_are_written(db: Database) -> None:
    """A key SQLite cannot bind (a lone surrogate; on PostgreSQL a NUL) reached the batch
    without ``count``'s cleaning: the batch is written row by row, the bad row dropped, nothing
    left pending to fail every later flush."""
    analytics = Analytics(db, flush_interval=3600)
    analytics.count("faq", "validity")
    analytics.count("unanswered", "火星\x00的猫\ud800")  # cleaned on the way in
    [key] = [k for _d, kind, k in analytics.pending if kind == "unanswered"]
    assert key == "火星的猫"
    day = next(iter(analytics.pending))[0]
    analytics.pending[(day, "unanswered", "坏\ud800")] += 1  # past the cleaning
    await analytics.flush()
    async with db.sessions() as s:
        rows = {(r.kind, r.key): r.count for r in await s.scalars(select(Stat))}
    assert rows == {("faq", "validity"): 1, ("unanswered", "火星的猫"): 1}
    assert not analytics.pending
    analytics.count("faq", "validity")  # and later counts go on being written
    await analytics.flush()
    async with db.sessions() as s:
        assert await s.scalar(select(Stat.count).where(Stat.kind == "faq")) == 2
    await analytics.close()


async def test_specific_answers_and_typed_requests_are_counted(
    engine: Engine, content: Content, db: Database
) -> None:
    analytics = Analytics(db, flush_interval=3600)
    conv = Conversation(engine, language_code="zh")
    conv.command("start")
    for text in ("审核会看离职交接单吗", "稽核會看SWOT分析表嗎", "返回上一步"):
        before = conv.state
        conv.send(text)
        analytics.observe(content, "a", before, conv.history[-1])
    await analytics.flush()
    async with db.sessions() as s:
        rows = {(r.kind, r.key): r.count for r in await s.scalars(select(Stat))}
    assert rows[("passage", "iso20000.audit_focus")] == 2 and rows[("intent", "back")] == 1
    report = (await analytics.totals()).report(content, "zh")
    assert "Specific answers (by step): iso20000.audit_focus 2" in report
    assert "Requests typed: back 1" in report
    await analytics.close()
