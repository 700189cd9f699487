"""The three image sets every chapter uses, from any source, cached once as uint8 tensors.

- `black`: black vs random images (label 1 = black), seed: 1,745 + 81;
- `cat`: cat vs random images (label 1 = cat), seed: 29,843 + 562;
- `eval`: four groups with exact ground truth: black cats, other cats, black non-cats, other.

By default black cats are in neither training set (nobody labelled the task); the config switch
`data.black_cats_in_training` lets some in, unlabelled as such, to study leakage. Sources: the
synthetic composites (`kernelfusion.synthetic`), a folder of class folders, or torchvision's
Oxford-IIIT Pet on the user's disk.
"""

from __future__ import annotations

import dataclasses
import logging
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from . import original, synthetic
from .config import IMAGE_SUFFIXES, Config
from .machine import derive_seed, generator
from .progress import bar as progress_bar
from .store import Artifact, StageWriter, Store, display_path

log = logging.getLogger(__name__)

SET_NAMES = ("black", "cat", "eval")
GROUPS = ("black cat", "other cat", "black non-cat", "other image")
SPLITS = ("train", "val", "test")
CLASS_NAMES = {"black": ("random", "black"), "cat": ("random", "cat"), "eval": GROUPS}
FOLDER_LAYOUT = {
    "black": ("random", "black"),
    "cat": ("random", "cat"),
    "eval": ("black_cat", "other_cat", "black_noncat", "other"),
}
GENERATOR_VERSION = 4  # bump when the stage's files change (3: skipped.json; 4: own seeds)

# Oxford-IIIT Pet: the 12 cat breeds are the cats; Bombay is the black cat; the dog breeds whose
# coat is black (Newfoundland, Scottish terrier) are the black non-cats.
OXFORD_CAT_BREEDS = (
    "Abyssinian",
    "Bengal",
    "Birman",
    "Bombay",
    "British Shorthair",
    "Egyptian Mau",
    "Maine Coon",
    "Persian",
    "Ragdoll",
    "Russian Blue",
    "Siamese",
    "Sphynx",
)
OXFORD_BLACK_CAT_BREEDS = ("Bombay",)
OXFORD_BLACK_DOG_BREEDS = ("Newfoundland", "Scottish Terrier")


# What each source is, for the book's prose: where the dark share is measured, and where the
# evaluation groups come from. Keys are `data.source` values.
SOURCES = {
    "synthetic": {
        "label": "synthetic composites",
        "what": (
            "procedural cats (body, head, ears, eyes, legs and tail, in a varied pose and size) "
            "and other shapes (ball, box, triangle, ring), drawn with exact masks and composited "
            "on random crops of the real photographs that ship inside scikit-image under free "
            "licences (astronaut and rocket: public domain; coffee and camera: CC0; "
            "immunohistochemistry: no known restrictions; the brick, grass and gravel textures: "
            "CC0; the grey ones tinted). These are not the original project's photographs: "
            "numbers in this book are comparable with each other, not with the original "
            "write-up's, and a method that works here has passed an easier test than real "
            "photographs set"
        ),
        "where": "the object's mask (eyes excluded)",
        "truth": (
            "exact by construction: the generator records the object and the coat colour it "
            "drew, so every figure below can split the images by colour"
        ),
    },
    "folder": {
        "label": "photographs from a folder",
        "what": (
            "the user's photographs, read from `<root>/<set>/<class>/` folders (JPEG, PNG, WebP "
            "and the other formats Pillow reads; any size, centre-cropped to a square); a "
            "photograph's class is the folder it is in"
        ),
        "where": "the central half of each photograph",
        "truth": (
            "the folder each photograph is in: nobody recorded an object mask or a colour for a "
            "photograph, so the figures below split the images by evaluation group, and the "
            "dark share is a rough check of the folders' labels, not a ground truth"
        ),
    },
    "oxford_pets": {
        "label": "Oxford-IIIT Pet",
        "what": (
            "the photographs of torchvision's Oxford-IIIT Pet (37 breeds of cats and dogs), read "
            "from the user's disk: the 12 cat breeds are the cats, Bombay is the black cat, "
            "Newfoundland and Scottish terrier are the black non-cats, the other dog breeds are "
            "the random images"
        ),
        "where": "the pet's trimap mask",
        "truth": (
            "the breed of each pet, so 'black' means a breed that is black, not a coat anyone "
            "measured; the figures below split the images by evaluation group"
        ),
    },
    "original": {
        "label": "the original project's test photographs",
        "what": (
            "the 89 test photographs the original project published (34 black cats; 10 black "
            "images, 4 black dogs, 5 white cats, 5 white dogs, 3 cars, 2 horses and 26 random "
            "images), read from the user's clone of its repository and grouped by folder and "
            "file name, so 'other cat' is only the 5 white cats; its training photographs were "
            "not published, so the black and cat training sets are the synthetic composites"
        ),
        "where": "the central half of each photograph",
        "truth": (
            "the folder and file name of each photograph; the training sets' figures are of "
            "the drawn composites, the evaluation set's of the photographs"
        ),
    },
}


