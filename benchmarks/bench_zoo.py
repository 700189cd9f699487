"""Zoo training: K models vectorized vs one-model stacks one after another vs plain
channels-last modules one after another (`training.train_each`, the CPU's path), and achieved
FLOP/s against the machine's dense matmul peak measured in the same run (targets: >= 3x the
loop at K=32 on a 2-core CPU, >= 20x on a GPU; >= 30% of the matmul peak)."""

from __future__ import annotations

import multiprocessing as mp
import time

import torch

from kernelfusion import training

from .common import table

BATCH, STEPS = 32, 12
# (name, image size, channels): the default preset's CNN, and the smoke preset's tiny one.
WORKLOADS = (("default", 32, (8, 16)), ("smoke", 24, (4, 8)))


def step_flops(k: int, image: int, channels: tuple[int, int]) -> float:
    """Multiply-adds x2 of forward + backward (about 3x forward) for K models, one step."""
    c1, c2 = channels
    forward = 2 * 25 * (3 * c1 * image**2 + c1 * c2 * (image // 2) ** 2)
    forward += 2 * c2 * (image // 4) ** 2 * 2
    return 3 * forward * BATCH * k


def matmul_peak(device: str, n: int = 2048, repeat: int = 10) -> float:
    """Dense float32 matmul FLOP/s: the practical compute limit of this device."""
    a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
    a @ b
    _sync(device)
    started = time.perf_counter()
    for _ in range(repeat):
        a @ b
    _sync(device)
    return 2 * n**3 * repeat / (time.perf_counter() - started)


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _peak_mib() -> float:
    """This process's own peak resident memory (VmHWM; ru_maxrss would carry the parent's
    peak across the exec that starts a spawned process)."""
    for line in open("/proc/self/status"):  # noqa: SIM115 - tiny file, read once
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _measure(k: int, mode: str, device: str, image: int, channels, queue) -> None:
    from kernelfusion import cnn, config

    cfg = config.load("default", {"cnn.channels1": channels[0], "cnn.channels2": channels[1]}).cnn
    gen = torch.Generator().manual_seed(0)
    images = torch.randint(0, 255, (2048, 3, image, image), dtype=torch.uint8, device=device)
    labels = torch.randint(0, 2, (2048,), device=device)
    plans = torch.randint(0, 2048, (k, STEPS, BATCH), generator=gen)
    weights = torch.ones(k, 2)
    models = [cnn.build(cfg, image, s) for s in range(k)]

    def train_all():
        if mode == "vectorized":
            training.train_stacked(models, images, labels, plans, weights, cfg, progress=False)
        elif mode == "each":  # the CPU's path: plain modules one after another
            training.train_each(models, images, labels, plans, weights, cfg, progress=False)
        elif mode == "rule":  # what the zoo stage does: stacks of the device's size
            size = training.stack_size(device, k)
            training.train_in_stacks(
                models, plans, weights, size, images=images, labels=labels, cfg=cfg, progress=False
            )
        else:
            for i in range(k):
                training.train_stacked(
                    [models[i]],
                    images,
                    labels,
                    plans[i : i + 1],
                    weights[i : i + 1],
                    cfg,
                    progress=False,
                )
        _sync(device)

    train_all()  # warm-up
    started = time.perf_counter()
    train_all()
    seconds = time.perf_counter() - started
    peak = torch.cuda.max_memory_allocated() / 2**20 if device.startswith("cuda") else _peak_mib()
    queue.put((seconds, peak))


def measure(k: int, mode: str, device: str, image: int, channels) -> tuple[float, float]:
    """Seconds for K models x STEPS steps, and peak memory (MiB), in a fresh process."""
    context = mp.get_context("spawn")
    queue = context.Queue()
    process = context.Process(target=_measure, args=(k, mode, device, image, channels, queue))
    process.start()
    result = queue.get()
    process.join()
    return result


def _row(name: str, image: int, channels, k: int, device: str, peak: float) -> dict:
    loop_s, loop_mem = measure(k, "loop", device, image, channels)
    vec_s, vec_mem = measure(k, "vectorized", device, image, channels)
    rule_s, _ = measure(k, "rule", device, image, channels)
    each_s, _ = measure(k, "each", device, image, channels)
    achieved = step_flops(k, image, channels) * STEPS / vec_s
    return {
        "CNN": f"{name} ({image}px, {channels[0]}/{channels[1]} ch)",
        "K": k,
        "loop model-steps/s": k * STEPS / loop_s,
        "vectorized model-steps/s": k * STEPS / vec_s,
        "speed-up": loop_s / vec_s,
        "rule stack": training.stack_size(device, k),
        "stacks of the rule vs loop": loop_s / rule_s,
        "each model-steps/s": k * STEPS / each_s,
        "each vs vectorized": vec_s / each_s,
        "loop peak MiB": loop_mem,
        "vectorized peak MiB": vec_mem,
        "GFLOP/s": achieved / 1e9,
        "of matmul peak": achieved / peak,
    }


def run(ks: tuple[int, ...] = (8, 32, 128), device: str | None = None) -> list[dict]:
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    peak = matmul_peak(device)
    rows = [
        _row(name, image, channels, k, device, peak)
        for name, image, channels in WORKLOADS
        for k in ks
    ]
    table(
        f"zoo training on {device} ({torch.get_num_threads()} threads); dense matmul peak "
        f"{peak / 1e9:.1f} GFLOP/s; {STEPS} steps of batch {BATCH}",
        rows,
    )
    return rows


if __name__ == "__main__":
    run()
