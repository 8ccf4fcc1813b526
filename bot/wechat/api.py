"""The WeChat API the bot calls: customer-service messages (客服消息), the custom menu, and the
access_token they need, over the project's async HTTP client (aiohttp).

The token comes from ``cgi-bin/stable_token``: it returns the same token while that is valid, so
replicas that ask at once do not invalidate each other's (the classic ``cgi-bin/token`` would).
It is kept where every replica reads it (``TokenCache``: Redis, else the database), and fetched
by one replica at a time, ``EARLY`` seconds before it expires. An error that says the token is
bad (40001, 42001, 40014) drops it and the call is made once more with a new one (forced only if
WeChat hands the same one back). 45015 (the user's 48-hour window is closed) and 45047 (its
messages are used up) are not retried: ``Undeliverable``. -1 (busy), 5xx and a request that never
reached WeChat are retried with a growing pause; a customer-service message whose fate is unknown
(a timeout) is not, since sending it twice would show it twice. A failed fetch of the token gives
its lease back. Sending is paced (``rate`` calls a second in all).
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Any, Protocol

import aiohttp
from redis.asyncio import Redis
from sqlalchemy import update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from bot import jsonio
from bot.db.engine import Database
from bot.db.models import WeChatToken

log = logging.getLogger(__name__)

EARLY = 300
"""Seconds before its expiry a token is renewed."""
BAD_TOKEN = frozenset({40001, 40014, 42001})
CLOSED = frozenset({45015, 45047})
"""45015: outside the 48-hour window; 45047: the window's messages are used up."""
BUSY = -1
NOT_JSON = -2
UNKNOWN = -3
"""A call whose fate is unknown (a timeout after the request went): not retried."""
ATTEMPTS = 4
REFRESH_LEASE = 10
"""Seconds one replica holds the right to fetch a token."""


