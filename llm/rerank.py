"""LLM re-rank of the funnel's last 20-50 candidates, blended with the ranker, never fatal.

Two ways to ask, one result shape:

- Embedded models score instead of generating (LlamaRec's verbalizer): the prompt
  labels each candidate with one letter and one forward pass gives the log-probability
  of every label as the next token. Generating a ranking with a 135M model looked
  random (../shared/DESIGN.md); scoring is the only way it could carry signal, and it
  costs one prompt evaluation per pass, no decoding.
- Remote models (OpenAI, Anthropic, vLLM through litellm) answer `{"ranking": [ids]}`
  through `LLMClient.structured`; the answer is parsed leniently (`parse_ranking`),
  because a ranking that drops or invents ids is still informative.

Small models prefer early labels and early positions, so each candidate can be scored
in several orders (`SCHEMES`) and its scores averaged, and each label's prior can be
subtracted (contextual calibration: the label log-probabilities of the same prompt with
every title replaced by "N/A", computed once per list length). The LLM never replaces the
ranker: ranks of both are normalised to [0, 1] and blended with weight `w`. Ranks,
not raw scores, because the input order may already include the re-ranking rules'
moves, and because the two score scales have nothing in common.

Whatever goes wrong (LLM off, budget too small, provider down, bad output), `rerank`
returns the ranker's order with `skipped` saying why: the feed must not fail or stall
because of an optional stage.
"""

from __future__ import annotations

import logging
import string
import threading
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypedDict

import numpy as np

from llm.client import Budget, BudgetSpent, LLMClient, LLMError
from llm.prompts import PromptError, PromptRegistry

log = logging.getLogger("marquee.llm")

LOCAL_PROMPT = "rerank_local"
REMOTE_PROMPT = "rerank"
LABELS = tuple(string.ascii_uppercase)  # one token each, with a leading space, in both models
ANSWER_PREFIX = "Answer:"
DEFAULT_MS_PER_TOKEN = 5.0  # ~200 prompt tokens/s (DESIGN.md, 2 cores) until measured here


def _identity(n: int) -> list[int]:
    return list(range(n))


def _cyclic(quarter: int) -> Callable[[int], list[int]]:
    def order(n: int) -> list[int]:
        shift = quarter * n // 4
        return [*range(shift, n), *range(shift)]

    return order


# A pass shows the candidates in one order (positions of the ranker's list, best first).
PASSES: dict[str, Callable[[int], list[int]]] = {
    "fwd": _identity,
    "rev": lambda n: list(range(n))[::-1],
    "cyc1": _cyclic(1),
    "cyc2": _cyclic(2),
    "cyc3": _cyclic(3),
}
# Position-bias schemes: which passes are averaged per candidate.
SCHEMES: dict[str, tuple[str, ...]] = {
    "forward": ("fwd",),
    "forward+reversed": ("fwd", "rev"),
    "cyclic4": ("fwd", "cyc1", "cyc2", "cyc3"),
}


@dataclass(frozen=True)
class Measured:
    """What `marquee bench llm_rerank` found for one model (LOO-full, ml-latest-small)."""

    weight: float  # w chosen on validation
    scheme: str
    calibrate: bool
    default_on: bool  # only if the test NDCG@10 gain's 95% CI lies above 0


MEASURED: dict[str, Measured] = {
    "local/smollm2": Measured(0.2, "forward+reversed", True, default_on=False),
    "local/gemma3": Measured(0.4, "forward+reversed", False, default_on=False),
}
CONTENT_FREE = "N/A"
EXPLICIT_WEIGHT = 0.5  # switched on by hand for a model whose measured weight is 0 or unknown


class RerankCandidate(TypedDict):
    id: int
    title: str
    year: int | None
    genres: list[str]
    score: float


def history_entry(title: str, year: int | None, genres: Sequence[str]) -> dict[str, Any]:
    """One watched film as the prompts show it."""
    return {"title": title, "year": year, "genres": list(genres)}


@dataclass(frozen=True)
class RerankResult:
    order: list[int]  # every input id exactly once, best first
    llm_scores: dict[int, float] | None  # per re-ranked id; None when the LLM was skipped
    skipped: str | None  # why the ranker's order came back unchanged
    prompt_ref: str | None
    latency_ms: float
    weight: float = 0.0
    scheme: str | None = None


