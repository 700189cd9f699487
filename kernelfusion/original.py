"""The original project's published artifacts, read from a user's clone of its repository.

The original (GitHub `Jain-Karan/mlusingml`, no licence: nothing of it ships with this book, and
nothing is downloaded at run time) published, besides its notebooks:

    <root>/black_models/black_model_NNNN.pth   2,749 CNNs, black vs random
    <root>/cat_models/cat_model_NNNN.pth       1,749 CNNs, cat vs random
    <root>/GeneratedCNN_test/1/*               34 photographs of black cats
    <root>/GeneratedCNN_test/0/*               55 others, named by what they show
    <root>/generator_A2B.pth, generator_B2A.pth     its CycleGAN generators for conv layer 1
    <root>/2_generator_A2B.pth, 2_generator_B2A.pth  ... and for conv layer 2 (A black, B cat)

Each `.pth` is the state dict of its CNN: conv 3->6 and 6->16 (5x5, no padding), ReLU and 2x2
max-pooling after each, one linear layer 400->2 (`fc1`), on 32x32 images normalised to [-1, 1]
(mean 0.5, std 0.5 per channel). Its class 0 is the concept (torchvision's `ImageFolder` sorts
the folder names, and its notebooks name the classes ('black', 'random') and ('cat', 'random')).

`read_model` turns one into this book's `SmallCNN` (`cnn.padding = 0`, `cnn.centre_inputs`,
channels 6 and 16, image size 32) that computes the same function on [0, 1] images with class 1
the concept: the weights as published (the CNN maps its input to [-1, 1] itself), the head
`fc1` with its two rows swapped. The normalisation is not folded into conv1 (as 2 W1 and
b1 - sum W1): that ties each bias to its filter's sum, and a translated filter with another
sum then shifts every activation (the generated CNN's features were all zero on the photos).

Each generator is a small 3-D conv net over one whole layer: the layer's weights (C_out, C_in,
5, 5) permuted to (C_in, C_out, 5, 5) are read as C_in channels over a C_out x 5 x 5 volume;
a 3x3x3 conv (padding 1) to H channels, ReLU, a 3x3x3 conv back to C_in channels, tanh; the
output permuted back is the translated layer, with no normalisation on either side. (H = 64
in the published files; it is read from them.) Its generated CNN used the translated weights
with every conv bias set to zero (`GeneratedCNN` in its generatedCNN.ipynb).

Files are read with `torch.load(weights_only=True)` only, and anything that is not a dict of
exactly the expected float tensors is refused, naming the file.
"""

from __future__ import annotations

import hashlib
import json
import re
import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn

from .config import IMAGE_SUFFIXES, zoo_size
from .progress import bar as progress_bar
from .store import atomic_write_bytes

REPOSITORY = "https://github.com/Jain-Karan/mlusingml"
# Models per domain in the published repository, and the one its notebook made its generated CNN
# from (`model = 1234` in generatedCNN.ipynb).
PUBLISHED_MODELS = {"black": 2749, "cat": 1749}
NOTEBOOK_MODEL = 1234
MODEL_FILES = {"black": ("black_models", "black_model_"), "cat": ("cat_models", "cat_model_")}
SHAPES = {
    "conv1.weight": (6, 3, 5, 5),
    "conv1.bias": (6,),
    "conv2.weight": (16, 6, 5, 5),
    "conv2.bias": (16,),
    "fc1.weight": (2, 400),
    "fc1.bias": (2,),
}
PHOTOS = "GeneratedCNN_test"
# Its generator files per conv layer and direction (A = black, B = cat): G translates black
# kernels to cat kernels, F cat to black, as this book's CycleGAN names them.
GENERATOR_FILES = {
    "conv1": {"G": "generator_A2B.pth", "F": "generator_B2A.pth"},
    "conv2": {"G": "2_generator_A2B.pth", "F": "2_generator_B2A.pth"},
}
GENERATOR_CHANNELS = {"conv1": 3, "conv2": 6}  # a layer's C_in: the generator's channels
# The protocol as its notebook ran it on model 1234: UMAP(random_state=47) on the 89
# photographs' features, then KMeans(n_clusters=2, random_state=1).
PROTOCOL_STATES = {"umap": 47, "kmeans": 1}


class OriginalError(ValueError):
    """A clone of the original repository that cannot be read; the message names the fix."""


