"""Many CycleGANs trained as one stacked model, against one alone: milliseconds per GAN per
training step at the default preset's layer-1 shapes (75 -> 256 -> 256 -> 75, batch 64), on
the device it finds (`python -m benchmarks stack [cpu|cuda]`).

A stack of S GANs is one set of parameters with a leading axis of S (`torch.func`): one
forward, one backward and one Adam update serve them all (Adam works element by element, so
stacking changes no number). On a CPU a step is compute-bound and stacking buys nothing; on a
GPU one such small GAN leaves the device idle, and the ratio below is what many seeds and arms
trained at once would gain there. The step timed is the CycleGAN's: the generators' objective
(`cyclegan.generator_losses`, the critics frozen) and the critics' objective
(`cyclegan.discriminator_losses`), each with its own backward pass and fused Adam step, as
`cyclegan._Trainer` takes them (without the image pool's bookkeeping). The one-GAN row is the
book's own trainer (`cyclegan.train_layer`), not the yardstick's frozen step.
"""

from __future__ import annotations

import copy
import sys
import time

import torch
from torch.func import functional_call, stack_module_state, vmap

from kernelfusion import alignment, config, cyclegan, translators

from .bench_gan import time_trainer
from .common import table

NAMES = ("G", "F", "D_A", "D_B")
STEPS = 30  # timed steps, after 5 of warm-up


def stacked_step(gan_cfg, stack: int, device: str):
    """A function doing one CycleGAN training step of `stack` GANs at once."""
    nets = [translators.make_networks(gan_cfg, 3, seed) for seed in range(stack)]
    params = {}
    for name in NAMES:
        stacked, _ = stack_module_state([n[name].to(device) for n in nets])
        params[name] = {k: v.detach().requires_grad_() for k, v in stacked.items()}
    skeleton = {name: copy.deepcopy(nets[0][name]).to("meta") for name in NAMES}
    generators = [p for name in ("G", "F") for p in params[name].values()]
    critics = [p for name in ("D_A", "D_B") for p in params[name].values()]
    adam = {"lr": gan_cfg.lr, "betas": (gan_cfg.beta1, gan_cfg.beta2), "fused": True}
    opt_g = torch.optim.Adam(generators, **adam)
    opt_d = torch.optim.Adam(critics, **adam)

    def bound(p):
        return {n: (lambda x, n=n: functional_call(skeleton[n], p[n], (x,))) for n in NAMES}

    def generator_loss(p, a, b):
        total, _, fake_b, fake_a = cyclegan.generator_losses(bound(p), a, b, gan_cfg)
        return total, (fake_b, fake_a)

    def critic_loss(p, a, b, fake_b, fake_a):
        loss_a, loss_b = cyclegan.discriminator_losses(bound(p), a, b, fake_a, fake_b)
        return loss_a + loss_b

    g_losses, d_losses = vmap(generator_loss), vmap(critic_loss)
    gen = torch.Generator(device=device).manual_seed(0)

    def step() -> None:
        a = torch.randn(stack, gan_cfg.batch_size, 75, generator=gen, device=device)
        b = torch.randn(stack, gan_cfg.batch_size, 75, generator=gen, device=device)
        for p in critics:  # constants in the generators' step, as in the trainer
            p.requires_grad_(False)
        total, (fake_b, fake_a) = g_losses(params, a, b)
        opt_g.zero_grad(set_to_none=True)
        total.sum().backward()  # the GANs' losses are independent: a sum keeps each gradient
        opt_g.step()
        for p in critics:
            p.requires_grad_(True)
        loss = d_losses(params, a, b, fake_b.detach(), fake_a.detach())
        opt_d.zero_grad(set_to_none=True)
        loss.sum().backward()
        opt_d.step()

    return step


def ms_per_gan(gan_cfg, stack: int, device: str) -> float:
    step = stacked_step(gan_cfg, stack, device)
    for _ in range(5):
        step()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    started = time.perf_counter()
    for _ in range(STEPS):
        step()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return (time.perf_counter() - started) / STEPS / stack * 1000


def trainer_ms(device: str, steps: int = 200) -> float:
    """Milliseconds per step of the book's own trainer (`cyclegan.train_layer`) at the same
    shapes (`bench_gan.time_trainer`)."""
    cfg = config.load("default", {"gan.steps": steps, "gan.decay_steps": 0})
    gen = torch.Generator().manual_seed(0)
    black, _ = alignment.normalise(torch.randn(4096, 3, 5, 5, generator=gen))
    cat, _ = alignment.normalise(torch.randn(4096, 3, 5, 5, generator=gen) + 0.1)
    seconds, _ = time_trainer(cfg.gan, black, cat, 3, device)
    return seconds / steps * 1000


def run(device: str | None = None, stacks: tuple[int, ...] = (1, 8, 32)) -> list[dict]:
    """Per stack size: ms per GAN-step, and its ratio to one GAN alone, both as a stack of one
    and as the book's own trainer (`cyclegan.train_layer`, what every stage runs today)."""
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    gan_cfg = config.load("default", {}).gan
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
