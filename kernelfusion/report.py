"""What the chapters show and say, computed: tables of models x metrics, the headline's words
and numbers (from the verdicts of `verdicts`), the words that follow the build, and the cards
and checks of chapter 05. Models are keyed by
their ids up to here; tables for readers carry their labels (`fusion.labelled`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd
import torch

from . import config
from .cnn import CONV_LAYERS, SourceCNNs, positive_probability
from .data import GROUPS, SPLITS, Datasets, ImageSet, counts
from .evaluate import AND_THRESHOLD, long_metrics
from .evaluate import metrics_table as evaluate_table
from .fusion import GENERATED, LABEL_FREE, MODELS, Models, label, product_score
from .measures import BLACK_CAT, contingency_frame, umap_embedding
from .original import CLAIM
from .stats import bootstrap_difference, decisive_rows, mean_ci
from .verdicts import (
    count_glue,
    detectable_for,
    level,
    tables_for,
    unit,
    verdict_interval_width,
)
from .words import (
    AND_WORDS,
    answer_words,
    bound_words,
    build_words,
    intervals_words,
    rivals_named,
    uncertainty_words,
)
from .zoo import joint_sample

# The original project's protocol, as the results chapter shows it.
ORIGINAL_METRICS = (
    "original accuracy",
    "original precision",
    "original recall",
    "original F1",
    "original purity",
    "original entropy",
    "original best accuracy",
)


def bootstrap_table(metrics_artifact, model: str, metric: str = "f1", resamples: int = 1000):
    """Within the run of `metrics_artifact`: `model` minus each rival on the probe's `metric`
    (f1 or roc auc) on the same evaluated images, with a 95% bootstrap interval over them."""

    tensors = metrics_artifact.tensors("embeddings")
    truth = tensors["truth"].numpy() == BLACK_CAT
    seed = metrics_artifact.json("metrics")["seed"]
    mine = tensors[f"probe {model}"].numpy()
    rows = {}
    for key in tensors:
        if key.startswith("probe ") and key != f"probe {model}":
            point, low, high = bootstrap_difference(
                mine, tensors[key].numpy(), truth, metric, resamples, seed
            )
            rows[key.removeprefix("probe ")] = {"difference": point, "low": low, "high": high}
    table = pd.DataFrame(rows).T
    table["width"] = table["high"] - table["low"]
    return table.rename(index=label)


def headline(
    table, summary, detectable_value: float, model: str = "gen_f", metric: str = "probe F1"
):
    """The book's verdict on `model` by `metric` (the primary question, `fusion.PRIMARY`), as
    words and numbers to glue, from its comparisons `table`: the decisive rivals it is better
    and worse than (Holm-adjusted over those alone), the best label-free rival, its difference
    with the unchanged cat CNN with a direction word computed from the sign and the upper end
    of that difference at the family's level, what the data rule out (`bound_words`) and the
    difference it could detect at the verdicts' level (`detectable_value`)."""
    decisive = decisive_rows(table)
    part = summary[summary["metric"] == metric].set_index("model")["mean"]
    label_free = part[[m for m in LABEL_FREE if m in part.index and m != model]]
    best = label_free.idxmax()
    source = table.loc["cat"]

    def names(verdict):
        return rivals_named([r for r in decisive.index if decisive.loc[r, "verdict"] == verdict])

    beaten = int((decisive["verdict"] == "better").sum())
    return {
        "answer": answer_words(beaten, len(decisive)),
        "mean": float(part[model]),
        "better than": names("better"),
        "worse than": names("worse"),
        "not distinguishable": int((decisive["verdict"] == "not distinguishable").sum()),
        "rivals": len(decisive),
        "descriptive": int(len(table) - len(decisive)),
        "best label-free rival": label(best),
        "best label-free mean": float(label_free[best]),
        "best rival is ahead": bool(label_free[best] > part[model]),
        "vs source": float(source["difference"]),
        "vs source size": abs(float(source["difference"])),  # the word above says the sign
        "vs source word": "above" if source["difference"] > 0 else "below",
        "vs source verdict": source["verdict"],
        # the most the data allow it above the unchanged cat CNN (family level); negative:
        # it is below by at least that much
        "vs source bound": float(source["family high"]),
        "vs source bound size": abs(float(source["family high"])),
        "vs source bound word": "at most" if source["family high"] >= 0 else "at least",
        "vs source bound side": "above" if source["family high"] >= 0 else "below",
        "bounds": bound_words(table),
        "detectable": detectable_value,
        "level": level(),
    }


