"""The metrics stage: every model's features on the evaluation set, probed, embedded,
clustered and put through the original protocol; one cached stage per model (keyed by its
weights) and the run's `metrics` stage over them. And the catalogue of metrics the chapters
read from its file.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import torch

from .cnn import SourceCNNs, features, positive_probability
from .config import Config, resolve_device
from .data import Datasets
from .fusion import AND_RULE, AND_ZERO_SHOT, DECISIVE, GENERATED, MODELS, Models, file_name, label
from .machine import derive_seed
from .measures import (
    BLACK_CAT,
    GROUP_COUNT,
    binary_scores,
    black_cat_clusters,
    centroid_cosine,
    cluster_all,
    fold_assignment,
    label_efficiency,
    matched_cluster_metrics,
    original_protocol,
    out_of_fold_probe,
    probe_scores,
    random_clusters_reference,
    ranking_scores,
    reference_values,
    umap_embedding,
)
from .progress import bar as progress_bar
from .stage_keys import stage_key
from .store import Artifact, Store

# Labelled images per group for the label-efficiency curve (those above the labelled part's
# size are left out): a factor of 4 apart, from a handful to what the default preset labels.
LABEL_SIZES = (5, 20, 80, 320)


def evaluation_split(eval_set) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices of the labelled part of the evaluation set (its train split: only the oracle and
    the linear probe see its labels) and of the part every metric is computed on (val + test)."""
    return (eval_set.split == 0).nonzero().flatten(), (eval_set.split != 0).nonzero().flatten()


