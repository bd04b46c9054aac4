"""Stage-by-stage quality on LOO-full: EASE, two-tower, ranker, final feed, diversity, cold start.

Run from the repository root:  marquee bench ranking_quality
Writes bench/results/ranking_quality.json and the ranking_quality section of
bench/RESULTS.md (the same content as `marquee eval ranking`).
"""

from __future__ import annotations

import argparse
import sys

from app.settings import get_settings
from evaluation.bench_io import update_results_md, write_result
from evaluation.ranking_report import run_ranking_report

COMMAND = "marquee bench ranking_quality"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dataset", default="ml-latest-small")
    args = parser.parse_args(argv)
    report = run_ranking_report(args.dataset, get_settings(), command=COMMAND)
    metrics = {k: v for k, v in report.flat_metrics().items() if v == v}  # drop NaN
    write_result("ranking_quality", metrics, COMMAND, args.dataset)
    section = "\n\n".join(
        [
            f"## Ranking quality: every stage on LOO-full ({args.dataset})",
            f"Command: `{COMMAND}` (date {report.created}).",
            report.stats_markdown(),
            report.table_markdown(),
            *report.sections,
        ]
    )
    update_results_md("ranking_quality", section)
    print(report.to_markdown())


if __name__ == "__main__":
    main(sys.argv[1:])
