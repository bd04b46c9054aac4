"""What a prompt file must say (front matter, `PromptSpec`) and its eval cases (`EvalCase`).

Part of llm.prompts; the rules are in the package docstring.
"""

from __future__ import annotations

import re
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

LIVE_FILE = "live.yaml"
CASES_FILE = "cases.yaml"
_VERSION_FILE = re.compile(r"v([1-9]\d*)\.md")
_NAME = r"[a-z][a-z0-9_]*"


class PromptError(ValueError):
    """A prompt file, case file or render that is wrong; the message names file and problem."""


# --------------------------------------------------------------------------- spec


class PromptParams(BaseModel):
    """Sampling parameters passed to the LLM client as they are."""

    model_config = ConfigDict(extra="forbid")

    temperature: float = Field(default=0.0, ge=0.0, le=2.0)
    max_tokens: int = Field(default=256, ge=1, le=8192)
    stop: list[str] | None = None
    top_p: float | None = Field(default=None, gt=0.0, le=1.0)


class PromptSpec(BaseModel):
    """The front matter of a prompt file."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=rf"^{_NAME}$")
    version: int = Field(ge=1)
    description: str = Field(min_length=1)
    model: str | None = Field(default=None, description="litellm model override; null = default")
    params: PromptParams = Field(default_factory=PromptParams)
    output_schema: dict[str, Any] | None = Field(
        default=None, description="JSON Schema of the answer; null = free text"
    )
    inputs: list[str] = Field(default_factory=list)

    @field_validator("output_schema")
    @classmethod
    def _valid_schema(cls, schema: dict[str, Any] | None) -> dict[str, Any] | None:
        if schema is not None:
            try:
                Draft202012Validator.check_schema(schema)
            except SchemaError as exc:
                where = "/".join(str(p) for p in exc.path) or "(top)"
                raise ValueError(f"not a valid JSON Schema at {where}: {exc.message}") from None
        return schema

    @field_validator("inputs")
    @classmethod
    def _identifiers(cls, names: list[str]) -> list[str]:
        for name in names:
            if not name.isidentifier():
                raise ValueError(f"input {name!r} is not a valid variable name")
        if len(set(names)) != len(names):
            raise ValueError("inputs are listed more than once")
        return names


# --------------------------------------------------------------------------- eval cases


CHECK_KINDS = (
    "contains",
    "not_contains",
    "equals",
    "one_of",
    "matches",
    "not_matches",
    "max_words",
    "max_sentences",
    "valid_json",
    "ids_subset_of_input",
)


class Check(BaseModel):
    """One assertion on a case's output; exactly one kind, optionally at a ``path``.

    ``path`` is dotted ("ranking.0") into the parsed JSON of a prompt with an
    output_schema; without it the check sees the whole output. What each kind means is
    in `llm.prompt_eval`.
    """

    model_config = ConfigDict(extra="forbid")

    path: str | None = None
    contains: Any = None
    not_contains: Any = None
    equals: Any = None
    one_of: list[Any] | None = None
    matches: str | None = None
    not_matches: str | None = None
    max_words: int | None = Field(default=None, ge=1)
    max_sentences: int | None = Field(default=None, ge=1)
    valid_json: bool | None = None
    ids_subset_of_input: str | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> Check:
        kinds = [k for k in CHECK_KINDS if k in self.model_fields_set]
        if len(kinds) != 1:
            raise ValueError(
                f"a check needs exactly one of {', '.join(CHECK_KINDS)} (got {kinds or 'none'})"
            )
        for key in ("matches", "not_matches"):
            pattern = getattr(self, key)
            if pattern is not None:
                try:
                    re.compile(pattern)
                except re.error as exc:
                    raise ValueError(f"{key}: bad regular expression {pattern!r}: {exc}") from None
        return self

    @property
    def kind(self) -> str:
        return next(k for k in CHECK_KINDS if k in self.model_fields_set)

    @property
    def arg(self) -> Any:
        return getattr(self, self.kind)


class EvalCase(BaseModel):
    """An input set and what the output must satisfy."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=1)
    inputs: dict[str, Any] = Field(default_factory=dict)
    expect: list[Check] = Field(default_factory=list)

    @field_validator("expect", mode="before")
    @classmethod
    def _single_check(cls, value: Any) -> Any:
        return [value] if isinstance(value, dict) else value
