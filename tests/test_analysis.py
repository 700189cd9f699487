import numpy as np
import pandas as pd
import pytest

from kernelfusion import evaluate, fusion, report, stats, verdicts
from kernelfusion import measures as measures


def test_purity_entropy_and_hungarian_on_a_hand_checked_example():
    # cluster 0: 3 black cats + 1 other cat; cluster 1: 2 black non-cats + 2 other images
    clusters = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    groups = np.array([0, 0, 0, 1, 2, 2, 3, 3])
    table, ids = measures.contingency(clusters, groups)
    assert table.tolist() == [[3, 1, 0, 0], [0, 0, 2, 2]] and ids.tolist() == [0, 1]
    assert measures.purity(table) == pytest.approx(5 / 8)
    h0 = -(0.75 * np.log2(0.75) + 0.25 * np.log2(0.25))
    assert measures.cluster_entropy(table) == pytest.approx((h0 + 1.0) / 2)
    assert measures.hungarian(table) == {0: 0, 1: 2}
    metrics = measures.matched_cluster_metrics(clusters, groups, clusters, groups)
    assert metrics["black cat precision"] == pytest.approx(0.75)
    assert metrics["black cat recall"] == pytest.approx(1.0)
    assert metrics["black cat f1"] == pytest.approx(2 * 0.75 / 1.75)
    assert metrics["best cluster f1"] == pytest.approx(2 * 0.75 / 1.75)
    assert 0 < metrics["ari"] < 1 and 0 < metrics["ami"] < 1


def test_hungarian_is_one_to_one_not_majority_vote():
    # both clusters are mostly black cats; only one may be called "black cat"
    table = np.array([[5, 0, 1, 0], [4, 3, 0, 0]])
    mapping = measures.hungarian(table)
    assert sorted(mapping.values()) == [0, 1] and mapping == {0: 0, 1: 1}


def test_clusters_are_matched_on_the_labelled_images_not_on_the_scored_ones():
    """On the labelled images cluster 1 holds the black cats; on the evaluated images cluster
    0 does. Matching on the scored images would call cluster 0 'black cat' and score F1 = 1."""
    lab_clusters, lab_groups = np.array([0, 0, 1, 1]), np.array([2, 2, 0, 0])
    ev_clusters, ev_groups = np.array([0, 0, 1, 1]), np.array([0, 0, 2, 2])
    metrics = measures.matched_cluster_metrics(lab_clusters, lab_groups, ev_clusters, ev_groups)
    assert metrics["black cat f1"] == 0.0 and metrics["best cluster f1"] == 1.0
    assert metrics["ari"] == pytest.approx(1.0)  # the clusters do split the groups


def test_random_clusters_score_chance_and_no_more():
    groups = np.repeat(np.arange(4), 250)
    ref = measures.random_clusters_reference(groups, groups, k=4, seed=0)
    assert ref["black cat f1"] == pytest.approx(0.25, abs=0.04)  # precision = recall = 1/4
    assert abs(ref["ari"]) < 0.01


def test_noise_points_are_left_out_and_counted():
    clusters = np.array([-1, -1, 0, 0, 1, 1])
    groups = np.array([0, 1, 0, 0, 2, 2])
    metrics = measures.matched_cluster_metrics(clusters, groups, clusters, groups)
    assert metrics["noise"] == pytest.approx(2 / 6) and metrics["clusters"] == 2
    assert metrics["purity"] == 1.0 and metrics["black cat recall"] == pytest.approx(2 / 3)


def test_reference_values_for_balanced_groups():
    groups = np.repeat(np.arange(4), 25)
    ref = measures.reference_values(groups)
    assert ref["all positive"] == pytest.approx(0.4)
    assert ref["perfect black detector"] == pytest.approx(2 / 3)
    assert ref["perfect cat detector"] == pytest.approx(2 / 3)


def test_linear_probe_finds_a_separable_group_and_centroid_cosine():
    rng = np.random.default_rng(0)
    groups = np.repeat(np.arange(4), 50)
    x = rng.normal(size=(200, 5))
    x[groups == 0, 0] += 6
    scores = measures.linear_probe(x[::2], groups[::2], x[1::2], groups[1::2])
    assert scores["f1"] > 0.95 and scores["roc auc"] > 0.99 and scores["average precision"] > 0.95
    noise = measures.linear_probe(x[::2, 1:], groups[::2], x[1::2, 1:], groups[1::2])
    assert noise["roc auc"] < 0.8  # the same probe on the uninformative columns
    # centroids (1, 0), (0, 1), (1, 1), (2, 0) by construction: cosines by hand
    centroids = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [2.0, 0.0]])
    points = np.repeat(centroids, 2, axis=0) + np.tile([[0.5, -0.5], [-0.5, 0.5]], (4, 1))
    cos = measures.centroid_cosine(points, np.repeat(np.arange(4), 2))
    assert cos[0, 1] == pytest.approx(0.0) and cos[0, 2] == pytest.approx(1 / np.sqrt(2))
    assert cos[0, 3] == pytest.approx(1.0) and cos[1, 2] == pytest.approx(1 / np.sqrt(2))