class WeChatError(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class Undeliverable(WeChatError):
    """The user cannot be sent this now (45015, 45047): not retried."""


@dataclass(frozen=True, slots=True)
class Token:
    value: str
    expires_at: int
    """Unix seconds."""

    def fresh(self, now: float) -> bool:
        return bool(self.value) and now < self.expires_at - EARLY


class TokenCache(Protocol):
    """Where every replica reads the token, and who may fetch the next one."""

    async def get(self) -> Token | None: ...

    async def put(self, token: Token) -> None: ...

    async def claim(self) -> bool:
        """True: this replica fetches the next token (the others wait for it for a while)."""
        ...

    async def drop(self, value: str) -> None:
        """Forget the token ``value`` (WeChat refused it), unless another has replaced it."""
        ...

    async def release(self) -> None:
        """Give the lease back (this replica's fetch failed)."""
        ...


class MemoryTokens:
    """One process's own cache (no database, no Redis: the terminal, a test)."""

    def __init__(self) -> None:
        self.token: Token | None = None
        self._lease = 0.0

    async def get(self) -> Token | None:
        return self.token

    async def put(self, token: Token) -> None:
        self.token = token
        self._lease = 0.0

    async def claim(self) -> bool:
        now = time.time()
        if now < self._lease:
            return False
        self._lease = now + REFRESH_LEASE
        return True

    async def drop(self, value: str) -> None:
        if self.token is not None and self.token.value == value:
            self.token = None

    async def release(self) -> None:
        self._lease = 0.0


class RedisTokens:
    """In Redis, shared by every replica; the lease is a key set only if absent."""

    def __init__(self, redis: Redis, app_id: str, prefix: str = "certbot") -> None:
        self.redis = redis
        self.key = f"{prefix}:wechat:token:{app_id}"
        self.lease = f"{prefix}:wechat:refreshing:{app_id}"

    async def get(self) -> Token | None:
        raw = await self.redis.get(self.key)
        if not raw:
            return None
        value, _, expires = (raw.decode() if isinstance(raw, bytes) else str(raw)).rpartition(" ")
        return Token(value, int(expires)) if value and expires.isdigit() else None

    async def put(self, token: Token) -> None:
        ttl = max(1, token.expires_at - int(time.time()))
        await self.redis.set(self.key, f"{token.value} {token.expires_at}", ex=ttl)
        await self.redis.delete(self.lease)

    async def claim(self) -> bool:
        return bool(await self.redis.set(self.lease, "1", nx=True, ex=REFRESH_LEASE))

    async def drop(self, value: str) -> None:
        current = await self.get()
        if current is not None and current.value == value:
            await self.redis.delete(self.key)

    async def release(self) -> None:
        await self.redis.delete(self.lease)


class DatabaseTokens:
    """In the database (``wechat_tokens``); the lease is a conditional update (one row wins)."""

    def __init__(self, db: Database, app_id: str) -> None:
        self.db = db
        self.app_id = app_id

    async def get(self) -> Token | None:
        async with self.db.sessions() as s:
            row = await s.get(WeChatToken, self.app_id)
        return Token(row.token, row.expires_at) if row is not None and row.token else None

    def _ensure(self, s: Session) -> None:
        """The account's row exists (made once, whoever comes first)."""
        insert = pg_insert if s.get_bind().dialect.name == "postgresql" else sqlite_insert
        s.execute(
            insert(WeChatToken)
            .values(app_id=self.app_id, token="", expires_at=0, refreshing_until=0)
            .on_conflict_do_nothing(index_elements=["app_id"])
        )

    async def put(self, token: Token) -> None:
        def work(s: Session) -> None:
            self._ensure(s)
            s.execute(
                update(WeChatToken)
                .where(WeChatToken.app_id == self.app_id)
                .values(token=token.value, expires_at=token.expires_at, refreshing_until=0)
            )

        await self.db.run_write(work)

    async def claim(self) -> bool:
        now = int(time.time())

        def work(s: Session) -> bool:
            self._ensure(s)
            won = s.execute(
                update(WeChatToken)
                .where(WeChatToken.app_id == self.app_id, WeChatToken.refreshing_until < now)
                .values(refreshing_until=now + REFRESH_LEASE)
            )
            return bool(getattr(won, "rowcount", 0))

        return await self.db.run_write(work)

    async def drop(self, value: str) -> None:
        def work(s: Session) -> None:
            s.execute(
                update(WeChatToken)
                .where(WeChatToken.app_id == self.app_id, WeChatToken.token == value)
                .values(token="", expires_at=0)
            )

        await self.db.run_write(work)

    async def release(self) -> None:
        def work(s: Session) -> None:
            s.execute(update(WeChatToken).where(WeChatToken.app_id == self.app_id).values(refreshing_until=0))

        await self.db.run_write(work)


class Pace:
    """At most ``rate`` calls a second (a burst of ``burst``), in arrival order."""

    def __init__(self, rate: float, burst: int = 10) -> None:
        self.rate = rate
        self.burst = burst
        self.allowance = float(burst)
        self.last = time.monotonic()
        self._lock = asyncio.Lock()

    async def wait(self) -> None:
        async with self._lock:
            now = time.monotonic()
            self.allowance = min(self.burst, self.allowance + (now - self.last) * self.rate)
            self.last = now
            if self.allowance < 1:
                await asyncio.sleep((1 - self.allowance) / self.rate)
                self.allowance, self.last = 1.0, time.monotonic()
            self.allowance -= 1


class WeChatAPI:
    """The calls the bot makes to WeChat (``base``: the public API, or a local fake)."""

    def __init__(
        self,
        base: str,
        app_id: str,
        secret: str,
        tokens: TokenCache,
        *,
        rate: float = 50.0,
        base_pause: float = 0.5,
        timeout: float = 5.0,
    ) -> None:
        self.base = base.rstrip("/")
        self.app_id = app_id
        self.secret = secret
        self.tokens = tokens
        self.pace = Pace(rate)
        self.base_pause = base_pause
        self.timeout = aiohttp.ClientTimeout(total=timeout)
        self._http: aiohttp.ClientSession | None = None
        self._fetching: asyncio.Lock = asyncio.Lock()
        self.calls = 0
        """Calls made to WeChat (the token's included)."""

    @property
    def http(self) -> aiohttp.ClientSession:
        if self._http is None or self._http.closed:
            self._http = aiohttp.ClientSession(timeout=self.timeout, json_serialize=jsonio.dumps)
        return self._http

    async def close(self) -> None:
        if self._http is not None:
            await self._http.close()

    # --- the token ---------------------------------------------------------------------------------

    async def token(self, *, refused: str | None = None) -> str:
        """A valid token: the shared one, or a new one fetched by one replica. ``refused``: the
        token WeChat just refused (it is dropped, and a new one forced if WeChat returns it)."""
        if refused is not None:
            await self.tokens.drop(refused)
        deadline = time.monotonic() + REFRESH_LEASE + 2
        while True:
            now = time.time()
            current = await self.tokens.get()
            if current is not None and current.fresh(now) and current.value != refused:
                return current.value
            async with self._fetching:  # one fetch per process; other replicas: the lease
                current = await self.tokens.get()
                if current is not None and current.fresh(time.time()) and current.value != refused:
                    return current.value
                if await self.tokens.claim() or time.monotonic() > deadline:
                    current = await self.tokens.get()  # another replica's, put just before
                    if current is not None and current.fresh(time.time()) and current.value != refused:
                        return current.value
                    try:
                        fetched = await self._fetch(force=False)
                        if fetched.value == refused:
                            fetched = await self._fetch(force=True)
                    except BaseException:
                        await self.tokens.release()  # the next call may try at once
                        raise
                    await self.tokens.put(fetched)
                    return fetched.value
            await asyncio.sleep(0.2)  # another replica is fetching it

    async def _fetch(self, *, force: bool) -> Token:
        body = {"grant_type": "client_credential", "appid": self.app_id, "secret": self.secret}
        if force:
            body["force_refresh"] = True  # type: ignore[assignment]
        data = await self._post("/cgi-bin/stable_token", body, token=None)
        value, expires_in = data.get("access_token"), data.get("expires_in")
        if not isinstance(value, str) or not isinstance(expires_in, int):
            raise WeChatError(-2, "stable_token: no access_token in the answer")
        log.info("wechat: a new access_token, valid %d s%s", expires_in, " (forced)" if force else "")
        return Token(value, int(time.time()) + expires_in)

    # --- calls ---------------------------------------------------------------------------------------

    async def call(self, path: str, body: dict[str, Any], *, idempotent: bool = True) -> dict[str, Any]:
        """POST ``body`` to ``path`` with the token; a refused token renewed once (the call was
        refused, not carried out: it is made again)."""
        token = await self.token()
        try:
            return await self._post(path, body, token=token, idempotent=idempotent)
        except WeChatError as e:
            if e.code not in BAD_TOKEN:
                raise
            log.warning("wechat: the access_token was refused (%s); fetching a new one", e.code)
        return await self._post(path, body, token=await self.token(refused=token), idempotent=idempotent)

    async def _post(
        self, path: str, body: dict[str, Any], *, token: str | None, idempotent: bool = True
    ) -> dict[str, Any]:
        """POST and read WeChat's answer; -1 and HTTP 5xx tried again with a growing pause, and
        so is a request that never reached WeChat (no connection). A call that may have been
        carried out (a timeout, a connection dropped after the request went) is tried again only
        if doing it twice does no harm (``idempotent``): a customer-service message is not."""
        params = {"access_token": token} if token is not None else None
        pause = self.base_pause
        for attempt in range(1, ATTEMPTS + 1):
            await self.pace.wait()
            self.calls += 1
            try:
                async with self.http.post(self.base + path, params=params, json=body) as response:
                    if response.status >= 500:
                        raise WeChatError(BUSY, f"HTTP {response.status}")
                    raw = await response.read()
                try:
                    data = jsonio.loads(raw)
                except ValueError:
                    data = None
                if not isinstance(data, dict):
                    raise WeChatError(NOT_JSON, f"not an answer of WeChat's: {raw[:80]!r}")
                code = int(data.get("errcode") or 0)
                if code == 0:
                    return data
                error = str(data.get("errmsg", ""))[:200]
                if code in CLOSED:
                    raise Undeliverable(code, error)
                raise WeChatError(code, error)
            except (aiohttp.ClientError, TimeoutError, WeChatError) as e:
                unsent = isinstance(e, aiohttp.ClientConnectorError)
                retry = (
                    (isinstance(e, WeChatError) and e.code == BUSY)
                    or unsent
                    or (idempotent and not isinstance(e, WeChatError))
                )
                if not retry or attempt == ATTEMPTS:
                    if isinstance(e, WeChatError):
                        raise
                    raise WeChatError(BUSY if unsent else UNKNOWN, f"{type(e).__name__}: {e}") from e
                log.info("wechat: %s failed (%s); again in %.1f s", path, e, pause)
                await asyncio.sleep(pause)
                pause *= 2
        raise AssertionError("unreachable")

    async def send_text(self, openid: str, text: str) -> None:
        """A customer-service text message (客服消息)."""
        body = {"touser": openid, "msgtype": "text", "text": {"content": text}}
        await self.call("/cgi-bin/message/custom/send", body, idempotent=False)

    async def create_menu(self, menu: dict[str, Any]) -> None:
        """Publish the custom menu (自定义菜单)."""
        await self.call("/cgi-bin/menu/create", menu)