def cluster_sample(
    g_lab: np.ndarray, g_eval: np.ndarray, cfg, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Fixed random subsets (positions into the labelled and evaluated parts) that the UMAP and
    clustering views use: `analysis.cluster_labelled` labelled and `analysis.cluster_points`
    evaluated images, the same for every model of a run. Probes use every image."""

    rng = np.random.default_rng(derive_seed(seed, "cluster sample"))
    lab = np.sort(rng.permutation(len(g_lab))[: cfg.analysis.cluster_labelled])
    ev = np.sort(rng.permutation(len(g_eval))[: cfg.analysis.cluster_points])
    return lab, ev


def protocol_sample(count: int, cfg, seed: int) -> np.ndarray:
    """Fixed positions into the whole evaluation set (`count` images) that the original
    protocol embeds, clusters and scores, with its "call nothing a black cat" reference:
    `analysis.protocol_points` of them, or every image at 0; the same for every model of a
    run."""

    chosen = cfg.analysis.protocol_points
    if chosen == 0 or chosen >= count:
        return np.arange(count)
    rng = np.random.default_rng(derive_seed(seed, "protocol sample"))
    return np.sort(rng.permutation(count)[:chosen])


def protocol_run(x: np.ndarray, groups: np.ndarray, cfg, seed: int, *names) -> dict[str, float]:
    """The original protocol on one model's features `x` of the protocol's images: a UMAP of
    those images alone (no label, no other image), then `original_protocol`."""

    embedding = umap_embedding(
        x,
        derive_seed(seed, "protocol umap", *names),
        cfg.analysis.umap_neighbors,
        cfg.analysis.umap_min_dist,
        cfg.analysis.umap_epochs,
    )
    return original_protocol(
        embedding, groups, derive_seed(seed, "protocol", *names), cfg.analysis.protocol_states
    )


def _metrics_for(x_lab, g_lab, x_eval, g_eval, sample, cfg, protocol=None):
    """Every view of one model's features (the linear probe alone with `analysis.views =
    probe`); the UMAP embedding and K-means clusters of the evaluated images of the cluster
    sample (for the chapter's figures; empty for the probe alone); and the probe's scores.
    `protocol`: (features, groups) of the original protocol's images (`protocol_sample`)."""

    lab, ev = sample
    if cfg.analysis.views == "probe":
        result = {}
    else:
        result, embedding, clusters = _cluster_views(x_lab, g_lab, x_eval, g_eval, sample, cfg)
    score = probe_scores(x_lab, g_lab, x_eval, cfg.analysis.probe_c)
    truth = g_eval == BLACK_CAT
    result["linear probe"] = {**binary_scores(score > 0, truth), **ranking_scores(score, truth)}
    if cfg.analysis.views == "probe":  # chapter 08 compares the arms on these alone
        return result, np.zeros((0, 2), np.float32), np.zeros(0, np.int64), score
    available = int(np.bincount(g_lab, minlength=GROUP_COUNT).min())
    sizes = tuple(n for n in LABEL_SIZES if n < available)
    result["label efficiency"] = label_efficiency(
        x_lab, g_lab, x_eval, g_eval, sizes, cfg.analysis.probe_c, cfg.seed
    )
    # the last point, every labelled image, is the probe above (not trained twice)
    result["label efficiency"][str(available)] = {
        k: result["linear probe"][k] for k in ("f1", "roc auc")
    }
    result["centroid cosine"] = centroid_cosine(x_eval, g_eval).tolist()
    if protocol is not None:
        result["original protocol"] = protocol_run(*protocol, cfg, cfg.seed)
    return result, embedding, clusters, score


def _cross_validated(x, groups, fold, cfg, protocol=None):
    """`_metrics_for` with every image scored once (`analysis.folds` > 0): the probe, the
    label-efficiency curve and the clusters' matching to groups learn from the other folds and
    score the held-out one; UMAP and the clusterings, which read no label, see every image. Also
    each image's out-of-fold probe score and K-means call (+1 black cat, -1 not), the per-image
    values `stats.photograph_differences` resamples."""
    truth = groups == BLACK_CAT
    c = cfg.analysis.probe_c
    score = out_of_fold_probe(x, groups, fold, c)
    result = {"linear probe": {**binary_scores(score > 0, truth), **ranking_scores(score, truth)}}
    per_image = {"probe": score.tolist()}
    if cfg.analysis.views == "probe":
        return (
            result | {"per image": per_image},
            np.zeros((0, 2), np.float32),
            np.zeros(0, np.int64),
            score,
        )
    embedding = umap_embedding(
        x,
        derive_seed(cfg.seed, "umap"),
        cfg.analysis.umap_neighbors,
        cfg.analysis.umap_min_dist,
        cfg.analysis.umap_epochs,
    )
    clusterings = cluster_all(x, embedding, cfg.analysis, derive_seed(cfg.seed, "k-means"))
    for method, labels in clusterings.items():
        called = np.zeros(len(x), bool)
        for k in np.unique(fold):
            held = fold == k
            called[held] = np.isin(labels[held], black_cat_clusters(labels[~held], groups[~held]))
        # the label-free scores over every image, the black-cat call out of fold
        views = matched_cluster_metrics(labels, groups, labels, groups)
        result[method] = views | {
            f"black cat {k}": v for k, v in binary_scores(called, truth).items()
        }
        if method == "K-means (UMAP)":
            per_image["K-means"] = np.where(called, 1.0, -1.0).tolist()
    available = int(
        min(np.bincount(groups[fold != k], minlength=GROUP_COUNT).min() for k in np.unique(fold))
    )
    rng = np.random.default_rng(derive_seed(cfg.seed, "label efficiency"))
    curve = {}
    for n in (n for n in LABEL_SIZES if n < available):
        part = np.empty(len(x))
        for k in np.unique(fold):
            held = fold == k
            train = np.flatnonzero(~held)
            chosen = np.concatenate(
                [rng.permutation(train[groups[train] == g])[:n] for g in range(GROUP_COUNT)]
            )
            part[held] = probe_scores(x[chosen], groups[chosen], x[held], c)
        curve[str(n)] = {
            "f1": binary_scores(part > 0, truth)["f1"],
            "roc auc": ranking_scores(part, truth)["roc auc"],
        }
    curve[str(available)] = {k: result["linear probe"][k] for k in ("f1", "roc auc")}
    result["label efficiency"] = curve
    result["centroid cosine"] = centroid_cosine(x, groups).tolist()
    if protocol is not None:
        result["original protocol"] = protocol_run(*protocol, cfg, cfg.seed)
    result["per image"] = per_image
    return result, embedding, clusterings["K-means (UMAP)"], score


def _cluster_views(x_lab, g_lab, x_eval, g_eval, sample, cfg):
    """The UMAP and clustering views of one model's features on the cluster sample; the
    embedding and K-means clusters of its evaluated images."""

    lab, ev = sample
    joint = np.concatenate([x_lab[lab], x_eval[ev]])
    embedding = umap_embedding(
        joint,
        derive_seed(cfg.seed, "umap"),
        cfg.analysis.umap_neighbors,
        cfg.analysis.umap_min_dist,
        cfg.analysis.umap_epochs,
    )
    clusterings = cluster_all(joint, embedding, cfg.analysis, derive_seed(cfg.seed, "k-means"))
    n = len(lab)
    result = {
        method: matched_cluster_metrics(labels[:n], g_lab[lab], labels[n:], g_eval[ev])
        for method, labels in clusterings.items()
    }
    return result, embedding[n:], clusterings["K-means (UMAP)"][n:]


def weights_hash(model) -> str:
    """sha256 of a model's weights (of both, for a pair of CNNs), in a fixed order."""

    digest = hashlib.sha256()
    for part in model if isinstance(model, tuple) else (model,):
        for key, value in sorted(part.state_dict().items()):
            digest.update(key.encode())
            digest.update(value.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def per_image_values(metrics: dict, fitted: np.ndarray, zero_shot: np.ndarray, groups) -> dict:
    """The per-image values of a cross-validated run, gathered from each model's result: the
    truth, and per model its out-of-fold probe score and K-means call (> 0: black cat)."""
    values = {"truth": (groups == BLACK_CAT).tolist(), "probe": {}, "K-means": {}}
    for name, result in metrics.items():
        for view, value in result.get("per image", {}).items():
            values[view][name] = value
    values["probe"] |= {AND_RULE: fitted.tolist(), AND_ZERO_SHOT: zero_shot.tolist()}
    return values


@dataclass
class Metrics:
    """The metrics stage's result: its metrics file (`values`: models keyed by id) and the
    artifact holding the embeddings and per-image scores."""

    values: dict
    artifact: Artifact

    def embeddings(self) -> dict[str, torch.Tensor]:
        """Per model: its UMAP embedding, K-means clusters and probe scores; and the indices of
        the evaluated and cluster-sample images, with their groups."""
        return self.artifact.tensors("embeddings")


def scored(cfg: Config, names: Iterable[str]) -> list[str]:
    """The models of `names` the metrics stage scores: every one; with `analysis.views =
    probe` (chapter 08's arms, which compare each generated CNN with the decisive rivals and
    read nothing else) the generated CNNs and the decisive rivals alone (the controls', the
    oracle's and the other descriptive models' probes were a third of those runs' metrics)."""
    if cfg.analysis.views != "probe":
        return list(names)
    return [name for name in names if name in GENERATED or name in DECISIVE]


def make_metrics(
    cfg: Config,
    store: Store,
    datasets: Datasets,
    sources: SourceCNNs,
    models: Models,
    *,
    progress: bool = True,
    force: bool = False,
) -> Metrics:
    """Features of every model on the evaluation set, probed and clustered; saved as the
    `metrics` stage (metrics.json; embeddings and per-image probe scores) that chapters 6 and
    7 read."""

    device = resolve_device(cfg.device)

    def build(writer) -> None:
        g_all = datasets.eval.groups.numpy()
        folds = cfg.analysis.folds
        if folds:  # every image scored, out of fold
            fold = fold_assignment(g_all == BLACK_CAT, folds, cfg.seed)
            labelled = evaluated = torch.arange(len(g_all))
        else:
            labelled, evaluated = evaluation_split(datasets.eval)
        g_lab = datasets.eval.groups[labelled].numpy()
        g_eval = datasets.eval.groups[evaluated].numpy()
        if folds:  # the clustering views see every image (matched out of fold)
            sample = (np.arange(len(g_all)), np.arange(len(g_all)))
        else:
            sample = cluster_sample(g_lab, g_eval, cfg, cfg.seed)
        protocol = protocol_sample(len(g_all), cfg, cfg.seed)
        metrics, tensors = {}, {}
        chosen = scored(cfg, models.cnns)
        for name in progress_bar(chosen, desc="probing and clustering", progress=progress):
            model = models.cnns[name]

            def build_model(model_writer, model=model) -> None:
                x = features(model, datasets.eval.images, device).numpy()
                if folds:
                    result, embedding, clusters, score = _cross_validated(
                        x, g_all, fold, cfg, (x[protocol], g_all[protocol])
                    )
                else:
                    result, embedding, clusters, score = _metrics_for(
                        x[labelled],
                        g_lab,
                        x[evaluated],
                        g_eval,
                        sample,
                        cfg,
                        (x[protocol], g_all[protocol]),
                    )
                model_writer.save_json("result", result)
                model_writer.save_tensors(
                    "views",
                    {
                        "embedding": torch.as_tensor(embedding).float(),
                        "clusters": torch.as_tensor(clusters),
                        "score": torch.as_tensor(score).float(),
                    },
                )

            # One stage per model, keyed by its weights: a change upstream (a GAN setting)
            # recomputes only the models whose weights it changed.
            # 4: the original protocol on its own label-free UMAP of `protocol_sample`
            key = stage_key(cfg, "metrics") | {"weights": weights_hash(model)}
            part = store.stage(
                f"metrics-{file_name(name)}", key, build_model, inputs=[datasets.artifact]
            )
            metrics[name] = part.json("result")
            views = part.tensors("views")
            tensors[f"model {name}"] = views["embedding"]
            tensors[f"model {name} :: clusters"] = views["clusters"]
            tensors[f"probe {name}"] = views["score"]
        images = datasets.eval.images
        # the two classifiers' log-probabilities: the AND rule's inputs, for its probe
        both = np.stack(
            [
                np.log(np.clip(positive_probability(m, images, device).numpy(), 1e-12, 1))
                for m in (sources.black, sources.cat)
            ],
            1,
        )
        if folds:
            fitted = out_of_fold_probe(both, g_all, fold, cfg.analysis.probe_c)
        else:
            fitted = probe_scores(both[labelled], g_lab, both[evaluated], cfg.analysis.probe_c)
        # the zero-shot rule, shifted by its threshold so that > 0 is its yes, as for a probe
        zero_shot = np.exp(both.sum(1))[evaluated.numpy()] - AND_THRESHOLD
        truth = g_eval == BLACK_CAT
        scores = {
            name: {**binary_scores(value > 0, truth), **ranking_scores(value, truth)}
            for name, value in ((AND_RULE, fitted), (AND_ZERO_SHOT, zero_shot))
        }
        tensors[f"probe {AND_RULE}"] = torch.as_tensor(fitted).float()
        tensors[f"probe {AND_ZERO_SHOT}"] = torch.as_tensor(zero_shot).float()
        if folds:  # the per-image values once, in the run's file, not again under each model
            gathered = per_image_values(metrics, fitted, zero_shot, g_all)
            metrics = {
                n: {k: v for k, v in r.items() if k != "per image"} for n, r in metrics.items()
            }
        k = cfg.analysis.kmeans_clusters
        writer.save_json(
            "metrics",
            {
                "models": metrics,
                "score models": scores,
                "references": {
                    **reference_values(g_eval),
                    # the original's accuracy of calling nothing a black cat, on the very
                    # images its protocol scores
                    "call nothing a black cat": float((g_all[protocol] != BLACK_CAT).mean()),
                    "random clusters": random_clusters_reference(
                        g_lab[sample[0]], g_eval[sample[1]], k, cfg.seed
                    )["black cat f1"],
                },
                "evaluated images": int(len(evaluated)),
                # with folds, the images each probe learns from (the other folds), on average
                "labelled images": round(len(g_all) * (folds - 1) / folds)
                if folds
                else int(len(labelled)),
                "cluster sample": [int(len(sample[0])), int(len(sample[1]))],
                "protocol images": int(len(protocol)),
                "groups": np.bincount(g_eval, minlength=GROUP_COUNT).tolist(),
                "seed": cfg.seed,
                "folds": folds,
                # each image's out-of-fold scores, where the photograph is the unit
                **({"per image": gathered} if folds else {}),
            },
        )
        writer.save_tensors(
            "embeddings",
            {
                **tensors,
                "evaluated": evaluated,
                "cluster points": evaluated[torch.as_tensor(sample[1])],
                "truth": torch.as_tensor(g_eval),
            },
        )

    artifact = store.stage(
        "metrics",
        stage_key(cfg, "metrics"),
        build,
        force=force,
        inputs=[datasets.artifact, sources.artifact, models.artifact],
    )
    return Metrics(artifact.json("metrics"), artifact)


@dataclass(frozen=True)
class Metric:
    """Where a metric is read in a model's result (`view`, then `key`) and what it measures."""

    view: str
    key: str
    what: str


# Every metric of the results, by name: the name is the label in every table and figure.
METRICS: dict[str, Metric] = {
    "probe F1": Metric(
        "linear probe", "f1", "black-cat F1 of a logistic regression on the labelled images"
    ),
    "probe ROC AUC": Metric(
        "linear probe", "roc auc", "ROC AUC of the probe's score (of the rule's, for AND)"
    ),
    "probe AP": Metric("linear probe", "average precision", "average precision of that score"),
    "probe accuracy": Metric("linear probe", "accuracy", "accuracy at the probe's own threshold"),
    "probe precision": Metric(
        "linear probe", "precision", "precision at the probe's own threshold"
    ),
    "probe recall": Metric("linear probe", "recall", "recall at the probe's own threshold"),
    "K-means F1": Metric(
        "K-means (UMAP)", "black cat f1", "black-cat F1, clusters matched on the labelled images"
    ),
    "K-means accuracy": Metric(
        "K-means (UMAP)", "black cat accuracy", "accuracy of the cluster(s) matched to black cat"
    ),
    "K-means precision": Metric(
        "K-means (UMAP)", "black cat precision", "precision of the matched cluster(s)"
    ),
    "K-means recall": Metric(
        "K-means (UMAP)", "black cat recall", "recall of the matched cluster(s)"
    ),
    "K-means ARI": Metric("K-means (UMAP)", "ari", "adjusted Rand index against the four groups"),
    "K-means AMI": Metric(
        "K-means (UMAP)", "ami", "adjusted mutual information against the four groups"
    ),
    "K-means purity": Metric(
        "K-means (UMAP)", "purity", "share of points in their cluster's majority group"
    ),
    "K-means entropy": Metric(
        "K-means (UMAP)", "entropy", "mean entropy (bits) of the groups in a cluster"
    ),
    "best-cluster F1": Metric(
        "K-means (UMAP)", "best cluster f1", "the best single cluster's F1 (chosen on the scored"
    ),
    "K-means (features) F1": Metric(
        "K-means (features)", "black cat f1", "K-means on the standardised features"
    ),
    "HDBSCAN F1": Metric(
        "HDBSCAN (UMAP)", "black cat f1", "black-cat F1 of HDBSCAN's matched cluster(s)"
    ),
    "HDBSCAN ARI": Metric("HDBSCAN (UMAP)", "ari", "adjusted Rand index of HDBSCAN's clusters"),
    "original accuracy": Metric(
        "original protocol", "accuracy", "2-means, majority cluster: accuracy"
    ),
    "original precision": Metric(
        "original protocol", "precision", "2-means, majority cluster: precision"
    ),
    "original recall": Metric("original protocol", "recall", "2-means, majority cluster: recall"),
    "original F1": Metric("original protocol", "f1", "2-means, majority cluster: F1"),
    "original purity": Metric(
        "original protocol", "purity", "2-means: purity against the four groups"
    ),
    "original entropy": Metric(
        "original protocol", "entropy", "2-means: entropy (bits) of the groups"
    ),
    "original best accuracy": Metric(
        "original protocol", "best accuracy", "best accuracy over K-means states"
    ),
}


# The rule's yes: p(black) x p(cat) > 0.25, i.e. the geometric mean of the two probabilities
# above one half. Both above one half implies it, but it is not the same rule (0.9 x 0.3 =
# 0.27 is a yes): a label-free threshold on the product, whose ranking gives the rule's AUC.
AND_THRESHOLD = 0.25


def metrics_table(
    metrics: dict,
    columns=(
        "probe F1",
        "probe ROC AUC",
        "probe AP",
        "K-means F1",
        "K-means ARI",
        "best-cluster F1",
        "K-means purity",
        "K-means entropy",
    ),
):
    """One row per model (and the AND rule, and the reference values): the chosen metrics."""
    import pandas as pd

    rows = {}
    for name in sorted(metrics["models"], key=lambda n: list(MODELS).index(n)):
        result = metrics["models"][name]
        rows[name] = {c: result[METRICS[c].view][METRICS[c].key] for c in columns}
    for name, result in metrics["score models"].items():
        rows[name] = {c: result[METRICS[c].key] for c in columns if c.startswith("probe")}
    for name, value in metrics["references"].items():
        if _reference_metric(name) in columns:
            rows[f"reference: {name}"] = {_reference_metric(name): value}
    return pd.DataFrame(rows).T[list(columns)].rename(index=label)


def _reference_metric(name: str) -> str:
    """The metric a reference value is read against."""
    if name == "call nothing a black cat":
        return "original accuracy"
    return "K-means F1" if "clusters" in name else "probe F1"


def long_metrics(results: dict[int, dict]):
    """The metrics files of several seeds as one long table (seed, model, metric, value)."""
    import pandas as pd

    rows = []
    for seed, metrics in results.items():
        for model, result in metrics["models"].items():
            for metric, spec in METRICS.items():
                if spec.view in result:  # `analysis.views = probe` computes the probe's only
                    rows.append((seed, model, metric, result[spec.view][spec.key]))
            for n, values in result.get("label efficiency", {}).items():
                rows.append((seed, model, f"probe F1 @ {n}", values["f1"]))
                rows.append((seed, model, f"probe ROC AUC @ {n}", values["roc auc"]))
        for model, result in metrics["score models"].items():
            for metric in METRICS:
                if metric.startswith("probe"):
                    rows.append((seed, model, metric, result[METRICS[metric].key]))
        for name, value in metrics["references"].items():
            rows.append((seed, f"reference: {name}", _reference_metric(name), value))
    return pd.DataFrame(rows, columns=["seed", "model", "metric", "value"])
