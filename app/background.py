"""Supervised background tasks: a task that fails is logged, counted and restarted.

The nearline worker, the live-input refresh and the bundle poll run for the life of the
process. Before, one unexpected error (a Redis `ResponseError` for OOM or a key of the
wrong type) ended such a thread for good while `/readyz` kept saying ready: likes
stopped changing feeds and nothing said so. Here every task runs under a supervisor that
restarts it after ANY exception, with exponential backoff so a persistent fault does not
spin a core or flood the log, and publishes its state: `marquee_background_up{task}` (1
running, 0 backing off), `marquee_background_restarts_total{task}`, and `status()` for
`/readyz`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from prometheus_client import Counter, Gauge

log = logging.getLogger("marquee.background")

Task = Callable[[threading.Event], None]


@dataclass(frozen=True)
class Backoff:
    """Waits between restarts: `first_s`, doubling up to `max_s`; a task that ran for
    `healthy_after_s` without failing starts again from `first_s`."""

    first_s: float = 0.1
    max_s: float = 30.0
    healthy_after_s: float = 60.0


@dataclass
class TaskState:
    up: bool = False
    restarts: int = 0
    last_error: str | None = None
    done: bool = False  # a one-shot task that returned


class Supervisor:
    """Runs named tasks in daemon threads until `stop()`; see the module docstring.

    A task is `target(stop_event)`: it should return when the event is set. A task that
    returns on its own is finished (one-shot jobs such as the start-up precompute).
    """

    def __init__(self, restarts: Counter, up: Gauge, backoff: Backoff = Backoff()) -> None:
        self._restarts = restarts
        self._up = up
        self.backoff = backoff
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._states: dict[str, TaskState] = {}
        self._lock = threading.Lock()

    def start(self, name: str, target: Task) -> None:
        with self._lock:
            self._states[name] = TaskState(up=True)  # starting counts as running
        self._up.labels(task=name).set(1)
        thread = threading.Thread(target=self._run, args=(name, target), name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    def _run(self, name: str, target: Task) -> None:
        wait = self.backoff.first_s
        while not self._stop.is_set():
            started = time.monotonic()
            self._set(name, up=True)
            try:
                target(self._stop)
            except Exception as exc:  # any error: that is what the supervisor is for
                ran_s = time.monotonic() - started
                wait = self.backoff.first_s if ran_s >= self.backoff.healthy_after_s else wait
                self._restarts.labels(task=name).inc()
                self._set(name, up=False, error=f"{type(exc).__name__}: {exc}"[:300], failed=True)
                log.exception("background task %s failed; restarting in %.1fs", name, wait)
                if self._stop.wait(wait):
                    break
                wait = min(wait * 2, self.backoff.max_s)
                continue
            with self._lock:
                self._states[name].done = not self._stop.is_set()
            break
        self._set(name, up=False)

    def _set(self, name: str, *, up: bool, error: str | None = None, failed: bool = False) -> None:
        with self._lock:
            state = self._states[name]
            state.up = up
            if failed:
                state.restarts += 1
                state.last_error = error
        self._up.labels(task=name).set(1 if up else 0)

    def status(self) -> dict[str, dict]:
        """Per task: up, restarts, last_error, done."""
        with self._lock:
            return {name: vars(state).copy() for name, state in self._states.items()}

    def failing(self) -> list[str]:
        """Tasks that should be running and are not (failed, waiting to restart)."""
        if self._stop.is_set():  # stopping: nothing is expected to run
            return []
        with self._lock:
            return sorted(n for n, s in self._states.items() if not s.up and not s.done)

    def stop(self, timeout_s: float = 5.0) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=timeout_s)
        self._threads = []

    @property
    def stopping(self) -> threading.Event:
        return self._stop
