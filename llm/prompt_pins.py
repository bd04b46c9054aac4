"""An experiment variant's view of the prompt registry: its pinned versions, else the live one.

Product teams A/B-test a prompt by pinning a version on a variant (`prompts = { rerank = 2 }`
in the experiment file). Every LLM step of that variant's requests (feed re-rank, chat
intent, reply, explanations) asks this view instead of the registry, so the pin reaches
each step without a version argument threaded through every call, and a prompt the
variant does not pin keeps following the registry's live version (a roll-out still
reaches it).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Protocol

from llm.prompts import Prompt, PromptError, PromptRegistry


class PromptSource(Protocol):
    """What the LLM steps need from prompts: one by name, optionally a given version."""

    def get(self, name: str, version: int | str | None = None) -> Prompt: ...


class PinnedPrompts:
    """The registry with some prompts pinned to a version (see the module docstring)."""

    def __init__(self, registry: PromptRegistry, pins: Mapping[str, int]) -> None:
        self.registry = registry
        self.pins: Mapping[str, int] = MappingProxyType(dict(pins))

    def get(self, name: str, version: int | str | None = None) -> Prompt:
        """An explicit version wins (the prompt lab previews one); else the pin, else live."""
        if version is None:
            version = self.pins.get(name)
        return self.registry.get(name, version)


def pinned(registry: PromptRegistry, pins: Mapping[str, int] | None) -> PromptSource:
    """The registry itself when nothing is pinned, so the default path stays unchanged."""
    return PinnedPrompts(registry, pins) if pins else registry


def check_pins(registry: PromptRegistry, pins_by_variant: Mapping[str, Mapping[str, int]]) -> None:
    """PromptError listing every pin to a prompt or version the registry does not have.

    Checked at start-up: a typo in the experiment file must fail the deploy, not quietly
    serve the live prompt to the variant that was meant to test another one.
    """
    problems = []
    names = set(registry.names())
    for variant, pins in pins_by_variant.items():
        for name, version in sorted(pins.items()):
            if name not in names:
                problems.append(f"variant {variant!r} pins unknown prompt {name!r}")
            elif version not in (known := registry.versions(name)):
                problems.append(
                    f"variant {variant!r} pins {name}@v{version}; {name} has versions {known}"
                )
    if problems:
        raise PromptError("experiment prompt pins:\n" + "\n".join(problems))
