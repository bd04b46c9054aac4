"""Eval cases of a prompt: render -> call the LLM -> parse -> checks -> a report.

The checks are deliberately few, so a product person can read a cases.yaml and know
exactly what passing means. Each takes the value at ``path`` (dotted, "ranking.0",
only for prompts with an output_schema) or the whole output:

| check | passes when |
|---|---|
| ``contains: X`` or ``[X, ..]`` | every X is an element (list) or a case-insensitive substring |
| ``not_contains: X`` or ``[..]`` | no X is |
| ``equals: X`` | the value equals X |
| ``one_of: [..]`` | the value is one of them |
| ``matches: RE`` | the regex (Python, case-insensitive, unanchored) is found in the text |
| ``not_matches: RE`` | it is not |
| ``max_words: N`` | at most N whitespace-separated words |
| ``max_sentences: N`` | at most N sentences (runs ending in . ! or ?) |
| ``valid_json: true`` | the output is JSON (for a free-text prompt: its text parses) |
| ``ids_subset_of_input: NAME`` | every element is in input NAME (dicts there count by "id") |

Non-text values are matched as their JSON. A prompt with an output_schema also gets
an implicit check that the answer validates against it, whatever the client did.
Calls go out with ``cache=False``: an eval measures what the model does now, and its
latency.
"""

from __future__ import annotations

import importlib
import json
import re
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from jsonschema import Draft202012Validator

from llm.prompts import Check, EvalCase, Prompt, PromptRegistry

_MISSING = object()
_SENTENCE = re.compile(r"[^.!?]*[^\s.!?][^.!?]*(?:[.!?]+|$)")
_TRAILING_DOTS = re.compile(r"\.{3}|…")


class CompletionClient(Protocol):
    """What the runner needs of `llm.client.LLMClient` (so tests can pass a stand-in)."""

    model: str

    def complete(self, messages: list[dict], **kwargs: Any) -> Any: ...

    def structured(self, messages: list[dict], schema: dict, **kwargs: Any) -> Any: ...


@dataclass
class CallOutcome:
    """One rendered prompt sent to the model: the answer as text and, if JSON, parsed."""

    messages: list[dict[str, str]]
    text: str
    value: Any  # parsed JSON for a prompt with an output_schema, else the text
    latency_ms: float
    model: str
    error: str | None = None


@dataclass
class CaseResult:
    id: str
    passed: bool
    reasons: list[str]
    output: Any
    latency_ms: float
    error: str | None = None


@dataclass
class EvalReport:
    prompt: str  # the Prompt.ref evaluated
    model: str
    rows: list[CaseResult] = field(default_factory=list)

    @property
    def total(self) -> int:
        return len(self.rows)

    @property
    def passed(self) -> int:
        return sum(r.passed for r in self.rows)

    @property
    def pass_rate(self) -> float:
        return self.passed / self.total if self.rows else 0.0

    @property
    def median_latency_ms(self) -> float:
        return statistics.median(r.latency_ms for r in self.rows) if self.rows else 0.0

    def summary(self) -> str:
        return (
            f"{self.prompt} on {self.model}: {self.passed}/{self.total} passed "
            f"({self.pass_rate:.0%}), median latency {self.median_latency_ms:.0f} ms"
        )


def call_prompt(
    prompt: Prompt, inputs: dict[str, Any], client: CompletionClient, *, budget: Any = None
) -> CallOutcome:
    """Render and send one prompt the way the service does; errors come back, not raised.

    A PromptError (bad inputs) is still raised: that is the caller's bug, not the model's.
    """
    messages = prompt.render(**inputs)
    spec = prompt.spec
    model = getattr(client, "model", "?")
    scorer = _scorer(spec.name) if getattr(client, "is_local", False) else None
    start = time.perf_counter()
    try:
        if scorer is not None:
            value = scorer(client, prompt, inputs, budget)
            text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
            result = None
        elif spec.output_schema is not None:
            result = client.structured(
                messages,
                spec.output_schema,
                prompt=prompt.ref,
                max_tokens=spec.params.max_tokens,
                temperature=spec.params.temperature,
                budget=budget,
                cache=False,
            )
            value = result.value
            text = json.dumps(value, ensure_ascii=False)
        else:
            result = client.complete(
                messages,
                prompt=prompt.ref,
                max_tokens=spec.params.max_tokens,
                temperature=spec.params.temperature,
                stop=spec.params.stop,
                top_p=spec.params.top_p,
                budget=budget,
                cache=False,
            )
            text = result.text.strip()
            value = text
    except Exception as exc:  # LLMError and whatever a provider raises: the case fails
        latency = (time.perf_counter() - start) * 1000
        first_line = (str(exc).strip().splitlines() or [""])[0][:300]  # providers add tracebacks
        return CallOutcome(
            messages, "", None, latency, model, f"{type(exc).__name__}: {first_line}"
        )
    latency = (time.perf_counter() - start) * 1000
    inner = getattr(result, "result", result)
    return CallOutcome(messages, text, value, latency, getattr(inner, "model", None) or model)


# Prompts the embedded models answer by scoring, not generating: their eval runs the same
# scoring the service does (module:function, imported on use).
SCORED_PROMPTS = {
    "intent_local": "llm.intent_llm:eval_output",
    "rerank_local": "llm.rerank:eval_output",
}


