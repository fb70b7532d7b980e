"""Settings come from PRIMSCENE_* variables; secrets refuse their defaults outside development."""

from __future__ import annotations

import stat
from pathlib import Path

import httpx
import pytest
from asgi_lifespan import LifespanManager
from pydantic import ValidationError

from serve_app.api import create_app
from serve_app.settings import AuthSettings, DatabaseSettings, GeneralSettings, Settings
from tests.support.api import login
from tests.support.databases import empty_tables
from tests.support.pipeline import BoundingBoxCatalog


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)  # no stray .env
    for name in ("DATABASE_URL", "ENVIRONMENT", "JWT_SECRET", "ADMIN_USERNAME", "ADMIN_PASSWORD", "DATA_DIR"):
        monkeypatch.delenv(f"PRIMSCENE_{name}", raising=False)


def test_unset_database_url_means_embedded_sqlite_in_the_data_dir(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PRIMSCENE_DATA_DIR", "/srv/primscene")
    assert Settings().database_url == "sqlite+aiosqlite:////srv/primscene/primscene.db"
    monkeypatch.setenv("PRIMSCENE_DATABASE_URL", "postgresql+asyncpg://u:p@db/primscene")
    assert Settings().database_url == "postgresql+asyncpg://u:p@db/primscene"


def test_environment_variables_reach_each_area(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PRIMSCENE_ADMIN_USERNAME", "root")
    monkeypatch.setenv("PRIMSCENE_MAX_UPLOAD_BYTES", "2048")
    monkeypatch.setenv("PRIMSCENE_MAX_ATTEMPTS", "5")
    settings = Settings()
    assert settings.auth.admin_username == "root"
    assert settings.limits.max_upload_bytes == 2048
    assert settings.queue.max_attempts == 5
    monkeypatch.setenv("PRIMSCENE_MAX_UPLOAD_BYTES", "lots")
    with pytest.raises(ValidationError, match="max_upload_bytes"):
        Settings()


def test_jwt_secret_must_be_set_outside_development(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PRIMSCENE_ENVIRONMENT", "production")
    with pytest.raises(ValidationError, match="PRIMSCENE_JWT_SECRET"):
        Settings()
    monkeypatch.setenv("PRIMSCENE_JWT_SECRET", "too-short")
    with pytest.raises(ValidationError, match="at least 32"):
        Settings()
    monkeypatch.setenv("PRIMSCENE_JWT_SECRET", "x" * 40)
    assert Settings().jwt_secret() == "x" * 40


def test_password_hashing_below_owasps_minimum_is_refused_outside_development(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PRIMSCENE_JWT_SECRET", "x" * 40)
    monkeypatch.setenv("PRIMSCENE_PASSWORD_HASH_MEMORY_KIB", "1024")
    assert Settings().auth.password_hash_memory_kib == 1024  # development: tests and laptops may go cheap
    monkeypatch.setenv("PRIMSCENE_ENVIRONMENT", "production")
    with pytest.raises(ValidationError, match="PRIMSCENE_PASSWORD_HASH_MEMORY_KIB must be at least 19456"):
        Settings()
    monkeypatch.delenv("PRIMSCENE_PASSWORD_HASH_MEMORY_KIB")
    monkeypatch.setenv("PRIMSCENE_PASSWORD_HASH_TIME_COST", "1")
    with pytest.raises(ValidationError, match="PRIMSCENE_PASSWORD_HASH_TIME_COST"):
        Settings()
    monkeypatch.delenv("PRIMSCENE_PASSWORD_HASH_TIME_COST")
    assert Settings().passwords().hash("a password").startswith("$argon2id$v=19$m=65536,t=3,p=4$")  # pwdlib's defaults


def test_a_password_hashed_at_an_older_cost_verifies_and_is_rehashed_at_the_current_one() -> None:
    old = Settings(auth=AuthSettings(password_hash_time_cost=1, password_hash_memory_kib=1024, password_hash_parallelism=1))
    new = Settings(auth=AuthSettings(password_hash_time_cost=2, password_hash_memory_kib=2048, password_hash_parallelism=1))
    stored = old.passwords().hash("correct horse")
    ok, rehashed = new.passwords().verify("correct horse", stored)
    assert ok and rehashed is not None and "$m=2048,t=2,p=1$" in rehashed
    assert new.passwords().verify("correct horse", rehashed) == (True, None)
    assert new.passwords().verify("wrong horse", stored) == (False, None)


def test_development_secret_is_random_private_and_kept(tmp_path: Path) -> None:
    settings = Settings(general=GeneralSettings(data_dir=tmp_path / "data"))
    secret = settings.jwt_secret()
    assert len(secret) >= 32
    assert settings.jwt_secret() == secret
    assert stat.S_IMODE((tmp_path / "data" / "jwt-secret").stat().st_mode) == 0o600
    assert Settings(general=GeneralSettings(data_dir=tmp_path / "other")).jwt_secret() != secret


async def test_first_admin_password_is_generated_and_shown_once_in_development(
    migrated_urls: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = migrated_urls["sqlite"]
    await empty_tables(url)
    settings = Settings(general=GeneralSettings(data_dir=tmp_path), database=DatabaseSettings(database_url=url))
    for start in (1, 2):
        app = create_app(settings, models=BoundingBoxCatalog())
        async with LifespanManager(app) as manager:
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=manager.app), base_url="http://t") as http:
                password = (tmp_path / "admin-password").read_text().strip()
                await login(http, "admin", password)
        printed = capsys.readouterr().out
        assert (password in printed) == (start == 1)
    assert stat.S_IMODE((tmp_path / "admin-password").stat().st_mode) == 0o600


async def test_production_refuses_to_start_without_an_admin_password(migrated_urls: dict[str, str], tmp_path: Path) -> None:
    url = migrated_urls["sqlite"]
    await empty_tables(url)
    settings = Settings(
        general=GeneralSettings(environment="production", data_dir=tmp_path),
        database=DatabaseSettings(database_url=url),
        auth=AuthSettings(jwt_secret="s" * 40),
    )
    with pytest.raises(RuntimeError, match="PRIMSCENE_ADMIN_PASSWORD"):
        async with LifespanManager(create_app(settings, models=BoundingBoxCatalog())):
            pass
