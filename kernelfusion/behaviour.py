"""A functional loss for the translator, and the control that needs no translator.

The CycleGAN learns what kernels *look like* in each domain; nothing in its losses asks what
the generated CNN *does*. The functional phase (`gan.functional_weight > 0`) trains both
layers' generators on, after the CycleGAN, with a term on the generated CNN's behaviour on
unlabelled images x (the two source CNNs' training images, never a black-cat label). For the
source CNN s, the other source CNN o, and phi_T(x) the features of s with its filters
translated by the generator T (differentiably, through the translated weights):

    L_keep  = CE(softmax(h_s(phi_T(x))), p_s(x))    it still recognises its own concept
    L_other = CE(softmax(r(phi_T(x))),   p_o(x))    its features carry the other concept

(CE with soft targets: -sum p log q; h_s is the source's own head, r a linear readout learned
alongside, p_s and p_o the source CNNs' softmax outputs: distillation through the translated
weights). Per step, for F on the cat CNN and G on the black CNN:

    L = sum over layers of the CycleGAN's generator loss (`cyclegan.generator_losses`)
        + functional_weight * (L_keep + L_other), summed over both directions

The discriminators stay as the CycleGAN left them (frozen): they still say whether a
translation looks like its target domain, but stop adapting to the new objective.

The control (`distilled`): the same L_keep + L_other, for the same number of steps, on the
source CNN's conv weights directly, without any generator. If it does as well as the
translated CNN, the generator is not what helps.
"""

from __future__ import annotations

import copy
import dataclasses

import torch
from torch import nn
from torch.func import functional_call

from .alignment import in_reference_order, normalise
from .cnn import SmallCNN, SourceCNNs
from .config import Config, resolve_device
from .cyclegan import KernelGan, LayerGan, generator_losses, load_nets, net_tensors
from .data import Datasets
from .machine import generator
from .progress import bar as progress_bar
from .stage_keys import stage_key
from .store import StageWriter, Store
from .training import DivergedError

# direction -> (the source CNN it translates, the other source CNN)
PAIRS = {"cat->black": ("cat", "black"), "black->cat": ("black", "cat")}
BATCH = 64  # unlabelled images per step: the CycleGAN's own batch size at default
READOUT_LR = 10  # times the phase's learning rate: the readout starts from zero and is linear


def unlabelled(cfg: Config, datasets: Datasets) -> torch.Tensor:
    """The images the functional loss sees (uint8): both source CNNs' training images, which
    carry no black-cat label, in a seeded order."""
    return datasets.unlabelled(generator(cfg.seed, "functional"))


@torch.no_grad()
def soft_targets(model: SmallCNN, images: torch.Tensor) -> torch.Tensor:
    """softmax outputs of `model` on uint8 images, in batches (both classes: 1 - p(class 1)
    from `cnn.positive_probability` is not bit-identical to p(class 0))."""
    model = model.eval()
    return torch.cat(
        [
            torch.softmax(model(images[i : i + 512].float().div(255)), 1)
            for i in range(0, len(images), 512)
        ]
    )


def soft_cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """-sum_c p_c log softmax(logits)_c, averaged over the batch."""
    return -(targets * torch.log_softmax(logits, 1)).sum(1).mean()


def behaviour_loss(
    model: SmallCNN,
    weights: dict[str, torch.Tensor],
    readout: nn.Module,
    x: torch.Tensor,
    p_own: torch.Tensor,
    p_other: torch.Tensor,
) -> torch.Tensor:
    """L_keep + L_other for `model` run with `weights` in place of its own."""
    features = functional_call(model, weights, (x,), {"features_only": True})
    return soft_cross_entropy(model.head(features), p_own) + soft_cross_entropy(
        readout(features), p_other
    )


def _frozen(model: SmallCNN) -> SmallCNN:
    model = copy.deepcopy(model).eval()
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    return model


def _readout(model: SmallCNN) -> nn.Linear:
    readout = nn.Linear(model.feature_size, 2)
    nn.init.zeros_(readout.weight)  # starts at p = 1/2 for every image: no seed dependence
    nn.init.zeros_(readout.bias)
    return readout


