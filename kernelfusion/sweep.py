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
from .store import check_writable


def grid(spec: dict[str, list[Any]]) -> list[dict[str, Any]]:
    """Every combination of the override values in `spec` ({key: [values]}), in order."""
    keys = list(spec)
    return [
        dict(zip(keys, values, strict=True))
        for values in itertools.product(*(spec[k] for k in keys))
    ]


def run_one(cfg: config.Config, overrides: dict[str, Any], root: str | None, threads: int) -> dict:
    """One pipeline run (reusing its cached stages); where its metrics file is."""
    import torch

    from . import pipeline, store

    torch.set_num_threads(threads)  # several runs share the machine's cores
    artifact = pipeline.run(cfg, store.open(cfg, root), progress=False)
    return {
        "preset": cfg.preset,
        "overrides": overrides,
        "run": cfg.run_name,
        "metrics": str(artifact.path("metrics.json")),
    }


def run_configs(
    configs: list[config.Config],
    labels: list[dict[str, Any]] | None = None,
    *,
    backend: str = "local",
    workers: int = 2,
    root: str | Path | None = None,
    address: str | None = None,
) -> list[dict]:
    """Run the pipeline for each config, `workers` at a time: in a local process pool (each
    with its share of the cores as torch threads) or on a Ray cluster at `address` (or a local
    one started here). `labels` (e.g. each run's overrides) are passed through to the results."""
    labels = labels if labels is not None else [{} for _ in configs]
    check_writable(root)  # a read-only or missing runs folder: one line now, not per worker
    root = str(root) if root is not None else None
    threads = max(1, (os.cpu_count() or 1) // workers)
    if backend == "local":
        if workers == 1:
            return [
                run_one(c, o, root, torch_threads()) for c, o in zip(configs, labels, strict=True)
            ]
        with ProcessPoolExecutor(workers, mp_context=get_context("spawn")) as pool:
            futures = [
                pool.submit(run_one, c, o, root, threads)
                for c, o in zip(configs, labels, strict=True)
            ]
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
            return ray.get(
                [remote.remote(c, o, root, threads) for c, o in zip(configs, labels, strict=True)]
            )
        finally:
            if started_here:
                ray.shutdown()
    raise config.ConfigError(f"unknown sweep backend {backend!r}: choose local or ray")


def torch_threads() -> int:
    import torch

    return torch.get_num_threads()


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
