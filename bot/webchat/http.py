"""What the web chat's handlers share about HTTP: the pages' security policy, who is asking, and
where they are (behind the reverse proxy that ends TLS)."""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

from aiohttp import web

from bot.settings import canonical_origin

PAGE_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
"""The chat's own pages: nothing inline, nothing from elsewhere."""

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def _via_proxy(request: web.Request, proxies: Sequence[Network]) -> bool:
    """Whether the request came through one of our reverse proxies (its X-Forwarded-* are true)."""
    if not proxies:
        return False
    try:
        address = ipaddress.ip_address(request.remote or "")
    except ValueError:
        return False
    return any(address in network for network in proxies)


def client_address(request: web.Request, proxies: Sequence[Network]) -> str:
    """The browser's address: the peer's, or the one our reverse proxy forwards for it."""
    peer = request.remote or "?"
    forwarded = request.headers.get("X-Forwarded-For", "")
    if forwarded and _via_proxy(request, proxies):
        return forwarded.split(",")[-1].strip()[:64] or peer
    return peer


def limit_key(address: str) -> str:
    """What the limits count by: an IPv4 address, or an IPv6 address's /64 (every subscriber holds
    at least one, so one client may use 2^64 addresses)."""
    if ":" not in address:
        return address
    try:
        network = ipaddress.IPv6Network((address, 64), strict=False)
    except ValueError:
        return address
    return str(network)


def own_origin(request: web.Request, proxies: Sequence[Network]) -> str:
    """The origin the browser sees this server at: behind our reverse proxy (which ends TLS), its
    X-Forwarded-Proto and X-Forwarded-Host; otherwise the request's own scheme and host."""
    scheme, host = request.scheme, request.host
    if _via_proxy(request, proxies):
        scheme = request.headers.get("X-Forwarded-Proto", "").split(",")[0].strip() or scheme
        host = request.headers.get("X-Forwarded-Host", "").split(",")[0].strip() or host
    return canonical_origin(f"{scheme}://{host}") or ""