def resolve_weight(model: str, enabled: bool | None) -> tuple[float, str, bool]:
    """(w, scheme, calibrate): the measured default (unset), or forced on or off by a setting.

    A model nobody measured is off by default: a re-rank must show it does not lower
    NDCG@10 before it becomes a default.
    """
    m = MEASURED.get(model, Measured(0.0, "forward+reversed", False, default_on=False))
    if enabled is None:
        return (m.weight if m.default_on else 0.0), m.scheme, m.calibrate
    if not enabled:
        return 0.0, m.scheme, m.calibrate
    return (m.weight if m.weight > 0 else EXPLICIT_WEIGHT), m.scheme, m.calibrate


# --------------------------------------------------------------------------- pure parts


def parse_ranking(
    value: Any, candidate_ids: Sequence[int], catalog_ids: Collection[int] | None = None
) -> list[int]:
    """Every candidate id once: the model's order first, then the unranked in ranker order.

    Accepts `{"ranking": [...]}` or a bare list; ids may be ints, integral floats or
    numeric strings ("12", " 12 ", "id 12" is not). Ids that are not candidates (or not
    in the catalog) are dropped, repeats keep their first place.
    """
    raw = value.get("ranking") if isinstance(value, Mapping) else value
    allowed = set(candidate_ids)
    if catalog_ids is not None:
        allowed &= set(catalog_ids)
    ranked: list[int] = []
    for item in raw if isinstance(raw, list | tuple) else []:
        ident = _as_id(item)
        if ident is not None and ident in allowed and ident not in ranked:
            ranked.append(ident)
    seen = set(ranked)
    return ranked + [i for i in candidate_ids if i not in seen]


def _as_id(item: Any) -> int | None:
    if isinstance(item, bool):
        return None
    if isinstance(item, int):
        return item
    if isinstance(item, float) and item.is_integer():
        return int(item)
    if isinstance(item, str) and item.strip().lstrip("-").isdigit():
        return int(item.strip())
    return None


def reciprocal_rank_scores(order: Sequence[int]) -> dict[int, float]:
    return {ident: 1.0 / (pos + 1) for pos, ident in enumerate(order)}


def _normalised_ranks(values: np.ndarray) -> np.ndarray:
    """1 for the highest value, 0 for the lowest; ties share their mean rank."""
    from scipy.stats import rankdata

    n = len(values)
    return np.zeros(n) if n < 2 else (rankdata(values) - 1) / (n - 1)


def blend_order(
    ranker_order: Sequence[int], llm_scores: Mapping[int, float], w: float
) -> list[int]:
    """`(1-w)·ranker + w·LLM` over normalised ranks; ids without an LLM score keep the tail.

    Ties (w = 0.5 swaps, equal LLM scores) go to the ranker's order, so w = 0 is the
    ranker's list exactly and w = 1 is the LLM's with the ranker breaking ties.
    """
    head = [i for i in ranker_order if i in llm_scores]
    tail = [i for i in ranker_order if i not in llm_scores]
    n = len(head)
    if n < 2 or w <= 0:
        return [*head, *tail] if w > 0 else list(ranker_order)
    ranker_part = 1.0 - np.arange(n) / (n - 1)
    llm_part = _normalised_ranks(np.array([llm_scores[i] for i in head], dtype=np.float64))
    final = (1.0 - w) * ranker_part + w * llm_part
    order = sorted(range(n), key=lambda j: (-round(float(final[j]), 12), j))
    return [head[j] for j in order] + tail


def calibrated(scores: np.ndarray, pass_name: str, prior: np.ndarray) -> np.ndarray:
    """Scores (input order) minus the prior of the label each candidate wore in that pass."""
    shown = PASSES[pass_name](len(scores))
    out = np.asarray(scores, dtype=np.float64).copy()
    out[shown] -= prior[: len(shown)]
    return out


def _log_softmax(values: np.ndarray) -> np.ndarray:
    top = values.max()
    return values - top - np.log(np.exp(values - top).sum())


def _mean_scores(passes: list[dict[int, float]]) -> dict[int, float]:
    return {i: float(np.mean([p[i] for p in passes])) for i in passes[0]}


# --------------------------------------------------------------------------- reranker


