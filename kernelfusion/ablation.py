"""Chapter 08's ablation: variants of the method, each a config (an *arm*), each run over seeds
with the upstream stages shared (an arm that changes a `gan.*` value reuses the data, the source
CNNs and the zoo, and the metrics of every model its change leaves alone), and each compared
with the rivals a useful method must beat, by paired per-seed differences.

The arms are the knobs earlier chapters pointed at: the identity term (a strong one pulls a
generator toward copying its input), the generator's shape, whole layers as samples (the
original's; aligned, or with a permutation-equivariant generator), translating layer 1 only
(layer 2's domains barely differ, chapter 04), switching off the layer-2 alignment (the
go/no-go for alignment) or matching layer 1 by its responses to unlabelled images instead of
its weights, and a functional loss on what the generated CNN does
(`functional`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from . import pipeline
from .alignment import alignment_go, match_images
from .cnn import weight_count
from .config import Config, ConfigError, with_overrides, zoo_size
from .evaluate import long_metrics
from .fusion import DECISIVE, GENERATED, label
from .gan_checks import evaluate as gan_evaluation
from .gan_checks import hidden_signal
from .original import CLAIM
from .report import headline
from .stats import mean_ci
from .verdicts import detectable_for, differences, tables_for
from .words import (
    arms_words,
    build_words,
    control_words,
    dependence_words,
    go_words,
    separability_words,
    verdict_words,
)

# short key -> (overrides on top of the book's config, display label); an override's value
# may be a function of the book's config (`overrides`)
ARMS: dict[str, tuple[dict[str, Any], str]] = {
    "reference": ({}, "the book's configuration"),
    "identity2": ({"gan.identity_weight": 2.0}, "identity weight 2"),
    "identity5": ({"gan.identity_weight": 5.0}, "identity weight 5"),
    # 32 channels: at the MLP's width of 256 a conv step costs 0.66 s on one CPU thread
    # (an arm of three seeds would take hours); 32 channels cost 1/64 of that
    "conv": ({"gan.arch": "conv", "gan.hidden": 32}, "conv generator (32 channels)"),
    # whole layers, the original's samples: with both axes in the reference model's order
    # (aligned), or in each model's own order with a generator indifferent to that order
    # (permutation-equivariant; 64 wide: 60 ms a step on one CPU thread at the default shapes,
    # the original's Conv3d 500 ms even at 16 channels)
    "layers": (
        {"gan.sample": "layer", "gan.align_outputs": True},
        "whole aligned layers as samples",
    ),
    # 1.5x the preset's steps (1,500 at the default): at 1,000 its probe F1 was 0.11 lower on
    # average (2 of 3 seeds of config.TUNING_SEEDS; `python -m benchmarks steps default set
    # 1000,1500 20,21,22`), where the other arms lost nothing (config.GanConfig.steps); again
    # with the passes in bfloat16 (gan.precision): 0.648 at 1,000 against 0.708 at 1,500,
    # lower on all 3 seeds (ROC AUC 0.839 against 0.871)
    "set": (
        {
            "gan.sample": "layer",
            "gan.arch": "set",
            "gan.hidden": 64,
            "gan.steps": lambda cfg: cfg.gan.steps * 3 // 2,
            "gan.decay_steps": lambda cfg: cfg.gan.decay_steps * 3 // 2,
        },
        "whole layers, permutation-equivariant generator",
    ),
    "layer1": ({"gan.layers": "conv1"}, "layer 1 translated only"),
    "unaligned": ({"gan.align_layer2": False}, "no layer-2 alignment"),
    "activations": ({"gan.align_by": "activations"}, "layer-2 alignment by activations"),
    # weight 10, as the cycle term's: at 1 the behaviour term is a tenth of the CycleGAN's
    # losses at the start and barely moves the generators
    "functional": ({"gan.functional_weight": 10.0}, "functional loss (distillation)"),
}
# the gan.* settings that still mean something with gan.source = original
PUBLISHED_KEYS = ("gan.layers",)
# The rivals a label-free generated CNN must beat: the comparisons that decide every verdict
# (models.DECISIVE; the distilled CNN is the functional loss's control).
RIVALS = DECISIVE
METRICS = ("probe F1", "probe ROC AUC")


@dataclass
class Ablation:
    """Each arm's metrics per seed, and the arms left out (with the reason)."""

    results: dict[str, dict[int, dict]]  # arm -> seed -> metrics.json
    configs: dict[str, Config]  # arm -> its config (at the first seed)
    skipped: dict[str, str]