def train_phase(
    cfg: Config,
    gan: KernelGan,
    sources: SourceCNNs,
    images: torch.Tensor,
    device: str,
    progress: bool = True,
) -> tuple[dict[str, dict[str, nn.Module]], dict[str, list[float]]]:
    """The functional phase: each layer's networks trained on with the loss of the module's
    docstring; returns them (on the CPU, in eval mode) and the per-step loss history."""
    g = cfg.gan
    nets = {
        layer: {name: copy.deepcopy(net).to(device).train() for name, net in lg.nets.items()}
        for layer, lg in gan.layers.items()
    }
    for layer_nets in nets.values():
        for name in ("D_A", "D_B"):
            layer_nets[name].requires_grad_(False)
    models = {d: _frozen(sources[d]).to(device) for d in ("black", "cat")}
    targets = {d: soft_targets(models[d], images.to(device)) for d in models}
    readouts = {
        direction: _readout(models[own]).to(device) for direction, (own, _) in PAIRS.items()
    }
    generators = [p for n in nets.values() for k in ("G", "F") for p in n[k].parameters()]
    readout_params = [p for r in readouts.values() for p in r.parameters()]
    optimizer = torch.optim.Adam(
        [
            {"params": generators, "lr": g.lr},
            {"params": readout_params, "lr": g.lr * READOUT_LR},
        ],
        betas=(g.beta1, g.beta2),
    )
    samples = {
        layer: {d: normalise(gan.kernels[d][layer])[0].to(device) for d in ("black", "cat")}
        for layer in nets
    }
    gen = generator(cfg.seed, "functional steps")
    images = images.to(device)
    losses = torch.zeros(g.functional_steps, 2, device=device)  # read once at the end
    bar = progress_bar(total=g.functional_steps, desc="functional phase", progress=progress)
    for step in range(g.functional_steps):
        cycle = torch.zeros((), device=device)
        for layer, layer_nets in nets.items():
            black, cat = samples[layer]["black"], samples[layer]["cat"]
            real_A = black[torch.randint(len(black), (g.batch_size,), generator=gen)]
            real_B = cat[torch.randint(len(cat), (g.batch_size,), generator=gen)]
            cycle = cycle + generator_losses(layer_nets, real_A, real_B, g)[0]
        rows = torch.randint(len(images), (BATCH,), generator=gen)
        x = images[rows].float().div(255)
        behaviour = torch.zeros((), device=device)
        for direction, (own, other) in PAIRS.items():
            model = models[own]

            def translate(layer, kernels, direction=direction):
                if layer not in nets:
                    return kernels
                return gan.translate_layer(nets[layer], kernels, direction)

            conv1, conv2 = in_reference_order(
                model.conv1.weight,
                model.conv2.weight,
                gan.reference,
                translate,
                gan.reference2,
                gan.match_images,
            )
            weights = {"conv1.weight": conv1, "conv2.weight": conv2}
            behaviour = behaviour + behaviour_loss(
                model, weights, readouts[direction], x, targets[own][rows], targets[other][rows]
            )
        loss = cycle + g.functional_weight * behaviour
        if (step + 1) % g.log_every == 0 and not torch.isfinite(loss):
            raise DivergedError(
                f"functional phase diverged at step {step + 1} (loss {loss.item()}); lower "
                "gan.functional_weight or gan.lr"
            )
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses[step] = torch.stack([cycle, behaviour]).detach()
        bar.update(1)
        if (step + 1) % g.log_every == 0:
            bar.set_postfix(functional=f"{losses[step, 1]:.3f}")
    bar.close()
    history = {"CycleGAN terms": losses[:, 0].tolist(), "functional": losses[:, 1].tolist()}
    for layer_nets in nets.values():
        for name, net in layer_nets.items():
            layer_nets[name] = net.cpu().eval()
    return nets, history


def make_tuned(
    cfg: Config,
    store: Store,
    datasets: Datasets,
    sources: SourceCNNs,
    gan: KernelGan,
    *,
    progress: bool = True,
    force: bool = False,
) -> KernelGan:
    """The CycleGAN `gan` after the functional phase (a stage of its own, cached; its inputs
    are the CycleGAN, the source CNNs and the data); `gan` itself when `gan.functional_weight`
    is 0 (no phase)."""
    if cfg.gan.functional_weight == 0:
        return gan
    device = resolve_device(cfg.device)

    def build(writer: StageWriter) -> None:
        nets, history = train_phase(cfg, gan, sources, unlabelled(cfg, datasets), device, progress)
        for layer, layer_nets in nets.items():
            writer.save_tensors(f"{layer}_nets", net_tensors(layer_nets))
        writer.save_json("history", history)

    artifact = store.stage(
        "functional",
        stage_key(cfg, "functional"),
        build,
        inputs=[gan.artifact, sources.artifact, datasets.artifact],
        force=force,
    )
    layers = {}
    for layer, layer_gan in gan.layers.items():
        nets = {name: copy.deepcopy(net) for name, net in layer_gan.nets.items()}
        load_nets(nets, artifact.tensors(f"{layer}_nets"))
        layers[layer] = LayerGan(
            {name: net.eval() for name, net in nets.items()}, layer_gan.history, layer_gan.channels
        )
    return dataclasses.replace(gan, layers=layers, artifact=artifact)


def distilled(
    cfg: Config, sources: SourceCNNs, images: torch.Tensor, own: str, device: str
) -> SmallCNN:
    """The control: source CNN `own`'s conv weights trained directly, without a generator,
    with the functional phase's L_keep + L_other (the other source CNN's outputs through a
    readout) on the same unlabelled images, for as many steps; its head stays as it is, as the
    generated CNN's does. Learning rate: the CNNs' own (`cnn.lr`), a fair chance for a CNN."""
    other = "black" if own == "cat" else "cat"
    model = _frozen(sources[own]).to(device)
    targets = {
        own: soft_targets(model, images.to(device)),
        other: soft_targets(_frozen(sources[other]).to(device), images.to(device)),
    }
    weights = {
        k: model.state_dict()[k].clone().requires_grad_(True)
        for k in ("conv1.weight", "conv1.bias", "conv2.weight", "conv2.bias")
    }
    readout = _readout(model).to(device)
    optimizer = torch.optim.Adam(
        [
            {"params": list(weights.values()), "lr": cfg.cnn.lr},
            {"params": list(readout.parameters()), "lr": cfg.cnn.lr},
        ]
    )
    gen = generator(cfg.seed, "distilled steps", own)
    images = images.to(device)
    for _ in range(cfg.gan.functional_steps):
        rows = torch.randint(len(images), (BATCH,), generator=gen)
        x = images[rows].float().div(255)
        loss = behaviour_loss(model, weights, readout, x, targets[own][rows], targets[other][rows])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    state.update({k: v.detach().cpu() for k, v in weights.items()})
    out = copy.deepcopy(sources[own])
    out.load_state_dict(state)
    return out.eval()
