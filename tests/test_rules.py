"""Re-ranking rules on hand-built catalogs whose right answers are known."""

from __future__ import annotations

import itertools
import json
import threading
from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest

from ranking.bandit import BetaBandit
from ranking.base import FeedContext, RankedItem
from ranking.rules import (
    ContentPolicy,
    ContentPolicyConfig,
    Diversity,
    DiversityConfig,
    Exploration,
    ExplorationConfig,
    FreshnessBoost,
    FreshnessConfig,
    GenreFilter,
    ItemMeta,
    MaturityProfile,
    RemoveSeen,
    RuleFailed,
    RulePipeline,
)
from ranking.rules.exploration import spread_positions
from retrieval.base import RequestContext

TS_2020 = int(datetime(2020, 6, 1, tzinfo=UTC).timestamp())


def catalog(rows: list[dict]) -> ItemMeta:
    base = {"title": "", "year": None, "genres": [], "keywords": [], "tags": []}
    frame = pd.DataFrame([{**base, **r} for r in rows])
    frame["year"] = frame["year"].astype("Int64")
    return ItemMeta.from_frame(frame)


def feed(
    history: tuple[int, ...] = (),
    exclude: frozenset[int] = frozenset(),
    user: int | None = 7,
    ts: int = TS_2020,
    **kw,
) -> FeedContext:
    request = RequestContext(
        user_id=user, history=np.array(history, dtype=np.int64), timestamp=ts, exclude=exclude
    )
    return FeedContext(request=request, **kw)


def ranked_list(ids, scores=None) -> list[RankedItem]:
    ids = list(ids)
    scores = scores if scores is not None else [float(len(ids) - i) for i in range(len(ids))]
    return [RankedItem(item_id=i, score=s) for i, s in zip(ids, scores, strict=True)]


def ids_of(items: list[RankedItem]) -> list[int]:
    return [r.item_id for r in items]


def intra_list_diversity(meta_rows: dict[int, set[str]], ids: list[int]) -> float:
    """Mean pairwise (1 - genre cosine), computed from genre sets, independently of rules."""
    dists = []
    for a, b in itertools.combinations(ids, 2):
        ga, gb = meta_rows[a], meta_rows[b]
        cos = len(ga & gb) / np.sqrt(len(ga) * len(gb))
        dists.append(1.0 - cos)
    return float(np.mean(dists))


# ---------------------------------------------------------------- metadata


def test_item_meta_maps_unknown_ids_to_an_empty_row():
    meta = catalog(
        [
            {"item_id": 30, "genres": ["Drama", "Crime"], "year": 1999},
            {"item_id": 10, "genres": ["Comedy"], "keywords": ["Drug-Use"]},
        ]
    )
    rows = meta.rows([10, 99, 30])
    assert rows.tolist() == [1, meta.unknown_row, 0]
    assert not meta.genres[meta.unknown_row].any()
    assert meta.genre_names[meta.primary_genre[0]] == "Drama"  # first listed, not alphabetical
    assert meta.year[0] == 1999 and np.isnan(meta.year[1])
    assert meta.terms[1] == ("drug use",)


# ---------------------------------------------------------------- seen / genre filter


def test_remove_seen_drops_history_and_excluded_items_keeping_order():
    ranked = ranked_list([5, 4, 3, 2, 1])
    out = RemoveSeen().apply(feed(history=(4, 1), exclude=frozenset({2})), ranked)
    assert ids_of(out) == [5, 3]


def test_genre_filter_include_and_exclude():
    meta = catalog(
        [
            {"item_id": 1, "genres": ["Comedy"]},
            {"item_id": 2, "genres": ["Comedy", "Horror"]},
            {"item_id": 3, "genres": ["Drama"]},
            {"item_id": 4, "genres": []},
        ]
    )
    ranked = ranked_list([1, 2, 3, 4, 99])  # 99: not in the catalog
    rule = GenreFilter(meta)
    assert ids_of(rule.apply(feed(include_genres=frozenset({"comedy"})), ranked)) == [1, 2]
    assert ids_of(rule.apply(feed(exclude_genres=frozenset({"Horror"})), ranked)) == [1, 3, 4, 99]
    both = feed(include_genres=frozenset({"Comedy"}), exclude_genres=frozenset({"Horror"}))
    assert ids_of(rule.apply(both, ranked)) == [1]
    assert rule.apply(feed(include_genres=frozenset({"Western"})), ranked) == []


