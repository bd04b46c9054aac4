"""One LLM client for every provider: litellm in front, budgets, cache, validation, logs.

litellm gives one call shape for OpenAI, Anthropic, Ollama and vLLM (its
OpenAI-compatible server, `hosted_vllm/<model>` + `llm_api_base`); the embedded
models are registered with it as the custom provider `local` (llm/local.py), so the
product code never branches on the provider. Around each call this module adds what
litellm does not decide for us:

- a per-request `Budget` (wall-clock deadline and tokens): a call that cannot finish
  inside it is not started, and its timeout never outlives it;
- retries with a short backoff for transient failures (never past the budget);
- a response cache keyed on everything that determines the answer (model, messages,
  params, schema), in Redis when configured, else in-process;
- structured output: JSON schema (grammar-constrained on the local model, `response_format`
  elsewhere), validated with jsonschema, one repair round-trip, then `LLMError` so the
  caller takes its deterministic fallback;
- one log line and one `CallRecord` per call (model, prompt ref, latency, tokens, cached).

`LLMError` is the single failure type callers handle: whatever goes wrong (provider
down, timeout, budget spent, invalid output), the product answers without the LLM.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import jsonschema
import redis

from llm.client.budget import Budget, BudgetSpent, CallRecord, LLMError, LLMResult, StructuredResult
from llm.client.cache import ResponseCache

log = logging.getLogger("marquee.llm")

LOCAL_PREFIX = "local/"
OFF = {"", "off", "none", "disabled"}
RETRY_BACKOFF_S = 0.25
TRANSIENT = ("timeout", "rate", "overloaded", "unavailable", "connection", "503", "502", "429")


@lru_cache(maxsize=1)
def _litellm():
    """Import and configure litellm once, offline: it would otherwise fetch a price list
    from GitHub at import."""
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    import litellm

    for name in ("LiteLLM", "LiteLLM Router", "LiteLLM Proxy", "litellm"):
        logging.getLogger(name).setLevel(logging.WARNING)
    litellm.telemetry = False
    litellm.suppress_debug_info = True
    return litellm


@dataclass
class LLMClient:
    """See the module docstring. `model` is a litellm model string, or "off"."""

    model: str
    cache: ResponseCache
    timeout_s: float = 20.0
    retries: int = 1
    api_base: str | None = None
    api_key: str | None = field(default=None, repr=False)
    cache_dir: Path = Path.home() / ".cache" / "marquee"
    threads: int = 2
    on_call: Callable[[CallRecord], None] | None = None
    _local: Any = field(default=None, repr=False)
    _ready: bool = field(default=False, repr=False)
    _score_ms: dict = field(default_factory=dict, repr=False)  # prompt -> recent latency
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def enabled(self) -> bool:
        return self.model.strip().lower() not in OFF

    @property
    def is_local(self) -> bool:
        return self.model.startswith(LOCAL_PREFIX)

    @property
    def local(self):
        """The embedded model itself (for scoring); None for remote providers."""
        if not self.is_local:
            return None
        self._setup()
        return self._local

    def _setup(self) -> None:
        """Import litellm and load the local model on first use (seconds), once."""
        if self._ready:
            return
        with self._lock:
            if self._ready:
                return
            if not self.enabled:
                raise LLMError("the LLM is off (llm_model=off)")
            litellm = _litellm()
            if self.is_local:
                from llm.local import LocalModelMissing, load_local
                from llm.local_provider import LocalProvider

                try:
                    self._local = load_local(
                        self.model.removeprefix(LOCAL_PREFIX), self.cache_dir, self.threads
                    )
                except LocalModelMissing as exc:
                    raise LLMError(str(exc)) from exc
                providers = [p for p in litellm.custom_provider_map if p["provider"] != "local"]
                litellm.custom_provider_map = [
                    *providers,
                    {"provider": "local", "custom_handler": LocalProvider()},
                ]
                litellm.utils.custom_llm_setup()
            self._ready = True

    def warm_up(self) -> None:
        """Load now (at service start) rather than on the first user's request."""
        self._setup()
        if self._local is not None:
            self._local.warm_up()

    # calls ------------------------------------------------------------------------------

    def _params(self, max_tokens: int, temperature: float, stop, top_p) -> dict:
        params: dict[str, Any] = {"max_tokens": max_tokens, "temperature": temperature}
        if stop:
            params["stop"] = list(stop)
        if top_p is not None:
            params["top_p"] = top_p
        return params

    def _timeout(self, budget: Budget | None) -> float:
        if budget is None:
            return self.timeout_s
        budget.check()
        return max(0.05, min(self.timeout_s, budget.left_s()))

    def _done(
        self,
        kind: str,
        prompt: str | None,
        start: float,
        tokens: tuple[int, int] = (0, 0),
        cached: bool = False,
        error: str | None = None,
    ) -> float:
        """Log and report one finished call; returns its latency in ms."""
        latency = (time.perf_counter() - start) * 1e3
        self._record(
            CallRecord(
                self.model,
                prompt,
                kind,
                latency,
                tokens[0],
                tokens[1],
                cached,
                error is None,
                error,
            )
        )
        return latency

    def _record(self, record: CallRecord) -> None:
        log.info(
            "llm %s model=%s prompt=%s latency_ms=%.0f tokens=%d+%d cached=%s%s",
            record.kind,
            record.model,
            record.prompt,
            record.latency_ms,
            record.prompt_tokens,
            record.completion_tokens,
            record.cached,
            "" if record.ok else f" error={record.error}",
        )
        if self.on_call is not None:
            try:
                self.on_call(record)
            except Exception:  # metrics must not break a call
                log.exception("llm call hook failed")

    def _call(self, messages: list[dict], params: dict, budget: Budget | None) -> Any:
        """One litellm completion with retries for transient errors, inside the budget."""
        litellm = _litellm()
        attempt = 0
        while True:
            timeout = self._timeout(budget)
            try:
                return litellm.completion(
                    model=self.model,
                    messages=messages,
                    timeout=timeout,
                    num_retries=0,
                    api_base=self.api_base,
                    api_key=self.api_key,
                    **params,
                )
            except Exception as exc:
                transient = any(word in str(exc).lower() for word in TRANSIENT)
                if attempt >= self.retries or not transient:
                    raise LLMError(f"{type(exc).__name__}: {str(exc)[:300]}") from exc
                attempt += 1
                time.sleep(RETRY_BACKOFF_S * attempt)

    def complete(
        self,
        messages: Sequence[dict],
        *,
        prompt: str | None = None,
        max_tokens: int = 256,
        temperature: float = 0.0,
        stop: Sequence[str] | None = None,
        top_p: float | None = None,
        budget: Budget | None = None,
        cache: bool = True,
        schema: dict | None = None,
    ) -> LLMResult:
        """Text of one completion; `schema` asks for JSON matching it (not validated here)."""
        self._setup()
        messages = [dict(m) for m in messages]
        params = self._params(max_tokens, temperature, stop, top_p)
        if schema is not None:
            params["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": "output", "schema": schema, "strict": True},
            }
        key = ResponseCache.key({"model": self.model, "messages": messages, **params})
        start = time.perf_counter()
        kind = "structured" if schema is not None else "complete"
        if cache and temperature == 0 and (hit := self.cache.get(key)) is not None:
            tokens = (hit["prompt_tokens"], hit["completion_tokens"])
            latency = self._done(kind, prompt, start, tokens, cached=True)
            return LLMResult(hit["text"], self.model, prompt, latency, *tokens, True)
        try:
            response = self._call(messages, params, budget)
        except LLMError as exc:
            self._done(kind, prompt, start, error=str(exc)[:200])
            raise
        text = response.choices[0].message.content or ""
        usage = getattr(response, "usage", None)
        p_tok = int(getattr(usage, "prompt_tokens", 0) or 0)
        c_tok = int(getattr(usage, "completion_tokens", 0) or 0)
        if budget is not None:
            budget.spend(p_tok + c_tok)
        if cache and temperature == 0:
            self.cache.put(key, {"text": text, "prompt_tokens": p_tok, "completion_tokens": c_tok})
        latency = self._done(kind, prompt, start, (p_tok, c_tok))
        return LLMResult(text.strip(), self.model, prompt, latency, p_tok, c_tok, False)

    def stream(
        self,
        messages: Sequence[dict],
        *,
        prompt: str | None = None,
        max_tokens: int = 256,
        temperature: float = 0.0,
        stop: Sequence[str] | None = None,
        top_p: float | None = None,
        budget: Budget | None = None,
        cache: bool = True,
    ) -> Iterator[str]:
        """Text pieces as they arrive. A cached answer comes back as one piece.

        Raises LLMError before the first piece when the call cannot start; a failure
        mid-stream ends the stream early (what was sent stays sent) and is logged.
        """
        self._setup()
        messages = [dict(m) for m in messages]
        params = self._params(max_tokens, temperature, stop, top_p)
        key = ResponseCache.key({"model": self.model, "messages": messages, **params})
        start = time.perf_counter()
        if cache and temperature == 0 and (hit := self.cache.get(key)) is not None:
            self._done(
                "stream",
                prompt,
                start,
                (hit["prompt_tokens"], hit["completion_tokens"]),
                cached=True,
            )
            if hit["text"]:
                yield hit["text"]
            return
        litellm = _litellm()
        try:
            chunks = litellm.completion(
                model=self.model,
                messages=messages,
                timeout=self._timeout(budget),
                num_retries=0,
                api_base=self.api_base,
                api_key=self.api_key,
                stream=True,
                stream_options={"include_usage": True},
                **params,
            )
        except BudgetSpent:
            raise
        except Exception as exc:
            self._done("stream", prompt, start, error=str(exc)[:200])
            raise LLMError(f"{type(exc).__name__}: {str(exc)[:300]}") from exc
        pieces: list[str] = []
        usage = None
        error = None
        ended = False  # the provider finished (not the reader closing the stream early)
        try:
            for chunk in chunks:
                usage = getattr(chunk, "usage", None) or usage
                if not chunk.choices:
                    continue
                piece = chunk.choices[0].delta.content
                if piece:
                    pieces.append(piece)
                    yield piece
                if budget is not None and budget.left_s() <= 0:
                    error = "latency budget spent mid-stream"
                    break
            ended = True
        except Exception as exc:  # the reader sees a shorter reply, not an exception
            error = f"{type(exc).__name__}: {str(exc)[:200]}"
        finally:
            # A reader that stops early (a reply that failed its check) must free the
            # embedded model now, not whenever the provider's generator is collected.
            close = getattr(chunks, "close", None)
            if callable(close):
                close()
            keep = ended and error is None and cache and temperature == 0
            self._stream_done(prompt, start, pieces, usage, budget, key if keep else None, error)

    def _stream_done(self, prompt, start, pieces, usage, budget, cache_key, error) -> None:
        """Account for a finished stream; cache it under `cache_key` (None: do not)."""
        p_tok = int(getattr(usage, "prompt_tokens", 0) or 0)
        c_tok = int(getattr(usage, "completion_tokens", 0) or len(pieces))
        if budget is not None:
            budget.spend(p_tok + c_tok)
        if cache_key is not None:
            value = {"text": "".join(pieces), "prompt_tokens": p_tok, "completion_tokens": c_tok}
            self.cache.put(cache_key, value)
        self._done("stream", prompt, start, (p_tok, c_tok), error=error)

    def structured(
        self,
        messages: Sequence[dict],
        schema: dict,
        *,
        prompt: str | None = None,
        max_tokens: int = 256,
        temperature: float = 0.0,
        budget: Budget | None = None,
        cache: bool = True,
    ) -> StructuredResult:
        """A JSON object valid against `schema`: asked for, validated, repaired once."""
        args = {
            "prompt": prompt,
            "max_tokens": max_tokens,
            "temperature": temperature,
            "budget": budget,
            "cache": cache,
            "schema": schema,
        }
        first = self.complete(messages, **args)
        value, problem = _validated(first.text, schema)
        if value is not None:
            return StructuredResult(value, first, repaired=False)
        repair = [
            *messages,
            {"role": "assistant", "content": first.text},
            {
                "role": "user",
                "content": f"That output is invalid: {problem}. Reply with only "
                f"a corrected JSON object matching this schema: {json.dumps(schema)}",
            },
        ]
        second = self.complete(repair, **args)
        value, problem = _validated(second.text, schema)
        if value is None:
            raise LLMError(f"invalid structured output after one repair: {problem}")
        return StructuredResult(value, second, repaired=True)

    def score(
        self,
        prompt_text: str,
        options: Sequence[str],
        *,
        prompt: str | None = None,
        budget: Budget | None = None,
    ) -> list[float]:
        """log P(first token of option | prompt_text) per option, one forward pass in all
        (options must start with distinct tokens): the embedded models only.

        Not started (BudgetSpent) when the recent calls of this prompt took longer than
        the budget has left. Remote chat APIs do not score arbitrary continuations;
        callers use `structured` there instead (a real model does that well, a 135M one
        does not).
        """
        model = self.local
        if model is None:
            raise LLMError("scoring needs an embedded model")
        expected = self._score_ms.get(prompt)
        if budget is not None:
            budget.check()
            if expected is not None and budget.left_s() * 1e3 < expected:
                self._score_ms[prompt] = 0.9 * expected  # try again after a slow spell
                raise BudgetSpent(f"needs ~{expected:.0f} ms, {budget.left_s() * 1e3:.0f} left")
        start = time.perf_counter()
        deadline = budget.deadline if budget is not None else None
        try:
            values = model.next_token_logprobs(prompt_text, list(options), deadline, key=prompt)
        except TimeoutError as exc:  # waited for the model past the request's budget
            raise BudgetSpent(str(exc)) from None
        ms = (time.perf_counter() - start) * 1e3
        self._score_ms[prompt] = ms if expected is None else 0.7 * expected + 0.3 * ms
        n = model.count_tokens(prompt_text)
        self._done("score", prompt, start, (n, 0))
        return [float(v) for v in values]


