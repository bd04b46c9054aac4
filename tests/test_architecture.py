"""The package layout, enforced: imports run one way down the funnel, and nothing grows big.

Static and fast: every .py file of the product packages is parsed (never imported), and every
import counts, including the ones inside functions and under TYPE_CHECKING, because a lazy
import that dodges a cycle is still a dependency. Each failure names the files and edges to fix.

Layers (a package imports only its own level or below):
    catalog (0) -> features, retrieval (1) -> ranking (2) -> llm (3) -> app (4) -> ui (5)
features and retrieval share level 1; the one direction the code uses (features reads
retrieval's candidate types) is allowed, the other is not, so they cannot form a cycle.
evaluation and bench sit beside the funnel: they import the stages, and only the CLI
(app/cli*.py) imports them; bench may import evaluation, never the reverse.
"""

from __future__ import annotations

import ast
import re
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]

LEVELS = {"catalog": 0, "features": 1, "retrieval": 1, "ranking": 2, "llm": 3, "app": 4, "ui": 5}
# Same-level edges that are allowed, as (importer, imported).
SAME_LEVEL_ALLOWED = {("features", "retrieval")}
BESIDE = ("evaluation", "bench")
PACKAGES = (*LEVELS, *BESIDE)
# Packages that must take settings as plain values: none of them may import app.
BELOW_APP = ("catalog", "features", "retrieval", "ranking", "llm", "evaluation")
SKIP_DIRS = {".venv", ".git", "artifacts", "__pycache__", "node_modules", ".ruff_cache"}

MAX_MODULE_LINES = 500
MAX_FUNCTION_LINES = 80
MAX_FMT_SKIP = 20
# Built from parts so that this file does not count itself.
FMT_SKIP = re.compile("#" + r"\s*fmt:\s*skip")


@dataclass(frozen=True)
class Edge:
    """One import of package `target` by the module at `path` (line `line`)."""

    source: str
    target: str
    path: str
    line: int
    module: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line} imports {self.module}"


def _walk_py(root: Path) -> Iterator[Path]:
    for path in sorted(root.rglob("*.py")):
        if not SKIP_DIRS & set(path.relative_to(REPO_ROOT).parts):
            yield path


@cache
def package_files() -> tuple[Path, ...]:
    files: list[Path] = []
    for package in PACKAGES:
        folder = REPO_ROOT / package
        if folder.is_dir():
            files.extend(_walk_py(folder))
    return tuple(files)


@cache
def _tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def _rel(path: Path) -> str:
    return path.relative_to(REPO_ROOT).as_posix()


