"""Chapter 08's arms: what one CycleGAN step costs for each arm's generator at the default
preset's shapes (whole layers are far larger samples than filters), the seconds of both
layers' training that follow from `gan.steps`, and the functional phase's step.

Target (2-core CPU, one torch thread, as a worker runs an arm): every arm's CycleGAN within
3 minutes at the default preset, so that 3 seeds of all arms fit in chapter 08 on 2 workers.
Column "x float32": how many times faster than float32 passes the preset's `gan.precision`
makes the arm's step. `python -m benchmarks arms`."""

from __future__ import annotations

import time

import numpy as np
import torch

from kernelfusion import ablation, behaviour, config, cyclegan, networks
from kernelfusion.cnn import SourceCNNs, build

from .common import table

TARGET_S = 180  # one arm's CycleGAN, both layers, at the default preset


def _shapes(cfg) -> dict[str, tuple[int, ...]]:
    c1, c2 = cfg.cnn.channels1, cfg.cnn.channels2
    if cfg.gan.sample == "layer":
        return {"conv1": (3, c1, 5, 5), "conv2": (c1, c2, 5, 5)}
    return {"conv1": (3, 5, 5), "conv2": (c1, 5, 5)}


def _step_seconds(cfg, shape, device: str, steps: int) -> float:
    gen = torch.Generator().manual_seed(0)
    d = int(np.prod(shape))
    black = torch.nn.functional.normalize(torch.randn(512, d, generator=gen), dim=1)
    cat = torch.nn.functional.normalize(torch.randn(512, d, generator=gen) + 0.1, dim=1)
    channels = shape if len(shape) == 4 else shape[0]
    quick = config.with_overrides(
        cfg, {"gan.steps": steps, "gan.decay_steps": 0, "gan.log_every": steps}
    ).gan
    cyclegan.train_layer(quick, black, cat, channels, 0, device, progress=False, stop_after=5)
    started = time.perf_counter()
    cyclegan.train_layer(quick, black, cat, channels, 0, device, progress=False)
    return (time.perf_counter() - started) / steps


def _functional_step(cfg, device: str, steps: int) -> float:
    """One step of the functional phase on the default shapes (random kernels and CNNs: the
    cost does not depend on what they learned)."""
    cfg = config.with_overrides(cfg, {"gan.functional_steps": steps})
    c1 = cfg.cnn.channels1
    layers, kernels = {}, {}
    for layer, channels in (("conv1", 3), ("conv2", c1)):
        layers[layer] = cyclegan.LayerGan(
            networks.make_networks(cfg.gan, channels, 0), {}, channels
        )
    for domain in ("black", "cat"):
        kernels[domain] = {"conv1": torch.randn(400, 3, 5, 5), "conv2": torch.randn(400, c1, 5, 5)}
    gan = cyclegan.KernelGan(layers, kernels, torch.randn(c1, 3, 5, 5), {})
    size = cfg.data.image_size
    models = [build(cfg.cnn, size, seed) for seed in (1, 2, 3)]
    sources = SourceCNNs(black=models[0], cat=models[1], init=models[2], report={})
    images = torch.randint(0, 256, (2000, 3, size, size), dtype=torch.uint8)
    started = time.perf_counter()
    behaviour.train_phase(cfg, gan, sources, images, device, progress=False)
    return (time.perf_counter() - started) / steps


def run(device: str | None = None, steps: int | str = 40) -> list[dict]:
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    steps = int(steps)  # from the command line, a word
    threads = torch.get_num_threads()
    if device == "cpu":
        torch.set_num_threads(1)  # as a worker of chapter 08 runs it
    try:
        book = config.load("default")
        configs, _ = ablation.arm_configs(book)
        rows = []
        for arm, cfg in configs.items():
            shapes = {
                layer: shape
                for layer, shape in _shapes(cfg).items()
                if layer in cyclegan.translated_layers(cfg.gan)
            }
            per_layer = {
                layer: _step_seconds(cfg, shape, device, steps) for layer, shape in shapes.items()
            }
            # the same steps in float32, for the preset's gan.precision's speed-up (timed
            # again only when the arm runs in another precision)
            float32 = sum(per_layer.values())
            if cfg.gan.precision != "float32":
                in_float32 = config.with_overrides(cfg, {"gan.precision": "float32"})
                float32 = sum(_step_seconds(in_float32, s, device, steps) for s in shapes.values())
            total = sum(per_layer.values()) * cfg.gan.steps
            if cfg.gan.functional_weight > 0:
                total = _functional_step(cfg, device, steps) * cfg.gan.functional_steps
            rows.append(
                {
                    "arm": arm,
                    "generator": f"{cfg.gan.arch} {cfg.gan.hidden}, {cfg.gan.sample}",
                    "ms/step conv1": 1000 * per_layer.get("conv1", float("nan")),
                    "ms/step conv2": 1000 * per_layer.get("conv2", float("nan")),
                    f"x float32 ({cfg.gan.precision})": float32 / sum(per_layer.values()),
                    "new training s": total,
                    f"within {TARGET_S} s": total <= TARGET_S,
                }
            )
    finally:
        torch.set_num_threads(threads)
    table(
        f"Chapter 08's arms on {device} (1 thread on a CPU); 'new training s': the arm's own "
        "CycleGAN at gan.steps, or its functional phase (it reuses the book's CycleGAN)",
        rows,
    )
    return rows


if __name__ == "__main__":
    run()
