"""Error bodies every client can read, and per-route request metrics."""

from __future__ import annotations

import time

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from app.service import Service, Unavailable

REASONS = {
    400: "bad request",
    401: "unauthorized",
    403: "forbidden",
    404: "not found",
    405: "method not allowed",
    409: "conflict",
    422: "invalid request",
    429: "too many requests",
}


def _readable(exc: RequestValidationError) -> tuple[str, list[dict]]:
    detail = [
        {"loc": [str(p) for p in err.get("loc", ())], "msg": err.get("msg", "")}
        for err in exc.errors()
    ]
    message = "; ".join(f"{'.'.join(d['loc'])}: {d['msg']}" for d in detail)
    return message, detail


async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
    message, detail = _readable(exc)
    body = {"error": "invalid request", "message": message, "detail": detail}
    return JSONResponse(body, status_code=422)


async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    body = {"error": REASONS.get(exc.status_code, "error"), "message": str(exc.detail)}
    return JSONResponse(body, status_code=exc.status_code, headers=exc.headers)


async def _unavailable(request: Request, exc: Unavailable) -> JSONResponse:
    body = {"error": "unavailable", "message": str(exc)}
    return JSONResponse(body, status_code=503, headers={"Retry-After": "1"})


def add_error_handlers(app: FastAPI) -> None:
    """One body shape for every error: {"error": reason, "message": what to fix}."""
    app.add_exception_handler(RequestValidationError, _invalid)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Unavailable, _unavailable)


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
