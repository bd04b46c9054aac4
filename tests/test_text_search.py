"""Chat text search: real MiniLM encoder and BM25 on a tiny catalog."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from retrieval.text_encoder import encode, item_text
from retrieval.text_search import Filters, TextSearch

ROWS = [
    (1, "The Big Score", 1995, ["Crime", "Thriller"], "A crew plans a bank heist.", ["heist"]),
    (2, "Night of the Dead", 1968, ["Horror"], "Zombies overrun a farmhouse.", ["zombie"]),
    (3, "Laugh Riot", 2004, ["Comedy"], "Two friends open a bakery.", ["friendship"]),
    (4, "Star Drifters", 1999, ["Sci-Fi"], "Astronauts lost in deep space.", ["space"]),
    (5, "Vault", None, ["Crime"], "Thieves rob the central bank vault.", ["robbery"]),
    (6, "Love in Paris", 2010, ["Romance", "Comedy"], "A wedding planner falls in love.", []),
]


@pytest.fixture(scope="module")
def search() -> TextSearch:
    items = pd.DataFrame(
        ROWS, columns=["item_id", "title", "year", "genres", "overview", "keywords"]
    )
    items["year"] = items["year"].astype("Int64")
    vectors = encode([item_text(row) for _, row in items.iterrows()])
    return TextSearch(items, vectors, encode)


def ids(hits) -> list[int]:
    return [i for i, _ in hits]


def test_both_rankers_agree_on_an_exact_theme(search: TextSearch) -> None:
    hits = ids(search.search("bank heist", 3))
    assert hits[0] == 1 and 5 in hits[:3]
    assert search.lexical_scores("zombies")[1] > 0  # stemmed: "zombies" matches "Zombies"
    assert search.lexical_scores("qwertyuiop").max() == 0  # unknown words score nothing


def test_paraphrase_still_finds_the_film_through_the_encoder(search: TextSearch) -> None:
    assert ids(search.search("the undead attack a house", 1)) == [2]


def test_constraints_are_applied_before_ranking(search: TextSearch) -> None:
    crime_90s = Filters(include_genres=frozenset({"Crime"}), year_min=1990, year_max=1999)
    assert ids(search.search("bank", 5, crime_90s)) == [1]  # Vault has no year: not in range
    no_comedy = Filters(exclude_genres=frozenset({"Comedy"}))
    assert not {3, 6} & set(ids(search.search("funny love story", 6, no_comedy)))
    assert search.search("anything", 5, Filters(year_min=2090)) == []


def test_allowed_items_limit_the_search(search: TextSearch) -> None:
    assert set(ids(search.search("bank heist", 5, allowed=[3, 4]))) == {3, 4}


def test_scores_are_fused_ranks_best_first(search: TextSearch) -> None:
    hits = search.search("bank heist", 6)
    scores = [s for _, s in hits]
    assert scores == sorted(scores, reverse=True) and np.isfinite(scores).all()
