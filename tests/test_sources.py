"""Every data source, end to end at the smoke preset, from files made on disk with unreadable
ones among them; and a data set too small stops before any training, saying what it needs."""

from __future__ import annotations

import shutil

import pytest

from kernelfusion import __main__ as cli
from kernelfusion import config, data, pipeline, store
from kernelfusion.build import book
from kernelfusion.data import DataError


def quiet(*args, **kwargs) -> None:
    pass


def _page(result: book.BookResult, chapter: str) -> str:
    return (result.index_html.parent / "notebooks" / f"{chapter}.html").read_text()


@pytest.mark.slow
def test_folder_of_photographs_builds_the_book_through_the_chapters_it_changes(
    photo_folder, tmp_path, monkeypatch
):
    """A dozen photographs per class in JPEG, PNG and WebP of odd sizes and modes, three bad
    files among them, through the chapters whose code reads the images themselves: 01
    (describes photographs, not drawings), 05 (scores per evaluation group) and 07 (every stage
    end to end at each seed, the protocol and its showcase on the photographs). The other
    chapters read only the stages' results, which the shared smoke book tests."""
    root, bad = photo_folder(12)
    monkeypatch.setenv("KERNELFUSION_RUNS", str(tmp_path / "runs"))
    overrides = {"data.source": "folder", "data.root": str(root)}
    repeats = {"analysis.seeds": 2}  # the fewest chapter 07 accepts
    result = book.make_book(
        "smoke", overrides | repeats, tmp_path / "book", only="01,05,07", log=quiet
    )
    assert set(result.chapter_seconds) == {"01_datasets", "05_generated_cnn", "07_results"}
    assert "Does the generated CNN beat its rivals?" in _page(result, "07_results")
    page = _page(result, "01_datasets")
    assert "photographs from a folder" in page and "central half of each photograph" in page
    assert "3 image file(s) under data.root could not be read" in page
    assert all(name in page for name in bad)
    assert "procedural cats" not in page and "by colour" not in page
    cfg = config.load("smoke", overrides | repeats)
    datasets = data.make_datasets(cfg, store.open(cfg, tmp_path / "runs"), progress=False)
    assert datasets.source == "folder" and sorted(datasets.skipped) == sorted(bad)
    assert len(datasets.eval) == 4 * 12 and (datasets.eval.colours == -1).all()
    metrics = store.open(cfg, tmp_path / "runs").load("metrics").json("metrics")
    assert sum(metrics["groups"]) + metrics["labelled images"] == 4 * 12


@pytest.mark.slow
def test_oxford_pets_layout_runs_the_pipeline_and_chapter_01(oxford_folder, tmp_path, monkeypatch):
    root = oxford_folder(12)
    monkeypatch.setenv("KERNELFUSION_RUNS", str(tmp_path / "runs"))
    overrides = {"data.source": "oxford_pets", "data.root": str(root)}
    cfg = config.load("smoke", overrides)
    with pytest.warns(UserWarning, match=r"3 image file\(s\) under data.root could not be read"):
        metrics = pipeline.run(cfg, store.open(cfg), progress=False).metrics.values
    assert all(n > 0 for n in metrics["groups"]) and metrics["models"]
    result = book.make_book("smoke", overrides, tmp_path / "book", only="01", log=quiet)
    page = _page(result, "01_datasets")
    assert "Oxford-IIIT Pet" in page and "the pet’s trimap mask" in page.replace("'", "’")


def test_synthetic_source_needs_no_files_and_says_so(tmp_path):
    cfg = config.load("smoke", {"data.eval_per_group": 3})
    datasets = data.make_datasets(cfg, store.open(cfg, tmp_path), progress=False)
    assert (
        datasets.skipped == [] and data.SOURCES[datasets.source]["label"] == "synthetic composites"
    )


def test_too_small_folder_stops_before_any_training_naming_the_class(photo_folder, tmp_path):
    root, _ = photo_folder(4)
    for path in sorted((root / "eval" / "black_cat").iterdir())[2:]:
        path.unlink()
    cfg = config.load("smoke", {"data.source": "folder", "data.root": str(root)})
    run = store.open(cfg, tmp_path / "runs")
    with pytest.raises(
        DataError,
        match=r"class folder '.*eval/black_cat' has 2 readable image\(s\) of 2 file\(s\), "
        r"at least 3 needed \(one per split",
    ):
        pipeline.run(cfg, run, progress=False)
    assert not list(run.root.rglob("manifest.json"))  # nothing was trained or cached


def test_too_small_folder_through_the_command_line_is_one_clear_error(
    photo_folder, tmp_path, monkeypatch, capsys
):
    root, _ = photo_folder(4)
    shutil.rmtree(root / "cat" / "random")
    (root / "cat" / "random").mkdir()
    monkeypatch.setenv("KERNELFUSION_RUNS", str(tmp_path / "runs"))
    code = cli.main(
        [
            "book",
            "--preset",
            "smoke",
            "--only",
            "01",
            "--out",
            str(tmp_path / "book"),
            "--set",
            "data.source=folder",
            "--set",
            f"data.root={root}",
        ]
    )
    error = capsys.readouterr().err
    assert code == 2
    assert "chapter 01_datasets failed" in error and "cat/random' has 0 readable" in error


def test_missing_group_in_oxford_pets_is_refused_before_training(oxford_folder, tmp_path):
    root = oxford_folder(6, breeds=("Persian", "newfoundland", "scottish_terrier", "beagle", "pug"))
    cfg = config.load("smoke", {"data.source": "oxford_pets", "data.root": str(root)})
    run = store.open(cfg, tmp_path / "runs")
    with pytest.raises(
        DataError,
        match=r"too few images for preset 'smoke'.*eval/black_cat \(black cat\): 0.*"
        r"3 unreadable file\(s\) were left out: Persian_900.jpg",
    ):
        pipeline.run(cfg, run, progress=False)
    assert not list(run.root.rglob("manifest.json"))


def test_evaluation_set_smaller_than_the_clusters_is_refused(photo_folder, tmp_path):
    root, _ = photo_folder(3)
    cfg = config.load(
        "smoke",
        {"data.source": "folder", "data.root": str(root), "analysis.kmeans_clusters": 20},
    )
    with pytest.raises(DataError, match=r"splits hold 8 images, fewer than the 20 clusters"):
        data.make_datasets(cfg, store.open(cfg, tmp_path), progress=False)
