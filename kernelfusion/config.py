"""One typed config for the whole pipeline: dataclasses, named presets, validated overrides.

A chapter's `parameters` cell holds a preset name and a dict of overrides; `load` turns them into
a `Config`, rejecting unknown keys, wrong types and out-of-range values with a message that names
the key and the fix. Parameters are data: nothing here evaluates them.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import typing
from dataclasses import dataclass, field
from typing import Any

# The CNN settings the original's published models need (zoo.source = original): see `_validate`.
ORIGINAL_CNN = {
    "data.image_size": 32,
    "cnn.channels1": 6,
    "cnn.channels2": 16,
    "cnn.padding": 0,
    "cnn.centre_inputs": True,
}
# What counts as an image file in a folder of photographs (data.source = folder, original).
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp"}


class ConfigError(ValueError):
    """A preset name, override key, type or value that the pipeline cannot use."""


@dataclass
class DataConfig:
    """Where the images come from and how many of each kind (seed: 1,745/81 and 29,843/562)."""

    source: str = "synthetic"  # synthetic | folder | oxford_pets | original
    root: str = ""  # data folder (folder, oxford_pets); a clone of the original (original)
    image_size: int = 32
    black_count: int = 600  # black/random set: black images
    black_random_count: int = 120  # black/random set: random images
    cat_count: int = 1200  # cat/random set: cat images
    cat_random_count: int = 240  # cat/random set: random images
    # The evaluation set (synthetic source): images per group that every metric is computed on,
    # and, drawn apart, images per group whose labels the probe and the oracle learn from.
    # 1,000 per group puts the binomial s.e. of a 0.5 rate near 0.016 (a 0.03 difference shows).
    eval_per_group: int = 1000
    labelled_per_group: int = 320  # the label-efficiency curve goes up to this
    black_cats_in_training: bool = False  # let black cats into both training sets, unlabelled
    dark_luminance: float = 0.25  # a pixel is dark below this luminance (0..1)
    dark_fraction: float = 0.5  # an object is black when at least this share of it is dark
    val_fraction: float = 0.15
    test_fraction: float = 0.15
    batch_size: int = 512  # images generated or decoded per batch (bounds memory)
    min_images_per_class: int = 3  # fewer readable images in a class is an error: one per split


@dataclass
class CNNConfig:
    """The seed's CNN (two 5x5 conv layers, ReLU, 2x2 max-pooling, linear head) and its training."""

    channels1: int = 8
    channels2: int = 16
    # 'same' padding keeps every filter's whole 5x5 window on the image at the borders and the
    # feature map at image_size / 4; the original used none (32 -> 28 -> 14 -> 10 -> 5)
    padding: int = 2
    # x -> 2x - 1 before conv1: the original normalised its inputs to [-1, 1] (mean and std
    # 0.5); its published filters and biases only mean what they meant with that input
    centre_inputs: bool = False
    epochs: int = 30
    batch_size: int = 32
    lr: float = 2e-3
    weight_decay: float = 0.0
    imbalance: str = "weighted"  # weighted (class-weighted loss) | balanced (sampler) | none
    init_seed: int = 1000  # with `seed`, picks the shared initialisation of the two source CNNs


@dataclass
class ZooConfig:
    """Many CNNs per domain, trained together, whose filters become the kernel sets."""

    source: str = "trained"  # trained here | original (the published zoo, read from zoo.root)
    root: str = ""  # a clone of the original repository, for source = original
    models: int = 16  # per domain (the black zoo's size when cat_models is set)
    cat_models: int = 0  # the cat zoo's size; 0: zoo.models (the original had 2,749 and 1,749)
    # source = original: the model number each source CNN is read as (the original's notebook
    # made its generated CNN from model 1234)
    source_model: int = 1234
    epochs: int = 6
    snapshots: int = 3  # per model, evenly spaced over the second half of training
    subset_fraction: float = 0.8  # each model trains on its own random subset of the data
    # Both zoos take the same number of steps (the larger set's epochs x batches; the smaller
    # set is passed over more often), so "black vs cat kernels" does not also mean "less vs more
    # trained" (72 vs 150 steps at the default preset otherwise).
    equal_steps: bool = True
    # Kernel sets come only from models whose validation balanced accuracy reaches this (a
    # model that calls everything "random" learned no concept; plain accuracy hid that: the
    # cat zoo's 0.69 was below its majority rate of 0.83). 0: keep every model.
    min_balanced_accuracy: float = 0.6
    kernel_sets: int = 0  # kernel sets kept per layer and domain (0 = all); paper: 4,498
    stack: int = 0  # models trained as one vectorized stack; 0: the device's fastest (training)


