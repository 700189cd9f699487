"""Measures on features and kernels: 2-D UMAP embeddings, distances between two sets of vectors,
the linear probe and its label-efficiency curve, clusterings scored as black-cat detectors, and
the original project's protocol (2-means on a UMAP, the cluster with most black cats called
"black cat"). Pure functions of arrays and seeds; the metrics stage (`evaluate`) applies them
to every model.
"""

from __future__ import annotations

import contextlib
import os
import warnings
from pathlib import Path

import numpy as np
import torch

from .machine import derive_seed
from .store import default_root


def umap_embedding(
    x: torch.Tensor | np.ndarray,
    seed: int,
    n_neighbors: int = 15,
    min_dist: float = 0.1,
    epochs: int | None = None,
) -> np.ndarray:
    """A 2-D UMAP of the rows of `x` (umap-learn), reproducible for a given seed."""
    umap = _umap()
    data = x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
    reducer = umap.UMAP(
        n_components=2,
        n_neighbors=min(n_neighbors, len(data) - 1),
        min_dist=min_dist,
        n_epochs=epochs,
        random_state=seed,
        n_jobs=1,
    )
    with torch_threads_kept():
        return reducer.fit_transform(data.astype(np.float32))


@contextlib.contextmanager
def torch_threads_kept():
    """Give torch back its thread count after a UMAP. The first UMAP of a process starts
    numba's OpenMP threading layer, which torch shares: once torch had read its count (every
    stage key reads it), that set torch's threads to the core count, so every stage made after
    it in that process was keyed by another thread class than the one the process was given
    (a one-thread worker's per-model metrics after its first model: 2 threads)."""
    threads = torch.get_num_threads()
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def numba_cache() -> Path:
    """Where numba caches compiled code: `NUMBA_CACHE_DIR`, by default `numba-cache` in the
    runs folder, shared by every chapter's kernel and every worker."""
    return Path(os.environ.get("NUMBA_CACHE_DIR") or default_root() / "numba-cache")


def _umap():
    """umap-learn, with its numba functions compiled once and cached on disk
    (`NUMBA_CACHE_DIR`): umap leaves caching off, so every new process compiled them again,
    about 8 s each on the project's CPU. `Dispatcher.enable_caching` is numba's own switch,
    the one `@njit(cache=True)` sets."""
    # numba's compiled code is cached in the runs folder, shared by every chapter's kernel and
    # every worker: only the first process pays the compilation (set before numba is first
    # imported, which reads it once)
    os.environ.setdefault("NUMBA_CACHE_DIR", str(numba_cache()))
    with warnings.catch_warnings():  # umap imports tqdm.auto, which warns in a kernel
        warnings.simplefilter("ignore")
        import umap
        import umap.layouts
        import umap.spectral
        import umap.umap_
        import umap.utils
    from numba.core.caching import NullCache
    from numba.core.registry import CPUDispatcher

    for module in (umap.umap_, umap.layouts, umap.utils, umap.spectral):
        for function in vars(module).values():
            if isinstance(function, CPUDispatcher) and isinstance(function._cache, NullCache):
                function.enable_caching()
    if not hasattr(umap.umap_.pairwise_distances, "all_pairs"):
        umap.umap_.pairwise_distances = _compiled_pairs(umap.umap_.pairwise_distances)
    return umap


def _compiled_pairs(pairwise_distances):
    """umap's distances between every two rows of a small data set (under 4,096 rows, each of
    the book's views), the very numbers it computed before, 20x faster. umap hands scikit-learn
    its compiled euclidean distance as a Python callable, and scikit-learn calls it once per pair
    from Python: 1.9 s of a 2.4 s UMAP of 1,440 points, 60% of a model's metrics stage. Here the
    same compiled function runs over the upper triangle in one compiled loop, which is mirrored
    with a zero diagonal, in float32, as scikit-learn does (a test checks equality bit for
    bit). Any other call goes to scikit-learn as before."""
    import numba
    from umap.distances import euclidean

    @numba.njit(cache=True)
    def upper_triangle(x):
        n = x.shape[0]
        out = np.zeros((n, n), dtype=np.float32)  # scikit-learn's: the input's float type
        for i in range(n):
            for j in range(i + 1, n):
                out[i, j] = euclidean(x[i], x[j])
        return out

    def pairs(X, Y=None, metric="euclidean", **kwds):
        if metric is euclidean and Y is None and not kwds and isinstance(X, np.ndarray):
            if X.ndim == 2 and X.dtype == np.float32 and np.isfinite(X).all():
                out = upper_triangle(np.ascontiguousarray(X))
                return out + out.T
        return pairwise_distances(X, Y, metric=metric, **kwds)

    pairs.all_pairs = upper_triangle
    return pairs


