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

Modules: `spec` (front matter and eval-case models), `parsing` (one file: front matter,
sandboxed Jinja, messages), `registry` (the folder: versions, live, reload, save, roll out).
"""

from __future__ import annotations

from llm.prompts.parsing import (
    Prompt,
    parse_version,
    split_front_matter,
    split_messages,
    with_version,
)
from llm.prompts.registry import PromptRegistry
from llm.prompts.spec import Check, EvalCase, PromptError, PromptParams, PromptSpec

__all__ = [
    "Check",
    "EvalCase",
    "Prompt",
    "PromptError",
    "PromptParams",
    "PromptRegistry",
    "PromptSpec",
    "parse_version",
    "split_front_matter",
    "split_messages",
    "with_version",
]
