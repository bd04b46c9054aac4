"""API keys the test services accept: one per scope, plus the development key.

Only their digests go into the settings, as in production (`marquee keys new`).
"""

from __future__ import annotations

from pydantic import SecretStr

from app.security.keys import entry_for
from app.settings import DEV_API_KEYS

DEV = "marquee-dev"  # read + events, the development default
READ = "test-read-key"
EVENTS = "test-events-key"
BACKFILL = "test-backfill-key"
ADMIN = "test-admin-key"
SCOPED = {READ: ["read"], EVENTS: ["events"], BACKFILL: ["events", "backfill"], ADMIN: ["admin"]}
API_KEYS = SecretStr(",".join([DEV_API_KEYS, *(entry_for(k, s) for k, s in SCOPED.items())]))
TOKEN_SECRET = SecretStr("test-token-secret-not-for-production")


def headers(key: str) -> dict[str, str]:
    return {"X-API-Key": key}
