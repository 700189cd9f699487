"""The book's runs, started at once in the background: `make book` runs here, in
`analysis.workers` processes, every pipeline run chapters 02-09 will read, about in the order
they read them (`plan`), while the chapters execute one after another in the foreground.

Without it, chapters 00-06 run one seed's stages on one core and leave the other idle (their
stages run at the workers' thread count, so that chapter 08's arms reuse seed 0's data, source
CNNs, zoo and reference CycleGAN instead of making them again at another count), and chapters
07-08 start their seeds' runs only when they are reached. Nothing here decides anything: a
chapter still runs what it needs itself; it finds a run made here in the cache, and a stage
being made here it waits for (the store's lock per stage and key), so no stage is made twice.
The plan is the chapters' own calls, in order (`plan`), and chapter 08's confirmation seeds
are run for the arm its own rule picks (`ablation.best`) once the arms' runs are all here.

`main([PRESET, OVERRIDES_JSON, STATUS_FILE])`: the book starts it (`start`) in a session of
its own and stops it with its workers (`stop`) when the chapters end; a worker stopped in the
middle of a stage leaves nothing half-written, as the store promises for any interrupt.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from .. import ablation, fusion, pipeline, stacked_gans
from ..config import Config
from ..config import load as load_config
from ..progress import STATUS_ENV, say
from ..store import open as open_store


@dataclass(frozen=True)
class Job:
    """One piece of background work: the pipeline for `cfg` up to `until` (and, with
    `rivals`, the rivals stage, which needs no CycleGAN), or (`original_protocol`) the original
    protocol's showcase and spread after it (chapter 07)."""

    cfg: Config
    until: str = "metrics"
    replication: bool = False
    rivals: bool = False

    @property
    def name(self) -> str:
        what = "replication" if self.replication else f"until {self.until}"
        return f"{self.cfg.run_name} seed {self.cfg.seed} ({what}{' and rivals' * self.rivals})"


# The chapters whose runs are made here while the chapters before them execute; the status
# file part the workers write (the coordinator writes "ahead": the runs done of how many).
CHAPTERS = ("07", "08")
WORK = "ahead-work"


def plan(cfg: Config, chapters: tuple[str, ...] = CHAPTERS) -> list[Job]:
    """What the chapters (those of `CHAPTERS` in this build: `chapters`) will run, about in the
    order they read it: seed 0 (chapters 02-06), chapter 07's other seeds and its replication of
    the original protocol; then what chapter 08's confirmation seeds need whatever arm is chosen
    (their data, source CNNs, zoo and rivals), so that only the confirmation runs themselves
    (`confirmation`, once the arms' results are in) are left for the end, where they spread
    over the workers; then chapter 08's arms at the selection seeds. A job another job already
    covers is listed once. A build (`--only`) without chapter 07 gets none of its seeds' runs,
    one without chapter 08 none of its runs."""
    jobs, done = [], set()
    if "07" in chapters:
        jobs = [Job(dataclasses.replace(cfg, seed=seed)) for seed in pipeline.seeds(cfg)]
        jobs.append(Job(cfg, until="models", replication=True))
        done = set(pipeline.seeds(cfg))
    if "08" not in chapters:
        return jobs
    jobs += [
        Job(dataclasses.replace(cfg, seed=seed), until="zoo", rivals=True)
        for seed in ablation.confirmation_seeds(cfg)
        if seed not in done
    ]
    configs, _ = ablation.arm_configs(cfg)
    for arm_cfg in configs.values():
        jobs += [Job(dataclasses.replace(arm_cfg, seed=s)) for s in ablation.selection_seeds(cfg)]
    unique: dict[tuple, Job] = {}
    for job in jobs:
        unique.setdefault((job.cfg.hash, job.until, job.replication, job.rivals), job)
    return list(unique.values())


