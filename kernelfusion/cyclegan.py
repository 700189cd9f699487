"""A CycleGAN in kernel space: per conv layer, G translates black kernels to cat kernels and F
translates back, trained with the losses and schedule of Zhu et al. (2017).

Samples are single filters (`C_in x 5 x 5`), normalised per filter (mean removed, unit norm)
before the GAN and given back their own scale and mean after it. Layer-2 filters are first put
into one common input-channel order (weight matching of each model's layer-1 filters to a
reference model, as in Git Re-Basin), because hidden units permute freely between models.
Loss names follow the reference implementation: loss_G_A, loss_cycle_A, loss_idt_A, loss_D_A.
"""

from __future__ import annotations

import dataclasses
import json
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as nnf  # not F: F is also a generator's name
from safetensors.torch import load_file
from torch import nn

from . import original
from .alignment import (
    match_images,
    normalise,
    prepared_kernels,
    prepared_lazily,
    reference_filters,
    reference_layer2,
    restore,
    sample_shape,
)
from .cnn import CONV_LAYERS
from .config import Config, GanConfig, resolve_device
from .data import Datasets
from .machine import derive_seed
from .networks import autocast, make_networks
from .progress import bar as progress_bar
from .stage_keys import stage_key
from .store import StageWriter, Store, atomic_write_bytes
from .training import check_finite
from .zoo import Zoo

LOSSES = (
    "loss_G_A",
    "loss_G_B",
    "loss_cycle_A",
    "loss_cycle_B",
    "loss_idt_A",
    "loss_idt_B",
    "loss_D_A",
    "loss_D_B",
)
FUNCTIONAL_KEYS = ("functional_weight", "functional_steps")  # gan.* of `behaviour.tune` only
# A = black, B = cat: G = G_A (black -> cat), F = G_B (cat -> black), D_A judges cat kernels
# (the outputs of G), D_B judges black kernels, as in the reference code.


# --- the pool and the loss --------------------------------------------------------------------