def results_table(
    summary,
    metrics=(
        "probe F1",
        "probe ROC AUC",
        "probe AP",
        "probe accuracy",
        "probe precision",
        "probe recall",
        "K-means F1",
        "K-means ARI",
        "K-means AMI",
        "best-cluster F1",
        "K-means purity",
        "K-means entropy",
    ),
):
    """Models x metrics, each cell 'mean ± ci95'. The only break allowed in a cell is after
    the '±': a narrow page (print) sets a cell on two lines, the mean and its '±' never apart."""

    part = summary[summary["metric"].isin(metrics)]
    cells = part.assign(
        cell=[
            f"{m:.3f}\u00a0± {c:.3f}" if c == c else (f"{m:.3f}" if m == m else "")
            for m, c in zip(part["mean"], part["ci95"], strict=True)
        ]
    )
    table = cells.pivot(index="model", columns="metric", values="cell").fillna("")
    known = list(MODELS) + [m for m in dict.fromkeys(part["model"]) if m not in MODELS]
    table = table.loc[[m for m in known if m in table.index], [m for m in metrics if m in table]]
    return table.rename(index=label)


def noise_table(metrics: dict):
    """Clusters found and share of points left as noise by DBSCAN and HDBSCAN, per model."""

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
    ).T.rename(index=label)


def cards_table(models: Models):
    """How each model was made."""

    return pd.DataFrame(
        {name: {"how it was made": card["what"]} for name, card in models.cards.items()}
    ).T.rename(index=label)


def filter_change(models: Models, source: str = "cat"):
    """Relative change ||W - W_source|| / ||W_source|| of each conv layer, per model (by id)."""

    base = models.cnns[source].state_dict()
    rows = {}
    for name, model in models.cnns.items():
        if isinstance(model, tuple):
            continue
        state = model.state_dict()
        rows[name] = {
            layer: float(
                (state[f"{layer}.weight"] - base[f"{layer}.weight"]).norm()
                / base[f"{layer}.weight"].norm()
            )
            for layer in CONV_LAYERS
        }
    return pd.DataFrame(rows).T


def change_glue(change: pd.DataFrame, model: str = "gen_f") -> dict[str, float]:
    """Chapter 05's glued values: `model`'s relative change per conv layer (`filter_change`)."""
    return {
        f"f_change{i}": round(float(change.loc[model, layer]), 2)
        for i, layer in enumerate(CONV_LAYERS, 1)
    }


def first_filters(models: Models, keys: tuple[str, ...] = ("cat", "gen_f")) -> dict:
    """Layer 1's filters of the models `keys`, by a title naming model and layer."""
    return {f"{label(key)}, layer 1": models.cnns[key].conv1.weight.detach() for key in keys}


def group_scores(models: Models, sources: SourceCNNs, datasets: Datasets, device: str = "cpu"):
    """Mean p(class 1) per evaluation group of the models that keep a source head, and of the
    product rule."""
    images, groups = datasets.eval.images, datasets.eval.groups
    scores = {
        "black CNN: p(black)": positive_probability(sources.black, images, device),
        "cat CNN: p(cat)": positive_probability(sources.cat, images, device),
        "F(cat CNN): p(cat)": positive_probability(models.cnns["gen_f"], images, device),
        "G(black CNN): p(black)": positive_probability(models.cnns["gen_g"], images, device),
        "p(black) x p(cat)": product_score(sources, images, device),
    }
    return pd.DataFrame(
        {
            name: {g: float(s[groups == i].mean()) for i, g in enumerate(GROUPS)}
            for name, s in scores.items()
        }
    ).T


# The models chapter 06 looks at closely: the method, its source, and the supervised bound.
CLOSE_LOOK = ("gen_f", "cat", "oracle")


