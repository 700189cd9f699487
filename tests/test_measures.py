"""The measures on features (`measures`): clusterings scored as detectors, the probe, UMAP
distances, folds."""

import numpy as np
import pytest

from kernelfusion import measures


def test_purity_entropy_and_hungarian_on_a_hand_checked_example():
    # cluster 0: 3 black cats + 1 other cat; cluster 1: 2 black non-cats + 2 other images
    clusters = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    groups = np.array([0, 0, 0, 1, 2, 2, 3, 3])
    table, ids = measures.contingency(clusters, groups)
    assert table.tolist() == [[3, 1, 0, 0], [0, 0, 2, 2]] and ids.tolist() == [0, 1]
    assert measures.purity(table) == pytest.approx(5 / 8)
    h0 = -(0.75 * np.log2(0.75) + 0.25 * np.log2(0.25))
    assert measures.cluster_entropy(table) == pytest.approx((h0 + 1.0) / 2)
    assert measures.hungarian(table) == {0: 0, 1: 2}
    metrics = measures.matched_cluster_metrics(clusters, groups, clusters, groups)
    assert metrics["black cat precision"] == pytest.approx(0.75)
    assert metrics["black cat recall"] == pytest.approx(1.0)
    assert metrics["black cat f1"] == pytest.approx(2 * 0.75 / 1.75)
    assert metrics["best cluster f1"] == pytest.approx(2 * 0.75 / 1.75)
    assert 0 < metrics["ari"] < 1 and 0 < metrics["ami"] < 1


def test_hungarian_is_one_to_one_not_majority_vote():
    # both clusters are mostly black cats; only one may be called "black cat"
    table = np.array([[5, 0, 1, 0], [4, 3, 0, 0]])
    mapping = measures.hungarian(table)
    assert sorted(mapping.values()) == [0, 1] and mapping == {0: 0, 1: 1}


def test_clusters_are_matched_on_the_labelled_images_not_on_the_scored_ones():
    """On the labelled images cluster 1 holds the black cats; on the evaluated images cluster
    0 does. Matching on the scored images would call cluster 0 'black cat' and score F1 = 1."""
    lab_clusters, lab_groups = np.array([0, 0, 1, 1]), np.array([2, 2, 0, 0])
    ev_clusters, ev_groups = np.array([0, 0, 1, 1]), np.array([0, 0, 2, 2])
    metrics = measures.matched_cluster_metrics(lab_clusters, lab_groups, ev_clusters, ev_groups)
    assert metrics["black cat f1"] == 0.0 and metrics["best cluster f1"] == 1.0
    assert metrics["ari"] == pytest.approx(1.0)  # the clusters do split the groups


def test_random_clusters_score_chance_and_no_more():
    groups = np.repeat(np.arange(4), 250)
    ref = measures.random_clusters_reference(groups, groups, k=4, seed=0)
    assert ref["black cat f1"] == pytest.approx(0.25, abs=0.04)  # precision = recall = 1/4
    assert abs(ref["ari"]) < 0.01


def test_noise_points_are_left_out_and_counted():
    clusters = np.array([-1, -1, 0, 0, 1, 1])
    groups = np.array([0, 1, 0, 0, 2, 2])
    metrics = measures.matched_cluster_metrics(clusters, groups, clusters, groups)
    assert metrics["noise"] == pytest.approx(2 / 6) and metrics["clusters"] == 2
    assert metrics["purity"] == 1.0 and metrics["black cat recall"] == pytest.approx(2 / 3)


def test_reference_values_for_balanced_groups():
    groups = np.repeat(np.arange(4), 25)
    ref = measures.reference_values(groups)
    assert ref["all positive"] == pytest.approx(0.4)
    assert ref["perfect black detector"] == pytest.approx(2 / 3)
    assert ref["perfect cat detector"] == pytest.approx(2 / 3)


def test_linear_probe_finds_a_separable_group_and_centroid_cosine():
    rng = np.random.default_rng(0)
    groups = np.repeat(np.arange(4), 50)
    x = rng.normal(size=(200, 5))
    x[groups == 0, 0] += 6
    scores = measures.linear_probe(x[::2], groups[::2], x[1::2], groups[1::2])
    assert scores["f1"] > 0.95 and scores["roc auc"] > 0.99 and scores["average precision"] > 0.95
    noise = measures.linear_probe(x[::2, 1:], groups[::2], x[1::2, 1:], groups[1::2])
    assert noise["roc auc"] < 0.8  # the same probe on the uninformative columns
    # centroids (1, 0), (0, 1), (1, 1), (2, 0) by construction: cosines by hand
    centroids = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [2.0, 0.0]])
    points = np.repeat(centroids, 2, axis=0) + np.tile([[0.5, -0.5], [-0.5, 0.5]], (4, 1))
    cos = measures.centroid_cosine(points, np.repeat(np.arange(4), 2))
    assert cos[0, 1] == pytest.approx(0.0) and cos[0, 2] == pytest.approx(1 / np.sqrt(2))
    assert cos[0, 3] == pytest.approx(1.0) and cos[1, 2] == pytest.approx(1 / np.sqrt(2))


