"""Missing infrastructure (Redis, datasets, a browser, a model) is a skip on a laptop and a
failure in CI.

A skip that hides a missing service is how a green CI run comes to test nothing: when
CI=true, every such guard fails the test instead, naming what was missing. Skips that are
not about infrastructure (a parameter that does not apply) stay plain pytest.skip.
"""

from __future__ import annotations

import importlib
import os
from types import ModuleType
from typing import NoReturn

import pytest


def in_ci() -> bool:
    """True under CI (CI=true, as .ci/run and most CI systems set it)."""
    return os.environ.get("CI") == "true"


def missing(reason: str) -> NoReturn:
    """Stop the test: skip locally, fail in CI, because `reason` names missing infrastructure."""
    if in_ci():
        pytest.fail(f"required in CI: {reason}", pytrace=False)
    pytest.skip(reason)


def require(ok: bool, reason: str) -> None:
    """Continue when `ok`; otherwise `missing(reason)`."""
    if not ok:
        missing(reason)


def import_or_missing(name: str, reason: str | None = None) -> ModuleType:
    """pytest.importorskip that fails in CI: the module is part of the installed toolchain."""
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        missing(reason or f"{name} is not installed ({exc})")
