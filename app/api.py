"""FastAPI app: the feed, onboarding, items, search, events and operations endpoints.

Handlers are plain `def`s: the work is numpy/torch and a sync Redis client, which
FastAPI runs in its thread pool; torch and numpy release the GIL while they work.
Every `/v1` route needs an API key in `X-API-Key`; probes, metrics and the docs
do not.
"""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from typing import Annotated

from fastapi import Depends, FastAPI, HTTPException, Path, Query, Request, Response, Security
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, StreamingResponse
from fastapi.security import APIKeyHeader
from pydantic import Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from app.funnel import FeedQuery, UserState
from app.schemas import (
    ChatItem,
    ChatRequest,
    ChatResponse,
    EventBatch,
    EventResult,
    EventsResponse,
    FeedResponse,
    ItemDetail,
    OnboardingRequest,
    OnboardingResponse,
    ReloadResponse,
    ScoredItem,
)
from app.service import Service, Unavailable
from app.settings import Settings, get_settings
from catalog.search import TitleIndex

API_KEY_HEADER = "X-API-Key"
log = logging.getLogger("marquee.api")
UserId = Annotated[int, Path(ge=1, le=2**62, description="Catalog or onboarded user id.")]
ItemId = Annotated[int, Path(ge=1, le=2**62)]
# Bounded like ItemId: an id past int64 used to reach numpy and fail with a 500.
ItemIds = list[Annotated[int, Field(ge=1, le=2**62)]]


def _readable(exc: RequestValidationError) -> tuple[str, list[dict]]:
    detail = [
        {"loc": [str(p) for p in err.get("loc", ())], "msg": err.get("msg", "")}
        for err in exc.errors()
    ]
    message = "; ".join(f"{'.'.join(d['loc'])}: {d['msg']}" for d in detail)
    return message, detail


def _service(request: Request) -> Service:
    return request.app.state.service


def _titles(request: Request) -> TitleIndex:
    return request.app.state.titles


_header = APIKeyHeader(name=API_KEY_HEADER, auto_error=False)


def require_key(request: Request, key: Annotated[str | None, Security(_header)]) -> None:
    if key is None:
        raise HTTPException(401, f"missing API key: send it in the {API_KEY_HEADER} header")
    if key not in request.app.state.api_keys:
        raise HTTPException(401, "invalid API key")


Svc = Annotated[Service, Depends(_service)]
Titles = Annotated[TitleIndex, Depends(_titles)]


