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
