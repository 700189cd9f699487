"""The book's first phase, compute: `make book` makes here, before any chapter executes, every
pipeline run chapters 07-08 read (seed 0's among them, which chapters 02-06 read), in
`analysis.workers` worker processes, about in the order the chapters read them (`plan`). The
chapters, executed after it, only read cached stages and draw.

Nothing here decides anything: a chapter still runs what it needs itself; it finds a run made
here in the cache, so no stage is made twice. The plan is the chapters' own calls, in order
(`plan`), and chapter 08's confirmation seeds are run for the arm its own rule picks
(`ablation.best`) once the arms' runs are all here. With a Ray cluster
(`analysis.ray_address`) there is no compute phase: the chapters send their runs to it.

Stopping: Ctrl-C (or any exception) in the book stops the workers with SIGTERM, and each unwinds
the stage it is making (nothing half-written is kept, its lock is released); a worker whose
book is gone (killed outright) does the same by itself. The workers' own output (warnings, a
failed job's traceback) goes to a log file, not the terminal.
"""

from __future__ import annotations

import dataclasses
import multiprocessing
import os
import signal
import threading
import time
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path

from .. import ablation, fusion, pipeline, stacked_gans
from ..config import Config
from ..progress import say
from ..store import open as open_store


@dataclass(frozen=True)
class Job:
    """One job of the compute phase: the pipeline for `cfg` up to `until` (and, with
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


# The chapters whose runs are made here; the status file's part that says how many are done.
CHAPTERS = ("07", "08")
DONE = "runs"


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
    """The book stops its workers (SIGTERM): unwind, so the stage being made removes its
    temporary folder and releases its lock, then leave."""


def _stop(*_) -> None:
    # once: another SIGTERM (the pool sends one to every worker when one ends, the watch
    # thread one when the book is gone) would cut the unwinding short, leaving a stage's
    # temporary folder behind
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise _Stopped


def _watch(parent: int) -> None:
    """Stop this worker (as the book would) once its book is gone: killed outright, the book
    cannot send SIGTERM itself."""
    while os.getppid() == parent:
        time.sleep(1.0)
    # to the main thread itself: a wait it is blocked in (a stage's lock) ends at once
    signal.pthread_kill(threading.main_thread().ident, signal.SIGTERM)


def _start_worker(log: str, parent: int) -> None:
    """Each worker process, as it starts: its output to `log`; Ctrl-C left to the book (the
    terminal sends it to every process in the group: the book decides, and stops the workers
    with SIGTERM); SIGTERM unwinds the job; a thread watches for its book."""
    with open(log, "ab") as file:
        os.dup2(file.fileno(), 1)
        os.dup2(file.fileno(), 2)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _stop)
    threading.Thread(target=_watch, args=(parent,), daemon=True).start()


def _work(job: Job, threads: int) -> None:
    """One job, in a worker process."""
    import torch

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
    _all_done([pool.submit(_work, Job(c, until="zoo"), threads) for c in configs])
    stack = pool.submit(_stack, configs, threads)
    _all_done([stack])
    stack.result()


def _all_done(futures: list[Future]) -> None:
    """Wait for `futures` a second at a time: Ctrl-C delivered to another of the book's threads
    (the pool's, the memory sampler's) does not wake a wait without a timeout."""
    while wait(futures, timeout=1.0).not_done:
        pass


def needed(cfg: Config, chapters: tuple[str, ...]) -> bool:
    """Whether this build has a compute phase: a chapter of `CHAPTERS` is among `chapters`
    (the numbers of those to execute) and no Ray cluster makes the runs."""
    return any(n in CHAPTERS for n in chapters) and not cfg.analysis.ray_address


def run(
    cfg: Config, chapters: tuple[str, ...] = CHAPTERS, *, status_file: str | None, log: Path
) -> list[str]:
    """Run `plan(cfg, chapters)`, then `confirmation(cfg)`, `analysis.workers` jobs at a time;
    say how many are done in `status_file`'s `DONE` part; the workers' output goes to `log`.
    A failed job is left (the chapter that needs it runs it itself and says why it fails).
    Returns what failed, one line each."""
    threads = pipeline.worker_threads(cfg.analysis.workers)
    jobs = plan(cfg, chapters)
    failed, finished, total = [], 0, len(jobs)
    pool = ProcessPoolExecutor(
        cfg.analysis.workers,
        mp_context=get_context("spawn"),
        initializer=_start_worker,
        initargs=(str(log), os.getpid()),
    )
    try:
        stacked_first(pool, jobs, threads)
        running: dict[Future, Job] = {pool.submit(_work, job, threads): job for job in jobs}
        arms = {f for f, job in running.items() if job.cfg.analysis.views == "probe"}
        confirming = not arms  # no arms (e.g. the original's generators): nothing to confirm
        while running:
            say(status_file, f"runs: {finished} of {total} done", DONE)
            # a second at a time, as in `_all_done`
            done, _ = wait(running, timeout=1.0, return_when=FIRST_COMPLETED)
            for future in done:
                job, finished = running.pop(future), finished + 1
                if future.exception() is not None:
                    failed.append(f"{job.name}: {future.exception()!r}")
            if not confirming and all(f.done() for f in arms):
                confirming = True
                try:  # a failed arm leaves nothing to pick from: the chapter will say why
                    extra = confirmation(cfg) if not failed else []
                except Exception as error:
                    failed.append(f"chapter 08's confirmation runs: {error!r}")
                    extra = []
                stacked_first(pool, extra, threads)
                running |= {pool.submit(_work, job, threads): job for job in extra}
                total += len(extra)
    except BaseException:  # Ctrl-C, or the book's own error: no job goes on without it
        _stop_workers(pool)
        raise
    pool.shutdown()
    say(status_file, "", DONE)
    return failed


def _stop_workers(pool: ProcessPoolExecutor, timeout: float = 60) -> None:
    """Cancel the jobs not started and send each worker SIGTERM: it unwinds the stage it is
    making; one that has not ended within `timeout` seconds is killed."""
    workers = multiprocessing.active_children()  # the pool's: the book starts no other
    pool.shutdown(wait=False, cancel_futures=True)
    for worker in workers:
        worker.terminate()
    deadline = time.time() + timeout
    for worker in workers:
        worker.join(max(0.0, deadline - time.time()))
        if worker.is_alive():
            worker.kill()
            worker.join()
