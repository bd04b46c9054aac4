"""The composition root of the online service: stores, event log, funnel, experiments.

`Service` composes small parts with one job each: the stores (Redis, or in-process in the
embedded mode), the user-state reader (`app/user_state.py`: snapshot fallback and circuit
breaker), the LLM parts (`app/llm_wiring.py`: prompts, client, re-rankers, chat) and the
supervised background tasks (`app/background.py`). What is left here is the request
path itself: feed, events, onboarding, and bundle swaps.

Events are refused (503) when the log cannot store them, never acknowledged and dropped.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import redis

from app.background import Supervisor
from app.chat import ChatVariant, rerank_inputs
from app.experiments import DEFAULT_EXPERIMENTS, Assigner, VariantConfig, load_experiments
from app.funnel import HISTORY_SOURCES, FeedQuery, FeedResult, Funnel, UserState
from app.llm_wiring import LLMParts
from app.metrics import Metrics
from app.settings import Settings
from app.user_state import UserStateReader, compose_state, request_of
from catalog.clock import Clock, clock_for
from catalog.search import TitleIndex
from catalog.tables import Catalog, load_catalog
from features import candidate_lists
from features.batch import push_batch_features
from features.events import Event, EventLog, InProcessEventLog, RedisEventLog, StoredEvent
from features.nearline import InProcessNearline, NearlineState, RedisNearline
from features.store import FeatureStore, InProcessFeatureStore, RedisFeatureStore
from features.worker import StreamWorker
from llm.client import Budget
from llm.rerank import LLMReranker
from retrieval.pipeline import latest_bundle

log = logging.getLogger("marquee.service")
LIVE_REFRESH_S = 1.0
EVENT_WRITE_TIMEOUT_S = 2.0
__all__ = ["Feed", "Service", "Unavailable", "compose_state", "redis_client"]


class Unavailable(RuntimeError):
    """A dependency needed to honour the request is down (HTTP 503)."""


@dataclass
class Feed:
    result: FeedResult
    variant: str
    stale: bool
    bundle: str
    user_known: bool
    prompts: dict[str, str] = field(default_factory=dict)  # prompt refs that shaped it
    served_at: int = 0  # the clock time the page was built for


def redis_client(url: str, timeout_s: float = 0.25) -> redis.Redis:
    """Short timeouts on the request path: a slow Redis must turn into a stale feed fast."""
    return redis.Redis.from_url(
        url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s, health_check_interval=30
    )


def with_timeout(client: redis.Redis, timeout_s: float) -> redis.Redis:
    """A client to the same server with another socket timeout (its own pool)."""
    pool = client.connection_pool
    kwargs = {**pool.connection_kwargs, "socket_timeout": timeout_s}
    return redis.Redis(connection_pool=redis.ConnectionPool(pool.connection_class, **kwargs))


class Service:
    def __init__(
        self,
        settings: Settings,
        catalog: Catalog,
        funnel: Funnel,
        client: redis.Redis | None = None,
        assigner: Assigner | None = None,
    ) -> None:
        self.settings = settings
        self.catalog = catalog
        self.funnel = funnel
        # One clock for every request-time input (see catalog.clock): the bundle's record
        # (data time for a historical catalog) unless settings choose.
        self.clock: Clock = clock_for(funnel.clock, settings.clock)
        self.assigner = assigner or Assigner(DEFAULT_EXPERIMENTS)
        self.client = client
        self.snapshot = InProcessFeatureStore()
        push_batch_features(catalog, self.snapshot)
        self.store: FeatureStore
        self.nearline: NearlineState
        self.events: EventLog
        if client is None:
            self.store, self.nearline = self.snapshot, InProcessNearline()
            self.events = InProcessEventLog()
        else:
            prefix = settings.redis_prefix
            self.store = RedisFeatureStore(client, prefix)
            self.nearline = RedisNearline(client, prefix)
            # Writes get longer than the read path's timeout: a batch of 500 events is one
            # script, and a client told "503" for a batch that was stored only retries it.
            self.events = RedisEventLog(with_timeout(client, EVENT_WRITE_TIMEOUT_S), prefix)
        self.item_ids = set(catalog.items["item_id"].tolist())
        self.max_catalog_user = int(catalog.events["user_id"].max())
        self.metrics = Metrics(self.freshness)
        self.metrics.set_bundle(funnel.version)
        self.reader = UserStateReader(
            self.store,
            self.nearline,
            self.snapshot,
            catalog,
            self.metrics,
            can_fail=client is not None,
        )
        self.breaker = self.reader.breaker
        self.llm_parts = LLMParts(
            settings,
            catalog,
            self.item_ids,
            client,
            self.metrics,
            self.assigner.variants,
            self.clock,
        )
        self.prompts = self.llm_parts.prompts
        self.llm = self.llm_parts.client
        self._reload_lock = threading.Lock()
        self.warm = False  # every catalog user's candidate lists are stored
        self.background = self._supervisor()

    def _supervisor(self) -> Supervisor:
        return Supervisor(self.metrics.background_restarts, self.metrics.background_up)

    @classmethod
    def from_settings(cls, settings: Settings) -> Service:
        single_threaded_math()
        catalog = load_catalog(settings.dataset, settings)
        folder = latest_bundle(settings, settings.dataset)
        if folder is None or not (folder / "ranking" / "net.pt").is_file():
            raise FileNotFoundError(
                f"no complete model bundle for {settings.dataset}; run `marquee up` or "
                "`marquee train retrieval` and `marquee train ranker` first"
            )
        funnel = Funnel.build(folder, catalog, settings)
        experiments = (
            load_experiments(settings.experiments_path)
            if settings.experiments_path
            else DEFAULT_EXPERIMENTS
        )
        client = redis_client(settings.redis_url) if settings.redis_url else None
        service = cls(settings, catalog, funnel, client, Assigner(experiments))
        if client is not None:
            service.push_features_if_needed()
        return service

    # features ----------------------------------------------------------------------------

    def push_features_if_needed(self, force: bool = False) -> bool:
        """Push batch features when Redis does not hold this catalog version's yet."""
        assert self.client is not None
        marker = f"{self.settings.redis_prefix}:batch-features"
        if not force and self.client.get(marker) == self.catalog.version.encode():
            return False
        push_batch_features(self.catalog, self.store)
        self.client.set(marker, self.catalog.version)
        return True

    def freshness(self) -> dict[str, float]:
        if isinstance(self.nearline, InProcessNearline):
            now = time.time()
            out = self.store.freshness(now)
            out.update({g: now - t for g, t in self.nearline.updated.items()})
            return out
        return self.store.freshness()

    def user_state(self, user_id: int) -> tuple[UserState, bool]:
        """The user's features and whether the user is known at all."""
        state, known, _ = self.reader.read(user_id)
        return state, known

    # feed --------------------------------------------------------------------------------

    def variant(self, user_id: int) -> VariantConfig:
        return self.assigner.assign(user_id)

    def feed(self, user_id: int, query: FeedQuery, at: int | None = None) -> Feed:
        """The user's page now, or at data time `at` (a replay; only on the data clock)."""
        start = time.perf_counter()
        state, known, stored = self.reader.read(user_id)
        self.metrics.stage.labels(stage="features").observe(time.perf_counter() - start)
        funnel = self.funnel  # one reference for the whole request, even across a swap
        variant = self.variant(user_id)
        signature = funnel.signature(state)
        precomputed = candidate_lists.decode(stored, signature)
        now = int(self.clock.now()) if at is None else int(at)
        result = funnel.feed(state, query, variant, now, precomputed=precomputed)
        prompts: dict[str, str] = {}
        if variant.llm_rerank and result.stage == "personalized" and self.llm.enabled:
            ref = self.llm_rerank_feed(state, result, funnel, variant)
            prompts = {"rerank": ref} if ref else {}
        if result.stage == "personalized":
            reused = "stored" if precomputed is not None else "live"
            self.metrics.candidate_lists.labels(outcome=reused).inc()
        if result.fresh_lists is not None and not state.stale:
            self.store_lists(user_id, signature, result.fresh_lists)
        for stage, ms in result.timings_ms.items():
            self.metrics.stage.labels(stage=stage).observe(ms / 1e3)
        for name in result.failed:
            self.metrics.errors.labels(component=name).inc()
        if state.stale:
            self.metrics.stale.inc()
        return Feed(result, variant.name, state.stale, funnel.version, known, prompts, now)

    def llm_rerank_feed(
        self, state: UserState, result: FeedResult, funnel: Funnel, variant: VariantConfig
    ) -> str | None:
        """A variant's LLM re-rank of the page, in place, only within the feed's LLM budget
        (the embedded models need seconds, more than a feed may wait: they are skipped).
        Returns the prompt version that re-ranked it, None when skipped."""
        start = time.perf_counter()
        history, cards = rerank_inputs(
            funnel, state.history, [(it.item_id, it.score) for it in result.items]
        )
        out = self.reranker(True, variant.prompts).rerank(
            history, None, cards, Budget.of(self.settings.feed_llm_budget_ms)
        )
        result.timings_ms["llm_rerank"] = round((time.perf_counter() - start) * 1e3, 2)
        if out.skipped:
            self.metrics.errors.labels(component="llm_rerank_skipped").inc()
            return None
        by_id = {it.item_id: it for it in result.items}
        result.items = [by_id[i] for i in out.order]
        for it in result.items:
            it.sources = (*it.sources, "llm_rerank")
        return out.prompt_ref

    def store_lists(self, user_id: int, signature, lists) -> None:
        """Keep a request's history-dependent lists for the next one (best effort)."""
        if set(lists) != set(HISTORY_SOURCES):  # a failed source: nothing reusable
            return
        try:
            self.store.put_user(
                user_id, candidate_lists.GROUP, candidate_lists.encode(signature, lists)
            )
        except (redis.RedisError, ValueError) as exc:
            self.metrics.errors.labels(component="candidate_lists").inc()
            log.warning("could not store candidate lists: %s", exc)

    def precompute_lists(self, user_ids: Iterable[int]) -> int:
        """Compute and store the history-dependent lists of users whose stored lists are
        missing or outdated (a nearline job: at start-up for every catalog user)."""
        done = 0
        for user_id in user_ids:
            if self.background.stopping.is_set():
                break
            state, _, stored = self.reader.read(int(user_id))
            funnel = self.funnel
            signature = funnel.signature(state)
            if state.stale or candidate_lists.decode(stored, signature) is not None:
                continue
            now = int(self.clock.now())
            if not funnel.cold_start.needs_full_pipeline(request_of(state, now)):
                continue
            self.store_lists(int(user_id), signature, funnel.history_lists(state, now))
            done += 1
        return done

    # chat and LLM ------------------------------------------------------------------------

    def chat(self):
        """The chat, built on first use (text index + encoder: a few seconds)."""
        return self.llm_parts.chat(self.titles)

    def reranker(
        self, variant_on: bool | None, pins: Mapping[str, int] | None = None
    ) -> LLMReranker:
        return self.llm_parts.reranker(variant_on, pins)

    def chat_variant(self, user_id: int | None) -> ChatVariant:
        """The user's variant as chat runs it (API and UI alike); anonymous: defaults."""
        return self.llm_parts.chat_variant(self.variant(user_id) if user_id else None)

    @cached_property
    def titles(self) -> TitleIndex:
        """Title search over the catalog, one for the API, chat and UI (building it
        tokenises every title)."""
        return TitleIndex(self.catalog.items)

    @property
    def llm_ready(self) -> bool:
        return self.llm_parts.ready

    def warm_llm(self) -> None:
        self.llm_parts.warm(self.titles)

    # events ------------------------------------------------------------------------------

    def ingest(self, events: list[Event]) -> list[bool]:
        """Store each event once; True where new. `Unavailable` when the log cannot store."""
        now = self.clock.now()  # events without a timestamp happened now, on the data's clock
        stored = [StoredEvent.accept(e, self.variant(e.user_id).name, now) for e in events]
        try:
            fresh = self.events.append(stored)
        except redis.RedisError as exc:
            self.metrics.errors.labels(component="event_log").inc()
            raise Unavailable(f"event log unavailable, nothing was stored: {exc}") from exc
        if self.client is None:  # embedded mode: no worker, apply in-line
            self.nearline.apply([s for s, f in zip(stored, fresh, strict=True) if f])
        for s, f in zip(stored, fresh, strict=True):
            self.metrics.events.labels(type=s.type.value, outcome="stored" if f else "dup").inc()
        return fresh

    # onboarding --------------------------------------------------------------------------

    def onboard(self, user_id: int | None, profile: dict) -> int:
        try:
            if user_id is None:
                user_id = self.nearline.new_user_id(self.max_catalog_user)
            self.nearline.put_profile(user_id, profile)
        except redis.RedisError as exc:
            raise Unavailable(f"profile store unavailable: {exc}") from exc
        return user_id

    # live inputs and bundle swaps --------------------------------------------------------

    def refresh_live(self) -> None:
        try:
            now = self.clock.now()
            trending = self.nearline.trending(now)
            counts = self.nearline.counters(["click", "impression"])
        except redis.RedisError as exc:
            self.metrics.errors.labels(component="live_refresh").inc()
            log.warning("live refresh skipped: %s", exc)
            return
        self.funnel.refresh_live(trending, counts["click"], counts["impression"], now)

    def reload(self, folder: Path | None = None) -> bool:
        """Build the funnel of a newer bundle off the request path, then swap it in."""
        folder = folder or latest_bundle(self.settings, self.settings.dataset)
        if folder is None or folder.name == self.funnel.version:
            return False
        if not (folder / "ranking" / "net.pt").is_file():
            log.info("bundle %s has no ranker yet; not switching", folder.name)
            return False
        with self._reload_lock:
            if folder.name == self.funnel.version:
                return False
            fresh = Funnel.build(folder, self.catalog, self.settings)
            live = self.funnel.trending.live_items()
            fresh.refresh_live(live, {}, {}, self.clock.now())
            fresh.exploration.bandit = self.funnel.exploration.bandit
            self.funnel = fresh
            self.metrics.set_bundle(fresh.version)
        log.info("now serving bundle %s", fresh.version)
        users = sorted(self.catalog.events["user_id"].unique().tolist())
        threading.Thread(target=self.precompute_lists, args=(users,), daemon=True).start()
        return True

    # background --------------------------------------------------------------------------

    def start_background(self) -> None:
        """Live inputs, bundle polling, the nearline worker and the start-up precompute,
        each supervised (restarted with backoff after any error; see app/background.py)."""
        self.background.stop()
        self.background = self._supervisor()
        self.refresh_live()
        if not self.llm_ready:  # one-shot, never joined: a slow model load must not hold shutdown
            threading.Thread(target=self.warm_llm, name="warm_llm", daemon=True).start()
        self.background.start("live_refresh", self._live_task)
        self.background.start("precompute", self._precompute_task)
        if self.settings.bundle_poll_s > 0:
            self.background.start("bundle_poll", self._bundle_task)
        if self.client is not None and self.settings.serve_worker:
            self.background.start("nearline_worker", self._worker_task)

    def stop_background(self) -> None:
        self.background.stop()

    def _live_task(self, stop: threading.Event) -> None:
        while not stop.wait(LIVE_REFRESH_S):
            self.refresh_live()

    def _bundle_task(self, stop: threading.Event) -> None:
        while not stop.wait(self.settings.bundle_poll_s):
            self.reload()

    def _worker_task(self, stop: threading.Event) -> None:
        # its own client: blocking reads outlast the request path's short timeouts
        client = redis_client(self.settings.redis_url, timeout_s=5.0)
        state = RedisNearline(client, self.settings.redis_prefix)
        StreamWorker(client, self.settings.redis_prefix, state).run(stop)

    def _precompute_task(self, stop: threading.Event) -> None:
        users = sorted(self.catalog.events["user_id"].unique().tolist())
        started = time.perf_counter()
        done = self.precompute_lists(users)
        self.warm = not stop.is_set()
        log.info("stored candidate lists of %d users in %.1fs", done, time.perf_counter() - started)


def single_threaded_math() -> None:
    """One math thread per request thread: the server parallelises across requests, and
    torch/faiss/BLAS thread pools per request oversubscribe 2 cores and spin under load."""
    import faiss
    import torch
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(1)
    faiss.omp_set_num_threads(1)
    threadpool_limits(1)
