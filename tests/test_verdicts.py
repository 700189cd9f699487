"""The verdicts (`verdicts`): paired comparisons with their families, the verdict tables and
counts."""

import numpy as np
import pandas as pd
import pytest

from kernelfusion import evaluate, fusion, stats, verdicts, words


def test_mean_ci_and_paired_differences_with_holm(seeded_metrics):
    gen = [0.80, 0.82, 0.81, 0.85, 0.79]
    values = {
        "gen_f": gen,
        "random": [v - 0.3 for v in gen],  # exactly 0.3 worse, every seed
        # far worse, seed by seed, with a little spread
        "noise": [v - 0.3 - d for v, d in zip(gen, [0.01, -0.01, 0.02, -0.02, 0], strict=True)],
        "cat": [v - d for v, d in zip(gen, [0.01, -0.01, 0.02, -0.02, 0], strict=True)],
    }
    frame = evaluate.long_metrics(seeded_metrics(values))
    summary = stats.mean_ci(frame)
    row = summary[(summary.model == "random") & (summary.metric == "probe F1")]
    assert row["mean"].item() == pytest.approx(np.mean(gen) - 0.3) and row["seeds"].item() == 5
    assert row["ci95"].item() == pytest.approx(2.776445 * np.std(gen, ddof=1) / np.sqrt(5))
    table = verdicts.differences(frame, "gen_f", "probe F1")
    # the two intervals overlap widely, but the paired difference is 0.3 give or take 0.02
    assert table.loc["noise", "difference"] == pytest.approx(0.3)
    assert table.loc["noise", "verdict"] == "better"
    assert table.loc["cat", "verdict"] == "not distinguishable"
    # exactly 0.3 every seed: no spread, so no test and no evidence (a t-test gives p = 0)
    assert table.loc["random", "difference"] == pytest.approx(0.3)
    assert table.loc["random", "p"] == 1.0
    assert table.loc["random", "verdict"] == "not distinguishable"
    # by hand: the one decisive rival's differences [0.01, -0.01, 0.02, -0.02, 0] have sd
    # 0.0158114; Holm's first step over the 6 decisive rivals tests at 0.05 / 6, two-sided:
    # (t_(1 - 0.05/12), 4 df = 4.851008 + t_0.8, 4 df = 0.940965) * 0.0158114 / sqrt(5)
    mde = verdicts.detectable(frame, "gen_f", "probe F1")
    assert mde == pytest.approx((4.851008 + 0.940965) * 0.0158114 / np.sqrt(5), rel=1e-5)
    at_five = verdicts.detectable(frame, "gen_f", "probe F1", level=0.05)
    assert at_five == pytest.approx((2.776445 + 0.940965) * 0.0158114 / np.sqrt(5), rel=1e-5)


def test_holm_runs_over_the_decisive_rivals_alone(seeded_metrics):
    """Descriptive rivals are corrected in a family of their own: adding many of them leaves
    the decisive rows' adjusted p-values as they were, and the verdict words use those."""
    gen = [0.80, 0.82, 0.81, 0.85, 0.79]
    steps = [0.010, 0.030, 0.020, 0.025, 0.015]
    values = {
        "gen_f": gen,
        "cat": [v - d for v, d in zip(gen, steps, strict=True)],
        "merge": [v + 0.001 * i for i, v in enumerate(gen)],
    }
    few = verdicts.differences(evaluate.long_metrics(seeded_metrics(values)), "gen_f", "probe F1")
    more = values | {f"descriptive {i}": [v - 0.3 + 0.01 * i for v in gen] for i in range(10)}
    many = verdicts.differences(evaluate.long_metrics(seeded_metrics(more)), "gen_f", "probe F1")
    source = "cat"
    assert many.loc[source, "p (Holm)"] == pytest.approx(few.loc[source, "p (Holm)"])
    assert many.loc[source, "p (Holm)"] == pytest.approx(min(1, 2 * few.loc[source, "p"]))
    assert list(many["role"][:2]) == ["decisive", "decisive"]
    assert set(many["role"][2:]) == {"descriptive"}
    assert many.loc[source, "verdict"] == "better"
    said = words.bound_words(many)
    # the bound is the family's: simultaneous over the 2 decisive rivals, wider than the 95%
    high = many.loc[source, "family high"]
    assert high > many.loc[source, "high"]
    shown = "cat CNN (source unchanged)"  # the words name rivals by their labels
    assert said.startswith(f"at most {high:.3f} above *{shown}*") and "descriptive" not in said
    lower = many.assign(**{"family high": -0.02})
    assert words.bound_words(lower).startswith("at least 0.020 below")


def test_verdict_table_joins_metrics_with_different_rivals(seeded_metrics):
    """The AND rule has a probe F1 but no K-means F1: the table still lines the rivals up."""
    gen = [0.80, 0.82, 0.81]
    frame = evaluate.long_metrics(seeded_metrics({"gen_f": gen, "random": [v - 0.1 for v in gen]}))
    extra = frame[frame.model == "random"].assign(model="and")
    frame = pd.concat([frame, extra[extra.metric == "probe F1"]])
    tables = verdicts.comparisons(frame, "gen_f")
    table = verdicts.verdict_table(tables)
    # the table is for readers: rivals by their labels
    shown = fusion.label("and")
    assert table.loc[shown, ("K-means F1", "verdict")] == ""
    assert table.loc["random CNN", ("probe F1", "difference")] == "+0.100"
    assert list(table.index) == [shown, "random CNN"]  # decisive first
    # the one primary question, secondary families, descriptive rows; intervals say unadjusted
    assert list(table[("probe F1", "family")]) == ["primary", "descriptive"]
    assert verdicts.verdict_table(tables, "gen_g").loc[shown, ("probe F1", "family")] == "secondary"
    assert verdicts.family("gen_f", "probe ROC AUC", "decisive") == "secondary"
    assert ("probe F1", "95% interval (unadjusted)") in table


def test_verdict_counts_and_their_glue_count_decisive_rivals_only(seeded_metrics):
    gen = [0.80, 0.82, 0.81, 0.85, 0.79]
    values = {
        "gen_f": gen,
        # decisive, far behind every seed (a little spread: a constant difference is no test)
        "arithmetic": [v - 0.2 - 0.003 * (i % 2) for i, v in enumerate(gen)],
        # descriptive: better, but it decides nothing
        "random": [v - 0.3 - 0.003 * (i % 2) for i, v in enumerate(gen)],
    }
    frame = evaluate.long_metrics(seeded_metrics(values))
    tables = verdicts.comparisons(frame, "gen_f", ("probe F1",))
    assert tables["probe F1"].loc["random", "verdict"] == "better"
    assert verdicts.count_glue(tables, "f") == {
        "f_probe_f1_better": 1,
        "f_probe_f1_worse": 0,
        "f_probe_f1_not": 0,
    }
    width = 2 * tables["probe F1"].loc["arithmetic", "ci95"]
    assert verdicts.verdict_interval_width(tables["probe F1"]) == pytest.approx(width)
