"""Two-tower ANN candidates: the user tower's vector searched in the item index."""

from __future__ import annotations

import numpy as np
import torch

from retrieval.ann import AnnIndex
from retrieval.base import Candidate, RequestContext
from retrieval.features import age_bucket
from retrieval.training import context_of, history_gaps, left_pad
from retrieval.two_tower import TwoTowerModel


class TwoTowerSource:
    name = "two_tower"

    def __init__(
        self,
        model: TwoTowerModel,
        item_ids: np.ndarray,
        index: AnnIndex | None = None,
        occupation_vocab: tuple[str, ...] = (),
        max_gap_bucket: int | None = None,
    ) -> None:
        """`item_ids` is the model's vocabulary (raw ids, row i = slot i + 1);
        `max_gap_bucket` caps the request's time-since-last-event bucket at the largest
        gap training saw often (see retrieval.training.gap_cap), so a user back after
        years is read as "a long break", not as an input the model never learnt."""
        self.max_gap_bucket = max_gap_bucket
        self.model = model.eval()
        self.item_ids = np.asarray(item_ids, dtype=np.int64)
        self.slot_of = {int(item): slot + 1 for slot, item in enumerate(self.item_ids)}
        self.occupation_code = {o: j + 1 for j, o in enumerate(occupation_vocab)}
        order = np.argsort(self.item_ids, kind="stable")
        self._sorted_ids, self._sorted_slots = self.item_ids[order], order + 1
        # The item tower's output per slot (row 0 = padding), computed once: requests then
        # look history vectors up instead of re-running the item tower on every history.
        with torch.inference_mode():
            self._item_table = model.items(torch.arange(len(self.item_ids) + 1))
        if index is None:
            with torch.inference_mode():
                vectors = model.items.embed_all().numpy()
            index = AnnIndex.build(vectors, self.item_ids)
        self.index = index

    def _demographics(self, ctx: RequestContext) -> np.ndarray:
        demo = ctx.demographics or {}
        gender = {"M": 1, "F": 2}.get(str(demo.get("gender", "")), 0)
        age = age_bucket(demo.get("age")) if demo.get("age") is not None else 0
        occupation = self.occupation_code.get(str(demo.get("occupation", "")), 0)
        return np.array([[gender, age, occupation]], dtype=np.int64)

    def user_vector(self, ctx: RequestContext) -> np.ndarray:
        """(1, dim) float32; unknown history ids (e.g. items added after training) are skipped."""
        history = np.asarray(ctx.history, dtype=np.int64)
        pos = np.minimum(np.searchsorted(self._sorted_ids, history), len(self._sorted_ids) - 1)
        known = self._sorted_ids[pos] == history
        slots = self._sorted_slots[pos[known]]
        length = self.model.config.max_history
        if ctx.history_times is not None and len(ctx.history_times) == len(history):
            times = np.asarray(ctx.history_times, dtype=np.int64)
            gaps = history_gaps(times)[known]
            last = np.array([times[-1]]) if len(times) else None
        else:
            gaps, last = np.zeros(len(slots), dtype=np.int64), None
        context = context_of(np.array([ctx.timestamp]), last)
        if self.max_gap_bucket is not None:
            context[:, 2] = np.minimum(context[:, 2], self.max_gap_bucket)
        with torch.inference_mode():
            padded = torch.from_numpy(left_pad([slots], length))
            vec = self.model.users(
                padded,
                self._item_table[padded],
                torch.from_numpy(left_pad([gaps], length)),
                torch.from_numpy(self._demographics(ctx)),
                torch.from_numpy(context),
            )
        return vec.numpy()

    def candidates(self, ctx: RequestContext, k: int) -> list[Candidate]:
        seen = np.fromiter(ctx.seen(), dtype=np.int64)
        fetch = min(len(self.index), k + len(seen))
        scores, ids = self.index.search(self.user_vector(ctx), fetch)
        keep = (ids[0] >= 0) & ~np.isin(ids[0], seen)
        return [
            Candidate(item, score, self.name)
            for item, score in zip(
                ids[0][keep][:k].tolist(), scores[0][keep][:k].tolist(), strict=True
            )
        ]