def test_label_efficiency_improves_with_labels_on_a_hard_group():
    rng = np.random.default_rng(1)
    groups = np.repeat(np.arange(4), 400)
    x = rng.normal(size=(1600, 30))
    x[groups == 0, :3] += 0.8
    curve = measures.label_efficiency(
        x[::2], groups[::2], x[1::2], groups[1::2], (2, 100), c=1.0, seed=0
    )
    assert list(curve) == ["2", "100"] and curve["100"]["roc auc"] > curve["2"]["roc auc"]


def _seeded_metrics(values: dict[str, list[float]]) -> dict[int, dict]:
    """Metrics files whose every view of a model holds the same number, seed by seed."""
    views = {m.view for m in evaluate.METRICS.values()}
    keys = {m.key for m in evaluate.METRICS.values()}
    return {
        seed: {
            "models": {
                name: {view: {k: v[seed] for k in keys} for view in views}
                for name, v in values.items()
            },
            "score models": {},
            "references": {"all positive": 0.4},
        }
        for seed in range(len(next(iter(values.values()))))
    }


def test_mean_ci_and_paired_differences_with_holm():
    gen = [0.80, 0.82, 0.81, 0.85, 0.79]
    values = {
        "gen_f": gen,
        "random": [v - 0.3 for v in gen],  # exactly 0.3 worse, every seed
        # far worse, seed by seed, with a little spread
        "noise": [v - 0.3 - d for v, d in zip(gen, [0.01, -0.01, 0.02, -0.02, 0], strict=True)],
        "cat": [v - d for v, d in zip(gen, [0.01, -0.01, 0.02, -0.02, 0], strict=True)],
    }
    frame = evaluate.long_metrics(_seeded_metrics(values))
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


def test_holm_runs_over_the_decisive_rivals_alone():
    """Descriptive rivals are corrected in a family of their own: adding many of them leaves
    the decisive rows' adjusted p-values as they were, and the verdict words use those."""
    gen = [0.80, 0.82, 0.81, 0.85, 0.79]
    steps = [0.010, 0.030, 0.020, 0.025, 0.015]
    values = {
        "gen_f": gen,
        "cat": [v - d for v, d in zip(gen, steps, strict=True)],
        "merge": [v + 0.001 * i for i, v in enumerate(gen)],
    }
    few = verdicts.differences(evaluate.long_metrics(_seeded_metrics(values)), "gen_f", "probe F1")
    more = values | {f"descriptive {i}": [v - 0.3 + 0.01 * i for v in gen] for i in range(10)}
    many = verdicts.differences(evaluate.long_metrics(_seeded_metrics(more)), "gen_f", "probe F1")
    source = "cat"
    assert many.loc[source, "p (Holm)"] == pytest.approx(few.loc[source, "p (Holm)"])
    assert many.loc[source, "p (Holm)"] == pytest.approx(min(1, 2 * few.loc[source, "p"]))
    assert list(many["role"][:2]) == ["decisive", "decisive"]
    assert set(many["role"][2:]) == {"descriptive"}
    assert many.loc[source, "verdict"] == "better"
    words = verdicts.bound_words(many)
    # the bound is the family's: simultaneous over the 2 decisive rivals, wider than the 95%
    high = many.loc[source, "family high"]
    assert high > many.loc[source, "high"]
    shown = "cat CNN (source unchanged)"  # the words name rivals by their labels
    assert words.startswith(f"at most {high:.3f} above *{shown}*") and "descriptive" not in words
    lower = many.assign(**{"family high": -0.02})
    assert verdicts.bound_words(lower).startswith("at least 0.020 below")


def test_uncertainty_words_follow_the_ratio_of_the_widths():
    assert "most of the uncertainty comes from the seeds" in report.uncertainty_words(0.01, 0.1)
    assert "comparable" in report.uncertainty_words(0.1, 0.1)
    assert "the finite test set" in report.uncertainty_words(0.3, 0.1)


