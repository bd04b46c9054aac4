"""What every router shares: the API-key check, the service handle, path types, answers.

Every `/v1` route needs a scoped API key in `X-API-Key` or an end-user token
(`Authorization: Bearer`); probes, metrics and the docs do not. 401: no or unknown
credentials; 403: the wrong scope, or a token acting for another user; 429: over budget.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException, Path, Request, Security
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from pydantic import Field

from app.schemas import ErrorResponse
from app.security.keys import Principal
from app.security.tokens import TokenError
from app.service import Service
from catalog.search import TitleIndex

API_KEY_HEADER = "X-API-Key"
UserId = Annotated[int, Path(ge=1, le=2**62, description="Catalog or onboarded user id.")]
ItemId = Annotated[int, Path(ge=1, le=2**62)]
# Bounded like ItemId: an id past int64 used to reach numpy and fail with a 500.
ItemIds = list[Annotated[int, Field(ge=1, le=2**62)]]


def _service(request: Request) -> Service:
    return request.app.state.service


def _titles(request: Request) -> TitleIndex:
    return request.app.state.titles


_key_header = APIKeyHeader(
    name=API_KEY_HEADER, auto_error=False, description="A scoped API key (machine clients)."
)
_bearer = HTTPBearer(auto_error=False, description="An end-user token from POST /v1/tokens.")


def authenticate(
    request: Request,
    key: Annotated[str | None, Security(_key_header)],
    bearer: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)],
) -> Principal:
    """The caller: an API key (`X-API-Key`) or an end-user token (`Authorization: Bearer`).
    Every credential presented must be valid, and one is enough: both at once is a 401
    (which one would the request act as?)."""
    challenge = {"WWW-Authenticate": "Bearer"}
    token = None
    if bearer is None and "authorization" in request.headers:  # even an empty one
        raise HTTPException(401, "Authorization must be `Bearer <token>`", headers=challenge)
    if bearer is not None:
        try:
            token = request.app.state.tokens.verify(bearer.credentials)
        except TokenError as exc:
            raise HTTPException(401, str(exc), headers=challenge) from None
    if key and token is not None:
        raise HTTPException(401, "send one credential: an API key or a token, not both")
    if key:
        found = request.app.state.keys.lookup(key)
        if found is None:
            raise HTTPException(401, "invalid API key", headers=challenge)
        return found
    if token is not None:
        return token
    raise HTTPException(
        401,
        f"missing credentials: send an API key in {API_KEY_HEADER} or an end-user token "
        "as `Authorization: Bearer <token>`",
        headers={"WWW-Authenticate": "Bearer"},
    )


def scoped(scope: str, bucket: str = "default"):
    """A dependency: the caller must hold `scope`, within its `bucket` rate budget."""

    def check(request: Request, who: Annotated[Principal, Depends(authenticate)]) -> Principal:
        if scope not in who.scopes:
            kind = "end-user token" if who.user_id is not None else "API key"
            raise HTTPException(403, f"this {kind} lacks the `{scope}` scope")
        wait = request.app.state.limits.check(bucket, who.subject)
        if wait is not None:
            raise HTTPException(
                429,
                f"rate limit of the {bucket} budget reached; retry in {int(wait)} s",
                headers={"Retry-After": str(int(wait))},
            )
        return who

    return check


def act_for(who: Principal, user_id: int | None) -> None:
    """403 unless `who` may act for `user_id` (an end-user token acts only for its user)."""
    if not who.may_act_for(user_id):
        raise HTTPException(403, f"this end-user token acts for user {who.user_id} only")


Svc = Annotated[Service, Depends(_service)]
Titles = Annotated[TitleIndex, Depends(_titles)]
Reader = Annotated[Principal, Depends(scoped("read"))]
ChatReader = Annotated[Principal, Depends(scoped("read", "chat"))]
Writer = Annotated[Principal, Depends(scoped("events", "events"))]
Admin = Annotated[Principal, Depends(scoped("admin"))]

READ = [Depends(scoped("read"))]
ADMIN = [Depends(scoped("admin"))]


def error(description: str) -> dict:
    """An error answer in the OpenAPI docs, with the one body shape every error has."""
    return {"description": description, "model": ErrorResponse}


RESPONSES: dict[int | str, dict] = {
    401: error("Missing or invalid credentials"),
    403: error("The key lacks the scope, or the token is for another user"),
    422: error("Invalid input"),
    429: error("Rate limit reached (see Retry-After)"),
}
WITH_404 = {**RESPONSES, 404: error("Unknown item")}
# FastAPI answers 400 to a JSON body it cannot decode (e.g. bytes that are not UTF-8).
WITH_BODY = {**RESPONSES, 400: error("Unparseable request body")}


def summary(service: Service, item_id: int) -> dict:
    return service.funnel.summaries[int(item_id)]


def check_genres(service: Service, names: list[str], field: str) -> frozenset[str]:
    """The catalog's spelling of each genre, case-insensitively; 422 naming unknown ones."""
    vocab = {g.lower(): g for g in service.funnel.meta.genre_names}
    unknown = [n for n in names if n.lower() not in vocab]
    if unknown:
        raise HTTPException(
            422, f"{field}: unknown genre(s) {unknown}; choose from {sorted(vocab.values())}"
        )
    return frozenset(vocab[n.lower()] for n in names)


def known_item(service: Service, item_id: int) -> None:
    if item_id not in service.item_ids:
        raise HTTPException(404, f"no item {item_id}")
