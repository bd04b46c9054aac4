"""The new-user slice: how well each cold-start fallback serves users nobody has seen.

Protocol (ml-100k, the MovieLens set with demographics):

- A seeded random `test_share` of users is held out entirely; none of their events
  reach any fit. Every method is fitted on the remaining users' events and ranks
  the whole catalog for each held-out user at sign-up, with no history.
- "all events" targets: every film the user rated. Popularity and the demographic
  cohort are scored here, since neither needs anything from the user but who they are.
- "after picks" targets: the user's first `picks` liked films (rating >= 4, in
  (timestamp, item id) order) play the onboarding title picks; they are excluded
  from ranking and from the targets, and every other rated film is a target. Every
  other film rather than only later ones, because the system knows nothing but the
  picks: a film rated before the third pick is as unknown to it as one rated after.
  All four methods are scored here, so their rows compare on the same targets.
  Users with fewer than `picks` liked films (one in ml-100k) are skipped in both
  protocols, so every row covers the same people.
- Hyperparameters (the cohort level order and prior strength, the onboarding
  weight) are chosen by `folds`-fold cross-validation over the non-held-out users
  only, on NDCG@10: each fold's users play the new users and every method is fitted
  on the other folds' events. The winners are refitted on all non-held-out users
  and applied once to the test slice. Cross-validation rather than one small
  validation subset because a few hundred users leave a single split's ranking of
  nearby settings to chance.

`python -m evaluation.cold_start_eval` prints the table.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import scipy.sparse as sp

from catalog.metrics import list_metrics, top_k
from catalog.tables import Catalog
from ranking.cold_start import (
    DEMOGRAPHIC_FIELDS,
    CohortConfig,
    ColdStage,
    ColdStartConfig,
    ColdStartPolicy,
    DemographicCohortSource,
    OnboardingPicks,
    OnboardingSource,
    mix,
)
from retrieval.base import RequestContext
from retrieval.sources.common import ItemUniverse
from retrieval.sources.popularity import PopularitySource

KS = (10, 20)
COLUMNS = ("recall@10", "recall@20", "ndcg@10", "hr@10")
ALL_EVENTS, AFTER_PICKS = "all events", "after picks"


def _level_orders() -> tuple[tuple[str, ...], ...]:
    """Every ordered, non-empty choice of demographic fields (15 for three fields)."""
    return tuple(
        order
        for size in range(1, len(DEMOGRAPHIC_FIELDS) + 1)
        for order in itertools.permutations(DEMOGRAPHIC_FIELDS, size)
    )


@dataclass(frozen=True)
class NewUserSliceConfig:
    test_share: float = 0.2
    folds: int = 5
    picks: int = 3
    seed: int = 0
    prior_strengths: tuple[float, ...] = (0.0, 1.0, 3.0, 10.0, 30.0, 100.0, 300.0, 1000.0)
    level_orders: tuple[tuple[str, ...], ...] = field(default_factory=_level_orders)
    onboarding_weights: tuple[float, ...] = tuple(i / 10 for i in range(11))
    bootstrap: int = 2000


@dataclass(frozen=True)
class NewUser:
    user_id: int
    demographics: dict[str, str | int] | None
    items: np.ndarray  # every rated raw item id, chronological
    picks: tuple[int, ...]  # the first liked items, the onboarding title picks
    signup: int  # first event time: when the page is requested

    def context(self, demographics: bool, exclude_picks: bool) -> RequestContext:
        """The sign-up request: no history; picks excluded when they are known watched."""
        return RequestContext(
            user_id=self.user_id,
            history=np.empty(0, dtype=np.int64),
            timestamp=self.signup,
            demographics=self.demographics if demographics else None,
            exclude=frozenset(self.picks) if exclude_picks else frozenset(),
        )


def new_users(
    events: pd.DataFrame, users: pd.DataFrame, user_ids: Iterable[int], n_picks: int
) -> list[NewUser]:
    """One `NewUser` per id that has more than `n_picks` events and at least `n_picks` likes."""
    demo = users.set_index("user_id")
    wanted = set(int(u) for u in user_ids)
    ordered = events[events["user_id"].isin(wanted)].sort_values(
        ["user_id", "timestamp", "item_id"]
    )
    out = []
    for user, rows in ordered.groupby("user_id", sort=True):
        liked = rows.loc[rows["liked"], "item_id"].to_numpy()[:n_picks]
        if liked.size < n_picks or len(rows) <= n_picks:
            continue
        demographics = None
        if int(user) in demo.index and {"age", "gender", "occupation"} <= set(demo.columns):
            row = demo.loc[int(user)]
            demographics = {
                "age": int(row["age"]),
                "gender": str(row["gender"]),
                "occupation": str(row["occupation"]),
            }
        out.append(
            NewUser(
                user_id=int(user),
                demographics=demographics,
                items=rows["item_id"].to_numpy(),
                picks=tuple(int(i) for i in liked),
                signup=int(rows["timestamp"].iloc[0]),
            )
        )
    return out


def relevance(
    people: Sequence[NewUser], universe: ItemUniverse, after_picks: bool
) -> sp.csr_matrix:
    """Users x universe targets: all their items, or all but the picks."""
    rows, cols = [], []
    for r, person in enumerate(people):
        items = person.items[~np.isin(person.items, person.picks)] if after_picks else person.items
        idx = universe.known(items)
        rows.append(np.full(idx.size, r))
        cols.append(idx)
    row, col = np.concatenate(rows), np.concatenate(cols)
    mat = sp.csr_matrix((np.ones(row.size), (row, col)), shape=(len(people), len(universe)))
    mat.sum_duplicates()
    return mat


def _ranked(
    scores: np.ndarray, people: Sequence[NewUser], universe: ItemUniverse, picks: bool
) -> np.ndarray:
    """Top-max(KS) universe indices per row of dense scores; picks excluded when `picks`."""
    scores = np.array(scores, dtype=np.float64)
    if picks:
        for r, person in enumerate(people):
            scores[r, universe.known(np.asarray(person.picks))] = -np.inf
    return top_k(scores, max(KS))


@dataclass(frozen=True)
class _Fold:
    """One cross-validation fold: its users play new users, the rest are fitted."""

    held: list[NewUser]
    events: pd.DataFrame
    cohort: DemographicCohortSource


def _folds(
    catalog: Catalog, events: pd.DataFrame, people: Sequence[NewUser], config: NewUserSliceConfig
) -> list[_Fold]:
    """`events` are the non-held-out users' only: the test slice never reaches a CV fit."""
    item_ids = catalog.items["item_id"].to_numpy()
    fold_of = np.random.default_rng(config.seed + 1).permutation(len(people)) % config.folds
    out = []
    for fold in range(config.folds):
        held = [p for p, f in zip(people, fold_of, strict=True) if f == fold]
        fit_events = events[~events["user_id"].isin({p.user_id for p in held})]
        cohort = DemographicCohortSource.fit(fit_events, catalog.users, item_ids)
        out.append(_Fold(held, fit_events, cohort))
    return out


