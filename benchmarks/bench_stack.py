"""Many CycleGANs trained as one stacked model, against one alone: milliseconds per GAN per
training step at the default preset's layer-1 shapes (75 -> 256 -> 256 -> 75, batch 64), on
the device it finds (`python -m benchmarks stack [cpu|cuda]`).

The stack is the book's own (`stacked_gans.StackTrainer`, what `gan.stack` > 1 trains: one set of
parameters with a leading axis of S, one forward, one backward and one Adam update for all S,
each member with its own batches and history pools); the one-GAN row is the book's own trainer
(`cyclegan.train_layer`). On a CPU a step is compute-bound: at one thread (a book worker's) a
stack of 8-32 saves at most about a fifth (0.8-0.9x on the project's 2-core CPU), and the
book's stacks there would hold 3-11 runs behind a barrier (every zoo first) that idles a core,
so the CPU trains one run at a time; at two threads a stack's 0.4-0.7x is about what two
one-thread workers already get. On a GPU one such small GAN leaves the device idle, and the
ratio below is what many seeds and arms trained at once gain there (`gan.stack` = 0 picks
`stacked_gans.CUDA_STACK` on CUDA).
"""

from __future__ import annotations

import sys
import time

import torch

from kernelfusion import alignment, config, stacked_gans

from .bench_gan import time_trainer
from .common import table

STEPS = 30  # timed steps, after 5 of warm-up


def _sets(count: int):
    gen = torch.Generator().manual_seed(0)
    black, _ = alignment.normalise(torch.randn(4096, 3, 5, 5, generator=gen))
    cat, _ = alignment.normalise(torch.randn(4096, 3, 5, 5, generator=gen) + 0.1)
    return [stacked_gans.Member(black, cat, seed) for seed in range(count)]


def ms_per_gan(gan_cfg, stack: int, device: str) -> float:
    trainer = stacked_gans.StackTrainer(gan_cfg, _sets(stack), 3, device)
    for _ in range(5):
        trainer.train_step()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    started = time.perf_counter()
    for _ in range(STEPS):
        trainer.train_step()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return (time.perf_counter() - started) / STEPS / stack * 1000


def trainer_ms(device: str, steps: int = 200) -> float:
    """Milliseconds per step of the book's own trainer (`cyclegan.train_layer`) at the same
    shapes (`bench_gan.time_trainer`)."""
    cfg = config.load("default", {"gan.steps": steps, "gan.decay_steps": 0})
    member = _sets(1)[0]
    seconds, _ = time_trainer(cfg.gan, member.black, member.cat, 3, device)
    return seconds / steps * 1000


def run(device: str | None = None, stacks: tuple[int, ...] = (1, 8, 32)) -> list[dict]:
    """Per stack size: ms per GAN-step, and its ratio to one GAN alone, both as a stack of one
    and as the book's own trainer (`cyclegan.train_layer`, what a CPU trains with)."""
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    gan_cfg = config.load("default", {"gan.steps": 10_000}).gan  # no step runs out
    threads = torch.get_num_threads()
    trainer = trainer_ms(device)
    alone = ms_per_gan(gan_cfg, 1, device)
    rows = [{"GANs": "1, the book's trainer", "ms per GAN-step": trainer, "/ trainer": 1.0}]
    for stack in stacks:
        each = alone if stack == 1 else ms_per_gan(gan_cfg, stack, device)
        rows.append(
            {"GANs": f"{stack} stacked", "ms per GAN-step": each, "/ trainer": each / trainer}
        )
    table(f"CycleGAN steps, on {device}, {threads} thread(s) (layer-1 shapes, batch 64)", rows)
    return rows


if __name__ == "__main__":
    run(sys.argv[1] if len(sys.argv) > 1 else None)