@dataclass
class GanConfig:
    """The kernel-space CycleGAN; defaults are the reference's (Zhu et al., 2017)."""

    # trained (a CycleGAN trained here) | original (the original's published generator pair
    # per layer, read from zoo.root: nothing is trained, the settings below but `layers` are
    # not used)
    source: str = "trained"
    sample: str = "filter"  # filter (one filter) | layer (one model's whole layer, the original)
    # mlp (flattened) | conv (over the 5x5 grid) | conv3d (whole layers, the original's) |
    # set (whole layers, permutation-equivariant over a layer's filters)
    arch: str = "mlp"
    # measured (`python -m benchmarks steps default reference 1500 0,1,2 gan.hidden=128`): at
    # 128 the generated CNN's probe F1 is lower on every selection seed (-0.045 on average)
    hidden: int = 256
    depth: int = 3  # layers per network
    # per conv layer. Measured on whole runs of each length at config.TUNING_SEEDS (`python -m
    # benchmarks steps default reference 500,750,1000,1500`; the generated CNN's probe F1 on
    # average over seeds 20-24): 0.711 at 500, 0.714 at 750 (lower than 1,500 on 4 of 5 seeds),
    # 0.733 at 1,000 (-0.006 against 1,500, lower on 2 of 5; ROC AUC -0.0005), 0.739 at 1,500.
    # At 1,000 the whole aligned layers (+0.005) and the conv generator (+0.003) lose nothing
    # either (seeds 20-22); the permutation-equivariant arm does and keeps 1,500 (ablation.ARMS).
    # Earlier, at seeds 0-2: 600 steps 0.07 lower on every seed, 3,000 no higher (-0.004).
    # 1,000 instead of 1,500 takes a third off every CycleGAN, the book's largest cost.
    steps: int = 1000
    decay_steps: int = 500  # learning rate constant, then linearly to 0 over these last steps
    batch_size: int = 64
    lr: float = 2e-4
    beta1: float = 0.5
    beta2: float = 0.999
    cycle_weight: float = 10.0
    identity_weight: float = 0.5  # times cycle_weight
    pool_size: int = 50
    align_layer2: bool = True  # match layer-2 input channels across models (gan.align_by)
    # how layer-1 filters are matched to the reference's (and layer 2's inputs with them):
    # weights (cosine of the filters) | activations (correlation of their responses to
    # unlabelled images, alignment.MATCH_IMAGES of them)
    align_by: str = "weights"
    # whole layers (gan.sample = layer): also put each layer's filters in the reference model's
    # order, so that both axes of a sample mean the same across models
    align_outputs: bool = False
    # the functional loss (behaviour.tune): after the CycleGAN, train both layers' generators
    # on with a term on what the generated CNN does on unlabelled images; 0: off
    functional_weight: float = 0.0
    functional_steps: int = 300  # steps of that phase (about 10 s on one CPU thread at default)
    layers: str = "both"  # the conv layers translated: both | conv1 (layer 2 kept as it is)
    checkpoint_every: int = 500
    log_every: int = 50
    # chapter 04's convergence curve: the generator F is kept at every steps / curve_points
    # steps along the run (the generated CNN is made from each and probed; about a second each)
    curve_points: int = 4
    # runs whose CycleGANs of one layer train as one stacked model in the book's compute phase
    # (`stacked_gans`); 0: the device's choice: 1 on a CPU (on one thread a stack of the book's
    # sizes, 3 to 11 runs, costs 0.8x to 1.0x of as many alone, after a wait for every zoo:
    # README, `python -m benchmarks stack`) and 32 on CUDA (where one such GAN leaves the
    # device idle; not measured here: no GPU was lent)
    stack: int = 0
    # float32 | bfloat16: the CycleGAN's passes in bfloat16 under torch.autocast (weights,
    # optimiser and losses in float32; the trained generators translate in float32). Measured
    # on whole runs at config.TUNING_SEEDS (`python -m benchmarks steps default ARM STEPS SEEDS
    # gan.precision=float32` against the default), gen_f's probe F1 float32 -> bfloat16: the
    # reference 0.717 -> 0.724 (seeds 20-24, lower on 2 of 5; ROC AUC 0.878 -> 0.887), whole
    # aligned layers 0.721 -> 0.707 (20-24, lower on 3 of 5; AUC 0.876 -> 0.867), the
    # permutation-equivariant arm 0.613 -> 0.708 (20-22, higher on all 3): no loss beyond the
    # seeds' spread. One thread of this project's CPU (AVX-512 BF16), one layer's 1,000 steps
    # alone: filters 1.4-1.5x faster, whole layers 2.8x (MLP) and 1.7x (set) (CPU seconds of
    # the stages); a CPU without bfloat16 instructions would rather run float32
    precision: str = "bfloat16"