def cluster_glue(metrics: dict) -> dict:
    """Chapter 06's numbers for its prose: the images it evaluates, the closely looked-at
    models' K-means F1, probe F1 and AUC (`gen_`, `src_`, `oracle_` ...), the references."""
    table = evaluate_table(metrics)
    values = {
        "n_evaluated": metrics["evaluated images"],
        "n_labelled": metrics["labelled images"],
        "n_cluster_lab": metrics["cluster sample"][0],
        "n_cluster_eval": metrics["cluster sample"][1],
        "groups_text": ", ".join(
            f"{n} {g}" for n, g in zip(metrics["groups"], GROUPS, strict=True)
        ),
    }
    for key, model in zip(("gen", "src", "oracle"), CLOSE_LOOK, strict=True):
        row = table.loc[label(model)]
        values |= {
            f"{key}_kmeans": round(float(row["K-means F1"]), 2),
            f"{key}_probe": round(float(row["probe F1"]), 2),
            f"{key}_auc": round(float(row["probe ROC AUC"]), 2),
        }
    for key, name in (
        ("all_positive", "all positive"),
        ("black_detector", "perfect black detector"),
        ("random_clusters", "random clusters"),
    ):
        values[key] = round(metrics["references"][name], 2)
    return values


def centroid_frames(metrics: dict) -> dict[str, pd.DataFrame]:
    """Per closely looked-at model (by label): the cosine between its groups' mean features."""
    return {
        label(m): pd.DataFrame(
            metrics["models"][m]["centroid cosine"], index=list(GROUPS), columns=list(GROUPS)
        )
        for m in CLOSE_LOOK
    }


def contingency_frames(embeddings: dict, groups) -> dict[str, pd.DataFrame]:
    """Per closely looked-at model (by label): its K-means clusters x the evaluation groups."""
    return {
        label(m): contingency_frame(
            embeddings[f"model {m} :: clusters"].long().numpy(), groups, GROUPS
        )
        for m in CLOSE_LOOK
    }


# --- chapter 07: the results over seeds ------------------------------------------------------

# The models of the label-efficiency curve: the method, its sources, two rivals and the bounds.
CURVE_MODELS = ("gen_f", "gen_g", "cat", "black", "merge", "concat", "random", "oracle")
SHOWN_METRICS = ("probe F1", "probe ROC AUC", "K-means F1")  # the figures' panels


@dataclass
class Results:
    """Chapter 07's results over seeds: the long table and its summary, each generated CNN's
    paired comparisons (metric -> table), and every value its prose glues (plain values, and
    Markdown for `{glue:md}`)."""

    frame: pd.DataFrame
    summary: pd.DataFrame
    tables: dict[str, dict[str, pd.DataFrame]]  # generated id -> metric -> comparisons
    values: dict[str, Any]
    markdown: dict[str, str]