def _imported_modules(tree: ast.Module) -> Iterator[tuple[str, int]]:
    """Absolute module names imported anywhere in the tree (relative ones stay in-package)."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.module, node.lineno
        elif isinstance(node, ast.Call) and _is_dynamic_import(node):
            yield node.args[0].value, node.lineno  # type: ignore[attr-defined]


def _is_dynamic_import(node: ast.Call) -> bool:
    """importlib.import_module("x.y") or __import__("x") with a literal name."""
    func = node.func
    name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
    return (
        name in {"import_module", "__import__"}
        and bool(node.args)
        and isinstance(node.args[0], ast.Constant)
        and isinstance(node.args[0].value, str)
    )


@cache
def edges() -> tuple[Edge, ...]:
    """Every cross-package import among PACKAGES."""
    found: list[Edge] = []
    for path in package_files():
        source = path.relative_to(REPO_ROOT).parts[0]
        for module, line in _imported_modules(_tree(path)):
            target = module.split(".")[0]
            if target in PACKAGES and target != source:
                found.append(Edge(source, target, _rel(path), line, module))
    return tuple(found)


def _fail_if(bad: list, title: str) -> None:
    """Fail with one line per offending file/edge (no assertion repr to wade through)."""
    if bad:
        pytest.fail(f"{title} ({len(bad)}):\n  " + "\n  ".join(str(b) for b in bad), pytrace=False)


def _is_backwards(edge: Edge) -> bool:
    src, dst = LEVELS[edge.source], LEVELS[edge.target]
    return dst > src or (dst == src and (edge.source, edge.target) not in SAME_LEVEL_ALLOWED)


def test_layers_import_only_their_level_or_below() -> None:
    bad = [e for e in edges() if e.source in LEVELS and e.target in LEVELS and _is_backwards(e)]
    _fail_if(
        bad, "backwards imports (order: catalog < features, retrieval < ranking < llm < app < ui)"
    )


def _may_import_beside(edge: Edge) -> bool:
    if edge.source == "bench":
        return edge.target == "evaluation"
    return edge.source == "app" and Path(edge.path).name.startswith("cli")


def test_evaluation_and_bench_are_imported_only_by_the_cli() -> None:
    bad = [e for e in edges() if e.target in BESIDE and not _may_import_beside(e)]
    _fail_if(bad, "imports of evaluation/bench outside app/cli*.py (bench may import evaluation)")


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one package (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    components: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component: list[str] = []
            while True:
                top = stack.pop()
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return components


def _shortest_path(graph: dict[str, set[str]], start: str, goal: str) -> list[str] | None:
    paths = {start: [start]}
    queue = [start]
    for node in queue:
        for nxt in sorted(graph.get(node, ())):
            if nxt == goal:
                return [*paths[node], goal]
            if nxt not in paths:
                paths[nxt] = [*paths[node], nxt]
                queue.append(nxt)
    return None


def elementary_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """For every edge inside a cycle, the shortest cycle through it (deduplicated):
    small enough to read, and each one is a thing to cut."""
    found: dict[tuple[str, ...], list[str]] = {}
    for component in _cycles(graph):
        members = set(component)
        sub = {n: graph.get(n, set()) & members for n in members}
        for src in sorted(sub):
            for dst in sorted(sub[src]):
                back = _shortest_path(sub, dst, src)
                if back is None:
                    continue
                cycle = [src, *back[:-1]]
                turn = cycle.index(min(cycle))
                key = tuple(cycle[turn:] + cycle[:turn])
                found.setdefault(key, list(key))
    return sorted(found.values(), key=lambda c: (len(c), c))


def _edge_lines(src: str, dst: str, limit: int = 3) -> list[str]:
    hits = [str(e) for e in edges() if e.source == src and e.target == dst]
    more = [f"(+{len(hits) - limit} more)"] if len(hits) > limit else []
    return [*hits[:limit], *more]


# Where the side packages would sit if they were layers: used only to say which edges of a
# cycle run against the intended order (evaluation is run by the CLI; bench may drive app).
CYCLE_RANK = {**LEVELS, "evaluation": 3.5, "bench": 4.5}


def _against_order(src: str, dst: str) -> bool:
    low, high = CYCLE_RANK[src], CYCLE_RANK[dst]
    return high > low or (high == low and (src, dst) not in SAME_LEVEL_ALLOWED)


def test_no_package_import_cycles() -> None:
    graph: dict[str, set[str]] = defaultdict(set)
    for edge in edges():
        graph[edge.source].add(edge.target)
    lines = []
    for component in _cycles(graph):
        members = set(component)
        lines.append("cycle among " + ", ".join(component))
        mutual = list(elementary_cycles({n: graph[n] & members for n in members}))
        lines.extend("  " + " <-> ".join(c) for c in mutual if len(c) == 2)
        closing = sorted(
            {
                (e.source, e.target)
                for e in edges()
                if e.source in members
                and e.target in members
                and _against_order(e.source, e.target)
            }
        )
        if not closing:  # no layer explains it: show the shortest loops instead
            lines.extend("  " + " -> ".join([*c, c[0]]) for c in mutual)
        lines.append("  edges against the layer order, which close the cycles:")
        for src, dst in closing:
            lines.extend(f"    {src} -> {dst}: {hit}" for hit in _edge_lines(src, dst))
    if lines:
        pytest.fail("package import cycles:\n  " + "\n  ".join(lines), pytrace=False)


def test_only_app_reads_app_settings() -> None:
    bad = [e for e in edges() if e.source in BELOW_APP and e.target == "app"]
    _fail_if(bad, "modules below app/ that import app (pass settings in as plain values)")


def test_no_module_over_the_line_limit() -> None:
    sizes = [(len(p.read_text(encoding="utf-8").splitlines()), _rel(p)) for p in package_files()]
    bad = [f"{path}: {n} lines" for n, path in sorted(sizes, reverse=True) if n > MAX_MODULE_LINES]
    _fail_if(bad, f"modules over {MAX_MODULE_LINES} lines")


def test_no_function_over_the_line_limit() -> None:
    bad: list[tuple[int, str]] = []
    for path in package_files():
        for node in ast.walk(_tree(path)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = (node.end_lineno or node.lineno) - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    bad.append((length, f"{_rel(path)}:{node.lineno} {node.name}: {length} lines"))
    _fail_if(
        [b for _, b in sorted(bad, reverse=True)], f"functions over {MAX_FUNCTION_LINES} lines"
    )


def test_fmt_skip_markers_stay_rare() -> None:
    counts = {}
    for path in _walk_py(REPO_ROOT):
        n = len(FMT_SKIP.findall(path.read_text(encoding="utf-8")))
        if n:
            counts[_rel(path)] = n
    total = sum(counts.values())
    where = [f"{p}: {n}" for p, n in sorted(counts.items(), key=lambda kv: -kv[1])]
    if total > MAX_FMT_SKIP:
        _fail_if(where, f"{total} formatter-skip markers, more than {MAX_FMT_SKIP}")


def test_the_checks_see_the_packages() -> None:
    """Guards the guards: a path mistake must not make every check above pass vacuously."""
    seen = {p.relative_to(REPO_ROOT).parts[0] for p in package_files()}
    assert set(LEVELS) <= seen, sorted(set(LEVELS) - seen)
    assert any(e.source == "app" and e.target == "ranking" for e in edges())
    assert _cycles({"a": {"b"}, "b": {"a"}, "c": {"a"}}) == [["a", "b"]]
    loops = {"a": {"b"}, "b": {"a", "c"}, "c": {"a"}}
    assert elementary_cycles(loops) == [["a", "b"], ["a", "b", "c"]]