@dataclass
class FusionConfig:
    """How the rivals of the generated CNN are made."""

    task_scale: float = 1.0  # task arithmetic: init + scale * (sum of the two task vectors)


@dataclass
class AnalysisConfig:
    """Clustering of the evaluation features, and the seeds the results chapter repeats."""

    umap_neighbors: int = 15
    umap_min_dist: float = 0.1
    umap_epochs: int = 200  # umap's own choice above 10,000 points; its 500 below cost 1.5x
    kmeans_clusters: int = 4
    dbscan_eps: float = 0.5
    dbscan_min_samples: int = 5
    hdbscan_min_cluster_size: int = 10
    probe_c: float = 1.0  # inverse regularisation of the linear probe
    # UMAP and clustering run on a fixed random subsample (UMAP's cost grows faster than
    # linearly; 12 models x 5 seeds x 5,000 points would not fit the book's time budget):
    cluster_points: int = 800  # evaluated images in the UMAP and clustering views
    cluster_labelled: int = 400  # labelled images embedded with them, to match clusters on
    # the metrics computed per model: all (probe, UMAP, clusterings, the original protocol) |
    # probe (the linear probe alone, of the generated CNNs and the decisive rivals alone:
    # chapter 08's arms, which are compared on probe F1 and AUC alone; a UMAP and four
    # clusterings cost some 4 s per model, the label-efficiency curve's three more probes 0.9 s)
    views: str = "all"
    seeds: int = 5  # repetitions of the whole pipeline in the results chapter
    # cat zoo models the original protocol is run on one at a time (unchanged, translated,
    # with noise, and a random CNN each): 4 x 4 UMAPs cost about 30 s at the default preset
    protocol_models: int = 4
    # The original protocol (2-means on a label-free UMAP) runs on its own fixed sample of the
    # whole evaluation set (labelled part included: the protocol reads no label but to name
    # the black-cat cluster, as the original did): 0 = every evaluation image (the original
    # preset's 89 photographs); 800 at the default, as the cluster views (a UMAP of all 5,280
    # images per model and seed would add minutes to the book).
    protocol_points: int = 800
    protocol_states: int = 10  # K-means random states per model: the mean, and the best
    # 0: probes learn from the labelled part, score the rest (the seed the unit); k: stratified
    # k-fold, every image scored once a seed (`original`: the photograph the unit)
    folds: int = 0
    ablation_seeds: int = 3  # seeds per arm of chapter 08's ablation (the best arm: `seeds`)
    ablation_arms: str = ""  # comma-separated keys of ablation.ARMS to run; "": all of them
    workers: int = 2  # pipeline runs at once in the results chapter (local processes)
    ray_address: str = ""  # a Ray cluster for those runs ("auto", "ray://host:10001"); "": none


