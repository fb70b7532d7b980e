"""Password guessing is slowed per username, without locking anyone else out or telling
whether an account exists."""

from __future__ import annotations

import statistics
import time

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncEngine

from db.login_throttle import username_key
from db.models import LoginThrottle
from db.types import utcnow
from serve_app.settings import MIN_HASH_MEMORY_KIB, MIN_HASH_TIME_COST, Settings
from tests.support.api import API, Users
from tests.support.apps import make_app
from tests.support.databases import make_settings

MAX_FAILURES = 3
BLOCK_S = 30


@pytest.fixture(scope="module")
def app_settings(backend_url: str, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return make_settings(
        backend_url, tmp_path_factory.mktemp("data"), auth={"login_max_failures": MAX_FAILURES, "login_block_s": BLOCK_S}
    )


async def _login(client: httpx.AsyncClient, username: str, password: str) -> httpx.Response:
    return await client.post(f"{API}/auth/token", data={"username": username, "password": password})


async def test_repeated_bad_passwords_are_refused_for_that_user_only(client: httpx.AsyncClient, users: Users) -> None:
    for _ in range(MAX_FAILURES):
        assert (await _login(client, "alice", "not-her-password")).status_code == 401
    refused = await _login(client, "alice", "alice-password-1")  # even the right password, while blocked
    assert refused.status_code == 429
    assert 1 <= int(refused.headers["Retry-After"]) <= BLOCK_S
    assert "Too many failed logins" in refused.json()["detail"]
    assert (await _login(client, "bob", "bob-password-12")).status_code == 200  # others are not locked out


async def test_each_further_failure_doubles_the_block(client: httpx.AsyncClient, users: Users, engine: AsyncEngine) -> None:
    for _ in range(MAX_FAILURES):
        await _login(client, "alice", "wrong")
    assert int((await _login(client, "alice", "wrong")).headers["Retry-After"]) <= BLOCK_S
    await _end_block(engine, "alice")
    assert (await _login(client, "alice", "wrong")).status_code == 401  # counted: the block now doubles
    assert BLOCK_S < int((await _login(client, "alice", "wrong")).headers["Retry-After"]) <= 2 * BLOCK_S


async def test_a_block_ends_and_a_good_login_forgets_the_failures(
    client: httpx.AsyncClient, users: Users, engine: AsyncEngine
) -> None:
    for _ in range(MAX_FAILURES):
        await _login(client, "alice", "wrong")
    await _end_block(engine, "alice")
    assert (await _login(client, "alice", "alice-password-1")).status_code == 200
    for _ in range(MAX_FAILURES - 1):  # counting starts again from zero
        assert (await _login(client, "alice", "wrong")).status_code == 401
    assert (await _login(client, "alice", "alice-password-1")).status_code == 200


async def test_unknown_usernames_are_throttled_like_real_ones(client: httpx.AsyncClient, users: Users) -> None:
    answers = [(await _login(client, "mallory", "guess")).status_code for _ in range(MAX_FAILURES + 1)]
    assert answers == [401] * MAX_FAILURES + [429]


async def _end_block(engine: AsyncEngine, username: str) -> None:
    async with engine.begin() as connection:
        await connection.execute(
            update(LoginThrottle).where(LoginThrottle.username_hash == username_key(username)).values(blocked_until=utcnow())
        )


class TestTiming:
    """With an app of its own, that never blocks anyone and hashes at OWASP's minimum cost: at the
    other tests' token cost (about 1 ms) a login that skipped the verification would take as
    long as one that ran it, within the noise of the database calls around it."""

    @pytest.fixture(scope="class")
    @classmethod
    def app_settings(cls, backend_url: str, tmp_path_factory: pytest.TempPathFactory) -> Settings:
        auth = {
            "login_max_failures": 1000,
            "password_hash_time_cost": MIN_HASH_TIME_COST,
            "password_hash_memory_kib": MIN_HASH_MEMORY_KIB,
        }
        return make_settings(backend_url, tmp_path_factory.mktemp("data"), auth=auth)

    @pytest.fixture(scope="class")
    @classmethod
    def app(cls, app_settings: Settings) -> FastAPI:
        return make_app(app_settings)

    async def test_unknown_user_and_wrong_password_take_as_long(self, client: httpx.AsyncClient, users: Users) -> None:
        """Both run one Argon2 verification (a dummy hash for unknown users), so the time does
        not reveal which usernames exist. Interleaved, so machine noise hits both alike."""
        unknown, wrong = [], []
        for _ in range(12):
            for username, times in (("nobody-here", unknown), ("alice", wrong)):
                started = time.perf_counter()
                assert (await _login(client, username, "wrong-password")).status_code == 401
                times.append(time.perf_counter() - started)
        ratio = statistics.median(unknown) / statistics.median(wrong)
        assert 0.75 < ratio < 1.33, (statistics.median(unknown), statistics.median(wrong))
