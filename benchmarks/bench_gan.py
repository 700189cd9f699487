"""CycleGAN: training steps per second per layer, and kernels translated per second. For the
MLP translator, also the speed of the yardstick's frozen step (`bench_machine.YardstickGan`,
the trainer as it was before issue 24) at the same shapes, and the trainer's speed-up over it."""

from __future__ import annotations

import time

import torch

from kernelfusion import alignment, config, cyclegan

from .bench_machine import YardstickGan
from .common import table


def time_trainer(gan_cfg, black, cat, channels, device: str) -> tuple[float, cyclegan.LayerGan]:
    """Seconds the book's trainer (`cyclegan.train_layer`) takes for `gan_cfg.steps` steps,
    after 10 untimed ones, and the CycleGAN it trained."""
    cyclegan.train_layer(gan_cfg, black, cat, channels, 0, device, progress=False, stop_after=10)
    started = time.perf_counter()
    gan = cyclegan.train_layer(gan_cfg, black, cat, channels, 0, device, progress=False)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return time.perf_counter() - started, gan


def run(device: str | None = None, steps: int = 300) -> list[dict]:
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    rows = []
    for preset in ("default", "paper"):
        cfg = config.load(preset, {"gan.steps": steps, "gan.decay_steps": 0})
        c1, c2 = cfg.cnn.channels1, cfg.cnn.channels2
        # one sample: a filter (C_in, 5, 5), or a whole layer (C_in, C_out, 5, 5) at `paper`
        whole = cfg.gan.sample == "layer"
        for layer, channels in (("conv1", (3, c1)), ("conv2", (c1, c2))):
            shape = (*channels, 5, 5) if whole else (channels[0], 5, 5)
            channels = shape if whole else channels[0]
            gen = torch.Generator().manual_seed(0)
            count = 4498 if not whole else 512
            black, _ = alignment.normalise(torch.randn(count, *shape, generator=gen))
            cat, _ = alignment.normalise(torch.randn(count, *shape, generator=gen) + 0.1)
            train_s, gan = time_trainer(cfg.gan, black, cat, channels, device)
            kernels = torch.randn(100_000 if not whole else 2_000, *shape)
            started = time.perf_counter()
            gan.translate(kernels, "cat->black")
            translate_s = time.perf_counter() - started
            frozen = float("nan")
            if cfg.gan.arch == "mlp":
                yardstick = YardstickGan(device, cfg.gan.batch_size, black.shape[1], cfg.gan.hidden)
                frozen = yardstick.steps_per_second(steps, warmup=10)
            rows.append(
                {
                    "preset": preset,
                    "layer": layer,
                    "sample": "x".join(map(str, shape)),
                    "batch": cfg.gan.batch_size,
                    "train steps/s": steps / train_s,
                    "frozen step/s": frozen,
                    "speed-up": steps / train_s / frozen,
                    "kernels translated/s": len(kernels) / translate_s,
                }
            )
    table(f"CycleGAN on {device} ({torch.get_num_threads()} threads); translation on the CPU", rows)
    return rows


if __name__ == "__main__":
    run()
