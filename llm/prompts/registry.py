"""The prompt folder on disk: versions, the live version, hot reload, saving and rolling out.

Part of llm.prompts; the rules are in the package docstring.
"""

from __future__ import annotations

import logging
import os
import re
import tempfile
import threading
import time
from pathlib import Path

import yaml
from pydantic import ValidationError

from llm.prompts.parsing import (
    Prompt,
    _load_yaml,
    _pydantic_errors,
    _yaml_error,
    parse_version,
    with_version,
)
from llm.prompts.spec import _NAME, _VERSION_FILE, CASES_FILE, LIVE_FILE, EvalCase, PromptError


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


log = logging.getLogger("marquee.prompts")

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