def _model_folder(root: Path, domain: str) -> Path:
    folder = root / MODEL_FILES[domain][0]
    if not folder.is_dir():
        raise OriginalError(
            f"'{folder}' does not exist: zoo.root must be a clone of the original repository "
            f"(git clone {REPOSITORY}), which holds {MODEL_FILES[domain][0]}/"
            f"{MODEL_FILES[domain][1]}NNNN.pth"
        )
    return folder


def model_files(root: str | Path, domain: str) -> dict[int, Path]:
    """The clone's model files of one domain, by model number."""
    folder = _model_folder(Path(root), domain)
    pattern = re.compile(re.escape(MODEL_FILES[domain][1]) + r"(\d+)\.pth$")
    found = {}
    for path in folder.iterdir():
        match = pattern.match(path.name)
        if match:
            found[int(match.group(1))] = path
    if not found:
        raise OriginalError(
            f"'{folder}' holds no {MODEL_FILES[domain][1]}NNNN.pth file: is it a complete clone "
            f"of {REPOSITORY}?"
        )
    return dict(sorted(found.items()))


def _plain_tensors(path: Path, keys, what: str) -> dict[str, torch.Tensor]:
    """The dict of tensors in `path`, read with `weights_only=True` (nothing pickled runs),
    holding exactly `keys`; refused otherwise, naming the file and `what` it should be."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # pickle, zip and torch each raise their own kind
        raise OriginalError(
            f"'{path}' is not a plain state dict of tensors and is not loaded "
            f"(torch.load with weights_only=True refused it: {type(error).__name__})"
        ) from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise OriginalError(f"'{path}' is not a dict of tensors: not {what}")
    if set(state) != set(keys):
        raise OriginalError(f"'{path}' has keys {sorted(state)}, {what} has {sorted(keys)}")
    return state


def _check_values(path: Path, state: dict, shapes: dict, what: str) -> None:
    """Every tensor of `state` a finite float of its shape in `shapes`; refused otherwise."""
    for name, shape in shapes.items():
        value = state[name]
        if tuple(value.shape) != shape or not value.is_floating_point():
            raise OriginalError(
                f"'{path}': {name} is {value.dtype} {tuple(value.shape)}, {what} needs "
                f"float {shape}"
            )
        if not torch.isfinite(value).all():
            raise OriginalError(f"'{path}': {name} holds NaN or infinite values")


def load_state(path: Path) -> dict[str, torch.Tensor]:
    """One published state dict, checked: plain tensors only (`weights_only=True`), exactly the
    original CNN's keys and shapes, finite floats."""
    state = _plain_tensors(path, SHAPES, "the original CNN")
    _check_values(path, state, SHAPES, "the original CNN")
    return {name: state[name].float() for name in SHAPES}


