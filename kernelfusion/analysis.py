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


# --- cluster metrics ---------------------------------------------------------------------------

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


def cluster_metrics(clusters: np.ndarray, groups: np.ndarray) -> dict[str, float]:
    """Purity, entropy, noise and black-cat scores after Hungarian matching of the clusters."""
    table, ids = contingency(clusters, groups)
    mapping = hungarian(table) if len(ids) else {}
    black_cat_clusters = [ids[row] for row, group in mapping.items() if group == BLACK_CAT]
    predicted = np.isin(clusters, black_cat_clusters)
    scores = binary_scores(predicted, groups == BLACK_CAT)
    return {
        "clusters": int(len(ids)),
        "noise": float((clusters < 0).mean()),
        "purity": purity(table) if len(ids) else 0.0,
        "entropy": cluster_entropy(table) if len(ids) else float("nan"),
        **{f"black cat {k}": v for k, v in scores.items()},
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


def linear_probe(train_x, train_groups, test_x, test_groups, c: float = 1.0) -> dict[str, float]:
    """A logistic regression for black-cat-vs-rest, trained on a small labelled split."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    probe = make_pipeline(
        StandardScaler(), LogisticRegression(C=c, max_iter=3000, class_weight="balanced")
    )
    probe.fit(train_x, train_groups == BLACK_CAT)
    predicted = probe.predict(test_x).astype(bool)
    return binary_scores(predicted, test_groups == BLACK_CAT)


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
            min_cluster_size=cfg.hdbscan_min_cluster_size, copy=True
        ).fit_predict(embedding),
    }


# --- the metrics stage -------------------------------------------------------------------------


def evaluation_split(eval_set) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices of the labelled part of the evaluation set (its train split: only the oracle and
    the linear probe see its labels) and of the part every metric is computed on (val + test)."""
    return (eval_set.split == 0).nonzero().flatten(), (eval_set.split != 0).nonzero().flatten()


def _metrics_for(x_lab, g_lab, x_eval, g_eval, cfg, seed):
    embedding = umap_embedding(
        x_eval, seed, cfg.analysis.umap_neighbors, cfg.analysis.umap_min_dist
    )
    clusterings = cluster_all(x_eval, embedding, cfg.analysis, seed)
    result = {method: cluster_metrics(labels, g_eval) for method, labels in clusterings.items()}
    result["linear probe"] = linear_probe(x_lab, g_lab, x_eval, g_eval, cfg.analysis.probe_c)
    result["centroid cosine"] = centroid_cosine(x_eval, g_eval).tolist()
    return result, embedding, clusterings


def evaluate_models(cfg, datasets, sources, models, store, *, force=False, progress=True):
    """Features of every model on the evaluation set, clustered and scored; saved as the
    `metrics` stage (metrics.json, embeddings) that chapters 6 and 7 read."""
    from . import fusion
    from .config import resolve_device, stage_key
    from .progress import bar as progress_bar

    device = resolve_device(cfg.device)

    def build(writer) -> None:
        labelled, evaluated = evaluation_split(datasets.eval)
        g_lab = datasets.eval.groups[labelled].numpy()
        g_eval = datasets.eval.groups[evaluated].numpy()
        metrics, embeddings = {}, {}
        for name in progress_bar(models.cnns, desc="clustering features", progress=progress):
            x = fusion.features(models.cnns[name], datasets.eval.images, device).numpy()
            result, embedding, clusterings = _metrics_for(
                x[labelled], g_lab, x[evaluated], g_eval, cfg, cfg.seed
            )
            metrics[name] = result
            embeddings[name] = torch.as_tensor(embedding)
            embeddings[f"{name} :: clusters"] = torch.as_tensor(clusterings["K-means (UMAP)"])
        score = fusion.product_score(sources, datasets.eval.images, device).numpy()[evaluated]
        truth = g_eval == BLACK_CAT
        from sklearn.metrics import roc_auc_score

        scores = {
            "p(black) x p(cat)": {
                **binary_scores(score > 0.25, truth),
                "roc auc": float(roc_auc_score(truth, score)),
            }
        }
        writer.save_json(
            "metrics",
            {
                "models": metrics,
                "score models": scores,
                "references": reference_values(g_eval),
                "evaluated images": int(len(evaluated)),
                "labelled images": int(len(labelled)),
                "groups": np.bincount(g_eval, minlength=GROUP_COUNT).tolist(),
                "seed": cfg.seed,
            },
        )
        writer.save_tensors(
            "embeddings",
            {**{f"model {k}": v.float() for k, v in embeddings.items()}, "evaluated": evaluated},
        )

    key = stage_key(cfg, "analysis", version=1)
    return store.stage(
        "metrics",
        key,
        build,
        force=force,
        inputs=[datasets.artifact, sources.artifact, models.artifact],
    )


def metrics_table(metrics: dict, method: str = "K-means (UMAP)"):
    """One row per model: black-cat F1 under `method` and under the linear probe, purity,
    entropy; the score model and the reference values as extra rows."""
    import pandas as pd

    from .fusion import MODELS

    rows = {}
    for name in sorted(metrics["models"], key=lambda n: list(MODELS).index(n)):
        result = metrics["models"][name]
        rows[name] = {
            f"F1 {method}": result[method]["black cat f1"],
            "F1 K-means (features)": result["K-means (features)"]["black cat f1"],
            "F1 HDBSCAN (UMAP)": result["HDBSCAN (UMAP)"]["black cat f1"],
            "F1 linear probe": result["linear probe"]["f1"],
            f"purity {method}": result[method]["purity"],
            f"entropy {method} (bits)": result[method]["entropy"],
        }
    for name, result in metrics["score models"].items():
        rows[name] = {
            "F1 linear probe": np.nan,
            f"F1 {method}": np.nan,
            "F1 threshold 0.25": result["f1"],
            "ROC AUC": result["roc auc"],
        }
    for name, f1 in metrics["references"].items():
        rows[f"reference: {name}"] = {f"F1 {method}": f1}
    return pd.DataFrame(rows).T


def long_metrics(results: dict[int, dict]):
    """The metrics files of several seeds as one long table (seed, model, metric, value)."""
    import pandas as pd

    rows = []
    for seed, metrics in results.items():
        for model, result in metrics["models"].items():
            for method in ("K-means (UMAP)", "K-means (features)", "HDBSCAN (UMAP)"):
                rows.append((seed, model, f"F1 {method}", result[method]["black cat f1"]))
            rows.append((seed, model, "purity K-means (UMAP)", result["K-means (UMAP)"]["purity"]))
            rows.append((seed, model, "F1 linear probe", result["linear probe"]["f1"]))
        for model, result in metrics["score models"].items():
            rows.append((seed, model, "F1 threshold 0.25", result["f1"]))
            rows.append((seed, model, "ROC AUC", result["roc auc"]))
        for name, value in metrics["references"].items():
            rows.append((seed, f"reference: {name}", "F1 K-means (UMAP)", value))
    return pd.DataFrame(rows, columns=["seed", "model", "metric", "value"])


def mean_ci(frame, confidence: float = 0.95):
    """Mean and half-width of the t-interval of `value` per model and metric."""
    from scipy import stats

    def summarise(values):
        n = len(values)
        mean = float(values.mean())
        half = (
            float(stats.t.ppf((1 + confidence) / 2, n - 1) * values.std(ddof=1) / np.sqrt(n))
            if n > 1
            else float("nan")
        )
        return {"mean": mean, "ci95": half, "seeds": n}

    import pandas as pd

    rows = [
        {"model": model, "metric": metric, **summarise(group["value"])}
        for (model, metric), group in frame.groupby(["model", "metric"], sort=False)
    ]
    return pd.DataFrame(rows)


def comparison(summary, metric: str, model: str = "generated F(cat CNN)") -> list[dict]:
    """For each other model: does `model` beat it on `metric` beyond both intervals?"""
    part = summary[summary["metric"] == metric].set_index("model")
    if model not in part.index:
        return []
    mine = part.loc[model]
    out = []
    for other, row in part.iterrows():
        if other == model:
            continue
        low, high = mine["mean"] - mine["ci95"], mine["mean"] + mine["ci95"]
        other_low, other_high = row["mean"] - row["ci95"], row["mean"] + row["ci95"]
        verdict = (
            "better" if low > other_high else "worse" if high < other_low else "not distinguishable"
        )
        out.append(
            {
                "rival": other,
                "rival mean": row["mean"],
                "generated mean": mine["mean"],
                "verdict": verdict,
            }
        )
    return out


def contingency_frame(clusters: np.ndarray, groups: np.ndarray, group_names):
    """Clusters x groups counts as a table (noise, if any, as its own row)."""
    import pandas as pd

    table, ids = contingency(clusters, groups)
    frame = pd.DataFrame(table, index=[f"cluster {i}" for i in ids], columns=list(group_names))
    if (clusters < 0).any():
        frame.loc["noise"] = np.bincount(groups[clusters < 0], minlength=len(group_names))
    return frame


def results_table(summary):
    """Models x metrics, each cell 'mean ± ci95'."""
    cells = summary.assign(
        cell=[
            f"{m:.3f} ± {c:.3f}" if c == c else f"{m:.3f}"
            for m, c in zip(summary["mean"], summary["ci95"], strict=True)
        ]
    )
    from .fusion import MODELS

    table = cells.pivot(index="model", columns="metric", values="cell").fillna("")
    known = list(MODELS) + [m for m in dict.fromkeys(summary["model"]) if m not in MODELS]
    return table.loc[[m for m in known if m in table.index]]


def verdict_counts(rows: list[dict]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for row in rows:
        counts[row["verdict"]] = counts.get(row["verdict"], 0) + 1
    return counts


def verdict_table(verdicts: dict[str, list[dict]]):
    """Rivals x metrics: better / worse / not distinguishable (for the generated CNN)."""
    import pandas as pd

    return pd.DataFrame(
        {metric: {r["rival"]: r["verdict"] for r in rows} for metric, rows in verdicts.items()}
    )


def noise_table(metrics: dict):
    """Clusters found and share of points left as noise by DBSCAN and HDBSCAN, per model."""
    import pandas as pd

    return pd.DataFrame(
        {
            name: {
                "DBSCAN clusters": r["DBSCAN (UMAP)"]["clusters"],
                "DBSCAN noise": r["DBSCAN (UMAP)"]["noise"],
                "HDBSCAN clusters": r["HDBSCAN (UMAP)"]["clusters"],
                "HDBSCAN noise": r["HDBSCAN (UMAP)"]["noise"],
            }
            for name, r in metrics["models"].items()
        }
    ).T