# ---------------------------------------------------------------- content policy


@pytest.fixture
def policy_meta() -> ItemMeta:
    return catalog(
        [
            {"item_id": 1, "genres": ["Animation", "Children"], "keywords": ["toy"]},
            {"item_id": 2, "genres": ["Horror"]},
            {"item_id": 3, "genres": ["Action"], "keywords": ["Graphic Violence"]},
            {"item_id": 4, "genres": ["Crime"], "tags": ["r:drug use"]},
            {"item_id": 5, "genres": ["Comedy"], "keywords": ["drugstore", "sexism"]},
            {"item_id": 6, "genres": ["Drama"], "tags": ["SEX"]},
        ]
    )


def test_kids_profile_drops_horror_blocked_terms_and_unknown_items(policy_meta):
    ranked = ranked_list([1, 2, 3, 4, 5, 6, 99])
    out = ContentPolicy(policy_meta).apply(feed(maturity="kids"), ranked)
    # 5 survives: "drugstore" and "sexism" only contain blocked words, not as whole words.
    assert ids_of(out) == [1, 5]


def test_adult_profile_keeps_everything(policy_meta):
    ranked = ranked_list([1, 2, 3, 4, 5, 6, 99])
    assert ids_of(ContentPolicy(policy_meta).apply(feed(maturity="adult"), ranked)) == ids_of(
        ranked
    )


def test_unknown_maturity_falls_back_to_kids(policy_meta):
    out = ContentPolicy(policy_meta).apply(feed(maturity="adlut"), ranked_list([1, 2, 3]))
    assert ids_of(out) == [1]


def test_custom_profile_blocks_configured_phrase_only(policy_meta):
    config = ContentPolicyConfig(
        profiles={"teen": MaturityProfile(blocked_terms=("graphic violence",))},
        fallback="teen",
    )
    out = ContentPolicy(policy_meta, config).apply(feed(maturity="teen"), ranked_list([1, 2, 3]))
    assert ids_of(out) == [1, 2]


# ---------------------------------------------------------------- diversity

GENRES = {
    **{i: {"Action"} for i in range(1, 7)},  # six action films, best scores
    7: {"Comedy"},
    8: {"Drama"},
    9: {"Romance"},
    10: {"Action"},
    11: {"Comedy"},
}


@pytest.fixture
def div_meta() -> ItemMeta:
    return catalog([{"item_id": i, "genres": sorted(g)} for i, g in GENRES.items()])


def test_mmr_with_lambda_one_keeps_order(div_meta):
    ranked = ranked_list(range(1, 12))
    rule = Diversity(div_meta, DiversityConfig(lambda_=1.0, max_genre_share=None))
    assert ids_of(rule.apply(feed(page_size=4), ranked)) == list(range(1, 12))


def test_mmr_keeps_incoming_order_even_when_scores_disagree(div_meta):
    # An earlier rule promoted item 3 without touching its score; lambda 1 must respect that.
    ranked = ranked_list([3, 1, 2, 4], scores=[0.5, 0.9, 0.8, 0.1])
    rule = Diversity(div_meta, DiversityConfig(lambda_=1.0, max_genre_share=None))
    assert ids_of(rule.apply(feed(page_size=3), ranked)) == [3, 1, 2, 4]


def test_lower_lambda_raises_intra_list_diversity(div_meta):
    ranked = ranked_list(range(1, 12))
    ctx = feed(page_size=4)
    pages = {}
    for lam in (1.0, 0.5):
        rule = Diversity(
            div_meta, DiversityConfig(lambda_=lam, head_margin=4, max_genre_share=None)
        )
        pages[lam] = ids_of(rule.apply(ctx, ranked))[:4]
    assert intra_list_diversity(GENRES, pages[1.0]) == 0.0
    assert intra_list_diversity(GENRES, pages[0.5]) > 0.5
    assert pages[0.5][0] == 1  # the best item still leads


