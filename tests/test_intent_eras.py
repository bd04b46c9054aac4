"""Relative time words against the catalog's years and the page just shown, never the
calendar: a catalog that ends in 2018 reads "recent" as 2016-2018 in any year."""

from __future__ import annotations

from datetime import date

import pytest

from llm.intent import RetrievalQuery, parse_intent

GENRES = ["Action", "Comedy", "Drama", "Horror", "Romance", "Sci-Fi", "Thriller"]
ML_SMALL = (1902, 2018)  # ml-latest-small's first and last release years
ML_100K = (1922, 1998)


def parse(message: str, catalog=ML_SMALL, **kwargs) -> RetrievalQuery:
    return parse_intent(message, GENRES, catalog_years=catalog, **kwargs)


def years(q: RetrievalQuery) -> tuple[int | None, int | None]:
    return q.year_min, q.year_max


@pytest.mark.parametrize(
    ("message", "catalog", "expected"),
    [
        ("a recent comedy", ML_SMALL, (2016, None)),
        ("the latest thrillers", ML_SMALL, (2016, None)),
        ("newest horror", ML_100K, (1996, None)),
        ("new movies", ML_100K, (1996, None)),
        ("something from the last few years", ML_SMALL, (2016, None)),
        ("older movies", ML_SMALL, (None, 1998)),
        ("newer", ML_SMALL, (2016, None)),  # nothing to compare to: the recent years
        ("a classic western", ML_SMALL, (None, 1979)),
        ("a classic western", (1990, 2024), (None, 2010)),  # nothing that old: first years
        ("90s", ML_SMALL, (1990, 1999)),
        ("before 1985", ML_SMALL, (None, 1984)),
        ("in 2004", ML_SMALL, (2004, 2004)),
    ],
)
def test_relative_words_read_the_catalogs_years(message, catalog, expected) -> None:
    assert years(parse(message, catalog)) == expected


@pytest.mark.parametrize("today", [date(2019, 1, 1), date(2026, 12, 2), date(2040, 6, 1)])
def test_relative_words_ignore_the_calendar_and_this_year_reads_it(today: date) -> None:
    assert years(parse("a recent comedy", today=today)) == (2016, None)
    assert years(parse("older movies", today=today)) == (None, 1998)
    assert years(parse("a comedy from this year", today=today)) == (today.year, today.year)
    assert years(parse("last year's hits", today=today)) == (today.year - 1, today.year - 1)


def test_without_a_catalog_it_runs_up_to_today() -> None:
    q = parse_intent("recent thrillers", GENRES, today=date(2025, 6, 1))
    assert years(q) == (2023, None)


def test_older_after_a_page_goes_below_its_median() -> None:
    comedy = parse("a comedy")
    shown = [1995, 1994, 2001, 1999, 1997, 2004, 1988, 1996, 2000, 1993]  # median 1996.5
    older = parse("something older", previous=comedy, shown_years=shown)
    assert years(older) == (None, 1996) and older.include_genres == ["Comedy"]
    assert years(parse("less recent", previous=comedy, shown_years=[2010])) == (None, 2009)


def test_older_after_recent_goes_below_the_recent_window() -> None:
    recent = parse("a recent comedy")
    older = parse("something older", previous=recent, shown_years=[2016, 2017, 2017, 2018])
    assert years(older) == (None, 2015)  # below the window's start, which is below the median


def test_older_never_leaves_the_catalog() -> None:
    early = parse("before 1925")
    assert years(parse("older", previous=early, shown_years=[1902, 1902])) == (None, 1902)


def test_a_window_with_both_ends_shifts_by_its_width() -> None:
    nineties = parse("a 90s thriller")
    shown = [1990, 1992, 1995, 1995, 1997, 1999]
    assert years(parse("something older", previous=nineties, shown_years=shown)) == (1980, 1989)
    assert years(parse("newer", previous=nineties, shown_years=shown)) == (2000, 2009)
    assert years(parse("older", previous=nineties)) == (1980, 1989)  # no page: the same


def test_newer_after_a_page_goes_above_its_median() -> None:
    older = parse("older movies")  # year_max 1998
    shown = [1960, 1975, 1982, 1990, 1994]
    newer = parse("newer", previous=older, shown_years=shown)
    assert years(newer) == (1983, None)
    assert years(parse("more recent", previous=parse("a comedy"), shown_years=[2017])) == (
        2018,
        None,
    )
    assert years(parse("newer", previous=parse("a comedy"), shown_years=[2018])) == (2018, None)


def test_no_page_no_window_older_is_before_the_recent_years() -> None:
    assert years(parse("something older", previous=parse("a comedy"))) == (None, 1998)
    assert years(parse("something older", ML_100K, previous=parse("a comedy", ML_100K))) == (
        None,
        1978,
    )