class DataError(ValueError):
    """A data folder or file the pipeline cannot use; the message says what to fix."""


@dataclass
class ImageSet:
    """Images and their per-image facts, all tensors of the same length N."""

    images: torch.Tensor  # uint8 (N, 3, H, W)
    labels: torch.Tensor  # int64 (N,): class index into CLASS_NAMES[set]
    groups: torch.Tensor  # int64 (N,): index into GROUPS, -1 where unknown
    kinds: torch.Tensor  # int64 (N,): index into synthetic.KINDS, -1 where unknown
    colours: torch.Tensor  # int64 (N,): index into synthetic.COLOUR_NAMES, -1 where unknown
    dark_fraction: torch.Tensor  # float (N,): share of the object's pixels that are dark
    split: torch.Tensor  # int64 (N,): index into SPLITS

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, index: torch.Tensor) -> ImageSet:
        return ImageSet(**{f.name: getattr(self, f.name)[index] for f in dataclasses.fields(self)})

    def part(self, split: str) -> ImageSet:
        """The images of one split (`train`, `val` or `test`)."""
        return self.subset((self.split == SPLITS.index(split)).nonzero().flatten())

    def float_images(self, device: str | torch.device = "cpu") -> torch.Tensor:
        return self.images.to(device).float().div_(255)

    def to_dict(self) -> dict[str, torch.Tensor]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}


@dataclass
class Datasets:
    black: ImageSet
    cat: ImageSet
    eval: ImageSet
    source: str
    artifact: Artifact | None = None

    @property
    def reused(self) -> bool:
        return self.artifact is not None and self.artifact.reused

    @property
    def skipped(self) -> list[str]:
        """Image files the reader could not decode and left out (paths under `data.root`)."""
        return self.artifact.json("skipped") if self.artifact is not None else []

    def __getitem__(self, name: str) -> ImageSet:
        return getattr(self, name)

    def unlabelled(self, gen: torch.Generator) -> torch.Tensor:
        """Images that carry no black-cat label (uint8): both source CNNs' training images, in
        the order `gen` draws (the merges, the functional loss and the alignment by
        activations each use their own named generator)."""
        images = torch.cat([self.black.part("train").images, self.cat.part("train").images])
        return images[torch.randperm(len(images), generator=gen)]


class ReadSets(dict):
    """What a reader returns: the three image sets by name, and the files it skipped."""

    def __init__(self, sets: dict[str, ImageSet], skipped: list[str] = ()):
        super().__init__(sets)
        self.skipped = list(skipped)


# --- splits and counts ------------------------------------------------------------------------


def split_labels(labels: torch.Tensor, val: float, test: float, seed: int) -> torch.Tensor:
    """Deterministic stratified split codes (0 train, 1 val, 2 test) from `seed`."""
    gen = torch.Generator().manual_seed(seed)
    split = torch.zeros(len(labels), dtype=torch.int64)
    for label in labels.unique(sorted=True):
        members = (labels == label).nonzero().flatten()
        members = members[torch.randperm(len(members), generator=gen)]
        n_test = int(round(len(members) * test))
        n_val = int(round(len(members) * val))
        if len(members) >= 3:  # every class in every split when it has three images or more
            n_test, n_val = max(n_test, 1), max(n_val, 1)
        split[members[:n_test]] = 2
        split[members[n_test : n_test + n_val]] = 1
    return split


def counts(datasets: Datasets) -> list[dict]:
    """Rows of (set, class, split, images): what the run actually got."""
    rows = []
    for name in SET_NAMES:
        images = datasets[name]
        for label, class_name in enumerate(CLASS_NAMES[name]):
            for code, split in enumerate(SPLITS):
                n = int(((images.labels == label) & (images.split == code)).sum())
                rows.append({"set": name, "class": class_name, "split": split, "images": n})
    return rows


