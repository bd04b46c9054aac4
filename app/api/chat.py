"""Chat: one message (or a follow-up) answered as JSON or as server-sent events.

Session ids are the server's: a turn without `session_id` starts a session bound to its
caller (key or token, and user); continuing someone else's session is a 403, an unknown
one a 404. Each LLM turn spends one of the user's (or key's) daily turns; past them the
chat answers from rules only and says so in `X-LLM-Budget`.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Iterator

from fastapi import APIRouter, HTTPException, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse

from app.api.deps import WITH_BODY, ChatReader, Svc, act_for, error
from app.funnel import UserState
from app.schemas import ChatItem, ChatRequest, ChatResponse
from app.security.keys import Principal
from app.security.sessions import SessionOwners

log = logging.getLogger("marquee.api")
router = APIRouter()


def _owner_of(who: Principal, user_id: int | None) -> str:
    return f"{who.subject}|{user_id or '-'}"


def _check_session(owners: SessionOwners, session_id: str | None, owner: str) -> None:
    if session_id is None:
        return
    found = owners.owner(session_id)
    if found is None:
        raise HTTPException(404, "unknown or expired session_id: omit it to start a session")
    if found != owner:
        raise HTTPException(
            403,
            "this session belongs to another caller or user: continue it with the key and "
            "user_id that started it",
        )


@router.post(
    "/v1/chat",
    response_model=ChatResponse,
    responses={
        **WITH_BODY,
        404: error("Unknown or expired session"),
        200: {
            "content": {"text/event-stream": {}},
            "description": "JSON, or events when streaming",
        },
    },
    tags=["chat"],
)
def chat(body: ChatRequest, request: Request, service: Svc, who: ChatReader) -> Response:
    """A mood request ("a 90s heist movie, nothing violent") or a follow-up to the
    session's last one ("something older"). Parsed by rules plus the LLM where the
    message supports it, searched within the constraints, personalised, ranked, and
    explained; with `stream` (or `Accept: text/event-stream`) as server-sent events.
    With an end-user token `user_id` defaults to the token's user (another: 403)."""
    user_id = body.user_id if body.user_id is not None else who.user_id
    act_for(who, user_id)
    owners: SessionOwners = request.app.state.session_owners
    owner = _owner_of(who, user_id)
    _check_session(owners, body.session_id, owner)
    spender = f"user:{user_id}" if user_id else who.subject
    use_llm = body.llm and request.app.state.limits.llm_turn(spender)
    budget = {"X-LLM-Budget": "ok" if use_llm or not body.llm else "exhausted"}
    user = service.user_state(user_id)[0] if user_id else UserState.anonymous()
    chat_variant = service.chat_variant(user_id)
    variant = chat_variant.name
    chat = service.chat()
    streaming = body.stream or "text/event-stream" in request.headers.get("accept", "")
    request_id = uuid.uuid4().hex
    turn = (service.funnel, user, body.message, body.session_id, body.count, use_llm)
    if streaming:
        events = chat.stream(*turn, variant=chat_variant)
        return StreamingResponse(
            _sse(events, {"request_id": request_id, "variant": variant}, owners, owner),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no", **budget},
        )
    out = chat.reply(*turn, variant=chat_variant)
    done = out["done"]
    owners.bind(done["session_id"], owner)
    response = ChatResponse(
        session_id=done["session_id"],
        request_id=request_id,
        user_id=user_id,
        variant=variant,
        query=out["query"],
        reply=out["reply"].strip(),
        reply_source=done["reply_source"],
        items=[ChatItem(**c) for c in out["items"]],
        model=done["model"],
        prompts=done["prompts"],
        timings_ms=done["timings_ms"],
    )
    return JSONResponse(response.model_dump(), headers=budget)


def _sse(events, extra: dict, owners: SessionOwners, owner: str) -> Iterator[str]:
    """Chat events as server-sent events; `done` also carries the request id and variant
    (and binds the session to its caller before the client can learn its id)."""
    try:
        for event in events:
            data = event["data"]
            if event["event"] == "done":
                owners.bind(data["session_id"], owner)
                data = {**data, **extra}
            yield f"event: {event['event']}\ndata: {json.dumps(data)}\n\n"
    except Exception as exc:  # headers are sent: report the failure in-band, then end
        log.exception("chat stream failed")
        yield f"event: error\ndata: {json.dumps({'message': str(exc)[:200]})}\n\n"
