"""Co-visitation candidates in the spirit of Pixie and GraphJet.

Two views of the same interaction log, blended into one list:

(a) Sequential co-visitation. Items consumed close together in one user's
    chronological sequence are related: every pair at most `window` positions
    apart adds 1/distance (pairs in sequence order fully, reversed pairs times
    `backward_weight`, since "what came next" predicts a next item better than
    "what came before"). The counts are divided by (n_i * n_j)^popularity_damping
    (n = item frequency) so blockbusters do not neighbour everything, and only
    each item's `neighbours` strongest links are kept as a sparse matrix. A
    request sums the neighbour rows of its last `recent_items` history items,
    weighted recency_decay^age (the latest item has age 0).
(b) Random walks on the user-item bipartite graph (Pixie): `walks` walks start
    from the same recent items (drawn with the same recency weights), each makes
    `walk_length` hops item -> random user who consumed it -> random item of that
    user, and every item visited scores one visit, divided by
    degree^walk_popularity_damping. Walks reach items two or more hops away that
    no window ever paired, which helps users whose recent items are rare.

Blend: seen items are zeroed, each score vector is normalized to sum to one (a
distribution over unseen items, so neither part's scale dominates), and the
candidates rank by (1 - walk_weight) * covisitation + walk_weight * walks.
Walks draw from a generator seeded with `seed`, so a request is reproducible.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
import pandas as pd
import scipy.sparse as sp

from retrieval.base import Candidate, RequestContext
from retrieval.sources.common import ItemUniverse, index_events, top_candidates


@dataclass(frozen=True)
class CoVisitConfig:
    """Defaults: best Recall@100 on the ml-latest-small LOO *validation* stage (0.493).

    The surface is flat near the optimum (+-1 pt is a handful of users), so cheaper
    settings won ties: one-hop walks match two-hop ones at half the cost.
    """

    # (a) co-visitation graph
    window: int = 40  # ml-latest-small users rate dozens of films per sitting
    backward_weight: float = 0.5
    popularity_damping: float = 0.5
    neighbours: int = 400
    # which history items seed both parts
    recent_items: int = 50
    recency_decay: float = 0.9
    # (b) random walks: alone they trail (a), but blended they add about a point
    walks: int = 20_000
    walk_length: int = 1
    walk_popularity_damping: float = 0.5
    walk_weight: float = 0.3
    seed: int = 0


_PAIR_BUFFER = 8_000_000


def _gather_rows(indptr: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Positions of all entries of `rows` in a CSR layout, and each position's row slot."""
    starts = indptr[rows]
    lengths = indptr[rows + 1] - starts
    slot = np.repeat(np.arange(rows.size), lengths)
    first = np.cumsum(lengths) - lengths
    return starts[slot] + np.arange(slot.size) - first[slot], slot


def _allocate(total: int, weights: np.ndarray) -> np.ndarray:
    """Split `total` walks in proportion to `weights` (largest remainders get the rest).

    A fixed allocation instead of drawing each walk's start: it removes one source
    of sampling noise and is much cheaper than a weighted `rng.choice`.
    """
    exact = total * weights / weights.sum()
    counts = np.floor(exact).astype(np.int64)
    short = total - int(counts.sum())
    if short > 0:
        counts[np.argsort(counts - exact, kind="stable")[:short]] += 1
    return counts


