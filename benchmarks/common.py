"""Shared helpers: timing, peak memory, and printing a table."""

from __future__ import annotations

import resource
import time
from collections.abc import Callable


def timed(function: Callable[[], object], repeat: int = 3) -> tuple[float, object]:
    """Best wall time of `repeat` calls, and the last result."""
    best, result = float("inf"), None
    for _ in range(repeat):
        started = time.perf_counter()
        result = function()
        best = min(best, time.perf_counter() - started)
    return best, result


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def table(title: str, rows: list[dict]) -> str:
    """Rows of dicts as a plain-text table, printed and returned."""
    columns = list(rows[0])
    cells = [
        [f"{r[c]:.4g}" if isinstance(r[c], float) else str(r[c]) for c in columns] for r in rows
    ]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    lines = [title, "  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)) for row in cells]
    text = "\n".join(lines)
    print(text + "\n", flush=True)
    return text
