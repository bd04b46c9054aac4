"""The prompt lab's components, laid out; `ui/prompt_lab.py` wires them to its actions.

Layout and wiring are apart so each stays readable: this module only says where every
component sits and which element id the browser test finds it by.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import gradio as gr

EVAL_HEADERS = ["case", "result", "ms", "output", "failed checks"]


@dataclass(frozen=True)
class LabComponents:
    """Every component an event of the lab reads or writes."""

    prompt_dd: gr.Dropdown
    version_dd: gr.Dropdown
    reload_btn: gr.Button
    info: gr.Markdown
    editor: gr.Code
    inputs_box: gr.Code
    real_user: gr.Textbox
    real_message: gr.Textbox
    fill_btn: gr.Button
    preview_btn: gr.Button
    eval_btn: gr.Button
    editor_key: gr.Textbox
    save_btn: gr.Button
    rollout_btn: gr.Button
    status: gr.Markdown
    rendered: gr.Markdown
    output: gr.Code
    table: gr.Dataframe


def lay_out_lab() -> LabComponents:
    """Create the lab's components inside the caller's `gr.Tab`, top to bottom."""
    import gradio as gr

    gr.Markdown(
        "Edit a prompt file, **Preview** it on inputs (or fill them from a real request), "
        "**Run eval cases**, then **Save as new version** (not live yet) and **Roll out** "
        "the version you want served. Saving and rolling out need an API key."
    )
    with gr.Row(equal_height=True):
        prompt_dd = gr.Dropdown(label="Prompt", choices=[], scale=2, elem_id="lab-prompt")
        version_dd = gr.Dropdown(label="Version", choices=[], scale=1, elem_id="lab-version")
        reload_btn = gr.Button("Reload", scale=0, min_width=90, elem_id="lab-reload")
    info = gr.Markdown(elem_id="lab-info")
    with gr.Row(equal_height=False):
        with gr.Column(scale=3):
            editor = gr.Code(
                label="Prompt file (YAML front matter + Jinja body)",
                language="markdown",
                lines=26,
                max_lines=60,
                interactive=True,
                elem_id="lab-editor",
            )
        with gr.Column(scale=2):
            side = _side_column()
    with gr.Row(equal_height=False):
        rendered = gr.Markdown(label="Rendered messages", elem_id="lab-messages")
        output = gr.Code(
            label="Output", language="json", lines=8, interactive=False, elem_id="lab-output"
        )
    table = gr.Dataframe(
        headers=EVAL_HEADERS,
        value=[],
        interactive=False,
        wrap=True,
        label="Eval cases",
        elem_id="lab-eval-table",
    )
    return LabComponents(
        prompt_dd=prompt_dd,
        version_dd=version_dd,
        reload_btn=reload_btn,
        info=info,
        editor=editor,
        rendered=rendered,
        output=output,
        table=table,
        **side,
    )


def _side_column() -> dict[str, Any]:
    """The column beside the editor: inputs, a real request to fill them from, the
    actions and the status line, by their `LabComponents` field names."""
    import gradio as gr

    inputs_box = gr.Code(
        label="Inputs (JSON)",
        language="json",
        lines=10,
        max_lines=30,
        interactive=True,
        elem_id="lab-inputs",
    )
    with gr.Row(equal_height=True):
        real_user = gr.Textbox(
            label="User id", placeholder="empty: anonymous", scale=1, elem_id="lab-user"
        )
        real_message = gr.Textbox(
            label="Real request",
            scale=3,
            placeholder="a 90s thriller, nothing too violent",
            elem_id="lab-request",
        )
        fill_btn = gr.Button("Fill inputs", scale=0, min_width=110, elem_id="lab-fill")
    with gr.Row():
        preview_btn = gr.Button("Preview", variant="primary", elem_id="lab-preview")
        eval_btn = gr.Button("Run eval cases", elem_id="lab-eval")
    editor_key = gr.Textbox(
        label="API key (to save or roll out)", type="password", elem_id="lab-key"
    )
    with gr.Row():
        save_btn = gr.Button("Save as new version", elem_id="lab-save")
        rollout_btn = gr.Button("Roll out", variant="stop", elem_id="lab-rollout")
    status = gr.Markdown(elem_id="lab-status")
    return {
        "inputs_box": inputs_box,
        "real_user": real_user,
        "real_message": real_message,
        "fill_btn": fill_btn,
        "preview_btn": preview_btn,
        "eval_btn": eval_btn,
        "editor_key": editor_key,
        "save_btn": save_btn,
        "rollout_btn": rollout_btn,
        "status": status,
    }
