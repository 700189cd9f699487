import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from kernelfusion import config, data, report, store, synthetic
from kernelfusion.data import DataError


@pytest.fixture(scope="module")
def smoke_sets(tmp_path_factory):
    cfg = config.load("smoke")
    return cfg, data.make_datasets(
        cfg, store.open(cfg, tmp_path_factory.mktemp("runs")), progress=False
    )


def test_synthetic_sets_have_the_configured_make_up(smoke_sets):
    cfg, sets = smoke_sets
    d = cfg.data
    assert torch.bincount(sets.black.labels).tolist() == [d.black_random_count, d.black_count]
    assert torch.bincount(sets.cat.labels).tolist() == [d.cat_random_count, d.cat_count]
    per_group = d.eval_per_group + d.labelled_per_group
    assert torch.bincount(sets.eval.groups).tolist() == [per_group] * 4
    for name in data.SET_NAMES:
        images = sets[name].images
        assert images.dtype == torch.uint8 and images.shape[1:] == (3, d.image_size, d.image_size)


def test_no_black_cat_in_training_sets_by_default(smoke_sets):
    _, sets = smoke_sets
    for name in ("black", "cat"):
        assert not (sets[name].groups == 0).any(), f"black cat leaked into {name}"
    assert (sets.black.kinds[sets.black.labels == 1] != synthetic.CAT).all()
    assert (sets.cat.colours[sets.cat.labels == 1] != synthetic.BLACK).all()


def test_leakage_switch_lets_black_cats_in():
    cfg = config.load("smoke", {"data.black_cats_in_training": True, "data.cat_count": 300})
    gens = {name: torch.Generator().manual_seed(i) for i, name in enumerate(synthetic.RECIPES)}
    plans = synthetic.recipes(cfg.data, gens)
    assert (synthetic.ground_truth_groups(plans["cat"].kinds, plans["cat"].colours) == 0).sum() > 20


def test_ground_truth_is_exact_and_the_colour_rule_agrees(smoke_sets):
    cfg, sets = smoke_sets
    ev = sets.eval
    assert torch.equal(synthetic.ground_truth_groups(ev.kinds, ev.colours), ev.groups)
    agreement = report.black_rule_agreement(ev, cfg.data.dark_fraction)
    per_group = cfg.data.eval_per_group + cfg.data.labelled_per_group
    assert agreement["agreement"] >= 0.98 and agreement["black by truth"] == 2 * per_group
    brown_cats = (ev.colours == 1) & (ev.kinds == synthetic.CAT)
    assert (ev.dark_fraction[(ev.groups == 0)] > 0.5).all()
    if brown_cats.any():
        assert (ev.dark_fraction[brown_cats] < 0.5).all()


def test_dark_fraction_on_hand_made_images():
    images = torch.zeros(2, 3, 4, 4, dtype=torch.uint8)
    images[1] = 200
    images[0, :, :2] = 255  # top half bright, bottom half black
    masks = torch.full((2, 4, 4), 255, dtype=torch.uint8)
    fraction = synthetic.dark_fraction(images, masks, 0.25)
    assert fraction.tolist() == [0.5, 0.0]
    masks[1] = 0
    assert torch.isnan(synthetic.dark_fraction(images, masks, 0.25)[1])


def test_same_seed_same_images_other_seed_other_images():
    cfg = config.load(
        "smoke", {"data.black_count": 10, "data.cat_count": 10, "data.eval_per_group": 3}
    )
    a, b = data.make_synthetic(cfg, progress=False), data.make_synthetic(cfg, progress=False)
    c = data.make_synthetic(
        config.load(
            "smoke",
            {"seed": 1, "data.black_count": 10, "data.cat_count": 10, "data.eval_per_group": 3},
        ),
        progress=False,
    )
    assert torch.equal(a["eval"].images, b["eval"].images)
    assert not torch.equal(a["eval"].images, c["eval"].images)


def test_batch_size_bounds_rendering_without_changing_counts():
    cfg = config.load("smoke", {"data.batch_size": 7, "data.black_count": 20})
    sets = data.make_synthetic(cfg, progress=False)
    assert len(sets["black"]) == 20 + cfg.data.black_random_count


def test_splits_are_deterministic_stratified_and_disjoint():
    labels = torch.tensor([0] * 30 + [1] * 70)
    a, b = data.split_labels(labels, 0.2, 0.1, 5), data.split_labels(labels, 0.2, 0.1, 5)
    assert torch.equal(a, b) and not torch.equal(a, data.split_labels(labels, 0.2, 0.1, 6))
    for label, n in ((0, 30), (1, 70)):
        part = a[labels == label]
        assert (part == 1).sum() == round(0.2 * n) and (part == 2).sum() == round(0.1 * n)
    tiny = data.split_labels(torch.tensor([0, 0, 0, 1, 1, 1]), 0.1, 0.1, 0)
    assert set(tiny[:3].tolist()) == {0, 1, 2}