def test_head_is_reranked_and_tail_kept_in_order(div_meta):
    ranked = ranked_list(range(1, 12))
    rule = Diversity(div_meta, DiversityConfig(lambda_=0.3, head_margin=4, max_genre_share=None))
    out = ids_of(rule.apply(feed(page_size=4), ranked))
    assert sorted(out[:8]) == list(range(1, 9))  # head = page 4 + margin 4
    assert out[8:] == [9, 10, 11]


def test_genre_cap_limits_any_genre_on_the_page(div_meta):
    ranked = ranked_list(range(1, 12))
    config = DiversityConfig(lambda_=1.0, head_margin=4, max_per_genre=2, max_genre_share=None)
    out = ids_of(Diversity(div_meta, config).apply(feed(page_size=4), ranked))
    # Page: two best action films, then the best items that keep Action at 2.
    assert out[:4] == [1, 2, 7, 8]
    assert out[4:] == [3, 4, 5, 6, 9, 10, 11]  # rest of head by relevance, then the tail


def test_genre_share_cap_scales_with_page_size(div_meta):
    ranked = ranked_list(range(1, 12))
    config = DiversityConfig(lambda_=1.0, head_margin=6, max_genre_share=0.5)
    out = ids_of(Diversity(div_meta, config).apply(feed(page_size=6), ranked))
    page = out[:6]
    assert sum("Action" in GENRES[i] for i in page) == 3
    assert page == [1, 2, 3, 7, 8, 9]


def test_genre_cap_yields_to_a_full_page():
    meta = catalog(
        [{"item_id": i, "genres": ["Action"]} for i in range(1, 5)]
        + [{"item_id": 5, "genres": ["Comedy"]}]
    )
    config = DiversityConfig(lambda_=1.0, max_per_genre=1, max_genre_share=None)
    out = ids_of(Diversity(meta, config).apply(feed(page_size=3), ranked_list(range(1, 6))))
    assert out == [1, 5, 2, 3, 4]


def test_genre_cap_scopes_any_and_primary():
    meta = catalog(
        [
            {"item_id": 1, "genres": ["Action"]},
            {"item_id": 2, "genres": ["Comedy", "Action"]},  # primary: Comedy
            {"item_id": 3, "genres": ["Action"]},
            {"item_id": 4, "genres": ["Drama"]},
        ]
    )
    ranked = ranked_list([1, 2, 3, 4])
    ctx = feed(page_size=3)
    primary = DiversityConfig(
        lambda_=1.0, max_per_genre=1, max_genre_share=None, cap_scope="primary"
    )
    any_genre = DiversityConfig(lambda_=1.0, max_per_genre=1, max_genre_share=None)
    assert ids_of(Diversity(meta, primary).apply(ctx, ranked)) == [1, 2, 4, 3]
    assert ids_of(Diversity(meta, any_genre).apply(ctx, ranked))[:2] == [1, 4]


def test_embedding_similarity_is_blended_in():
    frame = pd.DataFrame(
        {
            "item_id": [1, 2, 3],
            "genres": [["Drama"]] * 3,
            "year": pd.array([None] * 3, dtype="Int64"),
        }
    )
    vectors = np.array([[1.0, 0.0], [1.0, 0.01], [0.0, 1.0]])
    meta = ItemMeta.from_frame(frame, embeddings=(np.array([1, 2, 3]), vectors))
    ranked = ranked_list([1, 2, 3], scores=[1.0, 0.9, 0.8])
    genre_only = Diversity(meta, DiversityConfig(lambda_=0.5, max_genre_share=None))
    blended = Diversity(
        meta, DiversityConfig(lambda_=0.5, max_genre_share=None, embedding_weight=1.0)
    )
    ctx = feed(page_size=3)
    assert ids_of(genre_only.apply(ctx, ranked)) == [1, 2, 3]  # all genres identical
    assert ids_of(blended.apply(ctx, ranked)) == [1, 3, 2]  # 2 is a near-copy of 1


def test_embedding_weight_without_embeddings_is_rejected(div_meta):
    with pytest.raises(ValueError):
        Diversity(div_meta, DiversityConfig(embedding_weight=0.5))


# ---------------------------------------------------------------- freshness


