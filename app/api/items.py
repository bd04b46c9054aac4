"""Item detail, similar items and title search."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from app.api.deps import READ, RESPONSES, WITH_404, ItemId, Svc, Titles, known_item, summary
from app.schemas import ItemDetail, ScoredItem

router = APIRouter()


@router.get(
    "/v1/items/{item_id}",
    response_model=ItemDetail,
    dependencies=READ,
    responses=WITH_404,
    tags=["items"],
)
def item(item_id: ItemId, service: Svc) -> ItemDetail:
    known_item(service, item_id)
    row = service.funnel.items.loc[item_id]
    try:
        counts = service.nearline.counters(["impression", "click", "like"])
    except Exception:  # live counters are optional for a detail page
        counts = {"impression": {}, "click": {}, "like": {}}
    shown = counts["impression"].get(item_id, 0.0)
    clicks = counts["click"].get(item_id, 0.0)
    overview = row["overview"]
    return ItemDetail(
        **summary(service, item_id),
        overview=str(overview) if isinstance(overview, str) and overview else None,
        popularity=int(row["popularity"]),
        impressions=shown,
        clicks=clicks,
        likes=counts["like"].get(item_id, 0.0),
        ctr=clicks / shown if shown else None,
    )


@router.get(
    "/v1/items/{item_id}/similar",
    response_model=list[ScoredItem],
    dependencies=READ,
    responses=WITH_404,
    tags=["items"],
)
def similar(
    item_id: ItemId, service: Svc, k: Annotated[int, Query(ge=1, le=100)] = 10
) -> list[ScoredItem]:
    """What people watch with this title (co-visitation), then the closest stories."""
    known_item(service, item_id)
    return [
        ScoredItem(**summary(service, c.item_id), score=c.score, source=c.source)
        for c in service.funnel.similar(item_id, k)
    ]


@router.get(
    "/v1/search",
    response_model=list[ScoredItem],
    dependencies=READ,
    responses=RESPONSES,
    tags=["items"],
)
def search(
    service: Svc,
    index: Titles,
    q: Annotated[str, Query(min_length=1, max_length=200, description="Title words.")],
    k: Annotated[int, Query(ge=1, le=100)] = 10,
) -> list[ScoredItem]:
    return [
        ScoredItem(**summary(service, item_id), score=score, source="title")
        for item_id, score in index.search(q, k)
    ]