def test_cache_round_trip_and_count_report(smoke_sets, tmp_path):
    cfg, sets = smoke_sets
    run = store.open(cfg, tmp_path)
    first = data.make_datasets(cfg, run, progress=False)
    again = data.make_datasets(cfg, run, progress=False)
    assert not first.reused and again.reused
    for name in data.SET_NAMES:
        for key, value in first[name].to_dict().items():
            torch.testing.assert_close(
                value,
                getattr(again[name], key),
                rtol=0,
                atol=0,
                equal_nan=True,
                msg=f"{name}.{key} changed",
            )
    rows = {(r["set"], r["class"], r["split"]): r["images"] for r in data.counts(again)}
    assert sum(v for (s, c, _), v in rows.items() if (s, c) == ("cat", "cat")) == cfg.data.cat_count
    assert again.artifact.json("counts") == data.counts(again)


def _save(path, array, mode=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array, mode).save(path) if mode else Image.fromarray(array).save(path)


def _folder_dataset(root, per_class=4):
    rng = np.random.default_rng(0)
    for set_name, classes in data.FOLDER_LAYOUT.items():
        for cls in classes:
            for i in range(per_class):
                _save(
                    root / set_name / cls / f"{i}.png", rng.integers(0, 255, (20, 30, 3), np.uint8)
                )
    return root


def test_folder_loader_reads_every_class_and_converts_modes(tmp_path):
    root = _folder_dataset(tmp_path / "photos")
    cat = root / "cat" / "cat"
    _save(cat / "grey.png", np.full((40, 40), 10, np.uint8))
    _save(cat / "rgba.png", np.zeros((8, 8, 4), np.uint8))  # fully transparent -> white
    Image.fromarray(np.arange(64, dtype=np.uint8).reshape(8, 8)).convert("P").save(cat / "pal.png")
    Image.fromarray((np.ones((9, 9)) * 60000).astype(np.uint16)).save(cat / "deep.png")
    _save(cat / "tiny.png", np.zeros((1, 1, 3), np.uint8))
    _save(cat / "large.jpg", np.zeros((3000, 2000, 3), np.uint8))
    cfg = config.load("smoke", {"data.source": "folder", "data.root": str(root)})
    sets = data.read_folder(cfg, progress=False)
    assert torch.bincount(sets["cat"].labels).tolist() == [4, 10]
    assert torch.bincount(sets["eval"].groups).tolist() == [4, 4, 4, 4]
    assert sets["cat"].images.shape[1:] == (3, 24, 24)
    decoded = {p.name: data.decode_image(p, 24) for p in cat.iterdir()}
    assert decoded["rgba.png"].min() == 255 and decoded["deep.png"].max() == 255
    assert decoded["grey.png"].shape == (3, 24, 24) and decoded["large.jpg"].max() < 5


