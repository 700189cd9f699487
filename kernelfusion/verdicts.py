"""The verdicts: each generated CNN's paired comparisons with every rival at the build's unit
of replication (`unit`: the seed where each seed redraws the whole pipeline, the photograph
where the models are fixed), the families they are adjusted in (the one primary question,
secondary families, descriptive rows), the difference a test could detect, and the tables and
counts the chapters show and glue from them.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .evaluate import long_metrics
from .fusion import DECISIVE, PRIMARY, label
from .stats import (
    PHOTOGRAPH_METRICS,
    decisive_rows,
    detectable_difference,
    paired_differences,
    photograph_detectable,
    photograph_differences,
    verdict_level,
)

# The metrics the generated CNNs' verdicts are read from.
VERDICT_METRICS = ("probe F1", "probe ROC AUC", "probe AP", "K-means F1", "K-means ARI")


def differences(frame, model: str, metric: str, rivals: list[str] | None = None):
    """`stats.paired_differences` of `model` (an id) with the registry's decisive rivals
    (`fusion.DECISIVE`) as the family that decides verdicts."""
    return paired_differences(frame, model, metric, rivals, decisive=DECISIVE)


def detectable(frame, model: str, metric: str, level: float | None = None) -> float:
    """`stats.detectable_difference` against the decisive rivals, at the verdicts' level."""
    return detectable_difference(frame, model, metric, DECISIVE, level=level)


def level() -> float:
    """The level a difference must reach to be called: Holm's first step over the decisive
    rivals (`stats.verdict_level`)."""
    return verdict_level(len(DECISIVE))


def comparisons(frame, model: str, metrics=VERDICT_METRICS) -> dict:
    """metric -> `differences` of `model` against every rival."""
    return {metric: differences(frame, model, metric) for metric in metrics}


def unit(cfg) -> str:
    """The unit of replication of a build's verdicts: "seed" where each seed redraws the whole
    pipeline, "photograph" where the models are fixed and every image is scored once per
    seed by cross-validation (`analysis.folds`)."""
    return "photograph" if cfg.analysis.folds else "seed"


def per_image_scores(
    runs: dict[int, dict],
) -> tuple[np.ndarray, dict[str, dict[str, np.ndarray]]]:
    """The truth and, per view (probe, K-means) and model, the out-of-fold scores of every
    image in each seed (seeds x images) of cross-validated runs."""
    first = next(iter(runs.values()))["per image"]
    views = {
        view: {
            model: np.array([runs[seed]["per image"][view][model] for seed in runs])
            for model in first[view]
        }
        for view in ("probe", "K-means")
    }
    return np.array(first["truth"], dtype=bool), views


def tables_for(runs: dict[int, dict], cfg, model: str, frame=None, metrics=None) -> dict:
    """metric -> `model`'s comparisons with every rival, at the build's unit (`unit`): paired
    over seeds (`comparisons`), or over photographs (`photograph_comparisons`); `metrics`:
    those alone (default: every metric the unit has verdicts for)."""
    if unit(cfg) == "photograph":
        return photograph_comparisons(runs, model, cfg.seed, metrics or tuple(PHOTOGRAPH_METRICS))
    return comparisons(
        long_metrics(runs) if frame is None else frame, model, metrics or VERDICT_METRICS
    )


def detectable_for(tables: dict, frame, cfg, model: str, metric: str) -> float:
    """The difference in `metric` a test at the verdicts' level would find 80% of the time, at
    the build's unit: from the seed-to-seed spread, or the bootstrap over photographs."""
    if unit(cfg) == "photograph":
        return photograph_detectable(tables[metric], level())
    return detectable(frame, model, metric)


# The view each metric of the per-photograph verdicts reads its per-image values from.
PHOTOGRAPH_VIEWS = {"probe F1": "probe", "probe ROC AUC": "probe", "K-means F1": "K-means"}


