"""Parsing and rendering one prompt file: YAML front matter, a sandboxed Jinja body, messages.

Part of llm.prompts; the rules are in the package docstring.
"""

from __future__ import annotations

import json
import re
import secrets
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Self

import jinja2
import yaml
from jinja2 import meta
from jinja2.sandbox import SandboxedEnvironment
from pydantic import ValidationError

from llm.prompts.spec import PromptError, PromptSpec

# Role markers are swapped for this per-process token before Jinja sees a template, so
# a marker typed by a user inside an input stays plain text (no role injection).
_MARKER_LINE = re.compile(r"^\[(system|user|assistant)\][ \t]*$", re.MULTILINE)
_NONCE = secrets.token_hex(8)
_SENTINEL = re.compile(rf"\x00{_NONCE}:(system|user|assistant)\x00")
_FRONT_VERSION = re.compile(r"^version:[^\n]*$", re.MULTILINE)


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
