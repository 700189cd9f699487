"""Many independent pipeline runs (seeds x presets x ablations), in parallel on this machine or
on a Ray cluster. Each run lands in the ordinary artifact layout (`runs/<preset>-<hash>/`), so a
sweep's runs are reused by the chapters and by later sweeps, and summarised from their metrics
files.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

from . import config
from .evaluate import long_metrics
from .pipeline import run_configs


def grid(spec: dict[str, list[Any]]) -> list[dict[str, Any]]:
    """Every combination of the override values in `spec` ({key: [values]}), in order."""
    keys = list(spec)
    return [
        dict(zip(keys, values, strict=True))
        for values in itertools.product(*(spec[k] for k in keys))
    ]


def sweep(
    preset: str,
    spec: dict[str, list[Any]],
    *,
    backend: str = "local",
    workers: int = 2,
    root: str | Path | None = None,
    address: str | None = None,
) -> list[dict]:
    """Run the pipeline for every combination in `spec`. `backend`: "local" (a process pool
    of `workers`) or "ray" (a Ray cluster at `address`, or a local one started here)."""
    combos = grid(spec)
    configs = [config.load(preset, o) for o in combos]  # refuse a bad grid before any run
    return run_configs(
        configs, combos, backend=backend, workers=workers, root=root, address=address
    )


def summary(results: list[dict], metric: str = "probe F1"):
    """One row per run and model: the sweep's overrides and `metric` from its metrics file."""
    import pandas as pd

    rows = []
    for result in results:
        metrics = json.loads(Path(result["metrics"]).read_text())
        frame = long_metrics({metrics["seed"]: metrics})
        for _, row in frame[frame["metric"] == metric].iterrows():
            rows.append({**result["overrides"], "model": row["model"], metric: row["value"]})
    return pd.DataFrame(rows)
