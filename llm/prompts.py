"""Prompts as files: versioned, validated, hot-reloaded, rolled out by editing live.yaml.

A product person changes what the LLM is asked without a deploy, so everything about a
prompt lives in ``prompts/<name>/v<N>.md``: YAML front matter (checked by `PromptSpec`)
between ``---`` lines, then a Jinja2 body. ``prompts/live.yaml`` says which version each
prompt serves; ``prompts/<name>/cases.yaml`` holds its eval cases (`EvalCase`).

Rules a reader would otherwise have to reverse-engineer:

- The rendered body becomes chat messages at lines that are exactly ``[system]``,
  ``[user]`` or ``[assistant]`` in the *template*; text before the first marker is a user
  message. Markers are swapped for a per-process random token before Jinja sees the
  body, so a marker typed by a user inside an input stays plain text (no role
  injection), while markers inside ``{% for %}`` loops still work (few-shot lists).
- Inputs are strict both ways: the body may only use variables listed in ``inputs``,
  every listed input must be used, rendering needs exactly the listed inputs, and an
  undefined attribute or key is an error (StrictUndefined).
- Templates run in Jinja's sandbox: the lab lets people edit them from a browser.
  ``tojson`` writes plain ``json.dumps`` (Jinja's default HTML-escapes ``<>&'``, which
  is noise to a model).
- Hot reload: the folder is re-scanned at most once per ``reload_interval_s``; a file
  whose mtime/size/inode changed is re-parsed on its next use. If an edit breaks a
  version that already served, the last good parse keeps serving (a warning is
  logged, `validate_all` reports it): a typo in the live prompt must not take chat down.
- Eval cases render against the live and the newest version (the one served and the
  one being worked on); older versions may have had other inputs.
"""

from __future__ import annotations

import json
import logging
import os
import re
import secrets
import tempfile
import threading
import time
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Self

import jinja2
import yaml
from jinja2 import meta
from jinja2.sandbox import SandboxedEnvironment
from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

log = logging.getLogger("marquee.prompts")

ROLES = ("system", "user", "assistant")
LIVE_FILE = "live.yaml"
CASES_FILE = "cases.yaml"
_VERSION_FILE = re.compile(r"v([1-9]\d*)\.md")
_NAME = r"[a-z][a-z0-9_]*"
_MARKER_LINE = re.compile(r"^\[(system|user|assistant)\][ \t]*$", re.MULTILINE)
_NONCE = secrets.token_hex(8)
_SENTINEL = re.compile(rf"\x00{_NONCE}:(system|user|assistant)\x00")
_FRONT_VERSION = re.compile(r"^version:[^\n]*$", re.MULTILINE)


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


# --------------------------------------------------------------------------- parsing


def _environment() -> SandboxedEnvironment:
    env = SandboxedEnvironment(
        undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True, autoescape=False
    )
    env.filters["tojson"] = lambda value, indent=None: json.dumps(
        value, ensure_ascii=False, indent=indent
    )
    return env


_ENV = _environment()