def convert(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The original CNN's state dict as this book's `SmallCNN` state (see the module's notes):
    the weights as published, the head's rows swapped so class 1 is the concept."""
    return {
        "conv1.weight": state["conv1.weight"].clone(),
        "conv1.bias": state["conv1.bias"].clone(),
        "conv2.weight": state["conv2.weight"].clone(),
        "conv2.bias": state["conv2.bias"].clone(),
        "head.weight": state["fc1.weight"][[1, 0]].clone(),
        "head.bias": state["fc1.bias"][[1, 0]].clone(),
    }


def read_model(root: str | Path, domain: str, number: int) -> dict[str, torch.Tensor]:
    """Model `number` of one domain, converted to a `SmallCNN` state."""
    files = model_files(root, domain)
    if number not in files:
        raise OriginalError(
            f"there is no {MODEL_FILES[domain][1]}{number:04}.pth in "
            f"'{_model_folder(Path(root), domain)}' "
            f"(it holds numbers {min(files)}-{max(files)}): set zoo.source_model to one of them"
        )
    return convert(load_state(files[number]))


def read_zoo(
    root: str | Path, domain: str, count: int, progress: bool = True
) -> tuple[dict[str, torch.Tensor], list[int]]:
    """The first `count` models of one domain (by number), converted and stacked: each tensor
    (K, ...); and their numbers. Fewer models than asked: a warning, and all are read."""
    files = model_files(root, domain)
    numbers = list(files)[:count]
    if len(numbers) < count:
        warnings.warn(
            f"the clone holds {len(files)} {domain} models, fewer than the {count} asked for: "
            f"reading {len(files)} (the published repository has {PUBLISHED_MODELS[domain]})",
            stacklevel=2,
        )
    states = [
        convert(load_state(files[n]))
        for n in progress_bar(
            numbers, desc=f"reading {domain} models", unit="model", progress=progress
        )
    ]
    stacked = {name: torch.stack([s[name] for s in states]) for name in states[0]}
    return stacked, numbers


def _listing_key(files: list[tuple[int, Path]]) -> str:
    """A hash of what the file system says of `files` (name, size, modification time), read
    without opening them: a change of any of these is taken for a change of content."""
    digest = hashlib.sha256()
    for number, path in files:
        stat = path.stat()
        digest.update(f"{number}:{path.resolve()}:{stat.st_size}:{stat.st_mtime_ns};".encode())
    return digest.hexdigest()


def fingerprint(root: str | Path, domain: str, count: int, cache: Path | None = None) -> str:
    """A hash of the bytes of the models `read_zoo` would read: the cache key of a zoo read
    from a clone, so an edited or different clone is never mistaken for a cached one.

    Reading every published model's bytes (about 78 MB for 4,498 files) each time a chapter
    and seed asks for the zoo cost more than the rest of that stage's lookup: with a `cache`
    folder (the runs folder), the hash is kept there under the files' listing key (names,
    sizes, modification times), so the bytes are read once per state of the clone."""
    files = list(model_files(root, domain).items())[:count]
    memo = None
    if cache is not None:
        memo = Path(cache) / "original-fingerprints.json"
        listing = _listing_key(files)
        try:
            known = json.loads(memo.read_text())
        except (OSError, ValueError):
            known = {}
        if listing in known:
            return known[listing]
    digest = hashlib.sha256()
    for number, path in files:
        digest.update(f"{number}:".encode())
        digest.update(path.read_bytes())
    value = digest.hexdigest()[:20]
    if memo is not None:
        try:
            memo.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_bytes(memo, json.dumps(known | {listing: value}).encode())
        except OSError:  # a read-only runs folder only costs the re-read next time
            pass
    return value


def fingerprint_model(root: str | Path, domain: str, number: int) -> str:
    """A hash of one model file's bytes (the cache key of a source CNN read from a clone)."""
    files = model_files(root, domain)
    if number not in files:
        read_model(root, domain, number)  # raises, naming the numbers there are
    return hashlib.sha256(files[number].read_bytes()).hexdigest()[:20]


# --- its trained generators ------------------------------------------------------------------


def generator_network(channels: int, hidden: int) -> nn.Sequential:
    """The published generators' architecture (see the module's notes), weights unset."""
    return nn.Sequential(
        nn.Conv3d(channels, hidden, 3, padding=1),
        nn.ReLU(),
        nn.Conv3d(hidden, channels, 3, padding=1),
        nn.Tanh(),
    )


# its state-dict keys -> (position in `generator_network`, parameter)
GENERATOR_KEYS = {
    "main.0.weight": "0.weight",
    "main.0.bias": "0.bias",
    "main.2.weight": "2.weight",
    "main.2.bias": "2.bias",
}


def generator_shapes(channels: int, hidden: int) -> dict[str, tuple[int, ...]]:
    return {
        "main.0.weight": (hidden, channels, 3, 3, 3),
        "main.0.bias": (hidden,),
        "main.2.weight": (channels, hidden, 3, 3, 3),
        "main.2.bias": (channels,),
    }


def load_generator(path: Path, channels: int) -> nn.Sequential:
    """One published generator, checked: a plain dict of finite float tensors
    (`weights_only=True`) with exactly its four keys, shaped for a layer of `channels` input
    channels (the hidden width read from the file); refused otherwise, naming the file."""
    path = Path(path)
    if not path.is_file():
        raise OriginalError(
            f"'{path}' does not exist: zoo.root must be a clone of the original repository "
            f"(git clone {REPOSITORY}), which holds its generators "
            f"({', '.join(f for pair in GENERATOR_FILES.values() for f in pair.values())}); "
            "or set gan.source=trained to train a CycleGAN here"
        )
    what = f"a generator for a layer of {channels} input channels"
    state = _plain_tensors(path, GENERATOR_KEYS, what)
    first = state["main.0.weight"]
    hidden = int(first.shape[0]) if first.dim() == 5 else -1
    _check_values(path, state, generator_shapes(channels, hidden), what)
    net = generator_network(channels, hidden)
    net.load_state_dict({GENERATOR_KEYS[k]: v.float() for k, v in state.items()})
    return net.eval()


def read_generators(root: str | Path) -> dict[str, dict[str, nn.Sequential]]:
    """Every published generator, checked: layer -> {"G": black->cat, "F": cat->black}."""
    return {
        layer: {
            name: load_generator(Path(root) / file, GENERATOR_CHANNELS[layer])
            for name, file in files.items()
        }
        for layer, files in GENERATOR_FILES.items()
    }


def generator_fingerprint(root: str | Path) -> str:
    """A hash of the four generator files' bytes (170 kB): the translator's cache key."""
    digest = hashlib.sha256()
    for files in GENERATOR_FILES.values():
        for file in files.values():
            path = Path(root) / file
            if not path.is_file():
                load_generator(path, 1)  # raises, naming the file and the fix
            digest.update(f"{file}:".encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:20]


def translate_layer(net: nn.Module, weight: torch.Tensor) -> torch.Tensor:
    """One conv layer's weights (C_out, C_in, 5, 5), or a batch of them (N, C_out, C_in, 5, 5),
    through a published generator as the original applied it: permuted to (C_in, C_out, 5, 5),
    translated, permuted back; raw weights in and out."""
    return net(weight.transpose(-4, -3)).transpose(-4, -3)


# --- its test photographs ---------------------------------------------------------------------


def photo_group(path: Path) -> str:
    """The evaluation group of one of the original's test photographs: folder `1` holds black
    cats; in folder `0` the file name says what a photo shows (`black (3).jpeg`,
    `black_dog (1).jpg`, `white_cat (2).jpg`, `car (1).jpg`, `horse01-2.png`, `random (5).jpg`):
    a name with 'cat' is another cat, one starting with 'black' a black non-cat, the rest other
    images."""
    if path.parent.name == "1":
        return "black cat"
    prefix = re.match(r"[A-Za-z_]*", path.stem).group(0).strip("_").lower()
    if "cat" in prefix.split("_"):
        return "other cat"
    if prefix.startswith("black"):
        return "black non-cat"
    return "other image"


def read_photo(path: Path, size: int) -> torch.Tensor:
    """One photograph as the original's notebook read it: converted to RGB (an alpha channel
    dropped, not composited), resized to size x size without cropping (bilinear, as
    torchvision's `Resize` on an image), as uint8 (3, size, size)."""
    with Image.open(path) as image:
        image = image.convert("RGB").resize((size, size), Image.Resampling.BILINEAR)
        return torch.from_numpy(np.asarray(image).copy()).permute(2, 0, 1)


def photo_files(root: str | Path) -> list[Path]:
    folder = Path(root) / PHOTOS
    if not (folder / "0").is_dir() or not (folder / "1").is_dir():
        raise OriginalError(
            f"'{folder}' with sub-folders 0/ and 1/ does not exist: data.root must be a clone "
            f"of the original repository (git clone {REPOSITORY})"
        )
    # in the order torchvision's ImageFolder gives them: folder, then file name
    return sorted(
        (p for p in folder.glob("[01]/*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES),
        key=lambda p: (p.parent.name, p.name),
    )


# --- what the chapters say about it -----------------------------------------------------------


def provenance(cfg, stage: str) -> str:
    """A note for the chapter of `stage` ("sources" or "zoo") when it was read from the
    original's published models rather than trained here; "" otherwise."""
    if cfg.zoo.source != "original":
        return ""
    if stage == "sources":
        return (
            f"**Read, not trained.** With `zoo.source = original` the two source CNNs are model "
            f"{cfg.zoo.source_model} of the original's published black and cat zoos, as its "
            "notebook chose them: trained on its own photographs, each from its own "
            "initialisation (not a shared one), so there is no training history here, and the "
            "test split below is this book's drawn images, which those CNNs never saw."
        )
    return (
        f"**Read, not trained.** With `zoo.source = original` the zoo is the original's first "
        f"{zoo_size(cfg, 'black')} black and {zoo_size(cfg, 'cat')} cat published models (at "
        "most as many as the clone holds), one snapshot each (the final weights it published); "
        "their accuracy is measured on this book's drawn validation images."
    )


# The original write-up's own figures (Patel and Jain, CS 271; its repository's notebooks):
# cited, not measured here.
CLAIM = {"accuracy": 0.88, "photographs": 89, "black cats": 34}
