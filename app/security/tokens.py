"""Signed, expiring end-user tokens: a client app acts for one user and no other.

itsdangerous signs `{"u": user_id, "exp": unix seconds}` with the `token_secret`; expiry
is real (wall) time whatever clock the service runs on, since it bounds a credential.
"""

from __future__ import annotations

import logging
import secrets
import time

from itsdangerous import BadSignature, URLSafeSerializer

from app.security.keys import TOKEN_SCOPES, Principal

log = logging.getLogger("marquee.security")


class TokenError(ValueError):
    """The token is malformed, forged or expired (a 401)."""


class TokenSigner:
    def __init__(self, secret: str | None, max_ttl_s: int) -> None:
        if secret is None:
            log.warning(
                "MARQUEE_TOKEN_SECRET unset: end-user tokens are signed with a random "
                "per-process secret (they stop working on restart and across workers)"
            )
            secret = secrets.token_urlsafe(32)
        self._serializer = URLSafeSerializer(secret, salt="marquee.user-token")
        self.max_ttl_s = max_ttl_s

    def issue(self, user_id: int, ttl_s: int, now: float | None = None) -> tuple[str, int]:
        """The token and its expiry (unix seconds); `ttl_s` is capped at `max_ttl_s`."""
        expires = int((now or time.time()) + min(ttl_s, self.max_ttl_s))
        return str(self._serializer.dumps({"u": int(user_id), "exp": expires})), expires

    def verify(self, token: str, now: float | None = None) -> Principal:
        try:
            claims = self._serializer.loads(token)
            user_id, expires = int(claims["u"]), int(claims["exp"])
        except (BadSignature, KeyError, TypeError, ValueError):
            raise TokenError("invalid end-user token") from None
        if expires <= (now or time.time()):
            raise TokenError("end-user token expired: ask the client app for a new one")
        return Principal(subject=f"user:{user_id}", scopes=TOKEN_SCOPES, user_id=user_id)
