"""Metric definitions pinned by hand-computed cases (ranks are 0-based, ties pessimistic)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.sparse as sp

from catalog.metrics import (
    auc_from_scores,
    catalog_coverage,
    intra_list_diversity,
    list_metrics,
    mask_history,
    metrics_from_ranks,
    novelty,
    target_ranks,
    top_k,
)


def test_rank_of_second_best_item_is_one_and_metrics_follow() -> None:
    scores = np.array([[0.9, 0.5, 0.7, 0.1]])
    ranks = target_ranks(scores, np.array([2]))
    assert ranks.tolist() == [1]
    m = metrics_from_ranks(ranks, ks=(1, 2, 5))
    assert m["recall@1"] == 0.0  # an off-by-one would count this as a hit
    assert m["recall@2"] == 1.0
    assert m["ndcg@2"] == pytest.approx(1 / math.log2(3))
    assert m["mrr@5"] == pytest.approx(0.5)


def test_top_ranked_target_gets_full_credit() -> None:
    m = metrics_from_ranks(np.array([0, 9, 10]), ks=(10,))
    # rank 0 -> ndcg 1; rank 9 -> 1/log2(11); rank 10 is outside the top 10
    assert m["recall@10"] == pytest.approx(2 / 3)
    assert m["ndcg@10"] == pytest.approx((1 + 1 / math.log2(11)) / 3)
    assert m["mrr@10"] == pytest.approx((1 + 1 / 10) / 3)


def test_ties_are_broken_against_the_target() -> None:
    scores = np.array([[1.0, 1.0, 1.0, 0.0]])
    assert target_ranks(scores, np.array([0])).tolist() == [2]
    assert auc_from_scores(scores, np.array([0])).tolist() == [pytest.approx((1 + 0.5 * 2) / 3)]


def test_history_items_are_excluded_from_the_ranking() -> None:
    scores = np.array([[0.9, 0.5, 0.1], [0.2, 0.3, 0.4]])
    history = sp.csr_matrix(np.array([[1, 0, 0], [0, 0, 1]], dtype=np.float32))
    masked = mask_history(scores, history)
    assert target_ranks(masked, np.array([1, 1])).tolist() == [0, 0]
    # without masking the seen item would push the target down
    assert target_ranks(scores, np.array([1, 1])).tolist() == [1, 1]
    assert scores[0, 0] == 0.9, "masking must not modify the caller's array"


def test_a_target_inside_the_history_is_reported_as_a_leak() -> None:
    scores = mask_history(np.array([[0.9, 0.5]]), sp.csr_matrix(np.array([[0, 1]], np.float32)))
    with pytest.raises(ValueError, match="history leak"):
        target_ranks(scores, np.array([1]))


def test_auc_counts_only_non_excluded_items() -> None:
    scores = np.array([[0.9, 0.5, 0.7, 0.1, -np.inf]])
    # target 0.7 beats 0.5 and 0.1, loses to 0.9; the -inf history item is not a candidate
    assert auc_from_scores(scores, np.array([2])).tolist() == [pytest.approx(2 / 3)]


def test_top_k_orders_best_first_and_keeps_item_order_on_ties() -> None:
    scores = np.array([[0.1, 0.8, 0.8, 0.3, 0.9]])
    assert top_k(scores, 3).tolist() == [[4, 1, 2]]
    assert top_k(scores, 10).shape == (1, 5)


def test_list_metrics_with_several_targets() -> None:
    top = np.array([[3, 1, 0]])
    relevant = sp.csr_matrix(np.array([[0, 1, 1, 0]], dtype=np.float32))
    m = list_metrics(top, relevant, ks=(1, 3))
    assert m["recall@1"] == 0.0 and m["hr@1"] == 0.0
    assert m["recall@3"] == pytest.approx(0.5)
    assert m["hr@3"] == 1.0
    assert m["mrr@3"] == pytest.approx(0.5)
    ideal = 1 + 1 / math.log2(3)
    assert m["ndcg@3"] == pytest.approx((1 / math.log2(3)) / ideal)


def test_list_and_rank_paths_agree_for_single_targets() -> None:
    rng = np.random.default_rng(0)
    scores = rng.random((50, 200))
    targets = rng.integers(0, 200, size=50)
    relevant = sp.csr_matrix((np.ones(50), (np.arange(50), targets)), shape=(50, 200))
    by_rank = metrics_from_ranks(target_ranks(scores, targets), ks=(1, 5, 10, 50))
    by_list = list_metrics(top_k(scores, 50), relevant, ks=(1, 5, 10, 50))
    for key, value in by_rank.items():
        assert by_list[key] == pytest.approx(value), key


def test_coverage_novelty_and_diversity_by_hand() -> None:
    top = np.array([[0, 1], [1, 2]])
    assert catalog_coverage(top, 10) == pytest.approx(0.3)

    popularity = np.array([4, 2, 1, 0])
    expected = (0 + 1 + 2 + math.log2(5)) / 4  # p = 1, 1/2, 1/4 and unseen -> 1/(4+1)
    assert novelty(np.array([[0, 1], [2, 3]]), popularity, n_users=4) == pytest.approx(expected)

    features = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    assert intra_list_diversity(np.array([[0, 1]]), features) == pytest.approx(1.0)
    assert intra_list_diversity(np.array([[0, 2]]), features) == pytest.approx(1 - 1 / math.sqrt(2))
    assert intra_list_diversity(np.array([[0, 0, 0]]), features) == pytest.approx(0.0)


def test_binary_auc_by_hand() -> None:
    from catalog.metrics import binary_auc

    # positives 0.8 and 0.4; negatives 0.6 and 0.2: 3 of 4 pairs ordered -> 0.75
    assert binary_auc(np.array([1, 0, 1, 0]), np.array([0.8, 0.6, 0.4, 0.2])) == 0.75
    assert binary_auc(np.array([1, 0]), np.array([0.5, 0.5])) == 0.5
    assert math.isnan(binary_auc(np.array([0, 0]), np.array([0.1, 0.2])))
