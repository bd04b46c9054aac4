"""CLI commands of the trust layer: make API keys, add UI accounts, check exposure."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

from app.errors import UsageError
from app.security.exposure import exposure_problems
from app.security.keys import SCOPES, digest, entry_for, new_key, parse_scopes
from app.security.users import ROLES, add_user
from app.settings import Settings, get_settings

console = Console()
keys_app = typer.Typer(help="Scoped API keys.", no_args_is_help=True)
users_app = typer.Typer(help="UI accounts (the local user store).", no_args_is_help=True)


def refuse_unsafe_exposure(settings: Settings, host: str) -> None:
    """Stop before serving beyond loopback with public development credentials."""
    problems = exposure_problems(settings, host)
    if problems:
        lines = "\n".join(f"  - {p}" for p in problems)
        raise UsageError(f"refusing to serve on {host} (not loopback) while:\n{lines}")


@keys_app.command("new")
def keys_new(
    scope: list[str] = typer.Option(..., help=f"Scope(s) of the key: {', '.join(SCOPES)}."),
    name: str = typer.Option("client", help="A name for people reading the keys file."),
) -> None:
    """Print a new random key once, with the entry to configure (only its digest is kept)."""
    try:
        scopes = parse_scopes(scope, "--scope")
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    key = new_key()
    console.print(f"key (shown once; give it to the client): {key}", soft_wrap=True)
    console.print(f"MARQUEE_API_KEYS entry: {entry_for(key, scopes)}", soft_wrap=True)
    console.print("or in the keys file (MARQUEE_API_KEYS_FILE, re-read on change):")
    quoted = ", ".join(f'"{s}"' for s in scopes)
    console.print(
        f'[[keys]]\nname = "{name}"\nscopes = [{quoted}]\nsha256 = "{digest(key)}"',
        soft_wrap=True,
        markup=False,
    )


@users_app.command("add")
def users_add(
    username: str = typer.Argument(..., help="Sign-in name."),
    user_id: int = typer.Option(..., min=1, help="The recommender's user id it acts as."),
    role: str = typer.Option("user", help=f"One of {', '.join(ROLES)} (admin: prompt lab)."),
    file: Path = typer.Option(None, help="Users file (default: MARQUEE_UI_USERS_FILE)."),
    password: str = typer.Option(
        ..., prompt=True, hide_input=True, confirmation_prompt=True, help="Read from a prompt."
    ),
) -> None:
    """Add (or replace) a UI account; the running server picks it up without a restart."""
    path = file or get_settings().ui_users_file
    if path is None:
        raise UsageError("set MARQUEE_UI_USERS_FILE or pass --file")
    if len(password) < 8:
        raise UsageError("password: at least 8 characters")
    try:
        add_user(Path(path), username, user_id, role, password)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    console.print(f"{username} ({role}) acts as user {user_id}; saved to {path}")