def _cohort_grid(folds: Sequence[_Fold], grid: Sequence[CohortConfig]) -> np.ndarray:
    """User-weighted mean validation NDCG@10 (all-events targets) of each cohort config."""
    sums = np.zeros(len(grid))
    for fold in folds:
        rel = relevance(fold.held, fold.cohort.universe, after_picks=False)
        for g, cfg in enumerate(grid):
            source = fold.cohort.reconfigured(cfg)
            scores = np.stack([source.scores(p.demographics) for p in fold.held])
            top = _ranked(scores, fold.held, fold.cohort.universe, picks=False)
            sums[g] += list_metrics(top, rel, KS)["ndcg@10"] * len(fold.held)
    return sums / sum(len(f.held) for f in folds)


def _policy(
    catalog: Catalog,
    events: pd.DataFrame,
    cohort: DemographicCohortSource,
    weight: float,
) -> ColdStartPolicy:
    item_ids = catalog.items["item_id"].to_numpy()
    return ColdStartPolicy(
        PopularitySource.fit(events, item_ids),
        cohort,
        OnboardingSource.fit(events, catalog.items, item_ids),
        config=ColdStartConfig(onboarding_weight=weight),
    )


def _blend_grid(
    catalog: Catalog, folds: Sequence[_Fold], cohort: CohortConfig, weights: Sequence[float]
) -> dict[bool, np.ndarray]:
    """CV NDCG@10 (after-picks targets) per onboarding weight, keyed by demographics known.

    Onboarding and prior scores are computed once per user and mixed with the policy's
    own `mix` at every weight, so the grid costs one co-visitation pass per user.
    """
    sums = {True: np.zeros(len(weights)), False: np.zeros(len(weights))}
    for fold in folds:
        policy = _policy(catalog, fold.events, fold.cohort.reconfigured(cohort), 0.0)
        onboarding, universe = policy.onboarding, fold.cohort.universe
        assert onboarding is not None
        rel = relevance(fold.held, universe, after_picks=True)
        for demographic in sums:
            requests = [
                (p.context(demographic, exclude_picks=True), OnboardingPicks(p.picks))
                for p in fold.held
            ]
            parts = [(onboarding.scores(c, pk), policy.prior_scores(c, pk)) for c, pk in requests]
            for j, w in enumerate(weights):
                scores = np.stack([mix([(w, o), (1 - w, q)], len(universe)) for o, q in parts])
                top = _ranked(scores, fold.held, universe, picks=True)
                sums[demographic][j] += list_metrics(top, rel, KS)["ndcg@10"] * len(fold.held)
    total = sum(len(f.held) for f in folds)
    return {known: v / total for known, v in sums.items()}


