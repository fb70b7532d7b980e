"""Settings, one pydantic-settings class per area, all read from `PRIMSCENE_*` variables or `.env`."""

from __future__ import annotations

import os
import secrets
from datetime import timedelta
from pathlib import Path

from pydantic import BaseModel, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings

from db.login_throttle import ThrottlePolicy
from db.settings import DatabaseSettings, Environment, GeneralSettings, settings_config
from serve_app.security import Passwords

MIN_SECRET_LENGTH = 32
MIN_HASH_MEMORY_KIB, MIN_HASH_TIME_COST = 19 * 1024, 2  # OWASP Password Storage Cheat Sheet, Argon2id


class AuthSettings(BaseSettings):
    model_config = settings_config()

    jwt_secret: SecretStr | None = Field(
        None,
        description="HMAC key for access tokens (≥32 characters). Unset in development: a random key kept in the data dir.",
    )
    access_token_ttl_minutes: int = Field(60, ge=1, le=7 * 24 * 60, description="Lifetime of an access token.")
    admin_username: str = Field("admin", description="First admin, created at start-up if missing.")
    admin_password: SecretStr | None = Field(
        None, description="Password of the first admin. Unset in development: generated and printed once."
    )
    login_max_failures: int = Field(
        5, ge=1, description="Failed logins for one username, within the window, before its logins are refused (429)."
    )
    login_failure_window_minutes: int = Field(15, ge=1, description="How long failed logins are counted.")
    login_block_s: int = Field(30, ge=1, description="First refusal after too many failures; doubles with each further one.")
    login_max_block_s: int = Field(900, ge=1, description="Longest refusal after failed logins.")
    # Argon2id cost (pwdlib's defaults); outside development at least OWASP's minimum.
    password_hash_time_cost: int = Field(3, ge=1, description="Argon2id passes over memory per password hash.")
    password_hash_memory_kib: int = Field(65536, ge=8, description="Argon2id memory per password hash, in KiB.")
    password_hash_parallelism: int = Field(4, ge=1, description="Argon2id lanes per password hash.")

    def login_policy(self) -> ThrottlePolicy:
        return ThrottlePolicy(
            max_failures=self.login_max_failures,
            window=timedelta(minutes=self.login_failure_window_minutes),
            block=timedelta(seconds=self.login_block_s),
            max_block=timedelta(seconds=max(self.login_block_s, self.login_max_block_s)),
        )


class LimitsSettings(BaseSettings):
    model_config = settings_config()

    max_upload_bytes: int = Field(10 * 1024 * 1024, ge=1024, description="Largest accepted upload (413 above).")
    max_image_pixels: int = Field(40_000_000, ge=1, description="Largest accepted width × height (413 above).")
    max_queued_per_user: int = Field(1000, ge=1, description="Unfinished tasks one user may have (429 above).")
    max_queued_total: int = Field(20000, ge=1, description="Unfinished tasks in the whole service (503 above).")
    retry_after_s: int = Field(5, ge=1, description="`Retry-After` sent with 429/503.")
    max_batch_images: int = Field(32, ge=1, description="Most images in one batch submit (`POST /batches`).")
    max_batch_bytes: int = Field(
        32 * 1024 * 1024, ge=1024, description="Largest batch submit body; each image still obeys max_upload_bytes (413 above)."
    )


class QueueSettings(BaseSettings):
    model_config = settings_config()

    lease_s: float = Field(30.0, gt=0, description="How long a claimed task stays leased without a heartbeat.")
    heartbeat_s: float = Field(10.0, gt=0, description="How often a running task's lease is extended.")
    max_attempts: int = Field(3, ge=1, description="Attempts before a task fails for good.")
    retry_backoff_s: float = Field(1.0, ge=0, description="Delay before a retryable failure runs again (doubles).")
    poll_interval_s: float = Field(0.05, gt=0, description="How often the dispatcher looks for work when not woken.")
    listen_poll_interval_s: float = Field(
        1.0, gt=0, description="The same on PostgreSQL, where LISTEN/NOTIFY wakes the dispatcher at once."
    )
    rescue_interval_s: float = Field(5.0, gt=0, description="How often expired leases are rescued.")
    max_in_flight: int = Field(16, ge=1, description="Tasks one dispatcher runs at once (over all its batches).")
    batch_size: int = Field(8, ge=1, description="Tasks claimed together and sent to the models in one call.")
    batch_wait_s: float = Field(
        0.01, ge=0, description="While a batch is in flight, how long newly arrived tasks may gather before the next claim."
    )
    events_poll_interval_s: float = Field(
        0.05, gt=0,
        description="SQLite: how often the change feed reads the tasks that event streams (`…/events`) and waiting requests follow.",
    )


