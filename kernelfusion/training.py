"""Vectorized training of K CNNs at once, and the classification metrics the chapters report.

K models of one architecture are stacked (`torch.func.stack_module_state`) and run as one
computation (`vmap` over `functional_call`), each on its own batches, drawn from index plans
fixed in advance. Adam is element-wise, so one Adam over the stacked parameters is exactly K
independent Adams: a model trained in a stack gets the weights it would get alone. That is the
GPU's path; on a CPU plain modules one after another are faster (`train_each`), with the same
plans, losses and results; `train_models` picks.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TypedDict, Unpack

import numpy as np
import torch
import torch.nn.functional as nnf
from torch import nn
from torch.func import functional_call, stack_module_state, vmap

from .config import CNNConfig
from .progress import bar as progress_bar


class DivergedError(FloatingPointError):
    """Training produced a NaN or infinite loss; the message names the stage, step and value."""


def class_weights(labels: torch.Tensor, classes: int = 2) -> torch.Tensor:
    """Inverse-frequency class weights that average to 1 over the samples."""
    counts = torch.bincount(labels, minlength=classes).float().clamp(min=1)
    return len(labels) / (classes * counts)


def plan_batches(
    labels: torch.Tensor,
    members: torch.Tensor,
    epochs: int,
    batch_size: int,
    imbalance: str,
    gen: torch.Generator,
) -> torch.Tensor:
    """Indices (steps, batch) into the data for one model: shuffled epochs over `members`, or,
    with `imbalance == "balanced"`, draws with replacement that give each class equal weight."""
    batch = min(batch_size, len(members))
    per_epoch = max(1, len(members) // batch)
    steps = []
    for _ in range(epochs):
        if imbalance == "balanced":
            weights = class_weights(labels[members])[labels[members]]
            order = members[torch.multinomial(weights, per_epoch * batch, True, generator=gen)]
        else:
            order = members[torch.randperm(len(members), generator=gen)][: per_epoch * batch]
        steps.append(order.view(per_epoch, batch))
    return torch.cat(steps)


@dataclass
class StackResult:
    """Stacked final parameters, per-step losses (K, steps) and conv snapshots by step."""

    params: dict[str, torch.Tensor]
    losses: torch.Tensor
    snapshots: dict[int, dict[str, torch.Tensor]] = field(default_factory=dict)


def stack(models: list[nn.Module]) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    params, buffers = stack_module_state(models)
    return {k: v.detach().clone() for k, v in params.items()}, buffers


def stacked_call(base: nn.Module, params, buffers, x: torch.Tensor, **kwargs) -> torch.Tensor:
    """Run K models on their own inputs x (K, B, ...) -> (K, B, ...); kwargs go to forward."""

    def one(p, b, inputs):
        return functional_call(base, (p, b), (inputs,), kwargs)

    return vmap(one)(params, buffers, x)


def meta_copy(model: nn.Module) -> nn.Module:
    """A weightless copy of `model` that `functional_call` fills with stacked parameters."""
    return copy.deepcopy(model).to("meta")


class Loop(TypedDict, total=False):
    """The training loop's options, the same for both paths (`train_stacked`, `train_each`);
    defaults in `_run_steps`."""

    snapshot_steps: tuple[int, ...]  # steps after which the conv weights are kept (the zoo)
    snapshot_keys: tuple[str, ...]  # which parameters a snapshot keeps
    stage: str  # named in the progress bar and in a divergence error
    progress: bool
    on_step: Callable[[int, dict[str, torch.Tensor]], None] | None  # called with the params
    on_steps: tuple[int, ...]  # ... after these steps


def train_stacked(
    models: list[nn.Module],
    images: torch.Tensor,
    labels: torch.Tensor,
    plans: torch.Tensor,
    weights: torch.Tensor,
    cfg: CNNConfig,
    **loop: Unpack[Loop],
) -> StackResult:
    """Train K models together. `plans` (K, steps, B) index `images`/`labels` (on the device);
    `weights` (K, classes) are each model's class weights (ones for an unweighted loss)."""
    device = images.device
    base = meta_copy(models[0])
    params, buffers = stack(models)
    params = {k: v.to(device).requires_grad_(True) for k, v in params.items()}
    buffers = {k: v.to(device) for k, v in buffers.items()}
    optimizer = torch.optim.Adam(params.values(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    plans, weights = plans.to(device), weights.to(device)

    def update(step: int) -> torch.Tensor:
        index = plans[:, step]
        x = images[index].float().div_(255)
        y = labels[index]
        logits = stacked_call(base, params, buffers, x)
        ce = nnf.cross_entropy(logits.flatten(0, 1), y.flatten(), reduction="none").view_as(y)
        w = torch.gather(weights, 1, y)
        per_model = (ce * w).sum(1) / w.sum(1)
        optimizer.zero_grad(set_to_none=True)
        per_model.sum().backward()
        optimizer.step()
        return per_model.detach()

    def parameters() -> dict[str, torch.Tensor]:
        return {k: v.detach() for k, v in params.items()}

    return _run_steps(plans.shape[:2], update, parameters, device, **loop)


def train_each(
    models: list[nn.Module],
    images: torch.Tensor,
    labels: torch.Tensor,
    plans: torch.Tensor,
    weights: torch.Tensor,
    cfg: CNNConfig,
    **loop: Unpack[Loop],
) -> StackResult:
    """`train_stacked`'s job and result, the models taken one after another within each step,
    each a plain module laid out channels-last with its own Adam: the CPU's path. At the
    default CNN on this project's 2-core CPU: 1.9x a stack of 8's speed on one thread, 1.4x on
    two, 1.6x a one-model stack's (`python -m benchmarks zoo`, column "each vs vectorized", two
    threads): `vmap` turns a stack's convolutions into grouped ones, which oneDNN runs slower
    than plain ones. Each model's numbers equal its stack's to rounding (`tests/test_cnn.py`)."""
    device = images.device
    last = torch.channels_last
    nets = [copy.deepcopy(m).to(device).to(memory_format=last).train() for m in models]
    optimizers = [
        torch.optim.Adam(n.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay) for n in nets
    ]
    plans, weights = plans.to(device), weights.to(device)

    def update(step: int) -> torch.Tensor:
        losses = []
        for i, (net, optimizer) in enumerate(zip(nets, optimizers, strict=True)):
            index = plans[i, step]
            x = images[index].float().div_(255).contiguous(memory_format=last)
            y = labels[index]
            ce = nnf.cross_entropy(net(x), y, reduction="none")
            w = weights[i][y]
            loss = (ce * w).sum() / w.sum()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            losses.append(loss.detach())
        return torch.stack(losses)

    def parameters() -> dict[str, torch.Tensor]:  # stacked, in the plain layout
        states = [n.state_dict() for n in nets]
        return {k: torch.stack([st[k].detach().contiguous() for st in states]) for k in states[0]}

    return _run_steps(plans.shape[:2], update, parameters, device, **loop)


def _run_steps(
    shape: tuple[int, int],
    update: Callable[[int], torch.Tensor],
    parameters: Callable[[], dict[str, torch.Tensor]],
    device: torch.device,
    *,
    snapshot_steps: tuple[int, ...] = (),
    snapshot_keys: tuple[str, ...] = ("conv1.weight", "conv2.weight"),
    stage: str = "training",
    progress: bool = True,
    on_step: Callable[[int, dict[str, torch.Tensor]], None] | None = None,
    on_steps: tuple[int, ...] = (),
) -> StackResult:
    """The loop both training paths share (its options: `Loop`): `update(step)` trains every
    model one step and gives their losses (K,); `parameters()` gives the stacked parameters.
    Keeps the losses, the snapshots at `snapshot_steps`, calls `on_step` at `on_steps` and
    checks the losses every 50 steps (the only host sync, for the log)."""
    k_models, steps = shape
    losses = torch.empty(k_models, steps, device=device)
    snapshots = {}
    wanted = set(snapshot_steps)
    bar = progress_bar(range(steps), desc=f"{stage}: {k_models} model(s)", progress=progress)
    for step in bar:
        losses[:, step] = update(step)
        if step + 1 in wanted:
            now = parameters()
            snapshots[step + 1] = {k: now[k].clone() for k in snapshot_keys}
        if on_step is not None and step + 1 in on_steps:
            on_step(step + 1, parameters())
        if (step + 1) % 50 == 0 or step + 1 == steps:
            check_finite(losses[:, : step + 1], stage)
            bar.set_postfix(loss=f"{losses[:, step].mean().item():.3f}")
    return StackResult(parameters(), losses.cpu(), snapshots)


def train_models(
    models: list[nn.Module], plans: torch.Tensor, weights: torch.Tensor, stack: int = 0, **kwargs
) -> StackResult:
    """Train `models` the device's fastest way: on a CPU one after another within each step
    (`train_each`), on a GPU as one vectorized stack; `stack` > 0 asks for stacks of that
    many on either (`train_in_stacks`). kwargs: `train_stacked`'s."""
    device = kwargs["images"].device
    if stack == 0 and device.type == "cpu":
        return train_each(models, plans=plans, weights=weights, **kwargs)
    return train_in_stacks(models, plans, weights, stack_size(device, len(models), stack), **kwargs)


# How many models one stack holds on each kind of device, where stacks are used (a GPU, or
# `zoo.stack` > 0). On a CPU the stacked activations outgrow the caches: `python -m benchmarks
# zoo` measured on 2 cores 1.65x a loop of one-model stacks' speed at 8 models, 0.77x at 32
# and 0.48x at 128 (plain modules one after another, `train_each`, beat them all there); a GPU
# is fastest with every model in one stack.
CPU_STACK = 8


def stack_size(device: str | torch.device, models: int, asked: int = 0) -> int:
    """Models per stack: `asked` if set (> 0), else all of them on a GPU and CPU_STACK on a CPU."""
    if asked > 0:
        return min(asked, models)
    return models if torch.device(device).type != "cpu" else min(CPU_STACK, models)


def train_in_stacks(
    models: list[nn.Module], plans: torch.Tensor, weights: torch.Tensor, size: int, **kwargs
) -> StackResult:
    """`train_stacked` on consecutive stacks of `size` models, results joined as if one stack
    (each model's training does not depend on the others in its stack)."""
    parts = [
        train_stacked(
            models[start : start + size],
            plans=plans[start : start + size],
            weights=weights[start : start + size],
            **kwargs,
        )
        for start in range(0, len(models), size)
    ]
    if len(parts) == 1:
        return parts[0]
    params = {k: torch.cat([p.params[k] for p in parts]) for k in parts[0].params}
    snapshots = {
        step: {
            k: torch.cat([p.snapshots[step][k] for p in parts]) for k in parts[0].snapshots[step]
        }
        for step in parts[0].snapshots
    }
    return StackResult(params, torch.cat([p.losses for p in parts]), snapshots)


def check_finite(
    values: torch.Tensor,
    stage: str,
    names: Sequence[str] | None = None,
    fix: str = "lower the learning rate or check the data",
) -> None:
    """Raise DivergedError naming the stage, the first bad step, what diverged and its value.
    `values` is (series, steps): one row per model of a stack, or per loss term (`names`)."""
    bad = ~torch.isfinite(values)
    if bad.any():
        rows, steps = bad.nonzero(as_tuple=True)
        first = int(steps.argmin())  # the earliest step; of its bad series, the first
        row, step = int(rows[first]), int(steps[first])
        name = names[row] if names is not None else f"loss of model {row}"
        raise DivergedError(
            f"{stage} diverged: {name} at step {step + 1} is {values[row, step].item()}; {fix}"
        )


@torch.no_grad()
def predict_stacked(
    model: nn.Module,
    params: dict[str, torch.Tensor],
    images: torch.Tensor,
    batch_size: int = 512,
    **kwargs,
) -> torch.Tensor:
    """Outputs of K stacked models (like `model`) on the same uint8 images -> (K, N, ...)."""
    base = meta_copy(model)
    device = next(iter(params.values())).device
    k = next(iter(params.values())).shape[0]
    outputs = []
    for start in range(0, len(images), batch_size):
        x = images[start : start + batch_size].to(device).float().div(255)
        outputs.append(stacked_call(base, params, {}, x.expand(k, *x.shape), **kwargs))
    return torch.cat(outputs, 1)


def unstack(params: dict[str, torch.Tensor], index: int) -> dict[str, torch.Tensor]:
    """The state dict of model `index` of a stack."""
    return {k: v[index].detach().clone() for k, v in params.items()}


def classification_report(labels: torch.Tensor, predicted: torch.Tensor, names) -> dict:
    """Accuracy, balanced accuracy, per-class precision/recall/F1 and the confusion matrix."""
    from sklearn.metrics import (
        balanced_accuracy_score,
        confusion_matrix,
        precision_recall_fscore_support,
    )

    y, p = labels.cpu().numpy(), predicted.cpu().numpy()
    classes = list(range(len(names)))
    precision, recall, f1, support = precision_recall_fscore_support(
        y, p, labels=classes, zero_division=0
    )
    return {
        "accuracy": float(np.mean(y == p)),
        "balanced accuracy": float(balanced_accuracy_score(y, p)),
        "classes": {
            name: {
                "precision": float(precision[i]),
                "recall": float(recall[i]),
                "f1": float(f1[i]),
                "support": int(support[i]),
            }
            for i, name in enumerate(names)
        },
        "confusion": confusion_matrix(y, p, labels=classes).tolist(),
    }


def snapshot_schedule(steps: int, snapshots: int) -> tuple[int, ...]:
    """`snapshots` steps evenly spaced over the second half of training, ending at the last."""
    if snapshots == 1:
        return (steps,)
    start = math.ceil(steps / 2)
    return tuple(
        sorted({round(start + (steps - start) * i / (snapshots - 1)) for i in range(snapshots)})
    )