def results(runs: dict[int, dict], cfg, model: str = "gen_f") -> Results:
    """Everything chapter 07 shows and says, from the metrics files of its seeds."""
    frame = long_metrics(runs)
    summary = mean_ci(frame)
    by_photograph = unit(cfg) == "photograph"
    tables = {m: tables_for(runs, cfg, m, frame) for m in GENERATED}

    def detect(metric):
        return detectable_for(tables[model], frame, cfg, model, metric)

    first = runs[cfg.seed]
    probe = decisive_rows(tables[model]["probe F1"])
    values: dict[str, Any] = {
        "n_seeds": len(runs),
        "n_eval": first["evaluated images"],
        "n_per_group": min(first["groups"]),
        "n_labelled": first["labelled images"],
        "n_cluster": first["cluster sample"][1],
        "and_threshold": AND_THRESHOLD,
        "n_protocol": first["protocol images"],
        "protocol_states": cfg.analysis.protocol_states,
        "seed_list": ", ".join(str(s) for s in runs),
        "n_rivals": len(probe),
        "n_descriptive": len(tables[model]["probe F1"]) - len(probe),
        "n_excluding_zero": int(((probe["low"] > 0) | (probe["high"] < 0)).sum()),
        "verdict_level": level(),
        "mde_probe_f1": detect("probe F1"),
        "mde_probe_auc": detect("probe ROC AUC"),
        "n_photographs": len(first["per image"]["truth"]) if by_photograph else 0,
    }
    values |= count_glue(tables["gen_f"], "f") | count_glue(tables["gen_g"], "g")
    answer = headline(tables[model]["probe F1"], summary, values["mde_probe_f1"], model)
    for name, value in answer.items():  # the first page pastes these
        key = "head_" + name.replace(" ", "_").replace("-", "_")
        values[key] = value.replace("*", "") if isinstance(value, str) else value
    means = summary[summary["metric"] == "original accuracy"].set_index("model")["mean"]
    for key, name in (
        ("gen", "gen_f"),
        ("src", "cat"),
        ("random", "random"),
        ("noise", "noise"),
        ("nothing", "reference: call nothing a black cat"),
    ):
        values[f"original_{key}"] = float(means[name])
    values["black_cat_share"] = 1 - values["original_nothing"]
    values |= {f"claim_{k.replace(' ', '_')}": v for k, v in CLAIM.items()}
    words = build_words(cfg)
    if by_photograph:  # t-intervals over repetitions of one set of photographs: too narrow
        summary = summary.assign(ci95=float("nan"))
        words["table_words"] = (
            "Mean over the seeds' cross-validations, per model, without an interval: the seeds "
            "are not replications here (the verdicts below resample the photographs)"
        )
        words["scoring_words"] = (
            f"scores every model on all {values['n_eval']} photographs by "
            f"{cfg.analysis.folds}-fold cross-validation: each probe learns from the other folds "
            f"(about {values['n_labelled']} photographs) and scores its own, so every photograph "
            "is scored once per seed. The oracle CNN itself is trained on half of the "
            "photographs (the seed's labelled half), so its scores on those are optimistic"
        )
    else:
        words["table_words"] = "Mean and 95% interval over the seeds, per model"
        words["scoring_words"] = (
            f"scores every model on {values['n_eval']} evaluation images (at least "
            f"{values['n_per_group']} per group), kept apart from the {values['n_labelled']} "
            "labelled images that the probe and the oracle learn from"
        )
    # the first page reads these from another document: plain text (`{glue:text}`)
    values |= {"head_built_on": words["built_on"], "head_replication": words["replication_words"]}
    markdown = {
        "and_words": AND_WORDS,
        "f_bounds": bound_words(tables[model]["probe F1"]),
        **words,
    }
    return Results(frame, summary, tables, values, markdown)


def within_seed(
    metrics_artifact, tables: dict, cfg, model: str = "gen_f"
) -> tuple[pd.DataFrame, dict, dict]:
    """The bootstrap over one seed's evaluated images (`bootstrap_table`) beside the intervals
    over seeds: the table, the widths chapter 07 glues, and its words (Markdown)."""
    within = bootstrap_table(metrics_artifact, model, "f1")
    seed_width = verdict_interval_width(tables["probe F1"])  # over seeds or photographs
    width = float(within["width"].median())
    values = {"bootstrap_width": width, "seed_width": seed_width}
    at = unit(cfg)
    words = {"width_words": uncertainty_words(width, seed_width, at)}
    return within, values, words | {"intervals_words": intervals_words(at)}


def paste(values: dict[str, Any], markdown: dict[str, str] | None = None) -> None:
    """Glue each value for a chapter's prose (`{glue:}`, `{glue:text}`), and each of `markdown`
    as Markdown (`{glue:md}`), without showing them where the cell stands. A figure another
    page pastes (the `{glue}` directive) must also be shown where it is made, in a cell the
    book keeps (`remove-input`, not `remove-cell`): its image file is written only when a
    chapter shows it."""
    # Imported here: only an executing notebook needs them, never the package's other users.
    from IPython.core.formatters import format_display_data
    from IPython.display import Markdown, display

    # What `myst_nb.glue(key, value, display=False)` writes (the record myst-nb's `{glue}`
    # roles read: the value's display data under its prefix, named in the output's metadata),
    # made here: importing myst_nb in a chapter's kernel imports nbformat and jsonschema,
    # 1.5 s per chapter for nothing the kernel uses (test_report_paste_is_myst_nbs_glue).
    items = [*values.items(), *((k, Markdown(v)) for k, v in (markdown or {}).items())]
    for key, value in items:
        bundle, metadata = format_display_data(value)
        metadata["scrapbook"] = {"name": key, "mime_prefix": GLUE_PREFIX}
        display({GLUE_PREFIX + k: v for k, v in bundle.items()}, raw=True, metadata=metadata)