def overrides(arm: str, cfg: Config) -> dict[str, Any]:
    """The overrides `arm` sets on top of `cfg`, each function of the config evaluated."""
    return {k: v(cfg) if callable(v) else v for k, v in ARMS[arm][0].items()}


def arm_configs(cfg: Config) -> tuple[dict[str, Config], dict[str, str]]:
    """Each arm's config on top of `cfg`; an arm that is not valid for this preset, or is the
    same as an earlier arm (e.g. whole layers where they already are), is left out, saying why."""
    configs, skipped, seen = {}, {}, {}
    chosen = [a.strip() for a in cfg.analysis.ablation_arms.split(",") if a.strip()]
    unknown = [a for a in chosen if a not in ARMS]
    if unknown:
        raise ConfigError(
            f"override 'analysis.ablation_arms' names unknown arms {unknown}: choose from "
            f"{', '.join(ARMS)}"
        )
    for arm in ARMS:
        if chosen and arm not in chosen:
            continue
        changes = overrides(arm, cfg)
        unused = [k for k in changes if k.startswith("gan.") and k not in PUBLISHED_KEYS]
        if cfg.gan.source == "original" and unused:
            skipped[arm] = (
                f"the original's published generators are read, not trained here: "
                f"{', '.join(unused)} would change nothing"
            )
            continue
        try:
            # the arms are compared on the probe's F1 and AUC alone (METRICS)
            arm_cfg = with_overrides(cfg, {**changes, "analysis.views": "probe"})
        except ConfigError as error:
            skipped[arm] = f"not valid here: {error}"
            continue
        if arm_cfg.hash in seen:
            skipped[arm] = f"the same configuration as '{seen[arm_cfg.hash]}'"
            continue
        seen[arm_cfg.hash] = arm
        configs[arm] = arm_cfg
    return configs, skipped


def selection_seeds(cfg: Config) -> list[int]:
    """The seeds every arm runs at, on which the best arm is chosen: `cfg.seed` and the next
    `analysis.ablation_seeds - 1` (the first of chapter 07's, so the reference arm is cached)."""
    return [cfg.seed + i for i in range(cfg.analysis.ablation_seeds)]


def confirmation_seeds(cfg: Config) -> list[int]:
    """The seeds the chosen arm is confirmed at: as many as chapter 07 uses
    (`analysis.seeds`), all after the selection seeds, so that no seed (no data, no training,
    no metrics file) that chose the arm also judges it."""
    start = cfg.seed + cfg.analysis.ablation_seeds
    return [start + i for i in range(cfg.analysis.seeds)]


def run(cfg: Config, root=None) -> Ablation:
    """Every arm at the selection seeds (`selection_seeds`), through the pipeline's shared
    cache and workers (`pipeline.run_many`)."""

    configs, skipped = arm_configs(cfg)
    jobs = [
        (arm, seed, dataclasses.replace(arm_cfg, seed=seed))
        for arm, arm_cfg in configs.items()
        for seed in selection_seeds(cfg)
    ]
    metrics = pipeline.run_many([job[2] for job in jobs], root)
    results: dict[str, dict[int, dict]] = {arm: {} for arm in configs}
    for (arm, _, job_cfg), result in zip(jobs, metrics, strict=True):
        results[arm][job_cfg.seed] = result
    return Ablation(results, configs, skipped)


