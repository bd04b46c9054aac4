"""Spend a small, fixed share of the page on items the system knows little about.

Budget: round(budget_share * page_size) slots (half up; 0.08 of 20 = 2), never more
than the page has room for after `first_slot`. Recommended budget_share: 0.05-0.10.

Pool: items with fewer than `max_exposure` impressions in the bandit, taken from
(a) the ranked list below the exploit part of the page (positions >= page_size -
budget), and (b) `new_items` given to the rule (fresh catalog additions no source has
retrieved yet). New items are not in the ranked list, so they never went through the
feed's filters: the rule drops those the user has seen and then runs each through
every rule in `admit` (pass the pipeline's filter rules: ContentPolicy, GenreFilter),
so a kids feed cannot receive an unvetted horror release through exploration.

Choice: Thompson sampling, one Beta-posterior draw per pool item, the top draws win
(ties keep pool order: ranked items by rank, then new items in the given order). The
RNG is seeded from (user id, request timestamp, config seed), so a request replays
identically and tests are deterministic.

Placement, precisely: with k winners and a page of p = min(page_size, available items)
slots, winner j (0-based, best draw first) goes to 0-based position
    first_slot + floor((j + 0.5) * (p - first_slot) / k)
i.e. the centre of the j-th of k equal segments of [first_slot, p). With the defaults
(first_slot 2, page 20, k 2) that is positions 6 and 15 (7th and 16th on screen). The
top `first_slot` positions stay with the ranker's best because they take most of the
clicks, and an exploration miss there costs the most; spreading the rest avoids both
a visibly odd cluster and the near-zero attention at the page bottom. The other items
keep their relative order around the winners; winners get the reason "exploration".
A new item carries the list's lowest score (it was never ranked) and source "new".
"""

from __future__ import annotations

import dataclasses
import hashlib
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from ranking.bandit import BetaBandit
from ranking.base import FeedContext, RankedItem, Rule

EXPLORATION = "exploration"
NEW_SOURCE = "new"


@dataclass(frozen=True)
class ExplorationConfig:
    budget_share: float = 0.08  # share of page slots
    max_exposure: float = 50.0  # impressions below which an item is under-exposed
    first_slot: int = 2  # earliest 0-based page position an exploration item may take
    seed: int = 0  # salt for the per-request RNG

    def __post_init__(self) -> None:
        if not 0.0 <= self.budget_share <= 0.5:
            raise ValueError("budget_share must be in [0, 0.5] (recommended 0.05-0.10)")
        if self.max_exposure <= 0 or self.first_slot < 0:
            raise ValueError("max_exposure must be > 0 and first_slot >= 0")

    def slots(self, page_size: int) -> int:
        return int(self.budget_share * page_size + 0.5)


def request_rng(ctx: FeedContext, seed: int) -> np.random.Generator:
    """Same request -> same draws; different users or times -> independent draws."""
    key = f"{ctx.request.user_id}:{ctx.request.timestamp}:{seed}".encode()
    digest = hashlib.blake2b(key, digest_size=8).digest()
    return np.random.default_rng(int.from_bytes(digest, "little"))


def spread_positions(k: int, page: int, first_slot: int) -> list[int]:
    span = page - first_slot
    if k <= 0 or span <= 0:
        return []
    k = min(k, span)
    return [first_slot + int((j + 0.5) * span / k) for j in range(k)]


class Exploration:
    name = "exploration"

    def __init__(
        self,
        bandit: BetaBandit,
        config: ExplorationConfig | None = None,
        new_items: Iterable[int] = (),
        admit: Sequence[Rule] = (),
    ) -> None:
        self.bandit = bandit
        self.config = config or ExplorationConfig()
        self.admit = tuple(admit)
        self._new_items: tuple[int, ...] = ()
        self._swap = threading.Lock()
        self.set_new_items(new_items)

    def set_new_items(self, item_ids: Iterable[int]) -> None:
        """Replace the new-item list (a nearline refresh); requests in flight keep theirs."""
        items = tuple(dict.fromkeys(int(i) for i in item_ids))
        with self._swap:
            self._new_items = items

    def apply(self, ctx: FeedContext, ranked: list[RankedItem]) -> list[RankedItem]:
        cfg = self.config
        outside = self._admitted_new_items(ctx, ranked)
        room = min(ctx.page_size, len(ranked) + len(outside)) - cfg.first_slot
        budget = min(cfg.slots(ctx.page_size), max(0, room))
        if budget == 0:
            return list(ranked)
        exploit_n = max(0, ctx.page_size - budget)
        pool = ranked[exploit_n:] + outside
        if not pool:
            return list(ranked)
        under = self.bandit.exposures(r.item_id for r in pool) < cfg.max_exposure
        pool = [r for r, u in zip(pool, under.tolist(), strict=True) if u]
        if not pool:
            return list(ranked)
        draws = self.bandit.sample((r.item_id for r in pool), request_rng(ctx, cfg.seed))
        best = np.argsort(-draws, kind="stable")[:budget].tolist()
        winners = [pool[i] for i in best]
        outside_ids = {id(r) for r in outside}
        won_outside = sum(id(w) in outside_ids for w in winners)
        if len(ranked) - (len(winners) - won_outside) < cfg.first_slot:
            return list(ranked)  # too short to keep the top slots for the ranker
        # The page holds what is left of the list plus the winners, up to page_size; both
        # bounds leave room for every winner at or after first_slot.
        page = min(ctx.page_size, len(ranked) + won_outside)
        return _place(ranked, winners, spread_positions(len(winners), page, cfg.first_slot))

    def _admitted_new_items(self, ctx: FeedContext, ranked: list[RankedItem]) -> list[RankedItem]:
        with self._swap:
            new_items = self._new_items
        if not new_items:
            return []
        skip = ctx.request.seen() | {r.item_id for r in ranked}
        floor = min((r.score for r in ranked), default=0.0)
        items = [
            RankedItem(item_id=i, score=floor, sources=(NEW_SOURCE,))
            for i in new_items
            if i not in skip
        ]
        for rule in self.admit:
            if not items:
                break
            items = rule.apply(ctx, items)
        return items


def _place(
    ranked: list[RankedItem], winners: list[RankedItem], positions: list[int]
) -> list[RankedItem]:
    if not positions:
        return list(ranked)
    chosen = {id(w) for w in winners}
    rest = iter([r for r in ranked if id(r) not in chosen])
    at = dict(zip(positions, winners, strict=True))
    out: list[RankedItem] = []
    for pos in range(positions[-1] + 1):
        winner = at.get(pos)
        out.append(_tagged(winner) if winner is not None else next(rest))
    out.extend(rest)
    return out


def _tagged(item: RankedItem) -> RankedItem:
    if EXPLORATION in item.reasons:
        return item
    return dataclasses.replace(item, reasons=[*item.reasons, EXPLORATION])
