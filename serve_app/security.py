"""Password hashing (Argon2 via pwdlib) and access tokens (JWT via PyJWT)."""

from __future__ import annotations

import uuid
from datetime import timedelta

import jwt
from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher

from db.types import utcnow

ALGORITHM = "HS256"



class Passwords:
    """Argon2id password hashes at a configured cost (`PRIMSCENE_PASSWORD_HASH_*`). A hash stored
    with other parameters still verifies, and is re-hashed at the current ones on the next login."""

    def __init__(self, time_cost: int, memory_kib: int, parallelism: int) -> None:
        self._hasher = PasswordHash((Argon2Hasher(time_cost=time_cost, memory_cost=memory_kib, parallelism=parallelism),))
        # Verified when a login names no user, so that an unknown user takes as long as a wrong password.
        self._dummy_hash = self._hasher.hash("not a real password, only spends the same time")

    def hash(self, password: str) -> str:
        return self._hasher.hash(password)

    def verify(self, password: str, hashed: str | None) -> tuple[bool, str | None]:
        """Check a password; returns (ok, new_hash) where new_hash is set when the stored hash
        should be upgraded to current parameters. With `hashed=None` it spends the time and fails."""
        if hashed is None:
            self._hasher.verify(password, self._dummy_hash)
            return False, None
        return self._hasher.verify_and_update(password, hashed)


class InvalidToken(Exception):
    pass


class TokenCodec:
    """Issues and checks signed access tokens whose subject is a user id."""

    def __init__(self, secret: str, ttl: timedelta) -> None:
        self._secret = secret
        self.ttl = ttl

    def issue(self, user_id: uuid.UUID) -> str:
        now = utcnow()
        claims = {"sub": str(user_id), "iat": now, "exp": now + self.ttl}
        return jwt.encode(claims, self._secret, algorithm=ALGORITHM)

    def subject(self, token: str) -> uuid.UUID:
        """The user id of a valid token; InvalidToken for expired, forged or malformed ones."""
        try:
            # A fixed algorithm list: tokens signed otherwise (or `alg: none`) are refused.
            claims = jwt.decode(token, self._secret, algorithms=[ALGORITHM], options={"require": ["exp", "sub"]})
            return uuid.UUID(claims["sub"])
        except (jwt.InvalidTokenError, ValueError, TypeError) as exc:
            raise InvalidToken(str(exc)) from exc
