"""``python -m bot leads export``: leads as CSV or JSON lines, streamed (flat memory)."""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any, Literal, TextIO

from sqlalchemy import RowMapping

from bot.leads.browse import LeadQuery
from bot.leads.repository import LeadRepository

Format = Literal["csv", "jsonl"]

COLUMNS = (
    "reference",
    "kind",
    "status",
    "created_at",
    "updated_at",
    "company",
    "contact_name",
    "phone",
    "email",
    "city",
    "headcount",
    "sites",
    "schemes",
    "timeline",
    "note",
    "question",
    "source_flow",
    "selfcheck_gaps",
    "assigned_to",
    "locale",
    "channel",
    "handle",
    "external_id",
    "content_version",
)


FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
"""A cell starting with one of these may run as a spreadsheet formula (OWASP's list)."""
E164 = re.compile(r"\+\d{6,15}")
"""A phone number as the bot stores it: kept as is (digits after the + cannot be a formula)."""


def _cell(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat(sep=" ", timespec="seconds")
    return "" if value is None else value


def neutralised(value: Any) -> Any:
    """A text kept from running as a spreadsheet formula: a leading ' before = + - @ tab or CR."""
    if isinstance(value, str) and value.startswith(FORMULA_START):
        return "'" + value
    return value


def flat(row: RowMapping) -> dict[str, Any]:
    """One lead as export columns: lists joined, the self-check reduced to its gaps, and every text
    kept from running as a spreadsheet formula (any of it may have been typed by a prospect, or
    by staff); only a phone number that is a valid E.164 value keeps its leading +."""
    out = {name: _cell(row[name]) for name in COLUMNS if name in row}
    out["schemes"] = ";".join(row["schemes"] or [])
    out["selfcheck_gaps"] = ";".join(k for k, met in (row["selfcheck"] or {}).items() if met is False)
    return {
        name: value if name == "phone" and _is_e164(value) else neutralised(value)
        for name, value in out.items()
    }


def _is_e164(value: Any) -> bool:
    return isinstance(value, str) and E164.fullmatch(value) is not None


async def export_chunks(
    repo: LeadRepository,
    *,
    fmt: Format = "csv",
    since: datetime | None = None,
    status: str | None = None,
    query: LeadQuery | None = None,
    bom: bool = False,
    rows_per_chunk: int = 500,
) -> AsyncIterator[tuple[str, int]]:
    """The export as text chunks with the number of leads in each, for a file or an HTTP stream.
    ``bom``: the byte order mark Excel wants."""
    buffer = io.StringIO()
    if bom:
        buffer.write("\ufeff")
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS, extrasaction="ignore", lineterminator="\r\n")
    if fmt == "csv":
        writer.writeheader()
    count = 0
    async for row in repo.stream(since=since, status=status, query=query):
        record = flat(row)
        if fmt == "csv":
            writer.writerow(record)
        else:
            record["selfcheck"] = row["selfcheck"] or {}
            record["schemes"] = row["schemes"] or []
            buffer.write(json.dumps(record, ensure_ascii=False, default=str) + "\n")
        count += 1
        if count == rows_per_chunk:
            yield buffer.getvalue(), count
            buffer.seek(0)
            buffer.truncate()
            count = 0
    if buffer.tell() or count:
        yield buffer.getvalue(), count


async def export_leads(
    repo: LeadRepository,
    out: TextIO,
    *,
    fmt: Format = "csv",
    since: datetime | None = None,
    status: str | None = None,
    query: LeadQuery | None = None,
    bom: bool = False,
) -> int:
    """Write the leads to ``out``; return how many."""
    total = 0
    async for chunk, count in export_chunks(repo, fmt=fmt, since=since, status=status, query=query, bom=bom):
        out.write(chunk)
        total += count
    out.flush()
    return total
