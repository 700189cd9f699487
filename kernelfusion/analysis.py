"""Features, low-dimensional embeddings, clustering and the metrics that judge them."""

from __future__ import annotations

import warnings

import numpy as np
import torch


def umap_embedding(
    x: torch.Tensor | np.ndarray, seed: int, n_neighbors: int = 15, min_dist: float = 0.1
) -> np.ndarray:
    """A 2-D UMAP of the rows of `x` (umap-learn), reproducible for a given seed."""
    with warnings.catch_warnings():  # umap imports tqdm.auto, which warns in a kernel
        warnings.simplefilter("ignore")
        import umap

    data = x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
    reducer = umap.UMAP(
        n_components=2,
        n_neighbors=min(n_neighbors, len(data) - 1),
        min_dist=min_dist,
        random_state=seed,
        n_jobs=1,
    )
    return reducer.fit_transform(data.astype(np.float32))


def frechet_distance(a: torch.Tensor, b: torch.Tensor) -> float:
    """Fréchet distance between Gaussians fitted to the rows of `a` and of `b`."""
    from scipy import linalg

    a, b = a.double().numpy(), b.double().numpy()
    mu_a, mu_b = a.mean(0), b.mean(0)
    eye = np.eye(a.shape[1]) * 1e-6  # keeps the square root defined for singular covariances
    cov_a, cov_b = np.cov(a, rowvar=False) + eye, np.cov(b, rowvar=False) + eye
    root = np.real(linalg.sqrtm(cov_a @ cov_b))
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(cov_a + cov_b - 2 * root))


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