# --- the synthetic source ---------------------------------------------------------------------


def make_synthetic(cfg: Config, progress: bool = True) -> ReadSets:
    """Draw the three sets from `cfg.seed`, in batches of `data.batch_size` (bounded memory).
    The evaluation set's labelled part has split code 0 (train) and its evaluated part 2
    (test): the probe and the oracle see only the first, every metric only the second."""
    data = cfg.data
    photos = synthetic.load_photos(data.image_size)
    plans = synthetic.recipes(
        data, {name: generator(cfg.seed, "recipe", name) for name in synthetic.RECIPES}
    )
    total = sum(len(p.kinds) for p in plans.values())
    bar = progress_bar(total=total, desc="drawing images", unit="img", progress=progress)
    parts = {}
    for name, plan in plans.items():
        gen = generator(cfg.seed, "draw", name)
        order = torch.randperm(len(plan.kinds), generator=gen)
        kinds, colours = plan.kinds[order], plan.colours[order]
        images, fractions = [], []
        for start in range(0, len(kinds), data.batch_size):
            chunk = slice(start, start + data.batch_size)
            drawn = synthetic.render(kinds[chunk], colours[chunk], photos, data.image_size, gen)
            images.append(drawn["images"])
            fractions.append(
                synthetic.dark_fraction(drawn["images"], drawn["masks"], data.dark_luminance)
            )
            bar.update(len(kinds[chunk]))
        labels = plan.labels[order]
        if name in ("labelled", "evaluated"):
            split = torch.full_like(labels, 0 if name == "labelled" else SPLITS.index("test"))
        else:
            seed = derive_seed(cfg.seed, "split", name)
            split = split_labels(labels, data.val_fraction, data.test_fraction, seed)
        parts[name] = ImageSet(
            images=torch.cat(images),
            labels=labels,
            groups=plan.groups[order],
            kinds=kinds,
            colours=colours,
            dark_fraction=torch.cat(fractions),
            split=split,
        )
    bar.close()
    evaluation = ImageSet(
        **{
            f.name: torch.cat(
                [getattr(parts["labelled"], f.name), getattr(parts["evaluated"], f.name)]
            )
            for f in dataclasses.fields(ImageSet)
        }
    )
    return ReadSets({"black": parts["black"], "cat": parts["cat"], "eval": evaluation})


# --- folders of real images -------------------------------------------------------------------


def decode_image(path: Path, size: int) -> torch.Tensor:
    """Read any image file as uint8 RGB (3, size, size): centre-cropped square, antialiased.

    Grayscale, palette, RGBA (composited on white) and 16-bit images are converted; very large
    images are reduced while decoding. Raises OSError/ValueError on unreadable files.
    """
    with Image.open(path) as image:
        image.draft("RGB", (size * 2, size * 2))  # JPEG: decode at reduced size directly
        image.load()
        if image.mode in ("I;16", "I;16B", "I;16L", "I"):
            array = np.asarray(image, dtype=np.float64)
            top = array.max() if array.max() > 0 else 1.0
            image = Image.fromarray((array / top * 255).astype(np.uint8))
        if image.mode in ("RGBA", "LA", "PA") or (
            image.mode == "P" and "transparency" in image.info
        ):
            rgba = image.convert("RGBA")
            white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
            image = Image.alpha_composite(white, rgba)
        image = ImageOps.fit(image.convert("RGB"), (size, size), Image.Resampling.LANCZOS)
        return torch.from_numpy(np.asarray(image).copy()).permute(2, 0, 1)


def _image_files(folder: Path) -> list[Path]:
    return sorted(
        p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
    )


def decode_files(
    files: list[Path], size: int, desc: str, progress: bool = True, decode=None
) -> tuple[list[torch.Tensor], list[Path]]:
    """Decode each file (`decode`, default `decode_image`); return the images and the files
    that could not be read (empty, truncated, not an image, or a decompression bomb), which
    are left out."""
    ImageFile.LOAD_TRUNCATED_IMAGES = False
    images, skipped = [], []
    for path in progress_bar(files, desc=desc, unit="img", progress=progress):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error", Image.DecompressionBombWarning)
                images.append((decode or decode_image)(path, size))
        except (
            OSError,
            ValueError,
            UnidentifiedImageError,
            Image.DecompressionBombError,
            Image.DecompressionBombWarning,
            SyntaxError,
        ):
            skipped.append(path)
    return images, skipped


