"""Creates the first administrator at start-up when it does not exist yet."""

from __future__ import annotations

import logging
import secrets

from starlette.concurrency import run_in_threadpool

from db import users
from db.engine import SessionFactory, create_engine, session_factory
from db.migrate import check_schema
from serve_app.security import Passwords
from serve_app.settings import Environment, Settings, write_once

log = logging.getLogger(__name__)

ADMIN_PASSWORD_FILE = "admin-password"


async def ensure_admin(sessions: SessionFactory, settings: Settings, passwords: Passwords) -> None:
    username = settings.auth.admin_username
    async with sessions() as session:
        if await users.get_by_username(session, username) is not None:
            return
        configured = settings.auth.admin_password
        generated = configured is None
        if generated and settings.general.environment is not Environment.development:
            raise RuntimeError(f"Set PRIMSCENE_ADMIN_PASSWORD to create the first administrator {username!r}.")
        password = secrets.token_urlsafe(12) if configured is None else configured.get_secret_value()
        hashed = await run_in_threadpool(passwords.hash, password)
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


async def _prepare_and_describe(settings: Settings) -> str:
    """Create the first admin if needed (with the configured or a generated password) and say
    how to log in."""
    engine = create_engine(settings.database_url)
    try:
        await check_schema(engine)
        await ensure_admin(session_factory(engine), settings, settings.passwords())
    finally:
        await engine.dispose()
    password_file = settings.general.data_dir / ADMIN_PASSWORD_FILE
    if settings.auth.admin_password is not None:
        password = "(the value of PRIMSCENE_ADMIN_PASSWORD)"
    elif password_file.exists():
        password = password_file.read_text().strip()
    else:
        password = "(set when the administrator was first created)"
    return f"administrator: {settings.auth.admin_username} / {password}"


if __name__ == "__main__":
    import asyncio

    print(asyncio.run(_prepare_and_describe(Settings())))
