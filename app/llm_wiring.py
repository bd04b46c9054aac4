"""The service's LLM parts: prompts, the client, re-rankers per variant, the chat.

Built once per process and shared by every request. The re-rankers are cached per
(on/off, pinned prompt versions), behind a lock: two first requests of a variant must not
build two re-rankers (each keeps its own calibration priors). The chat is built on first
use (text index + encoder: a few seconds), also under a lock.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Collection, Mapping

import redis

from app.chat import Chat, ChatLLM, ChatVariant, SessionStore
from app.experiments import VariantConfig
from app.metrics import Metrics
from app.settings import Settings
from catalog.clock import Clock
from catalog.search import TitleIndex
from catalog.tables import Catalog
from llm.client import LLMError, client_from_settings
from llm.explain import explain_enabled
from llm.prompt_pins import PromptSource, check_pins, pinned
from llm.prompts import PromptError, PromptRegistry
from llm.rerank import LLMReranker, resolve_weight
from retrieval.pipeline import text_vectors
from retrieval.text_encoder import encode
from retrieval.text_search import TextSearch

log = logging.getLogger("marquee.service")
RerankerKey = tuple[bool | None, tuple[tuple[str, int], ...]]


class LLMParts:
    def __init__(
        self,
        settings: Settings,
        catalog: Catalog,
        item_ids: Collection[int],
        client: redis.Redis | None,
        metrics: Metrics,
        variants: Mapping[str, VariantConfig],
        clock: Clock | None = None,
    ) -> None:
        """`clock`: the service's, for chat's request times and "this year".
        Fails (PromptError) on a broken prompt or a variant pinning a missing version:
        a deploy must fail at start-up, not at the first chat of that variant."""
        self.settings = settings
        self.catalog = catalog
        self.clock = clock
        self.redis = client
        self.metrics = metrics
        self.prompts = PromptRegistry(settings.prompts_dir)
        problems = self.prompts.validate_all()
        if problems:
            raise PromptError("invalid prompts:\n" + "\n".join(problems))
        check_pins(self.prompts, {v.name: v.prompts for v in variants.values() if v.prompts})
        self.variants = dict(variants)
        self.client = client_from_settings(settings, client, on_call=metrics.llm_call)
        self.item_ids = item_ids
        self.ready = False
        self._rerankers: dict[RerankerKey, LLMReranker] = {}
        self._chat: Chat | None = None
        self._lock = threading.Lock()
        self._warm_lock = threading.Lock()

    def prompts_for(self, variant: VariantConfig | None) -> PromptSource:
        """The registry as `variant` sees it: its pinned versions, else the live ones."""
        return pinned(self.prompts, variant.prompts if variant else None)

    def reranker(
        self, variant_on: bool | None, pins: Mapping[str, int] | None = None
    ) -> LLMReranker:
        """The LLM re-rank: the measured default per model (`variant_on` None), or switched
        on by an experiment variant (True), with that variant's prompt pins. Its weight is
        0 where it is off."""
        enabled = self.settings.llm_rerank if variant_on is None else variant_on
        key = (enabled, tuple(sorted((pins or {}).items())))
        with self._lock:
            if key not in self._rerankers:
                weight, scheme, calibrate = resolve_weight(self.settings.llm_model, enabled)
                self._rerankers[key] = LLMReranker(
                    self.client,
                    pinned(self.prompts, pins),
                    weight=weight,
                    scheme=scheme,
                    calibrate=calibrate,
                    catalog_ids=self.item_ids,
                )
            return self._rerankers[key]

    def chat_variant(self, variant: VariantConfig | None) -> ChatVariant:
        """A variant's re-rank (when it switches the re-rank on) and prompt versions."""
        if variant is None:
            return ChatVariant()
        pins = variant.prompts or None
        return ChatVariant(
            variant.name,
            self.reranker(True, pins) if variant.llm_rerank else None,
            self.prompts_for(variant) if pins else None,
        )

    def chat(self, titles: TitleIndex) -> Chat:
        with self._lock:
            chat = self._chat
        if chat is not None:
            return chat
        default_reranker = self.reranker(None)
        with self._lock:
            if self._chat is None:
                vectors = text_vectors(self.catalog, self.settings)
                search = TextSearch(self.catalog.items, vectors, encode)
                sessions = SessionStore(self.redis, self.settings.redis_prefix)
                llm = ChatLLM(
                    self.client,
                    self.prompts,
                    explain=explain_enabled(self.settings.llm_model, self.settings.llm_explain),
                    budget_ms=self.settings.chat_budget_ms,
                    on_reply=self.metrics.chat_reply,
                )
                self._chat = Chat(search, titles, sessions, llm, default_reranker, clock=self.clock)
            return self._chat

    def warm(self, titles: TitleIndex) -> None:
        """Load the LLM and the chat's indexes before the first user needs them. If the
        model cannot load, chat keeps answering without it (logged, metric)."""
        with self._warm_lock:
            if self.ready:
                return
            try:
                if self.client.enabled:
                    self.client.warm_up()
                self.chat(titles).warm_up([self.chat_variant(v) for v in self.variants.values()])
                self.ready = True
            except LLMError as exc:
                self.metrics.errors.labels(component="llm").inc()
                log.warning("LLM unavailable, chat answers without it: %s", exc)
