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
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from scipy.optimize import linear_sum_assignment
from torch import nn

from . import original
from .cnn import CONV_LAYERS
from .config import Config, GanConfig, resolve_device, stage_key
from .machine import derive_seed, generator
from .progress import bar as progress_bar
from .store import StageWriter, Store, atomic_write_bytes
from .training import DivergedError
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
FUNCTIONAL_KEYS = ("functional_weight", "functional_steps")  # gan.* of `functional.tune` only
# A = black, B = cat: G = G_A (black -> cat), F = G_B (cat -> black), D_A judges cat kernels
# (the outputs of G), D_B judges black kernels, as in the reference code.


# --- the invertible per-filter normalisation ---------------------------------------------------


@dataclass
class FilterScale:
    """What `normalise` removed from each filter, so that `restore` can put it back."""

    mean: torch.Tensor  # (N, 1)
    norm: torch.Tensor  # (N, 1)


def normalise(kernels: torch.Tensor) -> tuple[torch.Tensor, FilterScale]:
    """(N, C, 5, 5) -> flat (N, C*25) vectors with zero mean and unit norm, and their scale."""
    flat = kernels.flatten(1)
    mean = flat.mean(1, keepdim=True)
    centred = flat - mean
    norm = centred.norm(dim=1, keepdim=True).clamp(min=1e-8)
    return centred / norm, FilterScale(mean, norm)


def restore(vectors: torch.Tensor, scale: FilterScale, shape: tuple[int, ...]) -> torch.Tensor:
    """Inverse of `normalise`: give each vector back its filter's norm and mean."""
    return (vectors * scale.norm + scale.mean).view(-1, *shape)


# --- layer-2 alignment (weight matching) -------------------------------------------------------


MATCH_IMAGES = 256  # unlabelled images layer-1 responses are correlated on (8-16 channels)