def test_folder_loader_skips_bad_files_and_prepare_names_them_in_one_warning(tmp_path):
    root = _folder_dataset(tmp_path / "photos")
    black = root / "black" / "black"
    (black / "zero.jpg").write_bytes(b"")
    (black / "text.png").write_text("not an image")
    good = (black / "0.png").read_bytes()
    (black / "truncated.png").write_bytes(good[: len(good) // 2])
    cfg = config.load("smoke", {"data.source": "folder", "data.root": str(root)})
    sets = data.read_folder(cfg, progress=False)
    assert (sets["black"].labels == 1).sum() == 4
    assert sorted(sets.skipped) == [
        f"black/black/{n}" for n in ("text.png", "truncated.png", "zero.jpg")
    ]
    store_ = store.open(cfg, tmp_path / "runs")
    for _ in range(2):  # warned when read, and again when reused from the cache
        with pytest.warns(
            UserWarning, match=r"3 image file\(s\) under data.root could not be read"
        ):
            datasets = data.make_datasets(cfg, store_, progress=False)
    assert datasets.reused and len(datasets.skipped) == 3


def test_missing_folder_and_empty_class_are_clear_errors(tmp_path):
    cfg = config.load("smoke", {"data.source": "folder", "data.root": str(tmp_path / "nope")})
    with pytest.raises(DataError, match=r"data folder '.*nope' does not exist: expected .*/black/"):
        data.read_folder(cfg, progress=False)
    root = _folder_dataset(tmp_path / "photos")
    for f in (root / "cat" / "random").iterdir():
        f.unlink()
    (root / "cat" / "random" / "broken.jpg").write_bytes(b"\xff\xd8garbage")
    cfg = config.load("smoke", {"data.source": "folder", "data.root": str(root)})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(DataError, match=r"class folder '.*cat/random' has 0 readable"):
            data.read_folder(cfg, progress=False)


def _oxford_layout(root, per_breed=3):
    """A tiny folder in the layout of torchvision's Oxford-IIIT Pet."""
    base = root / "oxford-iiit-pet"
    breeds = ["Bombay", "Persian", "newfoundland", "scottish_terrier", "beagle", "pug"]
    lines = []
    rng = np.random.default_rng(1)
    for label, breed in enumerate(breeds, 1):
        for i in range(per_breed):
            name = f"{breed}_{i + 1}"
            shade = 15 if breed in ("Bombay", "newfoundland", "scottish_terrier") else 180
            pixels = rng.integers(0, 255, (30, 30, 3), np.uint8)
            pixels[8:22, 8:22] = shade
            _save(base / "images" / f"{name}.jpg", pixels)
            trimap = np.full((30, 30), 2, np.uint8)
            trimap[8:22, 8:22] = 1
            _save(base / "annotations" / "trimaps" / f"{name}.png", trimap)
            lines.append(f"{name} {label} 1 1")
    for split in ("trainval", "test"):
        (base / "annotations" / f"{split}.txt").write_text("\n".join(lines) + "\n")
    return root


def test_oxford_pets_reader_maps_breeds_to_groups(tmp_path):
    root = _oxford_layout(tmp_path)
    cfg = config.load("smoke", {"data.source": "oxford_pets", "data.root": str(root)})
    sets = data.read_oxford_pets(cfg, progress=False)
    everything = torch.cat([sets[n].groups for n in data.SET_NAMES])
    assert torch.bincount(everything, minlength=4).tolist()[0] > 0
    ev = sets["eval"]
    black = (ev.groups == 0) | (ev.groups == 2)
    assert (ev.dark_fraction[black] > 0.7).all() and (ev.dark_fraction[~black] < 0.3).all()
    assert not (sets["black"].groups == 0).any() and not (sets["cat"].groups == 0).any()


def test_oxford_pets_missing_is_a_clear_error(tmp_path):
    cfg = config.load("smoke", {"data.source": "oxford_pets", "data.root": str(tmp_path)})
    with pytest.raises(DataError, match="Oxford-IIIT Pet not found.*download=True"):
        data.read_oxford_pets(cfg, progress=False)


def test_evaluation_images_do_not_move_when_a_training_count_changes():
    base = config.load("smoke")
    more = config.load("smoke", {"data.black_count": 90, "data.cat_random_count": 40})
    a, b = data.make_synthetic(base, progress=False), data.make_synthetic(more, progress=False)
    assert len(b["black"]) != len(a["black"])
    assert torch.equal(a["eval"].images, b["eval"].images)
    fewer_labels = config.load("smoke", {"data.labelled_per_group": 12})
    c = data.make_synthetic(fewer_labels, progress=False)
    scored = a["eval"].images[a["eval"].split != 0]
    assert torch.equal(scored, c["eval"].images[c["eval"].split != 0])


def test_labelled_and_evaluated_parts_are_apart_and_sized():
    cfg = config.load("smoke")
    ev = data.make_synthetic(cfg, progress=False)["eval"]
    labelled, evaluated = (ev.split == 0), (ev.split != 0)
    assert torch.bincount(ev.groups[labelled]).tolist() == [cfg.data.labelled_per_group] * 4
    assert torch.bincount(ev.groups[evaluated]).tolist() == [cfg.data.eval_per_group] * 4
    flat = ev.images.flatten(1)
    for row in flat[labelled][:10]:
        assert not (flat[evaluated] == row).all(1).any()  # no scored image is also labelled


def test_oxford_leakage_switch_puts_black_cats_in_both_training_sets(tmp_path):
    root = _oxford_layout(tmp_path, per_breed=9)
    on = config.load(
        "smoke",
        {"data.source": "oxford_pets", "data.root": str(root), "data.black_cats_in_training": True},
    )
    off = config.load("smoke", {"data.source": "oxford_pets", "data.root": str(root)})
    leaky, clean = (
        data.read_oxford_pets(on, progress=False),
        data.read_oxford_pets(off, progress=False),
    )
    for name, label in (("black", 1), ("cat", 1)):
        assert not (clean[name].groups == 0).any()
        cats = leaky[name].groups == 0
        assert cats.any() and (leaky[name].labels[cats] == label).all()
    assert torch.equal(leaky["eval"].images, clean["eval"].images)
