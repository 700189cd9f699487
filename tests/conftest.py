"""Shared fixtures; and a guard so that a run which collected no test fails instead of passing."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

# umap's compiled numba code, cached once for every test's runs folder and every chapter's kernel
# (each test has its own runs folder, where the package would otherwise keep the cache)
os.environ.setdefault("NUMBA_CACHE_DIR", str(Path(tempfile.gettempdir()) / "kernelfusion-numba"))


def pytest_collection_modifyitems(session, config, items):
    """The shared smoke book's tests first (the order is otherwise kept): its `make book`'s workers
    compile umap's numba code into the cache every later test reads, where a test that ran a
    UMAP first would compile it alone, one core idle. Measured when a process of its own
    compiled it beside the book's first chapters (a fresh numba cache, `pytest` alone, yardstick
    `python -m benchmarks machine` before / after): 463.6 s at 106.0 / 157.6 and 88.7 / 136.6 in
    file order; 391.4 s in this one at 125.9 / 140.8 and 92.3 / 131.5. What the order itself
    saves is about 13 s of that (the smoke book 57 -> 71 s, the test that ran the first UMAP 27
    s -> under 1 s); the rest is the hour."""
    items.sort(key=lambda item: item.path.name != "test_build.py")


def pytest_sessionfinish(session, exitstatus):
    if session.testscollected == 0:
        session.exitstatus = 1


@pytest.fixture
def runs_dir(tmp_path, monkeypatch):
    """An isolated runs folder, also seen by any papermill kernel started from the test."""
    folder = tmp_path / "runs"
    monkeypatch.setenv("KERNELFUSION_RUNS", str(folder))
    return folder


def _save_photo(image, path, index: int, jpeg: bool = False) -> None:
    """Save one (3, H, W) uint8 image as a photograph file would come: JPEG, PNG or WebP by
    turn (JPEG only with `jpeg`), at an odd size, a few as grayscale, RGBA or CMYK."""
    from PIL import Image

    photo = Image.fromarray(image.permute(1, 2, 0).numpy())
    photo = photo.resize((64 + 13 * (index % 5), 64 + 7 * (index % 3)))
    kind = index % 7
    if kind == 3:
        photo = photo.convert("L")
    elif kind == 5:
        photo = photo.convert("RGBA")
    elif kind == 6:
        photo = photo.convert("CMYK")
    suffix = ("jpg", "png", "webp")[index % 3] if kind != 6 else "jpg"
    if kind == 5:
        suffix = "png"
    if jpeg:
        photo, suffix = photo.convert("RGB"), "jpg"
    path.parent.mkdir(parents=True, exist_ok=True)
    photo.save(path.with_suffix(f".{suffix}"))


BAD_FILES = {  # what a real folder holds besides photographs
    "empty.jpg": b"",
    "notes.jpg": b"not an image",
    "cut.jpg": b"\xff\xd8\xff\xe0" + b"\x00" * 40,  # a JPEG cut off after its header
}


def _bad_files(folder, stem: str) -> list[str]:
    """Write the three unreadable files into `folder` as `<stem>-<name>`; return their names."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, content in BAD_FILES.items():
        (folder / f"{stem}-{name}").write_bytes(content)
    return [f"{stem}-{name}" for name in BAD_FILES]


def _drawn(per_class: int, seed: int = 7):
    """Photographs to write to disk: the generator's composites at 64 px, `per_class` (>= 3) of
    each class and group (the pixels are real photo crops with drawn objects on them)."""
    from kernelfusion import config, data

    n = per_class
    cfg = config.load(
        "smoke",
        {
            "seed": seed,
            "data.image_size": 64,
            "data.black_count": n,
            "data.black_random_count": n,
            "data.cat_count": n,
            "data.cat_random_count": n,
            "data.eval_per_group": n - 2,  # and 2 labelled: n of each group in all
            "data.labelled_per_group": 2,
        },
    )
    return data.make_synthetic(cfg, progress=False)


