"""Every sentence the book computes: the words that depend on a result (a verdict, a direction,
a count), or on what the build is made of (which translator ran, the unit of replication).
Each function takes numbers, tables or the config and returns Markdown for `{glue:md}`; the
science modules return numbers and tables only, and a sentence that depends on nothing computed
is in the chapter's own Markdown.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from .config import TUNING_SEEDS, Config
from .fusion import Models, label
from .stats import decisive_rows
from .verdicts import unit

AND_WORDS = "the geometric mean of p(black) and p(cat) above one half"


GO_CHANCE = 0.6  # a layer-2 domain classifier below this after alignment: near chance


def go_words(go: dict[str, float]) -> str:
    """What `alignment_go` found, in words for chapter 08."""
    if max(go["aligned"], go["aligned by activations"]) < GO_CHANCE:
        return (
            "stays near chance either way: translation has little to learn in layer 2, which "
            "is why translating layer 1 only is one of the arms"
        )
    return "is above chance: layer 2's domains differ once aligned, so translating it can matter"


def bound_words(table, digits: int = 3) -> str:
    """What the data rule out, per decisive rival: the upper end of the difference's interval
    at the family's level (simultaneous 95% over the decisive rivals), as words ("at most
    0.012 above *cat CNN (source unchanged)*", or "at least 0.030 below" when the whole
    interval is below zero)."""
    parts = []
    for rival, row in decisive_rows(table).iterrows():
        high = float(row["family high"])
        if high < 0:
            parts.append(f"at least {-high:.{digits}f} below *{label(rival)}*")
        else:
            parts.append(f"at most {high:.{digits}f} above *{label(rival)}*")
    return "; ".join(parts) if parts else "no decisive rival was measured"


def convergence_words(curve: pd.DataFrame) -> str:
    """What chapter 04's convergence curve shows, in words (every number from `curve`)."""
    if curve.empty:
        return (
            "the original's published generators were trained by the original, not here: "
            "there is no run to follow"
        )
    first, last = curve.iloc[0], curve.iloc[-1]
    best = curve.loc[curve["probe F1"].idxmax()]

    def went(column: str) -> str:
        a, b = round(float(first[column]), 3), round(float(last[column]), 3)
        how = "rose" if b > a else "fell" if b < a else "stayed the same"
        return f"{how} from {a:.3f} to {b:.3f}"

    return (
        f"from step {int(first['step'])} to the run's last, step {int(last['step'])}, the "
        f"generated CNN's probe F1 {went('probe F1')} and its ROC AUC {went('probe ROC AUC')}; "
        f"its highest F1 along the run, {float(best['probe F1']):.3f}, came at step "
        f"{int(best['step'])}"
    )


# What one sample of the CycleGAN is, for the book's prose (keys: `gan.sample`).
SAMPLES = {
    "filter": (
        "**one sample is one filter** of one zoo model at one snapshot, C_in x 5 x 5: many "
        "samples even from a small zoo, but a filter loses the layer it belongs to"
    ),
    "layer": (
        "**one sample is one whole conv layer** of one zoo model at one snapshot, as in the "
        "original project: the C_out filters together, permuted to C_in x C_out x 5 x 5; the "
        "layer keeps its structure, but a zoo gives as many samples as models times snapshots"
    ),
}


# gan.precision -> how chapter 04 says it
PRECISIONS = {
    "float32": "in float32 throughout",
    "bfloat16": (
        "with their matrix products in bfloat16 (torch's autocast; the weights, Adam's state and "
        "the losses stay float32, and the trained generators translate in float32), a choice "
        "made as the step count's was: by whole runs of each precision on the tuning seeds "
        "(`python -m benchmarks steps` with and without `gan.precision=float32`; its figures "
        "are beside the setting, `config.GanConfig.precision`)"
    ),
}


