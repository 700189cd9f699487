"""The seed's CNN: two 5x5 conv layers, each with ReLU and 2x2 max-pooling, then a linear head."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from . import original, training
from .config import CNNConfig, Config, resolve_device
from .data import GROUPS, Datasets
from .machine import generator, init_seed, seed_everything
from .stage_keys import stage_key
from .store import Artifact, StageWriter, Store

CONV_LAYERS = ("conv1", "conv2")


class SmallCNN(nn.Module):
    """`features(x)` is the flattened output of the second conv block; `head` classifies it."""

    def __init__(
        self,
        channels1: int,
        channels2: int,
        image_size: int,
        classes: int = 2,
        padding: int = 2,
        centre: bool = False,
    ):
        super().__init__()
        self.centre = centre  # inputs in [0, 1] are mapped to [-1, 1] first
        self.conv1 = nn.Conv2d(3, channels1, 5, padding=padding)
        self.conv2 = nn.Conv2d(channels1, channels2, 5, padding=padding)
        self.pool = nn.MaxPool2d(2)
        side = (image_size + 2 * padding - 4) // 2  # after conv1 and pooling
        side = (side + 2 * padding - 4) // 2  # after conv2 and pooling
        self.feature_size = channels2 * side**2
        self.head = nn.Linear(self.feature_size, classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        if self.centre:
            x = 2 * x - 1
        x = self.pool(torch.relu(self.conv1(x)))
        x = self.pool(torch.relu(self.conv2(x)))
        return x.flatten(1)

    def forward(self, x: torch.Tensor, features_only: bool = False) -> torch.Tensor:
        features = self.features(x)
        return features if features_only else self.head(features)


def build(cfg: CNNConfig, image_size: int, seed: int, classes: int = 2) -> SmallCNN:
    """A freshly initialised CNN; the same `seed` gives the same weights."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return SmallCNN(
            cfg.channels1, cfg.channels2, image_size, classes, cfg.padding, cfg.centre_inputs
        )


def weight_count(cfg: CNNConfig, image_size: int) -> int:
    """Weights (and biases) of one CNN of this shape: the scale the chapters state."""
    return sum(p.numel() for p in build(cfg, image_size, 0).parameters())


# --- the two source CNNs ----------------------------------------------------------------------

DOMAINS = ("black", "cat")


@dataclass
class SourceCNNs:
    """The black and the cat CNN (trained from one shared initialisation), and their report."""

    black: SmallCNN
    cat: SmallCNN
    init: SmallCNN
    report: dict
    artifact: Artifact | None = None

    def __getitem__(self, domain: str) -> SmallCNN:
        return getattr(self, domain)


def train_classifier(
    cfg: Config,
    images: torch.Tensor,
    labels: torch.Tensor,
    batches: torch.Generator,
    device: str,
    *,
    stage: str,
    progress: bool,
    on_epoch=None,
) -> training.StackResult:
    """One CNN of `cfg.cnn`'s shape, from the shared initialisation, trained on `images` and
    binary `labels` (batches drawn with `batches`, the imbalance handled as `cnn.imbalance`
    says); `on_epoch(step, params)` after every epoch. The source CNNs and the oracle."""
    plan = training.plan_batches(
        labels,
        torch.arange(len(labels)),
        cfg.cnn.epochs,
        cfg.cnn.batch_size,
        cfg.cnn.imbalance,
        batches,
    )
    weights = training.class_weights(labels) if cfg.cnn.imbalance == "weighted" else torch.ones(2)
    model = build(cfg.cnn, cfg.data.image_size, init_seed(cfg))
    per_epoch = len(plan) // cfg.cnn.epochs
    return training.train_models(
        [model],
        plan[None],
        weights[None],
        images=images.to(device),
        labels=labels.to(device),
        cfg=cfg.cnn,
        stage=stage,
        progress=progress,
        on_step=on_epoch,
        on_steps=tuple(per_epoch * e for e in range(1, cfg.cnn.epochs + 1)) if on_epoch else (),
    )


def _train_one(domain, cfg: Config, datasets: Datasets, device, progress):
    """Train one source CNN on its set's train split; return its state and per-epoch history."""
    images = datasets[domain]
    train, val = images.part("train"), images.part("val")
    history = []
    model = build(cfg.cnn, cfg.data.image_size, init_seed(cfg))  # the shape, for predictions

    def evaluate(step, params):
        logits = training.predict_stacked(model, params, val.images)[0]
        report = training.classification_report(
            val.labels, logits.argmax(1).cpu(), ("random", domain)
        )
        history.append(
            {
                "epoch": len(history) + 1,
                "val accuracy": report["accuracy"],
                "val balanced accuracy": report["balanced accuracy"],
            }
        )

    result = train_classifier(
        cfg,
        train.images,
        train.labels,
        generator(cfg.seed, "source CNN batches", domain),
        device,
        stage=f"{domain} CNN",
        progress=progress,
        on_epoch=evaluate,
    )
    losses = result.losses[0].view(cfg.cnn.epochs, -1).mean(1).tolist()
    for row, loss in zip(history, losses, strict=True):
        row["train loss"] = loss
    return training.unstack(result.params, 0), history


@torch.no_grad()
def features(model: SmallCNN | tuple, images: torch.Tensor, device: str = "cpu") -> torch.Tensor:
    """Flattened second-block features of uint8 images (concatenated for a pair of CNNs)."""
    if isinstance(model, tuple):
        return torch.cat([features(m, images, device) for m in model], 1)
    return _batched(model.features, model, images, device)


