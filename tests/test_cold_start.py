"""Cold-start sources and the fallback chain on a hand-built log; the ml-100k new-user slice."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from ranking.base import FeedContext, RankedItem
from ranking.cold_start import (
    CohortConfig,
    ColdStage,
    ColdStartConfig,
    ColdStartPolicy,
    DemographicCohortSource,
    OnboardingConfig,
    OnboardingPicks,
    OnboardingSource,
)
from retrieval.base import Candidate, RequestContext
from retrieval.sources import PopularitySource

NOW = 1_600_000_000
YOUNG_MAN = {"age": 20, "gender": "M", "occupation": "student"}
OLD_WOMAN = {"age": 60, "gender": "F", "occupation": "retired"}
LAWYER = {"age": 40, "gender": "M", "occupation": "lawyer"}

ITEMS = pd.DataFrame(
    {
        "item_id": np.arange(10, 20),
        "genres": [
            ["Action"],
            ["Action"],
            ["Drama"],
            ["Drama"],
            ["Comedy"],
            ["Action", "Comedy"],
            ["Comedy"],
            ["Drama", "Romance"],
            ["Romance"],
            ["Horror"],
        ],
    }
)
ITEM_IDS = ITEMS["item_id"].to_numpy()


def _world() -> tuple[pd.DataFrame, pd.DataFrame]:
    """Young men watch action, older women drama, everyone comedy 16; nobody watched 19.

    Global top item: 16 (10 users). Young men's top: 10 and 11 (all 6 of them).
    Older women's top: 12 (all 6). One lawyer (user 17) watched only romance 18.
    """
    watched: dict[int, list[int]] = {}
    for u in range(1, 7):
        watched[u] = [10, 11] + ([15] if u <= 4 else []) + ([16] if u <= 3 else [])
    for u in range(7, 13):
        watched[u] = [12] + ([13] if u <= 11 else []) + ([17] if u <= 10 else [])
        watched[u] += [16] if u <= 9 else []
    for u in range(13, 17):  # users who never gave demographics
        watched[u] = [16, 14]
    watched[17] = [18]
    events = pd.DataFrame(
        [(u, i, NOW + 60 * pos) for u, items in watched.items() for pos, i in enumerate(items)],
        columns=["user_id", "item_id", "timestamp"],
    )
    users = pd.DataFrame(
        [{"user_id": u, **YOUNG_MAN} for u in range(1, 7)]
        + [{"user_id": u, **OLD_WOMAN} for u in range(7, 13)]
        + [{"user_id": 17, **LAWYER}]
    )
    return events, users


@pytest.fixture(scope="module")
def world() -> tuple[pd.DataFrame, pd.DataFrame]:
    return _world()


@pytest.fixture(scope="module")
def policy(world) -> ColdStartPolicy:
    events, users = world
    return ColdStartPolicy.fit(
        events,
        users,
        ITEMS,
        ITEM_IDS,
        config=ColdStartConfig(full_pipeline_after=3),
        cohort_config=CohortConfig(("age", "gender", "occupation"), prior_strength=1.0),
    )


def _ctx(
    history: list[int] | None = None,
    demographics: dict | None = None,
    exclude: set[int] | None = None,
) -> RequestContext:
    return RequestContext(
        user_id=None,
        history=np.asarray(history or [], dtype=np.int64),
        timestamp=NOW + 86_400,
        demographics=demographics,
        exclude=frozenset(exclude or ()),
    )


def _ids(candidates: list[Candidate]) -> list[int]:
    return [c.item_id for c in candidates]


def _cohort(world, levels: tuple[str, ...], m: float) -> DemographicCohortSource:
    events, users = world
    return DemographicCohortSource.fit(events, users, ITEM_IDS, CohortConfig(levels, m))


def test_cohort_popularity_differs_by_cohort(world) -> None:
    source = _cohort(world, ("age", "gender", "occupation"), 1.0)
    young = _ids(source.candidates(_ctx(demographics=YOUNG_MAN), 3))
    old = _ids(source.candidates(_ctx(demographics=OLD_WOMAN), 3))
    assert young[:2] == [10, 11]
    assert old[0] == 12 and set(old[1:]) == {13, 17}
    everyone = _ids(source.candidates(_ctx(), 1))
    assert everyone == [16]  # neither cohort's favourite is the global one


def test_shrinkage_falls_back_to_the_parent_when_the_cohort_is_tiny(world) -> None:
    # the (M, lawyer) cohort is one user who watched only item 18
    unshrunk = _cohort(world, ("gender", "occupation"), 0.0)
    assert _ids(unshrunk.candidates(_ctx(demographics=LAWYER), 1)) == [18]
    shrunk = _cohort(world, ("gender", "occupation"), 1000.0)
    men = _cohort(world, ("gender",), 1000.0)
    lawyer_top = _ids(shrunk.candidates(_ctx(demographics=LAWYER), 5))
    assert lawyer_top == _ids(men.candidates(_ctx(demographics={"gender": "M"}), 5))
    assert 18 not in lawyer_top[:2]
    # a cohort nobody in the log belongs to inherits its parent exactly
    doctor = {**LAWYER, "occupation": "doctor"}
    np.testing.assert_allclose(shrunk.scores(doctor), men.scores({"gender": "M"}))


def test_missing_demographics_fall_back_to_global_popularity(world) -> None:
    events, _ = world
    source = _cohort(world, ("age", "gender", "occupation"), 1.0)
    global_scores = source.scores(None)
    for withheld in ({}, {"age": None, "gender": "", "occupation": float("nan")}, {"gender": "?"}):
        np.testing.assert_array_equal(source.scores(withheld), global_scores)
        assert source.cohort(withheld) == {}
    popular = PopularitySource.fit(events, ITEM_IDS)
    assert _ids(source.candidates(_ctx(), 10)) == _ids(popular.candidates(_ctx(), 10))
    # one field missing: the chain skips it instead of pooling the unknowns
    age_only = _cohort(world, ("age",), 1.0)
    np.testing.assert_allclose(
        source.scores({"age": 60}), age_only.scores({"age": 60, "gender": "F"})
    )


def test_chain_picks_the_stage(policy: ColdStartPolicy) -> None:
    titles = OnboardingPicks(titles=(12,))
    assert policy.stage(_ctx()) is ColdStage.POPULARITY
    assert policy.stage(_ctx(demographics=OLD_WOMAN)) is ColdStage.COHORT
    assert policy.stage(_ctx(), titles) is ColdStage.ONBOARDING
    assert policy.stage(_ctx(), OnboardingPicks(genres=("Drama",))) is ColdStage.ONBOARDING
    assert policy.stage(_ctx(demographics=OLD_WOMAN), titles) is ColdStage.ONBOARDING_COHORT
    assert policy.stage(_ctx(history=[12, 13])) is ColdStage.ONBOARDING  # a few interactions
    assert policy.stage(_ctx(history=[12, 13, 17])) is ColdStage.FULL_PIPELINE
    assert policy.needs_full_pipeline(_ctx(history=[12, 13, 17]))
    many_picks = OnboardingPicks(titles=(10, 11, 12, 13, 14))  # picks are not interactions
    assert policy.stage(_ctx(), many_picks) is ColdStage.ONBOARDING
    # a field the cohort levels do not use is no demographic evidence
    fields_policy = ColdStartPolicy(
        policy.popularity, policy.cohort.reconfigured(CohortConfig(("age", "gender")))
    )
    assert fields_policy.stage(_ctx(demographics={"occupation": "student"})) is ColdStage.POPULARITY
    assert fields_policy.stage(_ctx(), titles) is ColdStage.POPULARITY  # no onboarding source

    for ctx, picks, stage in [
        (_ctx(), None, "popularity"),
        (_ctx(demographics=OLD_WOMAN), None, "cohort"),
        (_ctx(demographics=OLD_WOMAN), titles, "onboarding+cohort"),
    ]:
        assert policy.candidates(ctx, 1, picks)[0].source == stage


def test_cohort_stage_serves_the_cohort(policy: ColdStartPolicy) -> None:
    assert _ids(policy.candidates(_ctx(demographics=YOUNG_MAN), 2)) == [10, 11]
    assert _ids(policy.candidates(_ctx(), 1)) == [16]


def test_title_picks_bring_their_co_visited_neighbours(world) -> None:
    events, _ = world
    source = OnboardingSource.fit(events, ITEMS, ITEM_IDS)
    picked_drama = _ids(source.candidates(_ctx(), 2, OnboardingPicks(titles=(12,))))
    assert set(picked_drama) == {13, 17}
    picked_action = _ids(source.candidates(_ctx(), 2, OnboardingPicks(titles=(10,))))
    assert picked_action[0] in {11, 15}


def test_onboarding_genres_return_items_of_those_genres(world) -> None:
    events, _ = world
    source = OnboardingSource.fit(events, ITEMS, ITEM_IDS)
    drama = _ids(source.candidates(_ctx(), 10, OnboardingPicks(genres=("drama",))))
    assert drama == [12, 13, 17]  # every watched drama, most popular first
    mixed = _ids(source.candidates(_ctx(), 10, OnboardingPicks(genres=("Action", "Comedy"))))
    assert set(mixed) == {10, 11, 14, 15, 16}
    # 15 has both picked genres: it beats 10 and 11, which more users watched
    assert mixed.index(15) < mixed.index(10) and mixed.index(15) < mixed.index(11)
    assert source.candidates(_ctx(), 10, OnboardingPicks(genres=("Western",))) == []


def test_unknown_titles_fall_back_to_content(world) -> None:
    from retrieval.sources import ContentSource

    events, _ = world
    vectors = np.eye(len(ITEM_IDS), dtype=np.float32)
    vectors[ITEM_IDS == 19] = vectors[ITEM_IDS == 14] * 0.8 + vectors[ITEM_IDS == 18] * 0.6
    content = ContentSource(ITEM_IDS, vectors)
    with_content = OnboardingSource.fit(events, ITEMS, ITEM_IDS, content=content)
    picks = OnboardingPicks(titles=(19,))  # nobody has watched 19: no co-visitation evidence
    assert _ids(with_content.candidates(_ctx(), 2, picks)) == [14, 18]
    assert OnboardingSource.fit(events, ITEMS, ITEM_IDS).candidates(_ctx(), 2, picks) == []


def test_picks_become_the_two_tower_history(world) -> None:
    from retrieval.features import ItemFeatures
    from retrieval.sources.two_tower import TwoTowerSource
    from retrieval.two_tower import TwoTowerConfig, TwoTowerModel

    events, _ = world
    rng = np.random.default_rng(0)
    text = rng.standard_normal((len(ITEM_IDS), 16)).astype(np.float32)
    text /= np.linalg.norm(text, axis=1, keepdims=True)
    features = ItemFeatures.build(ITEMS.assign(year=1995), ITEM_IDS, text)
    config = TwoTowerConfig(dim=16, max_history=8, layers=1, heads=2)
    tower = TwoTowerSource(TwoTowerModel(features, config).eval(), ITEM_IDS)
    source = OnboardingSource.fit(
        events, ITEMS, ITEM_IDS, OnboardingConfig(two_tower_weight=1.0), two_tower=tower
    )
    picks = OnboardingPicks(titles=(12, 10))
    got = _ids(source.candidates(_ctx(demographics=OLD_WOMAN), 5, picks))
    as_history = _ctx(history=[12, 10], demographics=OLD_WOMAN)
    assert got == _ids(tower.candidates(as_history, 5))
    assert not {12, 10} & set(got)


def test_seen_items_and_picks_are_never_returned(policy: ColdStartPolicy) -> None:
    def greedy(ctx: RequestContext, page: list[Candidate], k: int) -> list[Candidate]:
        """A misbehaving exploration rule: pushes a seen item and a duplicate."""
        return [Candidate(10, 9.0, "explore"), page[0], page[0], *page]

    explored = ColdStartPolicy(policy.popularity, policy.cohort, policy.onboarding, greedy)
    requests = [
        (_ctx(exclude={16}), None),
        (_ctx(demographics=YOUNG_MAN, exclude={10, 11}), None),
        (_ctx(history=[12], exclude={16}), OnboardingPicks(titles=(13,), genres=("Drama",))),
        (_ctx(history=[10], demographics=YOUNG_MAN), OnboardingPicks(titles=(11, 15))),
        (_ctx(history=[10, 12, 14, 16]), None),  # full pipeline: still a clean answer
    ]
    for ctx, picks in requests:
        banned = ctx.seen() | set(picks.titles if picks else ())
        for source in (policy, explored):
            page = _ids(source.candidates(ctx, 20, picks))
            assert page, "every stage answers something"
            assert not banned & set(page)
            assert len(page) == len(set(page))
            assert len(page) == len(set(ITEM_IDS) - banned - {19})  # everything watched, once
        assert 10 not in _ids(explored.candidates(_ctx(history=[10]), 5))


def test_exploration_source_takes_the_last_slots(policy: ColdStartPolicy) -> None:
    class NeverWatched:
        """A fixed 'fresh releases' source: item 19, which no popularity count reaches."""

        name = "fresh"

        def candidates(self, ctx: RequestContext, k: int) -> list[Candidate]:
            return [Candidate(19, 1.0, self.name)][:k] if 19 not in ctx.seen() else []

    explored = ColdStartPolicy(
        policy.popularity,
        policy.cohort,
        policy.onboarding,
        NeverWatched(),
        ColdStartConfig(exploration_slots=1),
    )
    plain = policy.candidates(_ctx(demographics=OLD_WOMAN), 4)
    page = explored.candidates(_ctx(demographics=OLD_WOMAN), 4)
    assert _ids(page) == [*_ids(plain)[:3], 19]
    assert page[-1].source == "fresh"


def test_a_feed_rule_can_explore_below_the_page(policy: ColdStartPolicy) -> None:
    class PromoteDeepest:
        """A stand-in bandit rule: the deepest ranked item (below the page) takes slot 1."""

        name = "promote_deepest"

        def apply(self, ctx: FeedContext, ranked: list[RankedItem]) -> list[RankedItem]:
            deepest = replace(ranked[-1], reasons=[*ranked[-1].reasons, "exploration"])
            return [ranked[0], deepest, *ranked[1:-1]][: ctx.page_size]

    explored = ColdStartPolicy(
        policy.popularity, policy.cohort, policy.onboarding, PromoteDeepest()
    )
    ctx = _ctx(demographics=YOUNG_MAN, exclude={16})
    plain = _ids(policy.candidates(ctx, 3))
    deep = _ids(policy.candidates(ctx, 20))  # every unseen item the chain ranks
    page = explored.candidates(ctx, 3)
    assert _ids(page) == [plain[0], deep[-1], plain[1]]
    assert deep[-1] not in plain and page[1].source == "exploration"


@pytest.mark.slow
def test_cohort_beats_popularity_on_the_ml100k_new_user_slice(ml_100k) -> None:
    from evaluation.cold_start_eval import AFTER_PICKS, ALL_EVENTS, evaluate_new_users

    report = evaluate_new_users(ml_100k)
    assert {row.users for row in report.rows} == {188}
    # Measured (seed 0): NDCG@10 0.5680 vs 0.5384, +0.030, 95% paired bootstrap CI
    # +0.011..+0.049; split seeds 1-4 gave +0.021..+0.040. Recall@10 is flat
    # (0.0810 vs 0.0817): the gain is on heavy raters, see the report.
    cohort = report.metric("demographic cohort", ALL_EVENTS, "ndcg@10")
    popularity = report.metric("popularity", ALL_EVENTS, "ndcg@10")
    assert cohort > popularity + 0.01
    assert report.cohort_gain[1] > 0  # the paired 95% interval excludes no gain
    # Picks add on top of the cohort: Recall@20 0.1350 vs 0.1252 (+0.010..+0.028 over seeds)
    onboarding = report.metric("onboarding + cohort", AFTER_PICKS, "recall@20")
    assert onboarding > report.metric("demographic cohort", AFTER_PICKS, "recall@20")
    assert report.cohort_config.prior_strength > 0  # CV preferred shrinkage (m = 30 here)