class ImagePool:
    """The reference's history of generated samples, vectorized: each sample of a batch is,
    with probability 1/2, swapped for a stored one (after the pool has filled)."""

    def __init__(self, size: int, dim: int, device):
        self.size, self.filled = size, 0
        self.samples = torch.zeros(size, dim, device=device)

    def query(self, batch: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        if self.size == 0:
            return batch
        batch = batch.detach().to(self.samples.dtype)  # bfloat16 passes: kept as float32
        out = batch.clone()
        take, chosen, where = pool_swaps(self.size, self.filled, len(batch), gen)
        self.samples[self.filled : self.filled + take] = batch[:take]
        self.filled += take
        out[chosen] = self.samples[where]
        self.samples[where] = batch[chosen]
        return out


def pool_swaps(
    size: int, filled: int, n: int, gen: torch.Generator
) -> tuple[int, torch.Tensor, torch.Tensor]:
    """What a history pool of `size` slots, `filled` of them used, does with a batch of `n`:
    its first `take` samples fill the next free slots; of the rest, each with probability 1/2
    is swapped for a stored one: rows `chosen` of the batch with slots `where` (a slot picked
    twice swaps once, with its first pick). Drawn from `gen` alone, not from the samples, so
    a stack of pools (`stacked_gans`) draws each member's as its own pool would."""
    take = min(size - filled, n)
    rest = torch.arange(take, n)
    if not len(rest):
        return take, rest, rest
    swap = torch.rand(len(rest), generator=gen) < 0.5
    slots = torch.randint(size, (len(rest),), generator=gen)
    chosen, where = rest[swap], slots[swap]
    # a stored sample is handed out once: of several picks of one slot, the first swaps
    _, inverse = torch.unique(where, return_inverse=True)
    first = torch.full((int(inverse.max()) + 1,) if len(where) else (0,), len(where))
    first = first.scatter_reduce(0, inverse, torch.arange(len(where)), "amin")
    return take, chosen[first], where[first]


def gan_loss(prediction: torch.Tensor, real: bool) -> torch.Tensor:
    """Least-squares GAN loss (LSGAN), the reference's default."""
    return nnf.mse_loss(prediction, torch.full_like(prediction, 1.0 if real else 0.0))


def generator_losses(
    nets: dict[str, nn.Module], real_A: torch.Tensor, real_B: torch.Tensor, cfg: GanConfig
) -> tuple[torch.Tensor, tuple[torch.Tensor, ...], torch.Tensor, torch.Tensor]:
    """The generators' objective of Zhu et al. (2017) on one batch of each domain:

    loss_G_A = (D_A(G(a)) - 1)^2, loss_G_B = (D_B(F(b)) - 1)^2 (LSGAN),
    loss_cycle_A = lambda |F(G(a)) - a|_1, loss_cycle_B = lambda |G(F(b)) - b|_1,
    loss_idt_A = lambda mu |G(b) - b|_1, loss_idt_B = lambda mu |F(a) - a|_1,
    with lambda = `cycle_weight` and mu = `identity_weight`. Returns their sum, the six terms
    and the two translated batches G(a), F(b).

    Each generator reads both its inputs of the first pass as one batch (G: a and b, F: b and
    a): the same terms in four network calls instead of six (with the critics frozen in this
    step and a fused Adam, the step is 1.25x the old one's speed on this project's 2-core CPU:
    `python -m benchmarks gan`, column speed-up); only the rounding of the weight gradients'
    sums differs."""
    n = len(real_A)
    fake_B, idt_A = nets["G"](torch.cat([real_A, real_B])).split(n)
    fake_A, idt_B = nets["F"](torch.cat([real_B, real_A])).split(n)
    loss_G_A = gan_loss(nets["D_A"](fake_B), True)
    loss_G_B = gan_loss(nets["D_B"](fake_A), True)
    loss_cycle_A = nnf.l1_loss(nets["F"](fake_B), real_A) * cfg.cycle_weight
    loss_cycle_B = nnf.l1_loss(nets["G"](fake_A), real_B) * cfg.cycle_weight
    identity = cfg.cycle_weight * cfg.identity_weight
    loss_idt_A = nnf.l1_loss(idt_A, real_B) * identity
    loss_idt_B = nnf.l1_loss(idt_B, real_A) * identity
    terms = (loss_G_A, loss_G_B, loss_cycle_A, loss_cycle_B, loss_idt_A, loss_idt_B)
    return sum(terms), terms, fake_B, fake_A


def discriminator_losses(
    nets: dict[str, nn.Module],
    real_A: torch.Tensor,
    real_B: torch.Tensor,
    fake_A: torch.Tensor,
    fake_B: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The critics' LSGAN objective (Mao et al., 2017, halved as in the reference):
    loss_D_A = 1/2 [(D_A(b) - 1)^2 + D_A(G(a))^2], loss_D_B = 1/2 [(D_B(a) - 1)^2 + D_B(F(b))^2],
    on real samples and generated ones (from the history pools); each critic reads its real
    and generated batch as one."""
    n = len(real_A)
    real_score_A, fake_score_A = nets["D_A"](torch.cat([real_B, fake_B])).split(n)
    real_score_B, fake_score_B = nets["D_B"](torch.cat([real_A, fake_A])).split(n)
    loss_D_A = 0.5 * (gan_loss(real_score_A, True) + gan_loss(fake_score_A, False))
    loss_D_B = 0.5 * (gan_loss(real_score_B, True) + gan_loss(fake_score_B, False))
    return loss_D_A, loss_D_B


def lr_factor(step: int, cfg: GanConfig) -> float:
    """Constant learning rate, then a linear decay to zero over the last `decay_steps`."""
    constant = cfg.steps - cfg.decay_steps
    return 1.0 if step < constant else max(0.0, 1 - (step - constant) / max(1, cfg.decay_steps))


def set_lr(optimizers, cfg: GanConfig, step: int) -> None:
    """Every optimizer's learning rate at `step`: `cfg.lr` times `lr_factor`."""
    for optimizer in optimizers:
        for group in optimizer.param_groups:
            group["lr"] = cfg.lr * lr_factor(step, cfg)


# --- training ---------------------------------------------------------------------------------


@dataclass
class LayerGan:
    """One layer's trained CycleGAN (on the CPU, in eval mode) and its loss history."""

    nets: dict[str, nn.Module]
    history: dict[str, list[float]]
    channels: int | tuple[int, ...]  # a filter's C_in, or one sample's shape
    published: bool = False  # the original's generators: raw whole layers in and out
    # step -> the generator F's state at that step of the run (`curve_steps`; chapter 04)
    snapshots: dict[int, dict[str, torch.Tensor]] = field(default_factory=dict)

    @torch.no_grad()
    def translate(self, kernels: torch.Tensor, direction: str) -> torch.Tensor:
        """Translate real-scale kernels (N, C, 5, 5) with G ('black->cat') or F ('cat->black'),
        normalising first and giving each output its source filter's scale back (the
        published generators: raw samples (N, C_in, C_out, 5, 5) in and out)."""
        return translate_with(self.nets[GENERATOR[direction]], kernels, self.published)


GENERATOR = {"black->cat": "G", "cat->black": "F"}  # direction -> the network that translates


def curve_steps(cfg: GanConfig) -> list[int]:
    """The steps before the last at which the generator F is kept (`gan.curve_points` points
    in all, evenly spaced, the trained generator the last of them)."""
    return sorted({round(k * cfg.steps / cfg.curve_points) for k in range(1, cfg.curve_points)})


def translate_with(net: nn.Module, kernels: torch.Tensor, published: bool = False) -> torch.Tensor:
    """`net` applied to real-scale samples (N, ...): normalised first, each output given its
    input's scale back; differentiable (the functional loss trains through it). A published
    generator of the original is applied to the raw samples, as the original did."""
    if published:
        return net(kernels)
    vectors, scale = normalise(kernels)
    return restore(net(vectors), scale, kernels.shape[1:])


class _Trainer:
    """The state of one layer's training; checkpointed and resumed as a whole."""

    def __init__(
        self,
        cfg: GanConfig,
        black: torch.Tensor,
        cat: torch.Tensor,
        channels: int | tuple[int, ...],
        seed: int,
        device: str,
    ):
        self.cfg, self.device = cfg, device
        self.black, self.cat = black.to(device), cat.to(device)
        self.nets = {k: v.to(device) for k, v in make_networks(cfg, channels, seed).items()}
        # fused: one kernel per step for all tensors (part of the 1.25x of `generator_losses`'
        # docstring); the same algorithm, rounded differently
        adam = {"lr": cfg.lr, "betas": (cfg.beta1, cfg.beta2), "fused": True}
        self.opt_G = torch.optim.Adam(
            [*self.nets["G"].parameters(), *self.nets["F"].parameters()], **adam
        )
        self.critics = [*self.nets["D_A"].parameters(), *self.nets["D_B"].parameters()]
        self.opt_D = torch.optim.Adam(self.critics, **adam)
        self.pool_A = ImagePool(cfg.pool_size, black.shape[1], device)  # fake cat kernels
        self.pool_B = ImagePool(cfg.pool_size, black.shape[1], device)  # fake black kernels
        self.gen = torch.Generator().manual_seed(seed)
        self.step = 0
        self.curve = set(curve_steps(cfg))
        self.snapshots: dict[int, dict[str, torch.Tensor]] = {}  # step -> F's state
        self.losses = torch.zeros(cfg.steps, len(LOSSES), device=device)  # read at log steps

    def train_step(self) -> None:
        cfg, nets = self.cfg, self.nets
        real_A = self.black[torch.randint(len(self.black), (cfg.batch_size,), generator=self.gen)]
        real_B = self.cat[torch.randint(len(self.cat), (cfg.batch_size,), generator=self.gen)]
        set_lr((self.opt_G, self.opt_D), self.cfg, self.step)
        # The critics are constants in the generators' step, as in the reference
        # (set_requires_grad(D, False)): no gradients of theirs are computed only to be dropped.
        for p in self.critics:
            p.requires_grad_(False)
        with autocast(cfg, self.device):
            loss_G, terms, fake_B, fake_A = generator_losses(nets, real_A, real_B, cfg)
        loss_G_A, loss_G_B, loss_cycle_A, loss_cycle_B, loss_idt_A, loss_idt_B = terms
        self.opt_G.zero_grad(set_to_none=True)
        loss_G.backward()
        self.opt_G.step()
        for p in self.critics:
            p.requires_grad_(True)
        # Discriminators, on real samples and on generated ones from the history pools.
        pooled_B = self.pool_A.query(fake_B, self.gen)
        pooled_A = self.pool_B.query(fake_A, self.gen)
        with autocast(cfg, self.device):
            loss_D_A, loss_D_B = discriminator_losses(nets, real_A, real_B, pooled_A, pooled_B)
        self.opt_D.zero_grad(set_to_none=True)
        (loss_D_A + loss_D_B).backward()
        self.opt_D.step()
        values = torch.stack(
            [
                loss_G_A,
                loss_G_B,
                loss_cycle_A,
                loss_cycle_B,
                loss_idt_A,
                loss_idt_B,
                loss_D_A,
                loss_D_B,
            ]
        ).detach()
        self.losses[self.step] = values  # stays on the device: no host sync inside a step
        self.step += 1
        if self.step in self.curve:
            state = nets["F"].state_dict()
            self.snapshots[self.step] = {k: v.detach().cpu().clone() for k, v in state.items()}

    def check(self, stage: str) -> None:
        check_finite(self.losses[: self.step].T, stage, LOSSES, "lower gan.lr or check the kernels")

    # checkpoints: tensors in safetensors, the rest in JSON, both written atomically
    def save(self, folder: Path) -> None:
        tensors = net_tensors(self.nets, prefix="net.") | snapshot_tensors(self.snapshots)
        meta = {"step": self.step, "pool_A": self.pool_A.filled, "pool_B": self.pool_B.filled}
        for name, optimizer in (("opt_G", self.opt_G), ("opt_D", self.opt_D)):
            state = optimizer.state_dict()
            meta[name] = state["param_groups"]
            tensors |= optimizer_tensors(name, state)
        tensors |= {
            "pool_A": self.pool_A.samples,
            "pool_B": self.pool_B.samples,
            "losses": self.losses,
            "rng": self.gen.get_state(),
        }
        save_checkpoint(folder, tensors, meta)

    def load(self, folder: Path) -> None:
        tensors, meta = read_checkpoint(folder, self.device)
        load_nets(self.nets, tensors, prefix="net.")
        self.snapshots = read_snapshots(tensors)
        for name, optimizer in (("opt_G", self.opt_G), ("opt_D", self.opt_D)):
            optimizer.load_state_dict(optimizer_state(name, tensors, meta))
        self.pool_A.samples, self.pool_A.filled = tensors["pool_A"], meta["pool_A"]
        self.pool_B.samples, self.pool_B.filled = tensors["pool_B"], meta["pool_B"]
        self.losses = tensors["losses"]
        self.gen.set_state(tensors["rng"].cpu())
        self.step = meta["step"]


def save_checkpoint(folder: Path, tensors: dict[str, torch.Tensor], meta: dict) -> None:
    """One training's checkpoint: its tensors (safetensors) and the rest (JSON)."""
    folder.mkdir(parents=True, exist_ok=True)
    body = save_file_bytes({k: v.detach().cpu().contiguous() for k, v in tensors.items()})
    atomic_write_bytes(folder / "state.safetensors", body)
    atomic_write_bytes(folder / "state.json", json.dumps(meta).encode())


def read_checkpoint(folder: Path, device: str) -> tuple[dict[str, torch.Tensor], dict]:
    """`save_checkpoint` back: the tensors (on `device`) and the rest."""
    tensors = load_file(folder / "state.safetensors", device=str(device))
    return tensors, json.loads((folder / "state.json").read_text())


def optimizer_tensors(name: str, state: dict) -> dict[str, torch.Tensor]:
    """An optimizer's per-parameter state as flat tensors ("<name>.<pid>.<field>")."""
    return {
        f"{name}.{pid}.{key}": value
        for pid, values in state["state"].items()
        for key, value in values.items()
    }


def optimizer_state(name: str, tensors: dict[str, torch.Tensor], meta: dict) -> dict:
    """`optimizer_tensors` back, with the groups kept in `meta[name]`: a state dict."""
    state: dict = {}
    for key, value in tensors.items():
        if key.startswith(f"{name}."):
            _, pid, field_name = key.split(".")
            state.setdefault(int(pid), {})[field_name] = (
                value.cpu() if field_name == "step" else value
            )
    return {"state": state, "param_groups": meta[name]}


def net_tensors(nets: dict[str, nn.Module], prefix: str = "") -> dict[str, torch.Tensor]:
    """All networks' weights in one flat dict: '<prefix><net>.<parameter>'."""
    return {f"{prefix}{n}.{k}": v for n, net in nets.items() for k, v in net.state_dict().items()}


def load_nets(nets: dict[str, nn.Module], tensors: dict[str, torch.Tensor], prefix: str = ""):
    """Inverse of `net_tensors`: load each network's weights from the flat dict."""
    for name, net in nets.items():
        head = f"{prefix}{name}."
        net.load_state_dict({k[len(head) :]: v for k, v in tensors.items() if k.startswith(head)})


def snapshot_tensors(snapshots: dict[int, dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """The generator F's states along a run as one flat dict ("snapshot.<step>.<name>")."""
    return {
        f"snapshot.{step}.{name}": value
        for step, state in snapshots.items()
        for name, value in state.items()
    }


def read_snapshots(tensors: dict[str, torch.Tensor]) -> dict[int, dict[str, torch.Tensor]]:
    """`snapshot_tensors` back: step -> F's state (other keys are left alone)."""
    out: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in tensors.items():
        if key.startswith("snapshot."):
            _, step, name = key.split(".", 2)
            out.setdefault(int(step), {})[name] = value.cpu()
    return dict(sorted(out.items()))


def save_file_bytes(tensors: dict[str, torch.Tensor]) -> bytes:
    from safetensors.torch import save

    return save(tensors)


def train_layer(
    cfg: GanConfig,
    black: torch.Tensor,
    cat: torch.Tensor,
    channels: int | tuple[int, ...],
    seed: int,
    device: str,
    checkpoints: Path | None = None,
    stage: str = "cyclegan",
    progress: bool = True,
    stop_after: int | None = None,
) -> LayerGan:
    """Train one layer's CycleGAN on normalised kernel vectors (N, C*25) of both domains,
    resuming from `checkpoints` if a checkpoint is there. `stop_after` ends early (tests)."""
    trainer = _Trainer(cfg, black, cat, channels, seed, device)
    if checkpoints is not None and (checkpoints / "state.json").is_file():
        try:
            trainer.load(checkpoints)
        except Exception as error:  # a damaged checkpoint is never trusted: start afresh
            warnings.warn(
                f"{stage}: checkpoint in {checkpoints} is unreadable ({error}); "
                "training from step 0",
                stacklevel=2,
            )
            trainer = _Trainer(cfg, black, cat, channels, seed, device)
    save = None if checkpoints is None else (lambda: trainer.save(checkpoints))
    run_steps(trainer, cfg, stage, stage, progress, save, stop_after)
    losses = trainer.losses[: trainer.step].cpu()
    history = {name: losses[:, i].tolist() for i, name in enumerate(LOSSES)}
    nets = {k: v.cpu().eval() for k, v in trainer.nets.items()}
    return LayerGan(nets, history, channels, snapshots=trainer.snapshots)


def layer_seed(cfg: Config, layer: str) -> int:
    """The seed of one layer's CycleGAN (its networks and its batches) in the run of `cfg`."""
    return derive_seed(cfg.seed, "cyclegan", layer)


def write_layer(writer: StageWriter, gan: LayerGan) -> None:
    """One layer's CycleGAN stage files: its networks, F along the run, its losses."""
    writer.save_tensors("nets", net_tensors(gan.nets))
    writer.save_tensors("snapshots", snapshot_tensors(gan.snapshots))
    writer.save_json("history", gan.history)


def run_steps(
    trainer,
    cfg: GanConfig,
    desc: str,
    stage: str,
    progress: bool,
    save: Callable[[], None] | None,
    stop_after: int | None,
) -> None:
    """Step `trainer` (a `_Trainer`, or `stacked_gans`'s stack of runs) on to `cfg.steps` under a
    progress bar: its losses checked and shown every `log_every` steps, `save()` (if any)
    every `checkpoint_every`; `stop_after` ends early (tests)."""
    bar = progress_bar(total=cfg.steps, initial=trainer.step, desc=desc, progress=progress)
    while trainer.step < cfg.steps:
        trainer.train_step()
        bar.update(1)
        if trainer.step % cfg.log_every == 0 or trainer.step == cfg.steps:
            trainer.check(stage)
            last = trainer.losses[trainer.step - 1].reshape(-1, len(LOSSES)).mean(0)
            bar.set_postfix(cycle=f"{last[2]:.3f}", D=f"{last[6]:.3f}")  # a stack's mean
        if save is not None and trainer.step % cfg.checkpoint_every == 0:
            save()
        if stop_after is not None and trainer.step >= stop_after:
            break
    bar.close()


def translated_layers(cfg: GanConfig) -> tuple[str, ...]:
    """The conv layers that get a CycleGAN (`gan.layers`)."""
    return CONV_LAYERS if cfg.layers == "both" else (cfg.layers,)


# --- the stage --------------------------------------------------------------------------------


@dataclass
class KernelGan:
    """Both layers' CycleGANs, the (aligned) kernel sets they learned from, and the alignment."""

    layers: dict[str, LayerGan]
    kernels: dict[str, dict[str, torch.Tensor]]  # domain -> layer -> real-scale kernels
    reference: torch.Tensor  # layer-1 filters whose order layer 2's input channels follow
    index: dict[str, dict[str, torch.Tensor]]  # domain -> layer -> (model, step, filter)
    artifact: object = None
    zoo_artifact: object = None  # the zoo it learned from (its whole models, for controls)
    sample: str = "filter"  # what one sample is: a filter, or a whole layer of one model

    reference2: torch.Tensor | None = None  # layer-2 filters whose order layer 2's follow
    match_images: torch.Tensor | None = None  # layer 1 matched by responses to these
    layer_artifacts: dict = field(default_factory=dict)  # layer -> its own CycleGAN stage

    @property
    def _trained_in(self) -> list:
        """The stages its CycleGANs were trained in: one per layer (the published generators':
        the one stage that read them)."""
        return list(self.layer_artifacts.values()) or [self.artifact]

    @property
    def reused(self) -> bool:
        """Nothing was trained for it: every layer's CycleGAN came from the cache."""
        return all(part.reused for part in self._trained_in)

    @property
    def history(self) -> dict[str, dict[str, list[float]]]:
        """Each layer's loss terms along training, as logged (empty for published generators)."""
        return self.artifact.json("history")

    @property
    def published(self) -> bool:
        """The original's published generators (`gan.source = original`): each model's own
        layers translated raw, in its own channel order, as the original applied them."""
        return all(layer.published for layer in self.layers.values())

    @torch.no_grad()
    def translate(self, layer: str, kernels: torch.Tensor, direction: str) -> torch.Tensor:
        """Translate one model's conv weights (C_out, C_in, 5, 5): filter by filter, or (for
        whole-layer samples) the layer as one (C_in, C_out, 5, 5) sample; a layer without a
        CycleGAN (`gan.layers = conv1`) is returned as it is."""
        if layer not in self.layers:
            return kernels.clone()
        return self.translate_layer(self.layers[layer].nets, kernels, direction)

    def translate_layer(
        self, nets: dict[str, nn.Module], kernels: torch.Tensor, direction: str
    ) -> torch.Tensor:
        """`translate` with the given networks and gradients kept (the functional loss)."""
        net = nets[GENERATOR[direction]]
        if self.sample == "layer" and kernels.dim() == 4:
            sample = kernels.transpose(0, 1)[None]
            return translate_with(net, sample, self.published)[0].transpose(0, 1)
        return translate_with(net, kernels, self.published)


def published_generators(cfg: Config, store: Store, zoo: Zoo, *, force: bool = False) -> KernelGan:
    """The original's published generator pair per layer (`gan.source = original`), read
    from the clone at `zoo.root` and checked (`original.read_generators`), as a `KernelGan`
    over the zoo's whole layers as the original gave them to its generators: in each model's
    own channel order, unnormalised. Nothing is trained; the stage keeps the generators'
    weights and is keyed by their files' bytes."""

    def build(writer: StageWriter) -> None:
        for layer, nets in original.read_generators(cfg.zoo.root).items():
            writer.save_tensors(f"{layer}_nets", net_tensors(nets))
        writer.save_json("history", {})  # none: trained by the original, not here

    key = {
        "source": "original",
        "generators": original.generator_fingerprint(cfg.zoo.root),
        "version": 1,
    }
    artifact = store.stage("cyclegan", key, build, inputs=[zoo.artifact], force=force)
    raw = dataclasses.replace(cfg, gan=dataclasses.replace(cfg.gan, align_layer2=False))
    kernels, index, reference, _ = prepared_kernels(raw, zoo)
    layers = {}
    for layer in translated_layers(cfg.gan):
        state = artifact.tensors(f"{layer}_nets")
        hidden = int(state["G.0.weight"].shape[0])
        nets = {
            name: original.generator_network(original.GENERATOR_CHANNELS[layer], hidden)
            for name in ("G", "F")
        }
        load_nets(nets, state)
        for net in nets.values():
            net.eval()
        layers[layer] = LayerGan(nets, {}, tuple(kernels["black"][layer].shape[1:]), True)
    return KernelGan(layers, kernels, reference, index, artifact, zoo.artifact, "layer")


def make_translator(
    cfg: Config,
    store: Store,
    datasets: Datasets,
    zoo: Zoo,
    *,
    progress: bool = True,
    force: bool = False,
) -> KernelGan:
    """Train (or reuse) one CycleGAN per conv layer on the zoo's kernel sets (layer 1 matched
    on `datasets`' unlabelled images with `gan.align_by = activations`); with `gan.source =
    original`, read the original's published generators instead. The functional phase, when
    `gan.functional_weight > 0`, is the next stage (`behaviour.make_tuned`)."""
    if cfg.gan.source == "original":
        return published_generators(cfg, store, zoo, force=force)
    device = resolve_device(cfg.device)
    images = match_images(cfg, datasets) if cfg.gan.align_by == "activations" else None
    kernels, index = prepared_lazily(cfg, zoo, images)
    reference = reference_filters(zoo)
    reference2 = reference_layer2(zoo, reference) if cfg.gan.align_outputs else None

    def layer_stage(layer: str):
        """One layer's CycleGAN, a stage of its own keyed by the settings that layer reads
        (`stage_keys.STAGE_KEYS`): an arm that changes only layer 2 reuses the reference's
        layer 1."""

        def build(writer: StageWriter) -> None:
            black, _ = normalise(kernels["black"][layer])
            cat, _ = normalise(kernels["cat"][layer])
            gan = train_layer(
                cfg.gan,
                black,
                cat,
                sample_shape(cfg, zoo, layer),
                layer_seed(cfg, layer),
                device,
                writer.checkpoints,
                stage=f"CycleGAN {layer}",
                progress=progress,
            )
            write_layer(writer, gan)

        name = f"cyclegan-{layer}"
        key = stage_key(cfg, name)
        return store.stage(name, key, build, inputs=[zoo.artifact], force=force)

    parts = {layer: layer_stage(layer) for layer in translated_layers(cfg.gan)}

    def build(writer: StageWriter) -> None:  # the layers together, as the later stages read
        for layer, part in parts.items():
            writer.save_tensors(f"{layer}_nets", part.tensors("nets"))
        writer.save_json("history", {layer: part.json("history") for layer, part in parts.items()})

    key = stage_key(cfg, "cyclegan")
    artifact = store.stage(
        "cyclegan", key, build, inputs=[zoo.artifact, *parts.values()], force=force
    )
    history = artifact.json("history")
    layers = {}
    for layer in translated_layers(cfg.gan):
        shape = sample_shape(cfg, zoo, layer)
        nets = make_networks(cfg.gan, shape, 0)
        state = artifact.tensors(f"{layer}_nets")
        load_nets(nets, state)
        for net in nets.values():
            net.eval()
        layers[layer] = LayerGan(nets, history[layer], shape)
    gan = KernelGan(
        layers,
        kernels,
        reference,
        index,
        artifact,
        zoo.artifact,
        cfg.gan.sample,
        reference2,
        images,
        parts,
    )
    return gan