# (method, targets, demographics known, onboarding picks given, the stage the policy must pick)
VARIANTS = (
    ("popularity", ALL_EVENTS, False, False, ColdStage.POPULARITY),
    ("demographic cohort", ALL_EVENTS, True, False, ColdStage.COHORT),
    ("popularity", AFTER_PICKS, False, False, ColdStage.POPULARITY),
    ("demographic cohort", AFTER_PICKS, True, False, ColdStage.COHORT),
    ("onboarding (3 picks)", AFTER_PICKS, False, True, ColdStage.ONBOARDING),
    ("onboarding + cohort", AFTER_PICKS, True, True, ColdStage.ONBOARDING_COHORT),
)


def _policy_top(
    policy: ColdStartPolicy,
    people: Sequence[NewUser],
    targets: str,
    demographic: bool,
    with_picks: bool,
    stage: ColdStage,
) -> np.ndarray:
    """Each person's page from `policy.candidates`, as universe indices (the served path)."""
    k = max(KS)
    rows = []
    for person in people:
        ctx = person.context(demographic, exclude_picks=targets == AFTER_PICKS)
        picks = OnboardingPicks(person.picks) if with_picks else None
        if policy.stage(ctx, picks) is not stage:
            raise RuntimeError(f"user {person.user_id}: the policy did not pick stage {stage}")
        page = [c.item_id for c in policy.candidates(ctx, k, picks)]
        if len(page) < k:
            raise RuntimeError(f"user {person.user_id}: only {len(page)} candidates")
        rows.append(policy.cohort.universe.index(np.asarray(page)))
    return np.stack(rows)


@dataclass(frozen=True)
class SliceRow:
    method: str
    targets: str
    users: int
    metrics: dict[str, float]


@dataclass(frozen=True)
class NewUserSliceReport:
    rows: tuple[SliceRow, ...]
    cohort_config: CohortConfig
    onboarding_weight: float
    cv_ndcg: dict[str, float]  # CV NDCG@10 of each method at the chosen settings
    onboarding_curve: dict[float, float]  # CV NDCG@10 of onboarding + cohort per weight
    cohort_gain: tuple[float, float, float]  # test NDCG@10 cohort - popularity: mean, 95% CI
    n_fit_users: int
    n_skipped: int  # held-out users with fewer than `picks` liked films
    config: NewUserSliceConfig

    def metric(self, method: str, targets: str, name: str) -> float:
        for row in self.rows:
            if row.method == method and row.targets == targets:
                return row.metrics[name]
        raise KeyError((method, targets))

    def markdown(self) -> str:
        cfg = self.config
        head = "| method | targets | users | Recall@10 | Recall@20 | NDCG@10 | HR@10 |"
        lines = [head, "|---|---|---|---|---|---|---|"]
        for row in self.rows:
            values = " | ".join(f"{row.metrics[c]:.4f}" for c in COLUMNS)
            lines.append(f"| {row.method} | {row.targets} | {row.users} | {values} |")
        mean, lo, hi = self.cohort_gain
        order = " > ".join(self.cohort_config.levels) or "none"
        cv = ", ".join(f"{k} {v:.4f}" for k, v in self.cv_ndcg.items())
        curve = ", ".join(f"{w:g}: {v:.4f}" for w, v in self.onboarding_curve.items())
        lines += [
            "",
            f"New-user slice: {self.rows[0].users} users held out at random ({cfg.test_share:.0%}"
            f", seed {cfg.seed}; {self.n_skipped} more held out but skipped for having fewer "
            f"than {cfg.picks} liked films); every method fitted on the other {self.n_fit_users}"
            f" users' events. Onboarding picks: each user's first {cfg.picks} liked films "
            "(rating >= 4); 'after picks' excludes them from ranking and targets.",
            "",
            f"Demographic cohort minus popularity, NDCG@10 on all events: {mean:+.4f} "
            f"(95% paired bootstrap CI {lo:+.4f} .. {hi:+.4f}).",
            "",
            f"Hyperparameters chosen by {cfg.folds}-fold cross-validation over the non-held-out "
            f"users on NDCG@10, never on the test slice: cohort levels {order}, prior strength "
            f"m = {self.cohort_config.prior_strength:g}; onboarding weight "
            f"{self.onboarding_weight:g}. CV NDCG@10: {cv}. Onboarding + cohort by weight: "
            f"{curve}.",
        ]
        return "\n".join(lines)


