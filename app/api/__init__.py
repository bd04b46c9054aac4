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

from app.api import chat, events, feed, items, ops
from app.api.deps import API_KEY_HEADER
from app.api.observe import ObserveMiddleware, add_error_handlers
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
    app.state.api_keys = {k.strip() for k in settings.api_keys.split(",") if k.strip()}
    app.state.feed_pool = feed_pool
    add_error_handlers(app)
    app.add_middleware(ObserveMiddleware, state=app.state)
    for module in (feed, items, events, chat, ops):
        app.include_router(module.router)
    if mount is not None:
        mount(app)
    return app
