"""The metrics stage (`evaluate`): which photographs the protocol scores, the probe-only views."""

import numpy as np

from kernelfusion import evaluate, fusion


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
    from kernelfusion import ablation, config

    cfg = config.load("smoke")
    names = [spec.id for spec in fusion.REGISTRY if spec.id != fusion.AND_RULE]
    assert evaluate.scored(cfg, names) == names
    probe = evaluate.scored(config.with_overrides(cfg, {"analysis.views": "probe"}), names)
    assert set(probe) == (set(fusion.GENERATED) | set(ablation.RIVALS)) - {fusion.AND_RULE}
    assert ablation.CONTROL in probe and "oracle" not in probe and "other_zoo" not in probe
