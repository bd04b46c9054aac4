"""Chat latency through HTTP: `marquee serve` with the embedded LLM on and off, real Redis.

Run from the repository root (Redis on 127.0.0.1:6379, a trained bundle present):
    marquee bench chat_latency
Writes bench/results/chat_latency.json and the chat_latency section of bench/RESULTS.md.

One server process (one worker, as a laptop runs it) answers, one request at a time:
- `POST /v1/chat` JSON with the LLM on (the default model, the product's settings);
- the same with `"llm": false` (rules only): the baseline of the same run;
- the streamed answer (`"stream": true`): time to the `items` event and to the first
  reply token, read off the socket as the events arrive;
- with `--pre-change`, a second server with LLM-phrased reasons switched back on
  (`MARQUEE_LLM_EXPLAIN=true`, the default before issue 13): the JSON answer again.

Every request's message is distinct (moods x genres x eras), so the LLM response cache
never answers, and each mode sees the same messages. Medians and p95 over the measured
requests after a warm-up; the client shares the 2 CPU cores with the server, and other
work on the machine shows up as noise (say so when quoting). The share of LLM replies
kept by the reply checks is read from the server's own `marquee_chat_replies` counter.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import sys
import time
import uuid

import numpy as np
import redis

from evaluation.bench_io import update_results_md, write_result
from evaluation.served import free_port, start_server

COMMAND = "marquee bench chat_latency"
API_KEY = "marquee-dev"
MOODS = ["light", "dark", "tense", "funny", "sad", "feel-good", "quirky", "epic", "cozy", "gritty"]
KINDS = ["comedy", "thriller", "drama", "adventure", "romance", "horror film", "western", "mystery"]
ERAS = ["", " from the 80s", " from the 90s", " from the 70s", ", something older"]


def messages(n: int, seed: int) -> list[str]:
    """n distinct requests, shuffled by `seed` (each mode gets its own slice)."""
    pool = [f"a {m} {k}{e}" for m in MOODS for k in KINDS for e in ERAS]
    rng = np.random.default_rng(seed)
    return [pool[i] for i in rng.permutation(len(pool))[:n]]


def _send(port: int, body: dict, timeout: float):
    """(connection, response, start time) of one chat request on a fresh connection."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    start = time.perf_counter()
    conn.request(
        "POST",
        "/v1/chat",
        body=json.dumps(body),
        headers={"X-API-Key": API_KEY, "Content-Type": "application/json"},
    )
    return conn, conn.getresponse(), start


def post(port: int, body: dict, timeout: float = 60.0) -> tuple[float, dict]:
    """(wall ms, JSON body) of one chat request on a fresh connection."""
    conn, response, start = _send(port, body, timeout)
    payload = json.loads(response.read())
    elapsed = (time.perf_counter() - start) * 1e3
    conn.close()
    if response.status != 200:
        raise SystemExit(f"chat answered {response.status}: {payload}")
    return elapsed, payload


def streamed(port: int, message: str, timeout: float = 60.0) -> dict[str, float]:
    """Milliseconds from sending to the `items` event, the first `token`, and the end."""
    conn, response, start = _send(port, {"message": message, "stream": True}, timeout)
    marks: dict[str, float] = {}
    while line := response.readline():
        name = line.decode().strip().removeprefix("event: ")
        if line.startswith(b"event: ") and name in ("items", "token", "reply", "done"):
            marks.setdefault(name, (time.perf_counter() - start) * 1e3)
    marks["end"] = (time.perf_counter() - start) * 1e3
    conn.close()
    return marks


def summary(values: list[float]) -> dict[str, float]:
    a = np.asarray(values, dtype=np.float64)
    return {
        "p50_ms": round(float(np.median(a)), 1),
        "p95_ms": round(float(np.percentile(a, 95)), 1),
        "n": len(a),
    }


def warm_up(port: int, deadline_s: float = 120.0) -> None:
    """Until the LLM answers (the server loads and warms the model in the background)."""
    stop = time.monotonic() + deadline_s
    out: dict = {}
    while time.monotonic() < stop:
        _, out = post(port, {"message": f"a movie {uuid.uuid4().hex[:6]}"})
        if "chat_reply" in out["prompts"]:  # the reply was asked of the LLM
            return
        time.sleep(1.0)
    raise SystemExit(f"the LLM did not answer within the warm-up; last answer: {out}")


