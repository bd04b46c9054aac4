"""litellm custom provider `local/<name>`: chat completions by the embedded models.

litellm hands us its optional params (max_tokens, temperature, stop, top_p,
response_format) and the timeout; we enforce the timeout ourselves, because an
in-process generation cannot be cancelled from outside, and turn a JSON-schema
`response_format` into a llama-cpp grammar so the output is valid by construction.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

from litellm import CustomLLM
from litellm.types.utils import Choices, Message, ModelResponse, Usage

from llm.local import loaded


def _schema(optional_params: dict) -> dict | None:
    fmt = optional_params.get("response_format") or {}
    if fmt.get("type") == "json_schema":
        return (fmt.get("json_schema") or {}).get("schema") or {"type": "object"}
    if fmt.get("type") == "json_object":
        return fmt.get("schema") or {"type": "object"}
    return None


def _deadline(timeout) -> float | None:
    seconds = getattr(timeout, "read", timeout)  # float or httpx.Timeout
    return None if seconds is None else time.monotonic() + float(seconds)


def _args(optional_params: dict) -> dict:
    return {
        "max_tokens": int(optional_params.get("max_tokens") or 256),
        "temperature": float(optional_params.get("temperature") or 0.0),
        "stop": optional_params.get("stop"),
        "top_p": optional_params.get("top_p"),
    }


class LocalProvider(CustomLLM):
    def completion(self, model: str, messages: list, *args, **kwargs) -> ModelResponse:
        llm = loaded(model)
        params = kwargs.get("optional_params") or {}
        text, prompt_tokens, completion_tokens = llm.chat(
            messages,
            schema=_schema(params),
            deadline=_deadline(kwargs.get("timeout")),
            **_args(params),
        )
        return ModelResponse(
            model=f"local/{model}",
            choices=[
                Choices(
                    index=0, finish_reason="stop", message=Message(role="assistant", content=text)
                )
            ],
            usage=Usage(
                prompt_tokens=prompt_tokens,
                completion_tokens=completion_tokens,
                total_tokens=prompt_tokens + completion_tokens,
            ),
        )

    def streaming(self, model: str, messages: list, *args, **kwargs) -> Iterator[dict]:
        llm = loaded(model)
        params = kwargs.get("optional_params") or {}
        count = 0
        for piece in llm.stream(
            messages,
            schema=_schema(params),
            deadline=_deadline(kwargs.get("timeout")),
            **_args(params),
        ):
            count += 1
            yield {
                "text": piece,
                "is_finished": False,
                "finish_reason": None,
                "index": 0,
                "tool_use": None,
                "usage": None,
            }
        prompt_tokens = llm.count_tokens(llm.format(messages))
        yield {
            "text": "",
            "is_finished": True,
            "finish_reason": "stop",
            "index": 0,
            "tool_use": None,
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": count,
                "total_tokens": prompt_tokens + count,
            },
        }
