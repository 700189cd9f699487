"""Many runs' CycleGANs of one layer trained as one stacked model: the GPU path (`gan.stack`).

On a GPU one kernel-space CycleGAN leaves the device idle (a batch of 64 vectors of 75
numbers); S of them of the same shapes, their parameters stacked along a leading axis
(`torch.func.stack_module_state`), take one forward, one backward and one Adam update a step
for all S (`vmap` over the losses of `cyclegan.generator_losses` and `discriminator_losses`).
On a CPU a step is compute-bound: a stack of the book's sizes (3 to 11 runs) costs 0.8x to
1.0x of as many runs alone on one thread, and would wait for every zoo first (`python -m
benchmarks stack`, README), so there `gan.stack` = 0 means 1 and the book trains each run alone
(`cyclegan.train_layer`).

Each member is the run it would be alone: its own networks' initialisation, its own batches,
history-pool draws and random generator, drawn in `cyclegan._Trainer`'s order; the members'
losses are independent, so their sum gives each its own gradient, and Adam works element by
element. Only the rounding of the batched matrix products differs. Each member checkpoints
into its own stage's folder in `_Trainer`'s format, so an interrupted stack resumes.

`make_layers(configs)` is the book's use: the compute phase (`build.compute`) trains every
CycleGAN layer stage its runs need, `gan.stack` at a time, before it runs them; they find
them cached.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.func import functional_call, stack_module_state, vmap

from . import data, zoo
from .alignment import match_images, normalise, prepared_lazily, sample_shape
from .config import Config, GanConfig, resolve_device
from .cyclegan import (
    LOSSES,
    LayerGan,
    curve_steps,
    discriminator_losses,
    generator_losses,
    layer_seed,
    optimizer_state,
    optimizer_tensors,
    pool_swaps,
    read_checkpoint,
    read_snapshots,
    run_steps,
    save_checkpoint,
    set_lr,
    snapshot_tensors,
    translated_layers,
    write_layer,
)
from .networks import autocast, make_networks
from .stage_keys import stage_key
from .store import StageRequest, stage_together
from .store import open as open_store
from .training import check_finite

NAMES = ("G", "F", "D_A", "D_B")
CUDA_STACK = 32  # gan.stack = 0 on CUDA: the most runs trained at once (unmeasured: no GPU)


def stack_size(cfg: Config) -> int:
    """How many runs' CycleGANs train as one stack: `gan.stack`, or for 0 the device's choice
    (1 on a CPU, `CUDA_STACK` on CUDA)."""
    if cfg.gan.stack:
        return cfg.gan.stack
    return CUDA_STACK if resolve_device(cfg.device).startswith("cuda") else 1


@dataclass
class Member:
    """One run's CycleGAN of one layer: its normalised kernel vectors (N, d) of each domain,
    the seed of its networks and batches, and its checkpoint folder."""

    black: torch.Tensor
    cat: torch.Tensor
    seed: int
    checkpoints: Path | None = None


def _padded(sets: list[torch.Tensor], device: str) -> tuple[torch.Tensor, list[int]]:
    """Kernel sets of different sizes as one (S, N_max, d) tensor, and each one's size."""
    out = torch.zeros(len(sets), max(len(s) for s in sets), sets[0].shape[1], device=device)
    for i, s in enumerate(sets):
        out[i, : len(s)] = s.to(device)
    return out, [len(s) for s in sets]


