"""End to end: wall time of every chapter and the peak memory of the chapter kernels, per
preset, from cold caches (`paper` only where a GPU is present). Targets on 2 CPU cores: smoke
<= 2 min, default <= 5 min, including the Jupyter Book build; paper <= 10 min on one H100."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

from .common import table

# Each preset runs in a fresh process, so that RUSAGE_CHILDREN sees only its chapter kernels.
SCRIPT = """
import json, resource, sys, time
from kernelfusion import book
started = time.perf_counter()
result = book.make_book(sys.argv[1], {}, sys.argv[2], log=lambda *a, **k: None)
print(json.dumps({"chapters": result.chapter_seconds, "build": result.build_seconds,
                  "total": time.perf_counter() - started,
                  "peak": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}))
"""


def run(presets: tuple[str, ...] | None = None) -> list[dict]:
    presets = presets or (
        ("smoke", "default", "paper") if torch.cuda.is_available() else ("smoke", "default")
    )
    rows = []
    for preset in presets:
        with tempfile.TemporaryDirectory() as tmp:
            env = {"KERNELFUSION_RUNS": str(Path(tmp) / "runs")}
            output = subprocess.run(
                [sys.executable, "-c", SCRIPT, preset, str(Path(tmp) / "book")],
                capture_output=True,
                text=True,
                check=True,
                env={**_environ(), **env},
            ).stdout
        result = json.loads(output.strip().splitlines()[-1])
        rows += [
            {"preset": preset, "step": chapter, "seconds": seconds, "peak kernel MiB": ""}
            for chapter, seconds in result["chapters"].items()
        ]
        rows.append(
            {
                "preset": preset,
                "step": "jupyter-book build",
                "seconds": result["build"],
                "peak kernel MiB": "",
            }
        )
        rows.append(
            {
                "preset": preset,
                "step": "TOTAL",
                "seconds": result["total"],
                "peak kernel MiB": result["peak"],
            }
        )
    table(
        f"the book end to end, cold caches ({'GPU' if torch.cuda.is_available() else 'CPU'})", rows
    )
    return rows


def _environ() -> dict[str, str]:
    import os

    return dict(os.environ)


if __name__ == "__main__":
    run()