def frechet_distance(a: torch.Tensor, b: torch.Tensor) -> float:
    """Fréchet distance between Gaussians fitted to the rows of `a` and of `b`:
    |mu_a - mu_b|^2 + tr(S_a) + tr(S_b) - 2 tr((S_a S_b)^(1/2)).

    With S_a = P P^T and S_b = Q Q^T, the non-zero eigenvalues of S_a S_b are the squared
    singular values of P^T Q, so tr((S_a S_b)^(1/2)) is P^T Q's nuclear norm: exact for the
    singular covariances of fewer rows than columns (whole layers: 48 rows of 2,400 values,
    where scipy's sqrtm took 3.5 s and needed a 1e-6 ridge to stay defined), and each factor
    is the smaller of the centred rows and the covariance's symmetric square root."""
    a, b = a.double().numpy(), b.double().numpy()
    factors = [_covariance_factor(x) for x in (a, b)]
    root_trace = np.linalg.svd(factors[0].T @ factors[1], compute_uv=False).sum()
    traces = sum(float((f * f).sum()) for f in factors)  # tr(P P^T) = |P|_F^2
    return float(((a.mean(0) - b.mean(0)) ** 2).sum() + traces - 2 * root_trace)


def _covariance_factor(x: np.ndarray) -> np.ndarray:
    """P with P P^T = the sample covariance of the rows of `x` (d x min(n, d))."""
    centred = (x - x.mean(0)) / np.sqrt(max(len(x) - 1, 1))
    if len(x) <= x.shape[1]:
        return centred.T
    values, vectors = np.linalg.eigh(centred.T @ centred)
    return vectors * np.sqrt(np.clip(values, 0, None))


def mmd_rbf(a: torch.Tensor, b: torch.Tensor, max_rows: int = 2000) -> float:
    """Squared maximum mean discrepancy with an RBF kernel at the median-distance bandwidth."""
    a, b = a[:max_rows].double(), b[:max_rows].double()
    joint = torch.cat([a, b])
    distances = torch.cdist(joint, joint) ** 2
    bandwidth = distances[distances > 0].median()
    k = torch.exp(-distances / bandwidth)
    n = len(a)
    kaa, kbb, kab = k[:n, :n], k[n:, n:], k[:n, n:]
    return float(kaa.mean() + kbb.mean() - 2 * kab.mean())


def domain_classifier(a: torch.Tensor, b: torch.Tensor, groups: np.ndarray | None = None):
    """A logistic regression telling rows of `a` (0) from rows of `b` (1), and its 5-fold
    cross-validated accuracy; with `groups` (e.g. the zoo model of each row), no group is split
    across folds, so near-duplicate snapshots cannot leak from training to test."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GroupKFold, cross_val_score

    x = torch.cat([a, b]).numpy()
    y = np.r_[np.zeros(len(a)), np.ones(len(b))]
    model = LogisticRegression(max_iter=2000, C=1.0)
    folds = min(5, len(a), len(b)) if groups is None else min(5, len(np.unique(groups)))
    cv = folds if groups is None else GroupKFold(folds)
    score = cross_val_score(model, x, y, cv=cv, groups=groups).mean() if folds >= 2 else np.nan
    return model.fit(x, y), float(score)


def nearest_distance(
    queries: torch.Tensor, references: torch.Tensor, exclude: torch.Tensor | None = None
) -> torch.Tensor:
    """Euclidean distance from each query row to its nearest reference row, ignoring the pairs
    where `exclude` (queries x references, bool) is true."""
    distances = torch.cdist(queries.double(), references.double())
    if exclude is not None:
        distances[exclude] = float("inf")
    return distances.min(1).values


def mean_pairwise_distance(x: torch.Tensor, max_rows: int = 2000) -> float:
    x = x[:max_rows].double()
    distances = torch.cdist(x, x)
    n = len(x)
    return float(distances.sum() / max(1, n * (n - 1)))


GROUP_COUNT = 4


BLACK_CAT = 0


def contingency(clusters: np.ndarray, groups: np.ndarray, n_groups: int = GROUP_COUNT):
    """Counts (clusters x groups) of the points not labelled noise (-1), and the cluster ids."""
    ids = np.unique(clusters[clusters >= 0])
    table = np.zeros((len(ids), n_groups), dtype=np.int64)
    for row, cluster in enumerate(ids):
        table[row] = np.bincount(groups[clusters == cluster], minlength=n_groups)
    return table, ids


def purity(table: np.ndarray) -> float:
    """Share of points whose cluster's majority group is their own group."""
    return float(table.max(1).sum() / max(1, table.sum()))


