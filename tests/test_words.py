"""The computed words (`words`): each says what its numbers say (the verdict, the direction, the
count, the rivals by their labels); the tests read that meaning, not whole sentences."""

import numpy as np
import pandas as pd

from kernelfusion import ablation, config, fusion, verdicts, words


def test_uncertainty_words_follow_the_ratio_of_the_widths():
    said = [words.uncertainty_words(b, 0.1) for b in (0.01, 0.1, 0.3)]
    assert [s.split(" ")[0] for s in said] == ["narrower", "about", "wider"]


def test_verdict_words_name_the_rivals_beaten_and_the_others():
    said = words.verdict_words({"beaten": ["arithmetic"], "not beaten": ["merge", "noise"]})
    beaten, not_beaten = said.split(", and not ")
    assert fusion.label("arithmetic") in beaten
    assert all(fusion.label(r) in not_beaten for r in ("merge", "noise"))
    assert fusion.label("merge") not in beaten
    assert "none" in words.verdict_words({"beaten": [], "not beaten": ["x"]})
    assert "every" in words.verdict_words({"beaten": ["x"], "not beaten": []})


def test_go_words_follow_the_aligned_classifiers_side_of_chance():
    near = {"as trained": 0.6, "aligned": 0.52, "aligned by activations": 0.59}
    assert "near chance" in words.go_words(near)
    assert "above chance" in words.go_words(near | {"aligned by activations": 0.7})


def test_control_words_follow_the_verdict_and_say_when_the_arm_was_not_run():
    empty = pd.DataFrame(columns=["arm", "model", "rival", "metric"])
    missing = ablation.control_summary(empty)
    assert missing["verdict"] is None
    assert all(np.isnan(missing[k]) for k in ("diff", "low", "high"))
    assert "not run" in words.control_words(missing["verdict"])
    said = {v: words.control_words(v) for v in ("better", "worse", "not distinguishable")}
    assert "beats the control" in said["better"] and "control does better" in said["worse"]
    assert "cannot be told apart" in said["not distinguishable"]


def test_arms_words_count_the_arms_and_name_each_left_out_and_why():
    cfg = config.load("original", {"data.root": "c", "zoo.root": "c"})
    said = words.arms_words(cfg, ["reference", "layer 1 only"], 7, {"identity 2": "why not"})
    assert said.startswith("This build runs 2 of the 7 arms")
    assert "*identity 2*: why not" in said and "published generators" in said


def test_the_answer_counts_the_rivals_beaten():
    assert "does not beat any" in words.answer_words(0, 6)
    assert "beats 1 of the 6" in words.answer_words(1, 6)
    assert "beats every" in words.answer_words(6, 6)
    assert words.rivals_named([]) == "none"
    assert fusion.label("cat") in words.rivals_named(["cat", "merge"])


def test_within_seed_words_follow_the_unit_of_the_intervals_they_compare_with():
    """At the photograph unit the intervals above resample photographs, not seeds: the words
    name what they compare with, and the width is the bootstrap's (there is no t interval)."""
    assert "over seeds" in words.intervals_words("seed")
    assert "photographs" in words.intervals_words("photograph")
    said = words.uncertainty_words(0.3, 0.1, "photograph")
    assert said.startswith("wider than the intervals over photographs") and "seeds:" not in said
    table = pd.DataFrame(
        {"role": ["decisive"] * 2, "ci95": [np.nan] * 2, "low": [-0.1, -0.2], "high": [0.1, 0.0]}
    )
    assert verdicts.verdict_interval_width(table) == 0.2
