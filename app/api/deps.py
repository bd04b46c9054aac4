"""What every router shares: the API-key check, the service handle, path types, answers.

Every `/v1` route needs an API key in `X-API-Key`; probes, metrics and the docs do not.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException, Path, Request, Security
from fastapi.security import APIKeyHeader
from pydantic import Field

from app.schemas import ErrorResponse
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


_header = APIKeyHeader(name=API_KEY_HEADER, auto_error=False)


def require_key(request: Request, key: Annotated[str | None, Security(_header)]) -> None:
    if key is None:
        raise HTTPException(401, f"missing API key: send it in the {API_KEY_HEADER} header")
    if key not in request.app.state.api_keys:
        raise HTTPException(401, "invalid API key")


Svc = Annotated[Service, Depends(_service)]
Titles = Annotated[TitleIndex, Depends(_titles)]

AUTH = [Depends(require_key)]


def error(description: str) -> dict:
    """An error answer in the OpenAPI docs, with the one body shape every error has."""
    return {"description": description, "model": ErrorResponse}


RESPONSES: dict[int | str, dict] = {
    401: error("Missing or invalid API key"),
    422: error("Invalid input"),
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