def cluster_entropy(table: np.ndarray) -> float:
    """Mean entropy (bits) of the group mix inside each cluster, weighted by cluster size."""
    sizes = table.sum(1)
    shares = table / np.maximum(sizes[:, None], 1)
    logs = np.log2(shares, where=shares > 0, out=np.zeros_like(shares))
    per_cluster = -(shares * logs).sum(1)
    return float((per_cluster * sizes).sum() / max(1, sizes.sum()))


def hungarian(table: np.ndarray) -> dict[int, int]:
    """Row (cluster) -> column (group) matching that maximises the points on their group."""
    from scipy.optimize import linear_sum_assignment

    rows, cols = linear_sum_assignment(-table)
    return dict(zip(rows.tolist(), cols.tolist(), strict=True))


def binary_scores(predicted: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """Accuracy, precision, recall and F1 of a yes/no prediction (yes = black cat)."""
    tp = int((predicted & truth).sum())
    fp = int((predicted & ~truth).sum())
    fn = int((~predicted & truth).sum())
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {
        "accuracy": float((predicted == truth).mean()),
        "precision": precision,
        "recall": recall,
        "f1": f1,
    }


def reference_values(groups: np.ndarray) -> dict[str, float]:
    """F1 for 'black cat' of trivial rules any method must beat: call everything a black cat;
    a perfect black detector; a perfect cat detector."""
    truth = groups == BLACK_CAT
    return {
        "all positive": binary_scores(np.ones_like(truth), truth)["f1"],
        "perfect black detector": binary_scores((groups == 0) | (groups == 2), truth)["f1"],
        "perfect cat detector": binary_scores((groups == 0) | (groups == 1), truth)["f1"],
    }


def ranking_scores(score: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """Threshold-free quality of a black-cat score: ROC AUC and average precision."""
    from sklearn.metrics import average_precision_score, roc_auc_score

    if truth.all() or not truth.any():
        return {"roc auc": float("nan"), "average precision": float("nan")}
    return {
        "roc auc": float(roc_auc_score(truth, score)),
        "average precision": float(average_precision_score(truth, score)),
    }


def probe_scores(train_x, train_groups, test_x, c: float = 1.0) -> np.ndarray:
    """A logistic regression for black-cat-vs-rest (standardised features, balanced classes)
    trained on labelled images; its decision value on `test_x` (> 0: black cat)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    # liblinear: the same L2-regularised logistic regression (its intercept regularised too,
    # a negligible difference on standardised features), 6x faster than lbfgs here (measured:
    # 0.19 s vs 1.14 s on 1,280 x 1,024 features, the same accuracy to 0.004).
    probe = make_pipeline(
        StandardScaler(),
        LogisticRegression(C=c, solver="liblinear", max_iter=3000, class_weight="balanced"),
    )
    probe.fit(train_x, train_groups == BLACK_CAT)
    return probe.decision_function(test_x)


def linear_probe(train_x, train_groups, test_x, test_groups, c: float = 1.0) -> dict[str, float]:
    """The probe's accuracy, precision, recall, F1 (at its own threshold), ROC AUC and average
    precision on `test_x`."""
    score = probe_scores(train_x, train_groups, test_x, c)
    truth = test_groups == BLACK_CAT
    return {**binary_scores(score > 0, truth), **ranking_scores(score, truth)}


def label_efficiency(
    x_lab, g_lab, x_eval, g_eval, sizes: tuple[int, ...], c: float, seed: int
) -> dict[str, dict[str, float]]:
    """Probe F1 and ROC AUC with `n` labelled images per group, for each `n` of `sizes` (a
    seeded draw from the labelled part): how many black-cat labels a representation needs."""

    rng = np.random.default_rng(derive_seed(seed, "label efficiency"))
    out = {}
    for n in sizes:
        chosen = np.concatenate(
            [rng.permutation(np.flatnonzero(g_lab == g))[:n] for g in range(GROUP_COUNT)]
        )
        result = linear_probe(x_lab[chosen], g_lab[chosen], x_eval, g_eval, c)
        out[str(n)] = {"f1": result["f1"], "roc auc": result["roc auc"]}
    return out


def centroid_cosine(x: np.ndarray, groups: np.ndarray, n_groups: int = GROUP_COUNT) -> np.ndarray:
    """Cosine similarity between the mean feature vectors of the groups (groups x groups)."""
    centroids = np.stack([x[groups == g].mean(0) for g in range(n_groups)])
    centroids = centroids / np.maximum(np.linalg.norm(centroids, axis=1, keepdims=True), 1e-12)
    return centroids @ centroids.T


def cluster_all(x: np.ndarray, embedding: np.ndarray, cfg, seed: int) -> dict[str, np.ndarray]:
    """Cluster labels from K-means on the features and on the UMAP embedding, and from DBSCAN
    and HDBSCAN on the embedding (noise = -1)."""
    from sklearn.cluster import DBSCAN, HDBSCAN, KMeans
    from sklearn.preprocessing import StandardScaler

    scaled = StandardScaler().fit_transform(x)
    k = cfg.kmeans_clusters
    return {
        "K-means (features)": KMeans(k, n_init=10, random_state=seed).fit_predict(scaled),
        "K-means (UMAP)": KMeans(k, n_init=10, random_state=seed).fit_predict(embedding),
        "DBSCAN (UMAP)": DBSCAN(eps=cfg.dbscan_eps, min_samples=cfg.dbscan_min_samples).fit_predict(
            embedding
        ),
        "HDBSCAN (UMAP)": HDBSCAN(
            min_cluster_size=min(cfg.hdbscan_min_cluster_size, max(2, len(x) // 4)), copy=True
        ).fit_predict(embedding),
    }


def matched_cluster_metrics(
    clusters_lab: np.ndarray, g_lab: np.ndarray, clusters_eval: np.ndarray, g_eval: np.ndarray
) -> dict[str, float]:
    """Score a clustering as a black-cat detector without letting the scored images choose the
    matching: clusters are matched to groups (Hungarian) on the labelled images, and the
    clusters matched to 'black cat' are scored on the evaluated images. Also label-free
    agreement with the four groups (adjusted Rand index, adjusted mutual information), purity
    and entropy on the evaluated images, and the best single cluster's black-cat F1 (chosen on
    the evaluated images themselves: the most favourable reading, an upper bound)."""
    from sklearn.metrics import adjusted_mutual_info_score, adjusted_rand_score

    truth = g_eval == BLACK_CAT
    scores = binary_scores(np.isin(clusters_eval, black_cat_clusters(clusters_lab, g_lab)), truth)
    table, ids = contingency(clusters_eval, g_eval)
    best = max(
        (binary_scores(clusters_eval == cluster, truth)["f1"] for cluster in ids), default=0.0
    )
    return {
        "clusters": int(len(ids)),
        "noise": float((clusters_eval < 0).mean()),
        "purity": purity(table) if len(ids) else 0.0,
        "entropy": cluster_entropy(table) if len(ids) else float("nan"),
        "ari": float(adjusted_rand_score(g_eval, clusters_eval)),
        "ami": float(adjusted_mutual_info_score(g_eval, clusters_eval)),
        "best cluster f1": float(best),
        **{f"black cat {k}": v for k, v in scores.items()},
    }


def black_cat_clusters(clusters: np.ndarray, groups: np.ndarray) -> list[int]:
    """The clusters matched to 'black cat' (Hungarian, clusters to groups) on labelled images."""
    table, ids = contingency(clusters, groups)
    mapping = hungarian(table) if len(ids) else {}
    return [ids[row] for row, group in mapping.items() if group == BLACK_CAT]


def fold_assignment(truth: np.ndarray, folds: int, seed: int) -> np.ndarray:
    """Each image's fold of a stratified k-fold split (by black cat or not), drawn from `seed`."""
    from sklearn.model_selection import StratifiedKFold

    fold = np.empty(len(truth), np.int64)
    splitter = StratifiedKFold(folds, shuffle=True, random_state=derive_seed(seed, "folds"))
    for k, (_, test) in enumerate(splitter.split(np.zeros(len(truth)), truth)):
        fold[test] = k
    return fold


def out_of_fold_probe(x: np.ndarray, groups: np.ndarray, fold: np.ndarray, c: float) -> np.ndarray:
    """Every image's probe score from the probe trained on the other folds (`probe_scores`)."""
    score = np.empty(len(x))
    for k in np.unique(fold):
        held = fold == k
        score[held] = probe_scores(x[~held], groups[~held], x[held], c)
    return score


def original_protocol(
    embedding: np.ndarray, groups: np.ndarray, seed: int, states: int = 10
) -> dict[str, float]:
    """The original project's protocol on a 2-D UMAP embedding: K-means with 2 clusters, the
    cluster holding most black cats called "black cat" (chosen on the scored images
    themselves), then accuracy, precision, recall, F1, and the clusters' purity and entropy
    against the four groups. The original chose K-means' random state per model; here it is
    run with `states` random states: the mean, and the best accuracy, which is what choosing
    the state can buy (`analysis.protocol_states` in the pipeline)."""
    from sklearn.cluster import KMeans

    truth = groups == BLACK_CAT
    runs = []
    for state in range(states):
        clusters = KMeans(2, n_init=1, random_state=derive_seed(seed, "2-means", state))
        clusters = clusters.fit_predict(embedding)
        chosen = np.argmax([(truth & (clusters == c)).sum() for c in (0, 1)])
        table, _ = contingency(clusters, groups)
        runs.append(
            {
                **binary_scores(clusters == chosen, truth),
                "purity": purity(table),
                "entropy": cluster_entropy(table),
            }
        )
    mean = {key: float(np.mean([r[key] for r in runs])) for key in runs[0]}
    return mean | {"best accuracy": float(max(r["accuracy"] for r in runs))}


def random_clusters_reference(
    g_lab: np.ndarray, g_eval: np.ndarray, k: int, seed: int, draws: int = 20
) -> dict[str, float]:
    """What the clustering protocol gives a clustering that found nothing: `k` clusters drawn
    at random (the same as shuffling the labels), matched and scored as every model is; the
    mean over `draws` draws."""

    rng = np.random.default_rng(derive_seed(seed, "random clusters"))
    results = [
        matched_cluster_metrics(
            rng.integers(k, size=len(g_lab)), g_lab, rng.integers(k, size=len(g_eval)), g_eval
        )
        for _ in range(draws)
    ]
    return {key: float(np.mean([r[key] for r in results])) for key in results[0]}


def contingency_frame(clusters: np.ndarray, groups: np.ndarray, group_names):
    """Clusters x groups counts as a table (noise, if any, as its own row)."""
    import pandas as pd

    table, ids = contingency(clusters, groups)
    frame = pd.DataFrame(table, index=[f"cluster {i}" for i in ids], columns=list(group_names))
    if (clusters < 0).any():
        frame.loc["noise"] = np.bincount(groups[clusters < 0], minlength=len(group_names))
    return frame


def as_original_ran_it(x: np.ndarray, groups: np.ndarray, umap_state: int, kmeans_state: int):
    """The original's protocol once, with its own settings: UMAP at umap-learn's defaults (15
    neighbours, min_dist 0.1, its own epoch count) with `umap_state`, then
    `KMeans(n_clusters=2, random_state=kmeans_state)` at scikit-learn's defaults; the cluster
    with most black cats is called "black cat". Returns accuracy, precision, recall and F1."""
    from sklearn.cluster import KMeans

    umap = _umap()
    with torch_threads_kept():
        embedding = umap.UMAP(n_components=2, random_state=umap_state).fit_transform(
            x.astype(np.float32)
        )
    clusters = KMeans(n_clusters=2, random_state=kmeans_state).fit_predict(embedding)
    truth = groups == BLACK_CAT
    chosen = np.argmax([(truth & (clusters == c)).sum() for c in (0, 1)])
    return binary_scores(clusters == chosen, truth)
