"""Popularity within a demographic cohort: the second link of the cold-start chain."""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import scipy.sparse as sp

from retrieval.base import Candidate, RequestContext
from retrieval.features import age_bucket
from retrieval.sources.common import ItemUniverse, top_candidates

if TYPE_CHECKING:  # both pull in faiss/torch, which a popularity-only caller never needs
    pass


DEMOGRAPHIC_FIELDS = ("age", "gender", "occupation")
Demographics = Mapping[str, str | int] | None
CohortKey = tuple[str | int, ...]


def demographic_codes(demographics: Demographics) -> dict[str, str | int]:
    """The usable demographic fields: age as its `age_bucket`, gender "M"/"F", occupation.

    Unusable values (absent, None, NaN, an unknown gender, a blank occupation) are
    dropped instead of coded as "unknown", so people who withheld a field are not
    pooled into a cohort of their own; they are served by the coarser level above.
    """
    out: dict[str, str | int] = {}
    if not demographics:
        return out
    age = demographics.get("age")
    if age is not None and not pd.isna(age):
        with contextlib.suppress(TypeError, ValueError):  # an unparsable age is withheld
            out["age"] = age_bucket(int(age))
    gender = str(demographics.get("gender") or "").strip().upper()
    if gender in ("M", "F"):
        out["gender"] = gender
    occupation = demographics.get("occupation")
    if occupation is not None and not pd.isna(occupation) and str(occupation).strip():
        out["occupation"] = str(occupation).strip().lower()
    return out


@dataclass(frozen=True)
class CohortConfig:
    """`levels` orders the fields coarse to fine: a cohort is shrunk toward the cohort
    of its known fields minus the last one, down to global popularity.

    Defaults: best cross-validated NDCG@10 of `evaluation.cold_start_eval` on ml-100k
    over 15 level orders x 8 strengths. Occupation is left out: its best setting
    (age > gender > occupation, m = 100) tied age > gender within noise, and without
    shrinkage the 3-field cohorts (~3 users on average) fell far below popularity.
    """

    levels: tuple[str, ...] = ("age", "gender")
    prior_strength: float = 30.0  # m, in pseudo-users of the parent cohort

    def __post_init__(self) -> None:
        if len(set(self.levels)) != len(self.levels) or set(self.levels) - set(DEMOGRAPHIC_FIELDS):
            raise ValueError(f"levels must be distinct fields of {DEMOGRAPHIC_FIELDS}")
        if self.prior_strength < 0:
            raise ValueError("prior_strength must be >= 0")


@dataclass(frozen=True)
class _CohortTable:
    """Distinct-user counts per item for every cohort over one set of fields."""

    rows: dict[CohortKey, int]
    counts: np.ndarray  # (cohorts, items)
    sizes: np.ndarray  # (cohorts,) users in each cohort


def _cohort_table(
    fields: tuple[str, ...], codes: Sequence[dict[str, str | int]], consumed: sp.csr_matrix
) -> _CohortTable:
    rows: dict[CohortKey, int] = {}
    members: list[int] = []
    groups: list[int] = []
    for user, code in enumerate(codes):
        if all(f in code for f in fields):
            members.append(user)
            groups.append(rows.setdefault(tuple(code[f] for f in fields), len(rows)))
    group_of = np.asarray(groups, dtype=np.int64)
    assign = sp.csr_matrix(
        (np.ones(group_of.size), (group_of, np.asarray(members, dtype=np.int64))),
        shape=(len(rows), consumed.shape[0]),
    )
    counts = np.asarray((assign @ consumed).todense(), dtype=np.float64)
    sizes = np.bincount(group_of, minlength=len(rows)).astype(np.float64)
    return _CohortTable(rows, counts, sizes)


