"""What the database layer reads from `PRIMSCENE_*` variables (or `.env`): where the data lives
and which database to use. The service's other settings (`serve_app.settings`) build on these,
so that migrations and scripts find the same database without importing the service."""

from __future__ import annotations

from enum import Enum
from pathlib import Path

from platformdirs import user_data_path
from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


def _default_data_dir() -> Path:
    """var/ of the checkout when running from one (relative to the project, not the working
    directory: Ray workers may run elsewhere); the user's data dir for an installed package."""
    project = Path(__file__).resolve().parents[1]
    return project / "var" if (project / "pyproject.toml").is_file() else user_data_path("primscene")


DEFAULT_DATA_DIR = _default_data_dir()
DEFAULT_WEIGHTS_DIR = Path(__file__).resolve().parents[1] / "weights"  # of the checkout


def settings_config() -> SettingsConfigDict:
    return SettingsConfigDict(env_prefix="PRIMSCENE_", env_file=".env", extra="ignore", env_ignore_empty=True)


class Environment(str, Enum):
    development = "development"
    production = "production"


class GeneralSettings(BaseSettings):
    model_config = settings_config()

    environment: Environment = Field(
        Environment.development,
        description="`development` allows generated secrets; anything else requires real ones.",
    )
    data_dir: Path = Field(DEFAULT_DATA_DIR, description="Where the embedded database and generated secrets live.")
    weights_dir: Path = Field(
        DEFAULT_WEIGHTS_DIR, description="Where the shipped models are read from. An installed package carries none: point it at a copy of weights/."
    )


class DatabaseSettings(BaseSettings):
    model_config = settings_config()

    # Secret: a PostgreSQL URL carries the password, and must never be printed with the settings.
    database_url: SecretStr | None = Field(
        None,
        description="SQLAlchemy async URL. Unset: SQLite file in the data dir. PostgreSQL: `postgresql+asyncpg://…`.",
    )
    db_pool_size: int = Field(10, ge=1, description="Connections kept open per process (PostgreSQL).")
    db_max_overflow: int = Field(10, ge=0, description="Extra connections allowed under load (PostgreSQL).")
    db_echo: bool = Field(False, description="Log every SQL statement (those of the direct submit path excepted).")
    db_direct_statements: bool = Field(
        True, description="PostgreSQL: send the submit path's statements straight through asyncpg, not SQLAlchemy (db/direct.py)."
    )

    def url_or_default(self, data_dir: Path) -> str:
        if self.database_url is not None:
            return self.database_url.get_secret_value()
        return f"sqlite+aiosqlite:///{data_dir / 'primscene.db'}"


def configured_database_url() -> str:
    """The database the environment names: PRIMSCENE_DATABASE_URL, else the SQLite file in the data dir."""
    return DatabaseSettings().url_or_default(GeneralSettings().data_dir)
