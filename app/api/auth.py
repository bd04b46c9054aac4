"""End-user tokens: a client app's backend (admin key) mints one per signed-in person."""

from __future__ import annotations

from fastapi import APIRouter, Request

from app.api.deps import ADMIN, WITH_BODY
from app.schemas import TokenRequest, TokenResponse

router = APIRouter()


@router.post(
    "/v1/tokens",
    response_model=TokenResponse,
    status_code=201,
    dependencies=ADMIN,
    responses=WITH_BODY,
    tags=["auth"],
)
def issue_token(body: TokenRequest, request: Request) -> TokenResponse:
    """A signed token that reads and writes as `user_id` only (feed, events, chat), sent
    as `Authorization: Bearer <token>`; it expires after `ttl_s` (capped by settings)."""
    token, expires = request.app.state.tokens.issue(body.user_id, body.ttl_s)
    return TokenResponse(token=token, user_id=body.user_id, expires_at=expires)