def test_protocol_sample_is_every_photograph_at_the_original_preset():
    from kernelfusion import config

    everything = evaluate.protocol_sample(
        89, config.load("original", {"data.root": "x", "zoo.root": "x"}), 0
    )
    assert np.array_equal(everything, np.arange(89))
    cfg = config.load("default")
    part = evaluate.protocol_sample(5000, cfg, 0)
    assert len(part) == cfg.analysis.protocol_points == len(set(part.tolist()))
    assert np.array_equal(part, evaluate.protocol_sample(5000, cfg, 0))  # fixed per run
    assert not np.array_equal(part, evaluate.protocol_sample(5000, cfg, 1))


def test_verdict_table_joins_metrics_with_different_rivals():
    """The AND rule has a probe F1 but no K-means F1: the table still lines the rivals up."""
    gen = [0.80, 0.82, 0.81]
    frame = evaluate.long_metrics(_seeded_metrics({"gen_f": gen, "random": [v - 0.1 for v in gen]}))
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


def test_holm_adjustment_by_hand():
    assert stats.holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])


def test_bootstrap_difference_within_a_seed():
    rng = np.random.default_rng(0)
    truth = np.repeat([True, False], 500)
    good = np.where(truth, 1.0, -1.0) + rng.normal(0, 0.8, 1000)
    poor = np.where(truth, 1.0, -1.0) + rng.normal(0, 3.0, 1000)
    point, low, high = stats.bootstrap_difference(good, poor, truth, "f1", resamples=200)
    assert 0 < low < point < high
    same = stats.bootstrap_difference(good, good, truth, "roc auc", resamples=50)
    assert same == (0.0, 0.0, 0.0)


def test_no_chapter_types_a_result_in_its_prose():
    """Decimals and percentages in a chapter's prose must come from glue, never be typed."""
    import re

    import nbformat

    from kernelfusion.build import book

    for name in book.chapters():
        notebook = nbformat.read(book.PROJECT / f"{name}.ipynb", 4)
        for cell in notebook.cells:
            if cell.cell_type == "markdown":
                text = re.sub(r"\{glue:[a-z]*\}`[^`]*`", "", cell.source)
                text = re.sub(r"`[^`]*`", "", text)  # code: config keys, file names
                text = re.sub(r"\b(95|80|5)%", "", text)  # the method's levels, not results
                assert not re.search(r"\b\d+\.\d+\b|\d+\s?%", text), (name, cell.source)


def test_results_chapter_reads_its_numbers_from_the_metrics_files():
    """The results chapter's table changes when (and only when) a metrics file changes."""
    metrics = _seeded_metrics({"random": [0.6, 0.8]})
    first = report.results_table(stats.mean_ci(evaluate.long_metrics(metrics)))
    metrics[1]["models"]["random"]["linear probe"]["f1"] = 0.9
    second = report.results_table(stats.mean_ci(evaluate.long_metrics(metrics)))
    # t_0.975 with 1 df is 12.706; half the range of two values is their sd / sqrt(2)
    assert first.loc["random CNN", "probe F1"] == "0.700\u00a0± 1.271"  # by label
    assert second.loc["random CNN", "probe F1"] == "0.750\u00a0± 1.906"


def test_original_protocol_on_two_blobs():
    """Black cats in one blob, everything else in the other: 2-means finds them, the cluster
    with most black cats is called black cat, accuracy 1; the best state is never worse."""
    rng = np.random.default_rng(0)
    groups = np.repeat(np.arange(4), 50)
    embedding = rng.normal(size=(200, 2)) * 0.1
    embedding[groups == 0] += 5
    result = measures.original_protocol(embedding, groups, seed=0)
    assert result["accuracy"] == 1.0 and result["f1"] == 1.0
    # one state: its accuracy is the best; many on structureless points: the best state is
    # the maximum over states, above their mean
    flat = rng.normal(size=(200, 2))
    one = measures.original_protocol(flat, groups, seed=0, states=1)
    assert one["best accuracy"] == one["accuracy"]
    many = measures.original_protocol(flat, groups, seed=0, states=10)
    assert many["best accuracy"] > many["accuracy"]
    assert result["purity"] == pytest.approx(1.0 * 50 / 200 + 50 / 200)  # blob 2 holds 3 groups
    mixed = measures.original_protocol(rng.normal(size=(200, 2)), groups, seed=0)
    assert mixed["accuracy"] < 0.75  # no structure: below calling nothing a black cat


