"""A/B comparison of feed variants on click rate and like rate, with user-level intervals.

Impressions are not independent trials: one user's impressions share that user's taste and
mood, so a binomial interval over impressions would be too narrow and would flag noise as a
win. The user is the randomization unit (assignment is per user), so it is also the unit of
analysis: each rate is a ratio of sums over users, sum(events) / sum(impressions), and its
variance comes from the delta method over per-user (numerator, denominator) totals:

    var(R) ~= (s_y^2 - 2 R s_xy + R^2 s_x^2) / (n * xbar^2)

with sample (n - 1) moments. Variants are independent samples of users, so the standard
error of a difference is the root of the summed variances; intervals and p-values use the
normal approximation, which is sound at the thousands of users an experiment runs on.

A user seen under two variants (e.g. after a config change) is counted as a separate unit
in each; events without a variant (served outside any experiment) are skipped and counted.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np

Z95 = 1.96
METRICS = ("click_rate", "like_rate")
# Event type -> column of the per-user totals: impressions, clicks, likes.
_COLUMNS = {"impression": 0, "click": 1, "like": 2}
NAN = float("nan")


@dataclass(frozen=True)
class Estimate:
    """A point estimate with its standard error and 95% interval (all NaN if undefined)."""

    value: float
    se: float
    ci_low: float
    ci_high: float

    @classmethod
    def from_se(cls, value: float, se: float) -> Estimate:
        return cls(value, se, value - Z95 * se, value + Z95 * se)


def ratio_estimate(numerators: np.ndarray, denominators: np.ndarray) -> Estimate:
    """Ratio of sums over units with its delta-method standard error.

    No impressions means no rate (NaN); a single user gives a rate but no spread to
    estimate an error from (se NaN), rather than a misleading zero-width interval.
    """
    y = np.asarray(numerators, dtype=np.float64)
    x = np.asarray(denominators, dtype=np.float64)
    n, total = len(x), float(x.sum())
    if n == 0 or total <= 0:
        return Estimate(NAN, NAN, NAN, NAN)
    ratio = float(y.sum()) / total
    if n < 2:
        return Estimate(ratio, NAN, NAN, NAN)
    # s_y^2 - 2R s_xy + R^2 s_x^2 is the sample variance of y - R x, whose mean is zero by
    # the choice of R; this form avoids cancellation between the three terms.
    resid = y - ratio * x
    var = n / (n - 1) * float(resid @ resid) / total**2
    return Estimate.from_se(ratio, math.sqrt(var))


@dataclass(frozen=True)
class VariantStats:
    name: str
    users: int
    impressions: int
    clicks: int
    likes: int
    click_rate: Estimate
    like_rate: Estimate


@dataclass(frozen=True)
class Comparison:
    """`variant` minus `control` on one metric; `relative` is the lift over control."""

    variant: str
    control: str
    metric: str
    difference: Estimate
    relative: float
    p_value: float


@dataclass
class ABReport:
    control: str
    variants: dict[str, VariantStats]  # control first, then the others by name
    comparisons: list[Comparison]
    ignored_events: int  # events without a variant

    def comparison(self, variant: str, metric: str) -> Comparison:
        """The comparison of `variant` with control on `metric` (KeyError if none)."""
        for c in self.comparisons:
            if (c.variant, c.metric) == (variant, metric):
                return c
        raise KeyError((variant, metric))

    def markdown(self) -> str:
        lines = [
            "| variant | users | impressions | clicks | likes | click rate | click 95% CI "
            "| like rate | like 95% CI |",
            "|---|---:|---:|---:|---:|---:|---|---:|---|",
        ]
        for s in self.variants.values():
            lines.append(
                f"| {s.name} | {s.users} | {s.impressions} | {s.clicks} | {s.likes} "
                f"| {_num(s.click_rate.value)} | {_ci(s.click_rate)} "
                f"| {_num(s.like_rate.value)} | {_ci(s.like_rate)} |"
            )
        lines += [
            "",
            f"Differences vs control `{self.control}` (user-level delta method, normal 95% CI):",
            "",
            "| variant | metric | difference | 95% CI | relative | p-value |",
            "|---|---|---:|---|---:|---:|",
        ]
        for c in self.comparisons:
            lines.append(
                f"| {c.variant} | {c.metric} | {_num(c.difference.value)} | {_ci(c.difference)} "
                f"| {_num(c.relative)} | {_num(c.p_value)} |"
            )
        if self.ignored_events:
            lines += ["", f"{self.ignored_events} events without a variant were ignored."]
        return "\n".join(lines) + "\n"


def _num(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{value:.4f}"


def _ci(est: Estimate) -> str:
    if math.isnan(est.ci_low) or math.isnan(est.ci_high):
        return "n/a"
    return f"[{est.ci_low:.4f}, {est.ci_high:.4f}]"


def compare(treatment: Estimate, control: Estimate) -> tuple[Estimate, float]:
    """Difference of two independent estimates and its two-sided normal p-value."""
    diff = treatment.value - control.value
    se = math.hypot(treatment.se, control.se)
    if math.isnan(diff) or math.isnan(se):
        return Estimate(diff, se, NAN, NAN), NAN
    if se == 0:  # no spread in either arm (e.g. both rates exactly 0): nothing to test
        return Estimate.from_se(diff, se), NAN
    return Estimate.from_se(diff, se), math.erfc(abs(diff / se) / math.sqrt(2))


def ab_report(events: Iterable[Mapping[str, object]], control: str) -> ABReport:
    """Per-variant rates and differences vs `control` from raw stored events."""
    totals: dict[str, dict[object, list[int]]] = defaultdict(dict)
    ignored = 0
    for event in events:
        variant = event.get("variant")
        if not isinstance(variant, str) or not variant:
            ignored += 1
            continue
        row = totals[variant].setdefault(event["user_id"], [0, 0, 0])
        column = _COLUMNS.get(str(event["type"]))
        if column is not None:
            row[column] += 1

    names = [control, *sorted(name for name in totals if name != control)]
    stats = {name: _variant_stats(name, totals.get(name, {})) for name in names}
    comparisons = []
    for name in names[1:]:
        for metric in METRICS:
            treat_est = getattr(stats[name], metric)
            control_est = getattr(stats[control], metric)
            difference, p_value = compare(treat_est, control_est)
            base = control_est.value
            relative = difference.value / base if base > 0 else NAN
            comparisons.append(Comparison(name, control, metric, difference, relative, p_value))
    return ABReport(control, stats, comparisons, ignored)


def _variant_stats(name: str, per_user: Mapping[object, list[int]]) -> VariantStats:
    counts = np.array(list(per_user.values()), dtype=np.int64).reshape(-1, 3)
    impressions, clicks, likes = counts.T
    return VariantStats(
        name=name,
        users=len(counts),
        impressions=int(impressions.sum()),
        clicks=int(clicks.sum()),
        likes=int(likes.sum()),
        click_rate=ratio_estimate(clicks, impressions),
        like_rate=ratio_estimate(likes, impressions),
    )
