"""Statistics over replications: t-intervals, Holm's step-down adjustment, paired differences
between models with their verdicts and the difference a test could detect, with the seed as the
unit (`paired_differences`: the whole pipeline redrawn per seed) or the photograph
(`photograph_differences`: the models fixed, every image scored once per repetition of a
cross-validation), and the bootstrap over the evaluated images of one seed.
"""

from __future__ import annotations

import numpy as np

from .machine import derive_seed
from .measures import binary_scores, ranking_scores


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
        # the interval at the family's level: simultaneous over the decisive rivals (Bonferroni)
        _, family = t_interval(diff, 1 - (1 - confidence) / max(len(decisive), 1))
        p = paired_t_p(diff)
        rows.append(
            {
                "rival": rival,
                "role": "decisive" if rival in decisive else "descriptive",
                "difference": mean,
                "ci95": half,
                "low": mean - half,
                "high": mean + half,
                "family low": mean - family,
                "family high": mean + family,
                "p": p,
                "seeds": len(diff),
            }
        )
    return _with_verdicts(pd.DataFrame(rows))


def paired_t_p(diff: np.ndarray) -> float:
    """The paired t-test's two-sided p-value of differences `diff` against zero. A constant
    difference (five identical ones, or one) has no spread to test against: no evidence either
    way, whatever its size (p = 1; a t-test would give it p = 0)."""
    from scipy import stats

    if len(diff) > 1 and np.ptp(diff) > 1e-12:
        return float(stats.ttest_1samp(diff, 0.0).pvalue)
    return 1.0


def verdicts_from(differences, adjusted_p) -> list[str]:
    """The verdict of each comparison from its difference and its adjusted p-value: better or
    worse below ALPHA, else not distinguishable."""
    return [
        ("better" if d > 0 else "worse") if p < ALPHA else "not distinguishable"
        for d, p in zip(differences, adjusted_p, strict=True)
    ]


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


# --- the photograph as the unit: models fixed, images resampled ---------------------------