def confirmation(cfg: Config) -> list[Job]:
    """Chapter 08's confirmation runs: its best variant (chosen by `ablation.best` from the
    arms' cached runs, as the chapter chooses it) at the confirmation seeds."""
    study = ablation.run(cfg)  # every arm's runs are cached by now: nothing runs here
    chosen = ablation.best(ablation.table(study))
    arm_cfg = study.configs[chosen["arm"]]
    seeds = longest_first(ablation.confirmation_seeds(arm_cfg), cfg)
    return [Job(dataclasses.replace(arm_cfg, seed=s)) for s in seeds]


def longest_first(seeds: list[int], cfg: Config) -> list[int]:
    """`seeds` with those chapter 07 does not run first: their runs train every CycleGAN of
    the arm, where the others share chapter 07's (when the arm trains them alike), so the last
    run to end, alone on its worker, is a short one."""
    ours = set(pipeline.seeds(cfg))
    return sorted(seeds, key=lambda seed: seed in ours)


class _Stopped(BaseException):
    """The book stopped the background (SIGTERM): unwind, so the stage being made removes its
    temporary folder and releases its lock, then leave."""


def _stop(*_) -> None:
    raise _Stopped


def _work(job: Job, threads: int) -> None:
    """One job, in a worker process."""
    import torch

    signal.signal(signal.SIGTERM, _stop)
    torch.set_num_threads(threads)
    try:
        store = open_store(job.cfg)
        if job.replication:
            pipeline.replication_of(job.cfg, store)
        else:
            done = pipeline.run(job.cfg, store, False, job.until)
            if job.rivals:
                fusion.make_rivals(job.cfg, store, done.datasets, done.sources, progress=False)
    except _Stopped:
        os._exit(1)  # unwound: nothing half-written is left, no lock is held


def _stack(configs: list[Config], threads: int) -> int:
    """`stacked_gans.make_layers` for `configs`, in a worker process (the device's one user)."""
    signal.signal(signal.SIGTERM, _stop)
    try:
        return stacked_gans.make_layers(configs, threads=threads)
    except _Stopped:
        os._exit(1)


def stacked_first(pool: ProcessPoolExecutor, jobs: list[Job], threads: int) -> None:
    """Where CycleGANs train as stacks (`stacked_gans.stack_size` > 1: a GPU), make the jobs'
    data and zoos (`analysis.workers` at a time), then every CycleGAN layer they need, as
    stacks, before the jobs run: they find them cached. Nothing to do on a CPU."""
    configs = [job.cfg for job in jobs if not job.replication]
    if not configs or stacked_gans.stack_size(configs[0]) <= 1:
        return
    zoos = [pool.submit(_work, Job(c, until="zoo"), threads) for c in configs]
    wait(zoos)
    pool.submit(_stack, configs, threads).result()


def run(
    cfg: Config,
    status_file: str | None = None,
    parent: int | None = None,
    chapters: tuple[str, ...] = CHAPTERS,
) -> int:
    """Run `plan(cfg)`, then `confirmation(cfg)`, `analysis.workers` jobs at a time; say how
    many are done in `status_file`'s "ahead" part. A failed job is reported on stderr and left
    (the chapter that needs it runs it itself and says why it fails). Stops when `parent` (the
    book) is gone. Returns the number of failed jobs."""
    threads = pipeline.worker_threads(cfg.analysis.workers)
    jobs = plan(cfg, chapters)
    failed, finished, total = 0, 0, len(jobs)
    with ProcessPoolExecutor(cfg.analysis.workers, mp_context=get_context("spawn")) as pool:
        stacked_first(pool, jobs, threads)
        running: dict[Future, Job] = {pool.submit(_work, job, threads): job for job in jobs}
        arms = {f for f, job in running.items() if job.cfg.analysis.views == "probe"}
        confirming = not arms  # no arms (e.g. the original's generators): nothing to confirm
        while running:
            say(status_file, f"runs ahead: {finished} of {total} done", "ahead")
            done, _ = wait(running, timeout=1.0, return_when=FIRST_COMPLETED)
            if parent is not None and os.getppid() != parent:  # the book is gone: so are we
                os.killpg(0, signal.SIGTERM)
            for future in done:
                job, finished = running.pop(future), finished + 1
                if future.exception() is not None:
                    failed += 1
                    print(f"ahead: {job.name} failed: {future.exception()!r}", file=sys.stderr)
            if not confirming and all(f.done() for f in arms):
                confirming = True
                try:  # a failed arm leaves nothing to pick from: the chapter will say why
                    extra = confirmation(cfg) if failed == 0 else []
                except Exception as error:
                    print(f"ahead: no confirmation runs: {error!r}", file=sys.stderr)
                    extra = []
                stacked_first(pool, extra, threads)
                running |= {pool.submit(_work, job, threads): job for job in extra}
                total += len(extra)
    say(status_file, f"runs ahead: {finished} of {total} done", "ahead")
    return failed