def _scorer(name: str) -> Callable[..., Any] | None:
    target = SCORED_PROMPTS.get(name)
    if target is None:
        return None
    module, function = target.split(":")
    return getattr(importlib.import_module(module), function)


def _at(value: Any, path: str | None) -> Any:
    if path is None:
        return value
    for part in path.split("."):
        if isinstance(value, dict) and part in value:
            value = value[part]
        elif (
            isinstance(value, list)
            and part.lstrip("-").isdigit()
            and -len(value) <= int(part) < len(value)
        ):
            value = value[int(part)]
        else:
            return _MISSING
    return value


def _as_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def _listed(arg: Any) -> list[Any]:
    return list(arg) if isinstance(arg, list) else [arg]


def _input_ids(inputs: dict[str, Any], name: str) -> set[Any] | str:
    if name not in inputs:
        return f"input {name!r} is not in this case"
    values = inputs[name]
    if not isinstance(values, list):
        return f"input {name!r} is not a list"
    return {v.get("id") if isinstance(v, dict) else v for v in values}


def sentences(text: str) -> list[str]:
    """Sentences as a reader counts them ("..." inside a sentence does not end it)."""
    return [s for s in _SENTENCE.findall(_TRAILING_DOTS.sub(",", text)) if s.strip()]


def run_check(check: Check, output: Any, inputs: dict[str, Any]) -> str | None:
    """None when the check passes, else why not (one readable line)."""
    kind, arg = check.kind, check.arg
    where = f"{check.path}: " if check.path else ""
    value = _at(output, check.path)
    if value is _MISSING:
        return f"{check.path}: not in the output"
    shown = _as_text(value)
    shown = shown if len(shown) <= 80 else shown[:77] + "..."
    if kind in ("contains", "not_contains"):
        if isinstance(value, list):
            hits = [x for x in _listed(arg) if x in value]
        else:
            hits = [x for x in _listed(arg) if str(x).lower() in _as_text(value).lower()]
        if kind == "contains":
            missing = [x for x in _listed(arg) if x not in hits]
            return f"{where}{missing} missing from {shown}" if missing else None
        return f"{where}{hits} should not be in {shown}" if hits else None
    if kind == "equals":
        return None if value == arg else f"{where}expected {arg!r}, got {shown}"
    if kind == "one_of":
        return None if value in arg else f"{where}{shown} is not one of {arg}"
    if kind in ("matches", "not_matches"):
        found = re.search(arg, _as_text(value), re.IGNORECASE)
        if kind == "matches":
            return None if found else f"{where}no match for /{arg}/ in {shown}"
        return f"{where}/{arg}/ matched {found.group(0)!r}" if found else None
    if kind == "max_words":
        n = len(_as_text(value).split())
        return None if n <= arg else f"{where}{n} words, more than {arg}"
    if kind == "max_sentences":
        n = len(sentences(_as_text(value)))
        return None if n <= arg else f"{where}{n} sentences, more than {arg}"
    if kind == "valid_json":
        if not isinstance(value, str):
            ok = True
        else:
            try:
                json.loads(value)
                ok = True
            except ValueError:
                ok = False
        return None if ok == arg else f"{where}valid JSON is {ok}, expected {arg}"
    if kind == "ids_subset_of_input":
        allowed = _input_ids(inputs, arg)
        if isinstance(allowed, str):
            return f"{where}{allowed}"
        if not isinstance(value, list):
            return f"{where}{shown} is not a list"
        unknown = [x for x in value if x not in allowed]
        return f"{where}{unknown} not in input {arg!r}" if unknown else None
    raise AssertionError(f"unhandled check kind {kind}")  # Check guarantees one of the kinds


def check_case(prompt: Prompt, case: EvalCase, outcome: CallOutcome) -> list[str]:
    """Every failed check's reason for one case ([] = passed)."""
    if outcome.error is not None:
        return [f"LLM call failed: {outcome.error}"]
    reasons = []
    schema = prompt.spec.output_schema
    if schema is not None:
        errors = sorted(Draft202012Validator(schema).iter_errors(outcome.value), key=str)
        reasons.extend(
            f"schema: {'/'.join(map(str, e.path)) or '(top)'}: {e.message}" for e in errors[:3]
        )
    for check in case.expect:
        reason = run_check(check, outcome.value, case.inputs)
        if reason is not None:
            reasons.append(f"{check.kind}: {reason}")
    return reasons


def run_cases(
    registry: PromptRegistry,
    name: str,
    client: CompletionClient,
    version: int | str | None = None,
    *,
    prompt: Prompt | None = None,
    on_case: Callable[[CaseResult], None] | None = None,
) -> EvalReport:
    """Run every eval case of ``name`` (the given version, or live) through ``client``.

    ``prompt`` evaluates an unsaved draft (the lab's editor) against the same cases.
    ``on_case`` is called after each case (progress bars).
    """
    prompt = prompt or registry.get(name, version)
    report = EvalReport(prompt=prompt.ref, model=getattr(client, "model", "?"))
    for case in registry.cases(name):
        outcome = call_prompt(prompt, case.inputs, client)
        reasons = check_case(prompt, case, outcome)
        row = CaseResult(
            id=case.id,
            passed=not reasons,
            reasons=reasons,
            output=outcome.value if outcome.error is None else None,
            latency_ms=round(outcome.latency_ms, 1),
            error=outcome.error,
        )
        report.rows.append(row)
        if outcome.error is None:
            report.model = outcome.model
        if on_case is not None:
            on_case(row)
    return report
