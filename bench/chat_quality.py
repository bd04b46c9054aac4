"""Chat quality and latency: 32 mood requests labelled through TMDB keywords.

Run from the repository root:  marquee bench chat_quality [--models smollm2,gemma3]
Writes bench/results/chat_quality.json and the chat_quality section of bench/RESULTS.md.

Precision@10, all methods over the same items (the ml-latest-small films with TMDB
keywords) in the same run:
- baseline: plain text-embedding search of the message (MiniLM, cosine);
- hybrid: the same plus BM25 over title/overview/keywords/tags, rank-fused (RRF);
- chat, LLM off: the deterministic intent parser's query (text + constraints), then
  hybrid search within the constraints (what `POST /v1/chat` retrieves for the request);
- chat, LLM on: the same with the embedded model's intent proposal merged in (implied
  genres lift matching titles), per local model.
Latency: whole chat answers from the service (ml-latest-small bundle), one catalog user
per request: LLM off end to end; with the default local model, time to the first
streamed reply token and to the full answer with explanations.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from rich.progress import track

from app.chat import PREFER_WEIGHT, Chat, ChatLLM, SessionStore
from app.chat_retrieval import QUALITY_WEIGHT
from app.settings import get_settings
from catalog.search import TitleIndex
from catalog.tables import load_catalog
from evaluation.bench_io import update_results_md, write_result
from evaluation.mood_eval import MOODS, VALIDATION_MOODS, labelled_items, precision_at
from evaluation.title_match import mean_rating, title_only_share
from llm.client import client_from_settings
from llm.prompts import PromptRegistry
from ranking.popularity_prior import RecentPopularity
from ranking.quality_prior import QualityPrior
from retrieval.pipeline import text_vectors
from retrieval.text_encoder import encode
from retrieval.text_search import TextSearch

COMMAND = "marquee bench chat_quality"
PREFER_GRID = (0.0, 0.05, 0.1, 0.25, 0.5, 1.0)
QUALITY_GRID = (0.0, 0.05, 0.1, 0.15, 0.25, 0.5)
# The prior's weight: the largest whose validation precision@10 is within this of the
# best weight's (better-liked picks may cost one relevant pick in ten requests, no more).
QUALITY_TOLERANCE = 0.01


def _p(values: list[float], q: float) -> float:
    return round(float(np.percentile(values, q)), 1) if values else float("nan")


@dataclass(frozen=True)
class Methods:
    """The compared retrieval methods, each over the labelled items only."""

    search: TextSearch
    allowed: set[int]

    def baseline(self, message: str, k: int) -> list[int]:
        return [i for i, _ in self.search.search(message, k, lexical=False, allowed=self.allowed)]

    def hybrid(self, message: str, k: int) -> list[int]:
        return [i for i, _ in self.search.search(message, k, allowed=self.allowed)]

    def chat(
        self, chat: Chat, use_llm: bool, timings: list[float], queries: dict | None = None
    ) -> Callable[[str, int], list[int]]:
        """Chat's request retrieval (understand + request ranking), timed per request."""

        def retrieve(message: str, k: int) -> list[int]:
            start = time.perf_counter()
            if queries is not None and message in queries:  # the LLM's proposal, asked once
                query = queries[message]
            else:
                query, _ = chat.understand(message, None, use_llm=use_llm)
            fused, _ = chat.request_ranking(None, query, allowed=self.allowed)
            hits = sorted(fused, key=lambda i: (-fused[i], i))[:k]
            if len(hits) < k:  # constraints too tight for the labelled set: relax, keep order
                hits += [i for i in self.hybrid(query.text, k) if i not in hits][: k - len(hits)]
            timings.append((time.perf_counter() - start) * 1e3)
            return hits

        return retrieve


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dataset", default="ml-latest-small")
    parser.add_argument("--models", default="smollm2,gemma3", help="local models to compare")
    parser.add_argument(
        "--no-latency", dest="latency", action="store_false", help="quality only (no bundle)"
    )
    args = parser.parse_args(argv)
    settings = get_settings()
    catalog = load_catalog(args.dataset, settings)
    search = TextSearch(catalog.items, text_vectors(catalog, settings), encode)
    judged = labelled_items(catalog.items)
    methods = Methods(search, set(judged["item_id"].astype(int)))
    titles = TitleIndex(catalog.items)
    prompts = PromptRegistry(settings.prompts_dir)
    search.search("warm-up", 1)

    sessions = SessionStore(None, "bench")
    prior = QualityPrior.fit(catalog.events, search.item_ids)
    # the service's data clock at start-up: the catalog's last event
    popular = RecentPopularity.fit(catalog.events, catalog.events["timestamp"].max() + 1)
    rules_only = Chat(search, titles, sessions, prior=prior, popular=popular)
    off_ms: list[float] = []
    metrics: dict[str, float | int | str] = {
        **_pick_quality("baseline", methods.baseline, search, prior),
        **_quality_weight(rules_only, methods, judged, search, prior),
        "requests": len(MOODS),
        "valid_requests": len(VALIDATION_MOODS),
        "items": len(judged),
        "default_prefer_weight": PREFER_WEIGHT,
        "baseline.precision@10": round(precision_at(methods.baseline, judged)["precision@10"], 4),
        "hybrid.precision@10": round(precision_at(methods.hybrid, judged)["precision@10"], 4),
        "chat_llm_off.precision@10": round(
            precision_at(methods.chat(rules_only, False, off_ms), judged)["precision@10"], 4
        ),
        "chat_llm_off.understand_search_p50_ms": _p(off_ms, 50),
    }
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    for model in models:
        client = client_from_settings(settings.model_copy(update={"llm_model": f"local/{model}"}))
        client.warm_up()
        llm = ChatLLM(client, prompts)
        chat = Chat(search, titles, sessions, llm, prior=prior, popular=popular)
        chat.warm_up()
        metrics.update(_model_metrics(model, chat, methods, judged))
    if args.latency:
        metrics.update(endpoint_latency(settings))
    write_result("chat_quality", metrics, COMMAND, args.dataset)
    section = _section(metrics, models)
    update_results_md("chat_quality", section)
    print(section)