def _pick(indptr: np.ndarray, rows: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Position of one uniformly drawn entry in each row (rows must be non-empty).

    Scaled uniforms rather than `rng.integers` with per-row bounds, which is several
    times slower and the walk's hot loop.
    """
    start = indptr[rows]
    length = indptr[rows + 1] - start
    offset = (rng.random(rows.size) * length).astype(np.int64)
    return start + np.minimum(offset, length - 1)


def _keep_top_per_row(mat: sp.csr_matrix, n: int) -> sp.csr_matrix:
    """Each row's `n` largest entries, ties to the lower column.

    A loop over the rows that need pruning: one global (row, value) lexsort costs
    seconds on a few million pairs, per-row stable argsorts a fraction of that.
    """
    mat = mat.tocsr(copy=True)
    mat.sum_duplicates()  # canonical: column order within each row, so stable = lower column
    lengths = np.diff(mat.indptr)
    keep = np.ones(mat.nnz, dtype=bool)
    for row in np.flatnonzero(lengths > n):
        start, end = mat.indptr[row], mat.indptr[row + 1]
        keep[start + np.argsort(-mat.data[start:end], kind="stable")[n:]] = False
    indptr = np.concatenate([[0], np.cumsum(np.minimum(lengths, n))])
    return sp.csr_matrix((mat.data[keep], mat.indices[keep], indptr), shape=mat.shape)


def _cooccurrence(
    users: np.ndarray, items: np.ndarray, n_items: int, config: CoVisitConfig
) -> sp.csr_matrix:
    """Closeness-weighted pair counts from (user, time)-sorted events.

    Pairs are buffered and folded into the sparse sum a few million at a time, which
    bounds memory on large logs without paying one sparse addition per distance.
    """
    shape = (n_items, n_items)
    co = sp.csr_matrix(shape, dtype=np.float64)
    buffered: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    size = 0
    for distance in range(1, config.window + 1):
        same = users[:-distance] == users[distance:]
        early, late = items[:-distance][same], items[distance:][same]
        distinct = early != late
        early, late = early[distinct], late[distinct]
        weight = np.full(early.size, 1.0 / distance)
        buffered.append(
            (
                np.concatenate([early, late]),
                np.concatenate([late, early]),
                np.concatenate([weight, weight * config.backward_weight]),
            )
        )
        size += 2 * early.size
        if size >= _PAIR_BUFFER or distance == config.window:
            rows, cols, data = (np.concatenate(part) for part in zip(*buffered, strict=True))
            co = co + sp.csr_matrix((data, (rows, cols)), shape=shape)
            buffered, size = [], 0
    co.eliminate_zeros()
    return co


def _adjacency(rows: np.ndarray, cols: np.ndarray, shape: tuple[int, int]) -> sp.csr_matrix:
    mat = sp.csr_matrix((np.ones(rows.size, dtype=np.float32), (rows, cols)), shape=shape)
    mat.sum_duplicates()
    return mat


class CoVisitationSource:
    """Sequential co-visitation blended with bipartite random walks (see module docstring)."""

    name = "covisit"

    def __init__(
        self,
        universe: ItemUniverse,
        neighbours: sp.csr_matrix,
        item_users: sp.csr_matrix,
        user_items: sp.csr_matrix,
        config: CoVisitConfig,
    ) -> None:
        self.universe = universe
        self.config = config
        self.neighbours = neighbours
        self._item_users = item_users
        self._user_items = user_items
        self._item_degree = np.diff(item_users.indptr)
        self._walk_norm = np.power(
            np.maximum(self._item_degree, 1), -config.walk_popularity_damping
        )

    @classmethod
    def fit(
        cls, events: pd.DataFrame, item_ids: np.ndarray, config: CoVisitConfig | None = None
    ) -> CoVisitationSource:
        config = config or CoVisitConfig()
        universe = ItemUniverse(item_ids)
        users, items, times = index_events(events, universe)
        order = np.lexsort((items, times, users))
        users, items = users[order], items[order]
        n_items = len(universe)
        n_users = int(users.max()) + 1 if users.size else 0

        co = _cooccurrence(users, items, n_items, config)
        frequency = np.bincount(items, minlength=n_items).astype(np.float64)
        damp = sp.diags(np.power(np.maximum(frequency, 1.0), -config.popularity_damping))
        normalized = sp.csr_matrix(damp @ co @ damp)
        neighbours = _keep_top_per_row(normalized, config.neighbours)

        item_users = _adjacency(items, users, (n_items, n_users))
        user_items = _adjacency(users, items, (n_users, n_items))
        return cls(universe, neighbours, item_users, user_items, config)

    def _recent(self, ctx: RequestContext) -> tuple[np.ndarray, np.ndarray]:
        """The last `recent_items` known history items and their recency weights."""
        recent = self.universe.known(ctx.history)[-self.config.recent_items :]
        age = np.arange(recent.size)[::-1]
        return recent, np.power(self.config.recency_decay, age)

    def covisit_scores(self, recent: np.ndarray, weights: np.ndarray) -> np.ndarray:
        """Part (a): recency-weighted sum of the recent items' neighbour rows."""
        pos, slot = _gather_rows(self.neighbours.indptr, recent)
        return np.bincount(
            self.neighbours.indices[pos],
            weights=self.neighbours.data[pos] * weights[slot],
            minlength=len(self.universe),
        )

    def walk_scores(self, recent: np.ndarray, weights: np.ndarray) -> np.ndarray:
        """Part (b): damped visit counts of walks started in proportion to `weights`."""
        n_items = len(self.universe)
        walkable = self._item_degree[recent] > 0
        recent, weights = recent[walkable], weights[walkable]
        if recent.size == 0 or self.config.walks <= 0 or self.config.walk_length <= 0:
            return np.zeros(n_items)
        rng = np.random.default_rng(self.config.seed)
        current = np.repeat(recent, _allocate(self.config.walks, weights))
        iu, ui = self._item_users, self._user_items
        visited = []
        for _ in range(self.config.walk_length):
            user = iu.indices[_pick(iu.indptr, current, rng)]
            current = ui.indices[_pick(ui.indptr, user, rng)]
            visited.append(current)
        visits = np.bincount(np.concatenate(visited), minlength=n_items)
        return visits * self._walk_norm

    def scores(self, ctx: RequestContext) -> np.ndarray:
        """Blended score of every universe item; seen items score zero."""
        return self._blend(ctx, self.universe.seen(ctx))

    def _blend(self, ctx: RequestContext, seen: np.ndarray) -> np.ndarray:
        recent, weights = self._recent(ctx)
        if recent.size == 0:
            return np.zeros(len(self.universe))
        parts = []
        share = self.config.walk_weight
        if share < 1:
            parts.append((1 - share, self.covisit_scores(recent, weights)))
        if share > 0:
            parts.append((share, self.walk_scores(recent, weights)))
        blended = np.zeros(len(self.universe))
        for part_weight, part in parts:
            part[seen] = 0.0
            total = part.sum()
            if total > 0:
                blended += part * (part_weight / total)
        return blended

    @cached_property
    def _by_column(self) -> sp.csc_matrix:
        return self.neighbours.tocsc()

    def links(self, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """Dense `neighbours[rows][:, cols]` for a few dozen rows and columns (the feed's
        "because you watched" anchors): read from the column-major copy, the entries of
        the few columns only, where scipy's fancy indexing slices whole rows twice."""
        rows, cols = np.asarray(rows, np.int64), np.asarray(cols, np.int64)
        out = np.zeros((rows.size, cols.size), dtype=self.neighbours.dtype)
        if not rows.size or not cols.size:
            return out
        m = self._by_column
        unique_rows, inverse = np.unique(rows, return_inverse=True)
        lookup = np.full(m.shape[0], -1, np.int64)
        lookup[unique_rows] = np.arange(unique_rows.size)
        pos, col_of = _gather_rows(m.indptr, cols)  # CSC: a column's entries are contiguous
        hit = lookup[m.indices[pos]]
        keep = hit >= 0
        block = np.zeros((unique_rows.size, cols.size), dtype=out.dtype)
        block[hit[keep], col_of[keep]] = m.data[pos[keep]]
        return block[inverse]

    def candidates(self, ctx: RequestContext, k: int) -> list[Candidate]:
        if k <= 0:
            return []
        seen = self.universe.seen(ctx)
        return top_candidates(self._blend(ctx, seen), k, seen, self.universe, self.name)
