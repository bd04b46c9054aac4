"""The nearline consumer: reads the event stream in a consumer group and applies it.

Delivery is at least once: an entry is acknowledged only after its batch was
applied, so a worker killed mid-batch leaves it pending. On restart the worker
first re-reads its own pending entries; entries another (dead) consumer left
pending longer than `claim_idle_ms` are taken over with XAUTOCLAIM. Applying is
idempotent (see `features.nearline`), so a replay changes nothing twice.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from dataclasses import dataclass

import redis

from features.events import StoredEvent, stream_key
from features.nearline import NearlineState

log = logging.getLogger("marquee.worker")
GROUP = "nearline"


@dataclass(frozen=True)
class WorkerConfig:
    batch: int = 256
    block_ms: int = 500
    claim_idle_ms: int = 30_000  # pending this long on another consumer = that consumer died


def default_consumer_name() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


class StreamWorker:
    def __init__(
        self,
        client: redis.Redis,
        prefix: str,
        state: NearlineState,
        consumer: str | None = None,
        config: WorkerConfig | None = None,
    ) -> None:
        self.client = client
        self.stream = stream_key(prefix)
        self.state = state
        self.consumer = consumer or default_consumer_name()
        self.config = config or WorkerConfig()
        self.applied = 0
        self.acked = 0
        self._own_pending_done = False
        self.ensure_group()

    def ensure_group(self) -> None:
        try:
            self.client.xgroup_create(self.stream, GROUP, id="0", mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    def _process(self, entries: list) -> int:
        """Apply then acknowledge; an unparsable entry is acknowledged and logged, not retried."""
        if not entries:
            return 0
        events, ids = [], []
        for entry_id, fields in entries:
            ids.append(entry_id)
            if not fields:  # deleted from the stream while pending
                continue
            try:
                events.append(StoredEvent.from_json(fields[b"event"]))
            except (KeyError, ValueError) as exc:
                log.error("skipping malformed stream entry %s: %s", entry_id, exc)
        self.applied += self.state.apply(events)
        self.acked += int(self.client.xack(self.stream, GROUP, *ids))
        return len(entries)

    def step(self) -> int:
        """One round: own pending entries (after a restart), stale ones of others, then new."""
        cfg = self.config
        if not self._own_pending_done:
            reply = self.client.xreadgroup(
                GROUP, self.consumer, {self.stream: "0"}, count=cfg.batch
            )
            entries = reply[0][1] if reply else []
            if entries:
                return self._process(entries)
            self._own_pending_done = True
        claimed = self.client.xautoclaim(
            self.stream, GROUP, self.consumer, cfg.claim_idle_ms, "0-0", count=cfg.batch
        )
        if claimed and claimed[1]:
            return self._process(claimed[1])
        reply = self.client.xreadgroup(
            GROUP, self.consumer, {self.stream: ">"}, count=cfg.batch, block=cfg.block_ms
        )
        return self._process(reply[0][1] if reply else [])

    def drain(self) -> int:
        """Process until nothing is left (tests and one-shot catch-up)."""
        total = 0
        while processed := self.step():
            total += processed
        return total

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                self.step()
            except (redis.ConnectionError, redis.TimeoutError) as exc:
                log.warning("redis unavailable (%s); retrying", exc)
                stop.wait(1.0)

    def lag(self) -> int:
        """Entries not yet delivered to the group plus those delivered but unacknowledged."""
        groups = {g["name"].decode(): g for g in self.client.xinfo_groups(self.stream)}
        info = groups.get(GROUP)
        if info is None:
            return 0
        return int(info.get("lag") or 0) + int(info.get("pending") or 0)
