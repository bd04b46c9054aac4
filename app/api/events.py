"""Feedback events: appended to the event stream, each stored once.

Event time is the server's: a client `timestamp` is accepted only within `event_skew_s`
of the service clock (the data clock when serving a historical catalog), since times
become sorted-set scores, trend-bucket expiries and history order. A key with the
`backfill` scope replays history with its own past times (never future ones).
"""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request

from app.api.deps import WITH_BODY, Svc, Writer, act_for, error
from app.schemas import EventBatch, EventResult, EventsResponse
from app.security.keys import Principal
from app.service import Service

router = APIRouter()


def check_times(body: EventBatch, service: Service, who: Principal, skew_s: int) -> None:
    now = int(service.clock.now())
    earliest = 0 if "backfill" in who.scopes else now - skew_s
    bad = [
        e.event_id
        for e in body.events
        if e.timestamp is not None and not earliest <= e.timestamp <= now + skew_s
    ]
    if bad:
        raise HTTPException(
            422,
            f"events: timestamp more than {skew_s} s from the service clock ({now}) on "
            f"{bad[:20]}; omit it to have the server stamp the time; nothing was stored",
        )


@router.post(
    "/v1/events",
    response_model=EventsResponse,
    status_code=202,
    responses={**WITH_BODY, 503: error("Event log unavailable")},
    tags=["events"],
)
def events(body: EventBatch, request: Request, service: Svc, who: Writer) -> EventsResponse:
    """Append feedback to the event stream; a repeated `event_id` is a duplicate. An
    end-user token writes only its own user's events (else 403, nothing stored)."""
    for user_id in {e.user_id for e in body.events}:
        act_for(who, user_id)
    check_times(body, service, who, request.app.state.settings.event_skew_s)
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