class _UniqueKeys(yaml.SafeLoader):
    """A key written twice is a mistake (which one wins is invisible), not an override."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"{key!r} appears twice", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep)


def _load_yaml(text: str) -> Any:
    return yaml.load(text, Loader=_UniqueKeys)  # a SafeLoader: no arbitrary objects


def _yaml_error(exc: yaml.YAMLError, line_offset: int) -> str:
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc)
    if mark is None:
        return f"YAML: {problem}"
    return f"line {mark.line + 1 + line_offset}: YAML: {problem}"


def _pydantic_errors(exc: ValidationError, what: str) -> str:
    parts = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "(top)"
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown key"
        elif err["type"] == "missing":
            msg = "missing"
        parts.append(f"{loc}: {msg}")
    return f"{what}: " + "; ".join(parts)


def split_front_matter(text: str, where: str) -> tuple[dict[str, Any], str, int]:
    """(front matter mapping, body, line number of the body's first line)."""
    lines = text.splitlines(keepends=True)
    if not lines or lines[0].strip() != "---":
        raise PromptError(f"{where}: must start with a '---' line opening the YAML front matter")
    end = next((i for i in range(1, len(lines)) if lines[i].strip() == "---"), None)
    if end is None:
        raise PromptError(f"{where}: front matter is not closed by a '---' line")
    try:
        front = _load_yaml("".join(lines[1:end]))
    except yaml.YAMLError as exc:
        raise PromptError(f"{where}: {_yaml_error(exc, 1)}") from None
    if not isinstance(front, dict):
        raise PromptError(f"{where}: front matter must be a YAML mapping of keys")
    return front, "".join(lines[end + 1 :]), end + 2


@dataclass(frozen=True)
class Prompt:
    """One parsed, validated prompt version."""

    spec: PromptSpec
    source: str
    path: Path

    @property
    def ref(self) -> str:
        return f"{self.spec.name}@v{self.spec.version}"

    @cached_property
    def _template(self) -> jinja2.Template:
        return _compile(self.source, str(self.path))[0]

    @classmethod
    def parse(
        cls, text: str, path: Path, *, name: str | None = None, version: int | None = None
    ) -> Self:
        """Parse and validate ``text``; ``name``/``version`` are what its file name says."""
        where = str(path)
        front, _, _ = split_front_matter(text, where)
        try:
            spec = PromptSpec.model_validate(front)
        except ValidationError as exc:
            raise PromptError(_pydantic_errors(exc, f"{where}: front matter")) from None
        if name is not None and spec.name != name:
            raise PromptError(f"{where}: name is {spec.name!r} but the folder is {name!r}")
        if version is not None and spec.version != version:
            raise PromptError(f"{where}: version is {spec.version} but the file is v{version}.md")
        template, used = _compile(text, where)
        undeclared = sorted(used - set(spec.inputs))
        if undeclared:
            raise PromptError(f"{where}: the body uses {undeclared} not listed in inputs")
        unused = sorted(set(spec.inputs) - used)
        if unused:
            raise PromptError(f"{where}: inputs {unused} are listed but the body never uses them")
        prompt = cls(spec=spec, source=text, path=path)
        prompt.__dict__["_template"] = template  # already compiled; cached_property's slot
        return prompt

    def render(self, **inputs: Any) -> list[dict[str, str]]:
        """Chat messages [{"role", "content"}] for these inputs (exactly the declared ones)."""
        where = f"{self.path} ({self.ref})"
        declared = set(self.spec.inputs)
        missing = sorted(declared - set(inputs))
        extra = sorted(set(inputs) - declared)
        if missing:
            raise PromptError(f"{where}: missing inputs {missing}")
        if extra:
            raise PromptError(f"{where}: undeclared inputs {extra} (declared: {self.spec.inputs})")
        try:
            rendered = self._template.render(**inputs)
        except jinja2.UndefinedError as exc:
            raise PromptError(f"{where}: {exc.message}") from None
        except jinja2.TemplateError as exc:
            raise PromptError(f"{where}: cannot render: {exc}") from None
        except (TypeError, ValueError, KeyError, AttributeError) as exc:
            raise PromptError(f"{where}: cannot render: {type(exc).__name__}: {exc}") from None
        return split_messages(rendered, where)


def _compile(text: str, where: str) -> tuple[jinja2.Template, set[str]]:
    _, body, first_line = split_front_matter(text, where)
    # leading newlines keep Jinja's line numbers equal to the file's
    guarded = "\n" * (first_line - 1) + _MARKER_LINE.sub(
        lambda m: f"\x00{_NONCE}:{m.group(1)}\x00", body
    )
    try:
        ast = _ENV.parse(guarded)
        template = _ENV.from_string(guarded)
    except jinja2.TemplateSyntaxError as exc:
        raise PromptError(f"{where}: line {exc.lineno}: Jinja: {exc.message}") from None
    return template, set(meta.find_undeclared_variables(ast))


def split_messages(rendered: str, where: str = "prompt") -> list[dict[str, str]]:
    """Cut a rendered body into messages at the template's role markers."""
    parts = _SENTINEL.split(rendered)
    messages = []
    if parts[0].strip():
        messages.append({"role": "user", "content": parts[0].strip()})
    for role, content in zip(parts[1::2], parts[2::2], strict=True):
        if not content.strip():
            raise PromptError(f"{where}: the [{role}] message #{len(messages) + 1} is empty")
        messages.append({"role": role, "content": content.strip()})
    if not messages:
        raise PromptError(f"{where}: renders to no messages")
    return messages


def with_version(text: str, version: int, where: str) -> str:
    """The text with its front matter's ``version:`` line set (comments and layout kept)."""
    split_front_matter(text, where)  # the front matter must exist before it is edited
    lines = text.splitlines(keepends=True)
    end = next(i for i in range(1, len(lines)) if lines[i].strip() == "---")
    for i in range(1, end):
        if _FRONT_VERSION.fullmatch(lines[i].rstrip("\r\n")):
            lines[i] = f"version: {version}\n"
            break
    else:
        lines.insert(1, f"version: {version}\n")
    return "".join(lines)


def parse_version(version: int | str | None) -> int | None:
    """None, 2, "2" and "v2" (as the CLI and lab pass them) -> None or 2."""
    if version is None:
        return None
    if isinstance(version, bool):
        raise PromptError(f"not a prompt version: {version!r}")
    if isinstance(version, int):
        return version
    text = str(version).strip().lower().removeprefix("v")
    if not text.isdigit() or int(text) < 1:
        raise PromptError(f"not a prompt version: {version!r} (use 2 or v2)")
    return int(text)


def _atomic_write(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _write_new(path: Path, text: str) -> None:
    """Create ``path`` with ``text`` atomically; FileExistsError if it already exists."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.link(tmp, path)  # fails instead of overwriting a concurrent save
    finally:
        Path(tmp).unlink(missing_ok=True)


def _parse_live(text: str, path: Path) -> dict[str, int]:
    try:
        data = _load_yaml(text) or {}
    except yaml.YAMLError as exc:
        raise PromptError(f"{path}: {_yaml_error(exc, 0)}") from None
    if not isinstance(data, dict):
        raise PromptError(f"{path}: must map prompt names to versions (intent: 1)")
    live: dict[str, int] = {}
    for name, version in data.items():
        if isinstance(version, bool) or not isinstance(version, int | str):
            raise PromptError(f"{path}: {name}: {version!r} is not a version")
        try:
            live[str(name)] = parse_version(version)  # type: ignore[assignment]
        except PromptError as exc:
            raise PromptError(f"{path}: {name}: {exc}") from None
    return live


# --------------------------------------------------------------------------- registry


_StatKey = tuple[int, int, int]


def _stat_key(path: Path) -> _StatKey | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size, st.st_ino)


class PromptRegistry:
    """Every prompt under one folder, as the files say now (within a second)."""

    def __init__(self, folder: Path, *, reload_interval_s: float = 1.0) -> None:
        self.folder = Path(folder)
        self.reload_interval_s = reload_interval_s
        self._lock = threading.RLock()
        self._checked = -float("inf")
        self._files: dict[str, dict[int, Path]] = {}
        self._stats: dict[Path, _StatKey] = {}
        self._parsed: dict[Path, tuple[_StatKey, Prompt]] = {}
        self._live: dict[str, int] = {}
        self._live_key: _StatKey | None = None
        self._live_error: str | None = None

    # -- scanning --------------------------------------------------------------------

    def refresh(self, force: bool = False) -> None:
        """Re-list the folder if the last look is older than the reload interval."""
        with self._lock:
            now = time.monotonic()
            if not force and now - self._checked < self.reload_interval_s:
                return
            self._checked = now
            files: dict[str, dict[int, Path]] = {}
            stats: dict[Path, _StatKey] = {}
            if self.folder.is_dir():
                for sub in sorted(self.folder.iterdir()):
                    if not sub.is_dir() or not re.fullmatch(_NAME, sub.name):
                        continue
                    for path in sub.iterdir():
                        match = _VERSION_FILE.fullmatch(path.name)
                        key = _stat_key(path) if match else None
                        if match and key is not None:
                            files.setdefault(sub.name, {})[int(match.group(1))] = path
                            stats[path] = key
            self._files, self._stats = files, stats
            self._parsed = {p: v for p, v in self._parsed.items() if p in stats}
            self._load_live()

    def _load_live(self) -> None:
        path = self.folder / LIVE_FILE
        key = _stat_key(path)
        if key == self._live_key:
            return
        self._live_key = key
        try:
            self._live, self._live_error = self._read_live(path), None
        except PromptError as exc:  # keep serving the last good rollout
            self._live_error = str(exc)
            log.warning("%s (still serving %s)", exc, self._live or "nothing")

    @staticmethod
    def _read_live(path: Path) -> dict[str, int]:
        if not path.is_file():
            raise PromptError(f"{path}: missing; it must say which version each prompt serves")
        return _parse_live(path.read_text(encoding="utf-8"), path)

    # -- lookups ---------------------------------------------------------------------

    def names(self) -> list[str]:
        self.refresh()
        with self._lock:
            return sorted(self._files)

    def versions(self, name: str) -> list[int]:
        self.refresh()
        with self._lock:
            return sorted(self._versions(name))

    def _versions(self, name: str) -> dict[int, Path]:
        if name not in self._files:
            known = ", ".join(sorted(self._files)) or "none"
            raise PromptError(f"unknown prompt {name!r} in {self.folder} (known: {known})")
        return self._files[name]

    def live_version(self, name: str) -> int:
        self.refresh()
        with self._lock:
            self._versions(name)
            if name not in self._live:
                problem = self._live_error or f"{self.folder / LIVE_FILE}: no entry for {name!r}"
                raise PromptError(problem)
            return self._live[name]

    def _path(self, name: str, version: int | str | None) -> tuple[int, Path]:
        number = parse_version(version)
        if number is None:
            number = self.live_version(name)
        with self._lock:
            files = self._versions(name)
            if number not in files:
                have = ", ".join(f"v{v}" for v in sorted(files))
                raise PromptError(f"{self.folder / name}: no version {number} (have {have})")
            return number, files[number]

    def get(self, name: str, version: int | str | None = None) -> Prompt:
        """The prompt version (None = live), re-parsed when its file changed."""
        self.refresh()
        number, path = self._path(name, version)
        with self._lock:
            key = self._stats[path]
            cached = self._parsed.get(path)
            if cached is not None and cached[0] == key:
                return cached[1]
            try:
                prompt = Prompt.parse(
                    path.read_text(encoding="utf-8"), path, name=name, version=number
                )
            except (PromptError, OSError) as exc:
                if cached is None:
                    raise PromptError(str(exc)) from None
                log.warning("%s (still serving the last good %s)", exc, cached[1].ref)
                self._parsed[path] = (key, cached[1])  # warn once per change
                return cached[1]
            self._parsed[path] = (key, prompt)
            return prompt

    def source(self, name: str, version: int | None = None) -> str:
        self.refresh()
        return self._path(name, version)[1].read_text(encoding="utf-8")

    def cases(self, name: str) -> list[EvalCase]:
        """The prompt's eval cases ([] without a cases.yaml)."""
        path = self.folder / name / CASES_FILE
        if not path.is_file():
            return []
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except yaml.YAMLError as exc:
            raise PromptError(f"{path}: {_yaml_error(exc, 0)}") from None
        if data is None:
            return []
        if not isinstance(data, list):
            raise PromptError(f"{path}: must be a list of cases (- id: ..., inputs:, expect:)")
        cases, seen = [], set()
        for i, raw in enumerate(data):
            label = raw.get("id", f"#{i + 1}") if isinstance(raw, dict) else f"#{i + 1}"
            try:
                case = EvalCase.model_validate(raw)
            except ValidationError as exc:
                raise PromptError(_pydantic_errors(exc, f"{path}: case {label}")) from None
            if case.id in seen:
                raise PromptError(f"{path}: case id {case.id!r} appears twice")
            seen.add(case.id)
            cases.append(case)
        return cases

    # -- changes ---------------------------------------------------------------------

    def save_version(self, name: str, text: str) -> Prompt:
        """Validate ``text`` and store it as the next version; it is not live until rolled out.

        The eval cases must render against it too: otherwise saving could leave the
        folder in a state where `validate_all` refuses to start the service.
        """
        with self._lock:
            self.refresh(force=True)
            number = max(self.versions(name)) + 1
            path = self.folder / name / f"v{number}.md"
            text = with_version(text, number, str(path))
            if not text.endswith("\n"):
                text += "\n"
            prompt = Prompt.parse(text, path, name=name, version=number)
            errors = [f"case {c.id}: {e}" for c, e in self._case_errors(prompt, self.cases(name))]
            if errors:
                raise PromptError(f"{path}: eval cases do not render: " + "; ".join(errors))
            try:
                _write_new(path, text)
            except FileExistsError:
                raise PromptError(f"{path}: was just created by someone else; save again") from None
            self.refresh(force=True)
            return self.get(name, number)

    def roll_out(self, name: str, version: int) -> None:
        """Make ``version`` the one served by default (an atomic rewrite of live.yaml)."""
        with self._lock:
            self.refresh(force=True)
            prompt = self.get(name, version)
            path = self.folder / LIVE_FILE
            text = path.read_text(encoding="utf-8") if path.is_file() else ""
            line = re.compile(rf"^{re.escape(name)}:[^\n]*$", re.MULTILINE)
            entry = f"{name}: {prompt.spec.version}"
            if line.search(text):
                text = line.sub(entry, text, count=1)
            else:
                text = (text if not text or text.endswith("\n") else text + "\n") + entry + "\n"
            _parse_live(text, path)  # never write a file that would not read back
            _atomic_write(path, text)
            self.refresh(force=True)
            log.info("rolled out %s", prompt.ref)

    # -- validation ------------------------------------------------------------------

    @staticmethod
    def _case_errors(prompt: Prompt, cases: list[EvalCase]) -> list[tuple[EvalCase, str]]:
        errors = []
        for case in cases:
            try:
                prompt.render(**case.inputs)
            except PromptError as exc:
                errors.append((case, str(exc)))
            if prompt.spec.output_schema is None:
                errors.extend(
                    (
                        case,
                        f"{prompt.ref} has no output_schema, so check path {c.path!r} "
                        "cannot apply (free text)",
                    )
                    for c in case.expect
                    if c.path is not None
                )
        return errors

    def validate_all(self) -> list[str]:
        """Every problem in the folder, one readable line each; [] when it can serve."""
        self.refresh(force=True)
        if not self.folder.is_dir():
            return [f"{self.folder}: prompt folder not found"]
        errors: list[str] = []
        try:
            live = self._read_live(self.folder / LIVE_FILE)
        except PromptError as exc:
            errors.append(str(exc))
            live = {}
        names = self.names()
        errors.extend(
            f"{self.folder / LIVE_FILE}: {n!r} has no prompt folder" for n in live if n not in names
        )
        for name in names:
            prompts: dict[int, Prompt] = {}
            for number, path in sorted(self._files[name].items()):
                try:
                    prompts[number] = Prompt.parse(
                        path.read_text(encoding="utf-8"), path, name=name, version=number
                    )
                except PromptError as exc:
                    errors.append(str(exc))
            if name not in live:
                errors.append(f"{self.folder / LIVE_FILE}: no entry for {name!r}")
            elif live[name] not in self._files[name]:
                errors.append(f"{self.folder / LIVE_FILE}: {name}: version {live[name]} not found")
            try:
                cases = self.cases(name)
            except PromptError as exc:
                errors.append(str(exc))
                continue
            targets = {live.get(name), max(self._files[name])}
            for number in sorted(t for t in targets if t in prompts):
                errors.extend(
                    f"{self.folder / name / CASES_FILE}: case {case.id}: {problem}"
                    for case, problem in self._case_errors(prompts[number], cases)
                )
        return list(dict.fromkeys(errors))
