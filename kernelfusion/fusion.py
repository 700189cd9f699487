"""The generated CNN and its rivals: every model whose features chapter 6 clusters.

The generated CNN is a trained source CNN with every filter of every conv layer replaced, in
place, by its translation through that layer's generator, so that layer 2's input channels stay
wired to the layer-1 filters they were trained with. `F: cat -> black` applied to the cat CNN is
the original project's idea (give the cat detector's kernels the black domain's character);
`G: black -> cat` applied to the black CNN is the other direction. Both are reported, next to
baselines (each source CNN, a random CNN, weight averaging, task arithmetic, concatenated
features, a supervised oracle, the product of the two classifiers) and controls for the
generated kernels (source plus noise of the same size, filters drawn from the other zoo).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch

from . import training
from .cnn import CONV_LAYERS, SmallCNN, SourceCNNs, build, load_state, positive_probability
from .config import Config, resolve_device, stage_key
from .cyclegan import KernelGan, in_reference_order, matching_permutation
from .data import Datasets
from .machine import derive_seed, generator, init_seed
from .store import StageWriter, Store

# (name, how it was made); the order is the order of every table and plot.
MODELS = {
    "generated F(cat CNN)": "cat CNN, every filter translated by F: cat->black (the seed's idea)",
    "generated G(black CNN)": "black CNN, every filter translated by G: black->cat",
    "cat CNN (source unchanged)": "the cat CNN as trained (the identity translation)",
    "black CNN": "the black CNN as trained",
    "cat CNN + noise": "cat CNN filters plus noise as large as F's change to each filter",
    "cat CNN, black-zoo filters": "cat CNN with each filter replaced by a random black-zoo filter",
    "random CNN": "the shared initialisation, untrained",
    "weight average": "element-wise mean of the black and the cat CNN",
    "aligned merge": "cat CNN's channels matched to the black CNN's by activation correlation "
    "on unlabelled images (Git Re-Basin / ZipIt! style), then averaged",
    "nearest zoo model": "the zoo model (either domain) nearest to F(cat CNN) in weight space, "
    "channels matched: a memorisation control",
    "task arithmetic": "init + (black - init) + (cat - init), scaled by fusion.task_scale",
    "concatenated features": "features of the cat CNN and of the black CNN side by side",
    "distilled CNN (no generator)": "the cat CNN's conv weights trained directly with the "
    "functional loss (keep its own outputs, features predict the black CNN's) on unlabelled "
    "images: the control for the functional loss, without a generator",
    "oracle (supervised)": "a CNN trained on black-cat labels: the upper bound",
}
# The models that do not depend on the CycleGAN: made once per seed in a stage of their own
# ("rivals"), which every arm of an ablation over gan.* settings reuses.
GAN_FREE = (
    "cat CNN (source unchanged)",
    "black CNN",
    "random CNN",
    "weight average",
    "aligned merge",
    "task arithmetic",
    "distilled CNN (no generator)",
    "oracle (supervised)",
)
MERGE_IMAGES = 2000  # unlabelled images to correlate channels on: plenty for 16 channels

SCORE_MODELS = {"p(black) x p(cat)": "the product of the two classifiers: 'black AND cat'"}


def _conv_state(model: SmallCNN) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.state_dict().items()}


def reference_permutation(model: SmallCNN, reference: torch.Tensor) -> torch.Tensor:
    """perm with model.conv1.weight[perm] matched to the reference's layer-1 filters."""
    return matching_permutation(model.conv1.weight.detach(), reference)


def map_filters(model: SmallCNN, gan: KernelGan, function) -> SmallCNN:
    """A copy of `model` whose conv filters are `function(layer, kernels)`, applied per layer in
    place, each layer handed over as the CycleGAN saw its samples (layer 2's input channels in
    the reference order; whole aligned layers' filters too) and put back in the model's own
    order: wiring is unchanged (`cyclegan.in_reference_order`). The original's published
    generators (`gan.published`) are handed each layer as it is, as the original did."""
    state = _conv_state(model)
    if gan.published:
        for layer in CONV_LAYERS:
            state[f"{layer}.weight"] = function(layer, state[f"{layer}.weight"])
        return _from_state(model, state)
    state["conv1.weight"], state["conv2.weight"] = in_reference_order(
        state["conv1.weight"],
        state["conv2.weight"],
        gan.reference,
        function,
        gan.reference2,
        gan.match_images,
    )
    return _from_state(model, state)


