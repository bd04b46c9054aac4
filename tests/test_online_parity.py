"""The served feed equals the serving funnel offline: `marquee bench online_parity` end to
end on ml-100k (a 1-epoch bundle trained without the test users or any held-out event,
two real `marquee serve` processes, the real Redis, histories replayed over HTTP)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd

from catalog.tables import Catalog
from evaluation.parity import held_out_last, paired_bootstrap, parity_data

from .redis_util import redis_or_missing

ROOT = Path(__file__).resolve().parents[1]


def _toy() -> Catalog:
    events = pd.DataFrame(
        {
            "user_id": [1, 1, 1, 2, 2, 3, 3, 3, 4, 4],
            "item_id": [10, 11, 12, 10, 13, 11, 12, 14, 10, 12],
            "rating": [4.0] * 10,
            "timestamp": [1, 2, 3, 5, 4, 7, 7, 6, 1, 9],
        }
    )
    return Catalog(
        "toy", "v1", pd.DataFrame({"item_id": [10, 11, 12, 13, 14]}), pd.DataFrame(), events
    )


def test_parity_data_holds_out_each_latest_event_and_every_test_users_events():
    catalog = _toy()
    last = held_out_last(catalog.events)
    assert catalog.events.loc[last, "item_id"].tolist() == [12, 10, 12, 12]  # ties: by item id
    data = parity_data(catalog, 2, seed=3)
    test_ids = {u.user_id for u in data.users}
    served = data.catalog.events
    assert not set(served["user_id"]) & test_ids
    assert len(served) == len(catalog.events.loc[~catalog.events["user_id"].isin(test_ids)]) - 2
    for user in data.users:
        rows = catalog.events[catalog.events["user_id"] == user.user_id]
        assert len(user.history) == len(rows) - 1
        assert user.at == rows["timestamp"].max()
        mine = last & (catalog.events["user_id"] == user.user_id)
        assert user.target == catalog.events.loc[mine, "item_id"].item()


def test_paired_bootstrap_brackets_the_mean_difference():
    diff, lo, hi = paired_bootstrap([1.0, 0.0, 1.0, 1.0], [0.0, 0.0, 1.0, 0.0])
    assert diff == 0.5 and lo <= diff <= hi
    same = paired_bootstrap([0.3, 0.1], [0.3, 0.1])
    assert same == (0.0, 0.0, 0.0)


def test_served_feed_matches_the_offline_funnel(tmp_path, data_dir):
    redis_or_missing()
    env = {
        **os.environ,
        "MARQUEE_DATA_DIR": str(data_dir),
        "MARQUEE_ARTIFACTS_DIR": str(tmp_path / "artifacts"),
        "MARQUEE_CACHE_DIR": str(tmp_path / "cache"),
        "PYTHONPATH": str(ROOT),
    }
    bench = tmp_path / "bench"
    (bench / "results").mkdir(parents=True)
    args = ["--dataset", "ml-100k", "--users", "40", "--max-epochs", "1"]
    args += ["--workdir", str(tmp_path / "parity"), "--bench-dir", str(bench)]
    proc = subprocess.run(
        [sys.executable, "-m", "app.cli", "bench", "online_parity", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    m = json.loads((bench / "results" / "online_parity.json").read_text())["metrics"]
    assert m["users"] == 40 and m["replayed_events"] > 40 * 15
    # Same page for every user whose whole history the nearline keeps (a deadline miss
    # under a loaded machine is the only other way a served page may differ; counted).
    within = m["users"] - m["users_beyond_window"]
    assert within >= 10, m
    expected = 1.0 if m["served_source_misses"] == 0 else 0.8
    assert m["identical_pages_within_window"] >= expected, m
    assert m["served_wall_identical_pages"] < m["served_identical_pages"], m
    assert 0 < m["offline_ndcg@10"] <= 1 and 0 <= m["served_ndcg@10"] <= 1, m
    section = (bench / "RESULTS.md").read_text()
    assert (
        f"{m['served_ndcg@10']:.4f}" in section
        and (bench / "results" / "online_parity.png").is_file()
    )