class StackTrainer:
    """The state of one stack's training: `cyclegan._Trainer` for S runs at once (the stack
    benchmark times its step)."""

    def __init__(
        self, cfg: GanConfig, members: list[Member], channels: int | tuple[int, ...], device: str
    ):
        self.cfg, self.device, self.members = cfg, device, members
        nets = [make_networks(cfg, channels, m.seed) for m in members]
        self.skeleton = {n: copy.deepcopy(nets[0][n]).to("meta") for n in NAMES}
        self.params: dict[str, dict[str, torch.Tensor]] = {}
        for name in NAMES:
            stacked, buffers = stack_module_state([net[name] for net in nets])
            assert not buffers, "the translators' networks hold no buffers"
            self.params[name] = {
                k: v.detach().to(device).requires_grad_() for k, v in stacked.items()
            }
        self.black, self.black_n = _padded([m.black for m in members], device)
        self.cat, self.cat_n = _padded([m.cat for m in members], device)
        adam = {"lr": cfg.lr, "betas": (cfg.beta1, cfg.beta2), "fused": True}  # as _Trainer
        self.opt_G = torch.optim.Adam([*self._of("G"), *self._of("F")], **adam)
        self.critics = [*self._of("D_A"), *self._of("D_B")]
        self.opt_D = torch.optim.Adam(self.critics, **adam)
        size, dim = len(members), self.black.shape[-1]
        self.pool_A = torch.zeros(size, cfg.pool_size, dim, device=device)  # fake cat kernels
        self.pool_B = torch.zeros(size, cfg.pool_size, dim, device=device)  # fake black ones
        self.filled = 0  # both pools fill alike: a batch of batch_size a step
        self.gens = [torch.Generator().manual_seed(m.seed) for m in members]
        self.step = 0
        self.curve = set(curve_steps(cfg))
        self.snapshots: list[dict[int, dict[str, torch.Tensor]]] = [{} for _ in members]
        self.losses = torch.zeros(cfg.steps, size, len(LOSSES), device=device)
        self._generator_step = vmap(self._generator_losses)
        self._critic_step = vmap(self._critic_losses)

    def _of(self, name: str) -> list[torch.Tensor]:
        return list(self.params[name].values())

    def _bound(self, params) -> dict[str, Callable]:
        return {
            n: (lambda x, n=n: functional_call(self.skeleton[n], params[n], (x,))) for n in NAMES
        }

    def _generator_losses(self, params, real_A, real_B):
        total, terms, fake_B, fake_A = generator_losses(
            self._bound(params), real_A, real_B, self.cfg
        )
        return total, torch.stack(terms), fake_B, fake_A

    def _critic_losses(self, params, real_A, real_B, fake_A, fake_B):
        return torch.stack(
            discriminator_losses(self._bound(params), real_A, real_B, fake_A, fake_B)
        )

    def _batch(self, sets: torch.Tensor, rows: list[torch.Tensor]) -> torch.Tensor:
        """Each member's rows of its own set: (S, batch, d)."""
        offset = [r + i * sets.shape[1] for i, r in enumerate(rows)]
        return sets.flatten(0, 1)[torch.cat(offset).to(self.device)].view(
            len(rows), -1, sets.shape[2]
        )

    def _pooled(self, pool: torch.Tensor, batch: torch.Tensor, swaps: list) -> torch.Tensor:
        """`cyclegan.ImagePool.query` for every member at once, with each one's drawn swaps."""
        if self.cfg.pool_size == 0:
            return batch
        batch = batch.detach().to(pool.dtype)  # bfloat16 passes: kept as float32
        out = batch.clone(memory_format=torch.contiguous_format)  # vmap's may be strided
        take = swaps[0][0]
        pool[:, self.filled : self.filled + take] = batch[:, :take]
        n, size, dim = batch.shape[1], pool.shape[1], pool.shape[2]
        rows = torch.cat([chosen + i * n for i, (_, chosen, _) in enumerate(swaps)])
        slots = torch.cat([where + i * size for i, (_, _, where) in enumerate(swaps)])
        rows, slots = rows.to(self.device), slots.to(self.device)
        flat_out, flat_pool = out.view(-1, dim), pool.view(-1, dim)
        flat_out[rows] = flat_pool[slots]
        flat_pool[slots] = batch.reshape(-1, dim)[rows]
        return out

    def train_step(self) -> None:
        cfg, size = self.cfg, self.cfg.batch_size
        rows_A, rows_B, swaps_A, swaps_B = [], [], [], []
        for i, gen in enumerate(self.gens):  # each member's draws, in _Trainer's order
            rows_A.append(torch.randint(self.black_n[i], (size,), generator=gen))
            rows_B.append(torch.randint(self.cat_n[i], (size,), generator=gen))
            if cfg.pool_size:
                swaps_A.append(pool_swaps(cfg.pool_size, self.filled, size, gen))
                swaps_B.append(pool_swaps(cfg.pool_size, self.filled, size, gen))
        real_A, real_B = self._batch(self.black, rows_A), self._batch(self.cat, rows_B)
        set_lr((self.opt_G, self.opt_D), cfg, self.step)
        for p in self.critics:  # constants in the generators' step, as in _Trainer
            p.requires_grad_(False)
        with autocast(cfg, self.device):
            total, terms, fake_B, fake_A = self._generator_step(self.params, real_A, real_B)
        self.opt_G.zero_grad(set_to_none=True)
        total.sum().backward()  # independent members: the sum keeps each one's gradient
        self.opt_G.step()
        for p in self.critics:
            p.requires_grad_(True)
        pooled_B = self._pooled(self.pool_A, fake_B, swaps_A)
        pooled_A = self._pooled(self.pool_B, fake_A, swaps_B)
        if cfg.pool_size:
            self.filled += swaps_A[0][0]
        with autocast(cfg, self.device):
            critics = self._critic_step(self.params, real_A, real_B, pooled_A, pooled_B)
        self.opt_D.zero_grad(set_to_none=True)
        critics.sum().backward()
        self.opt_D.step()
        self.losses[self.step] = torch.cat([terms, critics], 1).detach()
        self.step += 1
        if self.step in self.curve:
            for i, snapshots in enumerate(self.snapshots):
                snapshots[self.step] = self.state("F", i)

    def state(self, name: str, i: int) -> dict[str, torch.Tensor]:
        """Member `i`'s network `name` as a state dict on the CPU."""
        return {k: v[i].detach().cpu().clone() for k, v in self.params[name].items()}

    def check(self, stage: str) -> None:
        for i in range(len(self.members)):
            check_finite(
                self.losses[: self.step, i].T,
                f"{stage} (run {i + 1} of the stack)",
                LOSSES,
                "lower gan.lr or check the kernels",
            )

    def save(self) -> None:
        """Each member's checkpoint, in `cyclegan._Trainer`'s format, in its own folder."""
        states = {"opt_G": self.opt_G.state_dict(), "opt_D": self.opt_D.state_dict()}
        for i, member in enumerate(self.members):
            if member.checkpoints is None:
                continue
            tensors = {f"net.{n}.{k}": v for n in NAMES for k, v in self.state(n, i).items()}
            tensors |= snapshot_tensors(self.snapshots[i])
            meta = {"step": self.step, "pool_A": self.filled, "pool_B": self.filled}
            for name, state in states.items():
                meta[name] = state["param_groups"]
                one = {
                    pid: {k: (v if k == "step" else v[i]) for k, v in values.items()}
                    for pid, values in state["state"].items()
                }
                tensors |= optimizer_tensors(name, {"state": one})
            tensors |= {
                "pool_A": self.pool_A[i],
                "pool_B": self.pool_B[i],
                "losses": self.losses[:, i],
                "rng": self.gens[i].get_state(),
            }
            save_checkpoint(member.checkpoints, tensors, meta)

    @torch.no_grad()
    def load(self, read: list[tuple[dict[str, torch.Tensor], dict]]) -> None:
        """Resume every member from its checkpoint as `read_checkpoint` gave it (all at one
        step: `train_stack` groups them)."""
        read = [({k: v.to(self.device) for k, v in t.items()}, meta) for t, meta in read]
        for name in NAMES:
            for k, p in self.params[name].items():
                p.copy_(torch.stack([t[f"net.{name}.{k}"] for t, _ in read]))
        for name, optimizer in (("opt_G", self.opt_G), ("opt_D", self.opt_D)):
            states = [optimizer_state(name, t, meta) for t, meta in read]
            merged = {
                pid: {
                    k: (v if k == "step" else torch.stack([s["state"][pid][k] for s in states]))
                    for k, v in values.items()
                }
                for pid, values in states[0]["state"].items()
            }
            optimizer.load_state_dict({"state": merged, "param_groups": states[0]["param_groups"]})
        self.pool_A.copy_(torch.stack([t["pool_A"] for t, _ in read]))
        self.pool_B.copy_(torch.stack([t["pool_B"] for t, _ in read]))
        self.losses.copy_(torch.stack([t["losses"] for t, _ in read], 1))
        for gen, (tensors, _) in zip(self.gens, read, strict=True):
            gen.set_state(tensors["rng"].cpu())
        self.snapshots = [read_snapshots(t) for t, _ in read]
        self.step, self.filled = read[0][1]["step"], read[0][1]["pool_A"]

    def result(self, i: int, channels: int | tuple[int, ...]) -> LayerGan:
        """Member `i`'s trained CycleGAN, on the CPU, as `cyclegan.train_layer` returns it."""
        nets = make_networks(self.cfg, channels, 0)
        for name, net in nets.items():
            net.load_state_dict(self.state(name, i))
            net.eval()
        losses = self.losses[: self.step, i].cpu()
        history = {name: losses[:, j].tolist() for j, name in enumerate(LOSSES)}
        return LayerGan(nets, history, channels, snapshots=self.snapshots[i])