def start(
    cfg: Config, overrides: dict[str, Any], pending: list[str], folder: Path
) -> subprocess.Popen | None:
    """This module's `main` for `cfg` (its preset with `overrides`) in a session of its own (so
    that it and its workers stop as one), when a chapter whose runs it makes is to be executed
    after another one of `pending` (the chapters' names, in order: there is time to overlap)
    and no Ray cluster makes the runs (`analysis.ray_address`); None otherwise. Its log is
    `ahead.log` in `folder`; its runs at the workers' thread count, as the chapters'; only
    the runs of the chapters in `pending` (`plan`)."""
    numbers = [name[:2] for name in pending]
    if not any(n in CHAPTERS for n in numbers) or numbers[0] >= min(CHAPTERS):
        return None
    if cfg.analysis.ray_address:  # a cluster makes the runs
        return None
    threads = pipeline.worker_threads(cfg.analysis.workers)
    env = os.environ | {"OMP_NUM_THREADS": str(threads)}
    status_file = env.get(STATUS_ENV, "")
    if status_file:  # its workers' stages and bars, beside the chapter's own
        env[STATUS_ENV] = f"{status_file}.{WORK}"
    # imported, not run as a module's __main__: the workers unpickle `_work` from this module
    script = "import sys; from kernelfusion.build import background; sys.exit(background.main())"
    ours = ",".join(n for n in numbers if n in CHAPTERS)
    command = [sys.executable, "-c", script, cfg.preset, json.dumps(overrides), status_file, ours]
    with (folder / "ahead.log").open("ab") as log:
        return subprocess.Popen(command, stdout=log, stderr=log, env=env, start_new_session=True)


def stop(process: subprocess.Popen, timeout: float = 60) -> None:
    """Stop the coordinator and its workers: each worker unwinds the stage it is making
    (nothing half-written is kept, its lock is released); one that does not within `timeout`
    is killed."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:  # all gone already
            return
        try:
            process.wait(timeout)
            deadline = time.time() + timeout  # its workers, which outlive it by a moment
            while time.time() < deadline:
                os.killpg(process.pid, 0)
                time.sleep(0.1)
        except ProcessLookupError:
            return
        except subprocess.TimeoutExpired:
            continue


def main(argv: list[str] | None = None) -> int:
    """The background's process (`start`): argv is the preset, the overrides as JSON, the
    status file ("" for none) and the chapters of `CHAPTERS` in the build (comma-separated;
    all when not given); by default this process's own arguments."""
    argv = sys.argv[1:] if argv is None else argv
    preset, overrides = argv[0], json.loads(argv[1])
    status_file = argv[2] if len(argv) > 2 and argv[2] else None
    chapters = tuple(argv[3].split(",")) if len(argv) > 3 else CHAPTERS
    parent = os.getppid()
    started = time.time()
    failed = run(load_config(preset, overrides), status_file, parent, chapters)
    print(f"ahead: done in {time.time() - started:.0f} s, {failed} failed", file=sys.stderr)
    return 0