# Seeds reserved for choosing settings (`python -m benchmarks steps`, arms' step counts): no
# chapter reads them, so no setting is confirmed on the seeds that chose it.
TUNING_SEEDS = (20, 21, 22, 23, 24)
# Each default chosen by measuring results, and its seeds (gan.hidden on 0-2, before
# TUNING_SEEDS; gan.steps first there too): the book's seeds start past all (`book_seeds`).
CHOSEN_ON = {"gan.hidden": (0, 1, 2), "gan.steps": (0, 1, 2, *TUNING_SEEDS)}
CHOSEN_ON |= {"gan.precision": TUNING_SEEDS, "ablation.ARMS steps": TUNING_SEEDS}
FIRST_SEED = 30  # the run seed of every preset: past every seed in CHOSEN_ON


@dataclass
class Config:
    """Everything a run depends on; its hash names the run folder."""

    preset: str = "default"
    seed: int = FIRST_SEED  # chapters 01-06's run, the first of chapter 07's and 08's seeds
    device: str = "auto"  # auto | cpu | cuda | cuda:N | mps
    data: DataConfig = field(default_factory=DataConfig)
    cnn: CNNConfig = field(default_factory=CNNConfig)
    zoo: ZooConfig = field(default_factory=ZooConfig)
    gan: GanConfig = field(default_factory=GanConfig)
    fusion: FusionConfig = field(default_factory=FusionConfig)
    analysis: AnalysisConfig = field(default_factory=AnalysisConfig)

    @property
    def hash(self) -> str:
        """Short hash of every value but the preset's name (which is in the folder name)."""
        values = dataclasses.asdict(self)
        values.pop("preset")
        text = json.dumps(values, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:10]

    @property
    def run_name(self) -> str:
        return f"{self.preset}-{self.hash}"

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


PRESETS: dict[str, dict[str, Any]] = {
    # CI: every stage runs for real, on tiny sizes, in seconds.
    "smoke": {
        "data.image_size": 24,
        "data.black_count": 80,
        "data.black_random_count": 24,
        "data.cat_count": 96,
        "data.cat_random_count": 32,
        "data.eval_per_group": 30,
        "data.labelled_per_group": 20,
        "cnn.channels1": 4,
        "cnn.channels2": 8,
        "cnn.epochs": 2,
        "cnn.batch_size": 32,
        "zoo.models": 4,
        "zoo.epochs": 2,
        "zoo.snapshots": 2,
        "zoo.min_balanced_accuracy": 0.0,  # 2 epochs are too few to require a concept
        "gan.hidden": 32,
        "gan.steps": 60,
        "gan.decay_steps": 30,
        "gan.batch_size": 16,
        "gan.checkpoint_every": 20,
        "gan.log_every": 10,
        "gan.functional_steps": 40,
        "analysis.seeds": 3,  # paired intervals need 2 degrees of freedom at least
        "analysis.protocol_models": 2,
        "analysis.ablation_seeds": 2,  # CI: the chapter's machinery, not its power
        # the functional arm reuses the reference's CycleGAN: a new path for little time
        "analysis.ablation_arms": "reference,layer1,functional",
        "analysis.hdbscan_min_cluster_size": 5,
        "analysis.cluster_points": 80,
        "analysis.cluster_labelled": 48,
        "analysis.protocol_points": 80,
        "analysis.protocol_states": 4,
    },
    # The embedded default data; the whole book in minutes on 2 CPU cores.
    "default": {},
    # The seed's scale: 1,745 + 81 black/random and 29,843 + 562 cat/random images, and the
    # original's design: its CNN (6 and 16 channels, no padding, 32x32 images), 2,749 black and
    # 1,749 cat models, one whole layer per model as one sample, a Conv3d translator.
    "paper": {
        "data.image_size": 32,
        "data.black_count": 1745,
        "data.black_random_count": 81,
        "data.cat_count": 29843,
        "data.cat_random_count": 562,
        "data.eval_per_group": 2000,
        "data.labelled_per_group": 320,
        "data.batch_size": 512,
        "cnn.channels1": 6,
        "cnn.channels2": 16,
        "cnn.padding": 0,
        "cnn.centre_inputs": True,
        "cnn.epochs": 20,
        "cnn.batch_size": 64,
        "zoo.models": 2749,
        "zoo.cat_models": 1749,
        "zoo.epochs": 6,
        "zoo.snapshots": 1,  # the original kept each model's final weights
        "gan.steps": 10000,
        "gan.decay_steps": 5000,
        # the original's design: one sample is one zoo model's whole layer, a Conv3d network
        "gan.sample": "layer",
        "gan.arch": "conv3d",
        "gan.hidden": 64,  # the original's Conv3d width (at 256 a step took 28 s on 2 CPU cores)
        "gan.batch_size": 128,
        "analysis.seeds": 10,
        "analysis.protocol_models": 50,
        "analysis.ablation_seeds": 5,
        "analysis.cluster_points": 2000,
        "analysis.cluster_labelled": 800,
        "analysis.protocol_points": 2000,
    },
    # The original's own artifacts, from a clone of its repository (data.root and zoo.root):
    # its published zoo as the zoo and its model 1234 as each source CNN, its 89 test
    # photographs as the evaluation set (half of them labelled for the probe and the oracle),
    # and its own trained generators as the translator (gan.source=trained: a CycleGAN of
    # this book's, trained on the published zoo: the method re-run).
    "original": {
        "data.source": "original",
        "data.val_fraction": 0.25,
        "data.test_fraction": 0.25,
        "cnn.channels1": 6,
        "cnn.channels2": 16,
        "cnn.padding": 0,
        "cnn.centre_inputs": True,
        "zoo.source": "original",
        "zoo.models": 2749,
        "zoo.cat_models": 1749,
        "zoo.snapshots": 1,
        "gan.source": "original",
        "gan.sample": "layer",
        "gan.arch": "conv3d",
        "gan.hidden": 64,  # the original's Conv3d width; about 0.3 s a step on 2 CPU cores
        # the arms that fit: the published generators take no training settings, and a
        # CycleGAN trained here on 4,498 whole layers costs about 15 min a seed on 2 cores
        "analysis.ablation_arms": "reference,layer1",
        "analysis.protocol_models": 50,
        "analysis.protocol_points": 0,  # all 89 photographs, as the original scored them
        "analysis.folds": 5,  # each photograph scored once a seed; probes learn from ~71
        "analysis.kmeans_clusters": 2,  # 44 evaluated photographs: 2 clusters, as the original
        "analysis.hdbscan_min_cluster_size": 5,
        "analysis.dbscan_min_samples": 3,
    },
}

