"""One helper derives every seed of a run; the thread count that can change numbers keys the
cache."""

import torch

from kernelfusion import config, machine, stage_keys


def test_derived_seeds_are_stable_distinct_and_in_range():
    a = machine.derive_seed(3, "noise control")
    assert a == machine.derive_seed(3, "noise control")
    # the old formulas gave seed s + 11 and seed s + 13: s's noise = (s - 2)'s other-zoo draw
    others = {machine.derive_seed(s, name) for s in range(50) for name in ("noise", "zoo")}
    assert len(others) == 100 and all(0 <= v < 2**31 for v in others)
    assert torch.equal(
        torch.rand(3, generator=machine.generator(1, "x")),
        torch.rand(3, generator=machine.generator(1, "x")),
    )


def test_shared_initialisation_varies_with_the_seed():
    seeds = {machine.init_seed(config.load("smoke", {"seed": s})) for s in range(5)}
    assert len(seeds) == 5
    changed = config.load("smoke", {"cnn.init_seed": 7})
    assert machine.init_seed(changed) != machine.init_seed(config.load("smoke"))


def test_every_thread_count_gets_its_own_cache_key():
    cfg = config.load("smoke")
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = stage_keys.stage_key(cfg, "sources")
        torch.set_num_threads(2)
        two = stage_keys.stage_key(cfg, "sources")
        torch.set_num_threads(8)
        eight = stage_keys.stage_key(cfg, "sources")
    finally:
        torch.set_num_threads(before)
    assert one["threads"] == "1" and two["threads"] == "2" and eight["threads"] == "8"
    assert one != two  # test_reliability: 1 and 2 threads make different bits


def test_stage_times_sum_the_manifests_of_the_presets_runs_only(tmp_path):
    """How this copy was built (chapter 10): each stage a `smoke` run links to counted once,
    however many runs share it; a per-model metrics stage on its own row; other presets' runs
    and stages no run links to left out."""
    import json
    import os

    def stage(name: str, key: str, seconds: float) -> None:
        folder = tmp_path / "stages" / name / key
        folder.mkdir(parents=True)
        record = {"stage": name, "seconds": seconds, "cpu seconds": seconds / 2}
        (folder / "manifest.json").write_text(json.dumps(record))

    def link(run: str, name: str, key: str) -> None:
        (tmp_path / run).mkdir(exist_ok=True)
        os.symlink(f"../stages/{name}/{key}", tmp_path / run / name)

    stage("data", "a", 4.0)
    stage("metrics-model_cat", "b", 1.5)
    stage("zoo", "c", 9.0)  # only a default run uses it
    stage("zoo", "d", 7.0)  # no run uses it
    for run in ("smoke-1", "smoke-2"):
        link(run, "data", "a")
        link(run, "metrics-model_cat", "b")
    link("default-1", "zoo", "c")
    times = machine.stage_times("smoke", tmp_path)
    assert list(times.index) == ["data", "metrics (per model)"]
    assert times.loc["data", "made"] == 1 and times.loc["data", "seconds"] == 4.0
    assert times.loc["metrics (per model)", "CPU seconds"] == 0.75