@pytest.fixture(scope="session")
def photo_folder(tmp_path_factory):
    """Make a folder in the documented layout, `per_class` photographs in each class folder and
    three unreadable files in one of them; returns (root, names of the bad files)."""
    from kernelfusion import data

    def make(per_class: int = 12):
        root = tmp_path_factory.mktemp("photos") / "my photos"
        sets = _drawn(per_class)
        for name, images in sets.items():
            by = images.groups if name == "eval" else images.labels
            for label, folder in enumerate(data.FOLDER_LAYOUT[name]):
                for i, j in enumerate((by == label).nonzero().flatten().tolist()):
                    _save_photo(images.images[j], root / name / folder / f"img{i:03d}", i)
        bad = _bad_files(root / "cat" / "cat", "bad")
        return root, [f"cat/cat/{name}" for name in bad]

    return make


@pytest.fixture(scope="session")
def oxford_folder(tmp_path_factory):
    """Make a folder in torchvision's Oxford-IIIT Pet layout (images, trimaps, split lists),
    `per_breed` pets of each of six breeds and three unreadable images; `breeds` may leave some
    out. Returns the root to give as `data.root`."""
    import numpy as np
    from PIL import Image

    # breed -> (label in the split lists, evaluation group whose drawn images it gets)
    all_breeds = {
        "Bombay": (1, 0),
        "Persian": (2, 1),
        "newfoundland": (3, 2),
        "scottish_terrier": (4, 2),
        "beagle": (5, 3),
        "pug": (6, 3),
    }

    def make(per_breed: int = 12, breeds=tuple(all_breeds)):
        root = tmp_path_factory.mktemp("pets")
        base = root / "oxford-iiit-pet"
        drawn = _drawn(2 * per_breed)["eval"]
        lines = []
        for breed in breeds:
            label, group = all_breeds[breed]
            members = (drawn.groups == group).nonzero().flatten().tolist()
            offset = per_breed if breed in ("scottish_terrier", "pug") else 0
            for i in range(per_breed):
                name = f"{breed}_{i + 1}"
                _save_photo(drawn.images[members[offset + i]], base / "images" / name, i, jpeg=True)
                trimap = np.full((64, 64), 2, np.uint8)
                trimap[16:48, 16:48] = 1  # 1 = the pet, 2 = background
                (base / "annotations" / "trimaps").mkdir(parents=True, exist_ok=True)
                Image.fromarray(trimap).save(base / "annotations" / "trimaps" / f"{name}.png")
                lines.append(f"{name} {label} 1 1")
        # three listed pets whose image files are damaged
        for k, content in enumerate(BAD_FILES.values()):
            stem = f"Persian_{900 + k}"  # torchvision takes the breed from the name
            (base / "images" / f"{stem}.jpg").write_bytes(content)
            Image.fromarray(trimap).save(base / "annotations" / "trimaps" / f"{stem}.png")
            lines.append(f"{stem} 2 1 1")
        (base / "annotations" / "trainval.txt").write_text("\n".join(lines[::2]) + "\n")
        (base / "annotations" / "test.txt").write_text("\n".join(lines[1::2]) + "\n")
        return root

    return make


@pytest.fixture
def seeded_metrics():
    """`values` ({model: one number per seed}) as the metrics files of those seeds, every view
    of a model holding the same number."""
    return _seeded_metrics


def _seeded_metrics(values: dict[str, list[float]]) -> dict[int, dict]:
    """Metrics files whose every view of a model holds the same number, seed by seed."""
    from kernelfusion import evaluate

    views = {m.view for m in evaluate.METRICS.values()}
    keys = {m.key for m in evaluate.METRICS.values()}
    return {
        seed: {
            "models": {
                name: {view: {k: v[seed] for k in keys} for view in views}
                for name, v in values.items()
            },
            "score models": {},
            "references": {"all positive": 0.4},
        }
        for seed in range(len(next(iter(values.values()))))
    }
