"""The web chat's limits: token buckets per address and per visitor (a flood is refused with a
notice while others are served), and a cap on new sessions per address per hour. Bounded: the
buckets of addresses and visitors not seen for a while are dropped."""

from __future__ import annotations

import time
from dataclasses import dataclass

from cachetools import TTLCache


@dataclass(slots=True)
class _Bucket:
    tokens: float
    at: float


class Buckets:
    """``rate`` actions a second per key, after a burst of ``burst``."""

    def __init__(self, rate: float, burst: float, *, keys: int = 100_000, idle: float = 600.0) -> None:
        self.rate = rate
        self.burst = burst
        self._buckets: TTLCache[str, _Bucket] = TTLCache(maxsize=keys, ttl=idle)

    def take(self, key: str, now: float | None = None) -> bool:
        """Whether ``key`` may act now (and count it)."""
        now = time.monotonic() if now is None else now
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = _Bucket(self.burst, now)
        bucket.tokens = min(self.burst, bucket.tokens + (now - bucket.at) * self.rate)
        bucket.at = now
        if bucket.tokens < 1:
            return False
        bucket.tokens -= 1
        return True


class HourlyCap:
    """At most ``limit`` new things per key in the last hour."""

    def __init__(self, limit: int, *, keys: int = 100_000, window: float = 3600.0) -> None:
        self.limit = limit
        self.window = window
        self._seen: TTLCache[str, list[float]] = TTLCache(maxsize=keys, ttl=window)

    def take(self, key: str, now: float | None = None) -> bool:
        now = time.monotonic() if now is None else now
        times = [t for t in self._seen.get(key, []) if t > now - self.window]
        if len(times) >= self.limit:
            self._seen[key] = times
            return False
        times.append(now)
        self._seen[key] = times
        return True
