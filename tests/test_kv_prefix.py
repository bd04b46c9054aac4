"""KV prefix snapshots of the embedded model (llm/kv_prefix.py): reused, and exact.

Real SmolLM2. A prompt scored from a snapshot of its family (after the context served
another prompt) must give the same label log-probabilities as the same prompt scored
from an empty context, and the snapshot must actually be used.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from llm.kv_prefix import common_prefix
from llm.local import LocalModelMissing, load_local, prefilled
from llm.prompts import PromptRegistry

from .requirements import missing

REPO_ROOT = Path(__file__).resolve().parents[1]
LABELS = [" comedy", " horror", " drama", " romance", " western"]
MESSAGES = ["a scary movie from the 80s", "something light and funny", "a sad film"]


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    try:
        return load_local("smollm2", tmp_path_factory.mktemp("cache"))
    except LocalModelMissing as exc:
        missing(str(exc))


def test_common_prefix() -> None:
    assert common_prefix([1, 2, 3], [1, 2, 4]) == 2
    assert common_prefix([1, 2], [1, 2, 3]) == 2
    assert common_prefix([], [1]) == 0
    assert common_prefix(np.array([5, 6]), [7]) == 0


def test_scores_from_a_snapshot_equal_scores_from_an_empty_context(model) -> None:
    registry = PromptRegistry(REPO_ROOT / "prompts")
    intent, reply = registry.get("intent_local"), registry.get("chat_reply")
    fresh = {}
    for message in MESSAGES:
        model.llama.reset()
        text = prefilled(model, intent.render(message=message))
        fresh[message] = model.next_token_logprobs(text, LABELS)
    hits, reused = model.prefixes.hits, model.prefixes.reused
    for message in MESSAGES:
        other = reply.render(message=message, summary="films", titles=["Heat"])
        model.next_token_logprobs(model.format(other), [" You"], key="chat_reply")
        text = prefilled(model, intent.render(message=message))
        keyed = model.next_token_logprobs(text, LABELS, key="intent_local")
        np.testing.assert_allclose(keyed, fresh[message], atol=1e-4)
    assert model.prefixes.hits - hits >= len(MESSAGES) - 1, "the snapshot was not reused"
    assert model.prefixes.reused - reused > 10 * (len(MESSAGES) - 1)