# myst_nb.ext.glue.GLUE_PREFIX: the mime prefix of a glued value that is not shown
GLUE_PREFIX = "application/papermill.record/"


def black_rule_agreement(images: ImageSet, dark_fraction: float) -> dict[str, float]:
    """How often the colour statistic (dark share >= `dark_fraction`) agrees with the truth."""
    has_object = ~torch.isnan(images.dark_fraction)
    truth = (images.groups == 0) | (images.groups == 2)
    rule = images.dark_fraction >= dark_fraction
    agree = (truth == rule) & has_object
    n = int(has_object.sum())
    return {
        "objects": n,
        "agreement": float(agree.sum()) / max(n, 1),
        "black by truth": int((truth & has_object).sum()),
        "black by rule": int((rule & has_object).sum()),
        "disagreements": n - int(agree.sum()),
    }


def counts_table(datasets: Datasets):
    """The count report as a table: one row per set and class, one column per split, and total."""
    import pandas as pd

    table = pd.DataFrame(counts(datasets)).pivot_table(
        index=["set", "class"], columns="split", values="images", aggfunc="sum", sort=False
    )[list(SPLITS)]
    table["total"] = table.sum(axis=1)
    return table


def rule_examples(images: ImageSet, n: int = 8) -> dict[str, torch.Tensor]:
    """Indices of the objects closest to the black rule's threshold from each side: the black
    objects with the lowest dark share and the non-black ones with the highest."""
    has_object = ~torch.isnan(images.dark_fraction)
    black = ((images.groups == 0) | (images.groups == 2)) & has_object
    other = ~black & has_object
    share = images.dark_fraction

    def pick(mask, descending):
        index = mask.nonzero().flatten()
        return index[share[index].argsort(descending=descending)[:n]]

    return {"black, least dark": pick(black, False), "not black, darkest": pick(other, True)}


def rule_example_grids(images: ImageSet, n: int = 8) -> dict[str, tuple[torch.Tensor, list]]:
    """`rule_examples` as chapter 01 shows them: per side, the images and, as their titles,
    their share of dark pixels."""
    return {
        side: (images.images[index], [f"{s:.2f}" for s in images.dark_fraction[index].tolist()])
        for side, index in rule_examples(images, n).items()
    }


def kernel_umaps(zoo, seed: int, per_domain: int = 400) -> dict[str, pd.DataFrame]:
    """Chapter 03's view of the kernels: per conv layer, a 2-D UMAP of `per_domain` kernel
    vectors of each zoo (seeded), with each point's zoo and hover text."""
    frames = {}
    for layer in CONV_LAYERS:
        kernels, domains, hover = joint_sample(zoo, layer, per_domain=per_domain, seed=seed)
        xy = umap_embedding(kernels.flatten(1), seed=seed)
        frames[layer] = pd.DataFrame({"x": xy[:, 0], "y": xy[:, 1], "zoo": domains, "hover": hover})
    return frames


def umap_views(run, embeddings: dict) -> tuple[dict[str, Any], Any, torch.Tensor]:
    """Chapter 06's explorer, from a pipeline run and its metrics' `embeddings` (read once by
    the chapter): each model's 2-D UMAP of the evaluated images (by id), those images' groups
    and the images themselves."""
    shown = embeddings["cluster points"]  # the evaluated images of the UMAP and cluster views
    points = {name: embeddings[f"model {name}"].numpy() for name in run.metrics.values["models"]}
    return points, run.datasets.eval.groups[shown].numpy(), run.datasets.eval.images[shown]


def preset_sizes() -> list[dict[str, Any]]:
    """Training images per preset and set, as rows for a table or a bar chart."""
    rows = []
    for name in config.PRESETS:
        if config.PRESETS[name].get("zoo.source") == "original":
            continue  # its training sets are the default's; its zoo is read, not trained
        data = config.load(name).data
        for part, count in (
            ("black", data.black_count),
            ("black/random: random", data.black_random_count),
            ("cat", data.cat_count),
            ("cat/random: random", data.cat_random_count),
        ):
            rows.append({"preset": name, "set": part, "images": count})
    return rows
