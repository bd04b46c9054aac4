"""LLM re-rank of the ranker's top 20 on LOO-full: validation-chosen blend, honest test figure.

The ranking stage is the ranking report's, computed the same way (`prepare_stages` +
`run_ranker`): the ranker is trained on validation pools of 80% of users; its 20%
held-out users are the validation set here, and the test set is every user's test pool.
Each request's ranker top 20 is cached with the targets (computing the stages takes
minutes), and so is every LLM pass (the expensive part), so weight sweeps and reruns
cost seconds.

Only requests whose target is among the 20 candidates are sent to the LLM. That is
exact, not a sample: re-ordering 20 items cannot move a target that is not among them
into the top 10, so such a request scores 0 on every @10 metric under every method;
the metrics are still averaged over all users.
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from rich.progress import Progress

from catalog.paths import HasDataSources, HasPaths
from catalog.tables import Catalog, load_catalog
from llm.rerank import (
    PASSES,
    SCHEMES,
    LLMReranker,
    RerankCandidate,
    blend_order,
    calibrated,
    history_entry,
)

K = 20
HISTORY_KEEP = 50  # ids stored per request; the prompt uses the reranker's history_len
WEIGHTS = tuple(round(0.1 * i, 1) for i in range(11))
BOOTSTRAP_DRAWS = 2000


@dataclass
class Case:
    """One request: who, what the ranker put in its top K (best first), and the target."""

    user: int
    history: list[int]  # raw item ids, oldest first
    candidates: list[int]
    scores: list[float]
    target: int

    @property
    def hit(self) -> bool:
        return self.target in self.candidates


@dataclass
class CaseSet:
    dataset: str
    catalog_version: str
    valid: list[Case]
    test: list[Case]
    ranker_metrics: dict[str, float]  # the ranking stage's own test figures (a cross-check)
    n_hold: int


def _cases(pools, users: Sequence[int], scores: Sequence[np.ndarray], k: int) -> list[Case]:
    out = []
    for u, s in zip(users, scores, strict=True):
        pool = pools.pools[u]
        top = np.argsort(-s, kind="stable")[:k]
        out.append(
            Case(
                int(pools.ctxs[u].user_id),
                [int(i) for i in pools.ctxs[u].history[-HISTORY_KEEP:]],
                [int(pool[i].item_id) for i in top],
                [float(s[i]) for i in top],
                int(pools.targets[u]),
            )
        )
    return out


def build_cases(
    dataset: str, settings: HasDataSources, k: int = K, progress: Progress | None = None
):
    """The ranking stage as the ranking report computes it, reduced to each top-k list."""
    from evaluation.ranking_eval import run_ranker
    from evaluation.stage_report import prepare_stages

    data = prepare_stages(dataset, settings, progress=progress)
    outcome = run_ranker(
        data.pools["valid"],
        data.pools["test"],
        data.items["valid"],
        data.items["test"],
        data.split,
        data.genres,
        len(data.split.user_ids),
    )
    test_users = list(range(len(data.pools["test"].ctxs)))
    return CaseSet(
        dataset,
        data.catalog.version,
        _cases(data.pools["valid"], outcome.hold_users, outcome.hold_scores, k),
        _cases(data.pools["test"], test_users, outcome.test_scores, k),
        {
            m: float(v)
            for m, v in outcome.metrics.items()
            if m.split("@")[0] in ("ndcg", "recall", "mrr")
        },
        len(outcome.hold_users),
    )


def cache_dir(settings: HasPaths, dataset: str) -> Path:
    return Path(settings.artifacts_dir) / "llm_rerank" / dataset


def load_or_build_cases(
    dataset: str, settings: HasDataSources, progress: Progress | None = None, rebuild: bool = False
) -> CaseSet:
    path = cache_dir(settings, dataset) / f"cases-top{K}.json"
    catalog_version = load_catalog(dataset, settings).version
    if path.is_file() and not rebuild:
        raw = json.loads(path.read_text())
        if raw["catalog_version"] == catalog_version:
            raw["valid"] = [Case(**c) for c in raw["valid"]]
            raw["test"] = [Case(**c) for c in raw["test"]]
            return CaseSet(**raw)
    cases = build_cases(dataset, settings, progress=progress)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(asdict(cases)))
    return cases


# --------------------------------------------------------------------------- LLM passes


class PassCache:
    """Every LLM pass ever scored, one JSON line each: reruns resume where they stopped."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.rows: dict[tuple[str, int, str], dict] = {}
        if path.is_file():
            for line in path.read_text().splitlines():
                if line.strip():
                    row = json.loads(line)
                    self.rows[(row["split"], row["user"], row["pass"])] = row

    def get(self, split: str, user: int, name: str) -> dict | None:
        return self.rows.get((split, user, name))

    def put(self, row: dict) -> None:
        self.rows[(row["split"], row["user"], row["pass"])] = row
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a") as out:
            out.write(json.dumps(row) + "\n")


