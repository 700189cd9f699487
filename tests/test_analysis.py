import json

import numpy as np
import pytest

from kernelfusion import analysis


def test_purity_entropy_and_hungarian_on_a_hand_checked_example():
    # cluster 0: 3 black cats + 1 other cat; cluster 1: 2 black non-cats + 2 other images
    clusters = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    groups = np.array([0, 0, 0, 1, 2, 2, 3, 3])
    table, ids = analysis.contingency(clusters, groups)
    assert table.tolist() == [[3, 1, 0, 0], [0, 0, 2, 2]] and ids.tolist() == [0, 1]
    assert analysis.purity(table) == pytest.approx(5 / 8)
    h0 = -(0.75 * np.log2(0.75) + 0.25 * np.log2(0.25))
    assert analysis.cluster_entropy(table) == pytest.approx((h0 + 1.0) / 2)
    assert analysis.hungarian(table) == {0: 0, 1: 2}
    metrics = analysis.cluster_metrics(clusters, groups)
    assert metrics["black cat precision"] == pytest.approx(0.75)
    assert metrics["black cat recall"] == pytest.approx(1.0)
    assert metrics["black cat f1"] == pytest.approx(2 * 0.75 / 1.75)


def test_hungarian_is_one_to_one_not_majority_vote():
    # both clusters are mostly black cats; only one may be called "black cat"
    table = np.array([[5, 0, 1, 0], [4, 3, 0, 0]])
    mapping = analysis.hungarian(table)
    assert sorted(mapping.values()) == [0, 1] and mapping == {0: 0, 1: 1}


def test_noise_points_are_left_out_and_counted():
    clusters = np.array([-1, -1, 0, 0, 1, 1])
    groups = np.array([0, 1, 0, 0, 2, 2])
    metrics = analysis.cluster_metrics(clusters, groups)
    assert metrics["noise"] == pytest.approx(2 / 6) and metrics["clusters"] == 2
    assert metrics["purity"] == 1.0 and metrics["black cat recall"] == pytest.approx(2 / 3)


def test_reference_values_for_balanced_groups():
    groups = np.repeat(np.arange(4), 25)
    ref = analysis.reference_values(groups)
    assert ref["all positive"] == pytest.approx(0.4)
    assert ref["perfect black detector"] == pytest.approx(2 / 3)
    assert ref["perfect cat detector"] == pytest.approx(2 / 3)


def test_linear_probe_finds_a_separable_group_and_centroid_cosine():
    rng = np.random.default_rng(0)
    groups = np.repeat(np.arange(4), 50)
    x = rng.normal(size=(200, 5))
    x[groups == 0, 0] += 6
    scores = analysis.linear_probe(x[::2], groups[::2], x[1::2], groups[1::2])
    assert scores["f1"] > 0.95
    cos = analysis.centroid_cosine(np.abs(x), groups)
    assert cos.shape == (4, 4) and np.allclose(np.diag(cos), 1)


def test_mean_ci_and_verdicts():
    frame = analysis.long_metrics(
        {
            seed: {
                "models": {
                    name: {
                        m: {"black cat f1": f1, "purity": 0.5}
                        for m in ("K-means (UMAP)", "K-means (features)", "HDBSCAN (UMAP)")
                    }
                    | {"linear probe": {"f1": f1}}
                    for name, f1 in (
                        ("generated F(cat CNN)", 0.8 + 0.01 * seed),
                        ("random CNN", 0.2 + 0.01 * seed),
                    )
                },
                "score models": {},
                "references": {"all positive": 0.4},
            }
            for seed in range(3)
        }
    )
    summary = analysis.mean_ci(frame)
    row = summary[(summary.model == "random CNN") & (summary.metric == "F1 linear probe")]
    assert row["mean"].item() == pytest.approx(0.21) and row["seeds"].item() == 3
    assert row["ci95"].item() == pytest.approx(4.302653 * 0.01 / np.sqrt(3), rel=1e-4)
    verdicts = analysis.comparison(summary, "F1 linear probe")
    assert verdicts == [
        {
            "rival": "random CNN",
            "rival mean": pytest.approx(0.21),
            "generated mean": pytest.approx(0.81),
            "verdict": "better",
        }
    ]


def test_results_chapter_reads_its_numbers_from_the_metrics_files(tmp_path):
    """The results chapter's table changes when (and only when) a metrics file changes."""
    import nbformat

    from kernelfusion import book

    source = nbformat.read(book.PROJECT / "notebooks" / "07_results.ipynb", 4)
    code = "\n".join(c.source for c in source.cells if c.cell_type == "code")
    assert "run_seeds" in code and "long_metrics" in code
    import re

    for cell in source.cells:  # no result typed in the prose: decimals come from glue only
        if cell.cell_type == "markdown":
            assert not re.search(r"\b0\.\d", cell.source), cell.source
    metrics = {
        "models": {
            "random CNN": {
                m: {"black cat f1": 0.3, "purity": 0.4}
                for m in ("K-means (UMAP)", "K-means (features)", "HDBSCAN (UMAP)")
            }
            | {"linear probe": {"f1": 0.6}}
        },
        "score models": {},
        "references": {"all positive": 0.4},
    }
    first = analysis.mean_ci(analysis.long_metrics({0: json.loads(json.dumps(metrics))}))
    metrics["models"]["random CNN"]["linear probe"]["f1"] = 0.9
    second = analysis.mean_ci(analysis.long_metrics({0: metrics}))
    pick = first.metric == "F1 linear probe"
    assert first[pick]["mean"].item() == 0.6 and second[pick]["mean"].item() == 0.9
