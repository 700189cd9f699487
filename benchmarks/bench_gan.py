"""CycleGAN: training steps per second per layer, and kernels translated per second."""

from __future__ import annotations

import time

import torch

from kernelfusion import config, cyclegan

from .common import table


def run(device: str | None = None, steps: int = 300) -> list[dict]:
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    rows = []
    for preset in ("default", "paper"):
        cfg = config.load(preset, {"gan.steps": steps, "gan.decay_steps": 0})
        for layer, channels in (("conv1", 3), ("conv2", cfg.cnn.channels1)):
            gen = torch.Generator().manual_seed(0)
            black, _ = cyclegan.normalise(torch.randn(4498, channels, 5, 5, generator=gen))
            cat, _ = cyclegan.normalise(torch.randn(4498, channels, 5, 5, generator=gen) + 0.1)
            cyclegan.train_layer(
                cfg.gan, black, cat, channels, 0, device, progress=False, stop_after=10
            )  # warm-up
            started = time.perf_counter()
            gan = cyclegan.train_layer(cfg.gan, black, cat, channels, 0, device, progress=False)
            train_s = time.perf_counter() - started
            kernels = torch.randn(100_000, channels, 5, 5)
            started = time.perf_counter()
            gan.translate(kernels, "cat->black")
            translate_s = time.perf_counter() - started
            rows.append(
                {
                    "preset": preset,
                    "layer": layer,
                    "filter size": f"{channels}x5x5",
                    "batch": cfg.gan.batch_size,
                    "train steps/s": steps / train_s,
                    "kernels translated/s": len(kernels) / translate_s,
                }
            )
    table(f"CycleGAN on {device} ({torch.get_num_threads()} threads); translation on the CPU", rows)
    return rows


if __name__ == "__main__":
    run()
