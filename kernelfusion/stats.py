"""Statistics over seeds: t-intervals, Holm's step-down adjustment, paired differences between
models with their verdicts, the difference a test could detect, and the bootstrap over the
evaluated images of one seed.
"""

from __future__ import annotations

import numpy as np

from .machine import derive_seed
from .metrics import binary_scores, ranking_scores


def t_interval(values: np.ndarray, confidence: float = 0.95) -> tuple[float, float]:
    """Mean and half-width of Student's t interval."""
    from scipy import stats

    n = len(values)
    mean = float(np.mean(values))
    if n < 2:
        return mean, float("nan")
    return mean, float(
        stats.t.ppf((1 + confidence) / 2, n - 1) * np.std(values, ddof=1) / np.sqrt(n)
    )


def mean_ci(frame, confidence: float = 0.95):
    """Mean and half-width of the t-interval of `value` per model and metric."""
    import pandas as pd

    rows = []
    for (model, metric), group in frame.groupby(["model", "metric"], sort=False):
        mean, half = t_interval(group["value"].to_numpy(dtype=float), confidence)
        rows.append(
            {"model": model, "metric": metric, "mean": mean, "ci95": half, "seeds": len(group)}
        )
    return pd.DataFrame(rows)


def holm(p_values: list[float]) -> list[float]:
    """Holm's step-down adjustment of p-values (controls the family-wise error rate)."""
    order = np.argsort(p_values)
    m = len(p_values)
    adjusted = np.empty(m)
    running = 0.0
    for rank, index in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p_values[index]))
        adjusted[index] = running
    return adjusted.tolist()


ALPHA = 0.05  # the family-wise error rate of the verdicts


def paired_differences(
    frame,
    model: str,
    metric: str,
    rivals: list[str] | None = None,
    confidence: float = 0.95,
    *,
    decisive: tuple[str, ...],
):
    """`model` minus each rival on `metric`, seed by seed (all models share a seed's data):
    the mean difference, its t-interval over seeds (unadjusted: shown as an interval, never
    read as a verdict), the paired t-test's p-value, Holm-adjusted within its family (the
    `decisive` rivals, and the descriptive rest apart), and the verdict from the adjusted
    p-value (below ALPHA: better or worse; else not distinguishable). Decisive rows first."""
    import pandas as pd
    from scipy import stats

    part = frame[frame["metric"] == metric].pivot(index="seed", columns="model", values="value")
    if model not in part:
        return pd.DataFrame()
    rivals = [
        r
        for r in (rivals or part.columns)
        if r != model and r in part and not r.startswith("reference")
    ]
    rivals = [r for r in decisive if r in rivals] + [r for r in rivals if r not in decisive]
    rows = []
    for rival in rivals:
        diff = (part[model] - part[rival]).dropna().to_numpy(dtype=float)
        mean, half = t_interval(diff, confidence)
        if len(diff) > 1 and np.ptp(diff) > 1e-12:  # a constant difference has no spread
            p = float(stats.ttest_1samp(diff, 0.0).pvalue)
        else:
            p = 1.0 if len(diff) < 2 or mean == 0 else 0.0
        rows.append(
            {
                "rival": rival,
                "role": "decisive" if rival in decisive else "descriptive",
                "difference": mean,
                "ci95": half,
                "low": mean - half,
                "high": mean + half,
                "p": p,
                "seeds": len(diff),
            }
        )
    table = pd.DataFrame(rows)
    if table.empty:
        return table
    adjusted = pd.Series(np.nan, index=table.index)
    for _, family in table.groupby("role"):
        adjusted[family.index] = holm(family["p"].tolist())
    table["p (Holm)"] = adjusted
    table["verdict"] = [
        ("better" if d > 0 else "worse") if p < ALPHA else "not distinguishable"
        for d, p in zip(table["difference"], table["p (Holm)"], strict=True)
    ]
    return table.set_index("rival")


def decisive_rows(table):
    """The rows of a `paired_differences` table that decide the verdict."""
    return table[table["role"] == "decisive"] if len(table) else table


def verdict_level(comparisons: int, alpha: float = ALPHA) -> float:
    """The two-sided level of the first (strictest) step of Holm's procedure over
    `comparisons` tests: a difference must reach it to be called at all."""
    return alpha / comparisons


def detectable_difference(
    frame,
    model: str,
    metric: str,
    rivals: tuple[str, ...],
    power: float = 0.8,
    level: float | None = None,
) -> float:
    """The smallest true mean difference that a paired t-test over these seeds would find with
    `power` at the level the verdicts use (`verdict_level`: Holm's first step over the
    `rivals`, two-sided), from the median seed-to-seed spread of `model`'s differences against
    those rivals: (t_(1 - level/2) + t_power) * sd / sqrt(n), with n - 1 degrees of freedom."""
    from scipy import stats

    level = verdict_level(len(rivals)) if level is None else level
    part = frame[frame["metric"] == metric].pivot(index="seed", columns="model", values="value")
    n = len(part)
    if model not in part or n < 2:
        return float("nan")
    spreads = [float(np.std(part[model] - part[r], ddof=1)) for r in rivals if r in part]
    if not spreads:
        return float("nan")
    sd = float(np.median(spreads))
    return float((stats.t.ppf(1 - level / 2, n - 1) + stats.t.ppf(power, n - 1)) * sd / np.sqrt(n))


def bootstrap_difference(
    score_a: np.ndarray,
    score_b: np.ndarray,
    truth: np.ndarray,
    metric: str = "f1",
    resamples: int = 1000,
    seed: int = 0,
):
    """Within one seed: the difference of two models' probe metric on the same evaluated images
    (`score` > 0 is a yes for F1; AUC uses the scores), and its 95% percentile interval over
    bootstrap resamples of those images. The spread of the images, not of the training."""

    rng = np.random.default_rng(derive_seed(seed, "bootstrap"))

    def value(a, b, t):
        if metric == "f1":
            return binary_scores(a > 0, t)["f1"] - binary_scores(b > 0, t)["f1"]
        return ranking_scores(a, t)["roc auc"] - ranking_scores(b, t)["roc auc"]

    point = value(score_a, score_b, truth)
    draws = []
    for _ in range(resamples):
        i = rng.integers(len(truth), size=len(truth))
        draws.append(value(score_a[i], score_b[i], truth[i]))
    low, high = np.percentile(draws, [2.5, 97.5])
    return float(point), float(low), float(high)
