"""Web dashboard accounts and sign-in sessions.

Passwords are argon2id hashes (argon2-cffi). Repeated failures lock the account for a while,
growing with each further failure; an unknown name costs as much time as a known one. A session
cookie holds a random token; only its SHA-256 is stored, with the session's CSRF token.
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from bot.db.engine import Database
from bot.db.models import StaffUser, WebSession, utcnow

MIN_PASSWORD = 10
FREE_FAILURES = 5
"""Failures allowed before the account locks."""
BASE_LOCK = timedelta(seconds=30)
MAX_LOCK = timedelta(minutes=15)
_MAX_DOUBLINGS = 10
"""BASE_LOCK * 2**10 is well past MAX_LOCK already."""
SESSION_DAYS = 7
NAME_CHARS = set("abcdefghijklmnopqrstuvwxyz0123456789._-")

_hasher = PasswordHasher()
_DUMMY = _hasher.hash("an unused password, for timing")


class AccountError(ValueError):
    pass


def check_name(name: str) -> str:
    name = name.strip().lower()
    if not 2 <= len(name) <= 64 or not set(name) <= NAME_CHARS:
        raise AccountError("a name is 2–64 characters: letters a–z, digits, '.', '_' or '-'")
    return name


def check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise AccountError(f"a password has at least {MIN_PASSWORD} characters")


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class SignIn:
    user: StaffUser | None
    locked_until: datetime | None = None
    """Set when the account is locked after repeated failures (the password was not checked)."""


@dataclass(frozen=True)
class _Attempt:
    """A sign-in attempt reserved on an account (already counted as a failure)."""

    user_id: int
    password_hash: str | None
    """The hash to check the password against; None when the account is locked."""
    locked_until: datetime | None


@dataclass(frozen=True)
class WebIdentity:
    user_id: int
    name: str
    csrf: str


class StaffAccounts:
    def __init__(self, db: Database) -> None:
        self.db = db
        self._unknown: dict[str, tuple[int, datetime | None]] = {}
        """Failures on names that do not exist, counted as for accounts (nothing tells them apart)."""

    async def add(self, name: str, password: str) -> StaffUser:
        name = check_name(name)
        check_password(password)
        hashed = await asyncio.to_thread(_hasher.hash, password)

        def work(session: Session) -> StaffUser:
            if session.scalar(select(StaffUser).where(StaffUser.name == name)) is not None:
                raise AccountError(f"{name} already exists")
            user = StaffUser(name=name, password_hash=hashed, active=True, failed_logins=0)
            session.add(user)
            return user

        return await self.db.run_write(work)

    async def set_password(self, name: str, password: str) -> None:
        check_password(password)
        key = check_name(name)
        hashed = await asyncio.to_thread(_hasher.hash, password)

        def work(session: Session) -> None:
            user = session.scalar(select(StaffUser).where(StaffUser.name == key))
            if user is None:
                raise AccountError(f"no account {name}")
            user.password_hash = hashed
            user.failed_logins = 0
            user.locked_until = None
            session.execute(delete(WebSession).where(WebSession.user_id == user.id))

        await self.db.run_write(work)

    async def remove(self, name: str) -> bool:
        stmt = delete(StaffUser).where(StaffUser.name == check_name(name))
        result = await self.db.run_write(lambda session: session.execute(stmt))
        return bool(result.rowcount)  # type: ignore[attr-defined]

    async def names(self) -> list[str]:
        async with self.db.sessions() as session:
            return list(await session.scalars(select(StaffUser.name).order_by(StaffUser.name)))

    async def sign_in(self, name: str, password: str) -> SignIn:
        """Check a name and password. A name that does not exist is answered exactly as an
        existing one: the same time, and the same lock after repeated failures.

        The attempt is reserved first, in one write transaction (the row locked): a locked account
        is refused there, and otherwise the attempt is counted as a failure in advance (locking the
        account if it is one too many), before the password is checked. So however many attempts
        run at once, at most ``FREE_FAILURES`` passwords are checked, and one per lock period after
        that. The hash is checked in a thread (it takes tens of milliseconds, on purpose), outside
        any transaction; only a success writes again (clearing the failures)."""
        now = utcnow()
        key = name.strip().lower()[:64]

        def reserve(session: Session) -> _Attempt | None:
            user = session.scalar(select(StaffUser).where(StaffUser.name == key).with_for_update())
            if user is None or not user.active:
                return None
            if user.locked_until is not None and _aware(user.locked_until) > now:
                return _Attempt(user.id, None, _aware(user.locked_until))
            user.failed_logins += 1
            user.locked_until = _lock_after(user.failed_logins, now)
            return _Attempt(user.id, user.password_hash, user.locked_until)

        attempt = await self.db.run_write(reserve)
        if attempt is None:
            refused = self._unknown_attempt(key, now)
            await asyncio.to_thread(_verify, _DUMMY, password)
            return refused
        if attempt.password_hash is None:  # locked: the password is not checked
            await asyncio.to_thread(_verify, _DUMMY, password)
            return SignIn(None, locked_until=attempt.locked_until)
        hashed = attempt.password_hash
        if not await asyncio.to_thread(_verify, hashed, password):
            return SignIn(None, locked_until=attempt.locked_until)  # counted already
        rehashed = None
        if _hasher.check_needs_rehash(hashed):
            rehashed = await asyncio.to_thread(_hasher.hash, password)

        def succeed(session: Session) -> SignIn:
            current = session.get(StaffUser, attempt.user_id, with_for_update=True)
            if current is None or not current.active or current.password_hash != hashed:
                return SignIn(None)  # removed, disabled or given a new password meanwhile
            current.failed_logins = 0
            current.locked_until = None
            current.last_login_at = now
            if rehashed is not None:
                current.password_hash = rehashed
            return SignIn(current)

        return await self.db.run_write(succeed)

    def _unknown_attempt(self, key: str, now: datetime) -> SignIn:
        """As ``reserve`` for a name that does not exist (or a disabled account): refused while
        locked, otherwise counted as a failure (all it can be), locking as an account would."""
        failures, locked_until = self._unknown.get(key, (0, None))
        if locked_until is not None and locked_until > now:
            return SignIn(None, locked_until=locked_until)
        if len(self._unknown) > 10_000:
            self._unknown.clear()
        failures += 1
        locked_until = _lock_after(failures, now)
        self._unknown[key] = (failures, locked_until)
        return SignIn(None, locked_until=locked_until)

    async def open_session(self, user_id: int) -> tuple[str, str]:
        """A new session: (cookie token, CSRF token)."""
        token, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        now = utcnow()
        web_session = WebSession(
            token_hash=_digest(token),
            user_id=user_id,
            csrf=csrf,
            created_at=now,
            expires_at=now + timedelta(days=SESSION_DAYS),
        )

        def work(session: Session) -> None:
            session.execute(delete(WebSession).where(WebSession.expires_at < now))
            session.add(web_session)

        await self.db.run_write(work)
        return token, csrf

    async def identify(self, token: str) -> WebIdentity | None:
        if not token or len(token) > 100:
            return None
        async with self.db.sessions() as session:
            row = (
                await session.execute(
                    select(WebSession.csrf, WebSession.expires_at, StaffUser.id, StaffUser.name)
                    .join(StaffUser, StaffUser.id == WebSession.user_id)
                    .where(WebSession.token_hash == _digest(token), StaffUser.active.is_(True))
                )
            ).first()
        if row is None or _aware(row.expires_at) <= utcnow():
            return None
        return WebIdentity(user_id=row.id, name=row.name, csrf=row.csrf)

    async def close_session(self, token: str) -> None:
        stmt = delete(WebSession).where(WebSession.token_hash == _digest(token))
        await self.db.run_write(lambda session: session.execute(stmt))


def _lock_after(failures: int, now: datetime) -> datetime | None:
    """The end of the lock after this many failures: none for the first ``FREE_FAILURES - 1``,
    then ``BASE_LOCK`` doubling with each further failure, up to ``MAX_LOCK``. (The exponent is
    capped: an unbounded one overflows ``timedelta`` after a few dozen failures.)"""
    over = failures - FREE_FAILURES
    if over < 0:
        return None
    return now + min(MAX_LOCK, BASE_LOCK * (1 << min(over, _MAX_DOUBLINGS)))


def _verify(hashed: str, password: str) -> bool:
    try:
        return _hasher.verify(hashed, password)
    except (VerificationError, InvalidHashError):
        return False


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
