"""LLM re-rank of the ranker's top 20 on LOO-full, per embedded model, honestly measured.

Run from the repository root:  marquee bench llm_rerank
Writes bench/results/llm_rerank.json, the llm_rerank section of bench/RESULTS.md and
bench/results/llm_rerank.png (NDCG@10 against the LLM weight w, validation and test).

The ranking stage is the ranking report's (`evaluation.llm_rerank_eval` says how);
the position-bias variant and the blend weight w are chosen on the ranker's held-out
validation users only, then the test figure is read once. Top-20 lists and every LLM
pass are cached under artifacts/llm_rerank/, so a rerun re-reads them in seconds.
"""

from __future__ import annotations

import argparse
import hashlib
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from rich.progress import Progress

from app.settings import get_settings
from catalog.tables import load_catalog
from evaluation.bench_io import BENCH_DIR, update_results_md, write_result
from evaluation.llm_rerank_eval import (
    VARIANTS,
    CaseSet,
    ItemText,
    K,
    ModelOutcome,
    PassCache,
    cache_dir,
    evaluate_model,
    load_or_build_cases,
    plot_curves,
    score_passes,
)
from llm.client import Budget, client_from_settings
from llm.prompts import PromptRegistry
from llm.rerank import LOCAL_PROMPT, PASSES, SCHEMES, LLMReranker

COMMAND = "marquee bench llm_rerank"
MODELS = ("local/smollm2", "local/gemma3")
PLOT = BENCH_DIR / "results" / "llm_rerank.png"
METHOD_NAMES = {"ranker": "ranker alone", "llm": "LLM order alone (w = 1)", "blend": "blend"}
Outcomes = list[tuple[ModelOutcome, list[float]]]  # per model: the outcome, timed rerank() calls


def _r(x: float) -> float:
    return round(float(x), 4)


def sample_users(cases: CaseSet, n: int | None, seed: int = 0) -> CaseSet:
    """The same fixed seeded subset of test users for every method and model."""
    if n is None or n >= len(cases.test):
        return cases
    keep = set(np.random.default_rng(seed).choice(len(cases.test), n, replace=False).tolist())
    test = [c for i, c in enumerate(cases.test) if i in keep]
    return CaseSet(
        cases.dataset, cases.catalog_version, cases.valid, test, cases.ranker_metrics, cases.n_hold
    )


def end_to_end_ms(reranker: LLMReranker, cases: CaseSet, text: ItemText, n: int) -> list[float]:
    """`rerank()` itself, as the feed calls it, on the first n test requests with a hit."""
    out = []
    for case in [c for c in cases.test if c.hit][:n]:
        result = reranker.rerank(
            text.history(case.history), None, text.candidates(case), Budget.of(120_000)
        )
        if result.skipped is None:
            out.append(result.latency_ms)
    return out


def pass_cache(settings, dataset: str, model: str, reranker: LLMReranker) -> PassCache:
    """One file per model and prompt text: editing the prompt starts a fresh cache."""
    prompt = reranker.prompts.get(LOCAL_PROMPT)
    digest = hashlib.blake2b(prompt.source.encode(), digest_size=4).hexdigest()
    name = f"passes-{model.replace('/', '-')}-{prompt.ref}-{digest}-h{reranker.history_len}"
    return PassCache(cache_dir(settings, dataset) / f"{name}.jsonl")


def run_model(
    model: str, cases: CaseSet, text: ItemText, settings, args, progress: Progress
) -> tuple[ModelOutcome, list[float]] | None:
    registry = PromptRegistry(Path(settings.prompts_dir))
    update = {"llm_model": model, **({"llm_threads": args.threads} if args.threads else {})}
    client = client_from_settings(settings.model_copy(update=update))
    reranker = LLMReranker(client, registry, weight=1.0, calibrate=True)
    cache = pass_cache(settings, cases.dataset, model, reranker)
    split_cases = {"valid": cases.valid, "test": cases.test}
    passes = args.passes.split(",")
    hits = sum(c.hit for items in split_cases.values() for c in items)
    task = progress.add_task(f"{model}: LLM passes", total=hits * len(passes))
    score_passes(reranker, split_cases, text, cache, passes, lambda: progress.advance(task))
    progress.remove_task(task)
    if args.score_only:
        return None
    outcome = evaluate_model(model, registry.get(LOCAL_PROMPT).ref, cases, cache, passes)
    scheme, calibrate = VARIANTS[outcome.variant]
    timed = LLMReranker(
        client, registry, weight=max(outcome.weight, 0.5), scheme=scheme, calibrate=calibrate
    )
    timed.label_prior(K)  # computed once per list length in a service, not per request
    return outcome, end_to_end_ms(timed, cases, text, args.e2e)


