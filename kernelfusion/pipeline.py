"""The whole pipeline in one call, and its repetition over seeds for the results chapter."""

from __future__ import annotations

import dataclasses

from . import analysis, cnn, cyclegan, data, fusion, zoo
from .config import Config
from .store import Artifact, Store


def run(cfg: Config, store: Store, progress: bool = True) -> Artifact:
    """Every stage for `cfg` (reusing what is cached); returns the `metrics` artifact."""
    datasets = data.prepare(cfg, store, progress=progress)
    sources = cnn.train_sources(cfg, datasets, store, progress=progress)
    kernels = zoo.train_zoo(cfg, datasets, store, progress=progress)
    gan = cyclegan.train(cfg, kernels, store, progress=progress)
    models = fusion.make(cfg, datasets, sources, gan, store, progress=progress)
    return analysis.evaluate_models(cfg, datasets, sources, models, store, progress=progress)


def seeds(cfg: Config) -> list[int]:
    """The seeds the results chapter repeats the pipeline with: cfg.seed and the next ones."""
    return [cfg.seed + i for i in range(cfg.analysis.seeds)]


def run_seeds(cfg: Config, root=None, progress: bool = True) -> dict[int, dict]:
    """The metrics file of the pipeline run at each seed (each in its own run folder), the
    seeds not yet cached run `analysis.workers` at a time (on the Ray cluster at
    `analysis.ray_address` when one is given)."""
    import json
    from pathlib import Path

    from . import sweep

    configs = [dataclasses.replace(cfg, seed=seed) for seed in seeds(cfg)]
    address = cfg.analysis.ray_address or None
    results = sweep.run_configs(
        configs,
        [{"seed": c.seed} for c in configs],
        backend="ray" if address else "local",
        workers=min(cfg.analysis.workers, len(configs)),
        root=root,
        address=address,
    )
    return {r["overrides"]["seed"]: json.loads(Path(r["metrics"]).read_text()) for r in results}
