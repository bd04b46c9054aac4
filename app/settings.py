"""Runtime settings, read from `MARQUEE_*` environment variables.

One settings object keeps every path and endpoint overridable without code changes:
CI points `MARQUEE_DATA_DIR` at a local copy of the datasets, tests point the
download URL at a loopback server.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

# sha256("marquee-dev"): the public development key, read and events only.
DEV_API_KEYS = "read+events:sha256:b518660a2213e34d4061e17fba98b012484cd762540d20f05b1534fd82bc5aa2"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MARQUEE_", env_file=".env", extra="ignore")

    data_dir: Path | None = Field(
        default=None,
        description="Folder holding ml-latest-small/, ml-100k/ and tmdb-5000/. "
        "When unset (or a dataset is missing there) MovieLens is downloaded.",
    )
    download_base_url: str = Field(
        default="https://files.grouplens.org/datasets/movielens",
        description="Where `<dataset>.zip` is fetched from when no local copy exists.",
    )
    cache_dir: Path = Field(
        default=Path.home() / ".cache" / "marquee",
        description="Downloaded and verified datasets are extracted here.",
    )
    artifacts_dir: Path = Field(
        default=Path("artifacts"),
        description="Versioned outputs: catalog tables, models, indexes, reports.",
    )
    seed: int = 42
    dataset: str = Field(default="ml-latest-small", description="Catalog the service serves.")
    redis_url: str | None = Field(
        default=None,
        description="Online feature store and event stream, e.g. redis://127.0.0.1:6379/0. "
        "Unset: an in-process store and event log (one process, nothing survives a restart).",
    )
    redis_prefix: str = Field(default="marquee", description="Namespace of every Redis key.")
    api_keys: SecretStr = Field(
        default=SecretStr(DEV_API_KEYS),
        description="Comma-separated API keys, each `<scopes>:sha256:<hex digest of the key>` "
        "with scopes joined by `+` from read, events, backfill, admin (`marquee keys new` "
        "makes one). The default is the public development key `marquee-dev` (read+events): "
        "the server refuses to listen beyond loopback while it is configured.",
    )
    api_keys_file: Path | None = Field(
        default=None,
        description="TOML file of more keys (`[[keys]]` name, scopes, sha256); re-read when "
        "it changes, so keys rotate without a restart.",
    )
    token_secret: SecretStr | None = Field(
        default=None,
        description="Signs end-user tokens (POST /v1/tokens). Unset: a random secret per "
        "process (tokens die with it and are not shared between workers).",
    )
    token_ttl_s: int = Field(
        default=3600, ge=60, le=30 * 86400, description="Longest life of an end-user token."
    )
    ui_users_file: Path | None = Field(
        default=None,
        description="TOML file of UI accounts (`marquee users add`); passwords scrypt-hashed, "
        "re-read when it changes. Unset: development accounts demo/demo and admin/admin "
        "(refused beyond loopback).",
    )
    event_skew_s: int = Field(
        default=300,
        ge=0,
        description="How far an event's own timestamp may be from the service clock "
        "(else 422). Keys with the `backfill` scope may send any past time.",
    )
    rate_chat: str = Field(
        default="30/minute",
        description="Chat requests per key or user (a `limits` string; empty: no limit).",
    )
    rate_events: str = Field(default="1200/minute", description="Event batches per key or user.")
    rate_default: str = Field(default="6000/minute", description="Other /v1 requests per key.")
    rate_login: str = Field(
        default="10/minute", description="UI sign-in attempts per account name (guessing)."
    )
    llm_turns_per_user_day: int = Field(
        default=200,
        ge=0,
        description="Chat turns with the LLM per user (or per key, anonymous) per day; past "
        "it, chat answers from rules only.",
    )
    serve_worker: bool = Field(
        default=True, description="Run the nearline event consumer inside each API process."
    )
    host: str = "127.0.0.1"
    port: int = 8000
    experiments_path: Path | None = Field(
        default=None, description="TOML experiment config; unset = the built-in default."
    )
    clock: str = Field(
        default="auto",
        pattern="^(auto|wall|data)$",
        description="Request time: `wall`; `data` = the catalog's last event plus the time "
        "since start (a historical dataset, so models see the time ranges they were "
        "trained on); `auto` = what the bundle recorded (data for a catalog whose events "
        "ended more than 30 days ago).",
    )
    source_timeout_s: float = Field(
        default=0.25,
        gt=0,
        description="A feed request's deadline for its candidate sources; one still running "
        "then is left out of that page (offline evaluation waits for every source).",
    )
    bundle_poll_s: float = Field(
        default=30.0, description="How often the service looks for a newer model bundle (0: never)."
    )
    # LLM layer ------------------------------------------------------------------------
    llm_model: str = Field(
        default="local/smollm2",
        description="litellm model string: `local/smollm2` or `local/gemma3` (embedded, "
        "in-process), `openai/gpt-4o-mini`, `anthropic/claude-3-5-haiku-latest`, "
        "`ollama/llama3.1`, `hosted_vllm/<model>` (with llm_api_base), or `off`.",
    )
    llm_api_base: str | None = Field(
        default=None, description="Server of an OpenAI-compatible provider (vLLM, Ollama)."
    )
    llm_api_key: SecretStr | None = Field(
        default=None, description="Provider key; unset = the provider's own environment variable."
    )
    llm_timeout_s: float = Field(default=20.0, description="Per call, before a retry.")
    llm_retries: int = Field(default=1, ge=0, le=5, description="Retries of a failed call.")
    llm_cache_ttl_s: int = Field(
        default=7 * 24 * 3600, description="Identical calls are answered from Redis this long."
    )
    llm_threads: int = Field(default=2, ge=1, description="CPU threads of the embedded model.")
    feed_threads: int = Field(
        default=2,
        ge=1,
        description="Threads that build feed pages (numpy/torch and Redis work, kept off the "
        "event loop so /healthz, the UI and chat streams never wait behind a slow feed).",
    )
    llm_rerank: bool | None = Field(
        default=None,
        description="LLM re-rank of the last candidates; unset = the measured default per "
        "model (off for the embedded models, which did not beat the ranker on LOO-full).",
    )
    llm_explain: bool | None = Field(
        default=None,
        description="LLM-phrased one-line reasons; unset = the default per model (off for "
        "the embedded models, whose sentences were generic or wrong; on for a real model).",
    )
    feed_llm_budget_ms: float = Field(
        default=800.0, description="What a feed may spend on an experiment's LLM re-rank."
    )
    chat_budget_ms: float = Field(
        default=5000.0,
        description="Chat's LLM work (intent, re-rank, reply, explanations) "
        "stops when this is spent; what is left keeps its deterministic result.",
    )
    prompts_dir: Path = Field(
        default=Path("prompts"), description="Prompt files (edited by the prompt lab)."
    )


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
