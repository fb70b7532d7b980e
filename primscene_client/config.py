"""Where the command line keeps its server URL and tokens: `config.json` in the user's config
dir (platformdirs' `user_config_dir("primscene")`, or `$PRIMSCENE_CONFIG_DIR`), mode 0600.

Tokens are kept per server URL, so a token is never sent to a server other than the one that
issued it. Precedence: `--url` > `$PRIMSCENE_URL` > the URL of the last `login` > the default;
`$PRIMSCENE_TOKEN` > the stored token for that URL.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from platformdirs import user_config_path

from primscene_client.client import normalise_url
from primscene_client.errors import PrimsceneError

DEFAULT_URL = "http://127.0.0.1:8000"
URL_ENV, TOKEN_ENV, DIR_ENV = "PRIMSCENE_URL", "PRIMSCENE_TOKEN", "PRIMSCENE_CONFIG_DIR"


class ConfigError(PrimsceneError):
    pass


def config_dir() -> Path:
    override = os.environ.get(DIR_ENV)
    return Path(override) if override else user_config_path("primscene")


def config_file() -> Path:
    return config_dir() / "config.json"


@dataclass
class Session:
    token: str
    username: str | None = None
    expires_at: str | None = None  # ISO 8601, UTC


@dataclass
class Config:
    url: str | None = None
    sessions: dict[str, Session] = field(default_factory=dict)

    @classmethod
    def load(cls) -> Config:
        path = config_file()
        try:
            raw: Any = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return cls()
        except (OSError, ValueError) as exc:
            raise ConfigError(f"cannot read {path} ({exc}); delete it and run `primscene login`.") from exc
        if not isinstance(raw, dict):
            raise ConfigError(f"{path} is not a Primscene config; delete it and run `primscene login`.")
        sessions = {
            url: Session(**{k: v for k, v in s.items() if k in ("token", "username", "expires_at")})
            for url, s in (raw.get("sessions") or {}).items()
            if isinstance(s, dict) and isinstance(s.get("token"), str)
        }
        return cls(url=raw.get("url"), sessions=sessions)

    def save(self) -> Path:
        """Write atomically, readable by the owner only (it holds tokens)."""
        path = config_file()
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        body = {"url": self.url, "sessions": {url: vars(s) for url, s in self.sessions.items()}}
        fd, tmp = tempfile.mkstemp(prefix=".config-", suffix=".json", dir=path.parent)  # created 0600
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                os.fchmod(out.fileno(), 0o600)
                json.dump(body, out, indent=2)
                out.write("\n")
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return path

    def resolve_url(self, option: str | None) -> str:
        return normalise_url(option or os.environ.get(URL_ENV) or self.url or DEFAULT_URL)

    def token_for(self, url: str) -> str | None:
        env = os.environ.get(TOKEN_ENV)
        if env:
            return env
        session = self.sessions.get(url)
        return session.token if session else None

    def remember(self, url: str, token: str, username: str, expires_in: int) -> None:
        expires = datetime.now(UTC) + timedelta(seconds=expires_in)
        self.url = url
        self.sessions[url] = Session(token=token, username=username, expires_at=expires.isoformat(timespec="seconds"))

    def forget(self, url: str) -> bool:
        return self.sessions.pop(url, None) is not None
