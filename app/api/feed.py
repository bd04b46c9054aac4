"""The feed and sign-up: what apps call to show a person their page."""

from __future__ import annotations

import asyncio
import uuid
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import JSONResponse
from pydantic import StringConstraints

from app.api.deps import (
    RESPONSES,
    WITH_BODY,
    ItemIds,
    Reader,
    Svc,
    Titles,
    UserId,
    Writer,
    act_for,
    check_genres,
    error,
    summary,
)
from app.funnel import FeedQuery
from app.schemas import FeedResponse, OnboardingRequest, OnboardingResponse

router = APIRouter()
Genre = Annotated[str, StringConstraints(max_length=40)]


@router.get(
    "/v1/users/{user_id}/feed",
    response_model=FeedResponse,
    responses=RESPONSES,
    tags=["feed"],
)
async def feed(
    request: Request,
    service: Svc,
    who: Reader,
    user_id: UserId,
    k: Annotated[int, Query(ge=1, le=100, description="Page size.")] = 20,
    exclude: Annotated[ItemIds, Query(max_length=500, description="Item ids to skip.")] = [],  # noqa: B006
    genres: Annotated[list[Genre], Query(max_length=20, description="Only these genres.")] = [],  # noqa: B006
    exclude_genres: Annotated[list[Genre], Query(max_length=20)] = [],  # noqa: B006
    maturity: Annotated[str, Query(pattern="^(adult|kids)$")] = "adult",
    explain: bool = False,
    at: Annotated[
        int | None,
        Query(
            ge=0,
            le=2**40,
            description="Build the page as of this data time (unix seconds): replays of a "
            "historical catalog, e.g. events replayed with their own timestamps. Only on "
            "the data clock.",
        ),
    ] = None,
) -> JSONResponse:
    """The user's feed; an unknown user gets a cold-start feed, not a 404.

    Why an executor: the page is numpy/torch work plus synchronous Redis calls. On the
    event loop a slow Redis would stall every other request (health checks, the UI,
    chat streams); on `feed_threads` dedicated threads it stalls only feeds.
    """
    act_for(who, user_id)
    if at is not None and service.clock.mode != "data":
        raise HTTPException(400, "`at` is only accepted when serving on the data clock")

    def page() -> dict:
        query = FeedQuery(
            k=k,
            exclude=frozenset(exclude),
            maturity=maturity,
            include_genres=check_genres(service, genres, "genres"),
            exclude_genres=check_genres(service, exclude_genres, "exclude_genres"),
        )
        out = service.feed(user_id, query, at)
        items = [
            {
                **summary(service, it.item_id),
                "score": it.score,
                "sources": list(it.sources),
                "reason": it.reason,
                "explain": {"objectives": it.objectives} if explain else None,
            }
            for it in out.result.items
        ]
        return {
            "user_id": user_id,
            "request_id": uuid.uuid4().hex,
            "variant": out.variant,
            "prompts": out.prompts,
            "bundle": out.bundle,
            "stage": out.result.stage,
            "stale": out.stale,
            "served_at": out.served_at,
            "clock": service.clock.mode,
            "items": items,
            "timings_ms": out.result.timings_ms if explain else None,
        }

    body = await asyncio.get_running_loop().run_in_executor(request.app.state.feed_pool, page)
    # The hot path skips re-validating its own output (FeedResponse documents it and the
    # schema tests check it); that validation costs about a tenth of the request.
    return JSONResponse(body)


@router.post(
    "/v1/users",
    response_model=OnboardingResponse,
    status_code=201,
    responses={**WITH_BODY, 409: error("The user id exists")},
    tags=["users"],
)
def onboard(
    body: OnboardingRequest, service: Svc, index: Titles, who: Writer
) -> OnboardingResponse:
    """Sign-up: demographics, liked genres and titles seed the cold-start feed. An
    existing user (catalog, onboarded or with events) is never overwritten: 409."""
    if who.user_id is not None:
        raise HTTPException(403, "sign-up needs an API key with the `events` scope, not a token")
    if body.user_id is not None and service.user_state(body.user_id)[1]:
        raise HTTPException(409, f"user {body.user_id} exists; omit user_id to get a new one")
    genres = sorted(check_genres(service, body.liked_genres, "liked_genres"))
    unknown = [i for i in body.liked_item_ids if i not in service.item_ids]
    if unknown:
        raise HTTPException(422, f"liked_item_ids: unknown item id(s) {unknown}")
    resolved: dict[str, int] = {}
    for title in body.liked_titles:
        hits = index.search(title, 1)
        if not hits:
            raise HTTPException(422, f"liked_titles: no title matches {title!r}")
        resolved[title] = hits[0][0]
    liked = list(dict.fromkeys([*body.liked_item_ids, *resolved.values()]))
    profile = {
        "demographics": body.demographics.model_dump(exclude_none=True),
        "liked_genres": genres,
        "liked_item_ids": liked,
    }
    user_id = service.onboard(body.user_id, profile)
    return OnboardingResponse(
        user_id=user_id, liked_item_ids=liked, liked_genres=genres, resolved_titles=resolved
    )
