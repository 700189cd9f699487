"""Chapter 08's ablation: its arms as configs, its table and verdict from paired differences,
and the hidden-signal check on CycleGANs whose behaviour is known."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from kernelfusion import ablation, config, evaluate, gan_checks, words
from kernelfusion.config import ConfigError


def test_arms_are_configs_on_top_of_the_book_and_invalid_or_repeated_ones_are_left_out():
    configs, skipped = ablation.arm_configs(
        config.load("smoke", {"seed": 4, "analysis.ablation_arms": ""})
    )
    assert set(configs) == set(ablation.ARMS) and not skipped
    assert configs["identity2"].gan.identity_weight == 2.0 and configs["identity2"].seed == 4
    assert configs["layer1"].gan.layers == "conv1" and configs["reference"].gan.layers == "both"
    assert len({c.hash for c in configs.values()}) == len(configs)
    assert configs["layers"].gan.align_outputs and configs["set"].gan.arch == "set"
    assert configs["functional"].gan.functional_weight > 0
    paper, skipped = ablation.arm_configs(config.load("paper"))
    assert "gan.arch" in skipped["conv"] and paper["layers"].gan.arch == "conv3d"
    smoke, _ = ablation.arm_configs(config.load("smoke"))
    assert list(smoke) == ["reference", "layer1", "functional"]
    with pytest.raises(ConfigError, match="unknown arms \\['nope'\\]"):
        ablation.arm_configs(config.load("smoke", {"analysis.ablation_arms": "reference,nope"}))
    with pytest.raises(ConfigError, match="unknown override 'gan.nope'"):
        config.with_overrides(config.load("smoke"), {"gan.nope": 1})


def _metrics(values: dict[str, list[float]]) -> dict[int, dict]:
    """Metrics files whose every view of a model holds one number per seed (the product rule,
    a score model, likewise)."""

    views = {m.view for m in evaluate.METRICS.values()}
    keys = {m.key for m in evaluate.METRICS.values()}
    return {
        seed: {
            "models": {
                name: {view: dict.fromkeys(keys, v[seed]) for view in views}
                for name, v in values.items()
                if name != evaluate.AND_RULE
            },
            "score models": {
                evaluate.AND_RULE: dict.fromkeys(keys, values[evaluate.AND_RULE][seed])
            },
            "references": {},
        }
        for seed in range(len(next(iter(values.values()))))
    }


def test_table_and_best_variant_follow_the_paired_differences():
    rivals = {r: [0.50, 0.52, 0.51, 0.49] for r in ablation.RIVALS}
    strong = {
        "gen_f": [0.70, 0.73, 0.71, 0.72],
        "gen_g": [0.50, 0.53, 0.48, 0.52],
    }
    weak = {
        "gen_f": [0.51, 0.50, 0.52, 0.50],
        "gen_g": [0.49, 0.52, 0.50, 0.51],
    }
    study = ablation.Ablation(
        {"reference": _metrics(rivals | weak), "identity2": _metrics(rivals | strong)}, {}, {}
    )
    long = ablation.table(study)
    assert set(long["rival"]) == set(ablation.RIVALS) and set(long["metric"]) == set(
        ablation.METRICS
    )
    best = ablation.best(long)
    assert (best["arm"], best["model"]) == ("identity2", "gen_f")
    assert best["beats all"] and best["rivals beaten"] == len(ablation.RIVALS)
    weak_rows = long[(long["arm"] == "reference") & (long["model"] == "gen_f")]
    assert (weak_rows["verdict"] == "not distinguishable").all()
    summary = ablation.summary_frame(long)
    assert summary.loc[
        ("identity weight 2", "generated F(cat CNN)"), "probe F1: rivals beaten"
    ] == len(ablation.RIVALS)
    assert ablation.control_check(long) is None  # no functional arm in this study
    check = ablation.control_check(long, arm="identity2")
    assert check["probe F1"]["verdict"] == "better" and check["probe F1"]["low"] > 0
    as_functional = long.assign(arm=long["arm"].replace("identity2", "functional"))
    assert ablation.control_summary(as_functional)["verdict"] == "better"


def test_hidden_signal_check_separates_a_hiding_cyclegan_from_an_honest_one():
    """A pair that hides its input in a faint signal (G(x) = c + eps x, F undoes it) has an
    exact cycle that 1% noise destroys; an honest pair (G = F = identity) barely notices."""
    kernels = torch.randn(64, 3, 5, 5)
    c = torch.nn.functional.normalize(torch.ones(1, 75), dim=1)
    eps = 1e-3

    def gan(G, F):
        return SimpleNamespace(
            layers={"conv1": SimpleNamespace(nets={"G": G, "F": F}, published=False)},
            kernels={"black": {"conv1": kernels}},
        )

    honest = gan_checks.hidden_signal(gan(lambda x: x, lambda y: y))["conv1"]
    hiding = gan_checks.hidden_signal(gan(lambda x: c + eps * x, lambda y: (y - c) / eps))["conv1"]
    assert honest["cycle L1"] < 1e-6 and hiding["cycle L1"] < 1e-3
    assert hiding["cycle L1, with noise"] > 100 * honest["cycle L1, with noise"]
    assert 0 < honest["cycle L1, with noise"] < 0.01


@pytest.mark.parametrize("preset", list(config.PRESETS))
@pytest.mark.parametrize("seed", [0, 7])
def test_the_confirmation_never_reuses_a_seed_that_chose_the_arm(preset, seed):
    """Chapter 08 chooses its best arm at the selection seeds and confirms it at as many fresh
    seeds as chapter 07 uses: the two sets never meet, for every preset and for each arm's
    config (an arm keeps the book's seeds)."""
    cfg = config.load(preset, {"seed": seed, "data.root": "x", "zoo.root": "x"})
    chosen, confirming = ablation.selection_seeds(cfg), ablation.confirmation_seeds(cfg)
    assert len(chosen) == cfg.analysis.ablation_seeds
    assert len(confirming) == cfg.analysis.seeds == len(set(confirming))
    assert not set(chosen) & set(confirming)
    for arm_cfg in ablation.arm_configs(cfg)[0].values():
        assert ablation.selection_seeds(arm_cfg) == chosen
        assert ablation.confirmation_seeds(arm_cfg) == confirming


def test_words_of_the_ablation_come_from_adjusted_tests_only():
    """Differences whose unadjusted 95% intervals all exclude zero (p about 0.02 each) but
    that Holm's correction over the six decisive rivals does not call: no rival is "beaten"."""
    shift = [0.030, 0.010, 0.050, 0.020]  # t about 3.9 on 3 df: p 0.03, x 6 rivals > 0.05
    rivals = {r: [0.50, 0.52, 0.51, 0.49] for r in ablation.RIVALS}
    near = {
        model: [v + d for v, d in zip(rivals[ablation.RIVALS[0]], shift, strict=True)]
        for model in ablation.GENERATED
    }
    long = ablation.table(ablation.Ablation({"reference": _metrics(rivals | near)}, {}, {}))
    f1 = long[(long["metric"] == "probe F1") & (long["model"] == ablation.GENERATED[0])]
    assert (f1["low"] > 0).all() and (f1["verdict"] == "not distinguishable").all()
    summary = ablation.summary_frame(long)
    assert (summary["probe F1: rivals beaten"] == 0).all()
    best = ablation.best(long)
    assert best["rivals beaten"] == 0 and not any(best["beats"].values())


def test_with_the_published_generators_only_the_arms_that_change_something_run():
    cfg = config.load("original", {"data.root": "c", "zoo.root": "c", "analysis.ablation_arms": ""})
    configs, skipped = ablation.arm_configs(cfg)
    assert set(configs) == {"reference", "layer1"}
    assert set(skipped) == set(ablation.ARMS) - set(configs)
    assert "read, not trained here: gan.identity_weight" in skipped["identity2"]
    default = config.load("original", {"data.root": "c", "zoo.root": "c"})
    assert set(ablation.arm_configs(default)[0]) == {"reference", "layer1"}
    study = ablation.Ablation({arm: {} for arm in configs}, configs, skipped)
    said = words.arms_words(  # what chapter 08 says, each left-out arm and why
        cfg,
        [ablation.ARMS[arm][1] for arm in study.results],
        len(ablation.ARMS),
        {ablation.ARMS[arm][1]: why for arm, why in study.skipped.items()},
    )
    assert said.startswith(f"This build runs 2 of the {len(ablation.ARMS)} arms")
    for arm, why in skipped.items():
        assert f"*{ablation.ARMS[arm][1]}*: {why}" in said