class DemographicCohortSource:
    """Popularity within the user's demographic cohort, shrunk toward coarser cohorts.

    p(i | cohort) is the share of the cohort's users who consumed i. Small cohorts
    (ml-100k has 7 age buckets x 2 genders x 21 occupations for 943 users) make that
    share noisy, so each level is a Beta-binomial posterior mean whose prior is the
    parent level, with `prior_strength` m pseudo-users:

        p_level(i) = (n_cohort(i) + m * p_parent(i)) / (n_cohort + m)

    down from p_global(i) = n(i) / n_users. A cohort of 3 users moves the estimate
    little and one of 300 dominates it; an unseen cohort (n = 0) simply inherits its
    parent. Missing fields are skipped, so the chain is built from the known fields
    in `levels` order and a request without demographics gets global popularity.
    Counts for every subset of fields are tabulated at fit time, which is what lets
    any field be missing at request time.
    """

    name = "cohort"

    def __init__(
        self,
        universe: ItemUniverse,
        tables: dict[tuple[str, ...], _CohortTable],
        config: CohortConfig | None = None,
    ) -> None:
        self.universe = universe
        self.config = config or CohortConfig()
        self._tables = tables

    @classmethod
    def fit(
        cls,
        events: pd.DataFrame,
        users: pd.DataFrame,
        item_ids: np.ndarray,
        config: CohortConfig | None = None,
    ) -> DemographicCohortSource:
        """`users` has user_id plus any of age, gender, occupation (others are ignored)."""
        universe = ItemUniverse(item_ids)
        items = universe.index(events["item_id"].to_numpy())
        keep = items >= 0
        raw_users, user_codes = np.unique(events["user_id"].to_numpy()[keep], return_inverse=True)
        consumed = sp.csr_matrix(
            (np.ones(int(keep.sum())), (user_codes, items[keep])),
            shape=(raw_users.size, len(universe)),
        )
        consumed.sum_duplicates()
        consumed.data[:] = 1.0  # distinct users: a re-rating does not make a film popular
        table = users.drop_duplicates("user_id").set_index("user_id")
        table = table.reindex(raw_users)[[f for f in DEMOGRAPHIC_FIELDS if f in table.columns]]
        codes = [demographic_codes(row) for row in table.to_dict("records")]
        tables = {
            fields: _cohort_table(fields, codes, consumed)
            for size in range(len(DEMOGRAPHIC_FIELDS) + 1)
            for fields in itertools.combinations(DEMOGRAPHIC_FIELDS, size)
        }
        return cls(universe, tables, config)

    def reconfigured(self, config: CohortConfig) -> DemographicCohortSource:
        """The same fitted counts under another level order or prior strength (for tuning)."""
        return DemographicCohortSource(self.universe, self._tables, config)

    def cohort(self, demographics: Demographics) -> dict[str, str | int]:
        """The fields this source conditions on for these demographics (for explanations)."""
        codes = demographic_codes(demographics)
        return {f: codes[f] for f in self.config.levels if f in codes}

    def scores(self, demographics: Demographics) -> np.ndarray:
        """Smoothed share of the cohort consuming each universe item (a fresh array)."""
        known = list(self.cohort(demographics))
        codes = demographic_codes(demographics)
        top = self._tables[()]
        n_users = float(top.sizes[0]) if top.sizes.size else 0.0
        if n_users == 0:
            return np.zeros(len(self.universe))
        p = top.counts[0] / n_users
        m = self.config.prior_strength
        for depth in range(1, len(known) + 1):
            fields = tuple(f for f in DEMOGRAPHIC_FIELDS if f in known[:depth])
            table = self._tables[fields]
            row = table.rows.get(tuple(codes[f] for f in fields))
            if row is None or table.sizes[row] + m == 0:
                continue  # nobody of this cohort was seen: the parent's estimate stands
            p = (table.counts[row] + m * p) / (table.sizes[row] + m)
        return p

    def candidates(self, ctx: RequestContext, k: int) -> list[Candidate]:
        scores = self.scores(ctx.demographics)
        return top_candidates(scores, k, self.universe.seen(ctx), self.universe, self.name)