def _picks(retrieve: Callable[[str, int], list[int]], k: int = 10) -> list[tuple[str, list]]:
    return [(request.message, list(retrieve(request.message, k))[:k]) for request in MOODS]


def _pick_quality(name: str, retrieve, search: TextSearch, prior: QualityPrior) -> dict:
    """The test requests' top 10: the share matched only through a title word, and the
    picks' mean shrunk rating."""
    picks = _picks(retrieve)
    return {
        f"{name}.title_only_share": round(title_only_share(search, picks), 4),
        f"{name}.mean_shrunk_rating": round(mean_rating(prior, [p for _, p in picks]), 4),
    }


def _quality_weight(chat: Chat, methods: Methods, judged, search, prior) -> dict:
    """The quality prior's weight for chat with the LLM off, chosen on the validation
    requests (the largest within QUALITY_TOLERANCE of the best precision@10), and the
    test requests' pick quality at the code's default and without the prior."""
    valid = {}
    for weight in QUALITY_GRID:
        chat.quality_weight = weight
        retrieve = methods.chat(chat, False, [])
        valid[weight] = precision_at(retrieve, judged, requests=VALIDATION_MOODS)["precision@10"]
    top = max(valid.values())
    best = max(w for w in QUALITY_GRID if valid[w] >= top - QUALITY_TOLERANCE - 1e-9)
    out: dict = {f"quality_grid.valid_precision@10.w{w}": round(v, 4) for w, v in valid.items()}
    out["chosen_quality_weight"] = best
    out["default_quality_weight"] = QUALITY_WEIGHT
    chat.quality_weight = 0.0
    out.update(_pick_quality("chat_llm_off_no_prior", methods.chat(chat, False, []), search, prior))
    out["chat_llm_off_no_prior.precision@10"] = round(
        precision_at(methods.chat(chat, False, []), judged)["precision@10"], 4
    )
    chat.quality_weight = QUALITY_WEIGHT
    out.update(_pick_quality("chat_llm_off", methods.chat(chat, False, []), search, prior))
    return out


