"""UI accounts: a small local store with scrypt-hashed passwords.

Why a file and stdlib scrypt: the embedded default needs no service to run; an external
identity provider replaces `UserStore.verify` (Gradio's auth hook takes any callable).
The file is re-read on change, so `marquee users add` takes effect without a restart.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import tomllib
from dataclasses import dataclass
from pathlib import Path

from app.security.watched import WatchedFile

ROLES = ("user", "admin")
USERNAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")
_N, _R, _P = 2**14, 8, 1  # scrypt cost: ~20 ms and 16 MiB per check


@dataclass(frozen=True)
class Account:
    username: str
    user_id: int
    role: str
    password_hash: str

    @property
    def admin(self) -> bool:
        return self.role == "admin"


def hash_password(password: str, salt: bytes | None = None) -> str:
    salt = salt or secrets.token_bytes(16)
    key = hashlib.scrypt(password.encode(), salt=salt, n=_N, r=_R, p=_P, dklen=32)
    b64 = base64.b64encode
    return f"scrypt${_N}${_R}${_P}${b64(salt).decode()}${b64(key).decode()}"


def check_password(password: str, stored: str) -> bool:
    try:
        kind, n, r, p, salt, key = stored.split("$")
        assert kind == "scrypt"
        want = base64.b64decode(key)
        got = hashlib.scrypt(
            password.encode(), salt=base64.b64decode(salt), n=int(n), r=int(r), p=int(p), dklen=32
        )
    except (ValueError, AssertionError):
        return False
    return hmac.compare_digest(want, got)


# Development accounts when no users file is set: refused beyond loopback (exposure.py).
DEV_ACCOUNTS = {"demo": (1, "user"), "admin": (2, "admin")}


def _dev_accounts() -> dict[str, Account]:
    return {
        name: Account(name, uid, role, hash_password(name))
        for name, (uid, role) in DEV_ACCOUNTS.items()
    }


def parse_users(data: dict) -> dict[str, Account]:
    out: dict[str, Account] = {}
    for n, row in enumerate(data.get("users", [])):
        name, role = str(row.get("username", "")), str(row.get("role", "user"))
        if not name or role not in ROLES or not str(row.get("password", "")).startswith("scrypt$"):
            raise ValueError(f"users[{n}]: needs username, role in {ROLES}, a scrypt password")
        out[name] = Account(name, int(row["user_id"]), role, str(row["password"]))
    return out


class UserStore:
    def __init__(self, path: Path | None) -> None:
        self.dev = path is None
        self._file = WatchedFile(path, parse_users) if path is not None else None
        self._dev = _dev_accounts() if path is None else {}

    def accounts(self) -> dict[str, Account]:
        return self._file.get() if self._file else self._dev

    def get(self, username: str | None) -> Account | None:
        return self.accounts().get(username or "")

    def verify(self, username: str, password: str) -> bool:
        """Gradio's auth callable. A wrong name costs a hash too (no timing oracle)."""
        account = self.get(username)
        stored = account.password_hash if account else hash_password("x" * 12)
        return check_password(password, stored) and account is not None


def add_user(path: Path, username: str, user_id: int, role: str, password: str) -> None:
    """Append (or replace) an account in the TOML users file."""
    if role not in ROLES:
        raise ValueError(f"role must be one of {ROLES}")
    if not USERNAME.fullmatch(username):
        raise ValueError("username: 1-64 letters, digits, `.`, `_` or `-`")
    rows = tomllib.loads(path.read_text()).get("users", []) if path.is_file() else []
    rows = [r for r in rows if r.get("username") != username]
    rows.append({"username": username, "user_id": user_id, "role": role})
    hashes = {username: hash_password(password)}
    lines: list[str] = []
    for row in rows:
        stored = hashes.get(row["username"], row.get("password", ""))
        lines += [
            "[[users]]",
            f'username = "{row["username"]}"',
            f"user_id = {int(row['user_id'])}",
            f'role = "{row["role"]}"',
            f'password = "{stored}"',
            "",
        ]
    path.write_text("\n".join(lines))
