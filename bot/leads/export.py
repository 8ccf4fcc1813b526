"""``python -m bot leads export``: leads as CSV or JSON lines, streamed (flat memory)."""

from __future__ import annotations

import csv
import json
from datetime import datetime
from typing import Any, Literal, TextIO

from sqlalchemy import RowMapping

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
    "telegram_username",
    "telegram_user_id",
    "content_version",
)


def _cell(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat(sep=" ", timespec="seconds")
    return "" if value is None else value


def flat(row: RowMapping) -> dict[str, Any]:
    """One lead as export columns: lists joined, the self-check reduced to its gaps."""
    out = {name: _cell(row[name]) for name in COLUMNS if name in row}
    out["schemes"] = ";".join(row["schemes"] or [])
    out["selfcheck_gaps"] = ";".join(k for k, met in (row["selfcheck"] or {}).items() if met is False)
    return out


async def export_leads(
    repo: LeadRepository,
    out: TextIO,
    *,
    fmt: Format = "csv",
    since: datetime | None = None,
    status: str | None = None,
    bom: bool = False,
) -> int:
    """Write the leads to ``out``; return how many. ``bom``: the byte order mark Excel wants."""
    if bom:
        out.write("\ufeff")
    count = 0
    if fmt == "csv":
        writer = csv.DictWriter(out, fieldnames=COLUMNS, extrasaction="ignore", lineterminator="\r\n")
        writer.writeheader()
        async for row in repo.stream(since=since, status=status):
            writer.writerow(flat(row))
            count += 1
    else:
        async for row in repo.stream(since=since, status=status):
            record = flat(row)
            record["selfcheck"] = row["selfcheck"] or {}
            record["schemes"] = row["schemes"] or []
            out.write(json.dumps(record, ensure_ascii=False, default=str) + "\n")
            count += 1
    out.flush()
    return count
