"""Beta-Bernoulli posteriors per item, for Thompson-sampling exploration.

Why a shared prior from the global CTR instead of Beta(1, 1): a uniform prior has a
mean of 0.5, an order of magnitude above any real feed CTR, so every unseen item
would out-sample every proven one and "exploration" would take over the page. A prior
centred on the global CTR with a small pseudo-count (the default Beta(1, 19) is a 5%
CTR worth 20 impressions) still gives unseen items a wide posterior, so they win
sometimes, while a few dozen real impressions dominate it.

Counts are floats so a nearline worker may feed time-decayed clicks and impressions.
One lock guards the table: updates come from a feedback consumer while request threads
sample, and both critical sections are a few dict operations.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

FORMAT_VERSION = 1


class BetaBandit:
    def __init__(self, prior_alpha: float = 1.0, prior_beta: float = 19.0) -> None:
        if prior_alpha <= 0 or prior_beta <= 0:
            raise ValueError("prior alpha and beta must be positive")
        self.prior_alpha = float(prior_alpha)
        self.prior_beta = float(prior_beta)
        self._arms: dict[int, tuple[float, float]] = {}  # item -> (clicks, impressions)
        self._lock = threading.Lock()

    @classmethod
    def from_ctr(cls, ctr: float, strength: float = 20.0) -> BetaBandit:
        """Prior with mean `ctr` worth `strength` pseudo-impressions."""
        if not 0.0 < ctr < 1.0 or strength <= 0:
            raise ValueError("ctr must be in (0, 1) and strength positive")
        return cls(prior_alpha=ctr * strength, prior_beta=(1.0 - ctr) * strength)

    def update(self, item_id: int, clicks: float, impressions: float) -> None:
        """Add observed clicks out of impressions (a click without an impression is a bug)."""
        self.update_many([item_id], [clicks], [impressions])

    def update_many(
        self,
        item_ids: Sequence[int] | np.ndarray,
        clicks: Sequence[float] | np.ndarray,
        impressions: Sequence[float] | np.ndarray,
    ) -> None:
        """Batch form for the feedback consumer; validated in full before any write."""
        ids = np.asarray(item_ids, dtype=np.int64)
        c = np.asarray(clicks, dtype=float)
        n = np.asarray(impressions, dtype=float)
        if not ids.shape == c.shape == n.shape or ids.ndim != 1:
            raise ValueError("item_ids, clicks and impressions must be equal-length 1-d")
        if (c < 0).any() or (n < 0).any() or (c > n).any() or not np.isfinite(c + n).all():
            raise ValueError("need 0 <= clicks <= impressions, finite")
        with self._lock:
            for item, dc, dn in zip(ids.tolist(), c.tolist(), n.tolist(), strict=True):
                old_c, old_n = self._arms.get(item, (0.0, 0.0))
                self._arms[item] = (old_c + dc, old_n + dn)

    def exposure(self, item_id: int) -> float:
        """Impressions recorded so far (0 for an item never shown)."""
        with self._lock:
            return self._arms.get(int(item_id), (0.0, 0.0))[1]

    def exposures(self, item_ids: Iterable[int]) -> np.ndarray:
        return self._counts(item_ids)[:, 1]

    def posterior(self, item_id: int) -> tuple[float, float]:
        """(alpha, beta) of the item's Beta posterior."""
        clicks, impressions = self._counts([item_id])[0]
        return self.prior_alpha + clicks, self.prior_beta + impressions - clicks

    def sample(self, item_ids: Iterable[int], rng: np.random.Generator) -> np.ndarray:
        """One CTR draw per item from its posterior: the Thompson-sampling scores."""
        counts = self._counts(item_ids)
        if len(counts) == 0:
            return np.zeros(0)
        alpha = self.prior_alpha + counts[:, 0]
        beta = self.prior_beta + counts[:, 1] - counts[:, 0]
        return rng.beta(alpha, beta)

    def _counts(self, item_ids: Iterable[int]) -> np.ndarray:
        ids = [int(i) for i in item_ids]
        with self._lock:
            rows = [self._arms.get(i, (0.0, 0.0)) for i in ids]
        return np.array(rows, dtype=float).reshape(len(ids), 2)

    def __len__(self) -> int:
        with self._lock:
            return len(self._arms)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe snapshot (ids as string keys, since JSON objects have no int keys)."""
        with self._lock:
            arms = {str(i): [c, n] for i, (c, n) in self._arms.items()}
        return {
            "version": FORMAT_VERSION,
            "prior_alpha": self.prior_alpha,
            "prior_beta": self.prior_beta,
            "arms": arms,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> BetaBandit:
        if data.get("version") != FORMAT_VERSION:
            raise ValueError(f"unsupported bandit format {data.get('version')!r}")
        bandit = cls(data["prior_alpha"], data["prior_beta"])
        arms = data.get("arms", {})
        if arms:
            ids = [int(i) for i in arms]
            clicks, impressions = zip(*(arms[k] for k in arms), strict=True)
            bandit.update_many(ids, clicks, impressions)
        return bandit
