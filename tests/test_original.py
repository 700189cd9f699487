"""The original project's artifacts, read from a clone: a tiny one in its layout is made inside
each test (CI has no copy, and nothing is downloaded). Its CNN is written here from the
original's description (conv 3->6 and 6->16, 5x5 without padding, ReLU and 2x2 max-pooling, a
linear layer 400->2, inputs normalised with mean 0.5 and std 0.5, class 0 the concept)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from kernelfusion import (
    cnn,
    config,
    cyclegan,
    data,
    fusion,
    original,
    original_protocol,
    pipeline,
    report,
    store,
)
from kernelfusion import fusion as registry
from kernelfusion import zoo as zoo_module
from kernelfusion.build import book
from kernelfusion.config import ConfigError
from kernelfusion.original import OriginalError


class OriginalCNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 6, 5)
        self.pool = nn.MaxPool2d(2, 2)
        self.conv2 = nn.Conv2d(6, 16, 5)
        self.fc1 = nn.Linear(16 * 5 * 5, 2)

    def forward(self, x):
        x = self.pool(torch.relu(self.conv1(x)))
        x = self.pool(torch.relu(self.conv2(x)))
        return self.fc1(torch.flatten(x, 1))


# The original's test photographs by name (a selection of its file names), and their groups.
PHOTO_NAMES = {
    "1/black_cat ({i}).jpg": "black cat",
    "0/white_cat ({i}).jpg": "other cat",
    "0/black ({i}).jpeg": "black non-cat",
    "0/black_dog ({i}).jpg": "black non-cat",
    "0/random ({i}).jpg": "other image",
    "0/horse0{i}-2.png": "other image",
}


def generator_state(channels: int, hidden: int = 4, seed: int = 0) -> dict[str, torch.Tensor]:
    """A generator file's content in the original's layout (`main` = Conv3d, ReLU, Conv3d,
    tanh; written here from its description), small and random."""
    gen = torch.Generator().manual_seed(seed)
    shapes = {
        "main.0.weight": (hidden, channels, 3, 3, 3),
        "main.0.bias": (hidden,),
        "main.2.weight": (channels, hidden, 3, 3, 3),
        "main.2.bias": (channels,),
    }
    return {k: 0.3 * torch.randn(shape, generator=gen) for k, shape in shapes.items()}


GENERATOR_FILES = {  # its file names, channels: A = black, B = cat
    "generator_A2B.pth": 3,
    "generator_B2A.pth": 3,
    "2_generator_A2B.pth": 6,
    "2_generator_B2A.pth": 6,
}


def make_clone(root, black: int = 6, cat: int = 5, photos: int = 6, source_number: int = 3):
    """A clone in the original's layout: `black` and `cat` model files (numbered from 0, so
    `source_number` exists), `photos` photographs per name pattern above, and the four
    generator files."""
    from PIL import Image

    root.mkdir(parents=True, exist_ok=True)
    for i, (name, channels) in enumerate(GENERATOR_FILES.items()):
        torch.save(generator_state(channels, seed=i), root / name)

    for domain, count in (("black", black), ("cat", cat)):
        folder = root / original.MODEL_FILES[domain][0]
        folder.mkdir(parents=True)
        for k in range(count):
            torch.manual_seed(100 * (domain == "cat") + k)
            state = OriginalCNN().state_dict()
            torch.save(state, folder / f"{original.MODEL_FILES[domain][1]}{k:04}.pth")
    drawn = data.make_synthetic(config.load("smoke", {"data.image_size": 48}), progress=False)
    for p, pattern in enumerate(PHOTO_NAMES):
        for i in range(1, photos + 1):
            path = root / original.PHOTOS / pattern.format(i=i)
            path.parent.mkdir(parents=True, exist_ok=True)
            pixels = drawn["eval"].images[(p * photos + i) % len(drawn["eval"])]
            Image.fromarray(pixels.permute(1, 2, 0).numpy()).save(path)
    return root


def test_converted_model_computes_the_original_function(tmp_path):
    """The converted state in this book's CNN on [0, 1] images gives, for class 1, what the
    original CNN gives for class 0 on its normalised images."""
    make_clone(tmp_path, black=2, cat=1, photos=1)
    state = original.read_model(tmp_path, "black", 1)
    cfg = config.load("original", {"data.root": "x", "zoo.root": "x"})
    ours = cnn.load_state(cfg, state)
    theirs = OriginalCNN()
    theirs.load_state_dict(torch.load(tmp_path / "black_models" / "black_model_0001.pth"))
    x = torch.rand(16, 3, 32, 32)
    expected = torch.softmax(theirs((x - 0.5) / 0.5), 1)[:, 0]
    got = torch.softmax(ours(x), 1)[:, 1]
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-4)
    assert ours.feature_size == 400


def test_reader_reads_the_layout_and_keeps_the_model_numbers(tmp_path):
    make_clone(tmp_path, black=6, cat=5, photos=1)
    stacked, numbers = original.read_zoo(tmp_path, "cat", 4, progress=False)
    assert numbers == [0, 1, 2, 3] and stacked["conv2.weight"].shape == (4, 16, 6, 5, 5)
    with pytest.warns(UserWarning, match="holds 5 cat models, fewer than the 9 asked"):
        _, numbers = original.read_zoo(tmp_path, "cat", 9, progress=False)
    assert numbers == [0, 1, 2, 3, 4]
    with pytest.raises(OriginalError, match="no cat_model_0042.pth .* numbers 0-4"):
        original.read_model(tmp_path, "cat", 42)


@pytest.mark.parametrize(
    "content",
    ["module", "extra key", "wrong shape", "integers", "not torch"],
)
def test_reader_refuses_what_is_not_a_plain_state_dict(tmp_path, content):
    make_clone(tmp_path, black=2, cat=1, photos=1)
    path = tmp_path / "black_models" / "black_model_0000.pth"
    state = OriginalCNN().state_dict()
    if content == "module":  # a pickled object: weights_only=True must refuse to run it
        torch.save(OriginalCNN(), path)
    elif content == "extra key":
        torch.save(state | {"epoch": 3}, path)
    elif content == "wrong shape":
        torch.save(state | {"fc1.weight": torch.zeros(2, 399)}, path)
    elif content == "integers":
        torch.save(state | {"conv1.bias": torch.zeros(6, dtype=torch.long)}, path)
    else:
        path.write_text("these are not weights")
    with pytest.raises(OriginalError, match="black_model_0000.pth"):
        original.read_zoo(tmp_path, "black", 2, progress=False)


def test_photographs_are_grouped_by_folder_and_name():
    names = {
        "1/black_cat (1).webp": "black cat",
        "0/white_cat (1).webp": "other cat",
        "0/black (10).jpeg": "black non-cat",
        "0/black_dog (3).jpg": "black non-cat",
        "0/white_dog (2).jpg": "other image",
        "0/car (1).jpg": "other image",
        "0/horse04-5.png": "other image",
        "0/random (30).jpg": "other image",
    }
    for name, group in names.items():
        assert original.photo_group(Path("GeneratedCNN_test") / name) == group, name


def test_config_refuses_the_published_zoo_with_another_cnn():
    with pytest.raises(ConfigError, match="--preset original"):
        config.load("default", {"zoo.source": "original", "zoo.root": "clone"})
    with pytest.raises(ConfigError, match="git clone https://github.com/Jain-Karan/mlusingml"):
        config.load("original", {"data.root": "clone"})
    paper = config.load("paper")
    assert (paper.cnn.channels1, paper.cnn.channels2, paper.cnn.padding) == (6, 16, 0)
    assert (config.zoo_size(paper, "black"), config.zoo_size(paper, "cat")) == (2749, 1749)
    assert paper.gan.sample == "layer"


def original_generator(state: dict[str, torch.Tensor], layer: torch.Tensor) -> torch.Tensor:
    """What a stored generator gives for one layer (C_out, C_in, 5, 5), computed as the
    original's notebook describes it: the layer permuted to (C_in, C_out, 5, 5), Conv3d,
    ReLU, Conv3d, tanh, permuted back."""
    x = layer.permute(1, 0, 2, 3)
    x = torch.relu(F.conv3d(x, state["main.0.weight"], state["main.0.bias"], padding=1))
    x = torch.tanh(F.conv3d(x, state["main.2.weight"], state["main.2.bias"], padding=1))
    return x.permute(1, 0, 2, 3)


def tiny_original(clone, **more) -> dict:
    """The `original` preset on a tiny clone, at smoke sizes (every photograph scored)."""
    smoke = config.PRESETS["smoke"]
    sizes = {k: v for k, v in smoke.items() if k.split(".")[0] in ("gan", "analysis")}
    for key in ("analysis.protocol_points", "analysis.ablation_arms"):
        del sizes[key]  # the preset's own: every photograph; the arms that fit
    sizes |= {k: smoke[k] for k in ("data.black_count", "data.cat_count", "cnn.epochs")}
    return (
        sizes
        | {
            "data.root": str(clone),
            "zoo.root": str(clone),
            "zoo.models": 6,
            "zoo.cat_models": 5,
            "zoo.source_model": 3,
            "analysis.kmeans_clusters": 2,
            "analysis.protocol_models": 2,
            "analysis.seeds": 2,
        }
        | more
    )


@pytest.mark.parametrize("content", ["module", "extra key", "wrong shape", "integers", "missing"])
def test_generator_files_are_refused_unless_plain_tensors_of_their_shapes(tmp_path, content):
    make_clone(tmp_path, black=6, cat=5, photos=4)
    path = tmp_path / "2_generator_B2A.pth"
    state = generator_state(6)
    if content == "module":  # a pickled object: weights_only=True must refuse to run it
        torch.save(nn.Conv3d(6, 4, 3), path)
    elif content == "extra key":
        torch.save(state | {"epoch": torch.tensor(3.0)}, path)
    elif content == "wrong shape":  # a layer-1 generator where layer 2's belongs
        torch.save(generator_state(3), path)
    elif content == "integers":
        torch.save(state | {"main.2.bias": torch.zeros(6, dtype=torch.long)}, path)
    else:
        path.unlink()
    with pytest.raises(OriginalError, match="2_generator_B2A.pth"):
        original.read_generators(tmp_path)
    cfg = config.load("original", tiny_original(tmp_path))
    runs = store.open(cfg, tmp_path / "runs")
    datasets = data.make_datasets(cfg, runs, progress=False)
    zoo = zoo_module.make_zoo(cfg, runs, datasets, progress=False)
    with pytest.raises(OriginalError, match="2_generator_B2A.pth"):
        cyclegan.make_translator(cfg, runs, datasets, zoo, progress=False)


@pytest.mark.parametrize("layers", ["both", "conv1"])
def test_the_published_generators_make_the_generated_cnns(tmp_path, layers):
    """F(cat CNN) and G(black CNN) are the stored generators applied to the source CNN's own
    layers (no alignment, no normalisation), conv biases zero, as the original made them;
    with gan.layers = conv1, layer 2 is the source's own. Nothing is trained."""
    clone = make_clone(tmp_path / "clone", black=6, cat=5, photos=4)
    cfg = config.load("original", tiny_original(clone, **{"gan.layers": layers}))
    runs = store.open(cfg, tmp_path / "runs")
    datasets = data.make_datasets(cfg, runs, progress=False)
    zoo = zoo_module.make_zoo(cfg, runs, datasets, progress=False)
    gan = cyclegan.make_translator(cfg, runs, datasets, zoo, progress=False)
    assert gan.published and runs.load("cyclegan").json("history") == {}
    sources = cnn.make_sources(cfg, runs, datasets, progress=False)
    for direction, model, files in (
        ("cat->black", sources.cat, ("generator_B2A.pth", "2_generator_B2A.pth")),
        ("black->cat", sources.black, ("generator_A2B.pth", "2_generator_A2B.pth")),
    ):
        made = fusion.generated(model, gan, direction).state_dict()
        for layer, file in zip(("conv1", "conv2"), files, strict=True):
            weight = model.state_dict()[f"{layer}.weight"]
            if layer == "conv2" and layers == "conv1":
                torch.testing.assert_close(made[f"{layer}.weight"], weight)
                continue
            stored = torch.load(clone / file, weights_only=True)
            expected = original_generator(stored, weight)
            torch.testing.assert_close(made[f"{layer}.weight"], expected)
            assert not torch.equal(expected, weight)
            assert (made[f"{layer}.bias"] == 0).all()
    # the switch to the method re-run: a CycleGAN trained here on the published zoo
    trained_cfg = config.with_overrides(
        cfg, {"gan.source": "trained", "gan.steps": 4, "gan.decay_steps": 2}
    )
    trained = cyclegan.make_translator(trained_cfg, runs, datasets, zoo, progress=False)
    assert not trained.published and len(trained.layers["conv1"].history["loss_G_A"]) == 4