def translator_words(cfg: Config) -> str:
    """Which translator the run used (`gan.source`), for chapter 04's prose."""
    if cfg.gan.source == "original":
        return (
            "**the original's own published generators** (`gan.source = original`): its "
            "generator pair per conv layer (`generator_A2B.pth`, `generator_B2A.pth`, "
            "`2_generator_A2B.pth`, `2_generator_B2A.pth`), read from the clone and checked, "
            "not trained here. They translate each model's raw whole layers in its own "
            "channel order, as the original applied them (no normalisation, no alignment), "
            "and the generated CNN's conv biases are zero, as in the original's"
        )
    return (
        "**a CycleGAN trained here** (`gan.source = trained`) on this run's zoo, with the "
        "settings below"
    )


def training_words(cfg: Config) -> dict[str, str]:
    """Chapter 04's prose on training the CycleGAN (its settings, losses and step count), each
    number from `cfg`; for the original's published generators (`gan.source = original`),
    that nothing is trained here, in each place instead."""
    g = cfg.gan
    if g.source == "original":
        return {
            "settings_text": (
                "Nothing is trained here, so no CycleGAN setting (steps, Adam, the pool of "
                "generated samples, precision) applies to this run"
            ),
            "losses_text": (
                "There are none to show: the generators were trained by the original and are "
                "only read here"
            ),
            "steps_text": (
                "The published generators come as the original's training left them, with no "
                "earlier steps to score"
            ),
            "steps_after": (
                "This book's own CycleGAN (`gan.source = trained`) has its step count chosen "
                "on whole runs on the tuning seeds; none of that applies to generators read "
                "from the original"
            ),
        }
    seeds = ", ".join(str(seed) for seed in TUNING_SEEDS)
    return {
        "settings_text": (
            f"This run's settings: a cycle weight of {g.cycle_weight}, an identity weight of "
            f"{g.identity_weight} times that, Adam at {g.lr} with betas ({g.beta1}, {g.beta2}), "
            f"a pool of {g.pool_size} generated samples, and {g.steps} steps per layer, the last "
            f"{g.decay_steps} of them with a linearly decaying learning rate. The networks train "
            f"{PRECISIONS[g.precision]}"
        ),
        "losses_text": (
            "The loss terms per layer (moving averages). In a healthy run the discriminators "
            "do not win outright (their loss stays away from zero) and the cycle terms fall"
        ),
        "steps_text": (
            "The CycleGAN is trained for the generated CNN's sake, so its length is judged by "
            "what the generated CNN does, not by the losses alone. Below, `F(cat CNN)` is made "
            f"with the generator `F` as it was at {g.curve_points} evenly spaced steps of this "
            "run (the last one is the trained generator), and each is scored by the linear "
            "probe every model of chapter 07 is scored by (F1 and ROC AUC for black cat vs the "
            "rest on the evaluation set), beside `F`'s cycle loss"
        ),
        "steps_after": (
            "A point along one run is not a shorter run: every run's learning rate decays to "
            f"zero over its own last steps (here the last {g.decay_steps}), so where this curve "
            "flattens only hints at a step count. The count itself was chosen on whole runs of "
            "each length, trained by `python -m benchmarks steps` on seeds "
            f"{seeds}, which no chapter of this book reads: the seeds that chose a setting are "
            "not the seeds that report its results"
        ),
    }


def source_words(cfg: Config) -> str:
    """What the showcase's source CNNs are, in words."""
    if cfg.zoo.source == "original":
        return f"model {cfg.zoo.source_model} of the original's published cat and black zoos"
    return "this run's two source CNNs (trained here)"