class ItemText:
    """Titles, years and genres by raw item id, as the reranker's prompt shows them."""

    def __init__(self, catalog: Catalog) -> None:
        items = catalog.items
        self.rows = {
            int(i): (str(t), None if pd.isna(y) else int(y), list(g))
            for i, t, y, g in zip(
                items["item_id"], items["title"], items["year"], items["genres"], strict=True
            )
        }

    def history(self, ids: Sequence[int]) -> list[dict]:
        return [history_entry(*self.rows[i]) for i in ids]

    def candidates(self, case: Case) -> list[RerankCandidate]:
        return [
            RerankCandidate(
                id=i, title=self.rows[i][0], year=self.rows[i][1], genres=self.rows[i][2], score=s
            )
            for i, s in zip(case.candidates, case.scores, strict=True)
        ]


def score_passes(
    reranker: LLMReranker,
    cases: dict[str, list[Case]],
    text: ItemText,
    cache: PassCache,
    passes: Sequence[str] = tuple(PASSES),
    on_step: Callable[[], None] | None = None,
) -> None:
    """Fill `cache` with each pass's per-candidate LLM score for every hit request.

    Pass by pass over all requests, so a run stopped early leaves whole schemes behind.
    """
    sizes = {len(c.candidates) for items in cases.values() for c in items if c.hit}
    for n in sorted(sizes):
        if cache.get("prior", n, "fwd") is None:
            start = time.perf_counter()
            prior = reranker.label_prior(n)
            cache.put(
                {
                    "split": "prior",
                    "user": n,
                    "pass": "fwd",
                    "tokens": 0,
                    "ms": (time.perf_counter() - start) * 1e3,
                    "scores": [float(x) for x in prior],
                }
            )
    for name in passes:
        for split, items in cases.items():
            for case in items:
                if not case.hit:
                    continue
                if cache.get(split, case.user, name) is None:
                    history = text.history(case.history)
                    start = time.perf_counter()
                    scores, tokens = reranker.local_pass(history, None, text.candidates(case), name)
                    ms = (time.perf_counter() - start) * 1e3
                    cache.put(
                        {
                            "split": split,
                            "user": case.user,
                            "pass": name,
                            "ms": ms,
                            "tokens": tokens,
                            "threads": reranker.client.threads,
                            "scores": [float(x) for x in scores],
                        }
                    )
                if on_step:
                    on_step()


# --------------------------------------------------------------------------- metrics


def rank_of(order: Sequence[int], target: int) -> int:
    return order.index(target) if target in order else 10**9


def per_user_metrics(ranks: np.ndarray) -> dict[str, np.ndarray]:
    hit = ranks < 10
    return {
        "ndcg@10": np.where(hit, 1.0 / np.log2(ranks + 2.0), 0.0),
        "recall@10": hit.astype(float),
        "mrr@10": np.where(hit, 1.0 / (ranks + 1.0), 0.0),
    }


VARIANTS: dict[str, tuple[str, bool]] = {  # name -> (scheme, calibrate)
    **{scheme: (scheme, False) for scheme in SCHEMES},
    **{f"{scheme}, calibrated": (scheme, True) for scheme in SCHEMES},
}


def prior_of(cache: PassCache, n: int) -> np.ndarray:
    row = cache.get("prior", n, "fwd")
    if row is None:
        raise KeyError(f"no label prior for {n} candidates")
    return np.array(row["scores"])


