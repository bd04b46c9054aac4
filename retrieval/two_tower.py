"""Two-tower retrieval model.

Item tower: ID embedding + genres + release era + the text embedding. The ID part
is dropped at random during training, so the content path alone must place an
item well; a brand-new item (no ID embedding yet) still gets a useful vector.

User tower: a small causal transformer over the item-tower vectors of the user's
recent history (with learned recency positions), plus demographics and request
context (hour, weekday). Every position predicts the next item, so one pass over
a sequence yields as many training examples as it has items.

Scores are dot products of L2-normalized vectors divided by a temperature.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from retrieval.features import N_YEAR_BUCKETS, ItemFeatures

N_GAPS = 26  # gap buckets, see retrieval.training.gap_buckets

PAD = 0  # item slot 0 is padding / unknown; vocabulary item i lives at slot i + 1


@dataclass(frozen=True)
class TwoTowerConfig:
    dim: int = 64
    max_history: int = 100
    layers: int = 2
    heads: int = 2
    dropout: float = 0.2
    id_dropout: float = 0.2
    temperature: float = 0.07
    n_genders: int = 3
    n_ages: int = 8
    n_occupations: int = 32

    def to_dict(self) -> dict:
        return asdict(self)


class ItemTower(nn.Module):
    def __init__(self, features: ItemFeatures, config: TwoTowerConfig) -> None:
        super().__init__()
        n, text_dim = features.text.shape
        dim = config.dim
        self.config = config
        self.id_embedding = nn.Embedding(n + 1, dim, padding_idx=PAD)
        nn.init.normal_(self.id_embedding.weight, std=0.02)
        self.genre_proj = nn.Linear(features.genres.shape[1], dim, bias=False)
        self.year_embedding = nn.Embedding(N_YEAR_BUCKETS, dim)
        # small init: an era never seen in training (next year's releases) must add ~nothing
        nn.init.normal_(self.year_embedding.weight, std=0.02)
        self.text_proj = nn.Linear(text_dim, dim)
        self.content_mlp = nn.Sequential(nn.GELU(), nn.Linear(dim, dim))
        # features of the vocabulary, slot 0 = padding
        self.register_buffer("genres", _pad_rows(torch.from_numpy(features.genres)))
        self.register_buffer("years", _pad_rows(torch.from_numpy(features.year_buckets)))
        self.register_buffer("text", _pad_rows(torch.from_numpy(features.text)))

    def content(
        self, genres: torch.Tensor, years: torch.Tensor, text: torch.Tensor
    ) -> torch.Tensor:
        hidden = self.genre_proj(genres) + self.year_embedding(years) + self.text_proj(text)
        return hidden + self.content_mlp(hidden)

    def content_only(self, slots: torch.Tensor) -> torch.Tensor:
        """The vector an item would get with no ID embedding, i.e. as a brand-new title."""
        return self.content(self.genres[slots], self.years[slots], self.text[slots])

    def forward(self, slots: torch.Tensor) -> torch.Tensor:
        """Unnormalized vectors for vocabulary slots (any shape of int64)."""
        content = self.content_only(slots)
        ids = self.id_embedding(slots)
        if self.training and self.config.id_dropout > 0:
            keep = torch.rand(slots.shape, device=slots.device) >= self.config.id_dropout
            ids = ids * keep.unsqueeze(-1)
        return content + ids

    def embed_all(self) -> torch.Tensor:
        """Normalized vectors of every vocabulary item, row i = item i (no padding row)."""
        slots = torch.arange(1, self.genres.shape[0], device=self.genres.device)
        return F.normalize(self(slots), dim=-1)

    def embed_new(
        self, genres: np.ndarray, year_buckets: np.ndarray, text: np.ndarray
    ) -> torch.Tensor:
        """Normalized vectors for items outside the vocabulary, from content alone."""
        vec = self.content(
            torch.as_tensor(genres, dtype=torch.float32),
            torch.as_tensor(year_buckets, dtype=torch.long),
            torch.as_tensor(text, dtype=torch.float32),
        )
        return F.normalize(vec, dim=-1)


class UserTower(nn.Module):
    def __init__(self, config: TwoTowerConfig) -> None:
        super().__init__()
        dim = config.dim
        self.config = config
        self.position = nn.Embedding(config.max_history, dim)
        self.gap = nn.Embedding(N_GAPS, dim)  # time since the previous event, per item
        for emb in (self.position, self.gap):  # small, like the item vectors they join
            nn.init.normal_(emb.weight, std=0.02)
        layer = nn.TransformerEncoderLayer(
            d_model=dim,
            nhead=config.heads,
            dim_feedforward=dim * 2,
            dropout=config.dropout,
            batch_first=True,
            norm_first=True,
            activation="gelu",
        )
        self.encoder = nn.TransformerEncoder(layer, config.layers, enable_nested_tensor=False)
        self.gender = nn.Embedding(config.n_genders, dim)
        self.age = nn.Embedding(config.n_ages, dim)
        self.occupation = nn.Embedding(config.n_occupations, dim)
        self.hour = nn.Embedding(24, dim)
        self.weekday = nn.Embedding(7, dim)
        self.since_last = nn.Embedding(N_GAPS, dim)  # time from the latest event to the request
        for emb in (
            self.gender,
            self.age,
            self.occupation,
            self.hour,
            self.weekday,
            self.since_last,
        ):
            nn.init.zeros_(emb.weight)
        self.norm = nn.LayerNorm(dim)
        self.out = nn.Linear(dim, dim)
        self.dropout = nn.Dropout(config.dropout)

    def forward(
        self,
        history: torch.Tensor,  # (b, L) vocabulary slots, left-padded with PAD
        history_vectors: torch.Tensor,  # (b, L, d) their item-tower vectors
        gaps: torch.Tensor,  # (b, L) gap bucket before each history item
        demographics: torch.Tensor,  # (b, 3): gender, age, occupation codes
        context: torch.Tensor,  # (b, 3) or per position (b, L, 3): hour, weekday, since-last
        all_positions: bool = False,
    ) -> torch.Tensor:
        """User vectors (b, d), or (b, L, d) after every position when `all_positions`.

        Histories are left-padded, so the most recent item is always the last slot
        and position embeddings count back from "now" (recency).
        """
        length = history.shape[1]
        pos = torch.arange(length, device=history.device)
        x = history_vectors + self.gap(gaps) + self.position(pos + self.config.max_history - length)
        x = self.dropout(x)
        h = self.encoder(x, mask=self._attention_mask(history == PAD))
        profile = (
            self.gender(demographics[:, 0])
            + self.age(demographics[:, 1])
            + self.occupation(demographics[:, 2])
        )
        moment = (
            self.hour(context[..., 0])
            + self.weekday(context[..., 1])
            + self.since_last(context[..., 2])
        )
        if all_positions:
            h = h + profile[:, None, :] + (moment if moment.dim() == 3 else moment[:, None, :])
        else:
            h = h[:, -1] + profile + (moment[:, -1] if moment.dim() == 3 else moment)
        return F.normalize(self.out(self.norm(h)), dim=-1)

    def _attention_mask(self, pad: torch.Tensor) -> torch.Tensor:
        """(b * heads, L, L) True = blocked: the future, and padding other than oneself.

        Every position may attend to itself, so no row is fully blocked: a fully
        blocked row yields NaN, which would leak into real positions through 0 * NaN.
        """
        length = pad.shape[1]
        ones = torch.ones(length, length, dtype=torch.bool, device=pad.device)
        causal = torch.triu(ones, 1)
        not_self = ~torch.eye(length, dtype=torch.bool, device=pad.device)
        mask = causal[None] | (pad[:, None, :] & not_self[None])
        return mask.repeat_interleave(self.config.heads, dim=0)


def _pad_rows(t: torch.Tensor) -> torch.Tensor:
    return torch.cat([torch.zeros_like(t[:1]), t], dim=0)


class TwoTowerModel(nn.Module):
    def __init__(self, features: ItemFeatures, config: TwoTowerConfig) -> None:
        super().__init__()
        self.config = config
        self.items = ItemTower(features, config)
        self.users = UserTower(config)

    def user_vectors(
        self,
        history: torch.Tensor,
        gaps: torch.Tensor,
        demographics: torch.Tensor,
        context: torch.Tensor,
        all_positions: bool = False,
    ) -> torch.Tensor:
        vectors = self.items(history)
        return self.users(history, vectors, gaps, demographics, context, all_positions)
