"""Password hashing (Argon2 via pwdlib) and access tokens (JWT via PyJWT)."""

from __future__ import annotations

import uuid
from datetime import timedelta

import jwt
from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher

from db.types import utcnow

ALGORITHM = "HS256"

_hasher = PasswordHash((Argon2Hasher(),))
# Verified when a login names no user, so that an unknown user takes as long as a wrong password.
_DUMMY_HASH = _hasher.hash("not a real password, only spends the same time")


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password: str, hashed: str | None) -> tuple[bool, str | None]:
    """Check a password; returns (ok, new_hash) where new_hash is set when the stored hash should
    be upgraded to current parameters. With `hashed=None` it spends the time and fails."""
    if hashed is None:
        _hasher.verify(password, _DUMMY_HASH)
        return False, None
    return _hasher.verify_and_update(password, hashed)


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
