"""ReDial dialogue turns as a recommendation task: ground truth, splits, baselines, recall.

Each line of the ReDial file (He et al., CIKM 2023 preprocessing) is one recommender turn:
`context` (the dialogue so far), `resp` (what the human recommender said next, titles
written "Name (YYYY)") and `dialog_id`. Ground truth for a turn = the titles in `resp`
that map to the catalog by exact title and year (llm/intent/mentions.resolve_dated, the
resolver chat itself uses), minus every title already mentioned in the context (the
paper's "exclude seen" rule); turns with none left are skipped. Recall@K = the share of a
turn's ground truth in the top K, averaged over turns; every method excludes the
mentioned titles from its list.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from catalog.search import TitleIndex
from llm.intent.mentions import resolve_dated

KS = (1, 10, 20)
RECENT_YEARS = 2  # "recent popularity": ratings in the catalog's last two years
_SECONDS_PER_YEAR = 365.25 * 24 * 3600
_DATED = re.compile(r"([^()]+?)\s*\((\d{4})\)")


@dataclass(frozen=True)
class Turn:
    """One evaluated turn: its dialogue, the utterances so far, and the truth."""

    dialog_id: str
    context: tuple[str, ...]
    mentioned: frozenset[int]
    truth: frozenset[int]


def dated_titles(text: str, titles: TitleIndex) -> list[int]:
    """Catalog ids of the "Name (YYYY)" titles in a text (the longest exact title that
    ends right before each year)."""
    found = []
    for match in _DATED.finditer(text):
        words = match.group(1).split()
        for start in range(len(words)):
            item = resolve_dated(titles, " ".join(words[start:]), int(match.group(2)))
            if item is not None:
                found.append(item)
                break
    return found


def load_turns(path: Path, titles: TitleIndex) -> list[Turn]:
    """The file's turns with mappable ground truth, in file order."""
    turns = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        row = json.loads(line)
        context = tuple(u for u in row["context"] if u.strip())
        mentioned = frozenset(i for u in context for i in dated_titles(u, titles))
        truth = frozenset(dated_titles(row["resp"], titles)) - mentioned
        if truth:
            turns.append(Turn(str(row["dialog_id"]), context, mentioned, truth))
    return turns


def split_dialogues(turns: Sequence[Turn]) -> tuple[list[Turn], list[Turn]]:
    """(tune, report): dialogues split in two halves by a hash of their id, so no
    dialogue's turns are on both sides and the split does not depend on file order."""
    tune, report = [], []
    for turn in turns:
        digest = hashlib.sha256(turn.dialog_id.encode()).digest()[0]
        (tune if digest % 2 == 0 else report).append(turn)
    return tune, report


def recall(ranked: Sequence[Sequence[int]], turns: Sequence[Turn]) -> dict[str, float]:
    """Mean Recall@K over turns (ranked[i] is the list for turns[i], mentions excluded)."""
    out = {}
    for k in KS:
        pairs = zip(ranked, turns, strict=True)
        hits = [len(set(r[:k]) & t.truth) / len(t.truth) for r, t in pairs]
        out[f"recall@{k}"] = round(float(np.mean(hits)), 4) if hits else float("nan")
    return out


def popularity_order(events: pd.DataFrame, since: int | None = None) -> list[int]:
    """Items by rating count, most rated first (`since`: only ratings at or after it)."""
    kept = events if since is None else events[events["timestamp"] >= since]
    counts = kept.groupby("item_id").size().sort_values(ascending=False, kind="stable")
    return [int(i) for i in counts.index]


def recent_since(events: pd.DataFrame, years: float = RECENT_YEARS) -> int:
    return int(events["timestamp"].max() - years * _SECONDS_PER_YEAR)


def without(order: Sequence[int], excluded: frozenset[int], k: int) -> list[int]:
    return [i for i in order if i not in excluded][:k]


def baseline_lists(
    turns: Sequence[Turn],
    events: pd.DataFrame,
    covisit: Callable[[list[int], int], list[int]],
    k: int = max(KS),
) -> dict[str, list[list[int]]]:
    """Each baseline's list per turn: popularity, recent popularity, and co-visitation of
    the mentioned titles (popularity where none was mentioned or it runs short)."""
    popular = popularity_order(events)
    recent = popularity_order(events, recent_since(events))
    out: dict[str, list[list[int]]] = {"popularity": [], "recent_popularity": [], "covisit": []}
    for turn in turns:
        out["popularity"].append(without(popular, turn.mentioned, k))
        out["recent_popularity"].append(without(recent, turn.mentioned, k))
        near = covisit(sorted(turn.mentioned), k + len(turn.mentioned)) if turn.mentioned else []
        filled = list(dict.fromkeys([*near, *popular]))
        out["covisit"].append(without(filled, turn.mentioned, k))
    return out
