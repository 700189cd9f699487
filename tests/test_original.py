"""The original project's artifacts, read from a clone: a tiny one in its layout is made inside
each test (CI has no copy, and nothing is downloaded). Its CNN is written here from the
original's description (conv 3->6 and 6->16, 5x5 without padding, ReLU and 2x2 max-pooling, a
linear layer 400->2, inputs normalised with mean 0.5 and std 0.5, class 0 the concept)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from kernelfusion import analysis, cnn, config, cyclegan, data, original, pipeline, store
from kernelfusion import zoo as zoo_module
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


def make_clone(root, black: int = 6, cat: int = 5, photos: int = 6, source_number: int = 3):
    """A clone in the original's layout: `black` and `cat` model files (numbered from 0, so
    `source_number` exists), and `photos` photographs per name pattern above."""
    from PIL import Image

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
    from pathlib import Path

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


@pytest.mark.slow
def test_pipeline_runs_on_a_clone_of_the_original(tmp_path):
    """The whole pipeline on a tiny clone: its models are the zoo and the source CNNs, its
    photographs the evaluation set, and every model gets the original protocol's numbers."""
    clone = make_clone(tmp_path / "clone", black=6, cat=5, photos=6, source_number=3)
    smoke = config.PRESETS["smoke"]
    sizes = {k: v for k, v in smoke.items() if k.split(".")[0] in ("gan", "analysis")}
    del sizes["analysis.protocol_points"]  # the preset's own: every photograph
    sizes |= {k: smoke[k] for k in ("data.black_count", "data.cat_count", "cnn.epochs")}
    overrides = sizes | {
        "data.root": str(clone),
        "zoo.root": str(clone),
        "zoo.models": 6,
        "zoo.cat_models": 5,
        "zoo.source_model": 3,
        "gan.arch": "conv3d",
        "analysis.kmeans_clusters": 2,
        "analysis.protocol_models": 2,
    }
    cfg = config.load("original", overrides)
    runs = store.open(cfg, tmp_path / "runs")
    metrics = pipeline.run(cfg, runs, progress=False).json("metrics")
    zoo = runs.load("zoo").json("summary")
    assert zoo["black"]["model numbers"] == list(range(6)) and zoo["cat"]["models"] == 5
    sources = runs.load("sources")
    torch.testing.assert_close(
        sources.tensors("cat_cnn")["conv2.weight"],
        original.read_model(clone, "cat", 3)["conv2.weight"],
    )
    assert sum(metrics["groups"]) + metrics["labelled images"] == len(PHOTO_NAMES) * 6
    for name, result in metrics["models"].items():
        protocol = result["original protocol"]
        assert 0 <= protocol["accuracy"] <= 1 and 0 <= protocol["purity"] <= 1, name
    # the protocol one source model at a time, on the clone's cat models by their numbers
    datasets = data.prepare(cfg, runs, progress=False)
    gan = cyclegan.train(cfg, zoo_module.train_zoo(cfg, datasets, runs, progress=False), runs)
    spread = analysis.protocol_spread(cfg, datasets, gan, runs, progress=False)
    assert len(spread) == cfg.analysis.protocol_models * len(analysis.SPREAD_KINDS)
    assert set(spread["model"]) <= set(range(5)) and spread["model"].nunique() == 2
    assert (spread["best accuracy"] >= spread["accuracy"]).all()
    # the protocol and its reference score every photograph, labelled ones too, as the
    # original did (it had no labelled part)
    every = datasets.eval.groups
    share = float((every != 0).float().mean())
    assert metrics["protocol images"] == spread.attrs["images"] == len(PHOTO_NAMES) * 6
    assert spread.attrs["call nothing"] == pytest.approx(share)
    assert metrics["references"]["call nothing a black cat"] == pytest.approx(share)