def _model_metrics(model: str, chat: Chat, methods: Methods, judged) -> dict[str, float]:
    """Chat with one model's intent proposals: the implied-genre lift chosen on the
    validation requests, then precision on the test requests at that lift and the default."""
    on_ms: list[float] = []
    queries = {}
    for request in (*VALIDATION_MOODS, *MOODS):
        start = time.perf_counter()
        queries[request.message] = chat.understand(request.message, None)[0]
        on_ms.append((time.perf_counter() - start) * 1e3)
    valid = {}
    for weight in PREFER_GRID:  # the implied-genre lift, chosen on validation requests
        chat.prefer_weight = weight
        valid[weight] = precision_at(
            methods.chat(chat, True, [], queries), judged, requests=VALIDATION_MOODS
        )["precision@10"]
    best = max(PREFER_GRID, key=lambda w: (round(valid[w], 6), -w))
    chat.prefer_weight = best
    score = precision_at(methods.chat(chat, True, [], queries), judged)["precision@10"]
    out: dict[str, float] = {
        f"chat_llm_{model}.precision@10": round(score, 4),
        f"chat_llm_{model}.prefer_weight": best,
        f"chat_llm_{model}.valid_precision@10": round(valid[best], 4),
        f"chat_llm_{model}.valid_precision@10_no_lift": round(valid[0.0], 4),
    }
    chat.prefer_weight = PREFER_WEIGHT
    out[f"chat_llm_{model}.precision@10_default_lift"] = round(
        precision_at(methods.chat(chat, True, [], queries), judged)["precision@10"], 4
    )
    out[f"chat_llm_{model}.understand_p50_ms"] = _p(on_ms, 50)
    return out


def endpoint_latency(settings) -> dict[str, float]:
    """Whole chat answers as `POST /v1/chat` computes them, one catalog user per request."""
    from app.service import Service, single_threaded_math

    single_threaded_math()
    service = Service.from_settings(settings)
    service.warm_llm()
    chat = service.chat()
    users = sorted(service.catalog.events["user_id"].unique().tolist())
    funnel = service.funnel
    chat.reply(funnel, service.user_state(users[0])[0], "warm-up", None, use_llm=False)
    off, first_token, full, phrased, shown, llm_replies = [], [], [], 0, 0, 0
    for request, user in zip(MOODS, users[1:], strict=False):
        state = service.user_state(user)[0]
        start = time.perf_counter()
        chat.reply(funnel, state, request.message, None, use_llm=False)
        off.append((time.perf_counter() - start) * 1e3)
    pairs = list(zip(MOODS, users[1:], strict=False))
    for request, user in track(pairs, description="chat with the local LLM"):
        state = service.user_state(user)[0]
        start, streamed = time.perf_counter(), False
        for event in chat.stream(funnel, state, request.message, None):
            if event["event"] == "token" and not streamed:
                first_token.append((time.perf_counter() - start) * 1e3)
                streamed = True
            elif event["event"] == "items":
                shown += len(event["data"])
            elif event["event"] == "explanations":
                phrased += len(event["data"])
            elif event["event"] == "done":
                llm_replies += event["data"]["reply_source"] == "llm"
        full.append((time.perf_counter() - start) * 1e3)
    return {
        "model": service.llm.model,
        "reply_llm_off.p50_ms": _p(off, 50),
        "reply_llm_off.p95_ms": _p(off, 95),
        "reply_llm.first_token_p50_ms": _p(first_token, 50),
        "reply_llm.first_token_p95_ms": _p(first_token, 95),
        "reply_llm.full_p50_ms": _p(full, 50),
        "reply_llm.full_p95_ms": _p(full, 95),
        "reply_llm.streamed_replies": len(first_token),
        "reply_llm.llm_replies_kept": llm_replies,
        "reply_llm.reasons_llm_phrased": round(phrased / max(shown, 1), 3),
        "reply_llm.answers": len(full),
        "budget_ms": settings.chat_budget_ms,
    }