def variant_scores(cache: PassCache, split: str, case: Case, variant: str) -> dict[int, float]:
    """Per-candidate LLM score: the mean over the variant's passes, as `LLMReranker` does."""
    scheme, calibrate = VARIANTS[variant]
    passes = []
    for name in SCHEMES[scheme]:
        row = cache.get(split, case.user, name)
        if row is None:
            raise KeyError(f"pass {name} missing for {split} user {case.user}")
        scores = np.array(row["scores"])
        if calibrate:
            scores = calibrated(scores, name, prior_of(cache, len(scores)))
        passes.append(scores)
    mean = np.mean(passes, axis=0)
    return {i: float(v) for i, v in zip(case.candidates, mean, strict=True)}


def ranks_for(
    cache: PassCache, split: str, cases: list[Case], variant: str, w: float
) -> np.ndarray:
    out = []
    for case in cases:
        if not case.hit or w == 0:
            out.append(rank_of(case.candidates, case.target))
            continue
        order = blend_order(case.candidates, variant_scores(cache, split, case, variant), w)
        out.append(rank_of(order, case.target))
    return np.array(out)


def paired_ci(diff: np.ndarray, draws: int = BOOTSTRAP_DRAWS, seed: int = 0) -> tuple[float, float]:
    rng = np.random.default_rng(seed)
    means = diff[rng.integers(0, diff.size, size=(draws, diff.size))].mean(axis=1)
    lo, hi = np.quantile(means, [0.025, 0.975])
    return float(lo), float(hi)


def random_order_ndcg(cases: list[Case]) -> float:
    """Expected NDCG@10 when the top K is shuffled uniformly: a 'no signal' reference."""
    per_position = np.array([1.0 / np.log2(p + 2.0) if p < 10 else 0.0 for p in range(K)])
    return float(sum(per_position[: len(c.candidates)].mean() for c in cases if c.hit) / len(cases))


@dataclass
class ModelOutcome:
    model: str
    prompt_ref: str
    variant: str  # validation-chosen scheme (+ calibration)
    weight: float  # validation-chosen w
    valid_curve: dict[str, dict[float, float]]  # variant -> w -> validation NDCG@10
    test_curve: dict[str, dict[float, float]]
    test: dict[str, dict[str, float]]  # method -> metric -> value
    valid: dict[str, dict[str, float]]
    ci: dict[str, tuple[float, float, float]]  # method -> (mean diff, lo, hi) vs ranker
    latency_ms: dict[str, tuple[float, float]]  # variant -> (p50, p95) of the re-rank call
    tokens_p50: float
    n_llm_requests: dict[str, int]
    threads: list[int]  # llama-cpp threads the timed passes ran with
    users: dict[str, int]  # requests evaluated per split (all, or a seeded test sample)
    random_ndcg10: float  # the top K shuffled at random, on the same test users
    pass_minutes: float  # compute spent on every cached pass of this model (all runs)


def _ndcg(ranks: np.ndarray) -> float:
    return float(per_user_metrics(ranks)["ndcg@10"].mean())


def measured_variants(
    cache: PassCache, cases: CaseSet, passes: Sequence[str] = tuple(PASSES)
) -> list[str]:
    """Variants made of `passes` whose passes exist for every request sent to the LLM."""
    needed = [("valid", c) for c in cases.valid if c.hit] + [
        ("test", c) for c in cases.test if c.hit
    ]
    out = []
    for v, (scheme, calibrate) in VARIANTS.items():
        if not set(SCHEMES[scheme]) <= set(passes):
            continue
        if calibrate and cache.get("prior", K, "fwd") is None:
            continue
        if all(cache.get(split, c.user, n) for split, c in needed for n in SCHEMES[scheme]):
            out.append(v)
    return out


def _cost(v: str) -> int:
    return len(SCHEMES[VARIANTS[v][0]]) + VARIANTS[v][1]


def choose(valid_curve: dict[str, dict[float, float]]) -> tuple[str, float]:
    """Best validation NDCG@10; ties go to the smaller w (closer to the ranker), fewer passes.

    At w = 0 every variant is the ranker, so the variant reported is then the one whose
    best w > 0 did best (its LLM-alone and blend rows are still worth showing).
    """
    variant, weight = max(
        ((v, w) for v in valid_curve for w in WEIGHTS),
        key=lambda vw: (round(valid_curve[vw[0]][vw[1]], 12), -vw[1], -_cost(vw[0])),
    )
    if weight == 0:
        variant = max(
            valid_curve, key=lambda v: (max(valid_curve[v][w] for w in WEIGHTS[1:]), -_cost(v))
        )
    return variant, weight


