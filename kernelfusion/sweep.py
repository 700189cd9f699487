"""Many independent pipeline runs (seeds x presets x ablations), in parallel on this machine or
on a Ray cluster. Each run lands in the ordinary artifact layout (`runs/<preset>-<hash>/`), so a
sweep's runs are reused by the chapters and by later sweeps, and summarised from their metrics
files.
"""

from __future__ import annotations

import itertools
import os
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from . import config


def grid(spec: dict[str, list[Any]]) -> list[dict[str, Any]]:
    """Every combination of the override values in `spec` ({key: [values]}), in order."""
    keys = list(spec)
    return [
        dict(zip(keys, values, strict=True))
        for values in itertools.product(*(spec[k] for k in keys))
    ]


def run_one(preset: str, overrides: dict[str, Any], root: str | None, threads: int) -> dict:
    """One pipeline run (reusing its cached stages); where its metrics file is."""
    import torch

    from . import pipeline, store

    torch.set_num_threads(threads)  # several runs share the machine's cores
    cfg = config.load(preset, overrides)
    artifact = pipeline.run(cfg, store.open(cfg, root), progress=False)
    return {
        "preset": preset,
        "overrides": overrides,
        "run": cfg.run_name,
        "metrics": str(artifact.path("metrics.json")),
    }


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
    for overrides in combos:  # refuse a bad grid before any run starts
        config.load(preset, overrides)
    root = str(root) if root is not None else None
    threads = max(1, (os.cpu_count() or 1) // workers)
    if backend == "local":
        with ProcessPoolExecutor(workers, mp_context=get_context("spawn")) as pool:
            futures = [pool.submit(run_one, preset, o, root, threads) for o in combos]
            return [f.result() for f in futures]
    if backend == "ray":
        import ray

        started_here = not ray.is_initialized()
        if started_here:
            ray.init(
                address=address,
                num_cpus=None if address else workers,
                include_dashboard=False,
                log_to_driver=False,
            )
        try:
            remote = ray.remote(num_cpus=1)(run_one)
            return ray.get([remote.remote(preset, o, root, threads) for o in combos])
        finally:
            if started_here:
                ray.shutdown()
    raise config.ConfigError(f"unknown sweep backend {backend!r}: choose local or ray")


def summary(results: list[dict], metric: str = "F1 linear probe"):
    """One row per run and model: the sweep's overrides and `metric` from its metrics file."""
    import json

    import pandas as pd

    from .analysis import long_metrics

    rows = []
    for result in results:
        metrics = json.loads(Path(result["metrics"]).read_text())
        frame = long_metrics({metrics["seed"]: metrics})
        for _, row in frame[frame["metric"] == metric].iterrows():
            rows.append({**result["overrides"], "model": row["model"], metric: row["value"]})
    return pd.DataFrame(rows)
