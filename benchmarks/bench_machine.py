"""The machine's yardstick: a fixed workload timed on one thread and on two, so that a book or
test time measured in the same hour can be read as a multiple of this machine's own speed
(machines of one kind differ 2-3x). Two numbers: CycleGAN training steps per second at the
default preset's shapes (one filter of layer 1, 75 -> 256 -> 256 -> 75, batch 64), and a
fixed float32 matmul's GFLOP/s. Print it beside every timing: `python -m benchmarks machine`."""

from __future__ import annotations

import os
import platform
import time

import torch

from kernelfusion import alignment, config, cyclegan

from .common import table

STEPS = 200  # CycleGAN steps timed (after 20 of warm-up): about 2 s on one CPU thread
MATMUL = 1024  # a square float32 matmul of this side, repeated
REPEATS = 20


def gan_steps_per_second(threads: int, device: str = "cpu") -> float:
    """Training steps per second of one layer-1 CycleGAN at the default preset's shapes."""
    torch.set_num_threads(threads)
    cfg = config.load("default", {"gan.steps": STEPS, "gan.decay_steps": 0})
    gen = torch.Generator().manual_seed(0)
    black, _ = alignment.normalise(torch.randn(4096, 3, 5, 5, generator=gen))
    cat, _ = alignment.normalise(torch.randn(4096, 3, 5, 5, generator=gen) + 0.1)
    cyclegan.train_layer(cfg.gan, black, cat, 3, 0, device, progress=False, stop_after=20)
    started = time.perf_counter()
    cyclegan.train_layer(cfg.gan, black, cat, 3, 0, device, progress=False)
    return STEPS / (time.perf_counter() - started)


def matmul_gflops(threads: int) -> float:
    """GFLOP/s of a fixed float32 matmul (the best of `REPEATS`)."""
    torch.set_num_threads(threads)
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(MATMUL, MATMUL, generator=gen)
    b = torch.randn(MATMUL, MATMUL, generator=gen)
    a @ b  # warm-up
    best = float("inf")
    for _ in range(REPEATS):
        started = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - started)
    return 2 * MATMUL**3 / best / 1e9


def run() -> list[dict]:
    before = torch.get_num_threads()
    rows = []
    for threads in sorted({1, min(2, os.cpu_count() or 1)}):
        rows.append(
            {
                "threads": threads,
                "CycleGAN steps/s": gan_steps_per_second(threads),
                "matmul GFLOP/s": matmul_gflops(threads),
            }
        )
    torch.set_num_threads(before)
    table(
        f"yardstick: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"torch {torch.__version__}, {time.strftime('%Y-%m-%d %H:%M')}",
        rows,
    )
    return rows


if __name__ == "__main__":
    run()
