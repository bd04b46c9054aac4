"""Request and response models of the public API (they define the OpenAPI schema)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from features.events import Event


class Demographics(BaseModel):
    model_config = ConfigDict(extra="forbid")

    age: int | None = Field(default=None, ge=1, le=120)
    gender: Literal["M", "F"] | None = None
    occupation: str | None = Field(default=None, max_length=64)


class OnboardingRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "demographics": {"age": 34, "gender": "F"},
                    "liked_genres": ["Comedy"],
                    "liked_titles": ["toy story"],
                },
            ]
        },
    )

    user_id: int | None = Field(
        default=None, ge=1, le=2**62, description="Omit to have the service allocate one."
    )
    demographics: Demographics = Field(default_factory=Demographics)
    liked_genres: list[Annotated[str, Field(max_length=40)]] = Field(
        default_factory=list, max_length=20
    )
    liked_item_ids: list[int] = Field(default_factory=list, max_length=50)
    liked_titles: list[Annotated[str, Field(min_length=1, max_length=200)]] = Field(
        default_factory=list,
        max_length=20,
        description="Free-text titles, resolved to items by title search.",
    )


class OnboardingResponse(BaseModel):
    user_id: int
    liked_item_ids: list[int]
    liked_genres: list[str]
    resolved_titles: dict[str, int] = Field(description="Each liked title -> the item it matched.")


class ItemSummary(BaseModel):
    item_id: int
    title: str
    year: int | None
    genres: list[str]


class Explanation(BaseModel):
    objectives: dict[str, float] = Field(description="P(click), P(complete), P(like), P(regret).")


class FeedItemOut(ItemSummary):
    score: float
    sources: list[str] = Field(description="Candidate sources and rules that placed the item.")
    reason: str
    explain: Explanation | None = None


class FeedResponse(BaseModel):
    user_id: int
    request_id: str
    variant: str = Field(description="Experiment variant; record it on events from this page.")
    prompts: dict[str, str] = Field(
        default_factory=dict,
        description="Prompt versions that shaped the page (the variant's LLM re-rank), "
        "e.g. {'rerank': 'rerank_local@v2'}; empty when no LLM step ran.",
    )
    bundle: str
    stage: str = Field(description="`personalized` or the cold-start stage that served the feed.")
    stale: bool = Field(description="True when served from the in-process snapshot.")
    served_at: int = Field(
        description="The request time the page was built for (unix seconds on the service's "
        "clock: the data's own time when serving a historical catalog)."
    )
    clock: str = Field(description="`wall` or `data` (see the `clock` setting).")
    items: list[FeedItemOut]
    timings_ms: dict[str, float] | None = None


class ItemDetail(ItemSummary):
    overview: str | None
    popularity: int = Field(description="Distinct users with an event in the catalog.")
    impressions: float = Field(description="Live impressions from the event stream.")
    clicks: float
    likes: float
    ctr: float | None = Field(description="clicks / impressions; null before any impression.")


class ScoredItem(ItemSummary):
    score: float
    source: str


class EventBatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    events: list[Event] = Field(min_length=1, max_length=500)


class EventResult(BaseModel):
    event_id: str
    status: Literal["stored", "duplicate"]


class EventsResponse(BaseModel):
    accepted: int
    duplicates: int
    results: list[EventResult]


class ErrorResponse(BaseModel):
    """The body of every error answer (4xx/5xx), documented on each route."""

    error: str
    message: str
    detail: list[dict] | None = None


class TokenRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    user_id: int = Field(ge=1, le=2**62, description="The one user the token acts for.")
    ttl_s: int = Field(default=3600, ge=60, le=30 * 86400, description="Lifetime, seconds.")


class TokenResponse(BaseModel):
    token: str
    user_id: int
    expires_at: int = Field(description="Unix seconds (wall clock).")


class ReloadResponse(BaseModel):
    switched: bool
    bundle: str


class ChatRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "message": "something light and funny for a rainy Sunday, no horror",
                    "user_id": 7,
                },
                {"message": "something older", "session_id": "0f8e4c2a9b7d4e1f"},
            ]
        },
    )

    message: str = Field(min_length=1, max_length=500)
    user_id: int | None = Field(default=None, ge=1, le=2**62, description="For personalisation.")
    session_id: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z0-9_-]{8,64}$",
        description="Continue a conversation; omit to start one (the reply carries its id).",
    )
    count: int | None = Field(default=None, ge=1, le=50, description="Default: as asked, or 10.")
    stream: bool = Field(
        default=False,
        description="Answer as server-sent events (also chosen by `Accept: text/event-stream`): "
        "`query`, `items`, `token`*, `reply`?, `explanations`*, `done`, each `data` JSON.",
    )
    llm: bool = Field(default=True, description="false: answer without the LLM (rules only).")


class ChatItem(ItemSummary):
    score: float
    sources: list[str] = Field(
        description="request, similar (to a named title), taste, implied_genre."
    )
    reason: str = Field(description="One line, grounded in what put the item here.")


class ChatResponse(BaseModel):
    session_id: str
    request_id: str = Field(description="Send it with `impression` events for these items.")
    user_id: int | None
    variant: str | None
    query: dict = Field(description="The parsed request: text, genres, years, runtime, ...")
    reply: str = Field(description="The short answer shown above the items.")
    reply_source: str = Field(description="`llm`, or `template` when the LLM was not used.")
    items: list[ChatItem]
    model: str | None = Field(description="The LLM that took part (null: none).")
    prompts: dict[str, str] = Field(description="Prompt versions used, e.g. intent@v1.")
    timings_ms: dict[str, float]
