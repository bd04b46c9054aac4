"""Reuse of the embedded model's KV cache for the prompt prefix calls share.

Every chat turn evaluates the same system text and few-shot examples again: the reply
prompt is ~150 tokens of which only the last ~40 change, and on 2 cores the model reads
~200 prompt tokens/s. llama-cpp-python already skips the prefix a new prompt shares with
what the context holds (`Llama.generate`), but one context serves every prompt in turn
(intent scoring, the reply, explanations), so by the next turn the context holds another
prompt. Its `LlamaRAMCache` would keep whole states, but each `save_state` copies the
context's logits buffer (n_batch x vocabulary floats: 100 MB for SmolLM2) and it runs
after every completion, which costs more than it saves at this size.

So this keeps, per prompt family (a key: the prompt ref, or the system text), one
snapshot of the context's own sequence: its tokens and llama.cpp's per-sequence state
(the KV cells only, ~23 KB a token for SmolLM2). Before a call the context is given the
snapshot when it shares a longer prefix with the new prompt than what the context holds;
llama.cpp then evaluates only the rest. Reusing KV cells of a common token prefix is
exact in arithmetic (causal attention: a position's keys and values depend only on the
tokens before it); in floating point a suffix evaluated on its own can round differently
from one evaluated with its prefix (measured: identical label scores, and identical
replies but for a near-tie where one token is evaluated alone). Where the cache cannot
drop a suffix (sliding-window caches refuse partial removal) the context is reset.
"""

from __future__ import annotations

import ctypes
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

MIN_REUSE = 8  # shorter shared prefixes are not worth a state load


@dataclass(frozen=True)
class Snapshot:
    tokens: np.ndarray  # the sequence the state holds
    state: bytes  # llama_state_seq_get_data of sequence 0


def common_prefix(a: Sequence[int] | np.ndarray, b: Sequence[int] | np.ndarray) -> int:
    """Length of the longest common prefix of two token sequences."""
    n = min(len(a), len(b))
    if n == 0:
        return 0
    diff = np.flatnonzero(np.asarray(a[:n]) != np.asarray(b[:n]))
    return int(diff[0]) if len(diff) else n


class PrefixStates:
    """Snapshots of one `llama_cpp.Llama` context, by prompt family; callers hold the
    model's lock. `hits` and `reused` count loads and the prompt tokens they saved."""

    def __init__(self, llama, capacity: int = 8) -> None:
        self.llama = llama
        self.capacity = capacity
        self._snapshots: OrderedDict[str, Snapshot] = OrderedDict()
        self.hits = 0
        self.reused = 0

    def held(self, tokens: Sequence[int]) -> int:
        """How much of `tokens` the context holds now."""
        return common_prefix(self.llama._input_ids, tokens)

    def restore(self, key: str | None, tokens: Sequence[int]) -> int:
        """Give the context the best known prefix of `tokens`; its length."""
        current = self.held(tokens)
        snapshot = self._snapshots.get(key) if key is not None else None
        if snapshot is None:
            return current
        cached = common_prefix(snapshot.tokens, tokens)
        if cached < max(current + 1, MIN_REUSE) or not self._load(snapshot):
            return current
        self._snapshots.move_to_end(key)
        self.hits += 1
        self.reused += cached
        return cached

    def save(self, key: str | None) -> None:
        """Snapshot what the context holds now under `key`."""
        if key is None or self.llama.n_tokens < MIN_REUSE:
            return
        import llama_cpp

        ctx = self.llama._ctx.ctx
        size = llama_cpp.llama_state_seq_get_size(ctx, 0)
        buffer = (ctypes.c_uint8 * size)()
        written = llama_cpp.llama_state_seq_get_data(ctx, buffer, size, 0)
        if not written:
            return
        self._snapshots[key] = Snapshot(
            np.array(self.llama._input_ids, dtype=np.intc), bytes(buffer)[:written]
        )
        self._snapshots.move_to_end(key)
        while len(self._snapshots) > self.capacity:
            self._snapshots.popitem(last=False)

    def _load(self, snapshot: Snapshot) -> bool:
        import llama_cpp

        llama = self.llama
        if not llama._ctx.kv_cache_seq_rm(0, 0, -1):
            return False
        buffer = (ctypes.c_uint8 * len(snapshot.state)).from_buffer_copy(snapshot.state)
        if not llama_cpp.llama_state_seq_set_data(llama._ctx.ctx, buffer, len(snapshot.state), 0):
            llama.reset()
            return False
        n = len(snapshot.tokens)
        llama.input_ids[:n] = snapshot.tokens
        llama.n_tokens = n
        llama._requires_eval = True  # logits are those of the last decode, not this state
        return True

    def prepare(self, key: str | None, tokens: Sequence[int]) -> int:
        """For an evaluation of `tokens` by hand: keep the reusable prefix (at least one
        token left to evaluate, for its logits), drop the rest; its length."""
        n = min(self.restore(key, tokens), len(tokens) - 1)
        if n <= 0 or not self.llama._ctx.kv_cache_seq_rm(0, n, -1):
            self.llama.reset()
            return 0
        self.llama.n_tokens = n
        return n
