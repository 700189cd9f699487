"""The model zoo: K CNNs per domain trained together, and the kernel sets taken from them.

One *kernel set* is one filter's weights, `C_in x 5 x 5`, of one conv layer, from one model of
the zoo at one snapshot of its training. Each is stored with its (model, snapshot step, filter)
index so that order and wiring are never lost: layer 2's filter f of model m at step s reads the
outputs of layer 1's filters of the same model at the same step.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as nnf
from torch.func import functional_call

from . import original, training
from .cnn import CONV_LAYERS, DOMAINS, SourceCNNs, build
from .config import Config, resolve_device, zoo_size
from .data import Datasets
from .machine import derive_seed, generator, seed_everything
from .stage_keys import stage_key
from .store import Artifact, StageWriter, Store

if TYPE_CHECKING:
    import pandas as pd


@dataclass
class KernelSets:
    """Kernel sets of one domain: per layer, kernels (M, C_in, 5, 5) and index (M, 3)."""

    kernels: dict[str, torch.Tensor]
    index: dict[str, torch.Tensor]  # columns: model, snapshot step, filter


@dataclass
class Zoo:
    black: KernelSets
    cat: KernelSets
    summary: dict
    artifact: Artifact | None = None

    def __getitem__(self, domain: str) -> KernelSets:
        return getattr(self, domain)


def extract_kernel_sets(
    snapshots: dict[int, dict[str, torch.Tensor]],
    keep: int = 0,
    seed: int = 0,
    learned: torch.Tensor | None = None,
) -> tuple[KernelSets, int]:
    """Flatten stacked snapshots {step: {"convN.weight": (K, C_out, C_in, 5, 5)}} into kernel
    sets ordered by (model, step, filter); only models where `learned` (K,) is true, if given;
    keep a seeded subset of `keep` per layer if > 0. Returns the sets and how many there were
    before subsetting."""
    steps = sorted(snapshots)
    kernels, index, available = {}, {}, 0
    for layer in CONV_LAYERS:
        weights = torch.stack([snapshots[s][f"{layer}.weight"].cpu() for s in steps], 1)
        k, n_steps, c_out = weights.shape[:3]
        grid = torch.stack(
            torch.meshgrid(
                torch.arange(k), torch.tensor(steps), torch.arange(c_out), indexing="ij"
            ),
            -1,
        ).reshape(-1, 3)
        flat = weights.reshape(k * n_steps * c_out, *weights.shape[3:])
        if learned is not None:  # the model number stays in the index
            rows = learned[grid[:, 0]]
            flat, grid = flat[rows], grid[rows]
        available = len(flat)
        if 0 < keep < len(flat):
            gen = torch.Generator().manual_seed(seed + CONV_LAYERS.index(layer))
            chosen = torch.randperm(len(flat), generator=gen)[:keep].sort().values
            flat, grid = flat[chosen], grid[chosen]
        elif keep > len(flat):
            warnings.warn(
                f"zoo.kernel_sets={keep} but the zoo gives only {len(flat)} sets for {layer}: "
                f"keeping {len(flat)} (raise zoo.models or zoo.snapshots for more)",
                stacklevel=2,
            )
        kernels[layer], index[layer] = flat.contiguous(), grid
    return KernelSets(kernels, index), available


def _subset_size(cfg: Config, datasets, domain: str) -> int:
    return max(2, round(len(datasets[domain].part("train")) * cfg.zoo.subset_fraction))


def _batches_per_epoch(cfg: Config, datasets, domain: str) -> int:
    """Full batches in one pass over a zoo model's subset (as `training.plan_batches` cuts)."""
    size = _subset_size(cfg, datasets, domain)
    return max(1, size // min(cfg.cnn.batch_size, size))


def zoo_steps(cfg: Config, datasets) -> dict[str, int]:
    """Training steps per model of each domain's zoo: `zoo.epochs` passes over its subset, or,
    with `zoo.equal_steps`, the larger of the two for both."""
    steps = {d: cfg.zoo.epochs * _batches_per_epoch(cfg, datasets, d) for d in DOMAINS}
    if cfg.zoo.equal_steps:
        steps = dict.fromkeys(DOMAINS, max(steps.values()))
    return steps


def _train_domain(domain: str, cfg: Config, datasets, device: str, progress: bool):
    """Train the zoo of one domain; return its stacked result, per-model val accuracy and
    balanced accuracy, and its steps."""
    images = datasets[domain]
    train, val = images.part("train"), images.part("val")
    gen = generator(cfg.seed, "zoo subsets", domain)
    size = _subset_size(cfg, datasets, domain)
    steps = zoo_steps(cfg, datasets)[domain]
    epochs = -(
        -steps // _batches_per_epoch(cfg, datasets, domain)
    )  # enough passes for `steps`, the last one cut short
    plans, weights = [], []
    for _ in range(zoo_size(cfg, domain)):
        members = torch.randperm(len(train), generator=gen)[:size]
        plans.append(
            training.plan_batches(
                train.labels, members, epochs, cfg.cnn.batch_size, cfg.cnn.imbalance, gen
            )[:steps]
        )
        weights.append(
            training.class_weights(train.labels[members])
            if cfg.cnn.imbalance == "weighted"
            else torch.ones(2)
        )
    seeds = [derive_seed(cfg.seed, "zoo model", domain, k) for k in range(zoo_size(cfg, domain))]
    models = [build(cfg.cnn, cfg.data.image_size, s) for s in seeds]
    plans = torch.stack(plans)
    steps = plans.shape[1]
    result = training.train_models(
        models,
        plans,
        torch.stack(weights),
        cfg.zoo.stack,
        images=train.images.to(device),
        labels=train.labels.to(device),
        cfg=cfg.cnn,
        snapshot_steps=training.snapshot_schedule(steps, cfg.zoo.snapshots),
        stage=f"{domain} zoo",
        progress=progress,
    )
    return result, *_accuracies(models[0], result.params, val), steps


def _accuracies(model, params, val) -> tuple[torch.Tensor, torch.Tensor]:
    """Validation accuracy and balanced accuracy (the mean of the two classes' recalls) of
    each stacked model, one model at a time on all validation images: on a CPU, 7x faster
    than `vmap` over the stack for the 4,498 published models (2 s against 15 s per 256)."""
    base = training.meta_copy(model)
    device = next(iter(params.values())).device
    images = val.images.to(device).float().div(255)
    count = len(next(iter(params.values())))
    with torch.no_grad():
        correct = torch.stack(
            [
                functional_call(base, training.unstack(params, k), (images,)).argmax(-1).cpu()
                == val.labels
                for k in range(count)
            ]
        ).float()  # (K, N)
    recalls = [correct[:, val.labels == c].mean(1) for c in (0, 1)]
    return correct.mean(1), (recalls[0] + recalls[1]) / 2


def _read_domain(domain: str, cfg: Config, datasets, progress: bool):
    """One domain's zoo read from the original's published models (one snapshot each: the
    final weights it published); accuracy on this book's val split of the domain's set."""
    params, numbers = original.read_zoo(cfg.zoo.root, domain, zoo_size(cfg, domain), progress)
    snapshot = {name: value for name, value in params.items() if name.endswith(".weight")}
    result = training.StackResult(
        params=params, snapshots={0: snapshot}, losses=torch.zeros(len(numbers), 0)
    )
    val = datasets[domain].part("val")
    model = build(cfg.cnn, cfg.data.image_size, 0)
    return result, *_accuracies(model, params, val), numbers


def make_zoo(
    cfg: Config, store: Store, datasets: Datasets, *, progress: bool = True, force: bool = False
) -> Zoo:
    """Train (or reuse) both zoos and extract their kernel sets; with `zoo.source =
    "original"`, read the original's published models instead of training."""
    device = resolve_device(cfg.device)
    published = cfg.zoo.source == "original"

    def build_stage(writer: StageWriter) -> None:
        seed_everything(cfg.seed)
        summary = {}
        for domain in DOMAINS:
            if published:  # all published models: their accuracy here is on other data
                result, accuracy, balanced, numbers = _read_domain(domain, cfg, datasets, progress)
                steps, learned = 0, torch.ones(len(accuracy), dtype=torch.bool)
            else:
                result, accuracy, balanced, steps = _train_domain(
                    domain, cfg, datasets, device, progress
                )
                learned = balanced >= cfg.zoo.min_balanced_accuracy
            if not learned.any():
                raise ValueError(
                    f"no model of the {domain} zoo reached a validation balanced accuracy of "
                    f"zoo.min_balanced_accuracy = {cfg.zoo.min_balanced_accuracy} (the best: "
                    f"{float(balanced.max()):.3f}): train longer (zoo.epochs) or lower it"
                )
            sets, available = extract_kernel_sets(
                result.snapshots,
                cfg.zoo.kernel_sets,
                derive_seed(cfg.seed, "kernel sets"),
                learned,
            )
            tensors = {f"{layer}": sets.kernels[layer] for layer in CONV_LAYERS}
            tensors |= {f"{layer}_index": sets.index[layer] for layer in CONV_LAYERS}
            writer.save_tensors(domain, tensors)
            writer.save_tensors(f"{domain}_models", result.params)
            steps_taken = sorted(result.snapshots)
            writer.save_tensors(
                f"{domain}_snapshots",
                {
                    "steps": torch.tensor(steps_taken),
                    "conv1": torch.stack(
                        [result.snapshots[s]["conv1.weight"].cpu() for s in steps_taken], 1
                    ),
                },
            )
            summary[domain] = {
                "models": len(accuracy),
                "steps": steps,
                "snapshot steps": sorted(result.snapshots),
                "kernel sets available per layer": available,
                "kernel sets kept": {layer: len(sets.kernels[layer]) for layer in CONV_LAYERS},
                "val accuracy": accuracy.tolist(),
                "val balanced accuracy": balanced.tolist(),
                "models kept": int(learned.sum()),
            }
            if not published:
                recent = result.losses[:, -max(1, steps // 10) :]
                summary[domain]["final loss"] = recent.mean(1).tolist()
            else:
                summary[domain] |= {
                    "read from": original.REPOSITORY,
                    "model numbers": numbers,
                    "val accuracy on": "this book's val split (not the original's data)",
                }
        writer.save_json("summary", summary)

    # 2: layer-1 snapshots; 3: derive_seed; 4: balanced accuracy, models that learned;
    # 5: accuracy one model at a time (logits equal to 2e-6, so an argmax tie could differ)
    key = stage_key(cfg, "zoo")
    if published:
        key |= {
            "published": [
                original.fingerprint(cfg.zoo.root, d, zoo_size(cfg, d), cache=store.root)
                for d in DOMAINS
            ]
        }
    artifact = store.stage("zoo", key, build_stage, inputs=[datasets.artifact], force=force)
    return load(artifact)


def load(artifact: Artifact) -> Zoo:
    domains = {}
    for domain in DOMAINS:
        tensors = artifact.tensors(domain)
        domains[domain] = KernelSets(
            {layer: tensors[layer] for layer in CONV_LAYERS},
            {layer: tensors[f"{layer}_index"] for layer in CONV_LAYERS},
        )
    return Zoo(**domains, summary=artifact.json("summary"), artifact=artifact)


def kernel_statistics(kernels: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per-kernel norm, mean weight per input channel, and spatial frequency (the share of the
    kernel's energy outside the lowest spatial frequencies of its 5x5 Fourier transform)."""
    spectrum = torch.fft.fft2(kernels).abs() ** 2  # (M, C, 5, 5)
    low = spectrum[..., :2, :2].sum((-1, -2)) + spectrum[..., -1:, :2].sum((-1, -2))
    low = low + spectrum[..., :2, -1:].sum((-1, -2)) + spectrum[..., -1:, -1:].sum((-1, -2))
    total = spectrum.sum((-1, -2)).clamp(min=1e-12)
    return {
        "norm": kernels.flatten(1).norm(dim=1),
        "channel mean": kernels.mean((-1, -2)),
        "high-frequency share": (1 - low.sum(1) / total.sum(1)),
    }


def cosine_matrix(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Cosine similarity between every kernel of `a` and every kernel of `b` (flattened)."""
    a = nnf.normalize(a.flatten(1), dim=1)
    b = nnf.normalize(b.flatten(1), dim=1)
    return a @ b.T


def cosine_summary(zoo: Zoo, layer: str, max_rows: int = 4000, seed: int = 0) -> dict[str, float]:
    """Mean |cosine| within each domain and between them (self-pairs left out), on a seeded
    sample of at most `max_rows` kernels per domain (the matrices grow with the square: the
    original's zoo has 44,000 layer-2 filters per domain, 8 GB a matrix)."""
    gen = torch.Generator().manual_seed(seed)

    def sample(kernels):
        return kernels[torch.randperm(len(kernels), generator=gen)[:max_rows]]

    black, cat = sample(zoo.black.kernels[layer]), sample(zoo.cat.kernels[layer])

    def mean_off_diagonal(m):
        mask = ~torch.eye(len(m), dtype=torch.bool)
        return float(m.abs()[mask].mean())

    return {
        "black-black": mean_off_diagonal(cosine_matrix(black, black)),
        "cat-cat": mean_off_diagonal(cosine_matrix(cat, cat)),
        "black-cat": float(cosine_matrix(black, cat).abs().mean()),
    }


def statistics_frame(zoo: Zoo):
    """Kernel statistics of both domains and layers as one long table."""
    import pandas as pd

    frames = []
    for domain in DOMAINS:
        for layer in CONV_LAYERS:
            stats = kernel_statistics(zoo[domain].kernels[layer])
            frame = pd.DataFrame(
                {
                    "norm": stats["norm"].numpy(),
                    "high-frequency share": stats["high-frequency share"].numpy(),
                    "mean weight": stats["channel mean"].mean(1).numpy(),
                }
            )
            frame["domain"], frame["layer"] = domain, layer
            frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def mean_colour_table(zoo: Zoo):
    """Mean layer-1 weight per input colour channel, per domain: what colours the filters favour."""
    import pandas as pd

    rows = {d: zoo[d].kernels["conv1"].mean((0, 2, 3)).tolist() for d in DOMAINS}
    return pd.DataFrame(rows, index=["red", "green", "blue"]).T


def joint_sample(zoo: Zoo, layer: str, per_domain: int, seed: int = 0):
    """A seeded sample of kernels from both domains: (kernels, domain labels, hover text)."""
    gen = torch.Generator().manual_seed(seed)
    kernels, domains, hover = [], [], []
    for domain in DOMAINS:
        sets = zoo[domain]
        chosen = torch.randperm(len(sets.kernels[layer]), generator=gen)[:per_domain]
        kernels.append(sets.kernels[layer][chosen])
        domains += [domain] * len(chosen)
        hover += [
            f"{domain}: model {m}, step {s}, filter {f}"
            for m, s, f in sets.index[layer][chosen].tolist()
        ]
    return torch.cat(kernels), domains, hover


def summary_table(zoo: Zoo):
    """Models, steps, snapshots, kernel sets and validation accuracy per domain."""
    import pandas as pd

    rows = {}
    for domain, s in zoo.summary.items():
        rows[domain] = {
            "models": s["models"],
            "training steps": s["steps"] or "(published)",
            "snapshots per model": len(s["snapshot steps"]),
            "kernel sets, layer 1": s["kernel sets kept"]["conv1"],
            "kernel sets, layer 2": s["kernel sets kept"]["conv2"],
            "mean val accuracy": f"{sum(s['val accuracy']) / len(s['val accuracy']):.3f}",
            "mean val balanced accuracy": (
                f"{sum(s['val balanced accuracy']) / len(s['val balanced accuracy']):.3f}"
            ),
            "models kept (learned their concept)": s["models kept"],
        }
    return pd.DataFrame(rows).astype(str)


def source_norm_range(zoo: Zoo, sources: SourceCNNs) -> pd.DataFrame:
    """Per domain and layer: the 5-95% range of the zoo's filter norms, the source CNN's
    median filter norm, and the share of its filters outside that range. The generator of a
    domain learned on its zoo's filters; a source CNN outside their range is translated out of
    distribution."""
    import pandas as pd

    rows = []
    for domain in DOMAINS:
        for layer in CONV_LAYERS:
            norms = zoo[domain].kernels[layer].flatten(1).norm(dim=1)
            low, high = torch.quantile(norms, torch.tensor([0.05, 0.95])).tolist()
            source = getattr(sources[domain], layer).weight.detach().flatten(1).norm(dim=1)
            rows.append(
                {
                    "domain": domain,
                    "layer": layer,
                    "zoo 5%": low,
                    "zoo 95%": high,
                    "source CNN median": float(source.median()),
                    "source filters outside": float(
                        ((source < low) | (source > high)).float().mean()
                    ),
                }
            )
    return pd.DataFrame(rows).set_index(["domain", "layer"])
