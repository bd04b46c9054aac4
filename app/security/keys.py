"""Scoped API keys for machine clients, stored as SHA-256 digests.

Why a plain digest and not a password hash: keys are 32 random bytes (`new_key`), so a
digest cannot be reversed by guessing, and one hash per request stays cheap. Keys come
from the `api_keys` setting and an optional TOML file that is re-read on change.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from pathlib import Path

from app.security.watched import WatchedFile

SCOPES = ("read", "events", "backfill", "admin")
# What each scope opens: read = feed, items, search, chat; events = write events and
# sign-ups; backfill = events with historical times (replays); admin = reload, tokens.
TOKEN_SCOPES = frozenset({"read", "events"})


@dataclass(frozen=True)
class Principal:
    """Who a request acts as. `user_id` is set for end-user tokens and UI accounts: such a
    principal may read and write only that user's data."""

    subject: str
    scopes: frozenset[str]
    user_id: int | None = None

    def may_act_for(self, user_id: int | None) -> bool:
        return self.user_id is None or user_id == self.user_id


def digest(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def new_key() -> str:
    return "mq_" + secrets.token_urlsafe(32)


def entry_for(key: str, scopes: list[str]) -> str:
    """The `api_keys` setting entry of `key`."""
    return f"{'+'.join(parse_scopes(scopes, 'scopes'))}:sha256:{digest(key)}"


def parse_scopes(scopes: list[str], where: str) -> list[str]:
    unknown = [s for s in scopes if s not in SCOPES]
    if unknown or not scopes:
        raise ValueError(f"{where}: unknown or no scopes {unknown}; choose from {list(SCOPES)}")
    return scopes


def _check_hex(value: str, where: str) -> str:
    value = value.strip().lower()
    if len(value) != 64 or any(c not in "0123456789abcdef" for c in value):
        raise ValueError(f"{where}: expected a 64-character SHA-256 hex digest")
    return value


def parse_entries(text: str) -> dict[str, frozenset[str]]:
    """`read+events:sha256:<hex>,admin:sha256:<hex>` -> digest -> scopes."""
    out: dict[str, frozenset[str]] = {}
    for n, raw in enumerate(p.strip() for p in text.split(",")):
        if not raw:
            continue
        parts = raw.split(":")
        if len(parts) != 3 or parts[1] != "sha256":
            raise ValueError(
                f"api_keys entry {n + 1}: expected `<scopes>:sha256:<hex>` "
                "(`marquee keys new` prints one); plain keys are not accepted"
            )
        where = f"api_keys entry {n + 1}"
        out[_check_hex(parts[2], where)] = frozenset(parse_scopes(parts[0].split("+"), where))
    return out


def parse_file(data: dict) -> dict[str, frozenset[str]]:
    """`[[keys]]` tables with `sha256` and `scopes` (and a `name` for people)."""
    out: dict[str, frozenset[str]] = {}
    for n, row in enumerate(data.get("keys", [])):
        where = f"keys[{n}] ({row.get('name', 'unnamed')})"
        scopes = parse_scopes(list(row.get("scopes", [])), where)
        out[_check_hex(str(row.get("sha256", "")), where)] = frozenset(scopes)
    return out


class KeyRing:
    """Looks a presented key up by digest, in the settings' keys and the watched file."""

    def __init__(self, entries: str, path: Path | None = None) -> None:
        self._static = parse_entries(entries)
        self._file = WatchedFile(path, parse_file) if path is not None else None
        if not self._static and self._file is None:
            raise ValueError("no API keys configured: set MARQUEE_API_KEYS or api_keys_file")

    def lookup(self, key: str) -> Principal | None:
        found = digest(key)
        keys = {**self._static, **(self._file.get() if self._file else {})}
        for known, scopes in keys.items():
            if hmac.compare_digest(known, found):
                return Principal(subject=f"key:{found[:12]}", scopes=scopes)
        return None

    def has_digest(self, hex_digest: str) -> bool:
        return hex_digest in self._static