def generated(source: SmallCNN, gan: KernelGan, direction: str) -> SmallCNN:
    """The source CNN with every filter translated through the layer's generator. With the
    original's published generators, every translated layer's bias is zero, as in the
    original's generated CNN (its generators make weights only)."""
    model = map_filters(source, gan, lambda layer, k: gan.translate(layer, k, direction))
    if gan.published:
        with torch.no_grad():
            for layer in gan.layers:
                getattr(model, layer).bias.zero_()
    return model


def with_noise(source: SmallCNN, translated: SmallCNN, seed: int) -> SmallCNN:
    """The source CNN plus Gaussian noise whose norm, filter by filter, equals the change that
    the translation made to that filter; its conv biases are the translated CNN's (the source's
    own, unless the translation set them, as the original's generated CNN did)."""
    gen = torch.Generator().manual_seed(seed)
    state = _conv_state(source)
    for layer in CONV_LAYERS:
        state[f"{layer}.bias"] = translated.state_dict()[f"{layer}.bias"].clone()
        key = f"{layer}.weight"
        change = (translated.state_dict()[key] - state[key]).flatten(1).norm(dim=1)
        noise = torch.randn(state[key].shape, generator=gen)
        noise = noise / noise.flatten(1).norm(dim=1).view(-1, 1, 1, 1) * change.view(-1, 1, 1, 1)
        state[key] = state[key] + noise
    return _from_state(source, state)


def other_zoo_filters(source: SmallCNN, gan: KernelGan, domain: str, seed: int) -> SmallCNN:
    """The source CNN with each filter replaced by a random filter of `domain`'s zoo (layer 2
    filters taken aligned and put in the source's channel order), each scaled to the norm of
    the filter it replaces: the control changes what the filters are, not how large they are
    (a zoo filter's norm differs from the source CNN's, chapter 05)."""
    gen = torch.Generator().manual_seed(seed)

    def draw(layer, kernels):
        pool = gan.kernels[domain][layer]
        if pool.dim() == 5:  # whole-layer samples: one real layer, as (C_out, C_in, 5, 5)
            pick = pool[torch.randint(len(pool), (1,), generator=gen)][0].transpose(0, 1)
        else:
            pick = pool[torch.randint(len(pool), (len(kernels),), generator=gen)]
        pick = pick.to(kernels.dtype)
        scale = kernels.flatten(1).norm(dim=1) / pick.flatten(1).norm(dim=1).clamp(min=1e-12)
        return pick * scale.view(-1, *[1] * (pick.dim() - 1))

    return map_filters(source, gan, draw)


def _from_state(like: SmallCNN, state: dict[str, torch.Tensor]) -> SmallCNN:
    model = copy.deepcopy(like)
    model.load_state_dict(state)
    return model.eval()


def combine(a: SmallCNN, b: SmallCNN, init: SmallCNN, scale: float | None) -> SmallCNN:
    """Weight average (scale None) or task arithmetic: init + scale * ((a - init) + (b - init))."""
    sa, sb, s0 = a.state_dict(), b.state_dict(), init.state_dict()
    if scale is None:
        state = {k: (sa[k] + sb[k]) / 2 for k in sa}
    else:
        state = {k: s0[k] + scale * ((sa[k] - s0[k]) + (sb[k] - s0[k])) for k in sa}
    return _from_state(a, state)