class LLMReranker:
    """See the module docstring. One instance per service; safe to share between requests."""

    def __init__(
        self,
        client: LLMClient,
        prompts: PromptRegistry,
        *,
        weight: float,
        scheme: str = "forward+reversed",
        max_candidates: int = 20,
        history_len: int = 10,
        calibrate: bool = True,
        catalog_ids: Collection[int] | None = None,
    ) -> None:
        if scheme not in SCHEMES:
            raise ValueError(f"unknown scheme {scheme!r}; known: {sorted(SCHEMES)}")
        self.client = client
        self.prompts = prompts
        self.weight = weight
        self.scheme = scheme
        self.max_candidates = (
            min(max_candidates, len(LABELS)) if client.is_local else max_candidates
        )
        self.history_len = history_len
        self.calibrate = calibrate
        self._priors: dict[int, np.ndarray] = {}
        self.catalog_ids = None if catalog_ids is None else frozenset(catalog_ids)
        self._ms_per_token = DEFAULT_MS_PER_TOKEN
        self._label_ids: list[int] | None = None
        self._lock = threading.Lock()

    def rerank(
        self,
        history: Sequence[Mapping[str, Any]],
        request: str | None,
        candidates: Sequence[RerankCandidate],
        budget: Budget | None,
    ) -> RerankResult:
        """The candidates re-ordered (input order = the ranker's); never raises."""
        start = time.perf_counter()
        order = [int(c["id"]) for c in candidates]
        ref = None

        def done(
            skipped: str | None, scores: dict[int, float] | None = None, final=None
        ) -> RerankResult:
            return RerankResult(
                final or order,
                scores,
                skipped,
                ref,
                (time.perf_counter() - start) * 1e3,
                self.weight if skipped is None else 0.0,
                self.scheme,
            )

        if self.weight <= 0:
            return done("weight 0 (the re-rank is off for this model)")
        if not self.client.enabled:
            return done("the LLM is off")
        if len(order) < 2:
            return done("fewer than 2 candidates")
        head = list(candidates[: self.max_candidates])
        try:
            name = LOCAL_PROMPT if self.client.is_local else REMOTE_PROMPT
            ref = self.prompts.get(name).ref
            if self.client.is_local:
                scores = self._local_scores(history, request, head, budget)
            else:
                scores = self._remote_scores(history, request, head, budget)
        except BudgetSpent as exc:
            return done(f"budget: {exc}")
        except (LLMError, PromptError, TimeoutError) as exc:
            log.warning("llm rerank skipped: %s", exc)
            return done(f"error: {str(exc)[:200]}")
        except Exception as exc:  # an optional stage must never fail the feed
            log.exception("llm rerank failed")
            return done(f"error: {type(exc).__name__}: {str(exc)[:200]}")
        return done(None, scores, blend_order(order, scores, self.weight))

    # local -------------------------------------------------------------------------

    def label_ids(self) -> list[int]:
        """Token id of each " X" label; LLMError if one is not a single token."""
        if self._label_ids is None:
            model = self.client.local
            ids = []
            for label in LABELS:
                tokens = model.llama.tokenize(f" {label}".encode(), add_bos=False, special=False)
                if len(tokens) != 1:
                    raise LLMError(
                        f"label {label!r} is {len(tokens)} tokens for {self.client.model}"
                    )
                ids.append(tokens[0])
            self._label_ids = ids
        return self._label_ids

    def local_prompt(
        self,
        history: Sequence[Mapping[str, Any]],
        request: str | None,
        candidates: Sequence[RerankCandidate],
        pass_name: str,
    ) -> tuple[str, list[int]]:
        """(prompt text up to the answer, candidate positions in the order shown)."""
        shown = PASSES[pass_name](len(candidates))
        prompt = self.prompts.get(LOCAL_PROMPT)
        messages = prompt.render(
            history=[dict(h) for h in history[-self.history_len :]],
            request=request or None,
            candidates=[
                {
                    "label": LABELS[j],
                    "title": candidates[p]["title"],
                    "year": candidates[p]["year"],
                    "genres": list(candidates[p]["genres"]),
                }
                for j, p in enumerate(shown)
            ],
        )
        text = self.client.local.format(messages)
        sep = "" if text[-1:].isspace() else " "
        return f"{text}{sep}{ANSWER_PREFIX}", shown

    def local_pass(
        self,
        history: Sequence[Mapping[str, Any]],
        request: str | None,
        candidates: Sequence[RerankCandidate],
        pass_name: str,
        budget: Budget | None = None,
    ) -> tuple[np.ndarray, int]:
        """(score per candidate in input order, prompt tokens) of one forward pass; waits
        for the shared model no longer than `budget` allows (TimeoutError).

        Scores are log-probabilities renormalised over the labels shown, so passes with
        different label sets average on one scale.
        """
        model = self.client.local
        text, shown = self.local_prompt(history, request, candidates, pass_name)
        labels = [f" {LABELS[j]}" for j in range(len(shown))]
        self.label_ids()
        start = time.perf_counter()
        deadline = budget.deadline if budget is not None else None
        logprobs = np.asarray(
            model.next_token_logprobs(text, labels, deadline, key=LOCAL_PROMPT), dtype=np.float64
        )
        tokens = model.count_tokens(text)
        with self._lock:  # how fast this machine is, for the next request's budget check
            measured = (time.perf_counter() - start) * 1e3 / max(tokens, 1)
            self._ms_per_token = 0.7 * self._ms_per_token + 0.3 * measured
        out = np.empty(len(candidates))
        out[shown] = _log_softmax(logprobs)
        return out, tokens

    def label_prior(self, n: int) -> np.ndarray:
        """Log-probability of each of the first n labels when no title says anything."""
        if n not in self._priors:
            blank = RerankCandidate(id=0, title=CONTENT_FREE, year=None, genres=[], score=0.0)
            scores, _ = self.local_pass([], None, [blank] * n, "fwd")
            self._priors[n] = scores  # "fwd" shows position j with label j
        return self._priors[n]

    def _local_scores(self, history, request, head, budget: Budget | None) -> dict[int, float]:
        names = SCHEMES[self.scheme]
        n_passes = len(names) + (self.calibrate and len(head) not in self._priors)
        if budget is not None:
            budget.check()
            text, _ = self.local_prompt(history, request, head, names[0])
            need_tokens = self.client.local.count_tokens(text) * n_passes
            need_ms = need_tokens * self._ms_per_token
            if budget.tokens < need_tokens:
                raise BudgetSpent(f"needs ~{need_tokens} tokens, {budget.tokens} left")
            if budget.left_s() * 1e3 < need_ms:
                raise BudgetSpent(f"needs ~{need_ms:.0f} ms, {budget.left_s() * 1e3:.0f} ms left")
        passes = []
        for name in names:
            if budget is not None:
                budget.check()
            scores, tokens = self.local_pass(history, request, head, name, budget)
            if budget is not None:
                budget.spend(tokens)
            if self.calibrate:
                scores = calibrated(scores, name, self.label_prior(len(head)))
            passes.append({int(c["id"]): float(s) for c, s in zip(head, scores, strict=True)})
        return _mean_scores(passes)

    # remote ------------------------------------------------------------------------

    def _remote_scores(self, history, request, head, budget: Budget | None) -> dict[int, float]:
        prompt = self.prompts.get(REMOTE_PROMPT)
        if prompt.spec.output_schema is None:
            raise PromptError(f"{prompt.ref} needs an output_schema ({{ranking: [ids]}})")
        ids = [int(c["id"]) for c in head]
        passes = []
        for name in SCHEMES[self.scheme]:
            shown = [head[p] for p in PASSES[name](len(head))]
            messages = prompt.render(
                history=[dict(h) for h in history[-self.history_len :]],
                request=request or None,
                candidates=[
                    {
                        "id": int(c["id"]),
                        "title": c["title"],
                        "year": c["year"],
                        "genres": list(c["genres"]),
                    }
                    for c in shown
                ],
            )
            answer = self.client.structured(
                messages,
                prompt.spec.output_schema,
                prompt=prompt.ref,
                budget=budget,
                max_tokens=prompt.spec.params.max_tokens,
                temperature=prompt.spec.params.temperature,
            )
            ranking = parse_ranking(answer.value, ids, self.catalog_ids)
            passes.append(reciprocal_rank_scores(ranking))
        scores = _mean_scores(passes)
        return {i: scores[i] for i in ids}


