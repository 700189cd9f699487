"""A 2x2 grid of real pipeline runs, locally in parallel and through a local Ray cluster."""

import json
import shutil

import pytest

from kernelfusion import config, pipeline, store, sweep

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


def test_run_stops_after_the_stage_it_is_asked_for(tmp_path):
    cfg = config.load("smoke", {})
    runs = store.open(cfg, tmp_path)
    with pytest.raises(config.ConfigError, match="unknown stage 'cyclegan': choose one of datas"):
        pipeline.run(cfg, runs, progress=False, until="cyclegan")
    assert not (tmp_path / cfg.run_name / "data").exists()
    done = pipeline.run(cfg, runs, progress=False, until="datasets")
    assert len(done.datasets.eval.images) > 0
    assert (done.sources, done.zoo, done.gan, done.models, done.metrics) == (None,) * 5


@pytest.fixture(scope="module")
def local_runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("local")
    return root, sweep.sweep("smoke", SPEC, backend="local", workers=2, root=root)


@pytest.mark.slow
def test_local_sweep_lands_in_the_artifact_layout(local_runs):
    root, results = local_runs
    expected = {config.load("smoke", o).run_name for o in sweep.grid(SPEC)}
    assert {r["run"] for r in results} == expected
    assert {p.name for p in root.iterdir() if p.name.startswith("smoke-")} == expected
    for result in results:
        metrics = json.loads(open(result["metrics"]).read())
        assert metrics["seed"] == result["overrides"]["seed"]
    table = sweep.summary(results)
    assert set(table["seed"]) == {0, 1} and "gen_f" in set(table["model"])


@pytest.mark.slow
def test_runs_made_by_workers_are_read_here_not_sent_back_to_workers(local_runs, monkeypatch):
    """A chapter reading the runs of its seeds finds those the worker processes made (at their
    torch thread count, part of every stage key) instead of starting workers to read them."""
    root, results = local_runs
    configs = [config.load("smoke", r["overrides"]) for r in results]
    by_run = {r["run"]: json.loads(open(r["metrics"]).read()) for r in results}

    def no_workers(*args, **kwargs):
        raise AssertionError("a cached run was sent to a worker")

    monkeypatch.setattr(pipeline, "run_configs", no_workers)
    for cfg, metrics in zip(configs, pipeline.run_many(configs, root), strict=True):
        assert metrics == by_run[cfg.run_name]
    found = pipeline.cached_run(configs[0], root, "gan", (pipeline.worker_threads(2),))
    assert found is not None and found.models is None and found.gan is not None


@pytest.mark.slow
def test_ray_sweep_gives_the_same_metrics_as_the_local_one(tmp_path, local_runs):
    """Two of the local grid's runs, one per Ray worker, made afresh (a new runs folder)."""
    _, local = local_runs
    results = sweep.sweep(
        "smoke", SPEC | {"zoo.models": [2]}, backend="ray", workers=2, root=tmp_path
    )
    by_run = {r["run"]: open(r["metrics"]).read() for r in local}
    assert len(results) == 2 and {r["run"] for r in results} < set(by_run)
    for result in results:
        assert open(result["metrics"]).read() == by_run[result["run"]]


@pytest.mark.slow
def test_arms_share_their_upstream_stages_and_the_cache_command_lists_and_prunes(
    local_runs, capsys
):
    """Arms that differ only in the zoo share the data and the source CNNs of their seed."""
    from kernelfusion import __main__ as cli
    from kernelfusion import store

    root, _ = local_runs
    rows = store.cached(root)
    per_stage = {}
    for row in rows:  # (the per-model score stages, metrics-*, are shared likewise)
        per_stage.setdefault(row["stage"], []).append(len(row["runs"]))
    assert per_stage["data"] == [2, 2] and per_stage["sources"] == [2, 2]
    assert sorted(per_stage["zoo"]) == [1, 1, 1, 1] and len(per_stage["metrics"]) == 4
    assert cli.main(["cache", "--root", str(root)]) == 0
    listing = capsys.readouterr().out
    assert "by stage (MB)" in listing and "(unused)" not in listing
    copy = root.parent / "pruned"
    shutil.copytree(root, copy, symlinks=True)
    assert cli.main(["cache", "--root", str(copy), "--stage", "metrics"]) == 0
    left = {r["stage"] for r in store.cached(copy) if not r["stage"].startswith("metrics-")}
    # the per-model scores stay
    assert left == {
        "data",
        "sources",
        "zoo",
        "cyclegan-conv1",
        "cyclegan-conv2",
        "cyclegan",
        "rivals",
        "models",
    }
    assert per_stage["rivals"] == [2, 2]  # the rivals need no zoo: shared by both arms
    assert not list(copy.glob("smoke-*/metrics")) and list(copy.glob("smoke-*/zoo"))
    (copy / config.load("smoke", {"seed": 0, "zoo.models": 2}).run_name).rename(copy / "gone")
    shutil.rmtree(copy / "gone")
    assert cli.main(["cache", "--root", str(copy), "--prune"]) == 0
    left = store.cached(copy)
    assert all(row["runs"] for row in left) and len([r for r in left if r["stage"] == "zoo"]) == 3
