"""A/B report: hand-checked delta-method numbers, and calibration of its intervals."""

from __future__ import annotations

import math
from enum import StrEnum

import numpy as np
import pytest

from evaluation.ab_report import ab_report, ratio_estimate


def ev(kind: str, user: int, variant: str | None = "control") -> dict[str, object]:
    event: dict[str, object] = {"type": kind, "user_id": user}
    if variant is not None:
        event["variant"] = variant
    return event


def user_events(user: int, variant: str, impressions: int, clicks: int, likes: int = 0) -> list:
    return (
        [ev("impression", user, variant)] * impressions
        + [ev("click", user, variant)] * clicks
        + [ev("like", user, variant)] * likes
    )


def delta_se(y: np.ndarray, x: np.ndarray) -> float:
    """The textbook formula, written out independently of the implementation."""
    n = len(x)
    r = y.sum() / x.sum()
    s_yy, s_xx = np.var(y, ddof=1), np.var(x, ddof=1)
    s_xy = np.cov(x, y, ddof=1)[0, 1]
    return math.sqrt((s_yy - 2 * r * s_xy + r**2 * s_xx) / (n * x.mean() ** 2))


def small_events() -> list[dict[str, object]]:
    events = (
        user_events(1, "control", impressions=4, clicks=1, likes=1)
        + user_events(2, "control", impressions=2, clicks=0)
        + user_events(3, "control", impressions=4, clicks=3, likes=1)
        + user_events(4, "b", impressions=5, clicks=2)
        + user_events(5, "b", impressions=5, clicks=3, likes=2)
        # Other event types count the user but not the rates.
        + [ev("watch", 6, "b"), ev("complete", 6, "b"), ev("rating", 6, "b")]
        + [ev("dislike", 2, "control")]
    )
    # Served outside any experiment: ignored, but counted.
    return [
        *events,
        ev("click", 1, None),
        ev("impression", 1, ""),
        {**ev("like", 1), "variant": None},
    ]


def test_hand_computed_example() -> None:
    report = ab_report(small_events(), control="control")
    assert report.ignored_events == 3
    assert list(report.variants) == ["control", "b"]

    c = report.variants["control"]
    assert (c.users, c.impressions, c.clicks, c.likes) == (3, 10, 4, 2)
    assert c.click_rate.value == pytest.approx(0.4)
    assert c.like_rate.value == pytest.approx(0.2)
    x, y = np.array([4.0, 2.0, 4.0]), np.array([1.0, 0.0, 3.0])
    # By hand: residuals y - 0.4x = (-.6, -.8, 1.4); var = 3/2 * 2.96 / 10^2 = 0.0444.
    assert c.click_rate.se == pytest.approx(math.sqrt(0.0444))
    assert c.click_rate.se == pytest.approx(delta_se(y, x))
    assert c.click_rate.ci_low == pytest.approx(0.4 - 1.96 * c.click_rate.se)
    assert c.click_rate.ci_high == pytest.approx(0.4 + 1.96 * c.click_rate.se)
    assert c.like_rate.se == pytest.approx(delta_se(np.array([1.0, 0.0, 1.0]), x))

    b = report.variants["b"]
    assert (b.users, b.impressions, b.clicks, b.likes) == (3, 10, 5, 2)
    xb, yb = np.array([5.0, 5.0, 0.0]), np.array([2.0, 3.0, 0.0])  # user 6: no impressions
    assert b.click_rate.value == pytest.approx(0.5)
    assert b.click_rate.se == pytest.approx(delta_se(yb, xb))

    diff = report.comparison("b", "click_rate")
    se = math.hypot(c.click_rate.se, b.click_rate.se)
    assert diff.difference.value == pytest.approx(0.1)
    assert diff.difference.se == pytest.approx(se)
    assert (diff.difference.ci_low, diff.difference.ci_high) == pytest.approx(
        (0.1 - 1.96 * se, 0.1 + 1.96 * se)
    )
    assert diff.p_value == pytest.approx(math.erfc(0.1 / se / math.sqrt(2)))
    assert diff.relative == pytest.approx(0.25)
    assert report.comparison("b", "like_rate").difference.value == pytest.approx(0.0)
    assert report.comparison("b", "like_rate").p_value == pytest.approx(1.0)


def test_markdown_tables() -> None:
    text = ab_report(small_events(), control="control").markdown()
    assert "| variant | users | impressions | clicks | likes |" in text
    assert "| control | 3 | 10 | 4 | 2 | 0.4000 |" in text
    assert "| b | click_rate | 0.1000 | [" in text
    assert "3 events without a variant were ignored" in text