@torch.no_grad()
def _channel_match(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """perm such that channel perm[i] of activations `b` (N, C, H, W) best correlates with
    channel i of `a` (Hungarian on the correlation matrix)."""
    from scipy.optimize import linear_sum_assignment

    def standardised(x):
        x = x.transpose(0, 1).flatten(1).double()
        return (x - x.mean(1, keepdim=True)) / x.std(1, keepdim=True).clamp(min=1e-8)

    corr = standardised(a) @ standardised(b).T / a.shape[0] / a[0, 0].numel()
    _, cols = linear_sum_assignment(-corr.numpy())
    return torch.as_tensor(cols)


@torch.no_grad()
def aligned_merge(a: SmallCNN, b: SmallCNN, images: torch.Tensor) -> SmallCNN:
    """The average of `a` and `b` after permuting `b`'s hidden channels to `a`'s: layer-1
    channels by the correlation of their activations on `images` (unlabelled), layer 2's input
    channels the same way, then layer-2 channels likewise, and the head's input features with
    them (Ainsworth et al., 2023, activation matching; Stoica et al., 2024)."""
    x = images.float().div(255)
    sa, sb = _conv_state(a), _conv_state(b)
    perm1 = _channel_match(torch.relu(a.conv1(x)), torch.relu(b.conv1(x)))
    sb["conv1.weight"], sb["conv1.bias"] = sb["conv1.weight"][perm1], sb["conv1.bias"][perm1]
    sb["conv2.weight"] = sb["conv2.weight"][:, perm1]
    b1 = _from_state(b, sb)
    hidden_a, hidden_b = a.pool(torch.relu(a.conv1(x))), b1.pool(torch.relu(b1.conv1(x)))
    perm2 = _channel_match(torch.relu(a.conv2(hidden_a)), torch.relu(b1.conv2(hidden_b)))
    sb["conv2.weight"], sb["conv2.bias"] = sb["conv2.weight"][perm2], sb["conv2.bias"][perm2]
    head = sb["head.weight"]  # (classes, C2 * h * w), features flattened channel-major
    sb["head.weight"] = head.view(head.shape[0], len(perm2), -1)[:, perm2].flatten(1)
    return _from_state(a, {k: (sa[k] + sb[k]) / 2 for k in sa})


@torch.no_grad()
def nearest_zoo_model(cfg: Config, target: SmallCNN, zoo_artifact) -> tuple[SmallCNN, dict]:
    """The final zoo model (of either domain) nearest to `target` in conv weights, each zoo
    model's layer-1 filters matched to `target`'s (and layer 2's inputs with them); with its
    domain, index and distance relative to the target's norm."""
    best = None
    for domain in ("black", "cat"):
        params = zoo_artifact.tensors(f"{domain}_models")
        for k in range(len(params["conv1.weight"])):
            state = {name: value[k] for name, value in params.items()}
            perm = matching_permutation(state["conv1.weight"], target.conv1.weight.detach())
            aligned = torch.cat(
                [state["conv1.weight"][perm].flatten(), state["conv2.weight"][:, perm].flatten()]
            )
            mine = torch.cat([target.conv1.weight.flatten(), target.conv2.weight.flatten()])
            distance = float((aligned - mine).norm() / mine.norm())
            if best is None or distance < best[0]:
                best = (distance, domain, k, state)
    distance, domain, k, state = best
    return load_state(cfg, state), {"domain": domain, "model": k, "relative distance": distance}


def black_cat_labels(groups: torch.Tensor) -> torch.Tensor:
    return (groups == 0).long()


def train_oracle(cfg: Config, datasets: Datasets, device: str, progress: bool) -> SmallCNN:
    """A CNN trained directly on black-cat-vs-rest labels of the evaluation set's labelled part:
    what no label-free method should be expected to beat."""
    labelled = datasets.eval.part("train")
    labels = black_cat_labels(labelled.groups)
    gen = generator(cfg.seed, "oracle batches")
    plan = training.plan_batches(
        labels,
        torch.arange(len(labels)),
        cfg.cnn.epochs,
        cfg.cnn.batch_size,
        cfg.cnn.imbalance,
        gen,
    )
    weights = training.class_weights(labels) if cfg.cnn.imbalance == "weighted" else torch.ones(2)
    model = build(cfg.cnn, cfg.data.image_size, init_seed(cfg))
    result = training.train_stacked(
        [model],
        labelled.images.to(device),
        labels.to(device),
        plan[None],
        weights[None],
        cfg.cnn,
        stage="oracle CNN",
        progress=progress,
    )
    return load_state(cfg, {k: v.cpu() for k, v in training.unstack(result.params, 0).items()})


@dataclass
class Models:
    """Every feature model (name -> CNN, or a pair for concatenated features) and its card."""

    cnns: dict[str, SmallCNN | tuple[SmallCNN, SmallCNN]]
    cards: dict[str, dict]
    artifact: object = None


def build_rivals(
    cfg: Config, sources: SourceCNNs, datasets: Datasets, device: str, progress: bool = True
) -> dict[str, SmallCNN]:
    """The models of GAN_FREE: the source CNNs and the rivals made without the CycleGAN."""
    from . import functional

    unlabelled = datasets.unlabelled(generator(cfg.seed, "merge"))
    return {
        "cat CNN (source unchanged)": sources.cat,
        "black CNN": sources.black,
        "random CNN": sources.init,
        "weight average": combine(sources.black, sources.cat, sources.init, None),
        "aligned merge": aligned_merge(sources.black, sources.cat, unlabelled[:MERGE_IMAGES]),
        "task arithmetic": combine(sources.black, sources.cat, sources.init, cfg.fusion.task_scale),
        "distilled CNN (no generator)": functional.distilled(
            cfg, sources, functional.unlabelled(cfg, datasets), "cat", device
        ),
        "oracle (supervised)": train_oracle(cfg, datasets, device, progress),
    }


def build_models(
    cfg: Config, sources: SourceCNNs, gan: KernelGan, rivals: dict[str, SmallCNN]
) -> tuple[dict[str, SmallCNN], dict]:
    """The models made from the CycleGAN (the generated CNNs and their controls), and notes on
    how some were made (the nearest zoo model's distance, for its card)."""
    from_f = generated(sources.cat, gan, "cat->black")
    nearest, found = nearest_zoo_model(cfg, from_f, gan.zoo_artifact)
    # the same search for the cat CNN itself: how far apart trained models are at all
    _, baseline = nearest_zoo_model(cfg, sources.cat, gan.zoo_artifact)
    notes = {"nearest zoo model": {**found, "cat CNN's own nearest": baseline}}
    models = {
        "generated F(cat CNN)": from_f,
        "generated G(black CNN)": generated(sources.black, gan, "black->cat"),
        "cat CNN + noise": with_noise(sources.cat, from_f, derive_seed(cfg.seed, "noise control")),
        "cat CNN, black-zoo filters": other_zoo_filters(
            sources.cat, gan, "black", derive_seed(cfg.seed, "other-zoo control")
        ),
        "nearest zoo model": nearest,
    }
    return models, notes


def _save_models(writer: StageWriter, models: dict[str, SmallCNN]) -> None:
    for name, model in models.items():
        writer.save_tensors(
            file_name(name), {k: v.contiguous() for k, v in model.state_dict().items()}
        )


def make(
    cfg: Config,
    datasets: Datasets,
    sources: SourceCNNs,
    gan: KernelGan,
    store: Store,
    *,
    force=False,
    progress=True,
) -> Models:
    """Build (or reuse) every model, saved as plain state dicts with a JSON card each: those
    of GAN_FREE in the "rivals" stage (shared by every gan.* setting), the others in "fusion"."""
    device = resolve_device(cfg.device)

    def build_rivals_stage(writer: StageWriter) -> None:
        _save_models(writer, build_rivals(cfg, sources, datasets, device, progress))

    # the distilled control takes as many steps as the functional phase would
    key = stage_key(cfg, "fusion", "cnn", version=1) | {"steps": cfg.gan.functional_steps}
    rivals_artifact = store.stage(
        "rivals",
        key,
        build_rivals_stage,
        force=force,
        inputs=[datasets.artifact, sources.artifact],
    )
    rivals = {name: load_state(cfg, rivals_artifact.tensors(file_name(name))) for name in GAN_FREE}

    def build_stage(writer: StageWriter) -> None:
        models, notes = build_models(cfg, sources, gan, rivals)
        _save_models(writer, models)
        cards = {
            name: {
                "what": what,
                **notes.get(name, {}),
                "inputs": {
                    a.manifest["stage"]: a.key_hash
                    for a in (sources.artifact, rivals_artifact)
                    + ((gan.artifact,) if name not in GAN_FREE else ())
                },
            }
            for name, what in {**MODELS, **SCORE_MODELS}.items()
        }
        writer.save_json("cards", cards)

    # 2: seeds from derive_seed; 3: the other-zoo control scaled to the source's filter norms;
    # 4: the models that need no CycleGAN moved to the "rivals" stage
    key = stage_key(cfg, "fusion", "cnn", version=4)
    artifact = store.stage(
        "fusion",
        key,
        build_stage,
        force=force,
        inputs=[datasets.artifact, sources.artifact, gan.artifact, rivals_artifact],
    )
    cnns: dict = {
        name: rivals[name]
        if name in GAN_FREE
        else load_state(cfg, artifact.tensors(file_name(name)))
        for name in MODELS
        if name != "concatenated features"
    }
    cnns["concatenated features"] = (cnns["cat CNN (source unchanged)"], cnns["black CNN"])
    return Models({n: cnns[n] for n in MODELS}, artifact.json("cards"), artifact)


def file_name(name: str) -> str:
    return "model_" + "".join(c if c.isalnum() else "_" for c in name).strip("_")


@torch.no_grad()
def features(model: SmallCNN | tuple, images: torch.Tensor, device: str = "cpu") -> torch.Tensor:
    """Flattened second-block features of uint8 images (concatenated for a pair of CNNs)."""
    if isinstance(model, tuple):
        return torch.cat([features(m, images, device) for m in model], 1)
    model = model.to(device).eval()
    out = [
        model.features(images[i : i + 512].to(device).float().div(255)).cpu()
        for i in range(0, len(images), 512)
    ]
    return torch.cat(out)


def product_score(sources: SourceCNNs, images: torch.Tensor, device: str = "cpu") -> torch.Tensor:
    """p(black) x p(cat): the logical AND of the two classifiers, as one score."""
    return positive_probability(sources.black, images, device) * positive_probability(
        sources.cat, images, device
    )


def cards_table(models: Models):
    """How each model was made."""
    import pandas as pd

    return pd.DataFrame(
        {name: {"how it was made": card["what"]} for name, card in models.cards.items()}
    ).T


def filter_change(models: Models, source: str = "cat CNN (source unchanged)"):
    """Relative change ||W - W_source|| / ||W_source|| of each conv layer, per model."""
    import pandas as pd

    base = models.cnns[source].state_dict()
    rows = {}
    for name, model in models.cnns.items():
        if isinstance(model, tuple):
            continue
        state = model.state_dict()
        rows[name] = {
            layer: float(
                (state[f"{layer}.weight"] - base[f"{layer}.weight"]).norm()
                / base[f"{layer}.weight"].norm()
            )
            for layer in CONV_LAYERS
        }
    return pd.DataFrame(rows).T


def group_scores(models: Models, sources: SourceCNNs, datasets: Datasets, device: str = "cpu"):
    """Mean p(class 1) per evaluation group of the models that keep a source head, and of the
    product rule."""
    import pandas as pd

    from .data import GROUPS

    images, groups = datasets.eval.images, datasets.eval.groups
    scores = {
        "black CNN: p(black)": positive_probability(sources.black, images, device),
        "cat CNN: p(cat)": positive_probability(sources.cat, images, device),
        "F(cat CNN): p(cat)": positive_probability(
            models.cnns["generated F(cat CNN)"], images, device
        ),
        "G(black CNN): p(black)": positive_probability(
            models.cnns["generated G(black CNN)"], images, device
        ),
        "p(black) x p(cat)": product_score(sources, images, device),
    }
    return pd.DataFrame(
        {
            name: {g: float(s[groups == i].mean()) for i, g in enumerate(GROUPS)}
            for name, s in scores.items()
        }
    ).T
