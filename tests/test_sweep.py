"""A 2x2 grid of real pipeline runs, locally in parallel and through a local Ray cluster."""

import json

import pytest

from kernelfusion import config, sweep

SPEC = {"seed": [0, 1], "zoo.models": [2, 3]}


def test_grid_is_the_cartesian_product():
    assert sweep.grid(SPEC) == [
        {"seed": 0, "zoo.models": 2},
        {"seed": 0, "zoo.models": 3},
        {"seed": 1, "zoo.models": 2},
        {"seed": 1, "zoo.models": 3},
    ]


def test_bad_grid_is_refused_before_any_run(tmp_path):
    with pytest.raises(config.ConfigError, match="unknown override 'zoo.model'"):
        sweep.sweep("smoke", {"zoo.model": [1, 2]}, root=tmp_path)
    assert not any(tmp_path.iterdir())


@pytest.fixture(scope="module")
def local_runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("local")
    return root, sweep.sweep("smoke", SPEC, backend="local", workers=2, root=root)


@pytest.mark.slow
def test_local_sweep_lands_in_the_artifact_layout(local_runs):
    root, results = local_runs
    expected = {config.load("smoke", o).run_name for o in sweep.grid(SPEC)}
    assert {r["run"] for r in results} == expected
    assert {p.name for p in root.iterdir()} == expected
    for result in results:
        metrics = json.loads(open(result["metrics"]).read())
        assert metrics["seed"] == result["overrides"]["seed"]
    table = sweep.summary(results)
    assert set(table["seed"]) == {0, 1} and "generated F(cat CNN)" in set(table["model"])


@pytest.mark.slow
def test_ray_sweep_gives_the_same_metrics_as_the_local_one(tmp_path, local_runs):
    _, local = local_runs
    results = sweep.sweep("smoke", SPEC, backend="ray", workers=2, root=tmp_path)
    by_run = {r["run"]: open(r["metrics"]).read() for r in local}
    for result in results:
        assert open(result["metrics"]).read() == by_run[result["run"]]