def responses(filters: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
    """Each layer-1 filter's response to `images` (float, N x 3 x H x W), before bias and ReLU,
    standardised per filter: (C, N * H' * W'). A bias shifts a response and the CNN's input
    centring scales and shifts it, so neither changes a correlation of these."""
    x = F.conv2d(images, filters.to(images.dtype)).transpose(0, 1).flatten(1).double()
    return (x - x.mean(1, keepdim=True)) / x.std(1, keepdim=True).clamp(min=1e-8)


def matching_permutation(
    filters: torch.Tensor, reference: torch.Tensor, images: torch.Tensor | None = None
) -> torch.Tensor:
    """perm such that filters[perm] best matches reference, filter by filter: Hungarian on the
    cosine similarity of flattened filters (weight matching), or, given unlabelled `images`, on
    the correlation of the layer-1 filters' responses to them (activation matching, Ainsworth
    et al., 2023)."""
    if images is None:
        a = F.normalize(filters.flatten(1), dim=1)
        b = F.normalize(reference.flatten(1), dim=1)
        cost = -(b @ a.T).numpy()
    else:
        a, b = responses(filters.detach(), images), responses(reference, images)
        cost = -(b @ a.T / a.shape[1]).numpy()
    rows, cols = linear_sum_assignment(cost)
    return torch.as_tensor(cols[np.argsort(rows)], dtype=torch.long)


def align_layer2(
    kernels2: torch.Tensor,
    index2: torch.Tensor,
    conv1_snapshots: dict,
    reference: torch.Tensor,
    images: torch.Tensor | None = None,
) -> torch.Tensor:
    """Permute the input channels of every layer-2 kernel into the reference's layer-1 order
    (layer-1 filters matched by weights, or by their responses to `images`).

    `conv1_snapshots[(model, step)]` holds that snapshot's layer-1 filters (C1, 3, 5, 5)."""
    aligned = kernels2.clone()
    perms = {
        key: matching_permutation(weights, reference, images)
        for key, weights in conv1_snapshots.items()
    }
    for row, (model, step, _) in enumerate(index2.tolist()):
        aligned[row] = kernels2[row][perms[(model, step)]]
    return aligned


def in_reference_order(
    conv1: torch.Tensor,
    conv2: torch.Tensor,
    reference: torch.Tensor,
    function,
    reference2: torch.Tensor | None = None,
    images: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """`function(layer, kernels)` applied to one model's conv weights as the CycleGAN saw its
    samples, the result put back in the model's own channel order (its wiring unchanged).

    Layer 2 is handed its kernels with input channels in the reference's layer-1 order. With
    `reference2` (whole aligned layers, `gan.align_outputs`), each layer's filters are also
    handed over in the reference's order: layer 1's matched to `reference`, layer 2's to
    `reference2`. Layer 1 is matched as the zoo was (`images`: by responses; see
    `match_images`). Differentiable in `function`'s output (the functional loss)."""
    perm1 = matching_permutation(conv1.detach(), reference, images)
    back1 = torch.argsort(perm1)
    aligned = conv2[:, perm1]
    if reference2 is None:
        return function("conv1", conv1), function("conv2", aligned)[:, back1]
    perm2 = matching_permutation(aligned.detach(), reference2)
    new1 = function("conv1", conv1[perm1])[back1]
    new2 = function("conv2", aligned[perm2])[torch.argsort(perm2)]
    return new1, new2[:, back1]


# --- networks ----------------------------------------------------------------------------------


def _mlp(sizes: list[int], final: nn.Module | None = None) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(nn.LeakyReLU(0.2))
    if final is not None:
        layers.append(final)
    return nn.Sequential(*layers)


class ConvKernelNet(nn.Module):
    """A small conv net over the 5x5 grid with C_in channels; `out` = C_in (generator) or 1."""

    def __init__(self, channels: int, hidden: int, out: int, depth: int):
        super().__init__()
        self.channels = channels
        layers: list[nn.Module] = []
        width = channels
        for _ in range(depth - 1):
            layers += [nn.Conv2d(width, hidden, 3, padding=1), nn.LeakyReLU(0.2)]
            width = hidden
        self.body = nn.Sequential(*layers)
        self.generator = out == channels
        self.tail = (
            nn.Conv2d(width, channels, 3, padding=1) if self.generator else nn.Linear(width * 25, 1)
        )

    def forward(self, vectors: torch.Tensor) -> torch.Tensor:
        x = self.body(vectors.view(-1, self.channels, 5, 5))
        return self.tail(x).flatten(1) if self.generator else self.tail(x.flatten(1))


class Conv3dKernelNet(nn.Module):
    """The original project's network for whole layers: a 3-D conv net (3x3x3 kernels) over one
    layer's (C_in, C_out, 5, 5) tensor, read as C_in channels over a C_out x 5 x 5 volume; a
    generator maps it to the same shape, a discriminator pools it to one score. (The original's
    generator ended in tanh; here, as for every network of this module, the output is linear:
    the samples are normalised vectors, not images in [-1, 1].)"""

    def __init__(self, shape: tuple[int, ...], hidden: int, generator: bool, depth: int):
        super().__init__()
        self.shape = tuple(shape)
        layers: list[nn.Module] = []
        width = self.shape[0]
        for _ in range(depth - 1):
            layers += [nn.Conv3d(width, hidden, 3, padding=1), nn.LeakyReLU(0.2)]
            width = hidden
        self.body = nn.Sequential(*layers)
        self.tail = (
            nn.Conv3d(width, self.shape[0], 3, padding=1)
            if generator
            else nn.Sequential(nn.AdaptiveAvgPool3d(1), nn.Flatten(), nn.Linear(width, 1))
        )

    def forward(self, vectors: torch.Tensor) -> torch.Tensor:
        return self.tail(self.body(vectors.view(-1, *self.shape))).flatten(1)


class SetKernelNet(nn.Module):
    """A permutation-equivariant network for whole layers (Zaheer et al., 2017, Deep Sets):
    each of a layer's C_out filters is embedded by one shared MLP, the embeddings' mean is
    appended to each as the layer's context, and a second shared MLP maps each (filter,
    context) pair to its output filter (generator) or a score averaged over the filters
    (discriminator). Reordering a layer's filters reorders a generator's output the same way
    and leaves a discriminator's score unchanged: the filters' order, which differs freely
    between zoo models, carries no meaning here, without any alignment."""

    def __init__(self, shape: tuple[int, ...], hidden: int, generator: bool, depth: int):
        super().__init__()
        self.c_in, self.c_out = shape[0], shape[1]
        d = self.c_in * 25
        self.generator = generator
        self.embed = _mlp([d, *[hidden] * (depth - 1)], nn.LeakyReLU(0.2))
        self.out = _mlp([2 * hidden, hidden, d if generator else 1])

    def forward(self, vectors: torch.Tensor) -> torch.Tensor:
        # (N, C_in * C_out * 25) -> one row per filter: (N, C_out, C_in * 25)
        x = vectors.view(-1, self.c_in, self.c_out, 25).transpose(1, 2).flatten(2)
        h = self.embed(x)
        z = torch.cat([h, h.mean(1, keepdim=True).expand_as(h)], dim=2)
        if not self.generator:
            return self.out(z).mean(1)
        y = self.out(z).view(-1, self.c_out, self.c_in, 25)
        return y.transpose(1, 2).flatten(1)


def make_networks(
    cfg: GanConfig, channels: int | tuple[int, ...], seed: int
) -> dict[str, nn.Module]:
    """G, F, D_A (judges cat kernels) and D_B (judges black kernels) for one layer. `channels`
    is a filter's C_in, or the shape of one sample: (C_in, 5, 5) for a filter, (C_in, C_out,
    5, 5) for a whole layer (`gan.sample = "layer"`)."""
    shape = (channels, 5, 5) if isinstance(channels, int) else tuple(channels)
    d = int(np.prod(shape))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if cfg.arch == "mlp":
            hidden = [cfg.hidden] * (cfg.depth - 1)
            return {
                "G": _mlp([d, *hidden, d]),
                "F": _mlp([d, *hidden, d]),
                "D_A": _mlp([d, *hidden, 1]),
                "D_B": _mlp([d, *hidden, 1]),
            }
        if cfg.arch in ("conv3d", "set"):
            net = Conv3dKernelNet if cfg.arch == "conv3d" else SetKernelNet
            return {
                name: net(shape, cfg.hidden, name in ("G", "F"), cfg.depth)
                for name in ("G", "F", "D_A", "D_B")
            }
        c = shape[0]
        return {
            "G": ConvKernelNet(c, cfg.hidden, c, cfg.depth),
            "F": ConvKernelNet(c, cfg.hidden, c, cfg.depth),
            "D_A": ConvKernelNet(c, cfg.hidden, 1, cfg.depth),
            "D_B": ConvKernelNet(c, cfg.hidden, 1, cfg.depth),
        }


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
        batch = batch.detach()
        out = batch.clone()
        take = min(self.size - self.filled, len(batch))
        if take:
            self.samples[self.filled : self.filled + take] = batch[:take]
            self.filled += take
        rest = torch.arange(take, len(batch))
        if len(rest):
            swap = torch.rand(len(rest), generator=gen) < 0.5
            slots = torch.randint(self.size, (len(rest),), generator=gen)
            chosen, where = rest[swap], slots[swap]
            # a stored sample is handed out once: of several picks of one slot, the first swaps
            _, inverse = torch.unique(where, return_inverse=True)
            first = torch.full((int(inverse.max()) + 1,) if len(where) else (0,), len(where))
            first = first.scatter_reduce(0, inverse, torch.arange(len(where)), "amin")
            chosen, where = chosen[first], where[first]
            out[chosen] = self.samples[where]
            self.samples[where] = batch[chosen]
        return out


def gan_loss(prediction: torch.Tensor, real: bool) -> torch.Tensor:
    """Least-squares GAN loss (LSGAN), the reference's default."""
    return F.mse_loss(prediction, torch.full_like(prediction, 1.0 if real else 0.0))


def generator_losses(
    nets: dict[str, nn.Module], real_A: torch.Tensor, real_B: torch.Tensor, cfg: GanConfig
) -> tuple[torch.Tensor, tuple[torch.Tensor, ...], torch.Tensor, torch.Tensor]:
    """The generators' objective of Zhu et al. (2017) on one batch of each domain:

    loss_G_A = (D_A(G(a)) - 1)^2, loss_G_B = (D_B(F(b)) - 1)^2 (LSGAN),
    loss_cycle_A = lambda |F(G(a)) - a|_1, loss_cycle_B = lambda |G(F(b)) - b|_1,
    loss_idt_A = lambda mu |G(b) - b|_1, loss_idt_B = lambda mu |F(a) - a|_1,
    with lambda = `cycle_weight` and mu = `identity_weight`. Returns their sum, the six terms
    and the two translated batches G(a), F(b)."""
    fake_B, fake_A = nets["G"](real_A), nets["F"](real_B)
    loss_G_A = gan_loss(nets["D_A"](fake_B), True)
    loss_G_B = gan_loss(nets["D_B"](fake_A), True)
    loss_cycle_A = F.l1_loss(nets["F"](fake_B), real_A) * cfg.cycle_weight
    loss_cycle_B = F.l1_loss(nets["G"](fake_A), real_B) * cfg.cycle_weight
    identity = cfg.cycle_weight * cfg.identity_weight
    loss_idt_A = F.l1_loss(nets["G"](real_B), real_B) * identity
    loss_idt_B = F.l1_loss(nets["F"](real_A), real_A) * identity
    terms = (loss_G_A, loss_G_B, loss_cycle_A, loss_cycle_B, loss_idt_A, loss_idt_B)
    return sum(terms), terms, fake_B, fake_A


def lr_factor(step: int, cfg: GanConfig) -> float:
    """Constant learning rate, then a linear decay to zero over the last `decay_steps`."""
    constant = cfg.steps - cfg.decay_steps
    return 1.0 if step < constant else max(0.0, 1 - (step - constant) / max(1, cfg.decay_steps))


# --- training ---------------------------------------------------------------------------------


@dataclass
class LayerGan:
    """One layer's trained CycleGAN (on the CPU, in eval mode) and its loss history."""

    nets: dict[str, nn.Module]
    history: dict[str, list[float]]
    channels: int | tuple[int, ...]  # a filter's C_in, or one sample's shape
    published: bool = False  # the original's generators: raw whole layers in and out

    @torch.no_grad()
    def translate(self, kernels: torch.Tensor, direction: str) -> torch.Tensor:
        """Translate real-scale kernels (N, C, 5, 5) with G ('black->cat') or F ('cat->black'),
        normalising first and giving each output its source filter's scale back (the
        published generators: raw samples (N, C_in, C_out, 5, 5) in and out)."""
        return translate_with(self.nets[GENERATOR[direction]], kernels, self.published)


GENERATOR = {"black->cat": "G", "cat->black": "F"}  # direction -> the network that translates


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
        betas = (cfg.beta1, cfg.beta2)
        self.opt_G = torch.optim.Adam(
            [*self.nets["G"].parameters(), *self.nets["F"].parameters()], lr=cfg.lr, betas=betas
        )
        self.opt_D = torch.optim.Adam(
            [*self.nets["D_A"].parameters(), *self.nets["D_B"].parameters()], lr=cfg.lr, betas=betas
        )
        self.pool_A = ImagePool(cfg.pool_size, black.shape[1], device)  # fake cat kernels
        self.pool_B = ImagePool(cfg.pool_size, black.shape[1], device)  # fake black kernels
        self.gen = torch.Generator().manual_seed(seed)
        self.step = 0
        self.losses = torch.zeros(cfg.steps, len(LOSSES), device=device)  # read at log steps

    def set_lr(self) -> None:
        for optimizer in (self.opt_G, self.opt_D):
            for group in optimizer.param_groups:
                group["lr"] = self.cfg.lr * lr_factor(self.step, self.cfg)

    def train_step(self) -> None:
        cfg, nets = self.cfg, self.nets
        real_A = self.black[torch.randint(len(self.black), (cfg.batch_size,), generator=self.gen)]
        real_B = self.cat[torch.randint(len(self.cat), (cfg.batch_size,), generator=self.gen)]
        self.set_lr()
        loss_G, terms, fake_B, fake_A = generator_losses(nets, real_A, real_B, cfg)
        loss_G_A, loss_G_B, loss_cycle_A, loss_cycle_B, loss_idt_A, loss_idt_B = terms
        self.opt_G.zero_grad(set_to_none=True)
        loss_G.backward()
        self.opt_G.step()
        # Discriminators, on real samples and on generated ones from the history pools.
        pooled_B = self.pool_A.query(fake_B, self.gen)
        pooled_A = self.pool_B.query(fake_A, self.gen)
        loss_D_A = 0.5 * (
            gan_loss(nets["D_A"](real_B), True) + gan_loss(nets["D_A"](pooled_B), False)
        )
        loss_D_B = 0.5 * (
            gan_loss(nets["D_B"](real_A), True) + gan_loss(nets["D_B"](pooled_A), False)
        )
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

    def check(self, stage: str) -> None:
        bad = ~torch.isfinite(self.losses[: self.step])
        if bad.any():
            step, term = (int(i) for i in bad.nonzero()[0])
            raise DivergedError(
                f"{stage} diverged: {LOSSES[term]} at step {step + 1} is "
                f"{self.losses[step, term].item()}; lower gan.lr or check the kernels"
            )

    # checkpoints: tensors in safetensors, the rest in JSON, both written atomically
    def save(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        tensors = net_tensors(self.nets, prefix="net.")
        meta = {"step": self.step, "pool_A": self.pool_A.filled, "pool_B": self.pool_B.filled}
        for name, optimizer in (("opt_G", self.opt_G), ("opt_D", self.opt_D)):
            state = optimizer.state_dict()
            meta[name] = state["param_groups"]
            for pid, values in state["state"].items():
                for key, value in values.items():
                    tensors[f"{name}.{pid}.{key}"] = value
        tensors |= {
            "pool_A": self.pool_A.samples,
            "pool_B": self.pool_B.samples,
            "losses": self.losses,
            "rng": self.gen.get_state(),
        }
        body = save_file_bytes({k: v.detach().cpu().contiguous() for k, v in tensors.items()})
        atomic_write_bytes(folder / "state.safetensors", body)
        atomic_write_bytes(folder / "state.json", json.dumps(meta).encode())

    def load(self, folder: Path) -> None:
        tensors = load_file(folder / "state.safetensors", device=str(self.device))
        meta = json.loads((folder / "state.json").read_text())
        load_nets(self.nets, tensors, prefix="net.")
        for name, optimizer in (("opt_G", self.opt_G), ("opt_D", self.opt_D)):
            state: dict = {}
            for key, value in tensors.items():
                if key.startswith(f"{name}."):
                    _, pid, field = key.split(".")
                    state.setdefault(int(pid), {})[field] = (
                        value.cpu() if field == "step" else value
                    )
            optimizer.load_state_dict({"state": state, "param_groups": meta[name]})
        self.pool_A.samples, self.pool_A.filled = tensors["pool_A"], meta["pool_A"]
        self.pool_B.samples, self.pool_B.filled = tensors["pool_B"], meta["pool_B"]
        self.losses = tensors["losses"]
        self.gen.set_state(tensors["rng"].cpu())
        self.step = meta["step"]


def net_tensors(nets: dict[str, nn.Module], prefix: str = "") -> dict[str, torch.Tensor]:
    """All networks' weights in one flat dict: '<prefix><net>.<parameter>'."""
    return {f"{prefix}{n}.{k}": v for n, net in nets.items() for k, v in net.state_dict().items()}


def load_nets(nets: dict[str, nn.Module], tensors: dict[str, torch.Tensor], prefix: str = ""):
    """Inverse of `net_tensors`: load each network's weights from the flat dict."""
    for name, net in nets.items():
        head = f"{prefix}{name}."
        net.load_state_dict({k[len(head) :]: v for k, v in tensors.items() if k.startswith(head)})


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
    bar = progress_bar(total=cfg.steps, initial=trainer.step, desc=stage, progress=progress)
    while trainer.step < cfg.steps:
        trainer.train_step()
        bar.update(1)
        if trainer.step % cfg.log_every == 0 or trainer.step == cfg.steps:
            trainer.check(stage)
            bar.set_postfix(
                cycle=f"{trainer.losses[trainer.step - 1, 2]:.3f}",
                D=f"{trainer.losses[trainer.step - 1, 6]:.3f}",
            )
        if checkpoints is not None and trainer.step % cfg.checkpoint_every == 0:
            trainer.save(checkpoints)
        if stop_after is not None and trainer.step >= stop_after:
            break
    bar.close()
    losses = trainer.losses[: trainer.step].cpu()
    history = {name: losses[:, i].tolist() for i, name in enumerate(LOSSES)}
    nets = {k: v.cpu().eval() for k, v in trainer.nets.items()}
    return LayerGan(nets, history, channels)


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


def conv1_snapshots(zoo_artifact, domain: str) -> dict[tuple[int, int], torch.Tensor]:
    tensors = zoo_artifact.tensors(f"{domain}_snapshots")
    steps = tensors["steps"].tolist()
    weights = tensors["conv1"]  # (K, S, C1, 3, 5, 5)
    return {(m, s): weights[m, i] for m in range(len(weights)) for i, s in enumerate(steps)}


def reference_filters(zoo: Zoo) -> torch.Tensor:
    """The layer-1 filters whose order all layer-2 input channels are aligned to: those of the
    black zoo's last model at its last snapshot (a trained one)."""
    snapshots = conv1_snapshots(zoo.artifact, "black")
    return snapshots[max(snapshots)]


def layer_samples(
    kernels: torch.Tensor,
    index: torch.Tensor,
    reference: torch.Tensor | None = None,
    images: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Whole layers from per-filter kernel sets: the filters of each (model, step) in filter
    order, (C_out, C_in, 5, 5), given as the original did, permuted to (C_in, C_out, 5, 5);
    with `reference` (C_out, C_in, 5, 5), in the order that best matches its filters instead
    (whole *aligned* layers). A (model, step) missing some filters (a subset of kernel sets
    was kept) is left out. Returns the samples and their (model, step, -1) index."""
    groups: dict[tuple[int, int], dict[int, int]] = {}
    for row, (model, step, filt) in enumerate(index.tolist()):
        groups.setdefault((model, step), {})[filt] = row
    c_out = max(len(g) for g in groups.values())
    complete = sorted(key for key, g in groups.items() if len(g) == c_out)
    layers = [kernels[[groups[key][f] for f in range(c_out)]] for key in complete]
    if reference is not None:
        layers = [layer[matching_permutation(layer, reference, images)] for layer in layers]
    samples = torch.stack([layer.transpose(0, 1) for layer in layers])
    return samples, torch.tensor([[m, s, -1] for m, s in complete])


def reference_layer2(zoo: Zoo, reference: torch.Tensor) -> torch.Tensor:
    """The layer-2 filters (C2, C1, 5, 5) whose order whole aligned layers follow: those of
    the model and snapshot that give `reference_filters` (their inputs already in its order)."""
    snapshots = conv1_snapshots(zoo.artifact, "black")
    model, step = max(snapshots)
    index = zoo["black"].index["conv2"]
    rows = ((index[:, 0] == model) & (index[:, 1] == step)).nonzero().flatten()
    rows = rows[torch.argsort(index[rows, 2])]
    return zoo["black"].kernels["conv2"][rows]


# What one sample of the CycleGAN is, for the book's prose (keys: `gan.sample`).
SAMPLES = {
    "filter": (
        "**one sample is one filter** of one zoo model at one snapshot, C_in x 5 x 5: many "
        "samples even from a small zoo, but a filter loses the layer it belongs to"
    ),
    "layer": (
        "**one sample is one whole conv layer** of one zoo model at one snapshot, as in the "
        "original project: the C_out filters together, permuted to C_in x C_out x 5 x 5; the "
        "layer keeps its structure, but a zoo gives as many samples as models times snapshots"
    ),
}


def translator_words(cfg: Config) -> str:
    """Which translator the run used (`gan.source`), for chapter 04's prose."""
    if cfg.gan.source == "original":
        return (
            "**the original's own published generators** (`gan.source = original`): its "
            "generator pair per conv layer (`generator_A2B.pth`, `generator_B2A.pth`, "
            "`2_generator_A2B.pth`, `2_generator_B2A.pth`), read from the clone and checked, "
            "not trained here. They translate each model's raw whole layers in its own "
            "channel order, as the original applied them (no normalisation, no alignment), "
            "and the generated CNN's conv biases are zero, as in the original's. The CycleGAN "
            "settings below are not used, and there are no losses to show"
        )
    return (
        "**a CycleGAN trained here** (`gan.source = trained`) on this run's zoo, with the "
        "settings below"
    )


def match_images(cfg: Config, datasets) -> torch.Tensor:
    """The unlabelled images layer-1 filters are matched on with `gan.align_by =
    activations`: MATCH_IMAGES of both source CNNs' training images (seeded), as floats in
    [0, 1]."""
    images = datasets.unlabelled(generator(cfg.seed, "match images"))
    return images[:MATCH_IMAGES].float().div(255)


def prepared_kernels(
    cfg: Config, zoo: Zoo, images: torch.Tensor | None = None
) -> tuple[dict, dict, torch.Tensor, torch.Tensor | None]:
    """Samples of both domains per layer (filters, or whole layers with `gan.sample =
    "layer"`), layer 2's input channels aligned when `gan.align_layer2`, and each whole layer's
    filters in the reference model's order when `gan.align_outputs`; their (model, step,
    filter) index; and the reference layer-1 (and, for aligned layers, layer-2) filters."""
    reference = reference_filters(zoo)
    reference2 = None
    kernels = {d: {"conv1": zoo[d].kernels["conv1"]} for d in ("black", "cat")}
    index = {d: dict(zoo[d].index) for d in ("black", "cat")}
    for domain in ("black", "cat"):
        k2 = zoo[domain].kernels["conv2"]
        if cfg.gan.align_layer2:
            k2 = align_layer2(
                k2,
                zoo[domain].index["conv2"],
                conv1_snapshots(zoo.artifact, domain),
                reference,
                images,
            )
        kernels[domain]["conv2"] = k2
    if cfg.gan.align_outputs:
        reference2 = reference_layer2(zoo, reference)
    if cfg.gan.sample == "layer":
        order = {"conv1": reference if cfg.gan.align_outputs else None, "conv2": reference2}
        for domain in ("black", "cat"):
            for layer in CONV_LAYERS:
                kernels[domain][layer], index[domain][layer] = layer_samples(
                    kernels[domain][layer],
                    index[domain][layer],
                    order[layer],
                    images if layer == "conv1" else None,  # layer 2's outputs: by weights
                )
    return kernels, index, reference, reference2


def published_generators(cfg: Config, zoo: Zoo, store: Store, *, force=False) -> KernelGan:
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


def train(cfg: Config, zoo: Zoo, store: Store, *, force=False, progress=True) -> KernelGan:
    """Train (or reuse) one CycleGAN per conv layer on the zoo's kernel sets; with
    `gan.source = original`, read the original's published generators instead."""
    if cfg.gan.source == "original":
        return published_generators(cfg, zoo, store, force=force)
    device = resolve_device(cfg.device)
    images = None
    if cfg.gan.align_by == "activations":
        from . import data

        images = match_images(cfg, data.prepare(cfg, store, progress=False))
    kernels, index, reference, reference2 = prepared_kernels(cfg, zoo, images)

    def build(writer: StageWriter) -> None:
        history = {}
        for layer in translated_layers(cfg.gan):
            black, _ = normalise(kernels["black"][layer])
            cat, _ = normalise(kernels["cat"][layer])
            gan = train_layer(
                cfg.gan,
                black,
                cat,
                tuple(kernels["black"][layer].shape[1:]),
                derive_seed(cfg.seed, "cyclegan", layer),
                device,
                writer.checkpoints / layer,
                stage=f"CycleGAN {layer}",
                progress=progress,
            )
            writer.save_tensors(f"{layer}_nets", net_tensors(gan.nets))
            history[layer] = gan.history
        writer.save_json("history", history)

    # 2: seeds from derive_seed (gan.sample is in cfg.gan); the functional phase's settings are
    # left out: it is a stage of its own that starts from this one (`functional.tune`)
    key = stage_key(cfg, "gan", version=2)
    for name in (*FUNCTIONAL_KEYS, "source"):
        del key["gan"][name]
    # keys of runs from before these options stay as they were
    if not cfg.gan.align_outputs:
        del key["gan"]["align_outputs"]
    if cfg.gan.align_by == "weights":
        del key["gan"]["align_by"]
    artifact = store.stage("cyclegan", key, build, inputs=[zoo.artifact], force=force)
    history = artifact.json("history")
    layers = {}
    for layer in translated_layers(cfg.gan):
        shape = tuple(kernels["black"][layer].shape[1:])
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
    )
    if cfg.gan.functional_weight > 0:
        from . import functional

        gan = functional.tune(cfg, gan, store, progress=progress)
    return gan


# --- did it learn? -----------------------------------------------------------------------------


@torch.no_grad()
def evaluate(gan: KernelGan) -> dict[str, dict[str, float]]:
    """Per layer, in the normalised space the GAN works in: cycle error; distances between the
    generated and the real target distributions next to the distance between the two real
    domains; how separable the real domains are and where the translations land; how much each
    output depends on its input; memorisation; and diversity (mode collapse)."""
    from . import analysis

    results = {}
    for layer, layer_gan in gan.layers.items():
        black, _ = normalise(gan.kernels["black"][layer])
        cat, _ = normalise(gan.kernels["cat"][layer])
        G, Fn = layer_gan.nets["G"], layer_gan.nets["F"]
        if layer_gan.published:  # raw samples in and out: judged normalised, as the rest
            raw_cat, raw_black = G(gan.kernels["black"][layer]), Fn(gan.kernels["cat"][layer])
            fake_cat, fake_black = normalise(raw_cat)[0], normalise(raw_black)[0]
            cycle_black, cycle_cat = normalise(Fn(raw_cat))[0], normalise(G(raw_black))[0]
        else:
            fake_cat, fake_black = G(black), Fn(cat)
            cycle_black, cycle_cat = Fn(fake_cat), G(fake_black)
        models = np.r_[
            gan.index["black"][layer][:, 0].numpy(),
            gan.index["cat"][layer][:, 0].numpy() + 1_000_000,
        ]
        classifier, separability = analysis.domain_classifier(black, cat, models)

        def share_cat(x, classifier=classifier):
            return float(classifier.predict(x.numpy()).mean())

        # spacing of the real kernels: nearest neighbour from another model of the zoo
        # (snapshots of one model's filter are near-copies of each other)
        cat_nn = analysis.nearest_distance(cat, cat, same_model(gan.index["cat"][layer])).median()
        black_nn = analysis.nearest_distance(
            black, black, same_model(gan.index["black"][layer])
        ).median()
        results[layer] = {
            "kernel sets (black, cat)": f"{len(black)}, {len(cat)}",
            "cycle L1 black->cat->black": float((cycle_black - black).abs().mean()),
            "cycle L1 cat->black->cat": float((cycle_cat - cat).abs().mean()),
            "FD real black vs real cat": analysis.frechet_distance(black, cat),
            "FD G(black) vs real cat": analysis.frechet_distance(fake_cat, cat),
            "FD F(cat) vs real black": analysis.frechet_distance(fake_black, black),
            "MMD real black vs real cat": analysis.mmd_rbf(black, cat),
            "MMD G(black) vs real cat": analysis.mmd_rbf(fake_cat, cat),
            "MMD F(cat) vs real black": analysis.mmd_rbf(fake_black, black),
            "domain classifier accuracy (real, 5-fold by model)": separability,
            "share classified cat: real black": share_cat(black),
            "share classified cat: G(black)": share_cat(fake_cat),
            "share classified cat: real cat": share_cat(cat),
            "share classified cat: F(cat)": share_cat(fake_black),
            "cosine(black, G(black))": float(F.cosine_similarity(black, fake_cat).mean()),
            "cosine(cat, F(cat))": float(F.cosine_similarity(cat, fake_black).mean()),
            "nearest real cat / real cat spacing": float(
                analysis.nearest_distance(fake_cat, cat).median() / cat_nn
            ),
            "nearest real black / real black spacing": float(
                analysis.nearest_distance(fake_black, black).median() / black_nn
            ),
            "diversity G(black) / real cat": analysis.mean_pairwise_distance(fake_cat)
            / analysis.mean_pairwise_distance(cat),
            "diversity F(cat) / real black": analysis.mean_pairwise_distance(fake_black)
            / analysis.mean_pairwise_distance(black),
        }
    return results


def same_model(index: torch.Tensor) -> torch.Tensor:
    """(N, N) bool: kernel sets i and j come from the same model of the zoo."""
    return index[:, 0, None] == index[None, :, 0]


def alignment_effect(cfg: Config, zoo: Zoo, max_rows: int = 4000) -> dict[str, dict[str, float]]:
    """Layer-2 kernels before and after weight matching: how similar each kernel's nearest
    neighbour in its own domain is, and how far apart the two domains are; on a seeded sample
    of at most `max_rows` kernels per domain (the cosine matrix grows with the square)."""
    from . import analysis

    reference = reference_filters(zoo)
    rows = {
        d: torch.randperm(len(zoo[d].kernels["conv2"]), generator=generator(cfg.seed, "rows", d))[
            :max_rows
        ]
        .sort()
        .values
        for d in ("black", "cat")
    }
    out = {}
    for name, aligned in (("as trained", False), ("aligned", True)):
        vectors = {}
        for domain in ("black", "cat"):
            k2 = zoo[domain].kernels["conv2"]
            if aligned:
                k2 = align_layer2(
                    k2, zoo[domain].index["conv2"], conv1_snapshots(zoo.artifact, domain), reference
                )
            vectors[domain], _ = normalise(k2[rows[domain]])
        nearest = {}
        for d, v in vectors.items():
            cosine = v @ v.T
            # neighbours from other models only
            cosine[same_model(zoo[d].index["conv2"][rows[d]])] = -1
            nearest[d] = float(cosine.max(1).values.mean())
        out[name] = {
            "nearest cosine to another model, black": nearest["black"],
            "nearest cosine to another model, cat": nearest["cat"],
            "FD black vs cat": analysis.frechet_distance(vectors["black"], vectors["cat"]),
        }
    return out


@torch.no_grad()
def translation_examples(gan: KernelGan, count: int = 16) -> dict[str, torch.Tensor]:
    """Layer-1 kernels (real scale): real black and cat, their translations and cycles; for
    whole-layer samples, the filters of the first layers, `count` in all."""
    black, cat = gan.kernels["black"]["conv1"][:count], gan.kernels["cat"]["conv1"][:count]
    layer = gan.layers["conv1"]

    def filters(samples):  # (M, C_in, C_out, 5, 5) -> (M * C_out, C_in, 5, 5)
        return samples.transpose(1, 2).flatten(0, 1)[:count] if samples.dim() == 5 else samples

    fake_cat = layer.translate(black, "black->cat")
    fake_black = layer.translate(cat, "cat->black")
    examples = {
        "real black": black,
        "G(black)": fake_cat,
        "F(G(black))": layer.translate(fake_cat, "cat->black"),
        "real cat": cat,
        "F(cat)": fake_black,
        "G(F(cat))": layer.translate(fake_black, "black->cat"),
    }
    return {name: filters(value) for name, value in examples.items()}


def evaluation_table(results: dict[str, dict[str, float]]):
    import pandas as pd

    return pd.DataFrame(results).map(lambda v: f"{v:.3f}" if isinstance(v, float) else v)