def uncertainty_words(bootstrap_width: float, seed_width: float, unit: str = "seed") -> str:
    """How the within-seed spread of the test images compares with the intervals of the
    verdicts, from the ratio of the two widths: intervals over seeds (`unit` "seed"), or over
    photographs whose scores are averaged over every seed's folds ("photograph")."""
    ratio = bootstrap_width / seed_width if seed_width > 0 else float("inf")
    if unit == "photograph":
        word = (
            "narrower than" if ratio < 0.5 else "about as wide as" if ratio <= 2 else "wider than"
        )
        return (
            f"{word} the intervals over photographs above, which resample the same photographs "
            "after averaging each one's scores over every seed's folds and rivals"
        )
    if ratio < 0.5:
        return (
            "narrower than the intervals over seeds: the test images add little, and most of "
            "the uncertainty comes from the seeds"
        )
    if ratio <= 2:
        return (
            "about as wide as the intervals over seeds: the test images and the seeds add "
            "comparable uncertainty"
        )
    return (
        "wider than the intervals over seeds: the finite test set, more than the seeds, "
        "limits what a single seed can tell"
    )


def intervals_words(unit: str) -> str:
    """What the intervals of the verdicts resample, at the build's unit of replication."""
    if unit == "photograph":
        return (
            "The intervals above resample the photographs (a bootstrap over them, each "
            "photograph's scores averaged over every seed's folds and rivals)."
        )
    return "The intervals above are over seeds (data, training and GAN all redrawn)."


def build_words(cfg) -> dict[str, str]:
    """The words that depend on what a build is made of and what its unit of replication is
    (`unit`), as Markdown for `{glue:md}`: what the build is made of, how its verdicts are
    replicated and tested, what its data is, and what a confirmation at fresh seeds can show."""
    source = cfg.data.source
    original = source == "original" and cfg.zoo.source == "original"
    made = {
        "synthetic": "built on this book's drawn images and its own trained models",
        "folder": "built on the reader's own photographs and models trained here",
        "oxford_pets": "built on the Oxford-IIIT Pet photographs and models trained here",
        "original": "built on the original's published photographs",
    }[source]
    if original:
        made = "built on the original's published models, generators and photographs"
    if unit(cfg) == "photograph":
        fixed = (
            "the source CNNs and the translator (the original's published generators) are "
            "fixed, and each seed redraws only"
            if cfg.gan.source == "original"
            else "the source CNNs are fixed, and each seed redraws the CycleGAN trained here and"
        )
        replication = (
            f"repeated cross-validation over the evaluation photographs: {fixed} a stratified "
            f"{cfg.analysis.folds}-fold split (every photograph scored once per seed) and the "
            "rivals this book trains. The photograph, not the seed, is the unit of every verdict"
        )
        test = (
            "a paired permutation test over photographs (each photograph's scores swapped "
            "between the two models in every seed at once), its interval a bootstrap over "
            "photographs"
        )
    else:
        replication = (
            "the whole pipeline (data, source CNNs, zoo, CycleGAN, fusion, probes and "
            "clustering) repeated with several seeds, each seed a replication"
        )
        test = "a paired t-test over seeds, its interval Student's t over seeds"
    data = {
        "synthetic": "the data is synthetic (chapter 1), so the answer is about the method on "
        "an easier problem than photographs, not about the original photographs",
        "folder": "the data is the reader's own photographs (chapter 1)",
        "oxford_pets": "the data is the Oxford-IIIT Pet photographs (chapter 1)",
        "original": f"the data is the original's own test photographs, a small set: the "
        f"answer is about the original's artifacts, with the power {cfg.analysis.folds}-fold "
        "cross-validation over them allows",
    }[source]
    confirm = (
        "The fresh seeds redraw the folds and the rivals this book trains, not the "
        "photographs: the same photographs that judged the arms judge the chosen one again, "
        "so this confirmation guards against the luck of a split, not of the photographs."
        if unit(cfg) == "photograph"
        else "The fresh seeds redraw everything (data, training and GAN), so no image, "
        "training run or seed that chose the variant judges it."
    )
    return {
        "built_on": made,
        "replication_words": replication,
        "test_words": test,
        "data_words": data,
        "confirm_caveat": confirm,
    }


def separability_words(accuracy: float) -> str:
    """How a domain classifier's balanced accuracy reads (one half is chance)."""
    if accuracy < 0.6:
        return "barely differ"
    return "differ somewhat" if accuracy < 0.75 else "differ clearly"


