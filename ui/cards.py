"""HTML for movie cards and status banners.

Gradio components cannot be nested inside HTML, so the cards are plain markup
rendered into a `gr.HTML`; feedback buttons live next to them. Every value is
escaped here, because titles, genres and reasons come from data and the LLM.
Cards carry `data-item-id` and the `mq-card` class so browser tests and custom
CSS have a stable hook that does not depend on Gradio's generated markup.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from html import escape
from typing import Any

CSS = """
.mq-cards { display: grid; grid-template-columns: repeat(auto-fill, minmax(210px, 1fr));
  gap: 12px; }
.mq-card { border: 1px solid var(--border-color-primary); border-radius: 10px;
  padding: 12px 14px; background: var(--block-background-fill);
  display: flex; flex-direction: column; gap: 6px; }
.mq-card .mq-rank { font-size: 0.75rem; color: var(--body-text-color-subdued); }
.mq-card .mq-title { font-weight: 600; font-size: 1rem; line-height: 1.25; }
.mq-card .mq-year { font-weight: 400; color: var(--body-text-color-subdued); }
.mq-genres { display: flex; flex-wrap: wrap; gap: 4px; }
.mq-genre { font-size: 0.72rem; padding: 1px 8px; border-radius: 999px;
  background: var(--color-accent-soft); color: var(--body-text-color); }
.mq-why { font-size: 0.85rem; color: var(--body-text-color-subdued); }
.mq-empty { color: var(--body-text-color-subdued); padding: 8px 0; }
.mq-banner { border-radius: 8px; padding: 8px 12px; margin-bottom: 10px; font-size: 0.9rem; }
.mq-banner.mq-stale { background: #fff4d6; color: #6b4e00; border: 1px solid #f0d48a; }
.mq-meta { font-size: 0.8rem; color: var(--body-text-color-subdued); margin-bottom: 8px; }
"""


def card_html(card: Mapping[str, Any], rank: int | None = None) -> str:
    """One card: title (year), genre chips and the one-line reason."""
    year = card.get("year")
    year_html = f' <span class="mq-year">({escape(str(year))})</span>' if year else ""
    genres = "".join(
        f'<span class="mq-genre">{escape(str(g))}</span>' for g in card.get("genres") or []
    )
    reason = card.get("reason") or ""
    sources = ", ".join(str(s) for s in card.get("sources") or [])
    rank_html = f'<div class="mq-rank">#{rank}</div>' if rank is not None else ""
    return (
        f'<div class="mq-card" data-testid="movie-card" data-item-id="{int(card["item_id"])}"'
        f' title="{escape(sources)}">'
        f"{rank_html}"
        f'<div class="mq-title">{escape(str(card.get("title", "")))}{year_html}</div>'
        f'<div class="mq-genres">{genres}</div>'
        f'<div class="mq-why">{escape(str(reason))}</div>'
        "</div>"
    )


def cards_html(
    cards: Iterable[Mapping[str, Any]],
    empty: str = "Nothing to show yet.",
    banner: str = "",
    meta: str = "",
    state: str = "done",
) -> str:
    """A grid of cards, with an optional warning banner and a line of context above.

    `state` ("streaming" while a chat reply is still arriving, else "done") lands in a
    `data-state` attribute: what a test waits on, and a hook for styling."""
    body = "".join(card_html(c, rank=i + 1) for i, c in enumerate(cards))
    if not body:
        body = f'<div class="mq-empty">{escape(empty)}</div>'
    else:
        body = f'<div class="mq-cards">{body}</div>'
    top = f'<div class="mq-banner mq-stale" role="status">{escape(banner)}</div>' if banner else ""
    top += f'<div class="mq-meta">{escape(meta)}</div>' if meta else ""
    return f'<div class="mq-results" data-state="{escape(state)}">{top}{body}</div>'


def choice_label(card: Mapping[str, Any]) -> str:
    """How a shown title reads in the feedback picker."""
    year = card.get("year")
    return f"{card.get('title', card['item_id'])} ({year})" if year else str(card.get("title"))