def positive_probability(
    model: SmallCNN, images: torch.Tensor, device: str = "cpu"
) -> torch.Tensor:
    """p(class 1) of a single CNN on uint8 images, computed in batches."""
    return _batched(lambda x: torch.softmax(model(x), 1)[:, 1], model, images, device)


@torch.no_grad()
def _batched(function, model: SmallCNN, images: torch.Tensor, device: str, batch: int = 512):
    """`function` of uint8 images scaled to [0, 1], `batch` at a time on `device` (in eval mode),
    gathered on the CPU: memory stays flat whatever the number of images. The batches are laid
    out channels-last: on the CPU the convolutions and poolings then take oneDNN's faster path,
    1.7x the features' speed at the default shapes on one thread. The numbers are the plain
    layout's to float32 rounding: bit for bit on an AVX-512 CPU; where oneDNN runs AVX2 code
    the plain layout is the one that moves (by 5e-7 of the largest feature), and channels-last
    gave the AVX-512 bits there too (`tests/test_cnn.py`)."""
    model.to(device).eval()
    last = torch.channels_last
    parts = [
        function(images[i : i + batch].to(device).float().div(255).contiguous(memory_format=last))
        .cpu()
        .contiguous()
        for i in range(0, len(images), batch)
    ]
    return torch.cat(parts)


def _report(states, histories, cfg: Config, datasets, device) -> dict:

    report = {"history": histories, "test": {}, "eval groups": {}}
    for domain in DOMAINS:
        model = load_state(cfg, states[domain])
        test = datasets[domain].part("test")
        p = positive_probability(model, test.images, device)
        report["test"][domain] = training.classification_report(
            test.labels, (p > 0.5).long(), ("random", domain)
        )
        p_eval = positive_probability(model, datasets.eval.images, device)
        report["eval groups"][domain] = {
            group: float(p_eval[datasets.eval.groups == g].mean()) for g, group in enumerate(GROUPS)
        }
    return report


def load_state(cfg: Config, state: dict[str, torch.Tensor]) -> SmallCNN:
    model = SmallCNN(
        cfg.cnn.channels1,
        cfg.cnn.channels2,
        cfg.data.image_size,
        padding=cfg.cnn.padding,
        centre=cfg.cnn.centre_inputs,
    )
    model.load_state_dict(state)
    return model.eval()


def make_sources(
    cfg: Config, store: Store, datasets: Datasets, *, progress: bool = True, force: bool = False
) -> SourceCNNs:
    """Train (or reuse) the black CNN and the cat CNN from one shared initialisation."""
    device = resolve_device(cfg.device)

    published = cfg.zoo.source == "original"

    def build_stage(writer: StageWriter) -> None:
        seed_everything(cfg.seed)
        states, histories = {}, {}
        for domain in DOMAINS:
            if published:  # the original's model, as its notebook chose it; no history here
                states[domain] = original.read_model(cfg.zoo.root, domain, cfg.zoo.source_model)
                histories[domain] = []
            else:
                states[domain], histories[domain] = _train_one(
                    domain, cfg, datasets, device, progress
                )
            writer.save_tensors(f"{domain}_cnn", states[domain])
        writer.save_tensors(
            "init_cnn", build(cfg.cnn, cfg.data.image_size, init_seed(cfg)).state_dict()
        )
        writer.save_json("report", _report(states, histories, cfg, datasets, device))
        card = {
            "what": "the two source CNNs: black vs random, cat vs random",
            "architecture": f"conv5x5 (padding {cfg.cnn.padding})-relu-maxpool2 x2, linear head",
            "shared initialisation seed": init_seed(cfg),
            "imbalance handling": cfg.cnn.imbalance,
            "trained on": "train split of the data stage",
        }
        if published:
            card |= {
                "trained on": "the original's own training photographs (not published)",
                "read from": f"model {cfg.zoo.source_model} of each published zoo "
                f"({original.REPOSITORY})",
                "shared initialisation seed": "none: the original trained each model from its "
                "own initialisation; the 'init' CNN here is a fresh one of this seed",
            }
        writer.save_json("card", card)

    key = stage_key(cfg, "sources")
    if published:
        key |= {
            "published": [
                original.fingerprint_model(cfg.zoo.root, d, cfg.zoo.source_model) for d in DOMAINS
            ]
        }
    artifact = store.stage("sources", key, build_stage, inputs=[datasets.artifact], force=force)
    return SourceCNNs(
        black=load_state(cfg, artifact.tensors("black_cnn")),
        cat=load_state(cfg, artifact.tensors("cat_cnn")),
        init=load_state(cfg, artifact.tensors("init_cnn")),
        report=artifact.json("report"),
        artifact=artifact,
    )


def metrics_table(report: dict):
    """Test-split accuracy and per-class precision/recall of each source CNN."""
    import pandas as pd

    rows = []
    for domain, result in report["test"].items():
        row = {
            "CNN": domain,
            "accuracy": result["accuracy"],
            "balanced accuracy": result["balanced accuracy"],
        }
        for role, scores in zip(("random", "positive"), result["classes"].values(), strict=True):
            row[f"precision ({role})"] = scores["precision"]
            row[f"recall ({role})"] = scores["recall"]
        rows.append(row)
    return pd.DataFrame(rows).set_index("CNN")


def group_table(report: dict):
    """Mean p(positive) of each source CNN on each evaluation group."""
    import pandas as pd

    frame = pd.DataFrame(report["eval groups"]).T.rename(index=lambda d: f"p({d})")
    return frame[list(GROUPS)]
