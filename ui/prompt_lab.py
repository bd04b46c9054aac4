"""The prompt lab tab: edit a prompt file, preview it on inputs, run its cases, save, roll out.

The actions are plain functions over (service, ...) so tests drive them without a
browser; `prompt_lab_tab` only lays out components and maps results onto them.
Preview and "Run eval cases" use the editor's text, saved or not, so a change is
tried before it becomes a version; an unsaved text is a `DraftPrompt`, recorded on
LLM calls as ``name@draft`` so logs never credit it to a saved version. Saving
writes the next version without making it live; "Roll out" is the only way a
version starts serving (it rewrites prompts/live.yaml, picked up by every process
within about a second).
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from llm.prompt_eval import EvalReport, call_prompt, run_cases
from llm.prompts import Prompt, PromptError, PromptRegistry
from ui.prompt_lab_layout import LabComponents, lay_out_lab

if TYPE_CHECKING:
    from app.service import Service

log = logging.getLogger("marquee.ui")

PRIVATE: dict[str, Any] = {"api_visibility": "private"}  # the UI is not a second API
_lock = threading.Lock()
_registries: dict[Path, PromptRegistry] = {}
_clients: dict[str, Any] = {}
# What a draft's `model:` may name besides the configured model: the embedded ones.
LOCAL_MODELS = ("local/smollm2", "local/gemma3", "off")


class LabError(ValueError):
    """Something the person at the screen should fix; shown verbatim."""


@dataclass(frozen=True)
class DraftPrompt(Prompt):
    """The editor's unsaved text: validated like a file, referred to as ``name@draft``."""

    @property
    def ref(self) -> str:
        return f"{self.spec.name}@draft"


# -- service access (the lead wires `prompts` and `llm` on the service; until then build them)


def registry_of(service: Service) -> PromptRegistry:
    registry = getattr(service, "prompts", None)
    if registry is not None:
        return registry
    folder = Path(service.settings.prompts_dir).resolve()
    with _lock:  # one registry per folder, so its hot-reload state is shared
        return _registries.setdefault(folder, PromptRegistry(folder))


def client_of(service: Service, model: str | None = None):
    """The service's LLM client, or one for ``model`` (a prompt's own model override)."""
    client = getattr(service, "llm", None)
    if client is not None and (model is None or model == client.model):
        return client
    from llm.client import client_from_settings

    settings = service.settings
    name = model or settings.llm_model
    allowed = {settings.llm_model, *LOCAL_MODELS}
    if name not in allowed:  # a draft must not pick any provider (cost, and unbounded clients)
        raise LabError(f"model {name!r} is not allowed here; use one of {sorted(allowed)}")
    with _lock:
        if name not in _clients:
            _clients[name] = client_from_settings(settings.model_copy(update={"llm_model": name}))
        return _clients[name]


# -- actions ----------------------------------------------------------------------------------


def prompt_names(service: Service) -> list[str]:
    return registry_of(service).names()


def version_choices(service: Service, name: str) -> tuple[list[tuple[str, str]], str | None]:
    """Dropdown (label, value) pairs, the live one marked, and the live value."""
    registry = registry_of(service)
    try:
        live: int | None = registry.live_version(name)
    except PromptError:
        live = None
    versions = registry.versions(name)
    choices = [(f"v{v} (live)" if v == live else f"v{v}", str(v)) for v in reversed(versions)]
    return choices, str(live if live is not None else max(versions))


def default_inputs(registry: PromptRegistry, name: str, prompt: Prompt | None = None) -> str:
    """The first eval case's inputs as JSON, or every declared input set to null."""
    cases = registry.cases(name)
    value = cases[0].inputs if cases else dict.fromkeys(prompt.spec.inputs if prompt else [])
    return json.dumps(value, indent=2, ensure_ascii=False)


def describe(prompt: Prompt, live: int | None) -> str:
    spec = prompt.spec
    state = "live" if spec.version == live else "not live"
    answer = "JSON (output_schema)" if spec.output_schema else "free text"
    params = ", ".join(f"{k}={v}" for k, v in spec.params.model_dump(exclude_none=True).items())
    model = f" · model {spec.model}" if spec.model else ""
    return (
        f"**{prompt.ref}** ({state}) · `{prompt.path}` · answer: {answer} · {params}{model}"
        f"\n\n{spec.description}"
    )


