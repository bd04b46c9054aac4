"""Operations: bundle reload, liveness, readiness and Prometheus metrics."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse, PlainTextResponse

from app.api.deps import ADMIN, RESPONSES, Svc
from app.schemas import ReloadResponse
from app.service import Service

router = APIRouter()


@router.post(
    "/v1/admin/reload",
    response_model=ReloadResponse,
    dependencies=ADMIN,
    responses=RESPONSES,
    tags=["operations"],
)
def reload(service: Svc) -> ReloadResponse:
    """Switch to the newest complete bundle, if there is one; requests keep flowing."""
    switched = service.reload()
    return ReloadResponse(switched=switched, bundle=service.funnel.version)


@router.get("/healthz", tags=["operations"])
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", tags=["operations"], responses={503: {"description": "Not ready"}})
def readyz(request: Request) -> JSONResponse:
    """Ready = a bundle is loaded. Redis down or a background task failing (waiting to be
    restarted) is `degraded`, not unready: feeds still come from the snapshot, and taking
    every replica out of rotation for a fault they all share (Redis out of memory stops
    every worker) would turn a stale feed into an outage. Alert on `degraded` and on
    `marquee_background_up == 0` instead."""
    service: Service | None = request.app.state.service
    checks = {"bundle": service is not None}
    failing: list[str] = []
    if service is not None and service.client is not None:
        try:
            checks["redis"] = bool(service.client.ping())
        except Exception:
            checks["redis"] = False
    if service is not None:
        failing = service.background.failing()
        checks["background"] = not failing
    ready = checks["bundle"]
    body = {
        "ready": ready,
        "degraded": not all(checks.values()),
        "checks": checks,
        "warm": bool(service and service.warm),
        "bundle": service.funnel.version if service else None,
        "background": service.background.status() if service else {},
        "failing": failing,
    }
    return JSONResponse(body, status_code=200 if ready else 503)


@router.get("/metrics", tags=["operations"], response_class=PlainTextResponse)
def metrics(service: Svc) -> Response:
    return Response(service.metrics.render(), media_type="text/plain; version=0.0.4")