def test_probe_views_alone_give_the_probes_numbers_without_the_clusterings():
    """`analysis.views = probe` (chapter 08's arms) skips UMAP, the clusterings and the
    label-efficiency curve, and gives the same probe numbers as every view does."""
    from kernelfusion import config

    rng = np.random.default_rng(0)
    g_lab, g_eval = np.repeat(np.arange(4), 30), np.repeat(np.arange(4), 40)
    x_lab = rng.normal(size=(120, 16)) + (g_lab == 0)[:, None]
    x_eval = rng.normal(size=(160, 16)) + (g_eval == 0)[:, None]
    cfg = config.load("smoke")
    sample = evaluate.cluster_sample(g_lab, g_eval, cfg, 0)
    full, embedding, _, score = evaluate._metrics_for(x_lab, g_lab, x_eval, g_eval, sample, cfg)
    probe_cfg = config.with_overrides(cfg, {"analysis.views": "probe"})
    alone, empty, _, same = evaluate._metrics_for(x_lab, g_lab, x_eval, g_eval, sample, probe_cfg)
    assert set(alone) == {"linear probe"} and {"K-means (UMAP)", "label efficiency"} <= set(full)
    assert alone["linear probe"] == full["linear probe"]
    assert len(empty) == 0 and len(embedding) == len(sample[1]) and np.array_equal(score, same)
    long = evaluate.long_metrics(
        {0: {"models": {"m": alone}, "score models": {}, "references": {}}}
    )
    assert set(long["metric"]) >= {"probe F1", "probe ROC AUC"} and "K-means F1" not in set(
        long["metric"]
    )


def test_probe_views_score_the_generated_cnns_and_the_decisive_rivals_alone():
    """Chapter 08's arms (`analysis.views = probe`) compare each generated CNN with the
    decisive rivals and read no other model: those alone are scored there; every model is
    scored with every view (chapter 07)."""
    from kernelfusion import ablation, config, fusion

    cfg = config.load("smoke")
    names = [spec.id for spec in fusion.REGISTRY if spec.id != fusion.AND_RULE]
    assert evaluate.scored(cfg, names) == names
    probe = evaluate.scored(config.with_overrides(cfg, {"analysis.views": "probe"}), names)
    assert set(probe) == (set(fusion.GENERATED) | set(ablation.RIVALS)) - {fusion.AND_RULE}
    assert ablation.CONTROL in probe and "oracle" not in probe and "other_zoo" not in probe


def test_verdict_counts_and_their_glue_count_decisive_rivals_only():
    gen = [0.80, 0.82, 0.81, 0.85, 0.79]
    values = {
        "gen_f": gen,
        # decisive, far behind every seed (a little spread: a constant difference is no test)
        "arithmetic": [v - 0.2 - 0.003 * (i % 2) for i, v in enumerate(gen)],
        # descriptive: better, but it decides nothing
        "random": [v - 0.3 - 0.003 * (i % 2) for i, v in enumerate(gen)],
    }
    frame = evaluate.long_metrics(_seeded_metrics(values))
    tables = verdicts.comparisons(frame, "gen_f", ("probe F1",))
    assert tables["probe F1"].loc["random", "verdict"] == "better"
    assert verdicts.count_glue(tables, "f") == {
        "f_probe_f1_better": 1,
        "f_probe_f1_worse": 0,
        "f_probe_f1_not": 0,
    }
    width = 2 * tables["probe F1"].loc["arithmetic", "ci95"]
    assert verdicts.seed_interval_width(tables["probe F1"]) == pytest.approx(width)


def test_umap_distances_are_unchanged(monkeypatch):
    """The compiled all-pairs distances give umap the very matrix scikit-learn gave it (bit for
    bit), so every UMAP of the book is the one it was, only faster."""
    from sklearn.metrics import pairwise_distances

    umap = measures._umap()
    from umap.distances import euclidean

    rng = np.random.default_rng(0)
    x = np.maximum(rng.normal(size=(300, 64)), 0).astype(np.float32)  # ReLU features
    fast = umap.umap_.pairwise_distances(x, metric=euclidean)
    assert fast.dtype == np.float32 and np.array_equal(
        fast, pairwise_distances(x, metric=euclidean)
    )
    with pytest.raises(ValueError, match="NaN"):  # bad input: scikit-learn's own error, as before
        umap.umap_.pairwise_distances(np.full((3, 2), np.nan, np.float32), metric=euclidean)
    embedding = measures.umap_embedding(x, 7)
    monkeypatch.setattr(umap.umap_, "pairwise_distances", pairwise_distances)  # as umap ships
    np.testing.assert_array_equal(embedding, measures.umap_embedding(x, 7))


def _scipy_frechet(a, b, ridge: float) -> float:
    """The textbook formula with scipy's matrix square root (a ridge keeps it defined)."""
    from scipy import linalg

    a, b = a.double().numpy(), b.double().numpy()
    eye = np.eye(a.shape[1]) * ridge
    cov_a, cov_b = np.cov(a, rowvar=False) + eye, np.cov(b, rowvar=False) + eye
    root = np.real(linalg.sqrtm(cov_a @ cov_b))
    return float(((a.mean(0) - b.mean(0)) ** 2).sum() + np.trace(cov_a + cov_b - 2 * root))


