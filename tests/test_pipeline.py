"""Interruptions, determinism and run isolation, with the real pipeline at the smoke preset."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from kernelfusion import config, gan_checks, pipeline, store, words

OVERRIDES = {"gan.steps": 400, "gan.decay_steps": 200, "gan.checkpoint_every": 50}

SCRIPT = textwrap.dedent("""
    import json, sys
    from kernelfusion import config, gan_checks, pipeline, store
    cfg = config.load("smoke", json.loads(sys.argv[2]))
    pipeline.run(cfg, store.open(cfg, sys.argv[1]), progress=False)
""")


def _run_killed(root: Path, overrides: dict, trigger, delay: float = 0.0) -> None:
    """Start the pipeline in a subprocess and SIGKILL it once `trigger(root)` is true."""
    process = subprocess.Popen([sys.executable, "-c", SCRIPT, str(root), json.dumps(overrides)])
    deadline = time.time() + 300
    while not trigger(root):
        if process.poll() is not None:
            pytest.fail("the pipeline finished before it could be interrupted")
        if time.time() > deadline:
            process.kill()
            pytest.fail("the interruption point was never reached")
        time.sleep(0.05)
    time.sleep(delay)
    process.send_signal(signal.SIGKILL)
    assert process.wait() == -signal.SIGKILL


def _files(run_dir: Path, stage: str) -> dict[str, bytes]:
    folder = run_dir / stage
    return {p.name: p.read_bytes() for p in folder.iterdir() if p.name != "manifest.json"}


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """An uninterrupted run of the whole pipeline."""
    root = tmp_path_factory.mktemp("reference")
    cfg = config.load("smoke", OVERRIDES)
    pipeline.run(cfg, store.open(cfg, root), progress=False)
    return root / cfg.run_name


@pytest.mark.slow
def test_killed_during_cyclegan_resumes_to_the_same_result(tmp_path, reference):
    cfg = config.load("smoke", OVERRIDES)
    run_dir = tmp_path / cfg.run_name

    def checkpoint_written(root):
        return any((tmp_path / "checkpoints").glob("cyclegan-conv1-*/state.json"))

    _run_killed(tmp_path, OVERRIDES, checkpoint_written)
    for stage in ("cyclegan-conv1", "cyclegan"):  # nothing half-written was sealed
        assert not (run_dir / stage).exists(), stage
    pipeline.run(cfg, store.open(cfg, tmp_path), progress=False)
    for stage in ("cyclegan-conv1", "cyclegan-conv2", "cyclegan"):
        assert _files(run_dir, stage) == _files(reference, stage), stage
    assert _files(run_dir, "metrics") == _files(reference, "metrics")
    assert not list((tmp_path / "checkpoints").glob("cyclegan-*"))


@pytest.mark.slow
def test_killed_during_zoo_training_recomputes_to_the_same_result(tmp_path, reference):
    """Every stage of this run is made afresh (data and source CNNs in the killed process, the
    rest after it), in a new runs folder: the same config and seed give byte-identical
    metrics."""
    cfg = config.load("smoke", OVERRIDES)
    run_dir = tmp_path / cfg.run_name

    def sources_sealed(root):
        return (run_dir / "sources" / "manifest.json").is_file()

    _run_killed(tmp_path, OVERRIDES, sources_sealed, delay=0.3)
    assert not (run_dir / "zoo").exists() or (run_dir / "zoo" / "manifest.json").is_file()
    pipeline.run(cfg, store.open(cfg, tmp_path), progress=False)
    for stage in ("zoo", "metrics"):
        assert _files(run_dir, stage) == _files(reference, stage), stage
    again = run_dir / "metrics" / "metrics.json"
    assert again.read_bytes() == (reference / "metrics" / "metrics.json").read_bytes()


def test_runs_share_a_stage_only_when_its_key_is_the_same(tmp_path):
    smoke, other = config.load("smoke"), config.load("smoke", {"seed": 1})
    a, b = store.open(smoke, tmp_path), store.open(other, tmp_path)
    assert a.run_dir != b.run_dir and a.run_dir.parent == b.run_dir.parent == tmp_path
    a.stage("data", {"n": 1}, lambda w: w.save_json("counts", {"run": "a"}))
    b.stage("data", {"n": 2}, lambda w: w.save_json("counts", {"run": "b"}))
    assert a.load("data").json("counts") == {"run": "a"}
    assert b.load("data").json("counts") == {"run": "b"}
    shared = b.stage("data", {"n": 1}, lambda w: w.save_json("counts", {"run": "b"}))
    assert shared.reused and shared.json("counts") == {"run": "a"}
    assert b.load("data").folder == a.load("data").folder


THREADS_SCRIPT = textwrap.dedent("""
    import sys, torch
    torch.set_num_threads(int(sys.argv[2]))
    from kernelfusion import cnn, config, data, evaluate, store
    cfg = config.load("smoke")
    run = store.open(cfg, sys.argv[1])
    datasets = data.make_datasets(cfg, run, progress=False)
    sources = cnn.make_sources(cfg, run, datasets, progress=False)
    print(evaluate.weights_hash((sources.cat, sources.black)), sources.artifact.reused)
