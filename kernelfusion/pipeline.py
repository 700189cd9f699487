"""The whole pipeline in one call, and its repetition over seeds for the results chapter."""

from __future__ import annotations

import dataclasses

from . import analysis, cnn, cyclegan, data, fusion, zoo
from .config import Config
from .store import Artifact, NotCached, Store
from .store import open as open_store


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


def run_seeds(
    cfg: Config, root=None, progress: bool = True, at_seeds: list[int] | None = None
) -> dict[int, dict]:
    """The metrics file of the pipeline run at each seed of `at_seeds` (default: chapter 07's,
    `seeds(cfg)`), each in its own run folder; the seeds not yet cached run `analysis.workers`
    at a time (on the Ray cluster at `analysis.ray_address` when one is given)."""
    chosen = seeds(cfg) if at_seeds is None else list(at_seeds)
    configs = [dataclasses.replace(cfg, seed=seed) for seed in chosen]
    return dict(zip(chosen, run_many(configs, root), strict=True))


def run_many(configs: list[Config], root=None) -> list[dict]:
    """The metrics file of the pipeline run for each config: what is cached is read here at
    once, the rest runs `analysis.workers` at a time (of the first config) in worker processes,
    or on the Ray cluster at its `analysis.ray_address`."""
    import json
    from pathlib import Path

    from . import sweep

    results: dict[int, dict] = {}
    missing = []
    for i, cfg in enumerate(configs):
        try:
            results[i] = run(cfg, open_store(cfg, root, build=False), False).json("metrics")
        except NotCached:
            missing.append(i)
    if missing:
        first = configs[0].analysis
        address = first.ray_address or None
        for result in sweep.run_configs(
            [configs[i] for i in missing],
            [{"position": i} for i in missing],
            backend="ray" if address else "local",
            workers=min(first.workers, len(missing)),
            root=root,
            address=address,
        ):
            position = result["overrides"]["position"]
            results[position] = json.loads(Path(result["metrics"]).read_text())
    return [results[i] for i in range(len(configs))]