def test_frechet_distance_is_the_textbook_formula_and_exact_for_fewer_rows_than_columns():
    import torch

    g = torch.Generator().manual_seed(0)
    # more rows than columns (filters): the same number as scipy's sqrtm
    a = torch.randn(500, 75, generator=g) * 0.3
    b = torch.randn(400, 75, generator=g) @ torch.randn(75, 75, generator=g) * 0.05 + 0.1
    assert measures.frechet_distance(a, b) == pytest.approx(_scipy_frechet(a, b, 0.0), rel=1e-9)
    # fewer rows than columns (whole layers): singular covariances, where sqrtm needs a ridge;
    # the exact value is its limit as the ridge goes to 0
    a, b = torch.randn(48, 400, generator=g) * 0.1, torch.randn(40, 400, generator=g) * 0.12
    exact = measures.frechet_distance(a, b)
    assert exact == pytest.approx(_scipy_frechet(a, b, 1e-12), rel=1e-5)
    assert abs(_scipy_frechet(a, b, 1e-6) - exact) > 1e-3  # the ridge's bias, now gone
    assert measures.frechet_distance(a, a) == pytest.approx(0.0, abs=1e-9)


def test_report_paste_is_myst_nbs_glue():
    """`report.paste` writes what myst_nb.glue(..., display=False) writes, without importing
    myst_nb in the chapter's kernel."""
    from IPython.core.interactiveshell import InteractiveShell
    from IPython.display import Markdown
    from IPython.utils.capture import capture_output
    from myst_nb import glue

    InteractiveShell.instance()
    values, markdown = {"n": 3, "share": 0.25, "who": "gen_f"}, {"words": "*not* better"}
    with capture_output() as ours:
        report.paste(values, markdown)
    with capture_output() as theirs:
        for key, value in values.items():
            glue(key, value, display=False)
        for key, value in markdown.items():
            glue(key, Markdown(value), display=False)
    assert [(o.data, o.metadata) for o in ours.outputs] == [
        (o.data, o.metadata) for o in theirs.outputs
    ]
    assert len(ours.outputs) == 4 and ours.outputs[3].metadata["scrapbook"]["name"] == "words"


def test_folds_partition_the_images_stratified_by_black_cat():
    truth = np.repeat([True, False], [34, 55])
    fold = measures.fold_assignment(truth, 5, seed=0)
    assert sorted(np.unique(fold)) == list(range(5))  # every image in exactly one fold
    assert all(6 <= truth[fold == k].sum() <= 7 for k in range(5))
    assert not np.array_equal(fold, measures.fold_assignment(truth, 5, seed=1))


def test_photograph_permutation_test_is_the_exact_one_by_hand():
    """Eight photographs, two repetitions: scipy enumerates all 2^8 swaps of the two models'
    scores photograph by photograph; the p-value is the share of swaps whose mean F1
    difference is at least as far from zero as the observed one (two-sided)."""
    import itertools

    truth = np.array([1, 1, 1, 0, 0, 0, 0, 1], dtype=bool)
    a = np.array([[1, 1, -1, -1, -1, 1, -1, 1], [1, 1, 1, -1, -1, -1, -1, -1]], dtype=float)
    b = np.array([[-1, 1, -1, 1, -1, 1, 1, -1], [-1, -1, 1, 1, -1, 1, -1, 1]], dtype=float)
    table = stats.photograph_differences(
        {"m": a, "r": b}, truth, "m", "probe F1", decisive=("r",), resamples=9999
    )

    def f1_mean(x):
        return stats.photograph_metric(x, truth, "f1")

    observed = f1_mean(a) - f1_mean(b)
    extreme = 0
    for flips in itertools.product([False, True], repeat=8):
        swap = np.array(flips)
        x, y = np.where(swap, b, a), np.where(swap, a, b)
        extreme += abs(f1_mean(x) - f1_mean(y)) >= abs(observed) - 1e-12
    assert table.loc["r", "difference"] == pytest.approx(observed)
    assert table.loc["r", "p"] == pytest.approx(extreme / 256)
    assert table.loc["r", "seeds"] == 8  # the photographs are the unit
    # the same scores for both models: nothing to test
    same = stats.photograph_differences({"m": a, "r": a}, truth, "m", "probe F1", decisive=("r",))
    assert same.loc["r", "p"] == 1.0 and same.loc["r", "verdict"] == "not distinguishable"