""")


def test_same_key_same_numbers_across_thread_counts(tmp_path):
    """A cached stage holds what any process with its key would make: the source CNNs made in
    a one-thread process (a sweep's worker) are not handed to a two-thread one (a chapter's
    kernel), whose reductions split differently, and each is reused at its own count."""

    def run(*threads: int) -> list[tuple[str, str]]:
        """A process per thread count, side by side (each makes its own key's stage)."""
        processes = [
            subprocess.Popen(
                [sys.executable, "-c", THREADS_SCRIPT, str(tmp_path), str(count)],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for count in threads
        ]
        said = [process.communicate(timeout=300) for process in processes]
        assert [p.returncode for p in processes] == [0] * len(threads), said
        return [tuple(out.split()) for out, _ in said]

    one, two = run(1, 2)
    assert one[1] == "False" and two[1] == "False"  # neither served the other's stage
    assert run(1, 2) == [(one[0], "True"), (two[0], "True")]


UMAP_THREADS_SCRIPT = textwrap.dedent("""
    import numpy as np, torch
    torch.set_num_threads(1)
    from kernelfusion import measures, pipeline  # the package whole, as a worker imports it
    torch.get_num_threads()  # read before the first UMAP, as every stage key reads it
    rows = np.random.default_rng(0).random((128, 16), dtype=np.float32)
    measures.umap_embedding(rows, 0, epochs=10)
    measures.as_original_ran_it(rows, np.arange(128) % 4, 0, 0)
    print(torch.get_num_threads())
""")


def test_a_umap_leaves_the_process_thread_count_as_it_was():
    """A one-thread worker stays at one thread after its first UMAP (numba's OpenMP layer,
    started after torch's and shared with it, set it to the core count), so every stage it
    makes after one is keyed by the thread class it was given."""
    done = subprocess.run(
        [sys.executable, "-c", UMAP_THREADS_SCRIPT], capture_output=True, text=True, check=True
    )
    assert done.stdout.split()[-1] == "1", done.stderr[-2000:]


def test_the_convergence_curve_ends_at_the_generated_cnns_own_probe(reference):
    """Chapter 04's curve: F(cat CNN) at each kept step of the CycleGAN's run, scored as the
    metrics stage scores it; its last point is the trained generator's, so it must give the
    metrics file's numbers exactly, and the kept generators must differ along the run."""
    cfg = config.load("smoke", OVERRIDES)
    run = pipeline.run(cfg, store.open(cfg, reference.parent), progress=False)  # cached
    curve = gan_checks.convergence(cfg, run.datasets, run.sources, run.gan)
    assert curve["step"].tolist() == [100, 200, 300, 400]
    probe = run.metrics.values["models"]["gen_f"]["linear probe"]
    assert curve["probe F1"].iloc[-1] == probe["f1"]
    assert curve["probe ROC AUC"].iloc[-1] == probe["roc auc"]
    assert curve["probe ROC AUC"].nunique() > 1
    said = words.convergence_words(curve)
    assert "step 400" in said and f"{probe['f1']:.3f}" in said


def test_reading_a_cached_run_aligns_no_kernels(reference, monkeypatch):
    """The chapters read many cached runs (07, 08, 09): the CycleGAN's aligned kernel sets are
    prepared only when read (training, chapter 04's checks), not to read a run's metrics."""
    from kernelfusion import alignment

    def no_alignment(*args, **kwargs):
        raise AssertionError("kernels aligned to read a cached run")

    monkeypatch.setattr(alignment, "prepared_kernels", no_alignment)
    cfg = config.load("smoke", OVERRIDES)
    run = pipeline.run(cfg, store.open(cfg, reference.parent), progress=False)
    assert run.metrics.values["models"]["gen_f"]["linear probe"]["f1"] >= 0
    with pytest.raises(AssertionError, match="kernels aligned"):
        run.gan.kernels["black"]["conv1"]  # read: prepared now
