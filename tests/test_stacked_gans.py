"""Many runs' CycleGANs trained as one stacked model (the GPU path, `gan.stack`): each member
is the run it would be alone, an interrupted stack resumes, and the stages it seals are the
ones the pipeline reads."""

from __future__ import annotations

import dataclasses
import json
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context

import pytest
import torch

from kernelfusion import alignment, config, cyclegan, pipeline, stacked_gans, store
from kernelfusion.build import compute


def _sets(count: int = 3):
    gen = torch.Generator().manual_seed(0)
    return [
        (
            alignment.normalise(torch.randn(200 + 50 * i, 3, 5, 5, generator=gen))[0],
            alignment.normalise(torch.randn(230 + 40 * i, 3, 5, 5, generator=gen) + 0.1)[0],
        )
        for i in range(count)
    ]


def _gan(steps: int = 30, **changes):
    # float32: a stack's batched products round apart from a lone run's, and in bfloat16 by far
    # more than the tolerances below; the stacked path in bfloat16 is the last test's
    first = {"gan.steps": steps, "gan.decay_steps": steps // 2, "gan.precision": "float32"}
    return config.load("smoke", first | changes).gan


def _weights(gan: cyclegan.LayerGan) -> dict[str, torch.Tensor]:
    return cyclegan.net_tensors(gan.nets)


def test_each_member_of_a_stack_trains_as_it_would_alone():
    """Its own initialisation, batches of its own kernel sets (of different sizes), pool
    draws and schedule: the same networks, losses and snapshots as `train_layer`, up to the
    rounding of batched matrix products."""
    cfg = _gan()
    sets = _sets()
    alone = [
        cyclegan.train_layer(cfg, b, c, 3, 10 + i, "cpu", progress=False)
        for i, (b, c) in enumerate(sets)
    ]
    members = [stacked_gans.Member(b, c, 10 + i) for i, (b, c) in enumerate(sets)]
    stacked = stacked_gans.train_stack(cfg, members, 3, "cpu", progress=False)
    for one, many in zip(alone, stacked, strict=True):
        for name, value in _weights(one).items():
            torch.testing.assert_close(_weights(many)[name], value, rtol=0, atol=1e-6)
        for name, losses in one.history.items():
            assert many.history[name] == pytest.approx(losses, abs=1e-5)
        assert sorted(many.snapshots) == sorted(one.snapshots) == cyclegan.curve_steps(cfg)
    # members differ: a stack is not one run copied
    assert not torch.allclose(
        _weights(stacked[0])["G.0.weight"], _weights(stacked[1])["G.0.weight"]
    )


def test_an_interrupted_stack_resumes_where_its_checkpoints_stopped(tmp_path):
    """Each member checkpoints into its own folder in `_Trainer`'s format: the stack resumes
    to the numbers of an uninterrupted one, and a member's checkpoint resumes alone too."""
    cfg = _gan(steps=24, **{"gan.checkpoint_every": 8})
    sets = _sets(2)

    def members(folder):
        return [
            stacked_gans.Member(b, c, 5 + i, folder / f"m{i}" if folder else None)
            for i, (b, c) in enumerate(sets)
        ]

    whole = stacked_gans.train_stack(cfg, members(None), 3, "cpu", progress=False)
    stacked_gans.train_stack(cfg, members(tmp_path), 3, "cpu", progress=False, stop_after=10)
    assert json.loads((tmp_path / "m1" / "state.json").read_text())["step"] == 8
    resumed = stacked_gans.train_stack(cfg, members(tmp_path), 3, "cpu", progress=False)
    for a, b in zip(whole, resumed, strict=True):
        for name, value in _weights(a).items():
            assert torch.equal(_weights(b)[name], value), name
        assert a.history == b.history and sorted(a.snapshots) == sorted(b.snapshots)
    alone = cyclegan.train_layer(cfg, *sets[1], 3, 6, "cpu", tmp_path / "m1", progress=False)
    torch.testing.assert_close(_weights(alone)["F.0.weight"], _weights(whole[1])["F.0.weight"])


@pytest.mark.slow
def test_stacked_layers_are_the_stages_the_runs_read(tmp_path, monkeypatch):
    """The GPU user's path on the CPU (`gan.stack` = 2): the paper preset's design scaled down
    (whole layers, the Conv3d translator) at two seeds. The book's compute phase
    (`build.compute.stacked_first`, in a worker process as `make book` runs it) makes both
    runs' data and zoos, then trains both seeds' CycleGANs of each layer as one stack and seals
    each run's layer stages (their manifests say so); the runs then read them: nothing is
    trained twice. Chapter 07's path without the compute phase (`pipeline.run_seeds` at four
    seeds) stacks the two seeds not yet made the same way, and every run ends."""
    monkeypatch.setenv("KERNELFUSION_RUNS", str(tmp_path / "runs"))
    design = ("data.image_size", "cnn.channels1", "cnn.channels2", "zoo.snapshots")
    counts = {k: v for k, v in config.PRESETS["smoke"].items() if k not in design}
    overrides = counts | {
        "zoo.cat_models": 3,
        "gan.hidden": 8,
        "gan.steps": 8,
        "gan.decay_steps": 4,
        "gan.stack": 2,
        "analysis.workers": 1,
        "analysis.seeds": 4,
        "analysis.views": "probe",  # the generated CNN scored; no UMAP to compile here
    }
    cfg = config.load("paper", overrides)
    assert (
        stacked_gans.stack_size(cfg) == 2 and stacked_gans.stack_size(config.load("default")) == 1
    )
    first = cfg.seed  # chapter 07's seeds: first .. first + 3
    runs = [dataclasses.replace(cfg, seed=seed) for seed in (first, first + 1)]
    with ProcessPoolExecutor(1, mp_context=get_context("spawn")) as pool:
        compute.stacked_first(pool, [compute.Job(c) for c in runs], torch.get_num_threads())

    def stacked(run_cfg) -> None:
        made = pipeline.run(run_cfg, store.open(run_cfg), progress=False, until="gan")
        for layer in ("conv1", "conv2"):
            part = made.gan.layer_artifacts[layer]
            assert part.reused and part.manifest["stacked"] == 2, (run_cfg.seed, layer)
            assert part.manifest["config"]["seed"] == run_cfg.seed

    for run_cfg in runs:
        stacked(run_cfg)
    assert stacked_gans.make_layers(runs) == 0  # all cached: nothing is trained again
    results = pipeline.run_seeds(cfg, progress=False)
    assert sorted(results) == list(range(first, first + 4))
    assert all("gen_f" in r["models"] for r in results.values())
    for seed in (first + 2, first + 3):
        stacked(dataclasses.replace(cfg, seed=seed))