def _checkpoint(member: Member) -> tuple[dict[str, torch.Tensor], dict] | None:
    """A member's checkpoint, read once (on the CPU); None for none, or for a damaged one
    (never trusted: that member starts afresh, as `cyclegan.train_layer` does)."""
    folder = member.checkpoints
    if folder is None or not (folder / "state.json").is_file():
        return None
    try:
        return read_checkpoint(folder, "cpu")
    except Exception as error:
        warnings.warn(f"checkpoint in {folder} is unreadable ({error}); step 0", stacklevel=2)
        return None


def train_stack(
    cfg: GanConfig,
    members: list[Member],
    channels: int | tuple[int, ...],
    device: str,
    stage: str = "CycleGAN",
    progress: bool = True,
    stop_after: int | None = None,
) -> list[LayerGan]:
    """Train one layer's CycleGAN for every member at once (the same settings and sample
    shape for all), each resuming from its checkpoint; members whose checkpoints are at
    different steps train as separate stacks. `stop_after` ends early (tests)."""
    read = [_checkpoint(member) for member in members]
    groups: dict[int, list[int]] = {}
    for i, checkpoint in enumerate(read):
        groups.setdefault(checkpoint[1]["step"] if checkpoint else 0, []).append(i)
    out: list[LayerGan | None] = [None] * len(members)
    for step, which in groups.items():
        trainer = StackTrainer(cfg, [members[i] for i in which], channels, device)
        if step:
            trainer.load([read[i] for i in which])
        label = f"{stage} x{len(which)}"
        run_steps(trainer, cfg, label, stage, progress, trainer.save, stop_after)
        for j, i in enumerate(which):
            out[i] = trainer.result(j, channels)
    return out  # type: ignore[return-value]