def test_config_says_where_the_published_generators_fit():
    for overrides, needs in (
        ({"gan.source": "original"}, "zoo.source = original"),
        ({"gan.functional_weight": 1.0}, "gan.functional_weight = 0"),
        ({"gan.sample": "filter", "gan.arch": "mlp"}, "gan.sample = layer"),
    ):
        preset = "default" if "gan.source" in overrides else "original"
        roots = {} if preset == "default" else {"data.root": "c", "zoo.root": "c"}
        with pytest.raises(ConfigError, match=needs):
            config.load(preset, overrides | roots)
    cfg = config.load("original", {"data.root": "c", "zoo.root": "c"})
    assert cfg.gan.source == "original"


def test_zoo_fingerprint_reads_the_bytes_once_per_state_of_the_clone(tmp_path, monkeypatch):
    clone = make_clone(tmp_path / "clone", black=3, cat=2, photos=1)
    first = original.fingerprint(clone, "black", 3, cache=tmp_path / "runs")
    reads = []
    real = type(clone).read_bytes
    monkeypatch.setattr(type(clone), "read_bytes", lambda p: reads.append(p) or real(p))
    assert original.fingerprint(clone, "black", 3, cache=tmp_path / "runs") == first
    assert reads == []
    path = clone / "black_models" / "black_model_0001.pth"
    torch.save(OriginalCNN().state_dict(), path)  # a changed model: read again, a new key
    assert original.fingerprint(clone, "black", 3, cache=tmp_path / "runs") != first
    assert len(reads) == 3


