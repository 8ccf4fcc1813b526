"""The staff's side of the lead database, on SQLite and PostgreSQL: the list with search, filters,
sorting and pages; changes with their history; figures; dashboard accounts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import update

from bot.db.engine import Database
from bot.db.models import Lead
from bot.leads.browse import LeadQuery
from bot.leads.repository import LeadRepository, LeadSubmission
from bot.prospect import ProspectId
from bot.staff.accounts import FREE_FAILURES, AccountError, StaffAccounts

PEOPLE = [
    # (company, contact, phone, schemes, user)
    ("北京云服务科技有限公司", "王伟", "+8613800138000", ["iso20000"], 1),
    ("上海质量管理咨询有限公司", "李娜", "+8613911112222", ["iso9001"], 2),
    ("ACME Cloud Ltd", "John Smith", "+447700900123", ["iso27001", "iso20000"], 3),
    ("廣州數據中心", "陈静", "+8618622223333", ["three"], 4),
    ("王氏物流", "张三", "+8613600001111", ["iso9001"], 5),
]


async def seed(repo: LeadRepository) -> list[int]:
    ids = []
    for i, (company, contact, phone, schemes, user) in enumerate(PEOPLE):
        saved = await repo.submit(
            LeadSubmission(
                kind="lead" if i % 2 == 0 else "enquiry",
                key=f"{user}:1",
                answers={"company": company, "contact_name": contact, "phone": phone, "schemes": schemes},
                source_flow=schemes[0],
                prospect=ProspectId.telegram(user),
            )
        )
        ids.append(saved.lead_id)
    return ids


def refs(page: object) -> list[str | None]:
    return [row.company for row in page.rows]  # type: ignore[attr-defined]


async def test_search_finds_substrings_names_phones_and_traditional_input(db: Database) -> None:
    repo = LeadRepository(db)
    await seed(repo)
    search = lambda q: repo.search(LeadQuery(q=q))  # noqa: E731
    assert refs(await search("云服务")) == ["北京云服务科技有限公司"]  # inside a company name
    assert refs(await search("cloud")) == ["ACME Cloud Ltd"]  # case-insensitive
    assert refs(await search("0013800")) == ["北京云服务科技有限公司"]  # a piece of the phone number
    assert refs(await search("王伟")) == ["北京云服务科技有限公司"]  # a two-character name
    assert refs(await search("王")) == ["王氏物流", "北京云服务科技有限公司"]  # a surname; newest first
    assert refs(await search("雲服務")) == ["北京云服务科技有限公司"]  # Traditional input, Simplified data
    assert refs(await search("john smith")) == ["ACME Cloud Ltd"]
    assert refs(await search("L000003")) == ["ACME Cloud Ltd"]  # the reference
    assert (await search("不存在的公司")).rows == []
    assert (await search('"%_\\')).rows == []  # quotes and wildcards are literal


async def test_filters_sorting_pages_and_counts(db: Database) -> None:
    repo = LeadRepository(db)
    ids = await seed(repo)
    await repo.set_status(ids[1], "won", actor="web:alice")
    page = await repo.search(LeadQuery())
    assert page.total == 5 and [r.id for r in page.rows] == ids[::-1]
    assert refs(await repo.search(LeadQuery(status="won"))) == ["上海质量管理咨询有限公司"]
    assert refs(await repo.search(LeadQuery(scheme="iso20000"))) == [
        "ACME Cloud Ltd",
        "北京云服务科技有限公司",
    ]
    assert [r.kind for r in (await repo.search(LeadQuery(kind="enquiry"))).rows] == ["enquiry", "enquiry"]
    assert refs(await repo.search(LeadQuery(sort="oldest", per_page=2)))[0] == "北京云服务科技有限公司"
    assert refs(await repo.search(LeadQuery(sort="company", per_page=1))) == ["ACME Cloud Ltd"]
    second = await repo.search(LeadQuery(per_page=2, page=2))
    assert second.total == 5 and second.pages == 3 and second.has_prev and second.has_next
    assert [r.id for r in second.rows] == [ids[2], ids[1]]
    combined = await repo.search(LeadQuery(q="王", scheme="iso9001"))
    assert refs(combined) == ["王氏物流"] and combined.total == 1


def test_untrusted_parameters_are_dropped() -> None:
    query = LeadQuery.parse(
        {
            "q": "  a   b ",
            "status": "hacked",
            "scheme": "x'--",
            "sort": "1;drop",
            "page": "-3",
            "kind": "lead",
        },
        schemes=("iso9001",),
    )
    assert query == LeadQuery(q="a b", kind="lead")
    assert LeadQuery.parse({"page": "99999999999"}).page == 100_000
    assert LeadQuery(q="x", status="new", page=3).params(page=None) == {"q": "x", "status": "new"}


async def test_changes_are_recorded_with_who_and_when(db: Database) -> None:
    repo = LeadRepository(db)
    [lead_id, *_] = await seed(repo)
    await repo.set_status(lead_id, "contacted", actor="web:alice")
    await repo.set_status(lead_id, "contacted", actor="web:alice")  # no change: nothing recorded
    await repo.assign(lead_id, "alice", actor="web:alice")
    await repo.add_note(lead_id, "  客户要求下周二回电  ", actor="tg:900 @bob")
    with pytest.raises(ValueError):
        await repo.add_note(lead_id, "   ", actor="web:alice")
    with pytest.raises(ValueError):
        await repo.set_status(lead_id, "bogus", actor="web:alice")
    events = await repo.events(lead_id)
    assert [(e.kind, e.actor, e.old, e.new) for e in events] == [
        ("note", "tg:900 @bob", None, "客户要求下周二回电"),
        ("assign", "web:alice", None, "alice"),
        ("status", "web:alice", "new", "contacted"),
    ]
    lead = await repo.get(lead_id)
    assert lead is not None and (lead.status, lead.assigned_to) == ("contacted", "alice")
    assert await repo.set_status(10_000, "won") is None
    assert (await repo.by_reference("l000001")) is not None and await repo.by_reference("1") is not None


async def test_search_follows_changes_and_forgetting(db: Database) -> None:
    repo = LeadRepository(db)
    await seed(repo)
    assert refs(await repo.search(LeadQuery(q="质量管理")))
    await repo.forget(ProspectId.telegram(2))
    assert (await repo.search(LeadQuery(q="质量管理"))).rows == []
    assert (await repo.search(LeadQuery(q="李娜"))).rows == []


async def test_stats_per_day_week_scheme_and_status(db: Database) -> None:
    repo = LeadRepository(db)
    ids = await seed(repo)
    async with db.write_sessions() as s, s.begin():
        await s.execute(
            update(Lead).where(Lead.id == ids[0]).values(created_at=datetime.now(UTC) - timedelta(days=3))
        )
        await s.execute(
            update(Lead).where(Lead.id == ids[1]).values(created_at=datetime.now(UTC) - timedelta(days=400))
        )
    await repo.set_status(ids[2], "qualified", actor="x")
    stats = await repo.stats(days=30, weeks=8)
    assert len(stats.days) == 30 and stats.days[-1][1] == 3 and stats.days[-4][1] == 1
    assert sum(n for _, n in stats.weeks) == 4 and len(stats.weeks) == 8
    assert stats.by_status == {"new": 4, "contacted": 0, "qualified": 1, "won": 0, "lost": 0}
    assert stats.total == 5 and stats.peak == 3
    assert stats.by_scheme == {"iso20000": 2, "iso27001": 1, "three": 1, "iso9001": 1}


async def test_accounts_sign_in_lock_and_sessions(db: Database) -> None:
    accounts = StaffAccounts(db)
    with pytest.raises(AccountError):
        await accounts.add("alice", "short")
    with pytest.raises(AccountError):
        await accounts.add("<script>", "long enough password")
    user = await accounts.add("Alice", "correct horse battery")
    assert user.name == "alice" and user.password_hash.startswith("$argon2")
    with pytest.raises(AccountError):
        await accounts.add("alice", "another long password")
    assert (await accounts.sign_in("ALICE", "correct horse battery")).user is not None
    assert (await accounts.sign_in("nobody", "correct horse battery")).user is None
    for _ in range(FREE_FAILURES):
        assert (await accounts.sign_in("alice", "wrong password!")).user is None
    locked = await accounts.sign_in("alice", "correct horse battery")
    assert locked.user is None and locked.locked_until is not None  # locked even with the right one
    await accounts.set_password("alice", "a brand new password")  # an admin resets it: unlocked
    signed = await accounts.sign_in("alice", "a brand new password")
    assert signed.user is not None
    token, csrf = await accounts.open_session(signed.user.id)
    who = await accounts.identify(token)
    assert who is not None and (who.name, who.csrf) == ("alice", csrf)
    assert await accounts.identify(token + "x") is None and await accounts.identify("") is None
    await accounts.close_session(token)
    assert await accounts.identify(token) is None
    assert await accounts.names() == ["alice"]
    assert await accounts.remove("alice") and not await accounts.remove("alice")
