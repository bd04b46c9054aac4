"""The LLM client against the real embedded model, real Redis, and a real
OpenAI-compatible server (llama-cpp's, the protocol vLLM serves) on loopback."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from app.settings import Settings
from llm.client import (
    Budget,
    BudgetSpent,
    CallRecord,
    LLMClient,
    LLMError,
    ResponseCache,
    _validated,
    client_from_settings,
)
from llm.local import LOCAL_MODELS, model_path

from .redis_util import delete_prefix, redis_or_missing, unique_prefix
from .requirements import import_or_missing

ASK = [{"role": "user", "content": "Name one funny movie for a rainy day, in one sentence."}]
GENRES = {
    "type": "object",
    "properties": {
        "genres": {
            "type": "array",
            "items": {"type": "string", "enum": ["Comedy", "Horror"]},
            "maxItems": 2,
        },
    },
    "required": ["genres"],
    "additionalProperties": False,
}


@pytest.fixture(scope="module")
def redis_prefix():
    client = redis_or_missing()
    prefix = unique_prefix()
    yield client, prefix
    delete_prefix(client, prefix)


@pytest.fixture(scope="module")
def local(redis_prefix, tmp_path_factory) -> tuple[LLMClient, list[CallRecord]]:
    client, prefix = redis_prefix
    records: list[CallRecord] = []
    settings = Settings(
        llm_model="local/smollm2",
        redis_prefix=prefix,
        cache_dir=tmp_path_factory.mktemp("llm-cache"),
    )
    llm = client_from_settings(settings, client, on_call=records.append)
    llm.warm_up()
    return llm, records


def test_local_completion_is_logged_and_cached_in_redis(local, redis_prefix) -> None:
    llm, records = local
    redis, prefix = redis_prefix
    first = llm.complete(ASK, prompt="test@v1", max_tokens=24)
    assert first.text and not first.cached and first.completion_tokens > 0
    assert redis.keys(f"{prefix}:llm-cache:*"), "the answer is stored in Redis"
    again = llm.complete(ASK, prompt="test@v1", max_tokens=24)
    assert again.cached and again.text == first.text
    assert again.latency_ms < first.latency_ms
    mine = [r for r in records if r.prompt == "test@v1"]
    assert [r.cached for r in mine[-2:]] == [False, True]
    assert all(r.model == "local/smollm2" and r.ok for r in mine)
    sampled = llm.complete(ASK, max_tokens=24, temperature=0.8)  # never served from cache
    assert not sampled.cached


def test_stream_gives_the_same_text_piece_by_piece(local) -> None:
    llm, _ = local
    whole = llm.complete(ASK, max_tokens=20, cache=False).text
    pieces = list(llm.stream(ASK, max_tokens=20, cache=False))
    assert len(pieces) > 3
    assert "".join(pieces).strip() == whole


def test_structured_output_is_grammar_constrained_and_validated(local) -> None:
    llm, _ = local
    out = llm.structured(
        [{"role": "user", "content": "Genres for a scary night, as JSON."}], GENRES, max_tokens=40
    )
    assert set(out.value) == {"genres"}
    assert set(out.value["genres"]) <= {"Comedy", "Horror"}


def test_validation_finds_json_in_noise_and_names_the_problem() -> None:
    assert _validated('```json\n{"genres": ["Comedy"]}\n```', GENRES)[0] == {"genres": ["Comedy"]}
    assert _validated('Sure! {"genres": []} hope that helps', GENRES)[0] == {"genres": []}
    value, problem = _validated('{"genres": ["Western"]}', GENRES)
    assert value is None and "genres/0" in problem
    assert _validated("no json here", GENRES) == (None, "no JSON object found")
    assert "not valid JSON" in _validated('{"genres": [}', GENRES)[1]


def test_a_spent_budget_stops_the_call_before_it_starts(local) -> None:
    llm, records = local
    before = len(records)
    with pytest.raises(BudgetSpent):
        llm.complete(ASK, budget=Budget.of(0), cache=False)
    assert len(records) == before + 1 and not records[-1].ok


def test_a_tight_budget_cuts_generation_short(local) -> None:
    llm, _ = local
    long_ask = [{"role": "user", "content": "Write a long story about a cat."}]
    start = time.perf_counter()
    with pytest.raises(LLMError):
        llm.complete(long_ask, max_tokens=400, cache=False, budget=Budget.of(300))
    assert time.perf_counter() - start < 2.0  # 400 tokens would take several seconds


def test_scoring_waits_for_a_busy_model_only_as_long_as_its_budget(local) -> None:
    """Another request holds the embedded model (a long generation): scoring gives up at
    its deadline instead of queueing behind it, and succeeds once the model is free."""
    llm, _ = local
    model = llm.local
    assert model.lock.acquire(timeout=5)
    try:
        start = time.perf_counter()
        with pytest.raises(BudgetSpent, match="busy"):
            llm.score("The best movie is", [" A", " B"], budget=Budget.of(300))
        waited = time.perf_counter() - start
    finally:
        model.lock.release()
    assert 0.25 <= waited < 1.0, waited
    assert len(llm.score("The best movie is", [" A", " B"], budget=Budget.of(5000))) == 2


def test_an_unreachable_provider_is_an_llm_error_not_a_hang() -> None:
    llm = LLMClient(
        "openai/gpt-4o-mini",
        ResponseCache(None, "t", 60),
        timeout_s=2.0,
        retries=1,
        api_base="http://127.0.0.1:9/v1",
        api_key="not-a-key",
    )
    start = time.perf_counter()
    with pytest.raises(LLMError):
        llm.complete(ASK, max_tokens=5)
    with pytest.raises(LLMError):
        list(llm.stream(ASK, max_tokens=5))
    assert time.perf_counter() - start < 10


def test_the_llm_can_be_switched_off() -> None:
    llm = client_from_settings(Settings(llm_model="off"))
    assert not llm.enabled
    with pytest.raises(LLMError, match="off"):
        llm.complete(ASK)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def openai_server(tmp_path_factory):
    """llama-cpp's OpenAI-compatible server with the same small model: the wire protocol
    vLLM and Ollama speak, so the `hosted_vllm/...` path is exercised for real."""
    import_or_missing("llama_cpp.server")
    path = model_path(LOCAL_MODELS["smollm2"], tmp_path_factory.mktemp("models"))
    port = _free_port()
    log = Path(tmp_path_factory.mktemp("server")) / "server.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "llama_cpp.server",
                "--model",
                str(path),
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--n_threads",
                "1",
                "--model_alias",
                "smollm2",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                assert proc.poll() is None, log.read_text()[-2000:]
                time.sleep(0.2)
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_an_openai_compatible_server_through_litellm(openai_server) -> None:
    llm = LLMClient(
        "hosted_vllm/smollm2", ResponseCache(None, "t", 60), api_base=openai_server, api_key="none"
    )
    out = llm.complete(ASK, max_tokens=16)
    assert out.text and out.completion_tokens > 0
    pieces = list(llm.stream(ASK, max_tokens=16, cache=False))
    assert len(pieces) > 1 and "".join(pieces).strip()
