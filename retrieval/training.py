"""Two-tower training: sampled softmax with in-batch, random and hard negatives.

Why this loss: the catalog is scored with one dot product per item, so training
should look like the serving problem, a softmax over many items. A full softmax
does not scale to millions of items, so each batch scores against a shared pool:
the batch's own positives (in-batch negatives, drawn in proportion to
popularity), uniform random items, and a share of hard negatives (items close to
the batch's positives in the current embedding space). Popular items appear as
negatives far more often than rare ones; subtracting log Q (their expected count
in the pool) keeps the model from simply learning to demote popular items
(Yi et al., 2019, "Sampling-bias-corrected neural modeling").

Windows: every user's chronological sequence is cut into windows of
`max_history + 1` items from the end; each position predicts its next item.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime

import numpy as np
import torch
import torch.nn.functional as F

from retrieval.features import ItemFeatures
from retrieval.two_tower import PAD, TwoTowerConfig, TwoTowerModel


@dataclass(frozen=True)
class TrainConfig:
    max_epochs: int = 60
    batch_size: int = 64  # windows per step
    lr: float = 3e-3
    weight_decay: float = 1e-4
    random_negatives: int = 1024
    hard_negative_share: float = 0.2  # of the negative pool; the rest is in-batch + random
    hard_neighbours: int = 20  # nearest items per positive that hard negatives come from
    content_alignment: float = 0.5  # weight of pulling content-only vectors onto full ones
    time_dropout: float = 0.15  # share of windows trained without event times, so a
    # request without them (onboarding picks, a client that sends no times) still works
    patience: int = 6  # epochs without validation improvement before stopping
    max_seconds: float = 600.0  # safety net; the epoch cap and early stopping decide
    seed: int = 42

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class SequenceData:
    """Per-user chronological item slots (vocabulary index + 1) and event times."""

    sequences: list[np.ndarray]
    timestamps: list[np.ndarray]
    demographics: np.ndarray  # (n_users, 3) int64

    @property
    def n_users(self) -> int:
        return len(self.sequences)


N_GAP_BUCKETS = 26  # 0 = unknown; then log2 buckets of 10 s up to years


def gap_buckets(seconds: np.ndarray) -> np.ndarray:
    """Log-scale buckets of a time gap: seconds apart (one rating session) vs months apart."""
    gap = np.maximum(np.asarray(seconds, dtype=np.float64), 0.0)
    return (1 + np.minimum(np.log2(1.0 + gap / 10.0), N_GAP_BUCKETS - 2)).astype(np.int64)


def history_gaps(timestamps: np.ndarray) -> np.ndarray:
    """Bucket of the gap before each event (0 for the first: nothing came before)."""
    ts = np.asarray(timestamps, dtype=np.int64)
    out = np.zeros(len(ts), dtype=np.int64)
    if len(ts) > 1:
        out[1:] = gap_buckets(np.diff(ts))
    return out


def gap_cap(timestamps: list[np.ndarray], share: float = 0.001) -> int:
    """The largest gap bucket between a user's consecutive training events that at least
    `share` of the gaps reach: requests further from the last event are capped at it."""
    gaps = [history_gaps(ts)[1:] for ts in timestamps if len(ts) > 1]
    if not gaps:
        return N_GAP_BUCKETS - 1
    return int(np.quantile(np.concatenate(gaps), 1.0 - share, method="lower"))


def context_of(request_ts: np.ndarray, last_ts: np.ndarray | None = None) -> np.ndarray:
    """(hour, weekday, gap bucket) of each request: when it happens, and how long since
    the user's latest event (0 = unknown). UTC; 1970-01-01 was a Thursday (Monday = 0)."""
    ts = np.asarray(request_ts, dtype=np.int64)
    hours = (ts // 3600) % 24
    weekdays = (ts // 86400 + 3) % 7
    if last_ts is None:
        gaps = np.zeros_like(ts)
    else:
        last = np.asarray(last_ts, dtype=np.int64)
        gaps = np.where(last > 0, gap_buckets(ts - last), 0)
    return np.stack([hours, weekdays, gaps], axis=-1)


def left_pad(rows: list[np.ndarray], length: int, fill: int = PAD) -> np.ndarray:
    """Right-align each row in a (len(rows), length) array: the newest item is last."""
    out = np.full((len(rows), length), fill, dtype=np.int64)
    for i, row in enumerate(rows):
        row = row[-length:]
        if len(row):
            out[i, length - len(row) :] = row
    return out


@dataclass
class Windows:
    """Training windows: inputs and their gap buckets, next-item targets, request context."""

    inputs: np.ndarray  # (n, L) slots, left-padded
    gaps: np.ndarray  # (n, L) gap bucket before each input item
    targets: np.ndarray  # (n, L) next slot after each input position
    context: np.ndarray  # (n, L, 3) context of the request each position answers
    users: np.ndarray  # (n,)

    def __len__(self) -> int:
        return len(self.inputs)


def make_windows(data: SequenceData, max_history: int) -> Windows:
    """Every user's sequence cut from the end into windows of `max_history + 1` items."""
    inputs, gaps, targets, contexts, users = [], [], [], [], []
    span = max_history + 1
    for user, (seq, ts) in enumerate(zip(data.sequences, data.timestamps, strict=True)):
        seq_gaps = history_gaps(ts)
        end = len(seq)
        while end >= 2:
            start = max(0, end - span)
            inputs.append(seq[start : end - 1])
            gaps.append(seq_gaps[start : end - 1])
            targets.append(seq[start + 1 : end])
            contexts.append(context_of(ts[start + 1 : end], ts[start : end - 1]))
            users.append(user)
            end = start + 1 if start > 0 else 0  # windows overlap by one item
    ctx = np.zeros((len(contexts), max_history, 3), dtype=np.int64)
    for i, rows in enumerate(contexts):
        ctx[i, max_history - len(rows) :] = rows
    return Windows(
        left_pad(inputs, max_history),
        left_pad(gaps, max_history),
        left_pad(targets, max_history),
        ctx,
        np.asarray(users, dtype=np.int64),
    )


@dataclass
class EpochLog:
    epoch: int
    loss: float
    valid: dict[str, float]
    seconds: float


@dataclass
class TrainResult:
    model: TwoTowerModel
    best_epoch: int
    history: list[EpochLog] = field(default_factory=list)
    seconds: float = 0.0
    finished: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))


