"""`marquee prompts ...`: list, validate, show and evaluate the prompt files.

`validate` is what the service runs before it starts, so CI can fail a bad prompt
edit before a deploy does; `eval --fail-under` lets CI hold a prompt to a pass rate.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.panel import Panel
from rich.progress import Progress
from rich.table import Table

from app.errors import UsageError
from app.settings import get_settings
from llm.prompts import PromptError, PromptRegistry

console = Console()
err_console = Console(stderr=True)

prompts_app = typer.Typer(
    help="Prompt files: list, validate, show, evaluate.", no_args_is_help=True
)


def _registry() -> PromptRegistry:
    folder = get_settings().prompts_dir
    if not folder.is_dir():
        raise UsageError(f"prompt folder {folder} not found (set MARQUEE_PROMPTS_DIR)")
    return PromptRegistry(folder)


def _short(value: Any, width: int = 70) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return text if len(text) <= width else text[: width - 3] + "..."


@prompts_app.command("list")
def list_cmd() -> None:
    """Every prompt with its versions, the live one and what it is for."""
    registry = _registry()
    table = Table("prompt", "versions", "live", "cases", "description")
    for name in registry.names():
        versions = registry.versions(name)
        try:
            live: int | None = registry.live_version(name)
        except PromptError:
            live = None
        try:
            description = registry.get(name, live or max(versions)).spec.description
        except PromptError as exc:
            description = f"[red]invalid:[/] {escape(str(exc))}"
        try:
            cases = str(len(registry.cases(name)))
        except PromptError:
            cases = "[red]invalid[/]"
        table.add_row(
            name,
            ", ".join(f"v{v}" for v in versions),
            f"v{live}" if live else "[red]none[/]",
            cases,
            description,
        )
    console.print(table)


@prompts_app.command("validate")
def validate_cmd() -> None:
    """Check every prompt file, schema, live.yaml entry and eval case (exit 2 on errors)."""
    registry = _registry()
    errors = registry.validate_all()
    if errors:
        for error in errors:
            err_console.print(f"[bold red]error:[/] {escape(error)}", soft_wrap=True)
        err_console.print(f"{len(errors)} problem(s) in {registry.folder}", soft_wrap=True)
        raise typer.Exit(2)
    names = registry.names()
    console.print(f"{len(names)} prompts valid in {registry.folder}: {', '.join(names)}")


def _inputs(registry: PromptRegistry, name: str, raw: str | None) -> dict[str, Any]:
    if raw is not None:
        try:
            value = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise UsageError(f"--inputs is not JSON: {exc}") from None
        if not isinstance(value, dict):
            raise UsageError('--inputs must be a JSON object, e.g. \'{"message": "..."}\'')
        return value
    cases = registry.cases(name)
    if not cases:
        raise UsageError(f"{name} has no eval cases to take inputs from; pass --inputs JSON")
    return cases[0].inputs


@prompts_app.command("show")
def show_cmd(
    name: str = typer.Argument(..., help="Prompt name, e.g. intent"),
    version: str = typer.Option(None, help="Version (default: live), e.g. 2 or v2"),
    inputs: str = typer.Option(None, help="Inputs as a JSON object (default: the first case's)"),
) -> None:
    """Render a prompt's chat messages, as the model receives them."""
    registry = _registry()
    try:
        prompt = registry.get(name, version)
        messages = prompt.render(**_inputs(registry, name, inputs))
    except PromptError as exc:
        raise UsageError(str(exc)) from None
    params = prompt.spec.params.model_dump(exclude_none=True)
    schema = "JSON (output_schema)" if prompt.spec.output_schema else "free text"
    console.print(f"[bold]{prompt.ref}[/] {prompt.path}  params {params}  answer: {schema}")
    for message in messages:
        console.print(Panel(escape(message["content"]), title=message["role"], title_align="left"))


def _client(model: str | None):
    from llm.client import LLMError, client_from_settings

    settings = get_settings()
    if model:
        settings = settings.model_copy(update={"llm_model": model})
    client = client_from_settings(settings)
    if not client.enabled:
        raise UsageError(f"the LLM is off (llm_model={settings.llm_model!r}); pass --model")
    try:
        client.warm_up()
    except LLMError as exc:
        raise UsageError(f"cannot start {client.model}: {exc}") from None
    return client


@prompts_app.command("eval")
def eval_cmd(
    name: str = typer.Argument(..., help="Prompt name, e.g. intent"),
    version: str = typer.Option(None, help="Version (default: live), e.g. 2 or v2"),
    model: str = typer.Option(
        None, help="litellm model (default: the prompt's own model, else MARQUEE_LLM_MODEL)"
    ),
    fail_under: float = typer.Option(
        None, min=0.0, max=1.0, help="Exit 1 when the pass rate is below this (CI), e.g. 0.8"
    ),
) -> None:
    """Run a prompt's eval cases through the LLM: a row per case, then the pass rate."""
    from llm.prompt_eval import run_cases

    registry = _registry()
    try:
        prompt = registry.get(name, version)
        cases = registry.cases(name)
    except PromptError as exc:
        raise UsageError(str(exc)) from None
    if not cases:
        raise UsageError(f"{name} has no eval cases ({registry.folder / name / 'cases.yaml'})")
    client = _client(model or prompt.spec.model)
    logging.getLogger("marquee.llm").setLevel(logging.WARNING)  # the table shows every call
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task(f"{prompt.ref} on {client.model}", total=len(cases))
        report = run_cases(
            registry, name, client, prompt=prompt, on_case=lambda _: progress.advance(task)
        )
    table = Table("case", "result", "ms", "output", "failed checks", title=prompt.ref)
    for row in report.rows:
        table.add_row(
            row.id,
            "[green]pass[/]" if row.passed else "[bold red]FAIL[/]",
            f"{row.latency_ms:.0f}",
            escape(_short(row.output if row.error is None else "-")),
            escape("\n".join(row.reasons)),
        )
    console.print(table)
    colour = "green" if report.passed == report.total else "yellow"
    console.print(f"[bold {colour}]{escape(report.summary())}[/]")
    if fail_under is not None and report.pass_rate < fail_under:
        err_console.print(
            f"[bold red]pass rate {report.pass_rate:.0%} is under {fail_under:.0%}[/]"
        )
        raise typer.Exit(1)