def _validated(text: str, schema: dict) -> tuple[dict | None, str | None]:
    """(value, None) when `text` is a JSON object valid against `schema`, else the problem."""
    raw = text.strip()
    if raw.startswith("```"):  # models like fences even when asked not to
        raw = raw.strip("`").removeprefix("json").strip()
    start, end = raw.find("{"), raw.rfind("}")
    if start < 0 or end < start:
        return None, "no JSON object found"
    try:
        value = json.loads(raw[start : end + 1])
    except json.JSONDecodeError as exc:
        return None, f"not valid JSON ({exc.msg} at {exc.pos})"
    try:
        jsonschema.validate(value, schema)
    except jsonschema.ValidationError as exc:
        where = "/".join(str(p) for p in exc.absolute_path) or "(root)"
        return None, f"{where}: {exc.message[:200]}"
    return value, None


def client_from_settings(settings, redis_client: redis.Redis | None = None, on_call=None):
    """The configured client; the cache lives in Redis when the service has one."""
    cache = ResponseCache(redis_client, settings.redis_prefix, settings.llm_cache_ttl_s)
    return LLMClient(
        model=settings.llm_model,
        cache=cache,
        timeout_s=settings.llm_timeout_s,
        retries=settings.llm_retries,
        api_base=settings.llm_api_base,
        api_key=settings.llm_api_key and settings.llm_api_key.get_secret_value(),
        cache_dir=Path(settings.cache_dir),
        threads=settings.llm_threads,
        on_call=on_call,
    )
