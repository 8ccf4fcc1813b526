"""The sign-in limits hold: the account lock never overflows, and neither the account lock nor the
per-address limit can be raced by attempts made at once (over real HTTP, on SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
import re
import threading
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pytest
from aiohttp import ClientResponse
from aiohttp.test_utils import TestClient, TestServer
from argon2 import PasswordHasher
from sqlalchemy import update

import bot.staff.accounts as accounts_module
from bot.content import Content
from bot.db.engine import Database
from bot.db.models import StaffUser, utcnow
from bot.leads.repository import LeadRepository
from bot.settings import Settings
from bot.staff.accounts import FREE_FAILURES, MAX_LOCK, SignIn, StaffAccounts, _lock_after
from bot.web.app import IP_FAILURES, build_web_app

PASSWORD = "correct horse battery"
WRONG = "not the password"
ACCOUNT_LOCKED = "失败次数过多，请在"
ADDRESS_LIMITED = "此地址失败次数过多"


@pytest.fixture(autouse=True)
def quick_hashes(monkeypatch: pytest.MonkeyPatch) -> None:
    """Real argon2, with a small cost: these tests make hundreds of attempts (a check at the
    default cost takes tens of milliseconds, far more on a busy machine)."""
    hasher = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    monkeypatch.setattr(accounts_module, "_hasher", hasher)
    monkeypatch.setattr(accounts_module, "_DUMMY", hasher.hash("an unused password, for timing"))


@dataclass
class Checks:
    """The passwords checked against a real hash (not the dummy one), in the order checked."""

    passwords: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __len__(self) -> int:
        return len(self.passwords)


@pytest.fixture
def checks(monkeypatch: pytest.MonkeyPatch) -> Checks:
    seen = Checks()
    verify = accounts_module._verify

    def counting(hashed: str, password: str) -> bool:
        if hashed != accounts_module._DUMMY:
            with seen.lock:
                seen.passwords.append(password)
        return verify(hashed, password)

    monkeypatch.setattr(accounts_module, "_verify", counting)
    return seen


class Web:
    """The dashboard over HTTP; each attempt may come from an address of its own (X-Forwarded-For
    from a trusted proxy), so that the per-address limit stays out of the way of the account lock."""

    def __init__(self, client: TestClient, accounts: StaffAccounts, db: Database) -> None:
        self.client, self.accounts, self.db = client, accounts, db
        self.token = ""

    async def start(self) -> None:
        page = await self.client.get("/login")
        found = re.search(r'name="csrf" value="([^"]+)"', await page.text())
        assert found
        self.token = found.group(1)  # the login cookie now holds it too, for every attempt below

    async def login(
        self, name: str = "alice", password: str = WRONG, address: str | None = None
    ) -> ClientResponse:
        headers = {"X-Forwarded-For": address} if address else {}
        form = {"csrf": self.token, "name": name, "password": password}
        response = await self.client.post("/login", data=form, headers=headers, allow_redirects=False)
        await response.read()
        return response

    async def at_once(self, *attempts: dict[str, str]) -> list[tuple[int, str]]:
        responses = await asyncio.gather(*(self.login(**attempt) for attempt in attempts))
        return [(r.status, await r.text()) for r in responses]


@pytest.fixture
async def web(db: Database, content: Content) -> AsyncIterator[Web]:
    accounts = StaffAccounts(db)
    await accounts.add("alice", PASSWORD)
    # Enough threads for every hash check to run at once (the default pool has cpus + 4).
    pool = ThreadPoolExecutor(max_workers=100)
    asyncio.get_running_loop().set_default_executor(pool)
    settings = Settings(_env_file=None, database_url=db.url, web_trusted_proxies=["127.0.0.1/32"])  # type: ignore[call-arg]
    app = build_web_app(settings, leads=LeadRepository(db), accounts=accounts, content=lambda: content)
    client = TestClient(TestServer(app))
    await client.start_server()
    web = Web(client, accounts, db)
    await web.start()
    yield web
    await client.close()
    pool.shutdown(wait=False)


async def set_account(db: Database, **values: Any) -> None:
    async with db.sessions() as session, session.begin():
        await session.execute(update(StaffUser).where(StaffUser.name == "alice").values(**values))


async def account(db: Database) -> StaffUser:
    async with db.sessions() as session:
        user = await session.get(StaffUser, 1)
        assert user is not None
        return user


# --- the lock never overflows --------------------------------------------------------------------


def test_the_lock_grows_to_its_cap_and_stays_there() -> None:
    now = utcnow()
    assert _lock_after(FREE_FAILURES - 1, now) is None
    assert _lock_after(FREE_FAILURES, now) == now + timedelta(seconds=30)
    assert _lock_after(FREE_FAILURES + 1, now) == now + timedelta(seconds=60)
    for failures in (50, 100, 10_000):
        assert _lock_after(failures, now) == now + MAX_LOCK, failures


async def test_many_failures_still_lock_and_keep_counting(db: Database, checks: Checks) -> None:
    accounts = StaffAccounts(db)
    await accounts.add("alice", PASSWORD)
    await set_account(db, failed_logins=60, locked_until=utcnow() - timedelta(seconds=1))  # expired
    before = utcnow()
    result = await accounts.sign_in("alice", WRONG)
    assert result.user is None and result.locked_until is not None
    assert before + MAX_LOCK <= result.locked_until <= utcnow() + MAX_LOCK
    assert (await account(db)).failed_logins == 61
    right = await accounts.sign_in("alice", PASSWORD)  # during the lock: not even checked
    assert right.user is None and right.locked_until == result.locked_until
    assert checks.passwords == [WRONG]
    assert (await account(db)).failed_logins == 61


async def test_an_unknown_name_locks_the_same_way_after_many_failures(db: Database) -> None:
    accounts = StaffAccounts(db)
    accounts._unknown["mallory"] = (10_000, utcnow() - timedelta(seconds=1))
    result = await accounts.sign_in("mallory", WRONG)
    assert result.user is None and result.locked_until is not None
    assert result.locked_until > utcnow() + MAX_LOCK - timedelta(seconds=5)
    assert accounts._unknown["mallory"][0] == 10_001


# --- the account lock cannot be raced --------------------------------------------------------------


async def test_concurrent_wrong_guesses_check_only_the_free_ones(web: Web, checks: Checks) -> None:
    answers = await web.at_once(*({"address": f"10.0.0.{i}"} for i in range(60)))
    statuses = [status for status, _ in answers]
    assert set(statuses) <= {401, 429}, statuses
    assert len(checks) == FREE_FAILURES
    assert statuses.count(401) == FREE_FAILURES - 1  # the last free one locks the account
    assert all(ACCOUNT_LOCKED in text for status, text in answers if status == 429)
    user = await account(web.db)
    assert user.failed_logins == FREE_FAILURES and user.locked_until is not None
    status, text = (await web.at_once({"password": PASSWORD, "address": "10.0.1.1"}))[0]
    assert status == 429 and ACCOUNT_LOCKED in text
    assert len(checks) == FREE_FAILURES  # the right password was not even checked
    # Once the lock has run out: one guess, then locked again (for twice as long).
    await set_account(web.db, locked_until=utcnow() - timedelta(seconds=1))
    again = await web.at_once(*({"address": f"10.0.2.{i}"} for i in range(20)))
    assert len(checks) == FREE_FAILURES + 1
    assert sorted(status for status, _ in again) == [429] * 20
    user = await account(web.db)
    assert user.failed_logins == FREE_FAILURES + 1 and user.locked_until is not None


async def test_the_right_password_hidden_among_wrong_ones(web: Web, checks: Checks) -> None:
    attempts = [{"address": f"10.0.0.{i}"} for i in range(19)]
    attempts.insert(10, {"password": PASSWORD, "address": "10.0.0.100"})
    answers = await web.at_once(*attempts)
    assert len(checks) <= FREE_FAILURES
    signed_in = [status for status, _ in answers if status == 303]
    assert len(signed_in) <= 1
    if signed_in:
        assert PASSWORD in checks.passwords
    assert {status for status, _ in answers} <= {303, 401, 429}


async def test_the_right_password_after_concurrent_wrong_ones_is_refused(web: Web, checks: Checks) -> None:
    answers = await web.at_once(*({"address": f"10.0.0.{i}"} for i in range(20)))
    assert {status for status, _ in answers} <= {401, 429} and len(checks) == FREE_FAILURES
    status, text = (await web.at_once({"password": PASSWORD, "address": "10.0.1.1"}))[0]
    assert status == 429 and ACCOUNT_LOCKED in text
    assert len(checks) == FREE_FAILURES


async def test_the_right_password_while_wrong_ones_are_being_checked_is_refused(
    web: Web, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Wrong guesses held in their hash check: a right password sent meanwhile must find the
    account locked already (the guesses were counted before being checked)."""
    loop = asyncio.get_running_loop()
    entered = 0
    all_entered = asyncio.Event()
    release = threading.Event()
    verify = accounts_module._verify

    def note_entry() -> None:
        nonlocal entered
        entered += 1
        if entered == 19:
            all_entered.set()

    def held(hashed: str, password: str) -> bool:
        loop.call_soon_threadsafe(note_entry)
        if hashed != accounts_module._DUMMY and password == WRONG:
            release.wait(timeout=30)
        return verify(hashed, password)

    monkeypatch.setattr(accounts_module, "_verify", held)
    wrong = asyncio.gather(*(web.login(address=f"10.0.0.{i}") for i in range(19)))
    try:
        await asyncio.wait_for(all_entered.wait(), timeout=20)  # every guess reached its check
        right = await asyncio.wait_for(web.login(password=PASSWORD, address="10.0.1.1"), timeout=20)
        assert right.status == 429 and ACCOUNT_LOCKED in await right.text()
    finally:
        release.set()
        responses = await wrong
    assert {r.status for r in responses} <= {401, 429}