def metrics_of(outcomes: Outcomes, cases: CaseSet) -> dict:
    m: dict[str, float | int] = {
        "valid.users": len(cases.valid),
        "k": K,
        "ranking_stage.ndcg@10": _r(cases.ranker_metrics["ndcg@10"]),
    }
    for o, e2e in outcomes:
        s = o.model.removeprefix("local/")
        m[f"{s}.test.users"] = o.users["test"]
        m[f"{s}.random_top20.ndcg@10"] = _r(o.random_ndcg10)
        m[f"{s}.weight"] = o.weight
        m[f"{s}.test_llm_requests"] = o.n_llm_requests["test"]
        m[f"{s}.valid_llm_requests"] = o.n_llm_requests["valid"]
        for method, values in o.test.items():
            for metric, v in values.items():
                m[f"{s}.{method}.{metric}"] = _r(v)
        for method, values in o.valid.items():
            m[f"{s}.valid.{method}.ndcg@10"] = _r(values["ndcg@10"])
        for method, (d, lo, hi) in o.ci.items():
            m[f"{s}.{method}.ndcg@10_diff"] = _r(d)
            m[f"{s}.{method}.ndcg@10_diff_lo"] = _r(lo)
            m[f"{s}.{method}.ndcg@10_diff_hi"] = _r(hi)
        p50, p95 = o.latency_ms[o.variant]
        m[f"{s}.latency_p50_ms"] = round(p50)
        m[f"{s}.latency_p95_ms"] = round(p95)
        m[f"{s}.prompt_tokens_p50"] = round(o.tokens_p50)
        m[f"{s}.pass_minutes"] = round(o.pass_minutes, 1)
        if e2e:
            m[f"{s}.rerank_call_p50_ms"] = round(statistics.median(e2e))
            m[f"{s}.rerank_call_p95_ms"] = round(float(np.percentile(e2e, 95)))
            m[f"{s}.rerank_calls"] = len(e2e)
    return m


def section_of(outcomes: Outcomes, cases: CaseSet, m: dict, args, minutes) -> str:
    """The llm_rerank section of RESULTS.md: setup, results per method, the variants,
    latency, and the default each model gets from them."""
    return "\n\n".join(
        [
            f"## LLM re-rank of the ranker's top {K} (LOO-full, {cases.dataset})",
            _command_line(outcomes, m, args, minutes),
            _setup(outcomes, cases, m),
            _method_table(outcomes, m),
            f"Reference: the top {K} shuffled at random scores NDCG@10 "
            + ", ".join(
                f"{m[o.model.removeprefix('local/') + '.random_top20.ndcg@10']} "
                f"({o.model}'s test users)"
                for o, _ in outcomes
            )
            + " (expected). 95% CI: paired bootstrap over test users, 2000 draws.",
            "### Variants (position-bias mitigation)",
            _variant_table(outcomes),
            _latency(outcomes, m, args),
            "Default that follows: "
            + "; ".join(_defaults(outcomes, m))
            + ". `llm.rerank.MEASURED` "
            "holds these; the LLM re-rank stays off for the embedded models unless switched on.",
        ]
    )


def _command_line(outcomes: Outcomes, m: dict, args, minutes: float) -> str:
    return (
        f"Command: `{COMMAND}`{' ' + ' '.join(args.extra) if args.extra else ''} "
        f"(date {time.strftime('%Y-%m-%d')}; this run took {minutes:.0f} min, reading LLM "
        "passes already in the pass cache; the passes themselves took "
        + ", ".join(
            f"{m[o.model.removeprefix('local/') + '.pass_minutes']} min ({o.model})"
            for o, _ in outcomes
        )
        + "). Machine: 2 CPU cores shared with other jobs' test runs (load average 5-10 "
        "during the passes), so latencies are noisy and pessimistic."
    )


