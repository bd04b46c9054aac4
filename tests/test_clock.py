"""The one clock: data time for historical catalogs, clipped request features, and the
trending definition shared by training pools and the served source."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest
import torch

from catalog.clock import ClockSpec, DataClock, WallClock, clock_for
from ranking.ranker import MultiTaskNet, RankerConfig, train_ranker
from retrieval.base import RequestContext
from retrieval.sources.live_trending import LiveTrendingSource
from retrieval.sources.popularity import DAY_S, TrendingSource

END = 1_537_000_000  # September 2018, where MovieLens ends


def test_a_historical_catalog_is_served_on_its_own_time_and_current_data_on_the_wall():
    assert ClockSpec.for_data(END).mode == "data"
    assert ClockSpec.for_data(int(time.time()) - 3600).mode == "wall"
    spec = ClockSpec.from_dict(ClockSpec.for_data(END).to_dict())
    assert spec == ClockSpec("data", END)
    with pytest.raises(ValueError, match="unknown clock mode"):
        ClockSpec.from_dict({"mode": "lunar"})


def test_the_data_clock_starts_at_the_data_end_and_moves_with_real_time():
    clock = clock_for(ClockSpec("data", END))
    assert isinstance(clock, DataClock)
    first = clock.now()
    assert END <= first < END + 5
    time.sleep(0.05)
    assert clock.now() > first  # a like now is seconds after the previous event, not years
    assert isinstance(clock_for(ClockSpec("data", END), "wall"), WallClock)
    assert clock_for(ClockSpec("wall", END), "data").mode == "data"
    with pytest.raises(ValueError, match="unknown clock"):
        clock_for(ClockSpec("data", END), "sundial")


def test_ranker_inputs_outside_the_training_range_are_clipped_to_it():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(256, 3)).astype(np.float32)
    y = (rng.random((256, 4)) < 0.3).astype(np.float32)
    trained = train_ranker(x, y, lambda net: 0.0, RankerConfig(max_epochs=1, hidden=(8,)))
    net = trained.net.eval()
    assert torch.allclose(net.lo, torch.from_numpy(x.min(axis=0)))
    stale = np.array([[50.0, -40.0, 0.0]], dtype=np.float32)  # e.g. a user eight years away
    edge = np.array([[x[:, 0].max(), x[:, 1].min(), 0.0]], dtype=np.float32)
    with torch.inference_mode():
        assert torch.equal(net(torch.from_numpy(stale)), net(torch.from_numpy(edge)))
    fresh = MultiTaskNet(3, RankerConfig())
    assert torch.isinf(fresh.lo).all()  # untrained: no bound yet


def _events() -> pd.DataFrame:
    rng = np.random.default_rng(1)
    n = 4000
    return pd.DataFrame(
        {
            "user_id": rng.integers(1, 200, n),
            "item_id": rng.integers(1, 60, n),
            "timestamp": END - rng.integers(0, 90 * DAY_S, n),
        }
    )


def _ids(cands) -> list[int]:
    return [c.item_id for c in cands]


def test_served_trending_is_training_trending_at_any_past_request_time():
    events = _events()
    items = np.arange(1, 60)
    batch = TrendingSource.fit(events, items)
    live = LiveTrendingSource(TrendingSource.fit(events, items), END)
    for at in (END - 40 * DAY_S, END - 3 * DAY_S + 1234, END):
        ctx = RequestContext(user_id=1, history=np.array([3, 5]), timestamp=at)
        assert _ids(live.candidates(ctx, 25)) == _ids(batch.candidates(ctx, 25))


def test_a_request_long_after_the_data_end_keeps_the_ranking_as_of_the_end():
    events = _events()
    live = LiveTrendingSource(TrendingSource.fit(events, np.arange(1, 60)), END)
    at_end = RequestContext(user_id=1, history=np.array([], np.int64), timestamp=END)
    years_later = RequestContext(
        user_id=1, history=np.array([], np.int64), timestamp=END + 8 * 365 * DAY_S
    )
    expected = _ids(live.candidates(at_end, 25))
    assert len(expected) == 25
    assert _ids(live.candidates(years_later, 25)) == expected  # not an empty list


def test_stream_engagement_counts_now_but_not_in_the_past_it_did_not_happen_in():
    events = _events()
    live = LiveTrendingSource(TrendingSource.fit(events, np.arange(1, 60)), END)
    now = END + 3600
    coldest = _ids(live.candidates(RequestContext(1, np.array([], np.int64), now), 59))[-1]
    live.update([(coldest, 500.0), (10_000, 9.0)], at=now)  # 10_000: not in the catalog
    current = RequestContext(user_id=1, history=np.array([], np.int64), timestamp=now)
    assert _ids(live.candidates(current, 1)) == [coldest]
    past = RequestContext(user_id=1, history=np.array([], np.int64), timestamp=END - 5 * DAY_S)
    assert _ids(live.candidates(past, 1)) != [coldest]