# --- the per-address limit cannot be raced ---------------------------------------------------------


def count_sign_ins(
    monkeypatch: pytest.MonkeyPatch, accounts: StaffAccounts, *, fail: bool = False
) -> list[str]:
    names: list[str] = []
    sign_in = accounts.sign_in

    async def counting(name: str, password: str) -> SignIn:
        names.append(name)
        if fail:
            raise RuntimeError("the database is down")
        return await sign_in(name, password)

    monkeypatch.setattr(accounts, "sign_in", counting)
    return names


async def test_concurrent_attempts_from_one_address_stop_at_the_limit(
    web: Web, monkeypatch: pytest.MonkeyPatch
) -> None:
    names = count_sign_ins(monkeypatch, web.accounts)
    # Different names that do not exist: no account lock, only the address's limit.
    answers = await web.at_once(*({"name": f"nobody{i}"} for i in range(60)))
    assert len(names) == IP_FAILURES
    statuses = [status for status, _ in answers]
    assert statuses.count(401) == IP_FAILURES and statuses.count(429) == 60 - IP_FAILURES
    assert all(ADDRESS_LIMITED in text for status, text in answers if status == 429)
    # Another address is not affected.
    assert (await web.login(name="nobody", address="10.9.9.9")).status == 401


async def test_a_sign_in_that_fails_with_an_error_counts_too(
    web: Web, monkeypatch: pytest.MonkeyPatch
) -> None:
    names = count_sign_ins(monkeypatch, web.accounts, fail=True)
    for i in range(IP_FAILURES):
        assert (await web.login(name=f"nobody{i}")).status == 500
    refused = await web.login(name="nobody")
    assert refused.status == 429 and ADDRESS_LIMITED in await refused.text()
    assert len(names) == IP_FAILURES  # the last one did not get that far


async def test_a_successful_sign_in_gives_its_place_back(web: Web) -> None:
    async def signs_in() -> bool:
        signed = (await web.login(password=PASSWORD)).status == 303
        web.client.session.cookie_jar.clear()  # signed out, and a new sign-in form
        await web.start()
        return signed

    for _ in range(IP_FAILURES * 2):
        assert await signs_in()
    for i in range(IP_FAILURES - 1):
        assert (await web.login(name=f"nobody{i}")).status == 401
    assert await signs_in()  # one place left still
    assert (await web.login(name="nobody")).status == 401
    assert (await web.login(name="nobody")).status == 429
