"""Chat's priors: how well liked a film is, how much it was watched lately, and the
standing a reason quotes from them."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from app.chat_retrieval import Priors, Weights, prior_order
from app.grounding import standing
from llm.explain import Facts, template
from ranking.popularity_prior import SECONDS_PER_YEAR, RecentPopularity
from ranking.quality_prior import QualityPrior

END = 1_500_000_000  # the catalog's last event


def _events(rows: list[tuple[int, float, int]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["item_id", "rating", "timestamp"])


@pytest.fixture
def events() -> pd.DataFrame:
    old = END - 5 * SECONDS_PER_YEAR
    rows = [(1, 5.0, int(old)) for _ in range(500)]  # a classic nobody rates any more
    rows += [(2, 3.0, END - 100 - i) for i in range(60)]  # watched a lot lately
    rows += [(3, 4.5, END - 200 - i) for i in range(6)]  # watched a little lately
    return _events(rows)


def test_only_the_recent_window_counts_and_the_top_film_is_one(events) -> None:
    popular = RecentPopularity.fit(events, END + 1)
    assert popular.lift(2) == pytest.approx(1.0)
    assert 0 < popular.lift(3) < popular.lift(2)
    assert popular.lift(1) == 0.0  # 500 ratings, all five years old
    assert popular.lift(99) == 0.0  # never rated


def test_a_clock_past_the_catalog_is_held_at_its_last_event(events) -> None:
    """A historical catalog on the wall clock must not find an empty window."""
    late = RecentPopularity.fit(events, END + 30 * SECONDS_PER_YEAR)
    assert late.lift(2) == pytest.approx(1.0) and late.until == events["timestamp"].max() + 1


def test_the_window_ends_at_the_clock_not_after_it(events) -> None:
    """Replayed at an earlier moment, later ratings are its future and do not count."""
    early = RecentPopularity.fit(events, END - 150)  # 9 of film 2's 60 ratings are before
    assert early.lift(2) == pytest.approx(1.0)
    assert early.lift(3) == pytest.approx(np.log1p(6) / np.log1p(9))


def test_no_events_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="needs events"):
        RecentPopularity.fit(_events([]), END)


def test_with_nothing_to_search_the_priors_order_by_their_weights(events) -> None:
    priors = Priors(QualityPrior.fit(events), RecentPopularity.fit(events, END + 1))

    class Rows:  # the one field prior_order reads from a TextSearch
        item_ids = np.array([1, 2, 3])

    scope = np.ones(3, dtype=bool)
    by_quality = prior_order(Rows(), priors, Weights(quality=1.0, popular=0.0), scope)
    by_popular = prior_order(Rows(), priors, Weights(quality=0.0, popular=1.0), scope)
    assert by_quality[0] == 1 and by_popular[0] == 2


def test_a_reason_quotes_the_standing_that_sets_a_pick_apart(events) -> None:
    priors = Priors(QualityPrior.fit(events), RecentPopularity.fit(events, END + 1))
    assert standing(priors, 1) == "rated 5.0/5 by 500 viewers"
    assert standing(priors, 2) == "popular lately"  # 3 stars: not a rating to quote
    assert standing(priors, 3) is None  # 6 ratings: too few to quote
    reason = template(Facts(title="X", genres=("Comedy",), standing=standing(priors, 1)))
    assert reason == "Matches what you asked for: comedy; rated 5.0/5 by 500 viewers"