def _setup(outcomes: Outcomes, cases: CaseSet, m: dict) -> str:
    """How the ranking stage, the users, the prompt, the variants and the blend were set up."""

    def who(o: ModelOutcome) -> str:
        n = o.users["test"]
        label = f"all {n}" if n == len(cases.test) else f"{n} (a fixed seeded sample, seed 0)"
        return f"{o.model}: {label} test users, {o.n_llm_requests['test']} with the target in it"

    users = "; ".join(who(o) for o, _ in outcomes)
    schemes = {VARIANTS[v][0] for o, _ in outcomes for v in o.valid_curve}
    measured = [s for s in SCHEMES if s in schemes]
    skipped = [s for s in SCHEMES if s not in schemes]
    unmeasured = (
        f"; {', '.join(skipped)} not measured in this run (see `--passes`)" if skipped else ""
    )
    return (
        "Ranking stage computed as `marquee bench ranking_quality` does (`prepare_stages` + "
        f"`run_ranker`); this run's ranker: test NDCG@10 {m['ranking_stage.ndcg@10']} (the "
        "ranker is retrained per run, so it differs slightly from that section). "
        f"Validation = the ranker's {len(cases.valid)} "
        f"held-out users (validation items; {outcomes[0][0].n_llm_requests['valid']} with the "
        f"target in the top {K}); test: {users}. Only those requests go to the LLM: a target "
        f"outside the top {K} scores 0 @10 under any re-order, "
        "so metrics are exact and averaged over all users. Verbalizer prompt "
        f"`{outcomes[0][0].prompt_ref}`: last 10 films (title, year, genres) and the 20 "
        "candidates labelled A-T, one forward pass per order, the letters' next-token "
        "log-probabilities renormalised over the labels. Variants: orders averaged "
        f"({'; '.join(measured)}), optionally minus each label's prior (content-free "
        f"prompt, titles 'N/A'){unmeasured}. Blend: `(1-w)` ranker rank + `w` LLM "
        "rank, both normalised to [0, 1]; variant and w (0, 0.1, .., 1) chosen on "
        "validation NDCG@10 (ties: smaller w)."
    )


