"""Kernels across models: the CycleGAN's per-filter normalisation, and matching hidden channels
between models (hidden units permute freely between two trained CNNs). Layer-2 filters are put
into one common input-channel order by matching each model's layer-1 filters to a reference
model's, by weights (Git Re-Basin's weight matching) or by their responses to unlabelled images
(activation matching); whole layers can be put in the reference's output order too. With the
checks of what alignment does to the layer-2 kernel sets.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as nnf
from scipy.optimize import linear_sum_assignment

from . import measures
from .cnn import CONV_LAYERS
from .config import Config
from .machine import generator
from .zoo import Zoo


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


MATCH_IMAGES = 256  # unlabelled images layer-1 responses are correlated on (8-16 channels)


def standardised(activations: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) activations -> (C, N * H * W), each channel standardised, in float64."""
    x = activations.transpose(0, 1).flatten(1).double()
    return (x - x.mean(1, keepdim=True)) / x.std(1, keepdim=True).clamp(min=1e-8)


def responses(filters: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
    """Each layer-1 filter's response to `images` (float, N x 3 x H x W), before bias and ReLU,
    standardised per filter: (C, N * H' * W'). A bias shifts a response and the CNN's input
    centring scales and shifts it, so neither changes a correlation of these."""
    return standardised(nnf.conv2d(images, filters.to(images.dtype)))


def correlation_permutation(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """perm such that row perm[i] of `b` best correlates with row i of `a`, both (C, M)
    standardised rows (Hungarian on the correlation matrix)."""
    _, cols = linear_sum_assignment(-(a @ b.T / a.shape[1]).numpy())
    return torch.as_tensor(cols, dtype=torch.long)


@torch.no_grad()
def channel_permutation(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """perm such that channel perm[i] of activations `b` (N, C, H, W) best correlates with
    channel i of `a` (the aligned merge)."""
    return correlation_permutation(standardised(a), standardised(b))


def matching_permutation(
    filters: torch.Tensor,
    reference: torch.Tensor,
    images: torch.Tensor | None = None,
    reference_responses: torch.Tensor | None = None,
) -> torch.Tensor:
    """perm such that filters[perm] best matches reference, filter by filter: Hungarian on the
    cosine similarity of flattened filters (weight matching), or, given unlabelled `images`, on
    the correlation of the layer-1 filters' responses to them (activation matching, Ainsworth
    et al., 2023; `reference_responses`: the reference's, when already computed)."""
    if images is not None:
        if reference_responses is None:
            reference_responses = responses(reference, images)
        return correlation_permutation(reference_responses, responses(filters.detach(), images))
    a = nnf.normalize(filters.flatten(1), dim=1)
    b = nnf.normalize(reference.flatten(1), dim=1)
    rows, cols = linear_sum_assignment(-(b @ a.T).numpy())
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
    # the reference's responses once, not once per snapshot (half of activation matching)
    reference_responses = None if images is None else responses(reference, images)
    perms = {
        key: matching_permutation(weights, reference, images, reference_responses)
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


def same_model(index: torch.Tensor) -> torch.Tensor:
    """(N, N) bool: kernel sets i and j come from the same model of the zoo."""
    return index[:, 0, None] == index[None, :, 0]


def layer2_sample(
    cfg: Config,
    zoo: Zoo,
    stream: str,
    aligned: bool,
    images: torch.Tensor | None = None,
    max_rows: int = 4000,
) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Per domain: a seeded sample (random stream `stream`) of at most `max_rows` layer-2
    kernel sets, as trained or aligned (layer 1 matched by weights, or by its responses to
    `images`), normalised, with their (model, step, filter) index. Alignment acts row by row,
    so a row's aligned kernel does not depend on which other rows are drawn."""
    reference = reference_filters(zoo)
    out = {}
    for domain in ("black", "cat"):
        k2, index = zoo[domain].kernels["conv2"], zoo[domain].index["conv2"]
        rows = torch.randperm(len(k2), generator=generator(cfg.seed, stream, domain))
        rows = rows[:max_rows].sort().values
        if aligned:
            snapshots = conv1_snapshots(zoo.artifact, domain)
            k2 = align_layer2(k2[rows], index[rows], snapshots, reference, images)
        else:
            k2 = k2[rows]
        out[domain] = (normalise(k2)[0], index[rows])
    return out


def alignment_effect(cfg: Config, zoo: Zoo, max_rows: int = 4000) -> dict[str, dict[str, float]]:
    """Layer-2 kernels before and after weight matching: how similar each kernel's nearest
    neighbour in its own domain is, and how far apart the two domains are; on a seeded sample
    of at most `max_rows` kernels per domain (the cosine matrix grows with the square)."""
    out = {}
    for name, aligned in (("as trained", False), ("aligned", True)):
        sample = layer2_sample(cfg, zoo, "rows", aligned, max_rows=max_rows)
        nearest = {}
        for domain, (vectors, index) in sample.items():
            cosine = vectors @ vectors.T
            cosine[same_model(index)] = -1  # neighbours from other models only
            nearest[domain] = float(cosine.max(1).values.mean())
        out[name] = {
            "nearest cosine to another model, black": nearest["black"],
            "nearest cosine to another model, cat": nearest["cat"],
            "FD black vs cat": measures.frechet_distance(sample["black"][0], sample["cat"][0]),
        }
    return out


def alignment_go(
    cfg: Config, zoo: Zoo, images: torch.Tensor, max_rows: int = 4000
) -> dict[str, float]:
    """The go/no-go for alignment: how well a logistic regression tells black from cat layer-2
    kernel sets (5-fold, folds grouped by zoo model), as trained and after the layer-2
    alignment, layer 1 matched by weights ("aligned") and by its responses to the unlabelled
    `images` (`match_images`: "aligned by activations"); on a seeded sample of at most
    `max_rows` kernel sets per domain. Near 0.5 after alignment, translation has nothing to
    learn in layer 2."""
    out = {}
    for name, aligned, by in (
        ("as trained", False, None),
        ("aligned", True, None),
        ("aligned by activations", True, images),
    ):
        sample = layer2_sample(cfg, zoo, "go rows", aligned, by, max_rows)
        vectors = [sample[d][0] for d in ("black", "cat")]
        # folds grouped by zoo model: a model's kernel sets never sit on both sides of a fold
        groups = [sample[d][1][:, 0].numpy() + i * 1_000_000 for i, d in enumerate(sample)]
        _, accuracy = measures.domain_classifier(*vectors, np.concatenate(groups))
        out[name] = accuracy
    return out


class _Lazy(Mapping):
    """A mapping computed the first time it is read (`prepared_lazily`)."""

    def __init__(self, compute: Callable[[], dict]):
        self._compute, self._value = compute, None

    def _get(self) -> dict:
        if self._value is None:
            self._value = self._compute()
        return self._value

    def __getitem__(self, key):
        return self._get()[key]

    def __iter__(self):
        return iter(self._get())

    def __len__(self) -> int:
        return len(self._get())


def sample_shape(cfg: Config, zoo: Zoo, layer: str) -> tuple[int, ...]:
    """One CycleGAN sample's shape for `layer`, from the zoo alone: a filter (C_in, 5, 5), or a
    whole layer (C_in, C_out, 5, 5) as `alignment.layer_samples` gives it."""
    filters = zoo["black"].kernels[layer]
    if cfg.gan.sample == "layer":
        c_out = int(zoo["black"].index[layer][:, 2].max()) + 1
        return (filters.shape[1], c_out, *filters.shape[2:])
    return tuple(filters.shape[1:])


def prepared_lazily(
    cfg: Config, zoo: Zoo, images: torch.Tensor | None = None
) -> tuple[Mapping, Mapping]:
    """`prepared_kernels`' kernel sets and index, computed when first read (a CycleGAN to
    train, chapter 04's checks): a chapter reading cached runs needs neither, and activation
    matching costs some 3 s a run."""
    prepared = functools.cache(lambda: prepared_kernels(cfg, zoo, images))
    return _Lazy(lambda: prepared()[0]), _Lazy(lambda: prepared()[1])
