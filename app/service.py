"""The composition root of the online service: stores, event log, funnel, experiments.

Redis is the source of truth for online features and events when configured. The
service also keeps an in-process snapshot of the batch features, so when Redis
stops answering it serves feeds from that snapshot (without the last minutes of
events) and marks them `stale` instead of failing. A short circuit breaker makes
an outage cost one timeout every few seconds rather than one per request.
Events are different: an event the log could not store is refused (503), never
acknowledged and dropped.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, replace
from functools import cached_property
from pathlib import Path

import numpy as np
import redis

from app.experiments import DEFAULT_EXPERIMENTS, Assigner, VariantConfig, load_experiments
from app.funnel import HISTORY_SOURCES, FeedQuery, FeedResult, Funnel, UserState
from app.metrics import Metrics
from app.settings import Settings
from catalog.search import TitleIndex
from catalog.tables import Catalog, load_catalog
from features import candidate_lists
from features.batch import UserHistory, push_batch_features
from features.events import (
    ENGAGEMENTS,
    Event,
    EventLog,
    EventType,
    InProcessEventLog,
    RedisEventLog,
    StoredEvent,
)
from features.nearline import InProcessNearline, NearlineState, RecentEvent, RedisNearline
from features.store import FeatureStore, InProcessFeatureStore, RedisFeatureStore
from llm.client import Budget, LLMError, client_from_settings
from llm.prompts import PromptError, PromptRegistry
from llm.rerank import LLMReranker, resolve_weight
from ranking.cold_start import OnboardingPicks
from retrieval.base import RequestContext
from retrieval.pipeline import latest_bundle

log = logging.getLogger("marquee.service")
LIVE_REFRESH_S = 1.0


class Unavailable(RuntimeError):
    """A dependency needed to honour the request is down (HTTP 503)."""


class Breaker:
    def __init__(self, cooldown_s: float = 2.0) -> None:
        self.cooldown_s = cooldown_s
        self._open_until = 0.0

    def available(self) -> bool:
        return time.monotonic() >= self._open_until

    def trip(self) -> None:
        self._open_until = time.monotonic() + self.cooldown_s

    def reset(self) -> None:
        self._open_until = 0.0


@dataclass
class Feed:
    result: FeedResult
    variant: str
    stale: bool
    bundle: str
    user_known: bool


def redis_client(url: str, timeout_s: float = 0.25) -> redis.Redis:
    """Short timeouts on the request path: a slow Redis must turn into a stale feed fast."""
    return redis.Redis.from_url(
        url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s, health_check_interval=30
    )


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
        self.assigner = assigner or Assigner(DEFAULT_EXPERIMENTS)
        self.client = client
        self.breaker = Breaker()
        self.snapshot = InProcessFeatureStore()
        push_batch_features(catalog, self.snapshot)
        self.store: FeatureStore
        self.nearline: NearlineState
        self.events: EventLog
        if client is None:
            self.store, self.nearline, self.events = (
                self.snapshot,
                InProcessNearline(),
                InProcessEventLog(),
            )
        else:
            prefix = settings.redis_prefix
            self.store = RedisFeatureStore(client, prefix)
            self.nearline = RedisNearline(client, prefix)
            self.events = RedisEventLog(client, prefix)
        self.item_ids = set(catalog.items["item_id"].tolist())
        self.demographics = _demographics(catalog)
        self.max_catalog_user = int(catalog.events["user_id"].max())
        self.metrics = Metrics(self.freshness)
        self.metrics.set_bundle(funnel.version)
        self._reload_lock = threading.Lock()
        self.warm = False  # every catalog user's candidate lists are stored
        self._chat = None
        self._chat_lock = threading.Lock()
        self.prompts = PromptRegistry(settings.prompts_dir)
        problems = self.prompts.validate_all()
        if problems:  # a broken prompt must fail the deploy, not the first chat
            raise PromptError("invalid prompts:\n" + "\n".join(problems))
        self.llm = client_from_settings(settings, client, on_call=self.metrics.llm_call)
        self.llm_ready = False
        self._rerankers: dict[bool | None, LLMReranker] = {}
        self._warm_lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

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
        state, known, _ = self._read_user(user_id)
        return state, known

    def _read_user(self, user_id: int) -> tuple[UserState, bool, dict | None]:
        """State, known, and the stored candidate lists' features (None when unreadable)."""
        long, recent, profile, lists = None, [], None, None
        groups = ["user_long", candidate_lists.GROUP]
        stale = self.client is not None and not self.breaker.available()
        if not stale:  # the same reads in both modes; only Redis can fail
            try:
                stored = self.store.get_user(user_id, groups)
                long, lists = stored.get("user_long"), stored.get(candidate_lists.GROUP)
                recent, profile = self.nearline.user_view(user_id)
                self.breaker.reset()
            except redis.RedisError as exc:
                self.breaker.trip()
                self.metrics.errors.labels(component="feature_store").inc()
                log.warning("feature store unavailable, serving the snapshot: %s", exc)
                stale = True
        if stale:
            long = self.snapshot.get_user(user_id, ["user_long"]).get("user_long")
        batch = UserHistory.from_features(long) if long else None
        state = compose_state(user_id, batch, recent, profile, self.demographics.get(user_id))
        state = replace(state, stale=stale)
        known = batch is not None or bool(recent) or profile is not None
        return state, known, lists

    # feed --------------------------------------------------------------------------------

    def variant(self, user_id: int) -> VariantConfig:
        return self.assigner.assign(user_id)

    def feed(self, user_id: int, query: FeedQuery) -> Feed:
        start = time.perf_counter()
        state, known, stored = self._read_user(user_id)
        self.metrics.stage.labels(stage="features").observe(time.perf_counter() - start)
        funnel = self.funnel  # one reference for the whole request, even across a swap
        variant = self.variant(user_id)
        signature = funnel.signature(state)
        precomputed = candidate_lists.decode(stored, signature)
        result = funnel.feed(state, query, variant, precomputed=precomputed)
        if variant.llm_rerank and result.stage == "personalized" and self.llm.enabled:
            self.llm_rerank_feed(state, result, funnel)
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
        return Feed(result, variant.name, state.stale, funnel.version, known)

    def llm_rerank_feed(self, state: UserState, result: FeedResult, funnel: Funnel) -> None:
        """A variant's LLM re-rank of the page, in place, only within the feed's LLM budget
        (the embedded models need seconds, more than a feed may wait: they are skipped)."""
        start = time.perf_counter()
        from app.chat import rerank_inputs

        history, cards = rerank_inputs(
            funnel, state.history, [(it.item_id, it.score) for it in result.items]
        )
        out = self.reranker(True).rerank(
            history, None, cards, Budget.of(self.settings.feed_llm_budget_ms)
        )
        result.timings_ms["llm_rerank"] = round((time.perf_counter() - start) * 1e3, 2)
        if out.skipped:
            self.metrics.errors.labels(component="llm_rerank_skipped").inc()
            return
        by_id = {it.item_id: it for it in result.items}
        result.items = [by_id[i] for i in out.order]
        for it in result.items:
            it.sources = (*it.sources, "llm_rerank")

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
            if self._stop.is_set():
                break
            state, _, stored = self._read_user(int(user_id))
            funnel = self.funnel
            signature = funnel.signature(state)
            if state.stale or candidate_lists.decode(stored, signature) is not None:
                continue
            if not funnel.cold_start.needs_full_pipeline(_request_of(state)):
                continue
            self.store_lists(int(user_id), signature, funnel.history_lists(state))
            done += 1
        return done

    # chat --------------------------------------------------------------------------------

    def chat(self):
        """The chat, built on first use (text index + encoder: a few seconds)."""
        with self._chat_lock:
            if self._chat is None:
                from app.chat import Chat, ChatLLM, SessionStore
                from retrieval.pipeline import text_vectors
                from retrieval.text_encoder import encode
                from retrieval.text_search import TextSearch

                vectors = text_vectors(self.catalog, self.settings)
                search = TextSearch(self.catalog.items, vectors, encode)
                sessions = SessionStore(self.client, self.settings.redis_prefix)
                llm = ChatLLM(
                    self.llm,
                    self.prompts,
                    explain=self.settings.llm_explain,
                    budget_ms=self.settings.chat_budget_ms,
                )
                self._chat = Chat(search, self.titles, sessions, llm, self.reranker(None))
            return self._chat

    def reranker(self, variant_on: bool | None) -> LLMReranker:
        """The LLM re-rank: the measured default per model (`variant_on` None), or switched
        on by an experiment variant (True). Its weight is 0 where it is off."""
        enabled = self.settings.llm_rerank if variant_on is None else variant_on
        if enabled not in self._rerankers:
            weight, scheme, calibrate = resolve_weight(self.settings.llm_model, enabled)
            self._rerankers[enabled] = LLMReranker(
                self.llm,
                self.prompts,
                weight=weight,
                scheme=scheme,
                calibrate=calibrate,
                catalog_ids=self.item_ids,
            )
        return self._rerankers[enabled]

    @cached_property
    def titles(self) -> TitleIndex:
        """Title search over the catalog, one for the API, chat and UI (building it
        tokenises every title)."""
        return TitleIndex(self.catalog.items)

    def warm_llm(self) -> None:
        """Load the LLM and the chat's indexes before the first user needs them. If the
        model cannot load, chat keeps answering without it (logged, metric)."""
        with self._warm_lock:
            if self.llm_ready:
                return
            try:
                if self.llm.enabled:
                    self.llm.warm_up()
                self.chat().warm_up()
                self.llm_ready = True
            except LLMError as exc:
                self.metrics.errors.labels(component="llm").inc()
                log.warning("LLM unavailable, chat answers without it: %s", exc)

    # events ------------------------------------------------------------------------------

    def ingest(self, events: list[Event]) -> list[bool]:
        """Store each event once; True where new. `Unavailable` when the log cannot store."""
        now = time.time()
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
            trending = self.nearline.trending(time.time())
            counts = self.nearline.counters(["click", "impression"])
        except redis.RedisError as exc:
            self.metrics.errors.labels(component="live_refresh").inc()
            log.warning("live refresh skipped: %s", exc)
            return
        self.funnel.refresh_live(trending, counts["click"], counts["impression"])

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
            fresh.refresh_live(live, {}, {})
            fresh.exploration.bandit = self.funnel.exploration.bandit
            self.funnel = fresh
            self.metrics.set_bundle(fresh.version)
        log.info("now serving bundle %s", fresh.version)
        users = sorted(self.catalog.events["user_id"].unique().tolist())
        threading.Thread(target=self.precompute_lists, args=(users,), daemon=True).start()
        return True

    def start_background(self) -> None:
        self._stop = threading.Event()
        self._threads = []

        def live_loop() -> None:
            while not self._stop.wait(LIVE_REFRESH_S):
                self.refresh_live()

        def bundle_loop() -> None:
            while not self._stop.wait(self.settings.bundle_poll_s):
                try:
                    self.reload()
                except Exception:  # a broken bundle must not take the service down
                    log.exception("bundle reload failed; still serving %s", self.funnel.version)

        def worker_loop() -> None:
            from features.worker import StreamWorker

            # its own client: blocking reads outlast the request path's short timeouts
            client = redis_client(self.settings.redis_url, timeout_s=5.0)
            state = RedisNearline(client, self.settings.redis_prefix)
            StreamWorker(client, self.settings.redis_prefix, state).run(self._stop)

        def precompute_loop() -> None:
            users = sorted(self.catalog.events["user_id"].unique().tolist())
            started = time.perf_counter()
            done = self.precompute_lists(users)
            self.warm = not self._stop.is_set()
            log.info(
                "stored candidate lists of %d users in %.1fs", done, time.perf_counter() - started
            )

        self.refresh_live()
        if not self.llm_ready:  # one-shot, never joined: a slow model load must not hold shutdown
            threading.Thread(target=self.warm_llm, name="warm_llm", daemon=True).start()
        loops = [live_loop, precompute_loop]
        loops += [bundle_loop] if self.settings.bundle_poll_s > 0 else []
        if self.client is not None and self.settings.serve_worker:
            loops.append(worker_loop)
        for loop in loops:
            thread = threading.Thread(target=loop, name=loop.__name__, daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop_background(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=5)


def _request_of(state: UserState) -> RequestContext:
    return RequestContext(
        state.user_id,
        state.history,
        int(time.time()),
        state.demographics,
        history_times=state.history_times,
    )


def single_threaded_math() -> None:
    """One math thread per request thread: the server parallelises across requests, and
    torch/faiss/BLAS thread pools per request oversubscribe 2 cores and spin under load."""
    import faiss
    import torch
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(1)
    faiss.omp_set_num_threads(1)
    threadpool_limits(1)


def compose_state(
    user_id: int,
    batch: UserHistory | None,
    recent: list[RecentEvent],
    profile: dict | None,
    catalog_demographics: dict | None,
) -> UserState:
    """Batch history + fresh engagement (deduplicated, latest kept, time order)."""
    engaged = [e for e in recent if e.type in ENGAGEMENTS]
    items = np.concatenate(
        [
            batch.items if batch else np.empty(0, np.int64),
            np.array([e.item_id for e in engaged], dtype=np.int64),
        ]
    )
    times = np.concatenate(
        [
            batch.times if batch else np.empty(0, np.int64),
            np.array([e.timestamp for e in engaged], dtype=np.int64),
        ]
    )
    order = np.argsort(times, kind="stable")
    items, times = items[order], times[order]
    _, last_rev = np.unique(items[::-1], return_index=True)
    keep = np.sort(len(items) - 1 - last_rev)
    disliked = frozenset(e.item_id for e in recent if e.type is EventType.DISLIKE)
    keep = keep[~np.isin(items[keep], list(disliked))] if disliked else keep
    demographics = (profile or {}).get("demographics") or catalog_demographics
    picks = None
    if profile:
        picks = OnboardingPicks(
            tuple(int(i) for i in profile.get("liked_item_ids", [])),
            tuple(str(g) for g in profile.get("liked_genres", [])),
        )
    return UserState(
        user_id=user_id,
        history=items[keep],
        history_times=times[keep],
        demographics=demographics or None,
        picks=picks,
        disliked=disliked,
    )


def _demographics(catalog: Catalog) -> dict[int, dict]:
    columns = [c for c in ("age", "gender", "occupation") if c in catalog.users.columns]
    if not columns:
        return {}
    frame = catalog.users.set_index("user_id")[columns]
    return {int(u): {k: v for k, v in row.items() if v == v} for u, row in frame.iterrows()}