def evaluate_model(
    model: str,
    prompt_ref: str,
    cases: CaseSet,
    cache: PassCache,
    passes: Sequence[str] = tuple(PASSES),
) -> ModelOutcome:
    """Choose variant and w on validation NDCG@10; then measure the three methods on test.

    Only variants built from `passes` compete, so what the report covers is what the
    command asked for, not whatever an earlier run happened to leave in the cache.
    """
    variants = measured_variants(cache, cases, passes)
    if not variants:
        raise RuntimeError(f"{model}: no variant has all its LLM passes yet")
    curves = {
        split: {
            v: {w: _ndcg(ranks_for(cache, split, items, v, w)) for w in WEIGHTS} for v in variants
        }
        for split, items in (("valid", cases.valid), ("test", cases.test))
    }
    variant, weight = choose(curves["valid"])
    methods = {"ranker": 0.0, "llm": 1.0, "blend": weight}
    means: dict[str, dict[str, dict[str, float]]] = {}
    per_user = {}
    for split, items in (("valid", cases.valid), ("test", cases.test)):
        pu = {
            m: per_user_metrics(ranks_for(cache, split, items, variant, w))
            for m, w in methods.items()
        }
        means[split] = {m: {k: float(v.mean()) for k, v in x.items()} for m, x in pu.items()}
        per_user[split] = pu
    ci = {}
    for m in ("llm", "blend"):
        diff = per_user["test"][m]["ndcg@10"] - per_user["test"]["ranker"]["ndcg@10"]
        ci[m] = (float(diff.mean()), *paired_ci(diff))
    hits = [c for c in cases.test if c.hit]

    def ms(c: Case, name: str) -> float:
        return cache.get("test", c.user, name)["ms"]  # type: ignore[index]

    latency = {}
    for v in variants:
        totals = [sum(ms(c, n) for n in SCHEMES[VARIANTS[v][0]]) for c in hits]
        latency[v] = (float(np.median(totals)), float(np.percentile(totals, 95)))
    tokens = [cache.get("test", c.user, "fwd")["tokens"] for c in hits]  # type: ignore[index]
    return ModelOutcome(
        model,
        prompt_ref,
        variant,
        weight,
        curves["valid"],
        curves["test"],
        means["test"],
        means["valid"],
        ci,
        latency,
        float(statistics.median(tokens)),
        {"valid": sum(c.hit for c in cases.valid), "test": len(hits)},
        sorted({int(r.get("threads", 0)) for r in cache.rows.values() if r["split"] == "test"}),
        {"valid": len(cases.valid), "test": len(cases.test)},
        random_order_ndcg(cases.test),
        sum(r["ms"] for r in cache.rows.values() if r["pass"] in passes) / 60e3,
    )


def plot_curves(outcomes: list[ModelOutcome], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(outcomes), figsize=(5.5 * len(outcomes), 4), squeeze=False)
    for ax, o in zip(axes[0], outcomes, strict=True):
        for j, v in enumerate(o.valid_curve):
            chosen = v == o.variant
            color = f"C{j}"
            ax.plot(
                WEIGHTS,
                [o.valid_curve[v][w] for w in WEIGHTS],
                ":",
                color=color,
                marker="o",
                ms=3,
                lw=1.6 if chosen else 0.8,
                label=f"valid, {v}",
            )
            ax.plot(
                WEIGHTS,
                [o.test_curve[v][w] for w in WEIGHTS],
                "-",
                color=color,
                marker="s",
                ms=3,
                lw=1.6 if chosen else 0.8,
                label=f"test, {v}",
            )
        ax.axvline(o.weight, color="grey", lw=0.8)
        ax.set_title(f"{o.model}: NDCG@10 vs LLM weight w")
        ax.set_xlabel("w (0 = ranker, 1 = LLM order)")
        ax.set_ylabel("NDCG@10")
        ax.legend(fontsize=6)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


__all__ = [
    "VARIANTS",
    "Case",
    "CaseSet",
    "ItemText",
    "ModelOutcome",
    "PassCache",
    "evaluate_model",
    "load_or_build_cases",
    "plot_curves",
    "score_passes",
]