def frames(ablation: Ablation) -> dict[str, Any]:
    """arm -> the long metrics table of its seeds (`evaluate.long_metrics`)."""
    return {arm: long_metrics(results) for arm, results in ablation.results.items()}


def table(ablation: Ablation):
    """One row per arm, generated model, rival and metric: the paired difference (generated
    minus rival) over the arm's seeds, its 95% interval, the Holm-adjusted p-value over the
    rivals and the verdict; with the generated model's own mean."""
    import pandas as pd

    rows = []
    for arm, frame in frames(ablation).items():
        for model in GENERATED:
            for metric in METRICS:
                table = differences(frame, model, metric, list(RIVALS))
                own = frame[(frame["model"] == model) & (frame["metric"] == metric)]["value"]
                for rival, row in table.iterrows():
                    rows.append(
                        {
                            "arm": arm,
                            "variant": ARMS[arm][1],
                            "model": model,
                            "metric": metric,
                            "mean": float(own.mean()),
                            "rival": rival,
                            "difference": row["difference"],
                            "low": row["low"],
                            "high": row["high"],
                            "p (Holm)": row["p (Holm)"],
                            "verdict": row["verdict"],
                            "seeds": int(row["seeds"]),
                        }
                    )
    return pd.DataFrame(rows)


def best(long) -> dict[str, Any]:
    """The best variant: the (arm, generated model) with the highest mean probe F1; whether
    its Holm-adjusted verdict against each rival is "better" on every metric, and how many
    rivals it beats so (at the selection seeds: `confirm` judges it on others)."""
    f1 = long[long["metric"] == "probe F1"]
    means = f1.groupby(["arm", "model"])["mean"].first()
    arm, model = means.idxmax()
    rows = long[(long["arm"] == arm) & (long["model"] == model)]
    beats = {
        rival: bool((part["verdict"] == "better").all() and len(part) == len(METRICS))
        for rival, part in rows.groupby("rival")
    }
    return {
        "arm": arm,
        "variant": ARMS[arm][1],
        "model": model,
        "probe F1": float(means.max()),
        "beats": beats,
        "beats all": all(beats.values()) and len(beats) == len(RIVALS),
        "rivals beaten": int(sum(beats.values())),
    }


def confirm(study: Ablation, best_variant: dict[str, Any]) -> dict[str, Any]:
    """The best variant run again at fresh seeds (`confirmation_seeds`, as many as chapter 07
    uses, none of them a selection seed: a best of several arms judged on the seeds that chose
    it is flattered by them): its paired differences with each rival on each metric, and the
    rivals it beats on all of them."""

    arm_cfg = study.configs[best_variant["arm"]]
    seeds = confirmation_seeds(arm_cfg)  # disjoint from selection_seeds (tests/test_ablation)
    frame = long_metrics(pipeline.run_seeds(arm_cfg, at_seeds=seeds))
    tables = {
        metric: differences(frame, best_variant["model"], metric, list(RIVALS))
        for metric in METRICS
    }
    beaten = [r for r in RIVALS if all(t.loc[r, "verdict"] == "better" for t in tables.values())]
    return {
        "tables": tables,
        "beaten": beaten,
        "not beaten": [r for r in RIVALS if r not in beaten],
        "seeds": len(seeds),
        "seed list": seeds,
        "config": arm_cfg,
    }


CONTROL = "distilled"  # the functional loss's control


def control_check(long, arm: str = "functional", model: str = GENERATED[0]) -> dict | None:
    """`model` of `arm` against the distilled control, per metric: the paired difference, its
    95% interval and the Holm-adjusted verdict (from the ablation table); None when the arm
    was not run."""
    rows = long[(long["arm"] == arm) & (long["model"] == model) & (long["rival"] == CONTROL)]
    if rows.empty:
        return None
    out = {
        row["metric"]: {k: row[k] for k in ("difference", "low", "high", "verdict", "mean")}
        for _, row in rows.iterrows()
    }
    return out


