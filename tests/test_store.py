import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from kernelfusion import config, store
from kernelfusion.store import ArtifactError


@pytest.fixture
def run(tmp_path):
    return store.open(config.load("smoke"), tmp_path)


def _builder(calls, value=1.0):
    def build(writer):
        calls.append(1)
        writer.save_tensors("weights", {"w": torch.full((2, 3), value)})
        writer.save_json("metrics", {"loss": value})

    return build


def test_stage_is_reused_when_key_unchanged(run):
    calls = []
    first = run.stage("train", {"lr": 0.1}, _builder(calls))
    second = run.stage("train", {"lr": 0.1}, _builder(calls))
    assert len(calls) == 1 and not first.reused and second.reused
    assert torch.equal(second.tensors("weights")["w"], torch.ones(2, 3))
    assert second.json("metrics") == {"loss": 1.0}
    assert first.folder == (run.run_dir / "train").resolve() and run.run_dir.name.startswith(
        "smoke-"
    )
    assert first.folder.parent == run.root / "stages" / "train"


def test_stages_made_together_are_each_sealed_reused_or_left_to_their_maker(run, tmp_path):
    """`store.stage_together` (the stacked CycleGANs): one build call makes the pending stages
    of several runs; a sealed one is reused, one another process is making (its lock held)
    is left to it, a request repeated gets the one artifact; each manifest says how many were
    made together."""
    other = store.open(config.load("smoke", {"seed": 1}), tmp_path)
    sealed = run.stage("train", {"lr": 0.3}, _builder([]))
    requests = [
        store.StageRequest(run, "train", {"lr": 0.1}),
        store.StageRequest(other, "train", {"lr": 0.2}),
        store.StageRequest(run, "train", {"lr": 0.3}),
        store.StageRequest(other, "train", {"lr": 0.4}),
        store.StageRequest(run, "train", {"lr": 0.1}),
    ]
    built = []

    def build(which, writers):
        built.append(which)
        for i, writer in zip(which, writers, strict=True):
            _builder([], value=requests[i].key["lr"])(writer)

    busy = store.stage_hash("train", {"lr": 0.4})
    with other._building("train", busy):  # another maker holds the fourth
        made = store.stage_together(requests, build)
    assert built == [[0, 1]]
    assert made[3] is None and made[2].folder == sealed.folder and made[2].reused
    assert made[4].folder == made[0].folder
    assert [made[i].manifest.get("stacked") for i in (0, 1)] == [2, 2]
    assert made[1].json("metrics") == {"loss": 0.2}
    assert (other.run_dir / "train").resolve() == made[1].folder


def test_stage_recomputes_when_key_or_input_changed_or_forced(run):
    calls = []
    data = run.stage("data", {"n": 1}, _builder(calls))
    run.stage("train", {"lr": 0.1}, _builder(calls), inputs=[data])
    run.stage("train", {"lr": 0.2}, _builder(calls), inputs=[data])
    assert len(calls) == 3
    data2 = run.stage("data", {"n": 2}, _builder(calls))
    run.stage("train", {"lr": 0.2}, _builder(calls), inputs=[data2])
    assert len(calls) == 5
    run.stage("train", {"lr": 0.2}, _builder(calls), inputs=[data2], force=True)
    assert len(calls) == 6


def test_manifest_records_config_versions_timing_and_hashes(run):
    artifact = run.stage("train", {"lr": 0.1}, _builder([]))
    manifest = json.loads((artifact.folder / "manifest.json").read_text())
    assert manifest["config"]["preset"] == "smoke"
    assert "torch" in manifest["versions"] and manifest["seconds"] >= 0
    assert manifest["cpu seconds"] >= 0
    assert set(manifest["files"]) == {"weights.safetensors", "metrics.json"}


def test_corrupt_file_is_detected_and_recomputed(run, caplog):
    calls = []
    artifact = run.stage("train", {"lr": 0.1}, _builder(calls))
    path = artifact.folder / "weights.safetensors"
    path.write_bytes(path.read_bytes()[:20])  # truncated
    with pytest.raises(ArtifactError, match="missing or corrupt"):
        run.load("train")
    again = run.stage("train", {"lr": 0.1}, _builder(calls))
    assert len(calls) == 2 and not again.reused
    assert "recomputing stage 'train'" in caplog.text


def test_artifact_from_other_config_is_refused(run):
    artifact = run.stage("train", {"lr": 0.1}, _builder([]))
    with pytest.raises(ArtifactError, match="another config"):
        run.load("train", key_hash="0" * 64)
    assert run.load("train", artifact.key_hash).reused


def test_failed_build_leaves_no_artifact(run):
    def build(writer):
        writer.save_json("metrics", {"half": True})
        raise RuntimeError("interrupted")

    with pytest.raises(RuntimeError):
        run.stage("train", {}, build)
    assert not (run.run_dir / "train").exists()
    assert not list((run.root / "stages" / "train").iterdir())