@pytest.fixture
def fresh_meta() -> ItemMeta:
    return catalog(
        [
            {"item_id": 1, "year": 1995},
            {"item_id": 2, "year": 2020},
            {"item_id": 3, "year": 2019},
            {"item_id": 4, "year": 2017},
            {"item_id": 5},
        ]
    )


def test_freshness_lifts_a_recent_film_over_a_slightly_better_old_one(fresh_meta):
    ranked = ranked_list([1, 2, 3, 4, 5], scores=[1.0, 0.98, 0.5, 0.45, 0.2])
    out = FreshnessBoost(fresh_meta).apply(feed(), ranked)
    assert ids_of(out) == [2, 1, 3, 4, 5]
    reasons = {r.item_id: r.reasons for r in out}
    assert reasons[2] == ["fresh"] and reasons[3] == ["fresh"]  # ages 0 and 1
    assert reasons[1] == [] and reasons[4] == [] and reasons[5] == []  # old or undated
    assert [r.score for r in out] == [0.98, 1.0, 0.5, 0.45, 0.2]  # scores kept for explanation


def test_freshness_is_relative_to_request_time(fresh_meta):
    ranked = ranked_list([1, 2, 3, 4, 5], scores=[1.0, 0.98, 0.5, 0.45, 0.2])
    ts_1997 = int(datetime(1997, 1, 1, tzinfo=UTC).timestamp())
    out = FreshnessBoost(fresh_meta).apply(feed(ts=ts_1997), ranked)
    assert ids_of(out)[0] == 1 and out[0].reasons == ["fresh"]  # 1995 was recent in 1997
    assert all(r.reasons == [] for r in out[1:])  # not yet released: no boost


def test_freshness_strength_zero_changes_nothing(fresh_meta):
    ranked = ranked_list([1, 2, 3], scores=[1.0, 0.98, 0.5])
    out = FreshnessBoost(fresh_meta, FreshnessConfig(strength=0.0)).apply(feed(), ranked)
    assert ids_of(out) == [1, 2, 3] and all(r.reasons == [] for r in out)


# ---------------------------------------------------------------- bandit


def test_bandit_posterior_exposure_and_validation():
    bandit = BetaBandit(prior_alpha=1.0, prior_beta=19.0)
    bandit.update(5, clicks=3, impressions=10)
    bandit.update(5, clicks=1, impressions=10)
    assert bandit.exposure(5) == 20 and bandit.exposure(6) == 0
    assert bandit.posterior(5) == (5.0, 35.0)
    assert bandit.posterior(6) == (1.0, 19.0)
    with pytest.raises(ValueError):
        bandit.update(5, clicks=3, impressions=2)
    with pytest.raises(ValueError):
        bandit.update_many([1, 2], [0, 1], [1, -1])
    assert bandit.exposure(1) == 0  # a rejected batch writes nothing


def test_bandit_from_ctr_sets_prior_mean():
    bandit = BetaBandit.from_ctr(0.1, strength=50)
    a, b = bandit.posterior(1)
    assert a / (a + b) == pytest.approx(0.1) and a + b == pytest.approx(50)


def test_bandit_round_trips_through_json():
    bandit = BetaBandit(2.0, 30.0)
    bandit.update_many([1, 2], [1.5, 0.0], [10.0, 4.0])
    restored = BetaBandit.from_dict(json.loads(json.dumps(bandit.to_dict())))
    for item in (1, 2, 3):
        assert restored.posterior(item) == bandit.posterior(item)
    rng_a, rng_b = np.random.default_rng(1), np.random.default_rng(1)
    assert np.array_equal(bandit.sample([1, 2, 3], rng_a), restored.sample([1, 2, 3], rng_b))


def test_bandit_concurrent_updates_are_not_lost():
    bandit = BetaBandit()

    def worker() -> None:
        for _ in range(2000):
            bandit.update(1, 1, 2)
            bandit.sample([1, 2], np.random.default_rng(0))

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert bandit.posterior(1) == (1.0 + 16000, 19.0 + 16000)


def test_thompson_prefers_a_strong_posterior():
    bandit = BetaBandit()
    bandit.update(1, clicks=60, impressions=200)  # CTR ~0.3
    bandit.update(2, clicks=5, impressions=200)  # CTR ~0.025
    wins = sum(
        int(np.argmax(bandit.sample([1, 2], np.random.default_rng(seed)))) == 0
        for seed in range(500)
    )
    assert wins >= 490


