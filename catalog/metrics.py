"""Vectorized ranking and beyond-accuracy metrics.

Conventions (each pinned by a hand-computed test):

- Ranks are 0-based. Ties are broken pessimistically: a target ranks below every
  other item with the same score, so a model cannot earn credit by emitting
  constant scores.
- Items a user has already interacted with are excluded by setting their score
  to -inf *before* ranking; a target that is itself excluded is a protocol bug
  and raises instead of silently scoring.
- For one target per user (LOO), Recall@K equals HR@K. For several targets,
  Recall@K = hits / |targets| and NDCG@K uses the ideal DCG of min(|targets|, K).
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import scipy.sparse as sp

DEFAULT_KS = (1, 5, 10, 20, 50)


def mask_history(scores: np.ndarray, history: sp.csr_matrix) -> np.ndarray:
    """Scores with each row's history items set to -inf (in place on a float copy)."""
    out = np.array(scores, dtype=np.float64, copy=True)
    coo = history.tocoo()
    out[coo.row, coo.col] = -np.inf
    return out


def target_ranks(scores: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """0-based rank of `targets[u]` in row `u` of `scores`, ties counted against it."""
    rows = np.arange(len(targets))
    target_scores = scores[rows, targets]
    if np.isneginf(target_scores).any():
        bad = int(np.flatnonzero(np.isneginf(target_scores))[0])
        raise ValueError(f"target item of row {bad} is excluded from ranking (history leak)")
    higher = (scores > target_scores[:, None]).sum(axis=1)
    ties = (scores == target_scores[:, None]).sum(axis=1) - 1
    return higher + ties


def auc_from_scores(scores: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Per-row AUC of one target against every non-excluded item (ties count one half)."""
    rows = np.arange(len(targets))
    target_scores = scores[rows, targets][:, None]
    candidates = np.isfinite(scores).sum(axis=1) - 1
    lower = ((scores < target_scores) & np.isfinite(scores)).sum(axis=1)
    ties = (scores == target_scores).sum(axis=1) - 1
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(candidates > 0, (lower + 0.5 * ties) / candidates, np.nan)


def metrics_from_ranks(ranks: np.ndarray, ks: Iterable[int] = DEFAULT_KS) -> dict[str, float]:
    """Mean Recall/NDCG/MRR@K over users with a single target each."""
    ranks = np.asarray(ranks)
    out: dict[str, float] = {}
    for k in ks:
        hit = ranks < k
        out[f"recall@{k}"] = float(hit.mean())
        out[f"ndcg@{k}"] = float(np.where(hit, 1.0 / np.log2(ranks + 2.0), 0.0).mean())
        out[f"mrr@{k}"] = float(np.where(hit, 1.0 / (ranks + 1.0), 0.0).mean())
    return out


def top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the `k` best items per row, best first; equal scores keep item order."""
    k = min(k, scores.shape[1])
    part = np.argpartition(-scores, kth=k - 1, axis=1)[:, :k]
    part_scores = np.take_along_axis(scores, part, axis=1)
    order = np.lexsort((part, -part_scores), axis=1)
    return np.take_along_axis(part, order, axis=1)


def list_metrics(
    top: np.ndarray, relevant: sp.csr_matrix, ks: Iterable[int] = DEFAULT_KS
) -> dict[str, float]:
    """Recall/HR/NDCG/MRR@K of ranked lists `top` against a sparse relevance matrix."""
    rel = relevant.tocsr()
    hits = np.asarray(rel[np.arange(top.shape[0])[:, None], top].todense()) > 0
    n_rel = np.diff(rel.indptr)
    if (n_rel == 0).any():
        raise ValueError("every evaluated row needs at least one relevant item")
    discounts = 1.0 / np.log2(np.arange(top.shape[1]) + 2.0)
    out: dict[str, float] = {}
    for k in ks:
        h = hits[:, :k]
        found = h.any(axis=1)
        first_position = h.argmax(axis=1) + 1.0
        ideal = np.cumsum(discounts[:k])[np.minimum(n_rel, k) - 1]
        out[f"recall@{k}"] = float((h.sum(axis=1) / n_rel).mean())
        out[f"hr@{k}"] = float(h.any(axis=1).mean())
        out[f"ndcg@{k}"] = float(((h * discounts[:k]).sum(axis=1) / ideal).mean())
        out[f"mrr@{k}"] = float(np.where(found, 1.0 / first_position, 0.0).mean())
    return out


def catalog_coverage(top: np.ndarray, n_items: int) -> float:
    """Share of the catalog that appears in at least one user's list."""
    return float(np.unique(top).size / n_items)


def novelty(top: np.ndarray, item_popularity: np.ndarray, n_users: int) -> float:
    """Mean self-information -log2(p(i)) of recommended items, p(i) = users who saw i / users.

    Unseen items get p = 1 / (n_users + 1) so the value stays finite.
    """
    p = np.maximum(np.asarray(item_popularity, dtype=np.float64), 0.0) / n_users
    p = np.where(p > 0, p, 1.0 / (n_users + 1))
    return float(-np.log2(p[top]).mean())


def intra_list_diversity(top: np.ndarray, item_features: np.ndarray | sp.spmatrix) -> float:
    """Mean pairwise cosine distance between items of each list (e.g. genre vectors)."""
    feats = item_features.toarray() if sp.issparse(item_features) else np.asarray(item_features)
    feats = feats.astype(np.float64)
    norms = np.linalg.norm(feats, axis=1, keepdims=True)
    unit = np.divide(feats, norms, out=np.zeros_like(feats), where=norms > 0)
    lists = unit[top]  # (users, k, dim)
    sims = np.einsum("ukd,ujd->ukj", lists, lists)
    k = top.shape[1]
    if k < 2:
        return 0.0
    off_diag = (sims.sum(axis=(1, 2)) - np.einsum("ukk->u", sims)) / (k * (k - 1))
    return float((1.0 - off_diag).mean())


def binary_auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """ROC AUC of scores for binary labels (Mann-Whitney; ties count one half)."""
    from scipy.stats import rankdata

    labels = np.asarray(labels).astype(bool)
    n_pos, n_neg = int(labels.sum()), int((~labels).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = rankdata(scores)
    return float((ranks[labels].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))
