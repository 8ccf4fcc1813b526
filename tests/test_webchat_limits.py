"""The web chat's rate limits (on a clock the test sets), what they count by, and origins."""

from __future__ import annotations

import pytest

from bot.settings import canonical_origin
from bot.webchat.http import limit_key
from bot.webchat.limits import Buckets, HourlyCap


def test_a_bucket_allows_a_burst_then_its_rate() -> None:
    buckets = Buckets(rate=2.0, burst=3)
    assert [buckets.take("a", now=100.0) for _ in range(4)] == [True, True, True, False]
    assert buckets.take("b", now=100.0)  # another key is not held up
    assert not buckets.take("a", now=100.4)  # 0.8 of a token
    assert buckets.take("a", now=100.5)  # one token back after half a second
    assert not buckets.take("a", now=100.5)
    # A refused attempt does not use up what is coming back.
    assert buckets.take("a", now=101.0)


def test_buckets_stay_bounded_and_forget_only_what_is_full_again() -> None:
    buckets = Buckets(rate=1.0, burst=3, keys=100)
    for i in range(100):
        buckets.take(f"k{i}", now=0.0)
    for _ in range(3):
        buckets.take("flooder", now=9.0)
    assert not buckets.take("flooder", now=9.0)
    for i in range(100, 150):
        buckets.take(f"k{i}", now=10.0)  # past the bound: the full buckets (k0..k99) are dropped
    assert len(buckets._buckets) <= 100 and "k0" not in buckets._buckets
    # The flooder's bucket was not full: it is kept, so sweeping gave it no new burst.
    assert buckets.take("flooder", now=10.0)  # the one token that came back in a second
    assert not buckets.take("flooder", now=10.0)


def test_the_hourly_cap_counts_the_last_hour() -> None:
    cap = HourlyCap(limit=2, window=3600.0)
    assert cap.take("1.2.3.4", now=0.0) and cap.take("1.2.3.4", now=10.0)
    assert not cap.take("1.2.3.4", now=20.0)
    assert cap.take("5.6.7.8", now=20.0)
    assert cap.take("1.2.3.4", now=3601.0)  # the first one is an hour old
    assert not cap.take("1.2.3.4", now=3602.0)


def test_limits_count_an_ipv6_network_as_one_address() -> None:
    assert limit_key("203.0.113.7") == "203.0.113.7"
    assert limit_key("2001:db8:1:2::1") == limit_key("2001:db8:1:2:ffff::9") == "2001:db8:1:2::/64"
    assert limit_key("2001:db8:1:3::1") != limit_key("2001:db8:1:2::1")
    assert limit_key("?") == "?"  # no address known (a Unix socket): counted as it is


@pytest.mark.parametrize(
    ("given", "origin"),
    [
        ("https://WWW.Consultancy.example:443", "https://www.consultancy.example"),
        ("http://shop.example:80/", "http://shop.example"),
        ("http://127.0.0.1:8080", "http://127.0.0.1:8080"),
        ("https://[2001:DB8::1]:8443", "https://[2001:db8::1]:8443"),
        (" https://a.example ", "https://a.example"),
        ("https://a.example/chat", None),
        ("https://a.example?x=1", None),
        ("ftp://a.example", None),
        ("https://user@a.example", None),
        ("https://a.example:99999", None),
        ("null", None),
        ("http://\udcff\udcfe", None),  # bytes of a header that are not UTF-8
        ("https://例子.example", None),  # browsers send the punycode
    ],
)
def test_origins_are_compared_as_browsers_send_them(given: str, origin: str | None) -> None:
    assert canonical_origin(given) == origin
