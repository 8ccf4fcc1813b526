"""The read side for staff: the lead list (search, filters, sorting, pages) and lead statistics.

Built to stay fast with a million leads: the list reads only the columns it shows, walks an index
in the order it sorts by, and counts matches only up to ``COUNT_CAP``. On SQLite a search of three
or more characters is a substring match in the FTS5 trigram index (``leads_search``, see migration
0004); a shorter one matches the start of the company, the contact's name or the phone number,
through their indexes. PostgreSQL uses ILIKE.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, tzinfo
from typing import Any, TypeVarTuple

import zhconv
from sqlalchemy import (
    ColumnElement,
    Join,
    Select,
    Text,
    and_,
    cast,
    column,
    func,
    literal_column,
    or_,
    select,
    table,
    text,
)
from sqlalchemy.ext.compiler import compiles

from bot.db.engine import Database
from bot.db.models import LEAD_STATUSES, Lead
from bot.prospect import CHANNELS
from bot.text import one_line

Ts = TypeVarTuple("Ts")

SEARCH = table("leads_search", column("rowid"))
"""The FTS5 trigram index of the leads (SQLite; migration 0004)."""
COUNT_CAP = 10_000
PER_PAGE = 25
MAX_QUERY = 100
SORTS = {
    "newest": (Lead.id.desc(),),
    "oldest": (Lead.id.asc(),),
    "updated": (Lead.updated_at.desc(), Lead.id.desc()),
    "company": (Lead.company.asc().nulls_last(), Lead.id.desc()),
    "status": (Lead.status.asc(), Lead.id.desc()),
}
LIST_COLUMNS = (
    Lead.id,
    Lead.reference,
    Lead.kind,
    Lead.channel,
    Lead.status,
    Lead.company,
    Lead.contact_name,
    Lead.phone,
    Lead.city,
    Lead.schemes,
    Lead.source_flow,
    Lead.assigned_to,
    Lead.created_at,
    Lead.updated_at,
    Lead.forgotten_at,
)


@dataclass(frozen=True)
class LeadQuery:
    q: str = ""
    status: str | None = None
    scheme: str | None = None
    kind: str | None = None
    channel: str | None = None
    assigned: str | None = None
    sort: str = "newest"
    page: int = 1
    per_page: int = PER_PAGE

    @classmethod
    def parse(cls, args: dict[str, str], *, schemes: tuple[str, ...] = ()) -> LeadQuery:
        """From untrusted parameters (a query string, a command's words): anything unknown is dropped."""
        status = args.get("status") or None
        scheme = args.get("scheme") or None
        kind = args.get("kind") or None
        channel = args.get("channel") or None
        sort = args.get("sort") or "newest"
        page = args.get("page", "1")
        return cls(
            q=_clean(args.get("q"))[:MAX_QUERY],
            status=status if status in LEAD_STATUSES else None,
            scheme=scheme if scheme in schemes else None,
            kind=kind if kind in ("lead", "enquiry") else None,
            channel=channel if channel in CHANNELS else None,
            assigned=_clean(args.get("assigned"))[:100] or None,
            sort=sort if sort in SORTS else "newest",
            page=max(1, min(int(page), 100_000)) if page.isascii() and page.isdigit() else 1,
        )

    def params(self, **changes: Any) -> dict[str, str]:
        """The query string for this query with some parameters changed (links, pages)."""
        values = {
            "q": self.q,
            "status": self.status or "",
            "scheme": self.scheme or "",
            "kind": self.kind or "",
            "channel": self.channel or "",
            "assigned": self.assigned or "",
            "sort": self.sort if self.sort != "newest" else "",
            "page": str(self.page) if self.page != 1 else "",
        }
        values.update({k: "" if v is None else str(v) for k, v in changes.items()})
        return {k: v for k, v in values.items() if v}


def _clean(value: str | None) -> str:
    """Untrusted text with control characters made spaces, and runs of spaces made one."""
    return one_line(value or "")  # PostgreSQL refuses a NUL in text: the query would fail


@dataclass(frozen=True)
class LeadRow:
    id: int
    reference: str | None
    kind: str
    channel: str
    status: str
    company: str | None
    contact_name: str | None
    phone: str | None
    city: str | None
    schemes: list[str]
    source_flow: str | None
    assigned_to: str | None
    created_at: datetime
    updated_at: datetime
    forgotten_at: datetime | None


@dataclass(frozen=True)
class LeadPage:
    query: LeadQuery
    rows: list[LeadRow]
    total: int
    capped: bool
    """More than ``COUNT_CAP`` match: ``total`` is a lower bound."""

    @property
    def pages(self) -> int:
        return max(1, math.ceil(self.total / self.query.per_page))

    @property
    def has_next(self) -> bool:
        return self.query.page < self.pages

    @property
    def has_prev(self) -> bool:
        return self.query.page > 1


def _like(term: str) -> str:
    return "%" + term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def _variants(q: str) -> list[str]:
    """What was typed, and its Simplified form (Traditional input finds Simplified data)."""
    simplified = zhconv.convert(q, "zh-cn")
    return list(dict.fromkeys([q, simplified]))


def _search(db: Database, q: str) -> ColumnElement[bool]:
    terms = _variants(q)
    if not db.is_sqlite:
        return or_(
            *(
                column.ilike(_like(term), escape="\\")
                for term in terms
                for column in (Lead.company, Lead.contact_name, Lead.phone, Lead.email, Lead.reference)
            )
        )
    # One or two characters (a Chinese surname and name, a short company name): the start of a field.
    conditions: list[ColumnElement[bool]] = []
    for term in terms:
        upper = term + "\U0010ffff"
        for field_ in (Lead.company, Lead.contact_name, Lead.phone):
            conditions.append(and_(field_ >= term, field_ < upper))
    return or_(*conditions)


def _full_text(db: Database, query: LeadQuery) -> bool:
    """Whether the search goes through the trigram index (SQLite, three characters or more)."""
    return db.is_sqlite and len(query.q) >= 3


class _CrossJoin(Join):
    """``a CROSS JOIN b ON ...``: in SQLite, the order of the join is then fixed. The search index
    comes first, so a search is never run once per lead of another index (a status filter...)."""

    inherit_cache = True


@compiles(_CrossJoin, "sqlite")
def _compile_cross_join(element: _CrossJoin, compiler: Any, **kw: Any) -> str:
    kw["asfrom"] = True
    left = compiler.process(element.left, **kw)
    right = compiler.process(element.right, **kw)
    on = compiler.process(element.onclause, **{k: v for k, v in kw.items() if k != "asfrom"})
    return f"{left} CROSS JOIN {right} ON {on}"


def filtered(db: Database, query: LeadQuery, statement: Select[*Ts]) -> Select[*Ts]:
    if query.q and _full_text(db, query):
        # A phrase in the trigram index is a substring match (case-insensitive for ASCII).
        match = " OR ".join('"' + term.replace('"', '""') + '"' for term in _variants(query.q))
        statement = statement.select_from(
            _CrossJoin(SEARCH, Lead.__table__, Lead.id == SEARCH.c.rowid)
        ).where(text("leads_search MATCH :match").bindparams(match=match))
    elif query.q:
        statement = statement.where(_search(db, query.q))
    if query.status:
        statement = statement.where(Lead.status == query.status)
    if query.kind:
        statement = statement.where(Lead.kind == query.kind)
    if query.channel:
        statement = statement.where(Lead.channel == query.channel)
    if query.assigned:
        statement = statement.where(Lead.assigned_to == query.assigned)
    if query.scheme:
        # schemes is a JSON list of ids such as ["iso9001", "three"]: the quoted id is in its text.
        statement = statement.where(cast(Lead.schemes, Text).like(_like(f'"{query.scheme}"'), escape="\\"))
    return statement


def _order(db: Database, query: LeadQuery) -> tuple[Any, ...]:
    if db.is_sqlite and query.q and query.sort in ("newest", "oldest"):
        if _full_text(db, query):  # the index's own order: no sorting of the matches
            rowid = SEARCH.c.rowid
            return (rowid.desc() if query.sort == "newest" else rowid.asc(),)
        # A prefix search: "+" keeps SQLite on the three prefix indexes (then sorts what they
        # found) instead of walking every lead newest first to test each one.
        plus_id: ColumnElement[int] = literal_column("+leads.id")
        return (plus_id.desc() if query.sort == "newest" else plus_id.asc(),)
    return SORTS[query.sort]


async def list_leads(db: Database, query: LeadQuery) -> LeadPage:
    statement = filtered(db, query, select(*LIST_COLUMNS))
    offset = (query.page - 1) * query.per_page
    statement = statement.order_by(*_order(db, query)).offset(offset).limit(query.per_page)
    counted = filtered(db, query, select(Lead.id)).limit(COUNT_CAP + 1).subquery()
    async with db.sessions() as session:
        rows = [LeadRow(**row) for row in (await session.execute(statement)).mappings()]
        total = int(await session.scalar(select(func.count()).select_from(counted)) or 0)
    return LeadPage(query=query, rows=rows, total=min(total, COUNT_CAP), capped=total > COUNT_CAP)


@dataclass
class LeadStats:
    days: list[tuple[date, int]]
    """Leads per day, oldest first, every day of the window (zero included)."""
    weeks: list[tuple[date, int]]
    """Leads per week (starting Monday), oldest first."""
    by_status: dict[str, int]
    by_scheme: dict[str, int] = field(default_factory=dict)
    """Over the window."""
    total: int = 0

    @property
    def peak(self) -> int:
        return max((n for _, n in self.days), default=0)


async def lead_stats(db: Database, *, zone: tzinfo = UTC, days: int = 30, weeks: int = 8) -> LeadStats:
    """Counts for /stats and the dashboard: per day and week in the staff's time zone, per scheme
    over the same window, and by status over all leads."""
    today = datetime.now(zone).date()
    first_week = today - timedelta(days=today.weekday() + 7 * (weeks - 1))
    start_day = min(today - timedelta(days=days - 1), first_week)
    since = datetime.combine(start_day, datetime.min.time(), zone).astimezone(UTC)
    per_day: Counter[date] = Counter()
    per_scheme: Counter[str] = Counter()
    async with db.sessions() as session:
        by_status = dict(
            (await session.execute(select(Lead.status, func.count()).group_by(Lead.status))).all()
        )
        total = int(sum(by_status.values()))
        result = await session.stream(
            select(Lead.created_at, Lead.schemes)
            .where(Lead.created_at >= since)
            .execution_options(yield_per=5000)
        )
        async for created, schemes in result:
            moment = created if created.tzinfo else created.replace(tzinfo=UTC)
            day = moment.astimezone(zone).date()
            per_day[day] += 1
            if day > today - timedelta(days=days):
                per_scheme.update(schemes or [])
    day_list = [(d, per_day[d]) for d in (today - timedelta(days=i) for i in range(days - 1, -1, -1))]
    week_list = []
    for i in range(weeks):
        monday = first_week + timedelta(days=7 * i)
        week_list.append((monday, sum(per_day[monday + timedelta(days=k)] for k in range(7))))
    return LeadStats(
        days=day_list,
        weeks=week_list,
        by_status={s: int(by_status.get(s, 0)) for s in LEAD_STATUSES},
        by_scheme=dict(per_scheme.most_common()),
        total=total,
    )
