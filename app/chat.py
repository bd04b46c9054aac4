"""Chat without an LLM: a mood request, parsed and searched, personalised, then the rules.

message (+ the session's previous query) -> deterministic intent parser ->
text search within the parsed constraints (plus neighbours of any "like <title>") ->
fused by rank with the user's own two-tower candidates that satisfy the same
constraints (taste) -> the feed's policy and diversity rules -> top `count` with
reasons. Sessions keep the last query so follow-ups ("something older") refine it.
The LLM re-rank, phrased explanations and streaming come with the LLM layer.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections.abc import Iterator, Sequence

import redis

from app.funnel import DEFAULT_LAMBDA, Funnel, UserState
from catalog.search import TitleIndex
from llm.intent import RetrievalQuery, parse_intent
from ranking.base import FeedContext, RankedItem
from ranking.rules import ContentPolicy, Diversity, DiversityConfig, RemoveSeen, RulePipeline
from retrieval.base import RequestContext
from retrieval.text_search import RRF_K, Filters, TextSearch

log = logging.getLogger("marquee.chat")
SESSION_TTL_S = 24 * 3600
MAX_TURNS = 20
TEXT_DEPTH = 200  # text hits considered before personalisation and rules
TASTE_WEIGHT = 0.5  # the user's two-tower rank counts half as much as the request's


class SessionStore:
    """Chat sessions in Redis (expiring), or in a dict in the embedded mode."""

    def __init__(self, client: redis.Redis | None, prefix: str) -> None:
        self.client = client
        self.prefix = f"{prefix}:chat"
        self._local: dict[str, str] = {}
        self._lock = threading.Lock()

    def load(self, session_id: str) -> dict:
        """The session, or a fresh one (also when Redis is unreachable: chat still answers)."""
        if self.client is not None:
            try:
                raw = self.client.get(f"{self.prefix}:{session_id}")
            except redis.RedisError as exc:
                log.warning("chat session unavailable: %s", exc)
                raw = None
        else:
            with self._lock:
                raw = self._local.get(session_id)
        return json.loads(raw) if raw else {"turns": []}

    def save(self, session_id: str, session: dict) -> None:
        raw = json.dumps(session)
        if self.client is not None:
            try:
                self.client.set(f"{self.prefix}:{session_id}", raw, ex=SESSION_TTL_S)
            except redis.RedisError as exc:  # the answer still goes out; follow-ups lose context
                log.warning("chat session not saved: %s", exc)
        else:
            with self._lock:
                self._local[session_id] = raw


def filters_of(query: RetrievalQuery) -> Filters:
    return Filters(
        frozenset(query.include_genres), frozenset(query.exclude_genres), query.year_min,
        query.year_max, query.max_runtime, query.language,
    )  # fmt: skip


class Chat:
    def __init__(self, search: TextSearch, titles: TitleIndex, sessions: SessionStore) -> None:
        self.search = search
        self.titles = titles
        self.sessions = sessions
        self.genres = sorted({g for gs in search.items["genres"] for g in gs})
        self._rules: dict[int, RulePipeline] = {}

    def rules(self, funnel: Funnel) -> RulePipeline:
        key = id(funnel)
        if key not in self._rules:
            self._rules = {key: RulePipeline(
                [RemoveSeen(), ContentPolicy(funnel.meta),
                 Diversity(funnel.meta, DiversityConfig(lambda_=DEFAULT_LAMBDA))],
                critical={"remove_seen", "content_policy"},
            )}  # fmt: skip
        return self._rules[key]

    def reply(
        self, funnel: Funnel, user: UserState, message: str, session_id: str | None,
        count: int | None = None,
    ) -> dict:  # fmt: skip
        session_id = session_id or uuid.uuid4().hex
        session = self.sessions.load(session_id)
        previous = session.get("query")
        query = parse_intent(
            message, self.genres, self.titles,
            RetrievalQuery(**previous) if previous else None,
        )  # fmt: skip
        k = count or query.count
        ranked = self.candidates(funnel, user, query)
        request = RequestContext(user.user_id, user.history, int(time.time()),
                                 user.demographics, user.disliked, user.history_times)  # fmt: skip
        page = self.rules(funnel).apply(FeedContext(request=request, page_size=k), ranked)[:k]
        session["query"] = query.model_dump()
        session["turns"] = [*session["turns"], {"message": message}][-MAX_TURNS:]
        self.sessions.save(session_id, session)
        return {"session_id": session_id, "query": query, "items": page,
                "reasons": [self.reason(r, query, funnel) for r in page]}  # fmt: skip

    def stream(
        self, funnel: Funnel, user: UserState, message: str, session_id: str | None,
        count: int | None = None,
    ) -> Iterator[dict]:  # fmt: skip
        """The reply as events, in order: `query`, `items`, `token`*, `explanations`, `done`.

        Each event is {"event": name, "data": ...}: `query` the parsed request (dict),
        `items` the cards [{item_id, title, year, genres, score, sources, reason}], `token`
        a piece of the reply text, `explanations` {item_id: one-line reason} replacing the
        cards' reasons, `done` {session_id, model, prompts, timings_ms}.
        """
        out = self.reply(funnel, user, message, session_id, count)
        yield {"event": "query", "data": out["query"].model_dump()}
        cards = [
            {**funnel.summaries[r.item_id], "score": r.score, "sources": list(r.sources),
             "reason": reason}
            for r, reason in zip(out["items"], out["reasons"], strict=True)
        ]  # fmt: skip
        yield {"event": "items", "data": cards}
        yield {"event": "done", "data": {"session_id": out["session_id"], "model": None,
                                         "prompts": {}, "timings_ms": {}}}  # fmt: skip

    def candidates(
        self, funnel: Funnel, user: UserState, query: RetrievalQuery
    ) -> list[RankedItem]:
        """Request hits and the user's taste inside the same constraints, fused by rank."""
        filters = filters_of(query)
        fused: dict[int, float] = {}
        sources: dict[int, set[str]] = {}

        def add(ids: Sequence[int], weight: float, source: str) -> None:
            for rank, item in enumerate(ids):
                fused[item] = fused.get(item, 0.0) + weight / (RRF_K + 1 + rank)
                sources.setdefault(item, set()).add(source)

        add([i for i, _ in self.search.search(query.text, TEXT_DEPTH, filters)], 1.0, "request")
        allowed = self.search.mask(filters)
        in_scope = set(self.search.item_ids[allowed].tolist())
        for item in query.similar_to:
            add([c.item_id for c in funnel.similar(item, 50) if c.item_id in in_scope], 1.0,
                "similar")  # fmt: skip
        if len(user.history) and funnel.cold_start.needs_full_pipeline(
            RequestContext(user.user_id, user.history, int(time.time()))
        ):
            two_tower = next(s for s in funnel.merger.sources if s.name == "two_tower")
            ctx = RequestContext(user.user_id, user.history, int(time.time()), user.demographics,
                                 user.disliked, user.history_times)  # fmt: skip
            taste = [c.item_id for c in two_tower.candidates(ctx, 500) if c.item_id in in_scope]
            add(taste[:TEXT_DEPTH], TASTE_WEIGHT, "taste")
        order = sorted(fused, key=lambda i: (-fused[i], i))
        return [RankedItem(i, fused[i], sources=tuple(sorted(sources[i]))) for i in order]

    def reason(self, item: RankedItem, query: RetrievalQuery, funnel: Funnel) -> str:
        summary = funnel.summaries.get(item.item_id, {})
        matched = [g for g in query.include_genres if g in summary.get("genres", [])]
        bits = []
        if "similar" in item.sources and query.similar_to:
            bits.append(f"like {funnel.title(query.similar_to[0])}")
        if matched or query.mood_terms:
            bits.append("matches " + ", ".join([*matched, *query.mood_terms][:3]))
        elif "request" in item.sources:
            bits.append("fits what you asked for")
        if "taste" in item.sources:
            bits.append("suits your taste")
        text = "; ".join(bits) or "fits what you asked for"
        return text[0].upper() + text[1:]
