"""Merging candidate sources: quotas, dedup with tags, fill-up, and degradation."""

from __future__ import annotations

import threading
import time

import numpy as np

from retrieval.base import Candidate, RequestContext
from retrieval.merge import CandidateMerger, MergeConfig, merge

CTX = RequestContext(user_id=1, history=np.array([99]), timestamp=0)


def _list(name: str, items: list[int]) -> list[Candidate]:
    return [Candidate(i, 1.0 / (r + 1), name) for r, i in enumerate(items)]


class _FixedSource:
    """A real CandidateSource over a fixed ranking (the merge is what is under test)."""

    def __init__(self, name: str, items: list[int], delay_s: float = 0.0) -> None:
        self.name = name
        self.items = items
        self.delay_s = delay_s

    def candidates(self, ctx: RequestContext, k: int) -> list[Candidate]:
        time.sleep(self.delay_s)
        return _list(self.name, [i for i in self.items if i not in ctx.seen()][:k])


class _BrokenSource:
    name = "broken"

    def candidates(self, ctx: RequestContext, k: int) -> list[Candidate]:
        raise RuntimeError("index unavailable")


def test_round_robin_under_quotas_with_dedup_and_tags() -> None:
    lists = {"a": _list("a", [1, 2, 3, 4]), "b": _list("b", [2, 5, 6, 7])}
    pool = merge(lists, MergeConfig(pool_size=5, quotas={"a": 2, "b": 3}))
    # a admits 1 and (at rank 2) 3; b admits 2, 5, 6; a quota counts only what a admitted
    assert [c.item_id for c in pool] == [1, 2, 5, 3, 6]
    by_id = {c.item_id: c for c in pool}
    assert by_id[2].sources == ("b", "a")  # b placed it at rank 0; a returned it too
    assert by_id[2].ranks == {"b": 0, "a": 1}


def test_pool_is_filled_from_leftovers_when_quotas_leave_room() -> None:
    lists = {"a": _list("a", [1, 2, 3, 4]), "b": _list("b", [5])}
    pool = merge(lists, MergeConfig(pool_size=4, quotas={"a": 1, "b": 1}))
    assert [c.item_id for c in pool] == [1, 5, 2, 3]


def test_seen_items_never_enter_the_pool() -> None:
    lists = {"a": _list("a", [99, 1, 2])}
    pool = merge(lists, MergeConfig(pool_size=10), CTX)
    assert 99 not in [c.item_id for c in pool]


def test_merger_runs_sources_concurrently_and_survives_failures() -> None:
    sources = [
        _FixedSource("slow1", [1, 2, 3], delay_s=0.1),
        _FixedSource("slow2", [4, 5, 6], delay_s=0.1),
        _BrokenSource(),
    ]
    merger = CandidateMerger(sources, MergeConfig(pool_size=6, timeout_s=1.0))
    start = time.perf_counter()
    result = merger.gather(CTX)
    elapsed = time.perf_counter() - start
    assert sorted(c.item_id for c in result.candidates) == [1, 2, 3, 4, 5, 6]
    assert result.failed == ["broken"]
    assert elapsed < 0.19  # two 0.1 s sources in parallel, not in sequence


def test_a_source_past_its_timeout_is_skipped() -> None:
    sources = [_FixedSource("fast", [1, 2]), _FixedSource("stuck", [3], delay_s=1.0)]
    merger = CandidateMerger(sources, MergeConfig(pool_size=3, timeout_s=0.1))
    start = time.perf_counter()
    result = merger.gather(CTX)
    elapsed = time.perf_counter() - start
    assert [c.item_id for c in result.candidates] == [1, 2]
    assert result.failed == ["stuck"]
    assert elapsed < 0.3  # dropped at the deadline, not after its own 1 s


def test_bounded_sources_run_inline_and_the_rest_under_the_deadline() -> None:
    class _Inline(_FixedSource):
        bounded = True

        def candidates(self, ctx, k):
            self.thread = threading.current_thread()
            return super().candidates(ctx, k)

    inline = _Inline("popular", [7, 8])
    sources = [inline, _FixedSource("slow", [9], delay_s=1.0)]
    start = time.perf_counter()
    result = CandidateMerger(sources, MergeConfig(pool_size=3, timeout_s=0.1)).gather(CTX)
    assert time.perf_counter() - start < 0.3
    assert inline.thread is threading.current_thread()
    assert [c.item_id for c in result.candidates] == [7, 8] and result.failed == ["slow"]


def test_a_smaller_pool_size_merges_exactly_the_full_pools_head() -> None:
    """The feed merges only the head its ranker scores; it must be the same items, ranks
    and scores as the head of the full pool, with quotas, duplicates and seen items."""
    rng = np.random.default_rng(4)
    for _ in range(30):
        sources = [
            _FixedSource(f"s{j}", rng.choice(300, size=int(rng.integers(5, 120))).tolist())
            for j in range(4)
        ]
        quotas = {f"s{j}": int(rng.integers(5, 60)) for j in range(4)}
        merger = CandidateMerger(sources, MergeConfig(pool_size=200, quotas=quotas))
        ctx = RequestContext(1, rng.choice(300, size=20), timestamp=0)
        full = merger.gather(ctx).pool
        depth = int(rng.integers(1, 200))
        head = merger.gather(ctx, pool_size=depth).pool
        n = min(depth, len(full))
        assert len(head) == n
        np.testing.assert_array_equal(head.item_ids, full.item_ids[:n])
        np.testing.assert_array_equal(head.ranks, full.ranks[:n])
        np.testing.assert_array_equal(head.scores, full.scores[:n])