def photograph_comparisons(
    runs: dict[int, dict], model: str, seed: int = 0, metrics=tuple(PHOTOGRAPH_METRICS)
) -> dict:
    """metric -> `stats.photograph_differences` of `model` against every rival, the photograph
    the unit (every model that has the metric's per-image values)."""
    truth, views = per_image_scores(runs)
    return {
        metric: photograph_differences(
            views[PHOTOGRAPH_VIEWS[metric]], truth, model, metric, decisive=DECISIVE, seed=seed
        )
        for metric in metrics
    }


def verdict_counts(tables: dict) -> dict[str, dict[str, int]]:
    """metric -> {verdict: number of decisive rivals}: the counts the chapters' words use
    (descriptive rivals describe, they decide nothing)."""
    return {
        metric: {
            verdict: int((decisive_rows(table)["verdict"] == verdict).sum()) if len(table) else 0
            for verdict in ("better", "worse", "not distinguishable")
        }
        for metric, table in tables.items()
    }


def count_glue(tables: dict, prefix: str) -> dict[str, int]:
    """`verdict_counts` as glue keys for a chapter: `{prefix}_{metric}_{verdict}`, e.g.
    `f_probe_f1_better`, `f_kmeans_f1_not`."""
    return {
        f"{prefix}_{metric.replace(' ', '_').replace('-', '').lower()}_{verdict.split()[0]}": n
        for metric, count in verdict_counts(tables).items()
        for verdict, n in count.items()
    }


def verdict_interval_width(table) -> float:
    """The median width of the decisive rivals' paired 95% intervals: Student's t over seeds,
    or, at the photograph unit (no t interval), the bootstrap's over photographs."""
    rows = decisive_rows(table)
    if rows["ci95"].notna().any():
        return float((2 * rows["ci95"]).median())
    return float((rows["high"] - rows["low"]).median())


VERDICT_MARKS = {"better": "better", "worse": "worse", "not distinguishable": "n.d."}


def family(model: str, metric: str, role: str) -> str:
    """Which family a comparison belongs to: the one primary question (`fusion.PRIMARY`, over
    the decisive rivals), a secondary family (another metric or model, Holm-adjusted within
    itself), or descriptive."""
    if role != "decisive":
        return "descriptive"
    return "primary" if (model, metric) == PRIMARY else "secondary"


def verdict_table(
    tables: dict, model: str = "gen_f", metrics=("probe F1", "probe ROC AUC", "K-means F1")
):
    """Rivals x (metric, [difference, unadjusted 95% interval, p (Holm), verdict]), decisive
    rivals first: the difference with its unadjusted interval, the p-value Holm-adjusted within
    its family that the verdict is read from, and the verdict (n.d.: not distinguishable). The
    "family" column names each metric's family for the decisive rows (`family`): primary for
    `fusion.PRIMARY`, else secondary; descriptive for the rest."""

    columns = {}
    for metric in metrics:
        table = tables.get(metric, ())
        if not len(table):
            continue
        columns[(metric, "family")] = pd.Series(
            [family(model, metric, role) for role in table["role"]], index=table.index
        )
        columns[(metric, "difference")] = table["difference"].map("{:+.3f}".format)
        columns[(metric, "95% interval (unadjusted)")] = pd.Series(
            [
                f"[{low:+.3f},\u00a0{high:+.3f}]"
                for low, high in zip(table["low"], table["high"], strict=True)
            ],
            index=table.index,
        )
        columns[(metric, "p (Holm)")] = table["p (Holm)"].map("{:.2g}".format)
        columns[(metric, "verdict")] = table["verdict"].map(VERDICT_MARKS)
    # rows in the tables' own order (decisive first), the union over the metrics
    present = [m for m in metrics if len(tables.get(m, ()))]
    order = list(dict.fromkeys(r for m in present for r in tables[m].index))
    return pd.DataFrame(columns).reindex(order).fillna("").rename(index=label)