def _section(m: dict, models: list[str]) -> str:
    def judged(key: str) -> str:
        return f"{m[f'{key}.title_only_share']} | {m[f'{key}.mean_shrunk_rating']}"

    rows = [
        f"| text-embedding search of the message (baseline) | {m['baseline.precision@10']} | "
        f"{judged('baseline')} |",
        f"| + BM25, rank-fused | {m['hybrid.precision@10']} | | |",
        f"| chat, LLM off, without the quality prior | "
        f"{m['chat_llm_off_no_prior.precision@10']} | {judged('chat_llm_off_no_prior')} |",
        f"| chat, LLM off: intent parser + hybrid within constraints + quality prior "
        f"{m['default_quality_weight']} | {m['chat_llm_off.precision@10']} | "
        f"{judged('chat_llm_off')} |",
        *(
            f"| chat, local LLM `{model}` on: + implied genres, lift "
            f"{m[f'chat_llm_{model}.prefer_weight']} (chosen on validation) | "
            f"{m[f'chat_llm_{model}.precision@10']} | | |"
            for model in models
        ),
    ]
    quality_grid = ", ".join(
        f"{w}: {m[f'quality_grid.valid_precision@10.w{w}']}" for w in QUALITY_GRID
    )
    tuning = " ".join(
        f"`{model}`: validation precision@10 {m[f'chat_llm_{model}.valid_precision@10']} at "
        f"lift {m[f'chat_llm_{model}.prefer_weight']} vs "
        f"{m[f'chat_llm_{model}.valid_precision@10_no_lift']} without; test at the code's "
        f"default lift {m['default_prefer_weight']}: "
        f"{m[f'chat_llm_{model}.precision@10_default_lift']}."
        for model in models
    )
    return "\n\n".join(
        [
            "## Chat: mood requests (quality and latency)",
            f"Command: `{COMMAND}`. {m['requests']} mood requests (`evaluation/mood_eval.py`), "
            "relevance = the film's TMDB keywords include the request's theme; "
            f"{m['items']} ml-latest-small films with TMDB keywords searched and judged. The "
            "labels are keywords, which favours lexical matching somewhat; messages avoid "
            "copying them where a natural phrasing exists.",
            "| method | precision@10 | picks matched only by a title word | mean shrunk "
            "rating of picks |\n|---|---|---|---|\n" + "\n".join(rows),
            "Title word only: the pick's title shares a word with the request and none of "
            "its genres, tagline, overview, keywords or tags does (`evaluation/title_match.py`)"
            "; shrunk rating: the film's mean rating shrunk toward the catalog mean by 10 "
            "pseudo-ratings (`ranking/quality_prior.py`). The quality prior's weight was "
            f"chosen on the validation requests (precision@10 by weight: {quality_grid}; "
            f"chosen {m['chosen_quality_weight']}, the code's default "
            f"{m['default_quality_weight']}).",
            "The lift of genres the LLM says a request implies (`prefer_genres`) is chosen on "
            f"{m['valid_requests']} other mood requests labelled the same way "
            f"(`VALIDATION_MOODS`), grid {list(PREFER_GRID)}. " + tuning,
            *(_latency(m) if "reply_llm.answers" in m else ["(Latency not measured in this run.)"]),
            "Understanding + search alone (parse and hybrid search), p50: LLM off "
            f"{m['chat_llm_off.understand_search_p50_ms']} ms; understanding with the LLM's "
            "proposal (parse + genre scoring), p50: "
            + (
                "; ".join(
                    f"`{model}` {m[f'chat_llm_{model}.understand_p50_ms']} ms" for model in models
                )
                or "not measured"
            )
            + ".",
        ]
    )


def _latency(m: dict) -> list[str]:
    return [
        "Whole answers from the service (ml-latest-small bundle; one catalog user per "
        f"request, {m['reply_llm.answers']} requests; 2 CPU cores):\n\n"
        "| path | p50 | p95 | target (p50) |\n|---|---|---|---|\n"
        f"| LLM off, whole answer | {m['reply_llm_off.p50_ms']} ms | "
        f"{m['reply_llm_off.p95_ms']} ms | <= 300 ms |\n"
        f"| `{m['model']}`: first streamed reply token | "
        f"{m['reply_llm.first_token_p50_ms']} ms | {m['reply_llm.first_token_p95_ms']} ms | "
        "<= 2000 ms |\n"
        f"| `{m['model']}`: full answer with explanations | {m['reply_llm.full_p50_ms']} ms | "
        f"{m['reply_llm.full_p95_ms']} ms | <= 6000 ms |",
        f"With the local model, {m['reply_llm.streamed_replies']} of {m['reply_llm.answers']} "
        f"answers streamed a reply, {m['reply_llm.llm_replies_kept']} of them passed the "
        "grounding check (the rest were replaced by the template reply), and a share of "
        f"{m['reply_llm.reasons_llm_phrased']} of the shown reasons were LLM-phrased within "
        f"the {m['budget_ms']} ms LLM budget (the rest keep their template reason).",
    ]


if __name__ == "__main__":
    main(sys.argv[1:])
