"""Faults a user meets with the runs folder: read-only, or on a disk that fills up part-way.
Each ends in one line that names the fix, with exit status 2 (as every refusal), keeps nothing
half-written, and the next run after the fault gives a clean run's numbers.

The file systems are real: a tmpfs mounted in a private mount namespace (`unshare -m`, as
root; CI runs as root), read-only, or too small for the smoke preset's data.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(
    shutil.which("unshare") is None or os.geteuid() != 0,
    reason="needs root and unshare to mount a small or read-only file system",
)

# the numbers of a run: the source CNNs' weights (one thread: a fixed reduction order)
NUMBERS = textwrap.dedent("""
    import torch; torch.set_num_threads(1)
    from kernelfusion import cnn, config, data, evaluate, store
    cfg = config.load("smoke")
    run = store.open(cfg)
    datasets = data.make_datasets(cfg, run, progress=False)
    sources = cnn.make_sources(cfg, run, datasets, progress=False)
    print(evaluate.weights_hash((sources.cat, sources.black)))
""")


def _namespace(script: str, runs: Path, tmp_path: Path) -> subprocess.CompletedProcess:
    """`script` (sh) in a private mount namespace, KERNELFUSION_RUNS at `runs`."""
    env = os.environ | {"KERNELFUSION_RUNS": str(runs), "PY": sys.executable, "ERR": str(tmp_path)}
    (tmp_path / "script.sh").write_text(script)
    return subprocess.run(
        ["unshare", "-m", "sh", "-e", str(tmp_path / "script.sh")],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )


@pytest.fixture(scope="module")
def clean_numbers(tmp_path_factory) -> str:
    """A clean run's numbers, in a runs folder no fault touched (once for both faults)."""
    runs = tmp_path_factory.mktemp("clean")
    env = os.environ | {"KERNELFUSION_RUNS": str(runs)}
    done = subprocess.run(
        [sys.executable, "-c", NUMBERS], capture_output=True, text=True, env=env, check=True
    )
    return done.stdout.strip()


def _errors(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


def _fault(tmp_path: Path, fault: str, recover: str, check: str = "") -> tuple[Path, list[str]]:
    """`make book`'s and `sweep`'s command lines under `fault` (sh lines that mount the runs
    folder), both refused with status 2; then `check`, `recover`, and the next run's numbers.
    Returns the runs folder and the script's output lines."""
    runs = tmp_path / "runs"
    runs.mkdir()
    (tmp_path / "weights_of_a_run.py").write_text(NUMBERS)
    script = f"""
        {fault}
        set +e
        "$PY" -m kernelfusion book --preset smoke --out "$ERR/book" 2> "$ERR/book.err"
        echo "book $?"
        "$PY" -m kernelfusion sweep --preset smoke --grid seed=0 --workers 1 2> "$ERR/sweep.err"
        echo "sweep $?"
        set -e
        {check}
        {recover}
        "$PY" "$ERR/weights_of_a_run.py"
    """
    done = _namespace(textwrap.dedent(script), runs, tmp_path)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert "book 2" in lines and "sweep 2" in lines
    return runs, lines


def test_a_read_only_runs_folder_is_one_line_before_any_chapter(tmp_path, clean_numbers):
    runs, lines = _fault(
        tmp_path,
        'mount -t tmpfs -o size=64m tmpfs "$KERNELFUSION_RUNS"\n'
        'mount -o remount,ro "$KERNELFUSION_RUNS"',
        recover='mount -o remount,rw "$KERNELFUSION_RUNS"',
    )
    expected = (
        f"error: cannot write to the runs folder {runs} (read-only file system): set "
        "KERNELFUSION_RUNS to a writable folder"
    )
    for name in ("book", "sweep"):
        assert _errors((tmp_path / f"{name}.err").read_text()) == [expected], name
    assert not any(line.startswith("[1/") for line in lines)  # refused before chapter 1
    assert lines[-1] == clean_numbers  # the next run: a clean run's numbers


def test_a_disk_that_fills_up_is_one_line_and_keeps_nothing_half_written(tmp_path, clean_numbers):
    runs, lines = _fault(
        tmp_path,
        # room for the checks before chapter 1, not for the first stage (the data): the
        # book fails part-way, in chapter 01, as soon as possible
        'mount -t tmpfs -o size=200k tmpfs "$KERNELFUSION_RUNS"',
        recover='mount -o remount,size=512m "$KERNELFUSION_RUNS"',
        check="find \"$KERNELFUSION_RUNS/stages\" -name '.*' | wc -l",
    )
    full = re.escape(f"the disk holding the runs folder {runs} is full")
    sweep_err = _errors((tmp_path / "sweep.err").read_text())
    # full before it starts, or part-way: one line either way
    stage = "(while writing stage [a-z0-9-]+ )?"
    assert len(sweep_err) == 1 and re.match(f"error: {full} {stage}\\(", sweep_err[0])
    assert "`python -m kernelfusion cache --prune` frees" in sweep_err[0]
    book_err = _errors((tmp_path / "book.err").read_text())
    part_way = f"error: chapter 0[1-9]_[a-z_]+: {full} while writing stage [a-z0-9-]+ \\("
    assert len(book_err) == 1 and re.match(part_way, book_err[0]), book_err
    assert lines[-2] == "0"  # no temporary folder of a half-written stage is left
    assert lines[-1] == clean_numbers
