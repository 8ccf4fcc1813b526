"""What the web chat's handlers share about HTTP: the pages' security policy and who is asking."""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

from aiohttp import web

PAGE_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
"""The chat's own pages: nothing inline, nothing from elsewhere."""

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def client_address(request: web.Request, proxies: Sequence[Network]) -> str:
    """The browser's address: the peer's, or the one our reverse proxy forwards for it."""
    peer = request.remote or "?"
    forwarded = request.headers.get("X-Forwarded-For", "")
    if forwarded and proxies:
        try:
            address = ipaddress.ip_address(peer)
        except ValueError:
            return peer
        if any(address in network for network in proxies):
            return forwarded.split(",")[-1].strip()[:64] or peer
    return peer
