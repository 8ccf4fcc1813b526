"""Working hours: when consultants answer live chats, and when the next opening is."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta, tzinfo

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


@dataclass(frozen=True)
class WorkingHours:
    spans: tuple[tuple[int, time, time], ...]
    """(weekday 0=Monday, opens, closes)."""
    zone: tzinfo = UTC

    @classmethod
    def parse(cls, spec: str, zone: tzinfo = UTC) -> WorkingHours:
        """``mon-fri 09:00-18:00; sat 10:00-12:00`` (``always`` for round the clock)."""
        spans: list[tuple[int, time, time]] = []
        if spec.strip().lower() == "always":
            return cls(tuple((d, time(0), time.max) for d in range(7)), zone)
        for part in filter(None, (p.strip() for p in spec.lower().split(";"))):
            try:
                days, hours = part.split()
                first, _, last = days.partition("-")
                start, end = (time.fromisoformat(h) for h in hours.split("-"))
                a, b = DAYS.index(first), DAYS.index(last or first)
            except ValueError:
                raise ValueError(
                    f"working hours: cannot read {part!r} (e.g. 'mon-fri 09:00-18:00')"
                ) from None
            if end <= start:
                raise ValueError(f"working hours: {part!r} closes before it opens")
            days_in = range(a, b + 1) if a <= b else [*range(a, 7), *range(0, b + 1)]
            spans += [(d, start, end) for d in days_in]
        if not spans:
            raise ValueError("working hours: none given (use 'always' for round the clock)")
        return cls(tuple(sorted(spans)), zone)

    def is_open(self, moment: datetime) -> bool:
        local = moment.astimezone(self.zone)
        return any(d == local.weekday() and a <= local.time() < b for d, a, b in self.spans)

    def next_opening(self, moment: datetime) -> datetime:
        """When consultants are next available (``moment`` itself when open now)."""
        if self.is_open(moment):
            return moment
        local = moment.astimezone(self.zone)
        for ahead in range(8):
            day = (local + timedelta(days=ahead)).date()
            for d, start, _ in self.spans:
                opening = datetime.combine(day, start, self.zone)
                if d == day.weekday() and opening > local:
                    return opening
        raise AssertionError("no opening within a week")  # parse() guarantees one