def test_thompson_explores_an_unseen_arm_sometimes():
    bandit = BetaBandit()  # prior mean 5%
    bandit.update(1, clicks=10, impressions=200)  # proven 5%: tight posterior
    unseen_wins = sum(
        int(np.argmax(bandit.sample([1, 2], np.random.default_rng(seed)))) == 1
        for seed in range(500)
    )
    assert 25 < unseen_wins < 475


# ---------------------------------------------------------------- exploration


def exploration_setup(over_exposed=range(19, 25)) -> tuple[BetaBandit, list[RankedItem]]:
    bandit = BetaBandit()
    for item in over_exposed:
        bandit.update(item, clicks=50, impressions=1000)
    return bandit, ranked_list(range(1, 41))


def test_spread_positions_formula():
    assert spread_positions(2, 20, 2) == [6, 15]
    assert spread_positions(1, 20, 2) == [11]
    assert spread_positions(3, 20, 2) == [5, 11, 17]
    assert spread_positions(2, 2, 2) == []


@pytest.mark.parametrize(("share", "slots"), [(0.05, 1), (0.08, 2), (0.10, 2)])
def test_exploration_respects_budget_and_spreads_positions(share, slots):
    bandit, ranked = exploration_setup()
    rule = Exploration(bandit, ExplorationConfig(budget_share=share))
    for ts in range(TS_2020, TS_2020 + 50):
        out = rule.apply(feed(ts=ts, page_size=20), ranked)
        tagged = [i for i, r in enumerate(out) if "exploration" in r.reasons]
        assert tagged == spread_positions(slots, 20, 2)
        assert sorted(ids_of(out)) == list(range(1, 41))  # nothing lost or duplicated
        winners = {out[i].item_id for i in tagged}
        assert winners.isdisjoint(range(19, 25))  # over-exposed items never explored
        assert winners <= set(range(21 - slots, 41))  # from below the exploit part
        rest = [r.item_id for r in out if "exploration" not in r.reasons]
        assert rest == sorted(rest)  # everything else keeps its order


def test_exploration_is_deterministic_per_request_and_varies_across_requests():
    bandit, ranked = exploration_setup()
    rule = Exploration(bandit)
    first = ids_of(rule.apply(feed(ts=TS_2020), ranked))
    assert ids_of(rule.apply(feed(ts=TS_2020), ranked)) == first
    picks = {
        tuple(r.item_id for r in rule.apply(feed(ts=ts), ranked) if "exploration" in r.reasons)
        for ts in range(TS_2020, TS_2020 + 30)
    }
    assert len(picks) > 5


def test_exploration_prefers_a_strong_arm_and_still_tries_unseen_ones():
    bandit = BetaBandit()
    ranked = ranked_list(range(1, 31))
    # Budget 1 slot: the pool is ranked[19:] = items 20..30, all under 50 impressions.
    for item in (*range(21, 25), *range(26, 31)):
        bandit.update(item, clicks=0, impressions=30)  # poor
    bandit.update(25, clicks=6, impressions=40)  # strong: posterior mean ~0.12
    rule = Exploration(bandit, ExplorationConfig(budget_share=0.05))  # one slot
    picks = [
        next(r.item_id for r in rule.apply(feed(ts=ts), ranked) if "exploration" in r.reasons)
        for ts in range(TS_2020, TS_2020 + 300)
    ]
    assert picks.count(25) > 200
    assert 5 < picks.count(20) < 100  # the only never-shown item


def test_new_items_go_through_admit_rules_and_seen():
    meta = catalog(
        [{"item_id": i, "genres": ["Comedy"]} for i in range(1, 31)]
        + [
            {"item_id": 100, "genres": ["Horror"]},
            {"item_id": 101, "genres": ["Comedy"]},
            {"item_id": 102, "genres": ["Comedy"]},
        ]
    )
    bandit = BetaBandit()
    for item in range(1, 31):
        bandit.update(item, clicks=1, impressions=500)  # ranked items all over-exposed
    rule = Exploration(bandit, new_items=[100, 101, 102], admit=[ContentPolicy(meta)])
    ranked = ranked_list(range(1, 31))
    out = rule.apply(feed(maturity="kids", history=(102,)), ranked)
    explored = [r for r in out if "exploration" in r.reasons]
    assert [r.item_id for r in explored] == [101]  # 100 is Horror, 102 already seen
    assert explored[0].sources == ("new",) and explored[0].score == 1.0  # list's lowest
    assert out.index(explored[0]) == spread_positions(1, 20, 2)[0]
    assert len(out) == 31