def control_summary(long) -> dict[str, Any]:
    """For the chapters: `control_check`'s probe-F1 difference, its interval and its verdict
    (NaN and None when the functional arm was not run)."""
    check = control_check(long)
    if check is None:
        nan = float("nan")
        return {"verdict": None, "diff": nan, "low": nan, "high": nan}
    f1 = check[METRICS[0]]
    return {
        "verdict": f1["verdict"],
        "diff": f1["difference"],
        "low": f1["low"],
        "high": f1["high"],
    }


def summary_frame(long):
    """Per arm and generated model: the mean probe F1 and ROC AUC, and the number of rivals
    it is better and worse than by the Holm-adjusted paired test (the intervals are shown as
    intervals in `table` and the figure; words come from adjusted tests only)."""
    import pandas as pd

    rows = []
    for (arm, model), part in long.groupby(["arm", "model"], sort=False):
        row = {"variant": ARMS[arm][1], "model": label(model)}
        for metric in METRICS:
            m = part[part["metric"] == metric]
            row[f"{metric}"] = float(m["mean"].iloc[0])
            row[f"{metric}: rivals beaten"] = int((m["verdict"] == "better").sum())
            row[f"{metric}: rivals ahead"] = int((m["verdict"] == "worse").sum())
        rows.append(row)
    return pd.DataFrame(rows).set_index(["variant", "model"])


# --- checks on one arm's CycleGAN -----------------------------------------------------------


# --- what chapter 08 shows and says ----------------------------------------------------------


@dataclass
class Chapter:
    """Chapter 08's results: the ablation's long table, the best variant and its confirmation,
    the tables it shows (by name), and the values its prose glues (plain, and Markdown)."""

    long: Any
    best: dict[str, Any]
    checked: dict[str, Any]
    tables: dict[str, Any]
    values: dict[str, Any]
    markdown: dict[str, str]


def chapter(cfg: Config, store) -> Chapter:
    """Every arm at the selection seeds, the best variant confirmed at fresh seeds, the
    alignment go/no-go, the hidden-signal check of the best variant's CycleGAN and the
    functional arm against its control: what chapter 08 shows, as tables and glue values."""
    import pandas as pd

    upstream = pipeline.run(cfg, store, progress=False, until="zoo")
    go = alignment_go(cfg, upstream.zoo, match_images(cfg, upstream.datasets))
    study = run(cfg)
    long = table(study)
    best_variant = best(long)
    checked = confirm(study, best_variant)
    best_cfg = checked["config"]
    best_gan = pipeline.reuse(best_cfg, until="gan").gan  # made by a worker, most often
    hidden = hidden_signal(best_gan, noise=0.01, seed=cfg.seed)
    control = control_summary(long)
    tables = {
        "go": pd.Series(go, name="black vs cat, balanced accuracy").to_frame(),
        "skipped": pd.DataFrame(
            {"left out because": {ARMS[a][1]: why for a, why in study.skipped.items()}}
        ),
        "summary": summary_frame(long),
        "best": pd.DataFrame(
            {
                "beaten on both metrics": {
                    label(r): "yes" if b else "no" for r, b in best_variant["beats"].items()
                }
            }
        ),
        "hidden": pd.DataFrame(hidden).T,
        "control": pd.DataFrame({m: row for m, row in (control_check(long) or {}).items()}).T,
    }
    values = {
        "go_before": go["as trained"],
        "go_after": go["aligned"],
        "go_after_act": go["aligned by activations"],
        "ablation_seeds": cfg.analysis.ablation_seeds,
        "n_arms": len(study.results),
        "n_rivals": len(RIVALS),
        "best_f1": best_variant["probe F1"],
        "best_beaten": best_variant["rivals beaten"],
        "confirm_seeds": checked["seeds"],
        "confirm_beaten": len(checked["beaten"]),
        "hidden_noise": 0.01,
        "hidden_ratio": max(v["ratio"] for v in hidden.values()),
    } | {f"control_{k}": control[k] for k in ("diff", "low", "high")}
    markdown = {
        "go_verdict": go_words(go),
        "selection_seeds": ", ".join(map(str, selection_seeds(cfg))),
        "arms_words": arms_words(
            cfg,
            [ARMS[arm][1] for arm in study.results],
            len(ARMS),
            {ARMS[arm][1]: why for arm, why in study.skipped.items()},
        ),
        "best_variant": f"**{best_variant['variant']}**, `{label(best_variant['model'])}`",
        "confirm_seed_list": ", ".join(map(str, checked["seed list"])),
        "confirm_verdict": verdict_words(checked),
        "hidden_layer": max(hidden, key=lambda k: hidden[k]["ratio"]),
        "control_words": control_words(control["verdict"]),
        "confirm_caveat": build_words(cfg)["confirm_caveat"],
    }
    return Chapter(long, best_variant, checked, tables, values, markdown)


