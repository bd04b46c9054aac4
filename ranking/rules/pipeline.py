"""Run re-ranking rules in order, timing each and surviving a broken one.

Why skip instead of fail: a bug in, say, the diversity rule should cost the user some
variety, not the whole feed; the skip is logged and reported in `failed` so metrics and
alerts see it. Rules named in `critical` are the exception: a safety filter such as
ContentPolicy must not fail open, so its exception propagates (as RuleFailed) and the
caller decides what to serve instead.

Each rule gets its own shallow copy of the current list, so a rule that breaks the
contract by mutating its input and then raising cannot leave a half-edited list
behind (and the caller's list is never touched).

Recommended order: RemoveSeen, GenreFilter, ContentPolicy (filters first, so later
rules fill the page with eligible items), FreshnessBoost (it re-sorts), Diversity
(reads the order FreshnessBoost produced), Exploration (last: it places items at
fixed page positions, which any later reordering would undo).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field

from ranking.base import FeedContext, RankedItem, Rule

log = logging.getLogger("marquee.ranking")


class RuleFailed(RuntimeError):
    def __init__(self, rule: str, cause: BaseException) -> None:
        super().__init__(f"critical rule {rule!r} failed: {cause!r}")
        self.rule = rule


@dataclass
class PipelineResult:
    items: list[RankedItem]
    timings_ms: dict[str, float] = field(default_factory=dict)  # per rule, failed ones too
    failed: list[str] = field(default_factory=list)


class RulePipeline:
    name = "rule_pipeline"

    def __init__(self, rules: Sequence[Rule], critical: Collection[str] = ()) -> None:
        names = [r.name for r in rules]
        if len(set(names)) != len(names):
            raise ValueError(f"rule names must be unique, got {names}")
        unknown = set(critical) - set(names)
        if unknown:
            raise ValueError(f"critical names no rule: {sorted(unknown)}")
        self.rules = tuple(rules)
        self.critical = frozenset(critical)

    def run(self, ctx: FeedContext, ranked: list[RankedItem]) -> PipelineResult:
        result = PipelineResult(items=list(ranked))
        for rule in self.rules:
            start = time.perf_counter()
            try:
                out = rule.apply(ctx, list(result.items))
                if not isinstance(out, list):
                    raise TypeError(f"returned {type(out).__name__}, not list")
            except Exception as exc:
                result.timings_ms[rule.name] = (time.perf_counter() - start) * 1e3
                if rule.name in self.critical:
                    raise RuleFailed(rule.name, exc) from exc
                log.exception("rule %s failed; skipped for this request", rule.name)
                result.failed.append(rule.name)
                continue
            result.timings_ms[rule.name] = (time.perf_counter() - start) * 1e3
            result.items = out
        return result

    def apply(self, ctx: FeedContext, ranked: list[RankedItem]) -> list[RankedItem]:
        """The pipeline is itself a Rule, for callers that only want the items."""
        return self.run(ctx, ranked).items