__all__ = [
    "LABELS",
    "MEASURED",
    "PASSES",
    "SCHEMES",
    "LLMReranker",
    "Measured",
    "RerankCandidate",
    "RerankResult",
    "blend_order",
    "calibrated",
    "history_entry",
    "parse_ranking",
    "reciprocal_rank_scores",
    "resolve_weight",
]


class _OnePrompt:
    """A registry that holds one prompt (an eval case or a lab draft runs that text)."""

    def __init__(self, prompt) -> None:
        self.prompt = prompt

    def get(self, name: str, version=None):
        return self.prompt


def eval_output(client: LLMClient, prompt, inputs: dict, budget=None) -> str:
    """What `rerank_local` answers for its eval cases: the letter the embedded model scores
    highest, with the measured scheme and calibration (it is scored, never generated)."""
    measured = MEASURED.get(client.model, Measured(1.0, "forward+reversed", True, False))
    reranker = LLMReranker(
        client, _OnePrompt(prompt), weight=1.0, scheme=measured.scheme, calibrate=measured.calibrate
    )
    given = list(inputs["candidates"])
    head = [
        RerankCandidate(
            id=i,
            title=c["title"],
            year=c.get("year"),
            genres=list(c.get("genres") or []),
            score=0.0,
        )
        for i, c in enumerate(given)
    ]
    scores = reranker._local_scores(
        list(inputs.get("history") or []), inputs.get("request"), head, budget
    )
    best = max(scores, key=lambda i: scores[i])
    return str(given[best].get("label") or LABELS[best])
