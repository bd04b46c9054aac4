"""Safe defaults: refuse to listen beyond loopback with public credentials; mask URLs."""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit, urlunsplit

from app.security.keys import parse_entries
from app.settings import DEV_API_KEYS, Settings

LOOPBACK_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost"}


def is_loopback(host: str) -> bool:
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a name that may resolve anywhere counts as exposed


def exposure_problems(settings: Settings, host: str) -> list[str]:
    """What must change before serving on `host`; empty when it is safe (or loopback)."""
    if is_loopback(host):
        return []
    problems = []
    dev = set(parse_entries(DEV_API_KEYS))
    if dev & set(parse_entries(settings.api_keys.get_secret_value())):
        problems.append(
            "the public development key `marquee-dev` is configured: set MARQUEE_API_KEYS "
            "to your own keys (`marquee keys new --scope read`)"
        )
    if settings.ui_users_file is None:
        problems.append(
            "the UI's development accounts (demo/demo, admin/admin) are active: set "
            "MARQUEE_UI_USERS_FILE (`marquee users add NAME --user-id N`)"
        )
    return problems


def mask_url(url: str) -> str:
    """`redis://:secret@host:6379/0` -> `redis://:***@host:6379/0`."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    host = f"[{host}]" if ":" in host else host
    port = f":{parts.port}" if parts.port else ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}{port}"))