Validator = Callable[[TwoTowerModel], dict[str, float]]


class TwoTowerTrainer:
    def __init__(
        self,
        features: ItemFeatures,
        data: SequenceData,
        model_config: TwoTowerConfig | None = None,
        train_config: TrainConfig | None = None,
    ) -> None:
        self.features = features
        self.data = data
        self.model_config = model_config or TwoTowerConfig()
        self.config = train_config or TrainConfig()
        n_items = len(features.item_ids)
        counts = np.zeros(n_items + 1, dtype=np.float64)
        for seq in data.sequences:
            np.add.at(counts, seq, 1.0)
        self.item_freq = torch.from_numpy(counts / max(counts.sum(), 1.0)).float()
        self.n_items = n_items

    def _log_q(self, pool: torch.Tensor, n_queries: int, n_random: int) -> torch.Tensor:
        """log of the expected number of times each pool item is drawn as a negative."""
        expected = n_queries * self.item_freq[pool] + n_random / self.n_items
        return torch.log(expected.clamp_min(1e-12))

    def _hard_table(self, model: TwoTowerModel) -> torch.Tensor:
        """Each item's nearest neighbours in the current item space (slots, self excluded)."""
        with torch.no_grad():
            vectors = model.items.embed_all()
            sims = vectors @ vectors.T
            sims.fill_diagonal_(-math.inf)
            k = min(self.config.hard_neighbours, self.n_items - 1)
            neighbours = sims.topk(k, dim=1).indices + 1
        return torch.cat([torch.zeros(1, k, dtype=torch.long), neighbours], dim=0)

    def _pool(
        self, positives: torch.Tensor, hard_table: torch.Tensor, gen: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Unique pool slots and, for each positive, its column in the pool."""
        cfg = self.config
        random_slots = torch.randint(1, self.n_items + 1, (cfg.random_negatives,), generator=gen)
        base = torch.unique(torch.cat([positives, random_slots]))
        n_hard = round(cfg.hard_negative_share / (1 - cfg.hard_negative_share) * len(base))
        if n_hard > 0 and cfg.hard_negative_share > 0:
            near = hard_table[positives].reshape(-1)
            pick = torch.randint(0, len(near), (n_hard,), generator=gen)
            base = torch.unique(torch.cat([base, near[pick]]))
        columns = torch.searchsorted(base, positives)
        return base, columns

    def fit(
        self,
        validate: Validator,
        metric: str = "recall@10",
        progress: Callable[[int, float, dict[str, float]], None] | None = None,
    ) -> TrainResult:
        cfg = self.config
        torch.manual_seed(cfg.seed)
        rng = np.random.default_rng(cfg.seed)
        gen = torch.Generator().manual_seed(cfg.seed)
        model = TwoTowerModel(self.features, self.model_config)
        optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        windows = make_windows(self.data, self.model_config.max_history)
        demo = torch.from_numpy(self.data.demographics)
        tau = self.model_config.temperature
        started = time.perf_counter()
        logs: list[EpochLog] = []
        best = (-math.inf, 0, copy.deepcopy(model.state_dict()))
        for epoch in range(1, cfg.max_epochs + 1):
            epoch_start = time.perf_counter()
            model.eval()
            hard_table = self._hard_table(model)
            model.train()
            order = rng.permutation(len(windows))
            total, steps = 0.0, 0
            for start in range(0, len(order), cfg.batch_size):
                idx = order[start : start + cfg.batch_size]
                xb = torch.from_numpy(windows.inputs[idx])
                gb = torch.from_numpy(windows.gaps[idx])
                yb = torch.from_numpy(windows.targets[idx])
                cb = torch.from_numpy(windows.context[idx])
                ub = torch.from_numpy(windows.users[idx])
                if cfg.time_dropout > 0:
                    blind = torch.from_numpy(rng.random(len(idx)) < cfg.time_dropout)
                    gb = gb.masked_fill(blind[:, None], 0)
                    cb = cb.clone()
                    cb[..., 2] = cb[..., 2].masked_fill(blind[:, None], 0)
                queries = model.user_vectors(xb, gb, demo[ub], cb, all_positions=True)
                valid = yb != PAD
                q, positives = queries[valid], yb[valid]
                pool, columns = self._pool(positives, hard_table, gen)
                pool_vectors = F.normalize(model.items(pool), dim=-1)
                logits = q @ pool_vectors.T / tau
                logits = logits - self._log_q(pool, len(positives), cfg.random_negatives)
                loss = F.cross_entropy(logits, columns)
                if cfg.content_alignment > 0:
                    # new titles are served from content alone: keep that vector close to
                    # where the full (ID + content) vector of a similar known title sits
                    content = F.normalize(model.items.content_only(pool), dim=-1)
                    align = 1 - (content * pool_vectors.detach()).sum(-1).mean()
                    loss = loss + cfg.content_alignment * align
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
                optimizer.step()
                total += loss.item()
                steps += 1
            model.eval()
            metrics = validate(model)
            logs.append(
                EpochLog(epoch, total / max(steps, 1), metrics, time.perf_counter() - epoch_start)
            )
            if progress:
                progress(epoch, total / max(steps, 1), metrics)
            if metrics[metric] > best[0]:
                best = (metrics[metric], epoch, copy.deepcopy(model.state_dict()))
            elif epoch - best[1] >= cfg.patience:
                break
            if time.perf_counter() - started > cfg.max_seconds:
                break
        model.load_state_dict(best[2])
        model.eval()
        return TrainResult(model, best[1], logs, time.perf_counter() - started)
