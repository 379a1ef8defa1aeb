"""The arithmetic of benchmark figures: percentiles, CPU per unit of work, medians over runs.

What it is for: every benchmark in `channels.bench`, `hub.bench` and `assets.bench` (and their
peer processes) reports latencies as percentiles by the same rule and sums its runs up the same
way; this is that one rule.

What it must never do: any I/O, start or wait for anything, or import beyond the standard library
(the peer processes and the parents both import it).
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Sequence
from typing import Any


def percentile(sorted_values: Sequence[float], fraction: float) -> float:
    """The nearest-rank `fraction` percentile of ascending `sorted_values` (NaN when empty)."""
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, max(0, round(fraction * len(sorted_values)) - 1))
    return sorted_values[index]


def cpu_us_per(before: float | None, after: float | None, count: int) -> float | None:
    """Microseconds of CPU per unit of work between two CPU-seconds readings (None when either
    reading is unavailable or there is no work)."""
    if before is None or after is None or count <= 0:
        return None
    return round((after - before) / count * 1e6, 1)


def summarize_runs(
    summary: dict[str, Any], runs: Sequence[dict[str, Any]], median_keys: Iterable[str]
) -> dict[str, Any]:
    """`summary`, updated in place: each of `median_keys` the median over the `runs` that have
    it (not None), `load_average_1m` the highest of the runs', `per_run` the runs."""
    for key in median_keys:
        values = [run[key] for run in runs if run.get(key) is not None]
        if values:
            summary[key] = statistics.median(values)
    summary["load_average_1m"] = max(run["load_average_1m"] for run in runs)
    summary["per_run"] = list(runs)
    return summary


__all__ = ["cpu_us_per", "percentile", "summarize_runs"]