@pytest.mark.parametrize("step", ["_begin", "_seal"])
def test_an_interrupt_between_the_steps_of_a_build_leaves_no_temporary_folder(
    run, monkeypatch, step
):
    """Ctrl-C (or a stopped worker's SIGTERM) lands between two steps: right after the
    temporary folder is made, or after the build and before the seal. Nothing is left
    behind, and the next build makes the stage."""
    real = getattr(store.Store, step)

    def interrupted(self, *args):
        if step == "_begin":
            real(self, *args)  # the folder made; the interrupt lands as it returns
        raise KeyboardInterrupt

    monkeypatch.setattr(store.Store, step, interrupted)
    with pytest.raises(KeyboardInterrupt):
        run.stage("train", {}, _builder([]))
    assert not list((run.root / "stages" / "train").glob(".*.tmp"))
    monkeypatch.undo()
    assert not run.stage("train", {}, _builder([])).reused


def test_killed_build_leaves_no_trusted_artifact(tmp_path):
    """SIGKILL in the middle of writing: the next run finds nothing to trust and recomputes."""
    script = textwrap.dedent(f"""
        import os, signal, torch
        from kernelfusion import config, store
        run = store.open(config.load("smoke"), {str(tmp_path)!r})
        def build(writer):
            writer.save_tensors("weights", {{"w": torch.zeros(1000)}})
            os.kill(os.getpid(), signal.SIGKILL)
        run.stage("train", {{}}, build)
    """)
    result = subprocess.run([sys.executable, "-c", script])
    assert result.returncode == -signal.SIGKILL
    run = store.open(config.load("smoke"), tmp_path)
    with pytest.raises(ArtifactError, match="no complete artifact"):
        run.load("train")
    calls = []
    assert not run.stage("train", {}, _builder(calls)).reused and calls == [1]


def test_names_cannot_escape_the_run_folder(run):
    artifact = run.stage("train", {}, _builder([]))
    for bad in ("../x", "/etc/passwd", "a/b", ".."):
        with pytest.raises(ArtifactError, match="not a valid artifact name"):
            artifact.path(bad)
        with pytest.raises(ArtifactError):
            run.stage_dir(bad)


def test_malicious_pickle_is_not_loaded(run, tmp_path):
    """A pickle planted where tensors belong is refused, and its payload never runs."""
    artifact = run.stage("train", {}, _builder([]))
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    torch.save({"w": Payload()}, artifact.folder / "weights.safetensors")
    with pytest.raises(ArtifactError):
        run.load("train")
    with pytest.raises(Exception):  # noqa: B017 - any refusal will do; the marker is the point
        artifact.tensors("weights")
    assert not marker.exists()


def test_atomic_write_replaces_whole_file(tmp_path):
    target = tmp_path / "f.json"
    store.atomic_write_bytes(target, b"one")
    store.atomic_write_bytes(target, b"two")
    assert target.read_bytes() == b"two" and [p.name for p in tmp_path.iterdir()] == ["f.json"]


def test_tensors_sharing_storage_are_saved_and_load_apart(run):
    """One tensor under three names (as a folder of photos gives groups, kinds and colours)
    and a view of another: safetensors refuses shared storage, the store copies it."""
    unknown = torch.full((5,), -1)
    images = torch.arange(40).reshape(4, 10)

    def build(writer):
        writer.save_tensors(
            "set",
            {
                "groups": unknown,
                "kinds": unknown,
                "colours": unknown,
                "images": images,
                "first": images[0],
                "rest": images[1:],
            },
        )

    loaded = run.stage("data", {"k": 1}, build).tensors("set")
    assert loaded["kinds"].tolist() == [-1] * 5 and torch.equal(loaded["rest"], images[1:])
    loaded["kinds"][0] = 7
    assert loaded["colours"][0] == -1 and unknown[0] == -1


def test_two_processes_making_the_same_stage_at_once_share_one_artifact(tmp_path):
    """One builds; the other, finding it building, waits for it and reuses its folder (it
    does not build the same stage again, nor share its checkpoint folder)."""
    script = textwrap.dedent(f"""
        import os, sys, time, torch
        from kernelfusion import config, store
        run = store.open(config.load("smoke", {{"seed": int(sys.argv[1])}}), {str(tmp_path)!r})
        def build(writer):
            time.sleep(1.5)  # both are building at the same time
            writer.save_tensors("weights", {{"w": torch.full((3,), float(os.getpid()))}})
        artifact = run.stage("train", {{"shared": True}}, build)
        print(int(artifact.tensors("weights")["w"][0]), artifact.folder, artifact.reused)
    """)
    workers = [
        subprocess.Popen([sys.executable, "-c", script, str(seed)], stdout=subprocess.PIPE)
        for seed in (0, 1)
    ]
    outputs = [w.communicate(timeout=120)[0].decode().split() for w in workers]
    assert all(w.returncode == 0 for w in workers)
    assert outputs[0][:2] == outputs[1][:2]  # the same weights, read from the same folder
    assert sorted(o[2] for o in outputs) == ["False", "True"]  # built once
    assert int(outputs[0][0]) in {w.pid for w in workers}
    assert [p.name for p in (tmp_path / "stages" / "train").iterdir()] == [Path(outputs[0][1]).name]