def _per_user_ndcg(top: np.ndarray, rel: sp.csr_matrix) -> np.ndarray:
    """Each row's NDCG@10 (list_metrics on one row is that user's value)."""
    return np.array(
        [list_metrics(top[i : i + 1], rel[i : i + 1], (10,))["ndcg@10"] for i in range(len(top))]
    )


def _paired_gain(
    better: np.ndarray, base: np.ndarray, rel: sp.csr_matrix, draws: int, seed: int
) -> tuple[float, float, float]:
    """Mean per-user NDCG@10 difference and its 95% paired bootstrap interval."""
    diff = _per_user_ndcg(better, rel) - _per_user_ndcg(base, rel)
    rng = np.random.default_rng(seed)
    means = diff[rng.integers(0, diff.size, size=(draws, diff.size))].mean(axis=1)
    lo, hi = np.quantile(means, [0.025, 0.975])
    return float(diff.mean()), float(lo), float(hi)


def evaluate_new_users(
    catalog: Catalog, config: NewUserSliceConfig | None = None
) -> NewUserSliceReport:
    """Tune by CV over the fitted users, then score every variant once on the held-out slice."""
    config = config or NewUserSliceConfig()
    item_ids = catalog.items["item_id"].to_numpy()
    all_ids = np.unique(catalog.events["user_id"].to_numpy())
    n_test = round(config.test_share * all_ids.size)
    test_ids = set(np.random.default_rng(config.seed).choice(all_ids, n_test, replace=False))
    fitted = new_users(
        catalog.events, catalog.users, [u for u in all_ids if u not in test_ids], config.picks
    )
    test = new_users(catalog.events, catalog.users, test_ids, config.picks)
    fit_events = catalog.events[~catalog.events["user_id"].isin(test_ids)]

    folds = _folds(catalog, fit_events, fitted, config)
    grid = [CohortConfig(o, m) for o in config.level_orders for m in config.prior_strengths]
    cohort_cv = _cohort_grid(folds, [CohortConfig(()), *grid])
    best_cohort = grid[int(np.argmax(cohort_cv[1:]))]
    blend = _blend_grid(catalog, folds, best_cohort, config.onboarding_weights)
    best = int(np.argmax(blend[True]))
    weight = float(config.onboarding_weights[best])
    cv_ndcg = {
        "popularity": float(cohort_cv[0]),
        "cohort": float(cohort_cv[1:].max()),
        "onboarding": float(blend[False][best]),
        "onboarding + cohort": float(blend[True][best]),
    }

    cohort = DemographicCohortSource.fit(fit_events, catalog.users, item_ids, best_cohort)
    policy = _policy(catalog, fit_events, cohort, weight)
    rows, tops = [], {}
    for method, targets, demographic, with_picks, stage in VARIANTS:
        top = _policy_top(policy, test, targets, demographic, with_picks, stage)
        rel = relevance(test, cohort.universe, after_picks=targets == AFTER_PICKS)
        tops[method, targets] = top
        rows.append(SliceRow(method, targets, len(test), list_metrics(top, rel, KS)))
    gain = _paired_gain(
        tops["demographic cohort", ALL_EVENTS],
        tops["popularity", ALL_EVENTS],
        relevance(test, cohort.universe, after_picks=False),
        config.bootstrap,
        config.seed,
    )
    return NewUserSliceReport(
        rows=tuple(rows),
        cohort_config=best_cohort,
        onboarding_weight=weight,
        cv_ndcg=cv_ndcg,
        onboarding_curve={
            float(w): float(v) for w, v in zip(config.onboarding_weights, blend[True], strict=True)
        },
        cohort_gain=gain,
        n_fit_users=int(all_ids.size - n_test),
        n_skipped=n_test - len(test),
        config=config,
    )


def main() -> None:
    from catalog.tables import load_catalog

    print(evaluate_new_users(load_catalog("ml-100k")).markdown())


if __name__ == "__main__":
    main()
