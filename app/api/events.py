"""Feedback events: appended to the event stream, each stored once."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException

from app.api.deps import AUTH, WITH_BODY, Svc, error
from app.schemas import EventBatch, EventResult, EventsResponse

router = APIRouter()


@router.post(
    "/v1/events",
    response_model=EventsResponse,
    status_code=202,
    dependencies=AUTH,
    responses={**WITH_BODY, 503: error("Event log unavailable")},
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
