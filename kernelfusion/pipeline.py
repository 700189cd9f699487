"""The whole chain of stages for one config, and its repetition over configs and seeds.

data -> source CNNs -> zoo -> CycleGAN -> functional phase -> models -> metrics, each stage
`make_<result>(cfg, store, <inputs in chain order>, *, progress, force)`, cached in the run's
store; `run` is the one place that wires them. Many configs (seeds, arms of chapter 08, a
sweep) run `analysis.workers` at a time in local processes or on a Ray cluster.
"""

from __future__ import annotations

import dataclasses
import json
import os
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import torch

from . import behaviour, cnn, cyclegan, data, evaluate, fusion, original_protocol, stacked_gans, zoo
from .config import Config, ConfigError
from .cyclegan import KernelGan
from .data import Datasets
from .evaluate import Metrics
from .fusion import Models
from .progress import status
from .store import NotCached, Store, check_writable
from .store import open as open_store
from .zoo import Zoo

# The stages in chain order; `run(..., until=...)` stops after the named one.
STAGES = ("datasets", "sources", "zoo", "gan", "models", "metrics")


@dataclass
class Run:
    """Every stage's result of one config (None for those after `until`)."""

    cfg: Config
    store: Store
    datasets: Datasets
    sources: cnn.SourceCNNs | None = None
    zoo: Zoo | None = None
    gan: KernelGan | None = None
    models: Models | None = None
    metrics: Metrics | None = None


def run(cfg: Config, store: Store, progress: bool = True, until: str = "metrics") -> Run:
    """Every stage for `cfg` up to `until` (one of STAGES), reusing what is cached."""
    if until not in STAGES:
        raise ConfigError(f"unknown stage {until!r}: choose one of {', '.join(STAGES)}")
    last = STAGES.index(until)
    out = Run(cfg, store, data.make_datasets(cfg, store, progress=progress))
    if last >= 1:
        out.sources = cnn.make_sources(cfg, store, out.datasets, progress=progress)
    if last >= 2:
        out.zoo = zoo.make_zoo(cfg, store, out.datasets, progress=progress)
    if last >= 3:
        gan = cyclegan.make_translator(cfg, store, out.datasets, out.zoo, progress=progress)
        out.gan = behaviour.make_tuned(
            cfg, store, out.datasets, out.sources, gan, progress=progress
        )
    if last >= 4:
        out.models = fusion.make_models(
            cfg, store, out.datasets, out.sources, out.gan, progress=progress
        )
    if last >= 5:
        out.metrics = evaluate.make_metrics(
            cfg, store, out.datasets, out.sources, out.models, progress=progress
        )
    return out


def replication_of(cfg: Config, store: Store, progress: bool = False):
    """The original's protocol on this run: the showcase (its one model, as it ran it) and the
    spread over both zoos (`original_protocol`), after the stages they read."""
    done = run(cfg, store, progress, until="models")
    return (
        original_protocol.make_showcase(cfg, store, done.datasets, done.models, progress=progress),
        original_protocol.make_spread(cfg, store, done.datasets, done.gan, progress=progress),
    )


# --- many runs -----------------------------------------------------------------------------


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
    first = configs[0].analysis
    results: dict[int, dict] = {}
    missing = []
    for i, cfg in enumerate(configs):
        found = cached_run(cfg, root, other_threads=(worker_threads(first.workers),))
        if found is None:
            missing.append(i)
        else:
            results[i] = found.metrics.values
    if missing:
        address = first.ray_address or None
        if not address:  # the CycleGANs as stacks first (a GPU), at the workers' thread count
            workers = min(first.workers, len(missing))
            threads = worker_threads(workers) if workers > 1 else torch.get_num_threads()
            stacked_gans.make_layers([configs[i] for i in missing], root, threads=threads)
        for result in run_configs(
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


def worker_threads(workers: int) -> int:
    """The torch threads each of `workers` local worker processes runs with: its share of the
    cores."""
    return max(1, (os.cpu_count() or 1) // workers)


def cached_run(
    cfg: Config, root=None, until: str = "metrics", other_threads: tuple[int, ...] = ()
) -> Run | None:
    """The run of `cfg` up to `until` if every stage of it is cached, else None. A stage's key
    holds the torch thread count it was made at (`stage_keys.threads_class`): a run made here
    at this process's count, or in a worker at one of `other_threads`, is found either way, so a
    chapter never sends a finished run to a worker process, or makes it again, to read it."""
    current = torch.get_num_threads()
    try:
        for threads in dict.fromkeys((current, *other_threads)):
            torch.set_num_threads(threads)
            try:
                return run(cfg, open_store(cfg, root, build=False), False, until)
            except NotCached:
                continue
        return None
    finally:
        torch.set_num_threads(current)


def reuse(cfg: Config, root=None, until: str = "metrics") -> Run:
    """The run of `cfg` up to `until`: read from the cache whether it was made here or by a
    worker of `run_many`, else made here."""
    found = cached_run(cfg, root, until, (worker_threads(cfg.analysis.workers),))
    return found if found is not None else run(cfg, open_store(cfg, root), False, until)


def run_one(cfg: Config, overrides: dict[str, Any], root: str | None, threads: int) -> dict:
    """One pipeline run in a worker (reusing its cached stages); where its metrics file is."""
    torch.set_num_threads(threads)  # several runs share the machine's cores
    done = run(cfg, open_store(cfg, root), progress=False)
    return {
        "preset": cfg.preset,
        "overrides": overrides,
        "run": cfg.run_name,
        "metrics": str(done.metrics.artifact.path("metrics.json")),
    }


def run_configs(
    configs: list[Config],
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
    threads = worker_threads(workers)
    if backend == "local":
        if workers == 1:
            return [
                run_one(c, o, root, torch.get_num_threads())
                for c, o in zip(configs, labels, strict=True)
            ]
        with ProcessPoolExecutor(workers, mp_context=get_context("spawn")) as pool:
            futures = [
                pool.submit(run_one, c, o, root, threads)
                for c, o in zip(configs, labels, strict=True)
            ]
            status(f"runs: 0 of {len(futures)} done", "runs")
            for done, _ in enumerate(as_completed(futures), 1):
                status(f"runs: {done} of {len(futures)} done", "runs")
            status("", "runs")  # all done: the live line stops saying so
            return [f.result() for f in futures]
    if backend == "ray":
        import ray  # optional: only a sweep on a cluster needs it, and it is slow to import

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
    raise ConfigError(f"unknown sweep backend {backend!r}: choose local or ray")
