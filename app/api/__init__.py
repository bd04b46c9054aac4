"""FastAPI app: the feed, onboarding, items, search, events, chat and operations endpoints.

Each group of routes is a router in its own module; `create_app` composes them with the
service, the API keys and the error handlers. Handlers that do numpy/torch work and
synchronous Redis calls are plain `def`s (FastAPI runs them in its thread pool) or hand
the work to a dedicated executor (the feed), never on the event loop.
"""

from __future__ import annotations

import gc
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager

from fastapi import FastAPI

from app.api import auth, chat, events, feed, items, ops
from app.api.deps import API_KEY_HEADER
from app.api.observe import ObserveMiddleware, add_error_handlers
from app.security.keys import KeyRing
from app.security.rate import RateLimits
from app.security.sessions import SessionOwners
from app.security.tokens import TokenSigner
from app.service import Service
from app.settings import Settings, get_settings

__all__ = ["API_KEY_HEADER", "create_app"]


def create_app(
    service: Service | None = None,
    settings: Settings | None = None,
    mount: Callable[[FastAPI], None] | None = None,
) -> FastAPI:
    """The feed API. `mount` adds more to the same app (the UI: `ui.server.create_app`),
    so the UI sits on top of the API without the API knowing of it."""
    settings = settings or (service.settings if service else get_settings())
    feed_pool = ThreadPoolExecutor(settings.feed_threads, thread_name_prefix="feed")

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        if app.state.service is None:
            app.state.service = Service.from_settings(settings)
        app.state.titles = app.state.service.titles
        app.state.session_owners = SessionOwners(app.state.service.client, settings.redis_prefix)
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
        description="Movie feed, onboarding, items, search and feedback events. Send a "
        f"scoped API key in `{API_KEY_HEADER}` (scopes: read, events, backfill, admin) or "
        "an end-user token from `POST /v1/tokens` as `Authorization: Bearer <token>`.",
        lifespan=lifespan,
    )
    app.state.service = service
    install_security(app, settings)
    app.state.feed_pool = feed_pool
    add_error_handlers(app)
    app.add_middleware(ObserveMiddleware, state=app.state)
    for module in (feed, items, events, chat, auth, ops):
        app.include_router(module.router)
    if mount is not None:
        mount(app)
    return app


def install_security(app: FastAPI, settings: Settings) -> None:
    """Keys, token signer and rate limits on `app.state`, where the dependencies and the
    UI find them (the UI signs people in against the same settings)."""
    app.state.settings = settings
    app.state.keys = KeyRing(settings.api_keys.get_secret_value(), settings.api_keys_file)
    secret = settings.token_secret.get_secret_value() if settings.token_secret else None
    app.state.tokens = TokenSigner(secret, settings.token_ttl_s)
    budgets = {
        "chat": settings.rate_chat,
        "events": settings.rate_events,
        "default": settings.rate_default,
        "login": settings.rate_login,
    }
    app.state.limits = RateLimits(
        budgets, settings.llm_turns_per_user_day, settings.redis_url, settings.redis_prefix
    )