def _f1(yes: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Black-cat F1 along the last axis of boolean predictions `yes` (0 where nothing is
    predicted and nothing is true, as `measures.binary_scores`)."""
    tp = (yes & truth).sum(-1)
    wrong = (yes != truth).sum(-1)
    return np.where(2 * tp + wrong > 0, 2 * tp / np.maximum(2 * tp + wrong, 1), 0.0)


def _auc(score: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """ROC AUC along the last axis (ties count a half: the Mann-Whitney statistic)."""
    from scipy.stats import rankdata

    positives = truth.sum(-1)
    negatives = truth.shape[-1] - positives
    ranks = rankdata(score, axis=-1)
    total = (ranks * truth).sum(-1) - positives * (positives + 1) / 2
    with np.errstate(invalid="ignore", divide="ignore"):
        return total / (positives * negatives)


PHOTOGRAPH_METRICS = {"probe F1": "f1", "probe ROC AUC": "auc", "K-means F1": "f1"}


def photograph_metric(scores: np.ndarray, truth: np.ndarray, kind: str) -> np.ndarray:
    """A metric of per-image scores (..., repetitions, images) against `truth` (images,),
    averaged over the repetitions: F1 of `score > 0`, or ROC AUC of the score."""
    truth = np.broadcast_to(truth, scores.shape)
    value = _f1(scores > 0, truth) if kind == "f1" else _auc(scores, truth)
    return np.nanmean(value, -1)  # a resample without a black cat has no AUC


def photograph_differences(
    per_image: dict[str, np.ndarray],
    truth: np.ndarray,
    model: str,
    metric: str,
    *,
    decisive: tuple[str, ...],
    resamples: int = 9999,
    seed: int = 0,
    confidence: float = 0.95,
):
    """`model` minus each rival on `metric`, with the photograph as the unit: `per_image[m]` is
    model m's out-of-fold score of every image in each repetition (repetitions x images; one
    repetition a seed, its own folds, and its own draw of every model the book trains), and
    the statistic is the metric averaged over the repetitions (the folds and the trained
    rivals' seeds are averaged over, never counted as replications). The p-value is a paired
    permutation test over photographs (`scipy.stats.permutation_test`, permutation_type
    'samples': each photograph's scores swapped between the two models, in every repetition
    at once), Holm-adjusted within its family (the `decisive` rivals, the descriptive rest
    apart); the interval is a percentile bootstrap over photographs (`scipy.stats.bootstrap`),
    unadjusted. Same columns as `paired_differences` ("seeds" holds the photographs)."""
    import pandas as pd
    from scipy import stats

    if model not in per_image:
        return pd.DataFrame()
    kind = PHOTOGRAPH_METRICS[metric]
    truth = np.asarray(truth, dtype=bool)
    n = len(truth)
    rivals = [r for r in per_image if r != model]
    rivals = [r for r in decisive if r in rivals] + [r for r in rivals if r not in decisive]
    rows = []
    for number, rival in enumerate(rivals):
        pair = np.stack([per_image[model], per_image[rival]]).astype(float)  # 2, reps, images
        point = float(
            photograph_metric(pair[0], truth, kind) - photograph_metric(pair[1], truth, kind)
        )

        def swapped(first, second, axis=-1, pair=pair):
            # first[b, i], 0 or 1: whose scores photograph i lends "model" in resample b
            # (batch, images); `second` is its complement
            first, second = np.atleast_2d(first), np.atleast_2d(second)
            a = np.where(first[:, None, :] == 0, pair[0][None], pair[1][None])
            b = np.where(second[:, None, :] == 0, pair[0][None], pair[1][None])
            return photograph_metric(a, truth, kind) - photograph_metric(b, truth, kind)

        if np.ptp(pair[0] - pair[1]) == 0 and point == 0:
            p = 1.0  # the same scores: nothing to test
        else:
            test = stats.permutation_test(
                (np.zeros(n), np.ones(n)),
                swapped,
                permutation_type="samples",
                vectorized=True,
                n_resamples=resamples,
                random_state=np.random.default_rng(derive_seed(seed, "permutation", number)),
            )
            p = float(test.pvalue)

        def resampled(index, axis=-1, pair=pair):
            index = np.atleast_2d(index).astype(int)  # batch, images drawn with replacement
            picked = np.moveaxis(pair[:, :, index], 2, 0)  # batch, 2, reps, images
            t = np.broadcast_to(truth[index][:, None, :], picked[:, 0].shape)
            return photograph_metric(picked[:, 0], t, kind) - photograph_metric(
                picked[:, 1], t, kind
            )

        interval = stats.bootstrap(
            (np.arange(n),),
            resampled,
            vectorized=True,
            n_resamples=resamples,
            confidence_level=confidence,
            method="percentile",
            random_state=np.random.default_rng(derive_seed(seed, "photograph bootstrap", number)),
        )
        draws = interval.bootstrap_distribution
        tail = 50 * (1 - confidence) / max(len(decisive), 1)  # simultaneous (Bonferroni), in %
        rows.append(
            {
                "rival": rival,
                "role": "decisive" if rival in decisive else "descriptive",
                "difference": point,
                "ci95": float(interval.standard_error) * stats.norm.ppf((1 + confidence) / 2),
                "low": float(interval.confidence_interval.low),
                "high": float(interval.confidence_interval.high),
                "family low": float(np.nanpercentile(draws, tail)),
                "family high": float(np.nanpercentile(draws, 100 - tail)),
                "p": p,
                "seeds": n,
                "standard error": float(interval.standard_error),
            }
        )
    return _with_verdicts(pd.DataFrame(rows))


def _with_verdicts(table):
    """Holm-adjusted p-values within each family (`role`) and the verdict words read from them."""
    import pandas as pd

    if table.empty:
        return table
    adjusted = pd.Series(np.nan, index=table.index)
    for _, family in table.groupby("role"):
        adjusted[family.index] = holm(family["p"].tolist())
    table["p (Holm)"] = adjusted
    table["verdict"] = verdicts_from(table["difference"], table["p (Holm)"])
    return table.set_index("rival")


def photograph_detectable(table, level: float, power: float = 0.8) -> float:
    """The smallest true difference a two-sided test at `level` would find with `power`, from
    the bootstrap standard error over photographs (the median over the decisive rivals), in
    the normal approximation: (z_(1 - level/2) + z_power) * se."""
    from scipy import stats

    rows = table[table["role"] == "decisive"] if len(table) else table
    if not len(rows):
        return float("nan")
    se = float(np.median(rows["standard error"]))
    return float((stats.norm.ppf(1 - level / 2) + stats.norm.ppf(power)) * se)
