"""Chat: one message (or a follow-up) answered as JSON or as server-sent events."""

from __future__ import annotations

import json
import logging
import uuid

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse

from app.api.deps import AUTH, WITH_BODY, Svc
from app.funnel import UserState
from app.schemas import ChatItem, ChatRequest, ChatResponse

log = logging.getLogger("marquee.api")
router = APIRouter()


@router.post(
    "/v1/chat",
    response_model=ChatResponse,
    dependencies=AUTH,
    responses={
        **WITH_BODY,
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
    chat_variant = service.chat_variant(body.user_id)
    variant = chat_variant.name
    chat = service.chat()
    streaming = body.stream or "text/event-stream" in request.headers.get("accept", "")
    request_id = uuid.uuid4().hex
    turn = (service.funnel, user, body.message, body.session_id, body.count, body.llm)
    if streaming:
        events = chat.stream(*turn, variant=chat_variant)
        return StreamingResponse(
            _sse(events, {"request_id": request_id, "variant": variant}),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )
    out = chat.reply(*turn, variant=chat_variant)
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


def _sse(events, extra: dict):
    """Chat events as server-sent events; `done` also carries the request id and variant."""
    try:
        for event in events:
            data = {**event["data"], **extra} if event["event"] == "done" else event["data"]
            yield f"event: {event['event']}\ndata: {json.dumps(data)}\n\n"
    except Exception as exc:  # headers are sent: report the failure in-band, then end
        log.exception("chat stream failed")
        yield f"event: error\ndata: {json.dumps({'message': str(exc)[:200]})}\n\n"