def _method_table(outcomes: Outcomes, m: dict) -> str:
    """Ranker alone, LLM order alone and the blend, per model, with the test CI."""
    rows = [
        "| model | method | variant, w (chosen on validation) | valid NDCG@10 | test NDCG@10 "
        "| test Recall@10 | test MRR@10 | test NDCG@10 vs ranker (95% CI) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for o, _ in outcomes:
        s = o.model.removeprefix("local/")
        for method in ("ranker", "llm", "blend"):
            w = {"ranker": 0.0, "llm": 1.0, "blend": o.weight}[method]
            diff = "-"
            if method != "ranker":
                key = f"{s}.{method}.ndcg@10_diff"
                diff = f"{m[key]:+} ({m[key + '_lo']:+} .. {m[key + '_hi']:+})"
            rows.append(
                f"| {o.model} | {METHOD_NAMES[method]} | "
                f"{'-' if method == 'ranker' else o.variant}, w = {w} | "
                f"{m[f'{s}.valid.{method}.ndcg@10']} | {m[f'{s}.{method}.ndcg@10']} | "
                f"{m[f'{s}.{method}.recall@10']} | {m[f'{s}.{method}.mrr@10']} | {diff} |"
            )
    return "\n".join(rows)


def _variant_table(outcomes: Outcomes) -> str:
    """Every measured position-bias variant: its passes, validation curve and latency."""
    rows = [
        "| model | variant | passes | valid NDCG@10, w = 1 | best valid NDCG@10 (w) "
        "| test NDCG@10, w = 1 | p50 ms while scored | p95 ms while scored |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for o, _ in outcomes:
        for v in o.valid_curve:
            scheme, calibrate = VARIANTS[v]
            best_w = max(o.valid_curve[v], key=lambda w, v=v: (o.valid_curve[v][w], -w))
            p50, p95 = o.latency_ms[v]
            passes = " + ".join(SCHEMES[scheme]) + (" (+ prior, once)" if calibrate else "")
            rows.append(
                f"| {o.model} | {v} | {passes} | {_r(o.valid_curve[v][1.0])} | "
                f"{_r(o.valid_curve[v][best_w])} ({best_w}) | {_r(o.test_curve[v][1.0])} | "
                f"{p50:.0f} | {p95:.0f} |"
            )
    return "\n".join(rows)


def _latency(outcomes: Outcomes, m: dict, args) -> str:
    """One re-rank call end to end, and the same passes timed while they were scored."""
    calls, during = [], []
    for o, e2e in outcomes:
        s = o.model.removeprefix("local/")
        if e2e:
            calls.append(
                f"{o.model}: p50 {m[f'{s}.rerank_call_p50_ms']} ms, p95 "
                f"{m[f'{s}.rerank_call_p95_ms']} ms ({o.variant}, {m[f'{s}.rerank_calls']} "
                f"test requests, {m[f'{s}.prompt_tokens_p50']} prompt tokens per pass, p50)"
            )
        during.append(
            f"{o.model}: p50 {m[f'{s}.latency_p50_ms']} ms, p95 {m[f'{s}.latency_p95_ms']} ms "
            f"(threads {'/'.join(map(str, o.threads))})"
        )
    return (
        f"Latency of one re-rank call (`LLMReranker.rerank` end to end, llama-cpp threads "
        f"{args.e2e_threads}, label prior already computed, measured after the passes): "
        + ("; ".join(calls) or "not timed (--e2e 0)")
        + ". The same passes timed while they were scored, under the load above (the "
        "chosen variant's passes summed over all test requests sent to the LLM): "
        + "; ".join(during)
        + ". Either way this is seconds per request, against a 5 s chat "
        "budget."
    )


def _defaults(outcomes: Outcomes, m: dict) -> list[str]:
    """On only where validation chose a weight and the test CI shows the blend helps."""
    defaults = []
    for o, _ in outcomes:
        s = o.model.removeprefix("local/")
        if o.weight == 0:
            defaults.append(f"{o.model}: off (the best validation w is 0)")
        elif m[f"{s}.blend.ndcg@10_diff_lo"] > 0:
            defaults.append(f"{o.model}: on at w = {o.weight} ({o.variant})")
        else:
            defaults.append(
                f"{o.model}: off (validation chose w = {o.weight}, but on test the blend's "
                f"NDCG@10 change is {m[f'{s}.blend.ndcg@10_diff']:+}, CI "
                f"{m[f'{s}.blend.ndcg@10_diff_lo']:+} .. {m[f'{s}.blend.ndcg@10_diff_hi']:+}: "
                "not shown to help)"
            )
    return defaults


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dataset", default="ml-latest-small")
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--sample", type=int, default=None, help="test users (seeded sample)")
    parser.add_argument("--sample-models", default="", help="models sampled (default: all)")
    parser.add_argument("--e2e", type=int, default=30, help="timed rerank() calls per model")
    parser.add_argument("--rebuild", action="store_true", help="recompute the ranking stage")
    parser.add_argument("--no-write", action="store_true", help="print only")
    parser.add_argument("--score-only", action="store_true", help="fill the pass cache, no report")
    parser.add_argument("--threads", type=int, default=None, help="llama-cpp threads per model")
    parser.add_argument(
        "--passes", default=",".join(PASSES), help=f"orders to score, of {','.join(PASSES)}"
    )
    args = parser.parse_args(argv)
    args.extra = [a for a in (argv or []) if a != "--no-write"]
    settings = get_settings()
    args.e2e_threads = args.threads or settings.llm_threads
    start = time.perf_counter()
    with Progress() as progress:
        cases = load_or_build_cases(args.dataset, settings, progress, rebuild=args.rebuild)
        text = ItemText(load_catalog(args.dataset, settings))
        sampled = set(filter(None, args.sample_models.split(","))) or set(args.models.split(","))
        runs = [
            run_model(
                model,
                sample_users(cases, args.sample if model in sampled else None),
                text,
                settings,
                args,
                progress,
            )
            for model in args.models.split(",")
            if model
        ]
    outcomes = [r for r in runs if r is not None]
    if not outcomes:
        return
    minutes = (time.perf_counter() - start) / 60
    metrics = metrics_of(outcomes, cases)
    section = section_of(outcomes, cases, metrics, args, minutes)
    if not args.no_write:
        write_result("llm_rerank", metrics, COMMAND, args.dataset)
        update_results_md("llm_rerank", section)
        plot_curves([o for o, _ in outcomes], PLOT)
    print(section)


if __name__ == "__main__":
    main(sys.argv[1:])
