"""LLM re-rank: the real embedded model for the verbalizer, pure functions for the rest.

What matters to the product is that the stage can only ever return a permutation of
what it was given, and falls back to the ranker's order (saying why) whenever the LLM
cannot help within the request's budget.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest

from app.settings import Settings
from evaluation.bench_io import read_section
from llm.client import Budget, LLMClient, ResponseCache, client_from_settings
from llm.prompts import PromptRegistry
from llm.rerank import (
    LABELS,
    LOCAL_PROMPT,
    PASSES,
    SCHEMES,
    LLMReranker,
    RerankCandidate,
    blend_order,
    calibrated,
    parse_ranking,
    reciprocal_rank_scores,
    resolve_weight,
)

from .requirements import require

REPO_ROOT = Path(__file__).resolve().parents[1]
HISTORY = [
    {"title": "Toy Story", "year": 1995, "genres": ["Animation", "Children", "Comedy"]},
    {"title": "Finding Nemo", "year": 2003, "genres": ["Animation", "Children", "Comedy"]},
]
FILMS = [
    ("Se7en", 1995, ["Crime", "Thriller"]),
    ("Shrek", 2001, ["Animation", "Children", "Comedy"]),
    ("Casino", 1995, ["Crime", "Drama"]),
    ("Alien", 1979, ["Horror", "Sci-Fi"]),
    ("Up", 2009, ["Animation", "Children", "Drama"]),
]


def candidates(n: int = 5) -> list[RerankCandidate]:
    films = [FILMS[i % len(FILMS)] for i in range(n)]
    return [
        RerankCandidate(id=100 + i, title=t, year=y, genres=g, score=1.0 - i / n)
        for i, (t, y, g) in enumerate(films)
    ]


@pytest.fixture(scope="module")
def registry() -> PromptRegistry:
    return PromptRegistry(REPO_ROOT / "prompts")


@pytest.fixture(scope="module")
def smollm2(tmp_path_factory) -> LLMClient:
    settings = Settings(llm_model="local/smollm2", cache_dir=tmp_path_factory.mktemp("llm"))
    client = client_from_settings(settings)
    client.warm_up()
    return client


# --------------------------------------------------------------------------- real model


def test_labels_are_single_tokens_and_match_the_answer_position(smollm2, registry) -> None:
    reranker = LLMReranker(smollm2, registry, weight=1.0)
    ids = reranker.label_ids()
    assert len(set(ids)) == len(LABELS)
    text, _ = reranker.local_prompt(HISTORY, None, candidates(3), "fwd")
    assert text.endswith("Answer:")
    llama = smollm2.local.llama
    base = llama.tokenize(text.encode(), add_bos=True, special=True)
    joined = llama.tokenize(f"{text} B".encode(), add_bos=True, special=True)
    assert joined[: len(base)] == base and joined[len(base) :] == [ids[1]]


def test_rerank_returns_a_permutation_of_exactly_the_input(smollm2, registry) -> None:
    # one pass keeps the test fast; the schemes differ only in which orders are averaged
    reranker = LLMReranker(
        smollm2, registry, weight=1.0, scheme="forward", calibrate=False, max_candidates=4
    )
    given = candidates(6)
    result = reranker.rerank(HISTORY, "something for the kids", given, Budget.of(60_000))
    assert result.skipped is None, result.skipped
    assert sorted(result.order) == sorted(c["id"] for c in given)
    assert len(result.order) == len(given)
    assert set(result.llm_scores) == {c["id"] for c in given[:4]}  # the head only
    assert result.order[4:] == [104, 105]  # the tail keeps the ranker's order
    assert result.prompt_ref == f"{LOCAL_PROMPT}@v1"
    assert all(np.isfinite(v) for v in result.llm_scores.values())
    assert result.latency_ms > 0


def test_spent_budget_returns_the_ranker_order(smollm2, registry) -> None:
    reranker = LLMReranker(smollm2, registry, weight=1.0)
    given = candidates(5)
    ranker = [c["id"] for c in given]
    spent = Budget(deadline=time.monotonic() - 1.0)
    result = reranker.rerank(HISTORY, None, given, spent)
    assert result.order == ranker and result.llm_scores is None
    assert result.skipped and result.skipped.startswith("budget")
    few_tokens = reranker.rerank(HISTORY, None, given, Budget.of(60_000, tokens=10))
    assert few_tokens.order == ranker and "tokens" in (few_tokens.skipped or "")


def test_weight_zero_never_calls_the_model(registry) -> None:
    off = LLMClient(model="off", cache=ResponseCache(None, "t", 60))
    result = LLMReranker(off, registry, weight=0.0).rerank(HISTORY, None, candidates(), None)
    assert result.order == [c["id"] for c in candidates()] and result.skipped
    result = LLMReranker(off, registry, weight=0.5).rerank(HISTORY, None, candidates(), None)
    assert result.skipped == "the LLM is off"


def test_unreachable_remote_falls_back_within_the_budget(registry) -> None:
    client = LLMClient(
        model="openai/gpt-4o-mini",
        cache=ResponseCache(None, "t", 60),
        api_base="http://127.0.0.1:9/v1",
        api_key="x",
        retries=1,
    )
    client.warm_up()  # imports litellm (seconds, once); the service does it at start-up
    reranker = LLMReranker(client, registry, weight=0.5)
    given = candidates(5)
    # litellm imports its provider modules on the first call (seconds, outside any timeout)
    cold = reranker.rerank(HISTORY, None, given, Budget.of(3_000))
    assert cold.order == [c["id"] for c in given] and cold.skipped
    start = time.monotonic()
    result = reranker.rerank(HISTORY, None, given, Budget.of(3_000))
    assert time.monotonic() - start < 3.0
    assert result.order == [c["id"] for c in given]
    assert result.skipped and result.skipped.startswith(("error", "budget"))
    assert result.llm_scores is None


class ScriptedRemote:
    """A remote provider that answers with fixed rankings (what a real one returns varies)."""

    model = "openai/scripted"
    enabled = True
    is_local = False

    def __init__(self, *answers: object) -> None:
        self.answers = list(answers)
        self.calls: list[list[dict]] = []

    def structured(self, messages, schema, **kwargs):
        self.calls.append(messages)
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return type("Answer", (), {"value": answer})()


def test_remote_rankings_are_parsed_and_averaged_over_orders(registry) -> None:
    given = candidates(4)  # ids 100..103, ranker order
    remote = ScriptedRemote({"ranking": ["102", 999, 102, 100]}, {"ranking": [102, 103]})
    result = LLMReranker(remote, registry, weight=1.0, scheme="forward+reversed").rerank(
        HISTORY, "a cartoon", given, Budget.of(5_000)
    )
    assert result.skipped is None and result.prompt_ref == "rerank@v1"
    assert len(remote.calls) == 2  # the second shows the candidates reversed
    shown = [m["content"] for m in remote.calls[1] if m["role"] == "user"][-1]
    assert shown.index("id 103") < shown.index("id 100")
    assert result.order[0] == 102 and sorted(result.order) == [100, 101, 102, 103]


def test_remote_failure_returns_the_ranker_order(registry) -> None:
    from llm.client import LLMError

    remote = ScriptedRemote({"ranking": [101]}, LLMError("invalid structured output"))
    result = LLMReranker(remote, registry, weight=1.0, scheme="forward+reversed").rerank(
        HISTORY, None, candidates(4), Budget.of(5_000)
    )
    assert result.order == [100, 101, 102, 103] and result.skipped.startswith("error")


# --------------------------------------------------------------------------- pure parts


IDS = [10, 20, 30, 40]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ({"ranking": [30, 10, 40, 20]}, [30, 10, 40, 20]),
        ({"ranking": ["30", " 20 ", 10.0]}, [30, 20, 10, 40]),  # strings, floats; rest appended
        ({"ranking": [30, 30, 99, -1, "x", None, True, 2.5, {"id": 10}]}, [30, 10, 20, 40]),
        ({"ranking": [40, 40, 40]}, [40, 10, 20, 30]),
        ([20, 10], [20, 10, 30, 40]),  # a bare list
        ({"ranking": "30, 10"}, IDS),  # not a list: the ranker's order
        ({}, IDS),
        (None, IDS),
    ],
)
def test_parse_ranking_is_robust(value, expected) -> None:
    assert parse_ranking(value, IDS) == expected


def test_parse_ranking_drops_ids_missing_from_the_catalog() -> None:
    assert parse_ranking({"ranking": [30, 20]}, IDS, catalog_ids={10, 20, 40}) == [20, 10, 30, 40]


def test_blend_weights() -> None:
    llm = {10: 0.1, 20: 0.2, 30: 0.9, 40: 0.5}
    assert blend_order(IDS, llm, 0.0) == IDS
    assert blend_order(IDS, llm, 1.0) == [30, 40, 20, 10]
    assert blend_order(IDS, {10: 0.0, 20: 0.0, 30: 0.0, 40: 0.0}, 1.0) == IDS  # ties: ranker
    assert blend_order([*IDS, 50, 60], llm, 1.0) == [30, 40, 20, 10, 50, 60]  # tail kept
    assert blend_order(IDS, reciprocal_rank_scores([40, 30, 20, 10]), 1.0) == [40, 30, 20, 10]
    mid = blend_order(IDS, llm, 0.5)
    assert sorted(mid) == IDS and mid[0] == 30


def test_passes_are_permutations_and_calibration_follows_the_label() -> None:
    for n in (2, 5, 20, 26):
        for name in PASSES:
            assert sorted(PASSES[name](n)) == list(range(n)), (name, n)
    assert all(name in PASSES for passes in SCHEMES.values() for name in passes)
    prior = np.array([3.0, 2.0, 1.0])
    scores = np.zeros(3)
    # reversed: candidate 2 wore label A, candidate 0 label C
    assert calibrated(scores, "rev", prior).tolist() == [-1.0, -2.0, -3.0]
    assert calibrated(scores, "fwd", prior).tolist() == [-3.0, -2.0, -1.0]


def test_defaults_follow_the_measurement() -> None:
    # neither embedded model beat the ranker on LOO-full (bench/RESULTS.md, llm_rerank)
    assert resolve_weight("local/smollm2", None)[0] == 0.0
    assert resolve_weight("local/gemma3", None)[0] == 0.0
    assert resolve_weight("local/gemma3", True)[0] > 0.0
    assert resolve_weight("local/smollm2", False)[0] == 0.0
    assert resolve_weight("openai/gpt-4o-mini", None)[0] == 0.0  # unmeasured: off
    assert resolve_weight("openai/gpt-4o-mini", True)[0] > 0.0


def test_prompt_file_validates(registry) -> None:
    problems = [p for p in registry.validate_all() if LOCAL_PROMPT in p]
    assert problems == []
    prompt = registry.get(LOCAL_PROMPT)
    assert prompt.spec.inputs == ["history", "request", "candidates"]
    assert prompt.spec.output_schema is None  # scored, never generated


def test_committed_results_match_results_md() -> None:
    path = REPO_ROOT / "bench/results/llm_rerank.json"
    require(path.is_file(), "llm_rerank benchmark not run yet (bench/results/llm_rerank.json)")
    payload = json.loads(path.read_text())
    section = read_section("llm_rerank", REPO_ROOT / "bench/RESULTS.md")
    assert payload["command"] in section
    for metric, value in payload["metrics"].items():
        assert str(value) in section, metric
