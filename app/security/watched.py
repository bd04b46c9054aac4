"""A config file re-read when it changes, so keys and accounts rotate without a restart."""

from __future__ import annotations

import threading
import time
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Generic, TypeVar

T = TypeVar("T")


class WatchedFile(Generic[T]):
    """`parse(toml dict)` of `path`, re-parsed when its mtime or size changes (checked at
    most every `poll_s`). A file that turns unreadable or invalid keeps the last good
    contents (a half-written edit must not lock everyone out) and `error` says why."""

    def __init__(self, path: Path, parse: Callable[[dict], T], poll_s: float = 1.0) -> None:
        self.path = path
        self.parse = parse
        self.poll_s = poll_s
        self.error: str | None = None
        self._lock = threading.Lock()
        self._stamp: tuple[int, int] | None = None
        self._checked = 0.0
        self._value: T = parse(self._read())  # a bad file at start-up is a config error
        self._stamp = self._stat()

    def _stat(self) -> tuple[int, int] | None:
        try:
            st = self.path.stat()
        except OSError:
            return None
        return st.st_mtime_ns, st.st_size

    def _read(self) -> dict:
        return tomllib.loads(self.path.read_text(encoding="utf-8"))

    def get(self) -> T:
        now = time.monotonic()
        if now - self._checked < self.poll_s:
            return self._value
        with self._lock:
            self._checked = now
            stamp = self._stat()
            if stamp != self._stamp:
                try:
                    self._value = self.parse(self._read())
                    self.error = None
                except (OSError, ValueError, tomllib.TOMLDecodeError) as exc:
                    self.error = f"{self.path}: {exc}"
                self._stamp = stamp
        return self._value
