"""The one LLM client of the service; see `llm.client.llm_client` for how calls behave.

Modules: `budget` (per-request Budget, errors, call records), `cache` (response cache),
`llm_client` (LLMClient over litellm and the embedded models, client_from_settings).
"""

from __future__ import annotations

from llm.client.budget import (
    Budget,
    BudgetSpent,
    CallRecord,
    LLMError,
    LLMResult,
    StructuredResult,
)
from llm.client.cache import ResponseCache
from llm.client.llm_client import LOCAL_PREFIX, LLMClient, _validated, client_from_settings

__all__ = [
    "LOCAL_PREFIX",
    "Budget",
    "BudgetSpent",
    "CallRecord",
    "LLMClient",
    "LLMError",
    "LLMResult",
    "ResponseCache",
    "StructuredResult",
    "_validated",
    "client_from_settings",
]