def create_app(
    service: Service | None = None,
    settings: Settings | None = None,
    mount: Callable[[FastAPI], None] | None = None,
) -> FastAPI:
    """The feed API. `mount` adds more to the same app (the UI: `ui.server.create_app`),
    so the UI sits on top of the API without the API knowing of it."""
    settings = settings or (service.settings if service else get_settings())
    keys = {k.strip() for k in settings.api_keys.split(",") if k.strip()}
    feed_pool = ThreadPoolExecutor(settings.feed_threads, thread_name_prefix="feed")

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        if app.state.service is None:
            app.state.service = Service.from_settings(settings)
        app.state.titles = app.state.service.titles
        app.state.service.start_background()
        # Everything loaded so far lives until shutdown; freezing it keeps the collector
        # from re-scanning millions of long-lived objects (pauses of tens of ms) per request.
        gc.collect()
        gc.freeze()
        yield
        app.state.service.stop_background()
        feed_pool.shutdown(wait=False, cancel_futures=True)

    app = FastAPI(
        title="Marquee",
        version="1",
        description="Movie feed, onboarding, items, search and feedback events. "
        f"Send your key in `{API_KEY_HEADER}` (development default: `marquee-dev`).",
        lifespan=lifespan,
    )
    app.state.service = service
    app.state.api_keys = keys

    auth = [Depends(require_key)]
    responses = {
        401: {"description": "Missing or invalid API key"},
        422: {"description": "Invalid input"},
    }
    with_404 = {**responses, 404: {"description": "Unknown item"}}
    # FastAPI answers 400 to a JSON body it cannot decode (e.g. bytes that are not UTF-8).
    with_body = {**responses, 400: {"description": "Unparseable request body"}}

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        message, detail = _readable(exc)
        body = {"error": "invalid request", "message": message, "detail": detail}
        return JSONResponse(body, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        body = {"error": _REASONS.get(exc.status_code, "error"), "message": str(exc.detail)}
        return JSONResponse(body, status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(Unavailable)
    async def unavailable(request: Request, exc: Unavailable) -> JSONResponse:
        body = {"error": "unavailable", "message": str(exc)}
        return JSONResponse(body, status_code=503, headers={"Retry-After": "1"})

    app.add_middleware(ObserveMiddleware, state=app.state)

    # feed ------------------------------------------------------------------------------

    def summary(service: Service, item_id: int) -> dict:
        return service.funnel.summaries[int(item_id)]

    def check_genres(service: Service, names: list[str], field: str) -> frozenset[str]:
        vocab = {g.lower(): g for g in service.funnel.meta.genre_names}
        unknown = [n for n in names if n.lower() not in vocab]
        if unknown:
            raise HTTPException(
                422, f"{field}: unknown genre(s) {unknown}; choose from {sorted(vocab.values())}"
            )
        return frozenset(vocab[n.lower()] for n in names)

    @app.get(
        "/v1/users/{user_id}/feed",
        response_model=FeedResponse,
        dependencies=auth,
        responses=responses,
        tags=["feed"],
    )
    async def feed(
        service: Svc,
        user_id: UserId,
        k: Annotated[int, Query(ge=1, le=100, description="Page size.")] = 20,
        exclude: Annotated[ItemIds, Query(max_length=500, description="Item ids to skip.")] = [],  # noqa: B006
        genres: Annotated[list[str], Query(max_length=20, description="Only these genres.")] = [],  # noqa: B006
        exclude_genres: Annotated[list[str], Query(max_length=20)] = [],  # noqa: B006
        maturity: Annotated[str, Query(pattern="^(adult|kids)$")] = "adult",
        explain: bool = False,
    ) -> JSONResponse:
        """The user's feed; an unknown user gets a cold-start feed, not a 404.

        Why an executor: the page is numpy/torch work plus synchronous Redis calls. On the
        event loop a slow Redis would stall every other request (health checks, the UI,
        chat streams); on `feed_threads` dedicated threads it stalls only feeds.
        """

        def page() -> dict:
            query = FeedQuery(
                k=k,
                exclude=frozenset(exclude),
                maturity=maturity,
                include_genres=check_genres(service, genres, "genres"),
                exclude_genres=check_genres(service, exclude_genres, "exclude_genres"),
            )
            out = service.feed(user_id, query)
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
                "bundle": out.bundle,
                "stage": out.result.stage,
                "stale": out.stale,
                "items": items,
                "timings_ms": out.result.timings_ms if explain else None,
            }

        body = await asyncio.get_running_loop().run_in_executor(feed_pool, page)
        # The hot path skips re-validating its own output (FeedResponse documents it and the
        # schema tests check it); that validation costs about a tenth of the request.
        return JSONResponse(body)

    # onboarding ------------------------------------------------------------------------

    @app.post(
        "/v1/users",
        response_model=OnboardingResponse,
        status_code=201,
        dependencies=auth,
        responses=with_body,
        tags=["users"],
    )
    def onboard(body: OnboardingRequest, service: Svc, index: Titles) -> OnboardingResponse:
        """Sign-up: demographics, liked genres and titles seed the cold-start feed."""
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

    # items and search ------------------------------------------------------------------

    def known_item(service: Service, item_id: int) -> None:
        if item_id not in service.item_ids:
            raise HTTPException(404, f"no item {item_id}")

    @app.get(
        "/v1/items/{item_id}",
        response_model=ItemDetail,
        dependencies=auth,
        responses=with_404,
        tags=["items"],
    )
    def item(item_id: ItemId, service: Svc) -> ItemDetail:
        known_item(service, item_id)
        row = service.funnel.items.loc[item_id]
        try:
            counts = service.nearline.counters(["impression", "click", "like"])
        except Exception:  # live counters are optional for a detail page
            counts = {"impression": {}, "click": {}, "like": {}}
        shown = counts["impression"].get(item_id, 0.0)
        clicks = counts["click"].get(item_id, 0.0)
        overview = row["overview"]
        return ItemDetail(
            **summary(service, item_id),
            overview=str(overview) if isinstance(overview, str) and overview else None,
            popularity=int(row["popularity"]),
            impressions=shown,
            clicks=clicks,
            likes=counts["like"].get(item_id, 0.0),
            ctr=clicks / shown if shown else None,
        )

    @app.get(
        "/v1/items/{item_id}/similar",
        response_model=list[ScoredItem],
        dependencies=auth,
        responses=with_404,
        tags=["items"],
    )
    def similar(
        item_id: ItemId, service: Svc, k: Annotated[int, Query(ge=1, le=100)] = 10
    ) -> list[ScoredItem]:
        """What people watch with this title (co-visitation), then the closest stories."""
        known_item(service, item_id)
        return [
            ScoredItem(**summary(service, c.item_id), score=c.score, source=c.source)
            for c in service.funnel.similar(item_id, k)
        ]

    @app.get(
        "/v1/search",
        response_model=list[ScoredItem],
        dependencies=auth,
        responses=responses,
        tags=["items"],
    )
    def search(
        service: Svc,
        index: Titles,
        q: Annotated[str, Query(min_length=1, max_length=200, description="Title words.")],
        k: Annotated[int, Query(ge=1, le=100)] = 10,
    ) -> list[ScoredItem]:
        return [
            ScoredItem(**summary(service, item_id), score=score, source="title")
            for item_id, score in index.search(q, k)
        ]

    # events ----------------------------------------------------------------------------

    @app.post(
        "/v1/events",
        response_model=EventsResponse,
        status_code=202,
        dependencies=auth,
        responses={**with_body, 503: {"description": "Event log unavailable"}},
        tags=["events"],
    )
    def events(body: EventBatch, service: Svc) -> EventsResponse:
        """Append feedback to the event stream; a repeated `event_id` is a duplicate."""
        unknown = sorted({e.item_id for e in body.events} - service.item_ids)
        if unknown:
            raise HTTPException(422, f"events: unknown item id(s) {unknown[:20]}")
        ids = [e.event_id for e in body.events]
        if len(set(ids)) != len(ids):
            raise HTTPException(422, "events: event_id must be unique within a batch")
        fresh = service.ingest(body.events)
        return EventsResponse(
            accepted=sum(fresh),
            duplicates=len(fresh) - sum(fresh),
            results=[
                EventResult(event_id=i, status="stored" if f else "duplicate")
                for i, f in zip(ids, fresh, strict=True)
            ],
        )

    # chat ------------------------------------------------------------------------------

    @app.post(
        "/v1/chat",
        response_model=ChatResponse,
        dependencies=auth,
        responses={
            **with_body,
            200: {
                "content": {"text/event-stream": {}},
                "description": "JSON, or events when streaming",
            },
        },
        tags=["chat"],
    )
    def chat(body: ChatRequest, request: Request, service: Svc) -> Response:
        """A mood request ("a 90s heist movie, nothing violent") or a follow-up to the
        session's last one ("something older"). Parsed by rules plus the LLM where the
        message supports it, searched within the constraints, personalised, ranked, and
        explained; with `stream` (or `Accept: text/event-stream`) as server-sent events."""
        user = service.user_state(body.user_id)[0] if body.user_id else UserState.anonymous()
        config = service.variant(body.user_id) if body.user_id else None
        variant = config.name if config else None
        reranker = service.reranker(True) if config and config.llm_rerank else None
        chat = service.chat()
        streaming = body.stream or "text/event-stream" in request.headers.get("accept", "")
        request_id = uuid.uuid4().hex
        if streaming:
            events = chat.stream(
                service.funnel,
                user,
                body.message,
                body.session_id,
                body.count,
                use_llm=body.llm,
                reranker=reranker,
            )
            return StreamingResponse(
                _sse(events, {"request_id": request_id, "variant": variant}),
                media_type="text/event-stream",
                headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
            )
        out = chat.reply(
            service.funnel,
            user,
            body.message,
            body.session_id,
            body.count,
            use_llm=body.llm,
            reranker=reranker,
        )
        done = out["done"]
        response = ChatResponse(
            session_id=done["session_id"],
            request_id=request_id,
            user_id=body.user_id,
            variant=variant,
            query=out["query"],
            reply=out["reply"].strip(),
            reply_source=done["reply_source"],
            items=[ChatItem(**c) for c in out["items"]],
            model=done["model"],
            prompts=done["prompts"],
            timings_ms=done["timings_ms"],
        )
        return JSONResponse(response.model_dump())

    # operations ------------------------------------------------------------------------

    @app.post(
        "/v1/admin/reload",
        response_model=ReloadResponse,
        dependencies=auth,
        responses=responses,
        tags=["operations"],
    )
    def reload(service: Svc) -> ReloadResponse:
        """Switch to the newest complete bundle, if there is one; requests keep flowing."""
        switched = service.reload()
        return ReloadResponse(switched=switched, bundle=service.funnel.version)

    @app.get("/healthz", tags=["operations"])
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", tags=["operations"], responses={503: {"description": "Not ready"}})
    def readyz(request: Request) -> JSONResponse:
        service: Service | None = request.app.state.service
        checks = {"bundle": service is not None}
        if service is not None and service.client is not None:
            try:
                checks["redis"] = bool(service.client.ping())
            except Exception:
                checks["redis"] = False
        # Redis down is degraded, not unready: feeds still come from the snapshot.
        ready = checks["bundle"]
        body = {
            "ready": ready,
            "degraded": not all(checks.values()),
            "checks": checks,
            "warm": bool(service and service.warm),
            "bundle": service.funnel.version if service else None,
        }
        return JSONResponse(body, status_code=200 if ready else 503)

    @app.get("/metrics", tags=["operations"], response_class=PlainTextResponse)
    def metrics(service: Svc) -> Response:
        return Response(service.metrics.render(), media_type="text/plain; version=0.0.4")

    if mount is not None:
        mount(app)
    return app


def _sse(events, extra: dict):
    """Chat events as server-sent events; `done` also carries the request id and variant."""
    try:
        for event in events:
            data = {**event["data"], **extra} if event["event"] == "done" else event["data"]
            yield f"event: {event['event']}\ndata: {json.dumps(data)}\n\n"
    except Exception as exc:  # headers are sent: report the failure in-band, then end
        log.exception("chat stream failed")
        yield f"event: error\ndata: {json.dumps({'message': str(exc)[:200]})}\n\n"


class ObserveMiddleware:
    """Request count and latency per route template, as plain ASGI (no per-request task).

    `state` is the outer app's: inside a mounted sub-app (the UI) `scope["app"]` is the
    sub-app, which knows nothing of the service.
    """

    def __init__(self, app, state) -> None:
        self.app = app
        self.state = state

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def capture(message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, capture)
        finally:
            service: Service | None = getattr(self.state, "service", None)
            if service is not None:
                name = getattr(scope.get("route"), "path", "unmatched")
                service.metrics.latency.labels(route=name).observe(time.perf_counter() - start)
                service.metrics.requests.labels(route=name, status=str(status)).inc()


_REASONS = {
    400: "bad request",
    401: "unauthorized",
    404: "not found",
    405: "method not allowed",
    422: "invalid request",
}