CHOICES: dict[str, tuple[str, ...]] = {
    "data.source": ("synthetic", "folder", "oxford_pets", "original"),
    "zoo.source": ("trained", "original"),
    "gan.source": ("trained", "original"),
    "cnn.imbalance": ("weighted", "balanced", "none"),
    "gan.sample": ("filter", "layer"),
    "gan.arch": ("mlp", "conv", "conv3d", "set"),
    "gan.layers": ("both", "conv1"),
    "analysis.views": ("all", "probe"),
    "gan.align_by": ("weights", "activations"),
    "gan.precision": ("float32", "bfloat16"),
}


def _checks(cfg: Config) -> list[tuple[str, bool, str]]:
    """(key, ok, what a valid value is) for every range constraint."""
    d = cfg.data
    device_ok = cfg.device in ("auto", "cpu", "cuda", "mps") or (
        cfg.device.startswith("cuda:") and cfg.device[5:].isdigit()
    )
    folds = cfg.analysis.folds == 0 or (cfg.analysis.folds >= 2 and d.source == "original")
    return [
        ("device", device_ok, "one of auto, cpu, cuda, cuda:N, mps"),
        ("seed", cfg.seed >= 0, "a non-negative integer"),
        ("data.image_size", 16 <= d.image_size <= 512, "between 16 and 512 pixels"),
        ("data.black_count", d.black_count >= 2, "at least 2"),
        ("data.black_random_count", d.black_random_count >= 2, "at least 2"),
        ("data.cat_count", d.cat_count >= 2, "at least 2"),
        ("data.cat_random_count", d.cat_random_count >= 2, "at least 2"),
        ("data.eval_per_group", d.eval_per_group >= 1, "at least 1"),
        ("data.labelled_per_group", d.labelled_per_group >= 2, "at least 2"),
        ("data.dark_luminance", 0.0 < d.dark_luminance < 1.0, "strictly between 0 and 1"),
        ("data.dark_fraction", 0.0 < d.dark_fraction <= 1.0, "in (0, 1]"),
        ("data.val_fraction", 0.0 < d.val_fraction < 0.5, "in (0, 0.5)"),
        ("data.test_fraction", 0.0 < d.test_fraction < 0.5, "in (0, 0.5)"),
        ("data.batch_size", d.batch_size >= 1, "at least 1"),
        (
            "data.min_images_per_class",
            d.min_images_per_class >= 3,
            "at least 3 (one image each for train, val and test)",
        ),
        ("cnn.channels1", 1 <= cfg.cnn.channels1 <= 512, "between 1 and 512"),
        ("cnn.channels2", 1 <= cfg.cnn.channels2 <= 512, "between 1 and 512"),
        ("cnn.epochs", cfg.cnn.epochs >= 1, "at least 1"),
        ("cnn.batch_size", cfg.cnn.batch_size >= 1, "at least 1"),
        ("cnn.lr", 0 < cfg.cnn.lr < 1, "in (0, 1)"),
        ("cnn.weight_decay", cfg.cnn.weight_decay >= 0, "non-negative"),
        ("cnn.init_seed", cfg.cnn.init_seed >= 0, "a non-negative integer"),
        ("cnn.padding", 0 <= cfg.cnn.padding <= 2, "0, 1 or 2"),
        (
            "data.image_size",
            (d.image_size + 2 * cfg.cnn.padding - 4) // 2 + 2 * cfg.cnn.padding - 4 >= 2,
            "large enough for two 5x5 conv layers and pooling at cnn.padding",
        ),
        ("zoo.models", cfg.zoo.models >= 1, "at least 1"),
        ("zoo.cat_models", cfg.zoo.cat_models >= 0, "0 (as zoo.models) or a positive count"),
        ("zoo.source_model", cfg.zoo.source_model >= 0, "a non-negative model number"),
        (
            "zoo.root",
            cfg.zoo.source == "trained" or bool(cfg.zoo.root),
            "a clone of the original repository when zoo.source is 'original' "
            "(git clone https://github.com/Jain-Karan/mlusingml)",
        ),
        ("zoo.epochs", cfg.zoo.epochs >= 1, "at least 1"),
        ("zoo.snapshots", 1 <= cfg.zoo.snapshots, "at least 1"),
        ("zoo.subset_fraction", 0 < cfg.zoo.subset_fraction <= 1, "in (0, 1]"),
        (
            "zoo.min_balanced_accuracy",
            0 <= cfg.zoo.min_balanced_accuracy < 1,
            "in [0, 1) (0: keep every model)",
        ),
        ("zoo.kernel_sets", cfg.zoo.kernel_sets >= 0, "0 (all) or a positive count"),
        ("zoo.stack", cfg.zoo.stack >= 0, "0 (automatic) or a positive count"),
        (
            "gan.source",
            cfg.gan.source == "trained"
            or (
                cfg.zoo.source == "original"
                and cfg.gan.sample == "layer"
                and cfg.gan.functional_weight == 0
            ),
            "'trained', or 'original' with zoo.source = original (the published generators "
            "live in its clone and translate its CNNs' whole layers: gan.sample = layer) and "
            "gan.functional_weight = 0 (they are read, not trained)",
        ),
        ("gan.hidden", cfg.gan.hidden >= 1, "at least 1"),
        (
            "gan.arch",
            cfg.gan.arch == "mlp"
            or (cfg.gan.arch in ("conv3d", "set")) == (cfg.gan.sample == "layer"),
            "conv3d or set with gan.sample = layer, conv with filter, or mlp with either",
        ),
        ("gan.depth", cfg.gan.depth >= 2, "at least 2"),
        ("gan.steps", cfg.gan.steps >= 1, "at least 1"),
        ("gan.decay_steps", 0 <= cfg.gan.decay_steps <= cfg.gan.steps, "between 0 and gan.steps"),
        ("gan.batch_size", cfg.gan.batch_size >= 1, "at least 1"),
        ("gan.lr", 0 < cfg.gan.lr < 1, "in (0, 1)"),
        ("gan.beta1", 0 <= cfg.gan.beta1 < 1, "in [0, 1)"),
        ("gan.beta2", 0 <= cfg.gan.beta2 < 1, "in [0, 1)"),
        ("gan.cycle_weight", cfg.gan.cycle_weight >= 0, "non-negative"),
        ("gan.identity_weight", cfg.gan.identity_weight >= 0, "non-negative"),
        ("gan.pool_size", cfg.gan.pool_size >= 0, "non-negative"),
        (
            "gan.align_outputs",
            not cfg.gan.align_outputs or (cfg.gan.sample == "layer" and cfg.gan.align_layer2),
            "false, or true with gan.sample = layer and gan.align_layer2 = true (a filter is a "
            "sample of its own: its position in the layer never reaches the CycleGAN)",
        ),
        ("gan.functional_weight", cfg.gan.functional_weight >= 0, "non-negative (0: off)"),
        ("gan.functional_steps", cfg.gan.functional_steps >= 1, "at least 1"),
        ("gan.curve_points", 1 <= cfg.gan.curve_points <= cfg.gan.steps, "between 1 and gan.steps"),
        ("gan.stack", cfg.gan.stack >= 0, "non-negative (0: the device's choice)"),
        ("gan.checkpoint_every", cfg.gan.checkpoint_every >= 1, "at least 1"),
        ("gan.log_every", cfg.gan.log_every >= 1, "at least 1"),
        ("fusion.task_scale", cfg.fusion.task_scale > 0, "positive"),
        ("analysis.umap_neighbors", cfg.analysis.umap_neighbors >= 2, "at least 2"),
        ("analysis.umap_min_dist", 0 <= cfg.analysis.umap_min_dist <= 1, "in [0, 1]"),
        ("analysis.umap_epochs", cfg.analysis.umap_epochs >= 10, "at least 10"),
        ("analysis.kmeans_clusters", cfg.analysis.kmeans_clusters >= 2, "at least 2"),
        ("analysis.dbscan_eps", cfg.analysis.dbscan_eps > 0, "positive"),
        ("analysis.dbscan_min_samples", cfg.analysis.dbscan_min_samples >= 1, "at least 1"),
        (
            "analysis.hdbscan_min_cluster_size",
            cfg.analysis.hdbscan_min_cluster_size >= 2,
            "at least 2",
        ),
        ("analysis.probe_c", cfg.analysis.probe_c > 0, "positive"),
        ("analysis.seeds", 1 <= cfg.analysis.seeds <= 100, "between 1 and 100"),
        ("analysis.folds", folds, "0, or 2 or more with data.source = original (its photographs)"),
        ("analysis.cluster_points", cfg.analysis.cluster_points >= 8, "at least 8"),
        ("analysis.cluster_labelled", cfg.analysis.cluster_labelled >= 4, "at least 4"),
        ("analysis.workers", cfg.analysis.workers >= 1, "at least 1"),
        ("analysis.protocol_models", cfg.analysis.protocol_models >= 1, "at least 1"),
        ("analysis.protocol_points", cfg.analysis.protocol_points >= 0, "0 (all) or more"),
        ("analysis.protocol_states", cfg.analysis.protocol_states >= 1, "at least 1"),
        ("analysis.ablation_seeds", 2 <= cfg.analysis.ablation_seeds <= 100, "2 to 100"),
        (
            "data.root",
            d.source == "synthetic" or bool(d.root),
            f"a data folder when data.source is {d.source!r}",
        ),
    ]


