"""Chat: a mood request through the same funnel as the feed, with the LLM where it helps.

message (+ the session's last query) -> deterministic intent parse (always) + the
LLM's proposal where the message supports it (llm/intent_llm.py) -> text search within
the parsed constraints (dense + BM25, plus neighbours of a named title, plus a soft
lift for genres the request implies) -> fused with the user's own two-tower candidates
-> the multi-task ranker for known users -> the feed's seen, policy and diversity
rules -> optional LLM re-rank -> cards with template reasons -> the LLM's streamed
reply -> LLM-phrased reasons, each checked against its facts.

Every LLM step runs inside one per-request `Budget` and falls back to its deterministic
result when the LLM is off, unreachable, slow or wrong, so chat always answers.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from app.chat_fusion import (
    catalog_years,
    page_cards,
    rerank_inputs,
    shown_years,
)
from app.chat_retrieval import (
    POPULAR_WEIGHT,
    PREFER_WEIGHT,
    QUALITY_WEIGHT,
    RANKER_WEIGHT,
    SIMILAR_WEIGHT,
    TASTE_WEIGHT,
    TEXT_DEPTH,
    Priors,
    Weights,
    request_scores,
    with_taste,
)
from app.chat_sessions import SessionStore
from app.chat_state import ConversationState, with_conversation
from app.funnel import DEFAULT_LAMBDA, Funnel, UserState
from app.grounding import item_facts
from catalog.clock import Clock, WallClock, today
from catalog.search import TitleIndex
from llm.client import Budget, LLMClient
from llm.explain import TitleGuard, phrase
from llm.intent import RetrievalQuery, parse_intent
from llm.intent_llm import IntentModel, merge
from llm.local import strip_control_tokens
from llm.prompt_pins import PromptSource
from llm.prompts import PromptError
from llm.reply import ReplyOutcome, checked_reply, describe, fallback_reply
from llm.reply_check import ReplyContext
from llm.rerank import LABELS, LLMReranker
from ranking.base import FeedContext, RankedItem
from ranking.popularity_prior import RecentPopularity
from ranking.quality_prior import QualityPrior
from ranking.rules import ContentPolicy, Diversity, DiversityConfig, RemoveSeen, RulePipeline
from retrieval.base import RequestContext
from retrieval.text_search import TextSearch

log = logging.getLogger("marquee.chat")
EXPLAIN_RESERVE_S = 0.35  # do not start an explanation with less budget than this
INTENT_BUDGET_MS = 1200.0  # the proposal may not eat the reply's time


@dataclass(frozen=True)
class ChatVariant:
    """A user's experiment variant as chat sees it: its LLM re-rank (None: the default)
    and its prompt versions (None: the live ones)."""

    name: str | None = None
    reranker: LLMReranker | None = None
    prompts: PromptSource | None = None


@dataclass(frozen=True)
class ChatLLM:
    """What chat takes from the LLM layer, and which of its steps are on."""

    client: LLMClient
    prompts: PromptSource
    explain: bool = True
    budget_ms: float = 5000.0
    # Told the outcome of every LLM reply: "kept" or "replaced", and the failed check.
    on_reply: Callable[[str, str | None], None] | None = None


@dataclass
class _Turn:
    """One chat turn's shared state: the LLM (None when it is off), its budget, the refs of
    the prompts used and the step timings, which the `done` event reports."""

    llm: ChatLLM | None
    budget: Budget | None
    start: float
    prompts: dict[str, str] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)

    def lap(self, name: str, since: float) -> float:
        """Record the milliseconds since `since` as step `name`; the time now, for the next."""
        now = time.perf_counter()
        self.timings[name] = round((now - since) * 1e3, 1)
        return now

    def first_token(self) -> None:
        """Record when the first piece of the reply was shown (once)."""
        if "first_token" not in self.timings:
            self.lap("first_token", self.start)

    def done(self, session_id: str, reply_source: str) -> dict:
        return {
            "session_id": session_id,
            "model": self.llm.client.model if self.llm else None,
            "prompts": self.prompts,
            "reply_source": reply_source,
            "timings_ms": self.timings,
        }


class Chat:
    def __init__(
        self,
        search: TextSearch,
        titles: TitleIndex,
        sessions: SessionStore,
        llm: ChatLLM | None = None,
        reranker: LLMReranker | None = None,
        clock: Clock | None = None,
        prior: QualityPrior | None = None,
        popular: RecentPopularity | None = None,
    ) -> None:
        """`reranker` is the default LLM re-rank (its weight is 0 where it is measured not
        to help, which skips it); a request may bring its own (an experiment variant).
        `clock` gives every request its time (default: the wall clock); `prior` how well
        liked each film is, `popular` how much it was watched lately (default: both
        fitted on the funnel's ratings at first use)."""
        self.search = search
        self.clock = clock or WallClock()
        self.titles = titles
        self.sessions = sessions
        self.llm = llm
        self.reranker = reranker
        self.genres = sorted({g for gs in search.items["genres"] for g in gs})
        self.catalog_years = catalog_years(search.items["year"])
        self.intent_model = IntentModel(llm.client, llm.prompts) if llm else None
        self.guard = TitleGuard(search.items["title"].tolist())
        self.prefer_weight = PREFER_WEIGHT
        self.quality_weight = QUALITY_WEIGHT
        self.similar_weight = SIMILAR_WEIGHT
        self.popular_weight = POPULAR_WEIGHT
        self.taste_weight = TASTE_WEIGHT
        self.given = Priors(prior, popular)
        self._priors: dict[int, Priors] = {}
        self._rules: dict[int, RulePipeline] = {}

    def warm_up(self, variants: Sequence[ChatVariant] = ()) -> None:
        """Load the text encoder and the LLM's calibration before the first request, for
        the live intent prompt and every variant's pinned one (a calibration computed
        inside a request would eat that request's intent budget, every time)."""
        self.search.search("warm-up", 1)
        if self.intent_model is None:
            return
        self.intent_model.warm_up(self.genres)
        client = self.intent_model.client
        if not (client.enabled and client.is_local):  # only the embedded models calibrate
            return
        for variant in variants:
            if variant.prompts is not None:
                prompt = variant.prompts.get("intent_local")
                self.intent_model.propose("a movie", self.genres, None, None, prompt)

    def rules(self, funnel: Funnel) -> RulePipeline:
        key = id(funnel)
        if key not in self._rules:
            self._rules = {
                key: RulePipeline(
                    [
                        RemoveSeen(),
                        ContentPolicy(funnel.meta),
                        Diversity(funnel.meta, DiversityConfig(lambda_=DEFAULT_LAMBDA)),
                    ],
                    critical={"remove_seen", "content_policy"},
                )
            }
        return self._rules[key]

    # understanding ------------------------------------------------------------------------

    def understand(
        self,
        message: str,
        previous: RetrievalQuery | None,
        budget: Budget | None = None,
        use_llm: bool = True,
        prompts: PromptSource | None = None,
        shown_years: Sequence[int] = (),
    ) -> tuple[RetrievalQuery, str | None]:
        """The query for this turn and the prompt ref of an accepted LLM proposal (or None).
        `prompts`: where the intent prompt comes from (a variant's pins; default live);
        `shown_years`: release years of the page just shown ("older" than that page)."""
        era = {"catalog_years": self.catalog_years, "shown_years": shown_years}
        base = parse_intent(
            message, self.genres, self.titles, previous, today=today(self.clock), **era
        )
        proposal = None
        if use_llm and self.intent_model is not None:
            step = budget.sub(INTENT_BUDGET_MS) if budget is not None else None
            prompt = None
            if prompts is not None:
                name = "intent_local" if self.intent_model.client.is_local else "intent"
                try:
                    prompt = prompts.get(name)
                except PromptError as exc:
                    log.warning("intent prompt unavailable: %s", exc)
            proposal = self.intent_model.propose(message, self.genres, previous, step, prompt)
        return merge(base, proposal, message, previous), proposal.prompt if proposal else None

    # retrieval ----------------------------------------------------------------------------

    def request_ranking(
        self,
        funnel: Funnel | None,
        query: RetrievalQuery,
        allowed=None,
        depth: int = TEXT_DEPTH,
    ) -> tuple[dict[int, float], dict[int, set[str]]]:
        """Fused request scores (app/chat_retrieval.py): text hits, neighbours of the
        conversation's titles, implied genres, the priors."""
        weights = Weights(
            self.prefer_weight, self.quality_weight, self.similar_weight, self.popular_weight
        )
        priors = self.priors(funnel)
        return request_scores(
            self.search, self.titles, funnel, query, weights, priors, allowed, depth
        )

    def priors(self, funnel: Funnel | None) -> Priors:
        """The priors given at construction; those not given are fitted on the funnel's
        catalog (the popularity prior at the clock's time), once per funnel."""
        if funnel is None or (self.given.quality and self.given.popular):
            return self.given
        if id(funnel) not in self._priors:  # one funnel at a time: a reload replaces it
            events, ids = funnel.catalog.events, self.search.item_ids
            self._priors = {id(funnel): self.given.filled(events, ids, self.clock.now())}
        return self._priors[id(funnel)]

    def candidates(
        self, funnel: Funnel, user: UserState, query: RetrievalQuery, now: int | None = None
    ) -> list[RankedItem]:
        """Request hits and the user's taste inside the same constraints, then the ranker,
        which sees each candidate's rank in every funnel source, run as the feed runs them."""
        fused, sources = self.request_ranking(funnel, query)
        now = int(self.clock.now()) if now is None else now
        weights = (self.taste_weight, RANKER_WEIGHT)
        return with_taste(self.search, funnel, user, query, fused, sources, now, weights)

    def page(self, funnel: Funnel, user: UserState, query: RetrievalQuery, size: int):
        """The candidates ranked and through the rules: the items a reply may show."""
        now = int(self.clock.now())
        request = RequestContext(
            user.user_id, user.history, now, user.demographics, user.disliked, user.history_times
        )
        ctx = FeedContext(request=request, page_size=size)
        return self.rules(funnel).apply(ctx, self.candidates(funnel, user, query, now))[:size]

    # the reply ----------------------------------------------------------------------------

    def reply(
        self,
        funnel: Funnel,
        user: UserState,
        message: str,
        session_id: str | None,
        count: int | None = None,
        use_llm: bool = True,
        variant: ChatVariant | None = None,
    ) -> dict:
        """The whole answer at once (the JSON endpoint): the stream, collected."""
        out: dict = {"reply": "", "explanations": {}}
        for event in self.stream(funnel, user, message, session_id, count, use_llm, variant):
            kind, data = event["event"], event["data"]
            if kind == "token":
                out["reply"] += data
            elif kind == "reply":
                out["reply"] = data["text"]
            elif kind == "explanations":
                out["explanations"].update(data)
            else:
                out[kind] = data
        for card in out["items"]:
            card["reason"] = out["explanations"].get(card["item_id"], card["reason"])
        return out

    def stream(
        self,
        funnel: Funnel,
        user: UserState,
        message: str,
        session_id: str | None,
        count: int | None = None,
        use_llm: bool = True,
        variant: ChatVariant | None = None,
    ) -> Iterator[dict]:
        """The reply as events, in order: `query`, `items`, `token`*, `reply`?,
        `explanations`*, `done`.

        Each event is {"event": name, "data": ...}: `query` the parsed request (dict);
        `items` the cards [{item_id, title, year, genres, score, sources, reason}] with
        template reasons; `token` a piece of the reply text; `reply` {"text", "source"}
        the final reply text when it differs from the tokens streamed (template reply,
        or a streamed reply that failed its check and is replaced); `explanations`
        {item_id: reason} replacing card reasons (several events, as they are ready);
        `done` {session_id, model, prompts, reply_source, timings_ms}. `variant` is the
        user's experiment variant: its re-rank and its prompt versions for every LLM step.
        """
        start = time.perf_counter()
        message = " ".join(strip_control_tokens(message).split()) or "a movie"
        variant = variant or ChatVariant()
        llm = self.llm if use_llm and self.llm is not None and self.llm.client.enabled else None
        if llm is not None and variant.prompts is not None:
            llm = replace(llm, prompts=variant.prompts)
        turn = _Turn(llm, Budget.of(llm.budget_ms) if llm else None, start)
        session_id = session_id or uuid.uuid4().hex
        query, page = self._select(
            turn, funnel, user, message, session_id, count, variant.reranker or self.reranker
        )
        facts = item_facts(funnel, self.search, user, query, page, self.priors(funnel))
        cards = page_cards(funnel, page, facts)
        yield {"event": "query", "data": query.model_dump()}
        yield {"event": "items", "data": cards}
        turn.lap("first_items", start)

        context = ReplyContext.of_cards(query, message, describe(query, funnel.title), cards)
        reply_source = yield from self._reply(turn, context)
        t = time.perf_counter()
        if llm is not None and llm.explain:
            yield from self._explain(turn, facts, user, funnel, page)
        turn.lap("explain", t)
        turn.lap("total", start)
        yield {"event": "done", "data": turn.done(session_id, reply_source)}

    def _select(
        self,
        turn: _Turn,
        funnel: Funnel,
        user: UserState,
        message: str,
        session_id: str,
        count: int | None,
        reranker: LLMReranker | None,
    ) -> tuple[RetrievalQuery, list[RankedItem]]:
        """This turn's query (refining the session's last one) and the page it shows; the
        session keeps the new query and the page's release years for the next turn."""
        session = self.sessions.load(session_id)
        previous = RetrievalQuery(**session["query"]) if session.get("query") else None
        query, intent_ref = self.understand(
            message,
            previous,
            turn.budget,
            turn.llm is not None,
            turn.llm.prompts if turn.llm else None,
            session.get("shown_years", ()) if previous is not None else (),
        )
        if intent_ref:
            turn.prompts["intent"] = intent_ref
        state = ConversationState.from_session(session)
        state.add(query, [int(i) for i in session.get("shown", [])])
        parsed, query = query, query.model_copy(update={"similar_to": state.taste})  # taste so far
        user = with_conversation(user, state, int(self.clock.now()))
        t = turn.lap("understand", turn.start)
        k = count or query.count
        page = self.page(funnel, user, query, max(k, 20))
        t = turn.lap("retrieval_rank_rules", t)
        page, rerank_ref = self._rerank(
            funnel, user, message, page, turn.budget if turn.llm else None, reranker
        )
        if rerank_ref:
            turn.prompts["rerank"] = rerank_ref
        page = page[:k]
        turn.lap("llm_rerank", t)
        ids = [r.item_id for r in page]
        years, titles = shown_years(self.search, ids), state.to_session()
        saved = {"query": parsed.model_dump(), "shown_years": years, "shown": ids, "titles": titles}
        self.sessions.save(session_id, saved)
        return query, page

    def prompt_inputs(self, name: str, funnel: Funnel, user: UserState, message: str) -> dict:
        """A prompt's inputs as this chat would fill them for `message` and `user` (the
        prompt lab previews prompts on real candidates with these)."""
        query, _ = self.understand(message, None, use_llm=False)
        if name == "intent":
            return {"message": message, "genres": self.genres, "previous": None}
        if name == "intent_local":
            return {"message": message}
        page = self.page(funnel, user, query, 20)
        if not page:
            raise ValueError(f"no candidates for {message!r}; try a broader request")
        history, cards = rerank_inputs(funnel, user.history, [(r.item_id, r.score) for r in page])
        if name == "chat_reply":
            return {
                "message": message,
                "summary": describe(query, funnel.title),
                "titles": [c["title"] for c in cards[:3]],
            }
        if name == "explain":
            facts = item_facts(funnel, self.search, user, query, page[:1], self.priors(funnel))[0]
            return {"title": facts.title, "facts": facts.lines()}
        if name == "rerank":
            return {"history": history, "request": message, "candidates": cards}
        if name == "rerank_local":
            return {
                "history": history,
                "request": message,
                "candidates": [{**c, "label": x} for c, x in zip(cards, LABELS, strict=False)],
            }
        raise ValueError(f"chat does not fill the inputs of prompt {name!r}")

    def _reply(self, turn: _Turn, ctx: ReplyContext) -> Iterator[dict]:
        """Stream the LLM's reply as far as it passes its checks (llm/reply_check.py); else
        the template's, as a `reply` event replacing what was streamed. Returns the source."""
        fallback = fallback_reply(ctx.summary, ctx.titles)
        template = {"event": "reply", "data": {"text": fallback, "source": "template"}}
        llm, prompt = turn.llm, None
        try:
            prompt = llm.prompts.get("chat_reply") if llm is not None and ctx.titles else None
        except PromptError as exc:
            log.warning("chat_reply prompt unavailable: %s", exc)
        if llm is None or prompt is None:
            yield template
            return "template"
        turn.prompts["chat_reply"] = prompt.ref
        t = time.perf_counter()
        pieces = checked_reply(llm.client, prompt, ctx, self.guard, turn.budget)
        try:
            while True:
                piece = next(pieces)
                turn.first_token()
                yield {"event": "token", "data": piece}
        except StopIteration as stop:
            outcome: ReplyOutcome = stop.value
        finally:
            pieces.close()
        turn.lap("reply", t)
        if llm.on_reply is not None:
            llm.on_reply("kept" if outcome.kept else "replaced", outcome.check)
        if outcome.kept:
            return "llm"
        log.info("chat reply replaced (%s: %s): %r", outcome.check, outcome.detail, outcome.text)
        yield template
        return "template"

    def _explain(
        self, turn: _Turn, facts, user: UserState, funnel: Funnel, page: Sequence[RankedItem]
    ) -> Iterator[dict]:
        """LLM-phrased reasons, best item first, while the next one fits in the budget (its
        cost is the last one's): what does not fit is skipped, never waited for."""
        llm, budget = turn.llm, turn.budget
        try:
            prompt = llm.prompts.get("explain")
        except PromptError as exc:
            log.warning("explain prompt unavailable: %s", exc)
            return
        turn.prompts["explain"] = prompt.ref
        history = [funnel.title(i) for i in np.asarray(user.history)[-200:].tolist()]
        cost = EXPLAIN_RESERVE_S
        for item, fact in zip(page, facts, strict=True):
            if budget is not None and budget.left_s() < cost:
                break
            t = time.perf_counter()
            text = phrase(llm.client, prompt, fact, self.guard, history, budget)
            cost = max(EXPLAIN_RESERVE_S, time.perf_counter() - t)
            if text:
                yield {"event": "explanations", "data": {item.item_id: text}}

    def _rerank(
        self,
        funnel: Funnel,
        user: UserState,
        message: str,
        page: list[RankedItem],
        budget: Budget | None,
        reranker: LLMReranker | None,
    ) -> tuple[list[RankedItem], str | None]:
        """The LLM's listwise re-rank, when it is on for this model; else the page as is."""
        if budget is None or reranker is None:
            return page, None
        history, candidates = rerank_inputs(
            funnel, user.history, [(r.item_id, r.score) for r in page]
        )
        result = reranker.rerank(history, message, candidates, budget)
        if result.skipped:
            return page, None
        by_id = {r.item_id: r for r in page}
        return [by_id[i] for i in result.order if i in by_id], result.prompt_ref