def test_variant_without_impressions_and_missing_control() -> None:
    events = [ev("watch", 1, "b"), ev("click", 2, "b"), *user_events(3, "c", 10, 2)]
    report = ab_report(events, control="control")
    control, b, c = (report.variants[name] for name in ("control", "b", "c"))
    assert control.users == 0 and control.impressions == 0
    assert b.users == 2 and b.impressions == 0 and b.clicks == 1
    for est in (control.click_rate, b.click_rate, b.like_rate):
        assert all(math.isnan(v) for v in (est.value, est.se, est.ci_low, est.ci_high))
    # One user: a rate, but no spread to build an interval from.
    assert c.click_rate.value == pytest.approx(0.2) and math.isnan(c.click_rate.se)
    for comp in report.comparisons:
        assert math.isnan(comp.difference.value) and math.isnan(comp.p_value)
    text = report.markdown()
    assert "n/a" in text and "nan" not in text


def test_empty_input() -> None:
    report = ab_report([], control="control")
    assert list(report.variants) == ["control"]
    assert report.comparisons == [] and report.ignored_events == 0
    assert "| control | 0 | 0 | 0 | 0 | n/a | n/a |" in report.markdown()


def synthetic_users(
    rng: np.random.Generator, n_users: int, rate: float, mean_impressions: float
) -> tuple[np.ndarray, np.ndarray]:
    """Per-user (impressions, clicks); user-level click propensity makes impressions clustered."""
    concentration = 10.0
    p = rng.beta(rate * concentration, (1 - rate) * concentration, n_users)
    impressions = rng.poisson(mean_impressions, n_users)
    return impressions, rng.binomial(impressions, p)


def as_events(variant: str, impressions: np.ndarray, clicks: np.ndarray, first_user: int) -> list:
    events: list[dict[str, object]] = []
    for i, (x, y) in enumerate(zip(impressions.tolist(), clicks.tolist(), strict=True)):
        events += user_events(first_user + i, variant, x, y)
    return events


def test_simulation_detects_true_difference() -> None:
    rng = np.random.default_rng(20260311)
    n = 2000
    events = as_events("control", *synthetic_users(rng, n, 0.10, 10), first_user=0)
    events += as_events("treatment", *synthetic_users(rng, n, 0.13, 10), first_user=n)
    comp = ab_report(events, control="control").comparison("treatment", "click_rate")
    assert comp.difference.ci_low <= 0.03 <= comp.difference.ci_high
    assert comp.difference.ci_low > 0
    assert comp.p_value < 1e-4


def test_delta_se_matches_spread_of_replications() -> None:
    """The SE is the real sampling spread of the ratio, wider than the binomial one."""
    rng = np.random.default_rng(7)
    ratios, ses = [], []
    for _ in range(300):
        x, y = synthetic_users(rng, 500, 0.10, 10)
        est = ratio_estimate(y, x)
        ratios.append(est.value)
        ses.append(est.se)
    empirical = float(np.std(ratios, ddof=1))
    assert np.mean(ses) == pytest.approx(empirical, rel=0.15)
    binomial = math.sqrt(0.1 * 0.9 / (500 * 10))
    assert empirical > 1.3 * binomial


def test_aa_intervals_cover_zero_about_95_percent() -> None:
    rng = np.random.default_rng(12345)
    n, reps, covered = 300, 200, 0
    for _ in range(reps):
        events = as_events("a", *synthetic_users(rng, n, 0.10, 5), first_user=0)
        events += as_events("b", *synthetic_users(rng, n, 0.10, 5), first_user=n)
        comp = ab_report(events, control="a").comparison("b", "click_rate")
        covered += comp.difference.ci_low <= 0 <= comp.difference.ci_high
    assert 0.88 <= covered / reps <= 0.99


def test_enum_event_types_are_accepted() -> None:
    """Events dumped from pydantic models carry a StrEnum `type`, not a plain str."""

    class Kind(StrEnum):
        IMPRESSION = "impression"
        CLICK = "click"

    events = [{"type": Kind.IMPRESSION, "user_id": 1, "variant": "control"}] * 4
    events.append({"type": Kind.CLICK, "user_id": 1, "variant": "control"})
    stats = ab_report(events, control="control").variants["control"]
    assert (stats.impressions, stats.clicks) == (4, 1)
