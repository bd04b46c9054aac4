"""Prometheus metrics of one service instance.

Each service owns its registry (tests build many apps in one process, and the
global default registry would reject the second one). Feature freshness is read
from the store at scrape time rather than pushed, so it is never older than the
scrape itself.
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.035, 0.05, 0.075, 0.1, 0.25, 0.5, 1.0)


class _Freshness(Collector):
    def __init__(self, read: Callable[[], dict[str, float]]) -> None:
        self.read = read

    def collect(self):
        family = GaugeMetricFamily(
            "marquee_feature_freshness_seconds",
            "Seconds since each feature group was last written.",
            labels=["group"],
        )
        try:
            groups = self.read()
        except Exception:  # an unreachable store must not break the scrape
            groups = {}
        for group, age in sorted(groups.items()):
            family.add_metric([group], age)
        yield family


class Metrics:
    def __init__(self, freshness: Callable[[], dict[str, float]]) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "marquee_requests",
            "HTTP requests by route and status.",
            ["route", "status"],
            registry=r,
        )
        self.latency = Histogram(
            "marquee_request_seconds",
            "HTTP request latency by route.",
            ["route"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.stage = Histogram(
            "marquee_stage_seconds",
            "Feed latency per funnel stage.",
            ["stage"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.errors = Counter(
            "marquee_errors",
            "Failures that were degraded instead of surfaced, by component.",
            ["component"],
            registry=r,
        )
        self.stale = Counter(
            "marquee_stale_responses", "Feeds served from the in-process snapshot.", registry=r
        )
        self.events = Counter(
            "marquee_events",
            "Ingested events by type and outcome.",
            ["type", "outcome"],
            registry=r,
        )
        self.candidate_lists = Counter(
            "marquee_candidate_lists",
            "Personalized feeds by where their history-dependent "
            "candidate lists came from (stored nearline or computed live).",
            ["outcome"],
            registry=r,
        )
        self._llm_and_background(r)
        self.registry.register(_Freshness(freshness))

    def _llm_and_background(self, r: CollectorRegistry) -> None:
        self.llm_calls = Counter(
            "marquee_llm_calls",
            "LLM calls by kind, prompt and outcome (ok, cached, error).",
            ["kind", "prompt", "outcome"],
            registry=r,
        )
        self.llm_latency = Histogram(
            "marquee_llm_seconds",
            "LLM call latency by kind.",
            ["kind"],
            buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0),
            registry=r,
        )
        self.llm_tokens = Counter(
            "marquee_llm_tokens",
            "Tokens spent by LLM calls (prompt, completion).",
            ["type"],
            registry=r,
        )
        self.chat_replies = Counter(
            "marquee_chat_replies",
            "LLM chat replies by outcome (kept: shown; replaced: the template was shown "
            "instead) and the check that failed (llm/reply_check.py; error: no usable reply).",
            ["outcome", "check"],
            registry=r,
        )
        self.bundle = Gauge(
            "marquee_bundle_info",
            "The model bundle being served (value 1).",
            ["version"],
            registry=r,
        )
        self.background_restarts = Counter(
            "marquee_background_restarts",
            "Restarts of a supervised background task after an error, by task.",
            ["task"],
            registry=r,
        )
        self.background_up = Gauge(
            "marquee_background_up",
            "1 while a supervised background task runs, 0 while it waits to restart.",
            ["task"],
            registry=r,
        )

    def llm_call(self, record) -> None:
        """One `llm.client.CallRecord`: the client reports every call here."""
        outcome = "error" if not record.ok else "cached" if record.cached else "ok"
        self.llm_calls.labels(kind=record.kind, prompt=record.prompt or "-", outcome=outcome).inc()
        self.llm_latency.labels(kind=record.kind).observe(record.latency_ms / 1e3)
        self.llm_tokens.labels(type="prompt").inc(record.prompt_tokens)
        self.llm_tokens.labels(type="completion").inc(record.completion_tokens)

    def chat_reply(self, outcome: str, check: str | None) -> None:
        """One checked LLM reply (chat reports each here); kept share = kept / all."""
        self.chat_replies.labels(outcome=outcome, check=check or "-").inc()

    def set_bundle(self, version: str) -> None:
        self.bundle.clear()
        self.bundle.labels(version=version).set(1)

    def render(self) -> bytes:
        return generate_latest(self.registry)
