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
import torch.nn.functional as nnf
from torch import nn

from kernelfusion import alignment, cyclegan

from .common import table

STEPS = 200  # CycleGAN steps timed (after 20 of warm-up): about 2 s on one CPU thread
MATMUL = 1024  # a square float32 matmul of this side, repeated
REPEATS = 20


def _mlp(sizes: tuple[int, ...]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i in range(len(sizes) - 1):
        layers += [nn.Linear(sizes[i], sizes[i + 1]), nn.LeakyReLU(0.2)]
    return nn.Sequential(*layers[:-1])


class YardstickGan:
    """A CycleGAN training step frozen as the book's trainer took it until issue 24 sped it
    up (six generator calls, the critics' gradients computed in the generators' step, Adam's
    foreach path): a fixed workload, so that the yardstick reads the machine and not the
    code, and the same number as every earlier note's. `cyclegan._Trainer` is the book's own
    step; `python -m benchmarks gan` gives its speed beside this one's."""

    def __init__(self, device: str = "cpu", batch: int = 64, dim: int = 75, hidden: int = 256):
        gen = torch.Generator().manual_seed(0)
        black, _ = alignment.normalise(torch.randn(4096, dim, generator=gen))
        cat, _ = alignment.normalise(torch.randn(4096, dim, generator=gen) + 0.1)
        self.black, self.cat, self.batch = black.to(device), cat.to(device), batch
        torch.manual_seed(0)
        gens = {k: _mlp((dim, hidden, hidden, dim)).to(device) for k in ("G", "F")}
        critics = {k: _mlp((dim, hidden, hidden, 1)).to(device) for k in ("D_A", "D_B")}
        self.nets = gens | critics
        betas = (0.5, 0.999)
        params_g = [p for k in gens for p in self.nets[k].parameters()]
        params_d = [p for k in critics for p in self.nets[k].parameters()]
        self.opt_g = torch.optim.Adam(params_g, lr=2e-4, betas=betas, foreach=True)
        self.opt_d = torch.optim.Adam(params_d, lr=2e-4, betas=betas, foreach=True)
        self.pools = [cyclegan.ImagePool(50, dim, device) for _ in range(2)]
        self.gen = gen

    def step(self) -> None:
        n, nets, gen = self.batch, self.nets, self.gen
        a = self.black[torch.randint(len(self.black), (n,), generator=gen)]
        b = self.cat[torch.randint(len(self.cat), (n,), generator=gen)]

        def lsgan(x: torch.Tensor, target: float) -> torch.Tensor:
            return nnf.mse_loss(x, torch.full_like(x, target))

        fake_b, fake_a = nets["G"](a), nets["F"](b)
        loss_g = (
            lsgan(nets["D_A"](fake_b), 1.0)
            + lsgan(nets["D_B"](fake_a), 1.0)
            + 10 * nnf.l1_loss(nets["F"](fake_b), a)
            + 10 * nnf.l1_loss(nets["G"](fake_a), b)
            + 5 * nnf.l1_loss(nets["G"](b), b)
            + 5 * nnf.l1_loss(nets["F"](a), a)
        )
        self.opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        self.opt_g.step()
        pooled_b = self.pools[0].query(fake_b, gen)
        pooled_a = self.pools[1].query(fake_a, gen)
        loss_d = 0.5 * (
            lsgan(nets["D_A"](b), 1.0)
            + lsgan(nets["D_A"](pooled_b), 0.0)
            + lsgan(nets["D_B"](a), 1.0)
            + lsgan(nets["D_B"](pooled_a), 0.0)
        )
        self.opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        self.opt_d.step()

    def steps_per_second(self, steps: int = STEPS, warmup: int = 20) -> float:
        """Training steps per second over `steps`, after `warmup` untimed ones."""
        for _ in range(warmup):
            self.step()
        started = time.perf_counter()
        for _ in range(steps):
            self.step()
        return steps / (time.perf_counter() - started)


def gan_steps_per_second(threads: int, device: str = "cpu") -> float:
    """Training steps per second of the yardstick's CycleGAN (`YardstickGan`: one layer-1
    filter of the default preset, 75 -> 256 -> 256 -> 75, batch 64)."""
    torch.set_num_threads(threads)
    return YardstickGan(device).steps_per_second()


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