def test_exploration_on_a_short_list_with_new_items():
    rule = Exploration(BetaBandit(), ExplorationConfig(budget_share=0.1), new_items=[100, 101])
    out = rule.apply(feed(), ranked_list([1, 2, 3]))
    # Page = 3 ranked + 2 won new items = 5 slots; spread over [2, 5): positions 2 and 4.
    assert [r.item_id for r in out if "exploration" not in r.reasons] == [1, 2, 3]
    assert [i for i, r in enumerate(out) if "exploration" in r.reasons] == [2, 4]
    assert {out[2].item_id, out[4].item_id} == {100, 101}


def test_exploration_leaves_short_lists_alone():
    bandit = BetaBandit()
    ranked = ranked_list([1, 2])
    assert ids_of(Exploration(bandit).apply(feed(), ranked)) == [1, 2]


# ---------------------------------------------------------------- pipeline


class Boom:
    name = "boom"

    def apply(self, ctx, ranked):
        ranked.clear()  # breaks the contract, then fails
        raise RuntimeError("boom")


class Reverse:
    name = "reverse"

    def apply(self, ctx, ranked):
        return ranked[::-1]


def test_pipeline_skips_a_raising_rule_and_times_every_rule(caplog):
    pipeline = RulePipeline([Reverse(), Boom(), RemoveSeen()])
    ranked = ranked_list([1, 2, 3, 4])
    result = pipeline.run(feed(history=(2,)), ranked)
    assert ids_of(result.items) == [4, 3, 1]
    assert result.failed == ["boom"]
    assert set(result.timings_ms) == {"reverse", "boom", "remove_seen"}
    assert all(t >= 0 for t in result.timings_ms.values())
    assert ids_of(ranked) == [1, 2, 3, 4]
    assert "boom" in caplog.text


def test_pipeline_critical_rule_failure_propagates():
    pipeline = RulePipeline([Boom()], critical={"boom"})
    with pytest.raises(RuleFailed):
        pipeline.run(feed(), ranked_list([1, 2]))


def test_pipeline_rejects_duplicate_names():
    with pytest.raises(ValueError):
        RulePipeline([RemoveSeen(), RemoveSeen()])


# ---------------------------------------------------------------- contract


def all_rules():
    meta = catalog(
        [
            {"item_id": i, "genres": [g], "year": y, "keywords": k}
            for i, g, y, k in [
                (1, "Action", 2020, []),
                (2, "Horror", 1990, []),
                (3, "Comedy", 2019, ["gore"]),
                (4, "Action", 2000, []),
                (5, "Drama", 2020, []),
                (6, "Action", 1980, []),
            ]
        ]
    )
    bandit = BetaBandit()
    return [
        RemoveSeen(),
        GenreFilter(meta),
        ContentPolicy(meta),
        Diversity(meta, DiversityConfig(lambda_=0.3, max_per_genre=1)),
        FreshnessBoost(meta),
        Exploration(bandit, ExplorationConfig(budget_share=0.5, first_slot=1), new_items=[6]),
    ]


@pytest.mark.parametrize("rule", all_rules(), ids=lambda r: r.name)
def test_no_rule_mutates_its_input(rule):
    ranked = ranked_list([4, 1, 2, 3, 5, 99])
    snapshot = [(r.item_id, r.score, list(r.reasons)) for r in ranked]
    ctx = feed(history=(99,), page_size=4, maturity="kids", exclude_genres=frozenset({"Comedy"}))
    out = rule.apply(ctx, ranked)
    assert out is not ranked
    assert [(r.item_id, r.score, list(r.reasons)) for r in ranked] == snapshot
    # Each rule does change this list, so the snapshot check above is not vacuous.
    assert [(r.item_id, r.reasons) for r in out] != [(r.item_id, r.reasons) for r in ranked]