class RetentionSettings(BaseSettings):
    model_config = settings_config()

    retention_days: int | None = Field(
        None, ge=1, description="Delete finished tasks (image and results too) this many days after they finished. Unset: keep them."
    )
    housekeeping_interval_s: float = Field(
        600.0, gt=0, description="How often old tasks and stale login-failure records are deleted."
    )


class WebhookSettings(BaseSettings):
    model_config = settings_config()

    webhook_allowed_hosts: str = Field(
        "", description="Comma-separated `host` or `host:port` that callback URLs may point to. Empty: webhooks are off."
    )
    webhook_timeout_s: float = Field(10.0, gt=0, description="How long one delivery may take.")
    webhook_max_attempts: int = Field(6, ge=1, description="Deliveries tried before a webhook is given up.")
    webhook_retry_backoff_s: float = Field(10.0, ge=0, description="Wait before the second try; doubles after each.")
    webhook_poll_interval_s: float = Field(1.0, gt=0, description="How often finished tasks are checked for webhooks due.")

    def allowed_hosts(self) -> set[str]:
        return {host.strip().lower() for host in self.webhook_allowed_hosts.split(",") if host.strip()}


class Settings(BaseModel):
    """All settings of one Primscene process."""

    general: GeneralSettings = Field(default_factory=GeneralSettings)
    database: DatabaseSettings = Field(default_factory=DatabaseSettings)
    auth: AuthSettings = Field(default_factory=AuthSettings)
    limits: LimitsSettings = Field(default_factory=LimitsSettings)
    queue: QueueSettings = Field(default_factory=QueueSettings)
    retention: RetentionSettings = Field(default_factory=RetentionSettings)
    webhooks: WebhookSettings = Field(default_factory=WebhookSettings)

    @model_validator(mode="after")
    def _refuse_weak_secrets_outside_development(self) -> Settings:
        if self.general.environment is Environment.development:
            return self
        secret = self.auth.jwt_secret
        if secret is None or len(secret.get_secret_value()) < MIN_SECRET_LENGTH:
            raise ValueError(
                f"PRIMSCENE_JWT_SECRET must be set to at least {MIN_SECRET_LENGTH} characters "
                f"when PRIMSCENE_ENVIRONMENT={self.general.environment.value}"
            )
        auth = self.auth
        if auth.password_hash_memory_kib < MIN_HASH_MEMORY_KIB or auth.password_hash_time_cost < MIN_HASH_TIME_COST:
            raise ValueError(
                f"PRIMSCENE_PASSWORD_HASH_MEMORY_KIB must be at least {MIN_HASH_MEMORY_KIB} and PRIMSCENE_PASSWORD_HASH_TIME_COST "
                f"at least {MIN_HASH_TIME_COST} (OWASP's minimum for Argon2id) when PRIMSCENE_ENVIRONMENT={self.general.environment.value}"
            )
        return self

    def passwords(self) -> Passwords:
        auth = self.auth
        return Passwords(auth.password_hash_time_cost, auth.password_hash_memory_kib, auth.password_hash_parallelism)

    @property
    def database_url(self) -> str:
        return self.database.url_or_default(self.general.data_dir)

    def jwt_secret(self) -> str:
        """The configured key, or in development a random one kept in the data dir across restarts."""
        if self.auth.jwt_secret is not None:
            return self.auth.jwt_secret.get_secret_value()
        path = self.general.data_dir / "jwt-secret"
        if not path.exists():
            write_once(path, secrets.token_urlsafe(48))
        return path.read_text().strip()


def write_once(path: Path, text: str) -> None:
    """Create `path` with `text`, owner-only, atomically; a concurrent writer that wins is kept."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    try:
        os.link(tmp, path)
    except FileExistsError:
        pass
    finally:
        tmp.unlink()
