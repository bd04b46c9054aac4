"""Multi-task deep ranker: wide & deep with a shared bottom and one tower per objective.

Objectives: P(click) = the candidate is the item consumed next (watched),
P(complete) = consumed and rated >= 3 (proxy), P(like) = rated >= 4,
P(regret) = rated <= 2. Negatives are real: retrieved for the request but not
consumed. The final score is the configurable blend
w_click P(click) + w_complete P(complete) + w_like P(like) - w_regret P(regret).
"""

from __future__ import annotations

import copy
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ranking.base import OBJECTIVES, RankedItem
from ranking.features import ItemTable, UserSide, build_features, user_side
from ranking.runtime import NumpyNet
from retrieval.base import RequestContext
from retrieval.merge import Pool, PooledCandidate

# Candidates the deep ranker scores per request, in merge order (the merge interleaves
# the sources rank by rank, so this is every source's head). Measured in
# `marquee bench feed_guard`: the page's NDCG@10 and coverage@10 within the bootstrap
# interval of scoring the whole ~500 pool (coverage about half a point lower, paired),
# at about half the ranking stage's time (`marquee bench feed_cpu --rank-depth 0`).
RANK_DEPTH = 150
USER_CACHE = 2048  # users whose history-side features are kept (LRU)


@dataclass(frozen=True)
class BlendWeights:
    click: float = 1.0
    complete: float = 0.3
    like: float = 0.3
    regret: float = 0.3

    def combine(self, probs: np.ndarray) -> np.ndarray:
        """probs: (n, 4) in OBJECTIVES order."""
        w = np.array([self.click, self.complete, self.like, -self.regret], dtype=np.float32)
        return probs @ w


@dataclass(frozen=True)
class RankerConfig:
    hidden: tuple[int, ...] = (128, 64)
    tower: int = 32
    dropout: float = 0.1
    lr: float = 1e-3
    weight_decay: float = 1e-5
    batch_size: int = 2048
    max_epochs: int = 40
    patience: int = 4
    seed: int = 42
    task_weights: tuple[float, float, float, float] = (1.0, 0.5, 0.5, 0.5)

    def to_dict(self) -> dict:
        return asdict(self)