# --- the book's use: every layer stage of many runs ----------------------------------------


# gan.* settings a layer's CycleGAN training does not read: runs differing only in these
# (alignment, translated layers, the functional phase, the source, the stack) learn from other
# kernels, or from the same, with the same networks and schedule, so they can share a stack
_NOT_TRAINING = (
    "align_layer2",
    "align_by",
    "align_outputs",
    "layers",
    "functional_weight",
    "functional_steps",
    "source",
    "stack",
)


def _trained_alike(gan: GanConfig) -> GanConfig:
    """`gan` with the settings its training does not read at their defaults: runs equal in
    this (and in sample shape) can share a stack."""
    defaults = GanConfig()
    return dataclasses.replace(gan, **{name: getattr(defaults, name) for name in _NOT_TRAINING})


def make_layers(
    configs: list[Config], root=None, progress: bool = False, threads: int | None = None
) -> int:
    """Every CycleGAN layer stage that `configs`' runs need and the cache lacks, trained
    `stack_size` at a time (runs trained alike, `_trained_alike`, share a stack), each sealed
    as the stage `cyclegan.make_translator` would make, which then finds it cached. Their data
    and zoo stages are made (or read) first. Stages another process is making are left to it.
    `threads`: the torch thread count of the processes that will read them (a stage's key
    holds it). Nothing is done where `stack_size` is 1 (a CPU). Returns how many stages were
    trained."""
    configs = [c for c in configs if c.gan.source != "original" and stack_size(c) > 1]
    if not configs:
        return 0
    current = torch.get_num_threads()
    torch.set_num_threads(threads or current)
    try:
        return _make_layers(configs, root, progress)
    finally:
        torch.set_num_threads(current)


def _make_layers(configs: list[Config], root, progress: bool) -> int:
    groups: dict[tuple, list[tuple[StageRequest, Config, object]]] = {}
    settings: dict[tuple, GanConfig] = {}  # group -> its members' training settings
    for cfg in configs:
        store = open_store(cfg, root)
        datasets = data.make_datasets(cfg, store, progress=False)
        made = zoo.make_zoo(cfg, store, datasets, progress=False)
        images = match_images(cfg, datasets) if cfg.gan.align_by == "activations" else None
        kernels, _ = prepared_lazily(cfg, made, images)
        for layer in translated_layers(cfg.gan):
            name = f"cyclegan-{layer}"
            request = StageRequest(store, name, stage_key(cfg, name), (made.artifact,))
            shape = sample_shape(cfg, made, layer)
            device, size = resolve_device(cfg.device), stack_size(cfg)
            alike = _trained_alike(cfg.gan)
            group = (layer, repr(alike), shape, device, size)
            settings[group] = alike
            groups.setdefault(group, []).append((request, cfg, kernels))
    trained = 0
    for group, entries in groups.items():
        size = group[-1]
        for start in range(0, len(entries), size):
            chunk = entries[start : start + size]
            build = functools.partial(_build_chunk, group, settings[group], chunk, progress)
            made = stage_together([request for request, _, _ in chunk], build)
            trained += sum(not a.reused for a in made if a is not None)
    return trained


def _build_chunk(
    group: tuple, gan: GanConfig, chunk: list, progress: bool, which: list[int], writers
) -> None:
    """`stage_together`'s build for one stack of `make_layers`: train the chunk's members
    `which` as one stack and write each one's stage."""
    layer, _, shape, device, _ = group
    members = []
    for i, writer in zip(which, writers, strict=True):
        _, cfg, kernels = chunk[i]
        black, _ = normalise(kernels["black"][layer])
        cat, _ = normalise(kernels["cat"][layer])
        members.append(Member(black, cat, layer_seed(cfg, layer), writer.checkpoints))
    trained = train_stack(gan, members, shape, device, f"CycleGAN {layer}", progress=progress)
    for one, writer in zip(trained, writers, strict=True):
        write_layer(writer, one)