def test_label_efficiency_improves_with_labels_on_a_hard_group():
    rng = np.random.default_rng(1)
    groups = np.repeat(np.arange(4), 400)
    x = rng.normal(size=(1600, 30))
    x[groups == 0, :3] += 0.8
    curve = measures.label_efficiency(
        x[::2], groups[::2], x[1::2], groups[1::2], (2, 100), c=1.0, seed=0
    )
    assert list(curve) == ["2", "100"] and curve["100"]["roc auc"] > curve["2"]["roc auc"]


def test_original_protocol_on_two_blobs():
    """Black cats in one blob, everything else in the other: 2-means finds them, the cluster
    with most black cats is called black cat, accuracy 1; the best state is never worse."""
    rng = np.random.default_rng(0)
    groups = np.repeat(np.arange(4), 50)
    embedding = rng.normal(size=(200, 2)) * 0.1
    embedding[groups == 0] += 5
    result = measures.original_protocol(embedding, groups, seed=0)
    assert result["accuracy"] == 1.0 and result["f1"] == 1.0
    # one state: its accuracy is the best; many on structureless points: the best state is
    # the maximum over states, above their mean
    flat = rng.normal(size=(200, 2))
    one = measures.original_protocol(flat, groups, seed=0, states=1)
    assert one["best accuracy"] == one["accuracy"]
    many = measures.original_protocol(flat, groups, seed=0, states=10)
    assert many["best accuracy"] > many["accuracy"]
    assert result["purity"] == pytest.approx(1.0 * 50 / 200 + 50 / 200)  # blob 2 holds 3 groups
    mixed = measures.original_protocol(rng.normal(size=(200, 2)), groups, seed=0)
    assert mixed["accuracy"] < 0.75  # no structure: below calling nothing a black cat


def test_umap_distances_are_unchanged(monkeypatch):
    """The compiled all-pairs distances give umap the very matrix scikit-learn gave it (bit for
    bit), so every UMAP of the book is the one it was, only faster."""
    from sklearn.metrics import pairwise_distances

    umap = measures._umap()
    from umap.distances import euclidean

    rng = np.random.default_rng(0)
    x = np.maximum(rng.normal(size=(300, 64)), 0).astype(np.float32)  # ReLU features
    fast = umap.umap_.pairwise_distances(x, metric=euclidean)
    assert fast.dtype == np.float32 and np.array_equal(
        fast, pairwise_distances(x, metric=euclidean)
    )
    with pytest.raises(ValueError, match="NaN"):  # bad input: scikit-learn's own error, as before
        umap.umap_.pairwise_distances(np.full((3, 2), np.nan, np.float32), metric=euclidean)
    embedding = measures.umap_embedding(x, 7)
    monkeypatch.setattr(umap.umap_, "pairwise_distances", pairwise_distances)  # as umap ships
    np.testing.assert_array_equal(embedding, measures.umap_embedding(x, 7))


def _scipy_frechet(a, b, ridge: float) -> float:
    """The textbook formula with scipy's matrix square root (a ridge keeps it defined)."""
    from scipy import linalg

    a, b = a.double().numpy(), b.double().numpy()
    eye = np.eye(a.shape[1]) * ridge
    cov_a, cov_b = np.cov(a, rowvar=False) + eye, np.cov(b, rowvar=False) + eye
    root = np.real(linalg.sqrtm(cov_a @ cov_b))
    return float(((a.mean(0) - b.mean(0)) ** 2).sum() + np.trace(cov_a + cov_b - 2 * root))


def test_frechet_distance_is_the_textbook_formula_and_exact_for_fewer_rows_than_columns():
    import torch

    g = torch.Generator().manual_seed(0)
    # more rows than columns (filters): the same number as scipy's sqrtm
    a = torch.randn(500, 75, generator=g) * 0.3
    b = torch.randn(400, 75, generator=g) @ torch.randn(75, 75, generator=g) * 0.05 + 0.1
    assert measures.frechet_distance(a, b) == pytest.approx(_scipy_frechet(a, b, 0.0), rel=1e-9)
    # fewer rows than columns (whole layers): singular covariances, where sqrtm needs a ridge;
    # the exact value is its limit as the ridge goes to 0
    a, b = torch.randn(48, 400, generator=g) * 0.1, torch.randn(40, 400, generator=g) * 0.12
    exact = measures.frechet_distance(a, b)
    assert exact == pytest.approx(_scipy_frechet(a, b, 1e-12), rel=1e-5)
    assert abs(_scipy_frechet(a, b, 1e-6) - exact) > 1e-3  # the ridge's bias, now gone
    assert measures.frechet_distance(a, a) == pytest.approx(0.0, abs=1e-9)


def test_folds_partition_the_images_stratified_by_black_cat():
    truth = np.repeat([True, False], [34, 55])
    fold = measures.fold_assignment(truth, 5, seed=0)
    assert sorted(np.unique(fold)) == list(range(5))  # every image in exactly one fold
    assert all(6 <= truth[fold == k].sum() <= 7 for k in range(5))
    assert not np.array_equal(fold, measures.fold_assignment(truth, 5, seed=1))
