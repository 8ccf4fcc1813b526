"""The web chat's limits: token buckets per address and per visitor (a flood is refused with a
notice while others are served), and a cap on new sessions per address per hour. Bounded: when
more keys than ``keys`` are held, those idle long enough to be full again are dropped (plain
dicts: a request costs a dictionary lookup, not a cache's bookkeeping)."""

from __future__ import annotations

import time


class Buckets:
    """``rate`` actions a second per key, after a burst of ``burst``."""

    def __init__(self, rate: float, burst: float, *, keys: int = 100_000) -> None:
        self.rate = rate
        self.burst = burst
        self.keys = keys
        self._buckets: dict[str, list[float]] = {}
        """key -> [tokens, when they were counted]"""

    def take(self, key: str, now: float | None = None) -> bool:
        """Whether ``key`` may act now (and count it)."""
        now = time.monotonic() if now is None else now
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= self.keys:
                self._sweep(now)
            bucket = self._buckets[key] = [self.burst, now]
        tokens = min(self.burst, bucket[0] + (now - bucket[1]) * self.rate)
        bucket[1] = now
        if tokens < 1:
            bucket[0] = tokens
            return False
        bucket[0] = tokens - 1
        return True

    def _sweep(self, now: float) -> None:
        """Forget the buckets that are full again (their keys start afresh: nothing is lost);
        if every one is in use, the older half."""
        full = (self.burst - 1) / self.rate  # seconds after which a bucket is full again
        self._buckets = {k: b for k, b in self._buckets.items() if now - b[1] < full}
        if len(self._buckets) >= self.keys:
            keep = list(self._buckets.items())[len(self._buckets) // 2 :]
            self._buckets = dict(keep)


class HourlyCap:
    """At most ``limit`` new things per key in the last hour."""

    def __init__(self, limit: int, *, keys: int = 100_000, window: float = 3600.0) -> None:
        self.limit = limit
        self.window = window
        self.keys = keys
        self._seen: dict[str, list[float]] = {}

    def take(self, key: str, now: float | None = None) -> bool:
        now = time.monotonic() if now is None else now
        if key not in self._seen and len(self._seen) >= self.keys:
            self._seen = {k: t for k, t in self._seen.items() if t and t[-1] > now - self.window}
        times = [t for t in self._seen.get(key, ()) if t > now - self.window]
        if len(times) >= self.limit:
            self._seen[key] = times
            return False
        times.append(now)
        self._seen[key] = times
        return True