def lessons(cfg: Config, store) -> tuple[dict[str, Any], dict[str, str]]:
    """What chapter 09 says, from chapters 07 and 08's cached runs: the headline on probe F1
    and AUC, the ablation's best variant and its confirmation, the control's words, and how
    separable the two kernel domains are per layer. Plain values and Markdown, by glue key."""
    runs = pipeline.run_seeds(cfg)
    frame = long_metrics(runs)
    summary = mean_ci(frame)
    tables = tables_for(runs, cfg, "gen_f", frame, ("probe F1", "probe ROC AUC"))
    values: dict[str, Any] = {}
    markdown: dict[str, str] = {}
    for key, metric in (("f1", "probe F1"), ("auc", "probe ROC AUC")):
        mde = detectable_for(tables, frame, cfg, "gen_f", metric)
        for name, value in headline(tables[metric], summary, mde, "gen_f", metric).items():
            glue_key = f"{key}_{name.replace(' ', '_').replace('-', '_')}"
            (markdown if isinstance(value, str) else values)[glue_key] = value
    study = run(cfg)
    long = table(study)
    best_variant = best(long)
    checked = confirm(study, best_variant)
    gan = pipeline.run(cfg, store, progress=False, until="gan").gan
    evaluation = gan_evaluation(gan)
    separable = "domain classifier accuracy (real, 5-fold by model)"
    values |= {
        "n_seeds": len(frame["seed"].unique()),
        "n_train": cfg.data.black_count
        + cfg.data.black_random_count
        + cfg.data.cat_count
        + cfg.data.cat_random_count,
        "n_weights": weight_count(cfg.cnn, cfg.data.image_size),
        "n_zoo": zoo_size(cfg, "cat"),
        "best_seeds": checked["seeds"],
        "best_rivals": len(RIVALS),
        "l1_separable": evaluation["conv1"][separable],
        "l2_separable": evaluation["conv2"][separable],
        "l2_cosine": evaluation["conv2"]["cosine(black, G(black))"],
    } | {f"claim_{k.replace(' ', '_')}": v for k, v in CLAIM.items()}
    markdown |= {
        "best_variant": f"*{best_variant['variant']}* (`{label(best_variant['model'])}`)",
        "best_beaten": ", ".join(f"*{label(r)}*" for r in checked["beaten"]) or "none of them",
        "best_not_beaten": ", ".join(f"*{label(r)}*" for r in checked["not beaten"]) or "any",
        "control_words09": control_words(control_summary(long)["verdict"]),
        "domains_words": separability_words(
            max(evaluation["conv1"][separable], evaluation["conv2"][separable])
        ),
        "l2_words": dependence_words(evaluation["conv2"]["cosine(black, G(black))"]),
    }
    markdown |= {f"{k}09": v for k, v in build_words(cfg).items()}
    return values, markdown