def valid_keys(obj: Any = None, prefix: str = "") -> list[str]:
    """Every dotted key that an override may set."""
    obj = Config() if obj is None else obj
    keys = []
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if dataclasses.is_dataclass(value):
            keys += valid_keys(value, f"{prefix}{f.name}.")
        elif f.name != "preset":
            keys.append(prefix + f.name)
    return keys


def _flatten(overrides: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in overrides.items():
        if not isinstance(key, str):
            raise ConfigError(f"override keys must be strings, got {key!r}")
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[prefix + key] = value
    return flat


def _coerce(key: str, value: Any, annotation: Any) -> Any:
    """Return `value` as the field's type, or raise naming the key and the expected type."""
    expected = {int: "an integer", float: "a number", bool: "true or false", str: "a string"}
    if annotation is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if annotation in expected and type(value) is annotation:
        return value
    raise ConfigError(
        f"override {key!r} must be {expected.get(annotation, annotation)}, "
        f"got {value!r} ({type(value).__name__})"
    )


def _set(cfg: Config, key: str, value: Any) -> None:
    *path, name = key.split(".")
    target = cfg
    for part in path:
        target = getattr(target, part)
    hints = typing.get_type_hints(type(target))
    setattr(target, name, _coerce(key, value, hints[name]))


def load(preset: str = "default", overrides: dict[str, Any] | None = None) -> Config:
    """Return the named preset with `overrides` applied (dotted keys or nested dicts), validated."""
    if not isinstance(preset, str) or preset not in PRESETS:
        raise ConfigError(f"unknown preset {preset!r}: choose one of {', '.join(PRESETS)}")
    if overrides is None:
        overrides = {}
    if not isinstance(overrides, dict):
        raise ConfigError(f"overrides must be a dict, got {type(overrides).__name__}")
    cfg = Config(preset=preset)
    keys = valid_keys()
    for key, value in {**PRESETS[preset], **_flatten(overrides)}.items():
        if key not in keys:
            raise ConfigError(f"unknown override {key!r}; valid keys are: {', '.join(keys)}")
        _set(cfg, key, value)
    _validate(cfg)
    return cfg


def with_overrides(cfg: Config, overrides: dict[str, Any]) -> Config:
    """A copy of `cfg` with `overrides` applied on top (as `load` applies them to a preset),
    validated; the preset's name is kept."""
    new = copy.deepcopy(cfg)
    keys = valid_keys()
    for key, value in _flatten(overrides).items():
        if key not in keys:
            raise ConfigError(f"unknown override {key!r}; valid keys are: {', '.join(keys)}")
        _set(new, key, value)
    _validate(new)
    return new


def _validate(cfg: Config) -> None:
    for key, choices in CHOICES.items():
        section, name = key.split(".")
        value = getattr(getattr(cfg, section), name)
        if value not in choices:
            raise ConfigError(f"override {key!r} is {value!r}: choose one of {', '.join(choices)}")
    for key, ok, what in _checks(cfg):
        if not ok:
            raise ConfigError(f"override {key!r} is out of range: it must be {what}")
    if cfg.zoo.source == "original":
        for key, value in ORIGINAL_CNN.items():
            section, name = key.split(".")
            if getattr(getattr(cfg, section), name) != value:
                fix = ", ".join(f"{k}={v}" for k, v in ORIGINAL_CNN.items())
                raise ConfigError(
                    f"override {key!r} must be {value} with zoo.source = 'original' (the "
                    f"published models' shape): use --preset original, or set {fix}"
                )


def book_seeds(cfg: Config) -> set[int]:
    """Every seed a chapter's verdict or confirmation reads (chapters 07 and 08)."""
    last = cfg.seed + cfg.analysis.ablation_seeds + cfg.analysis.seeds
    return set(range(cfg.seed, last))


def zoo_size(cfg: Config, domain: str) -> int:
    """Models in one domain's zoo."""
    if domain == "cat" and cfg.zoo.cat_models:
        return cfg.zoo.cat_models
    return cfg.zoo.models


def resolve_device(name: str) -> str:
    """Return the torch device for `name`; `auto` picks CUDA when present.

    Asking for a device that is not there is an error, not a silent fallback, so a run meant for
    a GPU never quietly runs on the CPU."""
    import torch

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ConfigError(
                f"device {name!r} was asked for but CUDA is not available on this machine: "
                "use device='auto' or 'cpu' (make book DEVICE=auto)"
            )
        index = int(name[5:]) if ":" in name else 0
        if index >= torch.cuda.device_count():
            raise ConfigError(
                f"device {name!r} does not exist: this machine has "
                f"{torch.cuda.device_count()} CUDA device(s)"
            )
    if name == "mps" and not torch.backends.mps.is_available():
        raise ConfigError("device 'mps' was asked for but is not available: use 'auto' or 'cpu'")
    return name
