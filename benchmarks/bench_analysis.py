"""Analysis: UMAP and clustering time against the number of points (how cost grows)."""

from __future__ import annotations

import time

import numpy as np

from kernelfusion import config, measures

from .common import table


def run(sizes: tuple[int, ...] = (1000, 5000, 30000), dim: int = 256) -> list[dict]:
    cfg = config.load("default").analysis
    rng = np.random.default_rng(0)
    for warm in (200, 5000):  # numba compiles both the exact and the approximate kNN paths
        measures.umap_embedding(rng.normal(size=(warm, dim)).astype(np.float32), seed=0)
    rows = []
    for n in sizes:
        centres = rng.normal(scale=3, size=(4, dim))
        x = (centres[rng.integers(0, 4, n)] + rng.normal(size=(n, dim))).astype(np.float32)
        started = time.perf_counter()
        embedding = measures.umap_embedding(x, seed=0)
        umap_s = time.perf_counter() - started
        started = time.perf_counter()
        measures.cluster_all(x, embedding, cfg, seed=0)
        cluster_s = time.perf_counter() - started
        rows.append(
            {
                "points": n,
                "dims": dim,
                "UMAP s": umap_s,
                "K-means x2 + DBSCAN + HDBSCAN s": cluster_s,
                "UMAP s per 1k points": umap_s / n * 1000,
            }
        )
    table("analysis cost against the number of points", rows)
    return rows


if __name__ == "__main__":
    run()
