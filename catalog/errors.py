"""One error type for every data problem, so the CLI can show it without a traceback."""

from __future__ import annotations

from pathlib import Path


class DataError(Exception):
    """A dataset file is missing, truncated, malformed or fails its checksum.

    Carries the file and (when known) the 1-based line so the message points the
    user straight at the problem.
    """

    def __init__(self, path: Path | str, message: str, line: int | None = None) -> None:
        self.path = Path(path)
        self.line = line
        self.reason = message
        where = f"{self.path}:{line}" if line is not None else str(self.path)
        super().__init__(f"{where}: {message}")
