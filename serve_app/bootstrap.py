"""Creates the first administrator at start-up when it does not exist yet."""

from __future__ import annotations

import logging
import secrets

from starlette.concurrency import run_in_threadpool

from db import users
from db.engine import SessionFactory
from serve_app.security import hash_password
from serve_app.settings import Environment, Settings, write_once

log = logging.getLogger(__name__)

ADMIN_PASSWORD_FILE = "admin-password"


async def ensure_admin(sessions: SessionFactory, settings: Settings) -> None:
    username = settings.auth.admin_username
    async with sessions() as session:
        if await users.get_by_username(session, username) is not None:
            return
        generated = settings.auth.admin_password is None
        if generated and settings.general.environment is not Environment.development:
            raise RuntimeError(f"Set PRIMSCENE_ADMIN_PASSWORD to create the first administrator {username!r}.")
        password = secrets.token_urlsafe(12) if generated else settings.auth.admin_password.get_secret_value()
        hashed = await run_in_threadpool(hash_password, password)
        try:
            await users.create(session, username=username, hashed_password=hashed, is_admin=True)
        except users.UserExists:  # another replica created it at the same moment
            return
    if generated:
        # Development only: shown once here, and kept owner-readable in the data dir for `make run`.
        path = settings.general.data_dir / ADMIN_PASSWORD_FILE
        write_once(path, password + "\n")
        print(f"Primscene: created administrator {username!r} with password {password!r} (also in {path})", flush=True)
    log.info("created administrator %r", username)