def open_prompt(service: Service, name: str, version: str | int | None) -> tuple[str, str, str]:
    """(file text, inputs JSON, description) for the editor."""
    registry = registry_of(service)
    prompt = registry.get(name, version)
    try:
        live: int | None = registry.live_version(name)
    except PromptError:
        live = None
    return prompt.source, default_inputs(registry, name, prompt), describe(prompt, live)


def editor_prompt(service: Service, name: str, version: str | int | None, text: str) -> Prompt:
    """The saved version when the editor holds its text unchanged, else a validated draft."""
    registry = registry_of(service)
    if not name:
        raise LabError("Choose a prompt first.")
    text = _lf(text)
    saved = registry.get(name, version)
    if text.strip() == saved.source.strip():
        return saved
    return DraftPrompt.parse(text, registry.folder / name / "(draft)", name=name)


def parse_inputs(raw: str) -> dict[str, Any]:
    try:
        value = json.loads(raw or "{}")
    except json.JSONDecodeError as exc:
        raise LabError(f"Inputs are not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise LabError('Inputs must be a JSON object, e.g. {"message": "..."}.')
    return value


@dataclass(frozen=True)
class PreviewResult:
    ref: str
    model: str
    messages: list[dict[str, str]]
    output: str
    latency_ms: float
    error: str | None


def preview(
    service: Service, name: str, version: str | int | None, text: str, inputs_json: str
) -> PreviewResult:
    """Render the editor's prompt on the inputs, call the LLM once, show everything."""
    prompt = editor_prompt(service, name, version, text)
    inputs = parse_inputs(inputs_json)
    client = client_of(service, prompt.spec.model)
    if not client.enabled:
        messages = prompt.render(**inputs)
        return PreviewResult(prompt.ref, client.model, messages, "", 0.0, "The LLM is off.")
    outcome = call_prompt(prompt, inputs, client)
    output = outcome.text
    if outcome.error is None and prompt.spec.output_schema is not None:
        output = json.dumps(outcome.value, indent=2, ensure_ascii=False)
    return PreviewResult(
        prompt.ref,
        outcome.model,
        outcome.messages,
        output,
        round(outcome.latency_ms, 1),
        outcome.error,
    )


def run_eval(service: Service, name: str, version: str | int | None, text: str) -> EvalReport:
    """Every eval case of the prompt, on the editor's text."""
    prompt = editor_prompt(service, name, version, text)
    registry = registry_of(service)
    if not registry.cases(name):
        raise LabError(f"{name} has no eval cases (prompts/{name}/cases.yaml).")
    client = client_of(service, prompt.spec.model)
    if not client.enabled:
        raise LabError("The LLM is off (MARQUEE_LLM_MODEL=off): nothing to evaluate.")
    return run_cases(registry, name, client, prompt=prompt)


def eval_rows(report: EvalReport) -> list[list[Any]]:
    rows = []
    for row in report.rows:
        output = row.output if isinstance(row.output, str) else json.dumps(row.output)
        rows.append(
            [
                row.id,
                "pass" if row.passed else "FAIL",
                round(row.latency_ms),
                output if row.error is None else "",
                "; ".join(row.reasons),
            ]
        )
    return rows


def inputs_from_request(service: Service, name: str, user_id: str, message: str) -> str:
    """The prompt's inputs as the chat fills them for a real request (and user), as JSON:
    previews then run on real candidates and real facts, not on hand-written examples."""
    if not name:
        raise LabError("Choose a prompt first.")
    if not (message or "").strip():
        raise LabError("Type a request to fill the inputs from.")
    from app.funnel import UserState

    raw = (user_id or "").strip()
    if raw and not raw.isdigit():
        raise LabError(f"User id must be a number, got {raw!r}.")
    user = service.user_state(int(raw))[0] if raw else UserState.anonymous()
    try:
        inputs = service.chat().prompt_inputs(name, service.funnel, user, message.strip())
    except ValueError as exc:
        raise LabError(str(exc)) from None
    return json.dumps(inputs, indent=2, ensure_ascii=False)


def require_editor(service: Service, key: str) -> None:
    """Saving and rolling out change what production serves: on top of the admin account,
    an API key with the `admin` scope is required."""
    from app.security.keys import KeyRing

    settings = service.settings
    ring = KeyRing(settings.api_keys.get_secret_value(), settings.api_keys_file)
    found = ring.lookup((key or "").strip()) if key else None
    if found is None or "admin" not in found.scopes:
        raise LabError("Saving and rolling out need an API key with the admin scope.")


def save_new_version(service: Service, name: str, text: str) -> Prompt:
    """Validate the editor's text and store it as the next version (not live)."""
    if not name:
        raise LabError("Choose a prompt first.")
    return registry_of(service).save_version(name, _lf(text))


def _lf(text: str) -> str:
    """Browsers may send CRLF; prompt files are LF."""
    return (text or "").replace("\r\n", "\n")


def roll_out(service: Service, name: str, version: str | int | None) -> str:
    registry = registry_of(service)
    if not name or version in (None, ""):
        raise LabError("Choose a prompt and a version first.")
    prompt = registry.get(name, version)
    registry.roll_out(name, prompt.spec.version)
    return f"{prompt.ref} is live: new requests use it from now on."


def messages_markdown(messages: list[dict[str, str]]) -> str:
    """Rendered messages for the screen; fenced, so prompt text never renders as markup."""
    parts = []
    for m in messages:
        fence = "`" * max(4, _longest_backticks(m["content"]) + 1)
        parts.append(f"**{m['role']}**\n{fence}text\n{m['content']}\n{fence}")
    return "\n\n".join(parts)


def _longest_backticks(text: str) -> int:
    longest = run = 0
    for ch in text:
        run = run + 1 if ch == "`" else 0
        longest = max(longest, run)
    return longest


def _message(exc: BaseException) -> str:
    """One line for the screen; unexpected errors go to the log with their traceback."""
    if isinstance(exc, PromptError | LabError):
        return f"⚠️ {exc}"
    from llm.client import LLMError

    if isinstance(exc, LLMError):
        return f"⚠️ LLM error: {exc}"
    log.exception("prompt lab action failed", exc_info=exc)
    return f"⚠️ Something went wrong ({type(exc).__name__}); it was logged."


# -- wiring (the layout is in prompt_lab_layout.py) ------------------------------------------------


def prompt_lab_tab(get_service: Callable[[], Service]) -> None:
    """Lay out the lab inside the caller's `gr.Tab`; the service is asked for per action."""
    lab = lay_out_lab()
    _wire_loading(lab, get_service)
    _wire_trials(lab, get_service)
    _wire_publishing(lab, get_service)


def _wire_loading(lab: LabComponents, get_service: Callable[[], Service]) -> None:
    """Page load and Reload list the prompts; choosing a prompt or version opens it."""
    import gradio as gr

    def load_names(current: str | None = None) -> tuple:
        try:
            names = prompt_names(get_service())
        except Exception as exc:
            return gr.skip(), _message(exc)
        value = current if current in names else (names[0] if names else None)
        return gr.Dropdown(choices=names, value=value), ""

    def load_versions(name: str | None, current: str | None = None) -> tuple:
        if not name:
            return gr.skip(), gr.skip(), gr.skip(), gr.skip()
        try:
            service = get_service()
            choices, live = version_choices(service, name)
            value = current if current in {v for _, v in choices} else live
            source, inputs, about = open_prompt(service, name, value)
        except Exception as exc:
            return gr.skip(), gr.skip(), gr.skip(), _message(exc)
        return gr.Dropdown(choices=choices, value=value), source, inputs, about

    def load_version(name: str | None, version: str | None) -> tuple:
        if not name or not version:
            return gr.skip(), gr.skip(), gr.skip()
        try:
            return open_prompt(get_service(), name, version)
        except Exception as exc:
            return gr.skip(), gr.skip(), _message(exc)

    gr.on(None, load_names, inputs=None, outputs=[lab.prompt_dd, lab.status], **PRIVATE)
    opened = [lab.version_dd, lab.editor, lab.inputs_box, lab.info]
    listed = lab.reload_btn.click(load_names, lab.prompt_dd, [lab.prompt_dd, lab.status], **PRIVATE)
    listed.then(load_versions, [lab.prompt_dd, lab.version_dd], opened, **PRIVATE)
    # a newly chosen prompt opens at its live version; Reload keeps the chosen one
    lab.prompt_dd.change(load_versions, lab.prompt_dd, opened, **PRIVATE)
    lab.version_dd.input(
        load_version,
        [lab.prompt_dd, lab.version_dd],
        [lab.editor, lab.inputs_box, lab.info],
        **PRIVATE,
    )


def _wire_trials(lab: LabComponents, get_service: Callable[[], Service]) -> None:
    """Preview, Run eval cases and Fill inputs: they try the editor's text, saved or not."""
    import gradio as gr

    def do_preview(name: str, version: str, text: str, inputs: str) -> tuple:
        try:
            result = preview(get_service(), name, version, text, inputs)
        except Exception as exc:
            return gr.skip(), gr.skip(), _message(exc)
        note = f"**{result.ref}** on `{result.model}` · {result.latency_ms:.0f} ms"
        if result.error:
            note += f" · ⚠️ {result.error}"
        return messages_markdown(result.messages), result.output, note

    def do_eval(name: str, version: str, text: str) -> tuple:
        try:
            report = run_eval(get_service(), name, version, text)
        except Exception as exc:
            return gr.skip(), _message(exc)
        return eval_rows(report), f"**{report.summary()}**"

    def do_fill(name: str, user_id: str, message: str) -> tuple:
        try:
            return inputs_from_request(get_service(), name, user_id, message), ""
        except Exception as exc:
            return gr.skip(), _message(exc)

    lab.preview_btn.click(
        do_preview,
        [lab.prompt_dd, lab.version_dd, lab.editor, lab.inputs_box],
        [lab.rendered, lab.output, lab.status],
        **PRIVATE,
    )
    lab.eval_btn.click(
        do_eval, [lab.prompt_dd, lab.version_dd, lab.editor], [lab.table, lab.status], **PRIVATE
    )
    lab.fill_btn.click(
        do_fill,
        [lab.prompt_dd, lab.real_user, lab.real_message],
        [lab.inputs_box, lab.status],
        **PRIVATE,
    )


def _wire_publishing(lab: LabComponents, get_service: Callable[[], Service]) -> None:
    """Save as new version and Roll out: the two actions that need the editor key."""
    import gradio as gr

    def do_save(name: str, text: str, key: str) -> tuple:
        try:
            service = get_service()
            require_editor(service, key)
            prompt = save_new_version(service, name, text)
            choices, _ = version_choices(service, name)
        except Exception as exc:
            return gr.skip(), gr.skip(), _message(exc)
        value = str(prompt.spec.version)
        note = (
            f"Saved **{prompt.ref}** (`{prompt.path}`), not live yet: press Roll out to serve it."
        )
        return gr.Dropdown(choices=choices, value=value), prompt.source, note

    def do_roll_out(name: str, version: str, key: str) -> tuple:
        try:
            service = get_service()
            require_editor(service, key)
            note = roll_out(service, name, version)
            choices, _ = version_choices(service, name)
            about = open_prompt(service, name, version)[2]
        except Exception as exc:
            return gr.skip(), gr.skip(), _message(exc)
        return gr.Dropdown(choices=choices, value=version), about, f"✅ {note}"

    lab.save_btn.click(
        do_save,
        [lab.prompt_dd, lab.editor, lab.editor_key],
        [lab.version_dd, lab.editor, lab.status],
        **PRIVATE,
    )
    lab.rollout_btn.click(
        do_roll_out,
        [lab.prompt_dd, lab.version_dd, lab.editor_key],
        [lab.version_dd, lab.info, lab.status],
        **PRIVATE,
    )