def read_class_folder(folder: Path, size: int, min_images: int = 1, progress: bool = True):
    """Decode every image in `folder`; return the images and the files that could not be read
    (empty, truncated, not an image, or a decompression bomb), which are left out (`prepare`
    warns about them, naming them)."""
    if not folder.is_dir():
        raise DataError(f"data folder '{folder}' does not exist: expected {folder}/*.jpg")
    files = _image_files(folder)
    images, skipped = decode_files(files, size, f"decoding {folder.name}", progress)
    if len(images) < min_images:
        raise DataError(
            f"class folder '{folder}' has {len(images)} readable image(s) of {len(files)} "
            f"file(s), at least {min_images} needed (one per split: train, val, test): put more "
            f".jpg/.png/.webp files in {folder}/"
        )
    return torch.stack(images), skipped


def centre_dark_fraction(images: torch.Tensor, threshold: float) -> torch.Tensor:
    """For photos without masks: the dark share of the central half of each image."""
    n, _, h, w = images.shape
    mask = torch.zeros(n, h, w, dtype=torch.uint8)
    mask[:, h // 4 : h - h // 4, w // 4 : w - w // 4] = 255
    return synthetic.dark_fraction(images, mask, threshold)


def read_folder(cfg: Config, progress: bool = True) -> ReadSets:
    """The three sets from `<root>/<set>/<class>/` folders (see FOLDER_LAYOUT); the files that
    could not be read are listed, relative to the root, in the `skipped` attribute of the result."""
    data, root = cfg.data, Path(cfg.data.root)
    if not root.is_dir():
        raise DataError(
            f"data folder '{root}' does not exist: expected "
            + ", ".join(f"{root}/{s}/{c}/" for s, cs in FOLDER_LAYOUT.items() for c in cs)
        )
    sets: dict[str, ImageSet] = {}
    skipped: list[str] = []
    total = 0
    for name in SET_NAMES:
        images, labels = [], []
        for label, class_folder in enumerate(FOLDER_LAYOUT[name]):
            decoded, bad = read_class_folder(
                root / name / class_folder, data.image_size, data.min_images_per_class, progress
            )
            images.append(decoded)
            labels.append(torch.full((len(decoded),), label))
            skipped += [p.relative_to(root).as_posix() for p in bad]
            total += len(decoded) + len(bad)
        images, labels = torch.cat(images), torch.cat(labels)
        unknown = torch.full_like(labels, -1)  # no object kind or colour is known of a photo
        sets[name] = ImageSet(
            images=images,
            labels=labels,
            groups=labels if name == "eval" else unknown,
            kinds=unknown,
            colours=unknown,
            dark_fraction=centre_dark_fraction(images, data.dark_luminance),
            split=split_labels(
                labels, data.val_fraction, data.test_fraction, derive_seed(cfg.seed, "split", name)
            ),
        )
    return ReadSets(sets, skipped)


# --- the original project's test photographs -------------------------------------------------


def read_original(cfg: Config, progress: bool = True) -> ReadSets:
    """The original project's 89 test photographs (a clone of its repository at `data.root`,
    see `kernelfusion.original`) as the evaluation set, read as its notebook read them and in
    its order (`original.read_photo`, `photo_files`), grouped by folder and file name; its
    labelled and evaluated parts split as a folder's are. Its training photographs were not
    published, so the black and cat sets are drawn as the synthetic source draws them (only
    the source CNNs and zoo trained here, and the aligned merge's matching, use them)."""

    files = original.photo_files(cfg.data.root)
    root = Path(cfg.data.root)
    drawn = dataclasses.replace(cfg.data, eval_per_group=1, labelled_per_group=2)
    sets = make_synthetic(dataclasses.replace(cfg, data=drawn), progress)
    # decoded as the original's notebook read them (stretched to a square, alpha dropped)
    images, skipped = decode_files(
        files, cfg.data.image_size, "decoding photos", progress, original.read_photo
    )
    readable = [p for p in files if p not in set(skipped)]
    groups = torch.tensor([GROUPS.index(original.photo_group(p)) for p in readable])
    if not images:
        raise DataError(f"no photograph under '{root / original.PHOTOS}' could be read")
    images = torch.stack(images)
    unknown = torch.full_like(groups, -1)
    evaluation = ImageSet(
        images=images,
        labels=groups,
        groups=groups,
        kinds=unknown,
        colours=unknown,
        dark_fraction=centre_dark_fraction(images, cfg.data.dark_luminance),
        split=split_labels(
            groups,
            cfg.data.val_fraction,
            cfg.data.test_fraction,
            derive_seed(cfg.seed, "split", "eval"),
        ),
    )
    return ReadSets(
        {"black": sets["black"], "cat": sets["cat"], "eval": evaluation},
        [p.relative_to(root).as_posix() for p in skipped],
    )


# --- Oxford-IIIT Pet --------------------------------------------------------------------------


def _breed(path: Path) -> str:
    """The breed of an Oxford-IIIT Pet image from its file name, as torchvision spells it
    (`scottish_terrier_12.jpg` -> "Scottish Terrier"). Not `classes[label]`: that list skips
    breeds absent from a partial copy, and every later breed's index then points one off."""
    return " ".join(part.title() for part in path.stem.rsplit("_", 1)[0].split("_"))


def read_oxford_pets(cfg: Config, progress: bool = True) -> ReadSets:
    """The three sets from torchvision's Oxford-IIIT Pet under `data.root` (never downloaded).

    Cats: the 12 cat breeds; black cats: Bombay; black non-cats: Newfoundland and Scottish
    terrier; random: the other dog breeds. The colour statistic is taken on each pet's trimap.
    """
    from torchvision.datasets import OxfordIIITPet

    data = cfg.data
    parts = []
    for split in ("trainval", "test"):
        try:
            parts.append(
                OxfordIIITPet(
                    data.root,
                    split=split,
                    target_types=("category", "segmentation"),
                    download=False,
                )
            )
        except RuntimeError as error:
            raise DataError(
                f"Oxford-IIIT Pet not found under '{data.root}' ({error}): put the extracted "
                f"'oxford-iiit-pet/images' and 'oxford-iiit-pet/annotations' folders there, or "
                f"run torchvision.datasets.OxfordIIITPet('{data.root}', download=True) once on a "
                f"machine with internet"
            ) from None
    images, breeds, masks, skipped = [], [], [], []
    for part in parts:
        for index in progress_bar(range(len(part)), desc="decoding pets", progress=progress):
            path = Path(part._images[index])
            try:
                image = decode_image(path, data.image_size)
                with Image.open(part._segs[index]) as trimap:
                    trimap = ImageOps.fit(trimap, (data.image_size,) * 2, Image.Resampling.NEAREST)
                    masks.append(torch.from_numpy((np.asarray(trimap) == 1).astype(np.uint8) * 255))
            except (OSError, ValueError, UnidentifiedImageError, SyntaxError):
                skipped.append(path)
                continue
            images.append(image)
            breeds.append(_breed(path))
    skipped = [p.name for p in skipped]
    if not images:
        raise DataError(f"no readable Oxford-IIIT Pet images under '{data.root}'")
    images, masks = torch.stack(images), torch.stack(masks)
    is_cat = torch.tensor([b in OXFORD_CAT_BREEDS for b in breeds])
    black_cat = torch.tensor([b in OXFORD_BLACK_CAT_BREEDS for b in breeds])
    black_dog = torch.tensor([b in OXFORD_BLACK_DOG_BREEDS for b in breeds])
    groups = torch.full((len(breeds),), 3)
    groups[black_dog], groups[is_cat & ~black_cat], groups[black_cat] = 2, 1, 0
    fraction = synthetic.dark_fraction(images, masks, data.dark_luminance)
    # Each image goes to one set only: a third of every group is held out for evaluation.
    held_out = torch.rand(len(groups), generator=generator(cfg.seed, "oxford held-out")) < 1 / 3
    # Black cats are evaluated only, unless leakage is switched on: then the ones not held out
    # join both training sets, labelled black in one and cat in the other, as in `recipes`.
    leak = black_cat & cfg.data.black_cats_in_training
    train_black = ~held_out & (black_dog | (groups == 3) | leak)
    train_cat = ~held_out & ((groups == 1) | (groups == 3) | leak)
    sets = {}
    for name, member, label in (
        ("black", train_black, (black_dog | black_cat).long()),
        ("cat", train_cat, is_cat.long()),
        ("eval", held_out, groups),
    ):
        index = member.nonzero().flatten()
        kinds = torch.where(is_cat, synthetic.CAT, -1)[index]
        sets[name] = ImageSet(
            images=images[index],
            labels=label[index],
            groups=groups[index],
            kinds=kinds,
            colours=torch.full((len(index),), -1),
            dark_fraction=fraction[index],
            split=split_labels(
                label[index],
                data.val_fraction,
                data.test_fraction,
                derive_seed(cfg.seed, "split", name),
            ),
        )
    return ReadSets(sets, skipped)


# --- preparation, cached ----------------------------------------------------------------------


def _skipped_note(skipped: list[str]) -> str:
    if not skipped:
        return ""
    more = " ..." if len(skipped) > 8 else ""
    return f" ({len(skipped)} unreadable file(s) were left out: {', '.join(skipped[:8])}{more})"


def check_sizes(sets: dict[str, ImageSet], cfg: Config) -> None:
    """Refuse, before any training, a data set too small for the pipeline: every class of every
    set needs an image in each split (train, val, test), which `split_labels` guarantees from 3
    images on, and the evaluated part (val + test) of the evaluation set needs at least
    `analysis.kmeans_clusters` images. The message lists every class that falls short."""
    short = []
    for name in SET_NAMES:
        images = sets[name]
        for label, class_name in enumerate(CLASS_NAMES[name]):
            n = [int(((images.labels == label) & (images.split == c)).sum()) for c in range(3)]
            if name == "eval":  # labelled (train) and evaluated (val + test) parts
                n = [n[0], n[1] + n[2]]
            if min(n) == 0:
                short.append(f"{name}/{FOLDER_LAYOUT[name][label]} ({class_name}): {sum(n)}")
    if short:
        raise DataError(
            f"too few images for preset {cfg.preset!r}: each class needs at least 3 readable "
            f"images (one each for train, val and test; more for any useful measurement), and "
            f"these have fewer: {'; '.join(short)}. Add images to those classes."
            + _skipped_note(getattr(sets, "skipped", []))
        )
    evaluated = int((sets["eval"].split != 0).sum())
    if evaluated < cfg.analysis.kmeans_clusters:
        raise DataError(
            f"the evaluation set's val + test splits hold {evaluated} images, fewer than the "
            f"{cfg.analysis.kmeans_clusters} clusters K-means is asked for "
            f"(analysis.kmeans_clusters): add evaluation images or lower that value"
        )


def _build(cfg: Config, progress: bool):
    def build(writer: StageWriter) -> None:
        reader = {
            "synthetic": make_synthetic,
            "folder": read_folder,
            "oxford_pets": read_oxford_pets,
            "original": read_original,
        }[cfg.data.source]
        sets = reader(cfg, progress=progress)
        check_sizes(sets, cfg)
        for name, images in sets.items():
            writer.save_tensors(name, images.to_dict())
        writer.save_json("counts", counts(Datasets(**sets, source=cfg.data.source)))
        writer.save_json("skipped", sets.skipped)

    return build


def _data_key(cfg: Config) -> dict:
    key = dataclasses.asdict(cfg.data)
    if cfg.data.source != "synthetic":
        key.pop("batch_size")  # decoding does not depend on it; drawing does
    extra = {"photos": "as the original read them"} if cfg.data.source == "original" else {}
    return {"data": key, "seed": cfg.seed, "generator": GENERATOR_VERSION} | extra


def make_datasets(
    cfg: Config, store: Store, *, progress: bool = True, force: bool = False
) -> Datasets:
    """The three sets for `cfg`: decoded or drawn once, then loaded from the cached tensors."""
    artifact = store.stage("data", _data_key(cfg), _build(cfg, progress), force=force)
    sets = {name: ImageSet(**artifact.tensors(name)) for name in SET_NAMES}
    datasets = Datasets(**sets, source=cfg.data.source, artifact=artifact)
    if datasets.skipped:  # warned on every call, not only when the files are first read
        warnings.warn(
            f"{len(datasets.skipped)} image file(s) under data.root could not be read and are "
            f"left out of every set: {', '.join(datasets.skipped[:8])}"
            f"{' ...' if len(datasets.skipped) > 8 else ''} "
            f"(all listed in {display_path(artifact.path('skipped.json'))})",
            stacklevel=2,
        )
    return datasets


def mean_luminance(images: torch.Tensor) -> torch.Tensor:
    """Mean relative luminance (0..1) of each uint8 image."""
    return synthetic.luminance(images.float() / 255).mean((1, 2))