@pytest.mark.slow
def test_the_book_builds_at_the_original_preset_on_a_clone(tmp_path, monkeypatch):
    """The `original` preset on a tiny clone, with the published generators, through the
    chapters whose code differs for it (the others read only the stages' results, as in the
    smoke book): its photographs (01), its models as the zoo and the source CNNs (02), the
    generated CNN is what the stored generators give (04), the showcase and the spread over
    both zoos score every photograph (07), and the arms that still mean something (08)."""
    clone = make_clone(tmp_path / "clone", black=6, cat=5, photos=6, source_number=3)
    monkeypatch.setenv("KERNELFUSION_RUNS", str(tmp_path / "runs"))
    overrides = tiny_original(clone)
    differing = ("01_datasets", "02_source_cnns", "04_cyclegan", "07_results", "08_what")
    only = ",".join(name[:2] for name in differing)
    result = book.make_book(
        "original", overrides, tmp_path / "book", only=only, log=lambda *a, **k: 0
    )
    assert [name[:2] for name in result.chapter_seconds] == only.split(",")
    page = (result.index_html.parent / "notebooks" / "04_cyclegan.html").read_text()
    assert "published generators" in page and "Nothing is trained here" in page
    # no word of a training that did not happen: settings, loss reading, step counts
    assert "Adam at" not in page and "In a healthy run" not in page
    cfg = config.load("original", overrides)
    runs = store.open(cfg, tmp_path / "runs", build=False)
    # chapter 07's workers made seed 0's run (one thread each): read wherever it was made
    metrics = pipeline.reuse(cfg, tmp_path / "runs").metrics.values
    zoo = runs.load("zoo").json("summary")
    assert zoo["black"]["model numbers"] == list(range(6)) and zoo["cat"]["models"] == 5
    source = original.read_model(clone, "cat", 3)
    torch.testing.assert_close(
        runs.load("sources").tensors("cat_cnn")["conv2.weight"], source["conv2.weight"]
    )
    generated = runs.load("models").tensors(registry.file_name("gen_f"))
    stored = torch.load(clone / "2_generator_B2A.pth", weights_only=True)
    expected = original_generator(stored, source["conv2.weight"])
    torch.testing.assert_close(generated["conv2.weight"], expected)
    photographs = len(PHOTO_NAMES) * 6
    # every photograph scored once in each seed's cross-validation: the folds partition them
    assert sum(metrics["groups"]) == metrics["evaluated images"] == photographs
    assert metrics["folds"] == cfg.analysis.folds
    scored = metrics["per image"]
    assert len(scored["truth"]) == photographs
    assert all(len(v) == photographs for v in scored["probe"].values())
    assert {"gen_f", *registry.DECISIVE} <= set(scored["probe"])
    # chapter 07's verdicts resample those photographs, not the seeds
    runs_by_seed = pipeline.run_seeds(cfg, tmp_path / "runs", progress=False)
    results = report.results(runs_by_seed, cfg)
    primary = results.tables["gen_f"]["probe F1"]
    assert (primary["seeds"] == photographs).all()
    assert results.values["n_photographs"] == photographs
    for name, result_ in metrics["models"].items():
        protocol = result_["original protocol"]
        assert 0 <= protocol["accuracy"] <= 1 and 0 <= protocol["purity"] <= 1, name
    # the showcase and the spread: every photograph, labelled ones too, as the original did
    datasets = data.make_datasets(cfg, runs, progress=False)
    done = pipeline.reuse(cfg, tmp_path / "runs", until="models")
    gan, models = done.gan, done.models
    threads = torch.get_num_threads()
    torch.set_num_threads(pipeline.worker_threads(cfg.analysis.workers))  # as the book made them
    try:
        shown = original_protocol.make_showcase(cfg, runs, datasets, models, progress=False)
        spread = original_protocol.make_spread(cfg, runs, datasets, gan, progress=False)
    finally:
        torch.set_num_threads(threads)
    assert list(shown.index) == list(original_protocol.SHOWCASE)
    assert (shown["lowest"] <= shown["mean over states"]).all()
    assert len(spread) == 2 * cfg.analysis.protocol_models * len(original_protocol.KINDS)
    cats = spread[spread["direction"] == "cat->black"]
    assert set(cats["model"]) <= set(range(5)) and cats["model"].nunique() == 2
    assert (spread["best accuracy"] >= spread["accuracy"]).all()
    share = float((datasets.eval.groups != 0).float().mean())
    assert metrics["protocol images"] == spread.attrs["images"] == photographs
    assert shown.attrs["images"] == photographs
    assert spread.attrs["call nothing"] == pytest.approx(share)
    assert metrics["references"]["call nothing a black cat"] == pytest.approx(share)
    differences = original_protocol.spread_differences(spread)
    assert len(differences) == 2 * len(original_protocol.CONTROLS)