def dependence_words(cosine: float) -> str:
    """How a translation's mean cosine with its input reads."""
    return "depend little on their input" if abs(cosine) < 0.3 else "keep much of their input"


def nearest_words(models: Models) -> dict:
    """Chapter 05's memorisation check: how far F(cat CNN) is from its nearest zoo model,
    beside how far the cat CNN is from its own, and what that says."""
    card = models.cards["nearest"]
    own = card["cat CNN's own nearest"]["relative distance"]
    closer = card["relative distance"] < own
    return {
        "distance": card["relative distance"],
        "own distance": own,
        "verdict": "closer to a zoo model than the cat CNN is: a sign of copying"
        if closer
        else "no closer to a zoo model than the cat CNN is: no sign of copying",
        "which": f"{card['domain']} zoo model {card['model']}",
    }


def arms_words(cfg: Config, ran: list[str], total: int, skipped: dict[str, str]) -> str:
    """Which arms this build ran (`ran`, their labels), of how many (`total`), and why; each
    arm left out and why (`skipped`: label -> reason), for chapter 08."""
    words = f"This build runs {len(ran)} of the {total} arms: " + ", ".join(f"*{a}*" for a in ran)
    if cfg.analysis.ablation_arms:
        words += f" (chosen by `analysis.ablation_arms = {cfg.analysis.ablation_arms}`)"
    if cfg.gan.source == "original":
        words += (
            ". With the original's published generators (`gan.source = original`) nothing is "
            "trained: an arm that changes how a CycleGAN learns changes nothing, and a CycleGAN "
            "trained here on the published zoo's whole layers costs about 15 minutes a seed on "
            "2 CPU cores; the arms that still change the generated CNN are the reference and "
            "layer 1 translated only"
        )
    if skipped:
        left = "; ".join(f"*{arm}*: {why}" for arm, why in skipped.items())
        words += f". Left out: {left}"
    return words + "."


def verdict_words(checked: dict[str, Any]) -> str:
    """What `confirm` found, in words for the chapters: the rivals beaten and the others."""
    beaten = ", ".join(f"*{label(r)}*" for r in checked["beaten"])
    if not checked["not beaten"]:
        return "beats every rival on both metrics"
    if not beaten:
        return "beats none of them on both metrics"
    return f"beats {beaten} on both metrics, and not " + ", ".join(
        f"*{label(r)}*" for r in checked["not beaten"]
    )


# what the functional arm's paired verdict against its control says about the generator
CONTROL_WORDS = {
    "better": "the translated CNN beats the control: the generator adds something that the "
    "distillation alone does not give",
    "worse": "the control does better: what helps here is the distillation, and the generator "
    "stands in its way",
    "not distinguishable": "the two cannot be told apart at these seeds: nothing here shows "
    "that the generator is what helps",
}


def control_words(verdict: str | None) -> str:
    """What the functional arm's verdict against its control (`ablation.control_summary`) says
    about the generator; None: the arm was not run."""
    if verdict is None:
        return "the functional arm was not run in this build (`analysis.ablation_arms`)"
    return CONTROL_WORDS[verdict]


def answer_words(beaten: int, rivals: int) -> str:
    """The book's answer in one sentence: how many of the `rivals` a label-free method must
    beat the generated CNN beats (`beaten`, by the Holm-adjusted verdicts)."""
    if beaten == 0:
        answer = "does not beat any of the rivals a label-free method must beat"
    elif beaten == rivals:
        answer = "beats every rival a label-free method must beat"
    else:
        answer = f"beats {beaten} of the {rivals} rivals a label-free method must beat"
    return f"The generated CNN {answer}."


def rivals_named(ids: list[str]) -> str:
    """Rivals (ids) by their labels, in italics, or "none"."""
    return ", ".join(f"*{label(r)}*" for r in ids) if ids else "none"
