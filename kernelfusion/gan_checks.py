"""Did the CycleGAN learn? Per translated layer: cycle errors, distances between translated and
real kernel distributions next to the distance between the two real domains, dependence on the
input, memorisation, diversity, and whether the cycle rides on a hidden signal.
"""

from __future__ import annotations

import copy
import dataclasses

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as nnf  # not F: F is also a generator's name

from . import fusion, measures
from .alignment import normalise, same_model
from .cnn import SourceCNNs, features
from .config import Config
from .cyclegan import KernelGan, curve_steps, load_nets, read_snapshots
from .data import Datasets
from .evaluate import evaluation_split

CURVE_COLUMNS = ("step", "probe F1", "probe ROC AUC")


@torch.no_grad()
def hidden_signal(gan, noise: float = 0.01, seed: int = 0) -> dict[str, float]:
    """A CycleGAN can satisfy its cycle loss by hiding its input in a faint signal of the
    translation (Chu et al., 2017). Per translated layer: the cycle error black -> cat -> black
    of the real black samples, and with noise of `noise` times the kernel scale added to each
    translation first; their ratio. A ratio far above 1 means the cycle rides on a signal too
    faint to survive 1% noise."""

    gen = torch.Generator().manual_seed(seed)
    out = {}
    for layer, layer_gan in gan.layers.items():
        if layer_gan.published:  # the original's generators: raw whole layers in and out
            black = gan.kernels["black"][layer]
        else:
            black, _ = normalise(gan.kernels["black"][layer])  # unit-norm vectors
        to_cat, to_black = layer_gan.nets["G"], layer_gan.nets["F"]
        fake = to_cat(black)
        clean = float((to_black(fake) - black).abs().mean())
        jitter = torch.randn(fake.shape, generator=gen)
        shape = (-1, *[1] * (fake.dim() - 1))  # one norm per sample
        norm = fake.flatten(1).norm(dim=1).view(shape)
        jitter = jitter / jitter.flatten(1).norm(dim=1).view(shape) * noise * norm
        noisy = float((to_black(fake + jitter) - black).abs().mean())
        out[layer] = {
            "cycle L1": clean,
            "cycle L1, with noise": noisy,
            "ratio": noisy / max(clean, 1e-12),
        }
    return out


@torch.no_grad()
def evaluate(gan: KernelGan) -> dict[str, dict[str, float]]:
    """Per layer, in the normalised space the GAN works in: cycle error; distances between the
    generated and the real target distributions next to the distance between the two real
    domains; how separable the real domains are and where the translations land; how much each
    output depends on its input; memorisation; and diversity (mode collapse)."""

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
        classifier, separability = measures.domain_classifier(black, cat, models)

        def share_cat(x, classifier=classifier):
            return float(classifier.predict(x.numpy()).mean())

        # spacing of the real kernels: nearest neighbour from another model of the zoo
        # (snapshots of one model's filter are near-copies of each other)
        cat_nn = measures.nearest_distance(cat, cat, same_model(gan.index["cat"][layer])).median()
        black_nn = measures.nearest_distance(
            black, black, same_model(gan.index["black"][layer])
        ).median()
        results[layer] = {
            "kernel sets (black, cat)": f"{len(black)}, {len(cat)}",
            "cycle L1 black->cat->black": float((cycle_black - black).abs().mean()),
            "cycle L1 cat->black->cat": float((cycle_cat - cat).abs().mean()),
            "FD real black vs real cat": measures.frechet_distance(black, cat),
            "FD G(black) vs real cat": measures.frechet_distance(fake_cat, cat),
            "FD F(cat) vs real black": measures.frechet_distance(fake_black, black),
            "MMD real black vs real cat": measures.mmd_rbf(black, cat),
            "MMD G(black) vs real cat": measures.mmd_rbf(fake_cat, cat),
            "MMD F(cat) vs real black": measures.mmd_rbf(fake_black, black),
            "domain classifier accuracy (real, 5-fold by model)": separability,
            "share classified cat: real black": share_cat(black),
            "share classified cat: G(black)": share_cat(fake_cat),
            "share classified cat: real cat": share_cat(cat),
            "share classified cat: F(cat)": share_cat(fake_black),
            "cosine(black, G(black))": float(nnf.cosine_similarity(black, fake_cat).mean()),
            "cosine(cat, F(cat))": float(nnf.cosine_similarity(cat, fake_black).mean()),
            "nearest real cat / real cat spacing": float(
                measures.nearest_distance(fake_cat, cat).median() / cat_nn
            ),
            "nearest real black / real black spacing": float(
                measures.nearest_distance(fake_black, black).median() / black_nn
            ),
            "diversity G(black) / real cat": measures.mean_pairwise_distance(fake_cat)
            / measures.mean_pairwise_distance(cat),
            "diversity F(cat) / real black": measures.mean_pairwise_distance(fake_black)
            / measures.mean_pairwise_distance(black),
        }
    return results


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
    return pd.DataFrame(results).map(lambda v: f"{v:.3f}" if isinstance(v, float) else v)


@torch.no_grad()
def convergence(
    cfg: Config, datasets: Datasets, sources: SourceCNNs, gan: KernelGan, device: str = "cpu"
) -> pd.DataFrame:
    """The generated CNN F(cat CNN) along the CycleGAN's run (chapter 04's convergence curve):
    made with the generator F as it was at each of `cyclegan.curve_steps` and at the end of the
    run, and scored by the book's linear probe on the evaluation set, as the metrics stage
    scores every model. One row per step (CURVE_COLUMNS). The CycleGAN's own F throughout:
    with the functional loss (`gan.functional_weight`) the tuned F comes after the last row.
    Empty for the original's published generators (trained elsewhere: no run to follow)."""
    if gan.published or not gan.layer_artifacts:
        return pd.DataFrame(columns=list(CURVE_COLUMNS))
    states: dict[int, dict[str, dict]] = {}  # step -> layer -> F's state
    for layer, part in gan.layer_artifacts.items():
        for step, state in read_snapshots(part.tensors("snapshots")).items():
            states.setdefault(step, {})[layer] = state
        final = copy.deepcopy(gan.layers[layer].nets["F"])
        load_nets({"F": final}, part.tensors("nets"))  # the CycleGAN's F, before any tuning
        states.setdefault(cfg.gan.steps, {})[layer] = final.state_dict()
    labelled, evaluated = evaluation_split(datasets.eval)
    groups = datasets.eval.groups.numpy()
    rows = []
    for step in [*curve_steps(cfg.gan), cfg.gan.steps]:
        layers = {}
        for layer, layer_gan in gan.layers.items():
            net = copy.deepcopy(layer_gan.nets["F"])
            net.load_state_dict(states[step][layer])
            layers[layer] = dataclasses.replace(layer_gan, nets={**layer_gan.nets, "F": net})
        at_step = dataclasses.replace(gan, layers=layers)
        x = features(
            fusion.generated(sources.cat, at_step, "cat->black"), datasets.eval.images, device
        ).numpy()
        probe = measures.linear_probe(
            x[labelled], groups[labelled], x[evaluated], groups[evaluated], cfg.analysis.probe_c
        )
        rows.append({"step": step, "probe F1": probe["f1"], "probe ROC AUC": probe["roc auc"]})
    return pd.DataFrame(rows, columns=list(CURVE_COLUMNS))