def kept_share(port: int) -> dict[str, float]:
    """LLM replies kept / replaced, by the server's marquee_chat_replies counter."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", "/metrics")
    text = conn.getresponse().read().decode()
    conn.close()
    counts = {"kept": 0.0, "replaced": 0.0}
    for outcome, value in re.findall(
        r'^marquee_chat_replies_total\{check="[^"]*",outcome="(\w+)"\} ([0-9.e+]+)$', text, re.M
    ):
        counts[outcome] = counts.get(outcome, 0.0) + float(value)
    total = counts["kept"] + counts["replaced"]
    return {
        "replies_kept": int(counts["kept"]),
        "replies_replaced": int(counts["replaced"]),
        "kept_share": round(counts["kept"] / total, 3) if total else 0.0,
    }


def measure(port: int, n: int, seed: int) -> dict[str, float]:
    """JSON with the LLM on and off, and streamed, on one warm server."""
    warm_up(port)
    for m in messages(3, seed + 99):  # the first requests of each path pay one-off costs
        post(port, {"message": m, "llm": False})
        streamed(port, m + " please")
    out: dict[str, float] = {}
    on, steps = [], {"understand": [], "reply": [], "explain": []}
    for m in messages(n, seed):
        ms, body = post(port, {"message": m})
        on.append(ms)
        for step in steps:
            steps[step].append(float(body["timings_ms"].get(step, 0.0)))
    out.update({f"llm_on.{k}": v for k, v in summary(on).items()})
    out.update({f"llm_on.{s}_p50_ms": round(float(np.median(v)), 1) for s, v in steps.items()})
    off = [post(port, {"message": m, "llm": False})[0] for m in messages(n, seed)]
    out.update({f"llm_off.{k}": v for k, v in summary(off).items()})
    marks = [streamed(port, m) for m in messages(n, seed + 1)]
    for mark in ("items", "token", "end"):
        values = [x[mark] for x in marks if mark in x]
        name = "first_token" if mark == "token" else mark
        out[f"stream.{name}_p50_ms"] = round(float(np.median(values)), 1) if values else -1.0
    out["stream.with_tokens"] = sum("token" in x for x in marks)
    out.update(kept_share(port))
    return out


def serve_and_measure(args, prefix: str, env: dict[str, str], n: int) -> dict[str, float]:
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    port = free_port()
    try:
        server = start_server(port, prefix, 1, args.redis_url)
    finally:
        for k, v in saved.items():
            os.environ.pop(k) if v is None else os.environ.__setitem__(k, v)
    try:
        if env.get("MARQUEE_LLM_EXPLAIN") == "true":
            warm_up(port)
            return {
                f"pre_change.{k}": v
                for k, v in summary([post(port, {"message": m})[0] for m in messages(n, 7)]).items()
            }
        return measure(port, n, args.seed)
    finally:
        server.terminate()
        server.wait(timeout=30)


def section(m: dict, args) -> str:
    def row(label: str, key: str, target: str = "") -> str:
        p50, p95, n = (m[f"{key}.{x}"] for x in ("p50_ms", "p95_ms", "n"))
        return f"| {label} | {p50} | {p95} | {n} | {target} |"

    rows = [
        "| answer | p50 ms | p95 ms | requests | target |",
        "|---|---|---|---|---|",
        row("JSON, SmolLM2 on (reply; template reasons)", "llm_on", "p50 <= 2500"),
        row("JSON, LLM off (baseline)", "llm_off", "p50 <= 30"),
    ]
    if "pre_change.p50_ms" in m:
        rows.append(row("JSON, SmolLM2 on, LLM-phrased reasons (before issue 13)", "pre_change"))
    ratio = round(m["llm_on.p50_ms"] / max(m["llm_off.p50_ms"], 1e-9), 1)
    pre = ""
    if "pre_change.p50_ms" in m:
        speedup = round(m["pre_change.p50_ms"] / m["llm_on.p50_ms"], 2)
        pre = (
            f" The JSON answer with the LLM on is {speedup}x faster than with LLM-phrased "
            "reasons (the old default) in the same run."
        )
    return "\n\n".join(
        [
            "## Chat latency through HTTP (embedded SmolLM2, real Redis)",
            f"Command: `{COMMAND}`. One `marquee serve` worker on loopback, dataset "
            f"{args.dataset}, one request at a time, every message distinct (no LLM cache "
            "hits); the client shares the 2 cores with the server and with other work on the "
            "machine (noisy).",
            "\n".join(rows),
            f"Streamed: first event with the cards at p50 {m['stream.items_p50_ms']} ms, first "
            f"reply token at p50 {m['stream.first_token_p50_ms']} ms (target <= 1000; "
            f"{m['stream.with_tokens']} of {m['llm_off.n']} streams showed LLM tokens), whole "
            f"answer {m['stream.end_p50_ms']} ms. Steps of the JSON answer with the LLM on "
            f"(p50): understand {m['llm_on.understand_p50_ms']} ms, reply "
            f"{m['llm_on.reply_p50_ms']} ms, explanations {m['llm_on.explain_p50_ms']} ms. "
            f"LLM on / off p50: {ratio}x.{pre}",
            f"Reply checks (llm/reply_check.py): {m['replies_kept']} LLM replies kept, "
            f"{m['replies_replaced']} replaced by the template; kept share {m['kept_share']}.",
        ]
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=20, help="Measured requests per mode.")
    parser.add_argument("--dataset", default=os.environ.get("MARQUEE_DATASET", "ml-latest-small"))
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--pre-change", action="store_true", help="Also time LLM-phrased reasons (old default)."
    )
    args = parser.parse_args(argv)
    prefix = f"bench-{uuid.uuid4().hex[:8]}"
    env = {"MARQUEE_DATASET": args.dataset}
    try:
        metrics: dict[str, float | int] = {"requests": args.requests}
        metrics.update(serve_and_measure(args, prefix, env, args.requests))
        print(json.dumps(metrics), flush=True)
        if args.pre_change:
            old = {**env, "MARQUEE_LLM_EXPLAIN": "true"}
            metrics.update(serve_and_measure(args, prefix + "-pre", old, args.requests))
    finally:
        client = redis.Redis.from_url(args.redis_url)
        for pattern in (f"{prefix}:*", f"{prefix}-pre:*"):
            keys = list(client.scan_iter(match=pattern, count=1000))
            for lo in range(0, len(keys), 1000):
                client.delete(*keys[lo : lo + 1000])
    write_result("chat_latency", metrics, COMMAND, args.dataset)
    text = section(metrics, args)
    update_results_md("chat_latency", text)
    print(text)


if __name__ == "__main__":
    main(sys.argv[1:])
    sys.exit(0)