class MultiTaskNet(nn.Module):
    def __init__(self, n_features: int, config: RankerConfig) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(n_features))
        self.register_buffer("std", torch.ones(n_features))
        # The range each feature had in training: inputs are clipped to it, so a request
        # (a user years stale on the wall clock, an hour never seen) stays in known ground.
        self.register_buffer("lo", torch.full((n_features,), -torch.inf))
        self.register_buffer("hi", torch.full((n_features,), torch.inf))
        layers: list[nn.Module] = []
        width = n_features
        for h in config.hidden:
            layers += [nn.Linear(width, h), nn.ReLU(), nn.Dropout(config.dropout)]
            width = h
        self.bottom = nn.Sequential(*layers)
        self.towers = nn.ModuleList(
            nn.Sequential(nn.Linear(width, config.tower), nn.ReLU(), nn.Linear(config.tower, 1))
            for _ in OBJECTIVES
        )
        self.wide = nn.Linear(n_features, len(OBJECTIVES))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (n, 4) in OBJECTIVES order."""
        z = (torch.clamp(x, self.lo, self.hi) - self.mean) / self.std
        shared = self.bottom(z)
        deep = torch.cat([tower(shared) for tower in self.towers], dim=1)
        return deep + self.wide(z)


@dataclass
class RankerTrainResult:
    net: MultiTaskNet
    best_epoch: int
    history: list[dict[str, float]] = field(default_factory=list)
    seconds: float = 0.0


def train_ranker(
    x_train: np.ndarray,
    y_train: np.ndarray,
    validate: Callable[[MultiTaskNet], float],
    config: RankerConfig | None = None,
) -> RankerTrainResult:
    """Per-task BCE; early stopping on `validate(net)` (higher is better)."""
    config = config or RankerConfig()
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    net = MultiTaskNet(x_train.shape[1], config)
    x = torch.from_numpy(x_train)
    y = torch.from_numpy(y_train.astype(np.float32))
    net.mean.copy_(x.mean(dim=0))
    net.std.copy_(x.std(dim=0).clamp_min(1e-4))
    net.lo.copy_(x.min(dim=0).values)
    net.hi.copy_(x.max(dim=0).values)
    task_w = torch.tensor(config.task_weights)
    optimizer = torch.optim.AdamW(net.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    started = time.perf_counter()
    best = (-np.inf, 0, copy.deepcopy(net.state_dict()))
    history = []
    for epoch in range(1, config.max_epochs + 1):
        net.train()
        order = torch.from_numpy(rng.permutation(len(x)))
        total = 0.0
        for start in range(0, len(order), config.batch_size):
            idx = order[start : start + config.batch_size]
            logits = net(x[idx])
            per_task = F.binary_cross_entropy_with_logits(logits, y[idx], reduction="none")
            loss = (per_task.mean(dim=0) * task_w).sum()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += loss.item() * len(idx)
        net.eval()
        metric = validate(net)
        history.append({"epoch": epoch, "loss": total / len(x), "valid": metric})
        if metric > best[0]:
            best = (metric, epoch, copy.deepcopy(net.state_dict()))
        elif epoch - best[1] >= config.patience:
            break
    net.load_state_dict(best[2])
    net.eval()
    return RankerTrainResult(net, best[1], history, time.perf_counter() - started)


class Ranker:
    """Scores one request's pool: per-objective probabilities and the blended score."""

    def __init__(self, net: MultiTaskNet, items: ItemTable, weights: BlendWeights) -> None:
        self.net = net.eval()
        self.runtime = NumpyNet.from_torch(self.net)  # inference without torch dispatch
        self.items = items
        self.weights = weights
        self._users: OrderedDict[bytes, UserSide] = OrderedDict()
        self._users_lock = threading.Lock()

    def probabilities(self, features: np.ndarray) -> np.ndarray:
        return self.runtime.probabilities(features)

    def user_side(self, ctx: RequestContext) -> UserSide:
        """The history's features, cached under the history itself (its bytes: exact, and
        a new event makes a new key), so a user's next page skips the history pass."""
        key = np.asarray(ctx.history, dtype=np.int64).tobytes()
        with self._users_lock:
            side = self._users.get(key)
            if side is not None:
                self._users.move_to_end(key)
                return side
        side = user_side(ctx.history, self.items)
        with self._users_lock:
            self._users[key] = side
            if len(self._users) > USER_CACHE:
                self._users.popitem(last=False)
        return side

    def features(
        self, ctx: RequestContext, candidates: Sequence[PooledCandidate] | Pool
    ) -> np.ndarray:
        return build_features(ctx, candidates, self.items, self.user_side(ctx))

    def score(
        self, ctx: RequestContext, candidates: Sequence[PooledCandidate] | Pool
    ) -> dict[str, np.ndarray]:
        """Per-objective probabilities for each candidate (DESIGN's `Ranker.score`)."""
        probs = self.probabilities(self.features(ctx, candidates))
        return {name: probs[:, j] for j, name in enumerate(OBJECTIVES)}

    def rank(
        self,
        ctx: RequestContext,
        candidates: Sequence[PooledCandidate] | Pool,
        weights: BlendWeights | None = None,
        limit: int | None = None,
    ) -> list[RankedItem]:
        """Candidates sorted by the blended score (default weights unless given), best first.

        `limit` keeps only the best ones: building an item per candidate costs more than
        scoring it, and a page of 20 never reaches candidate 500.
        """
        if not len(candidates):
            return []
        probs = self.probabilities(self.features(ctx, candidates))
        blended = (weights or self.weights).combine(probs)
        order = np.argsort(-blended, kind="stable")[:limit].tolist()
        top = np.asarray(order, dtype=np.int64)
        # Python values once for the kept rows only, not per field or per pooled candidate
        rows, scores = probs[top].tolist(), blended[top].tolist()
        if isinstance(candidates, Pool):
            ids = candidates.item_ids[top].tolist()
            sources = candidates.source_sets(order)
        else:
            ids = [candidates[i].item_id for i in order]
            sources = [candidates[i].sources for i in order]
        return [
            RankedItem(item, score, dict(zip(OBJECTIVES, row, strict=True)), source)
            for item, score, row, source in zip(ids, scores, rows, sources, strict=True)
        ]
