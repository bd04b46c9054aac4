"""A strict delimited-file reader that reports the file and line of any problem.

pandas' fast parser reports malformed rows poorly (or silently coerces them), and
the raw files are small (~100k rows), so a checked pure-Python pass is affordable
and gives messages a user can act on.
"""

from __future__ import annotations

import csv
import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from catalog.errors import DataError

Parser = Callable[[str], Any]
log = logging.getLogger("marquee.catalog")


def opt_int(value: str) -> int | None:
    return int(value) if value.strip() else None


def opt_float(value: str) -> float | None:
    return float(value) if value.strip() else None


def _check_file(path: Path) -> None:
    if not path.is_file():
        raise DataError(path, "file is missing")
    size = path.stat().st_size
    if size == 0:
        raise DataError(path, "file is empty")
    with path.open("rb") as fh:
        fh.seek(size - 1)
        if fh.read(1) not in (b"\n", b"\r"):
            with path.open("rb") as count:
                last_line = sum(1 for _ in count)
            raise DataError(
                path, "file does not end with a newline: it looks truncated", line=last_line
            )


def read_table(
    path: Path,
    columns: Sequence[tuple[str, Parser]],
    *,
    delimiter: str = ",",
    header: Sequence[str] | None = None,
    encoding: str = "utf-8",
    extra_fields: int = 0,
    tolerate_bad_rows: int = 0,
) -> pd.DataFrame:
    """Parse `path` into a DataFrame whose columns are named and typed by `columns`.

    `header`, when given, must equal the file's first row. `extra_fields` allows
    that many trailing fields per row beyond `columns`, parsed as strings under
    the names `_extra0..` (ml-100k's genre flags are read that way).
    `tolerate_bad_rows` lets that many malformed rows be skipped, each logged with
    its line (real releases carry the odd broken placeholder row); one more fails.
    """
    _check_file(path)
    names = [name for name, _ in columns] + [f"_extra{i}" for i in range(extra_fields)]
    parsers = [parser for _, parser in columns] + [str] * extra_fields
    values: list[list[Any]] = [[] for _ in names]
    expected = len(names)
    skipped = 0

    def bad_row(message: str, line: int) -> None:
        nonlocal skipped
        skipped += 1
        if skipped > tolerate_bad_rows:
            raise DataError(path, message, line)
        log.warning("%s:%d: skipped malformed row: %s", path, line, message)

    try:
        with path.open(newline="", encoding=encoding) as fh:
            reader = csv.reader(fh, delimiter=delimiter)
            start = 1
            for row in reader:
                line, start = start, reader.line_num + 1
                if header is not None and line == 1:
                    if [c.strip() for c in row] != list(header):
                        raise DataError(
                            path, f"unexpected header {row}; expected {list(header)}", line
                        )
                    continue
                if not row:
                    continue
                if len(row) != expected:
                    bad_row(f"expected {expected} fields, found {len(row)}: {row!r}", line)
                    continue
                try:
                    parsed = [parse(raw) for parse, raw in zip(parsers, row, strict=True)]
                except (ValueError, TypeError):
                    col = _first_bad(parsers, row)
                    bad_row(f"column '{names[col]}': cannot parse {row[col]!r}", line)
                    continue
                for col, value in enumerate(parsed):
                    values[col].append(value)
    except UnicodeDecodeError as exc:
        raise DataError(path, f"not valid {encoding} text ({exc.reason})") from None
    except csv.Error as exc:
        raise DataError(path, f"malformed CSV: {exc}", line=start) from None
    return pd.DataFrame(dict(zip(names, values, strict=True)))


def _first_bad(parsers: Sequence[Parser], row: Sequence[str]) -> int:
    for col, (parse, raw) in enumerate(zip(parsers, row, strict=True)):
        try:
            parse(raw)
        except (ValueError, TypeError):
            return col
    return 0
