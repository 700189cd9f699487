"""End to end: every chapter's wall time and peak memory (its kernel and the workers it starts)
from cold caches, again with nothing changed (warm), and again after changing one `gan.*`
value, which reuses the data, source CNNs and zoo of every seed. `paper` runs only where a GPU
is present. Targets on 2 CPU cores: smoke <= 120 s, default <= 900 s cold including the
Jupyter Book build, warm <= 30 s, after a GAN change <= half the cold time; paper <= 10 min on
one H100."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

from .common import table

# Each build runs in a fresh process, as `make book` does.
SCRIPT = """
import json, sys, time
from kernelfusion.build import book
started = time.perf_counter()
result = book.make_book(sys.argv[1], json.loads(sys.argv[3]), sys.argv[2], log=lambda *a, **k: None)
print(json.dumps({"runs": result.runs, "chapters": result.chapter_seconds,
                  "peaks": result.chapter_peak_mib, "build": result.build_seconds,
                  "total": time.perf_counter() - started}))
"""
GAN_CHANGE = {"gan.identity_weight": 0.6}  # one GAN setting: the ablation chapter's kind of arm


def _build(preset: str, out: Path, runs: Path, overrides: dict) -> dict:
    output = subprocess.run(
        [sys.executable, "-c", SCRIPT, preset, str(out), json.dumps(overrides)],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "KERNELFUSION_RUNS": str(runs)},
    ).stdout
    return json.loads(output.strip().splitlines()[-1])


def run(presets: tuple[str, ...] | None = None) -> list[dict]:
    presets = presets or (
        ("smoke", "default", "paper") if torch.cuda.is_available() else ("smoke", "default")
    )
    rows = []
    for preset in presets:
        with tempfile.TemporaryDirectory() as tmp:
            runs, out = Path(tmp) / "runs", Path(tmp) / "book"
            cold = _build(preset, out, runs, {})
            warm = _build(preset, out, runs, {})
            changed = _build(preset, out, runs, GAN_CHANGE)
        rows.append(  # the compute phase: every run the chapters read (none: all cached)
            {
                "preset": preset,
                "step": "runs (compute phase)",
                "cold s": cold["runs"].get("seconds", 0.0),
                "warm s": warm["runs"].get("seconds", 0.0),
                "gan changed s": changed["runs"].get("seconds", 0.0),
                "peak MiB (cold)": cold["runs"].get("peak MiB", float("nan")),
            }
        )
        for chapter, seconds in cold["chapters"].items():
            rows.append(
                {
                    "preset": preset,
                    "step": chapter,
                    "cold s": seconds,
                    "warm s": warm["chapters"][chapter],
                    "gan changed s": changed["chapters"][chapter],
                    "peak MiB (cold)": cold["peaks"].get(chapter, float("nan")),
                }
            )
        rows.append(
            {
                "preset": preset,
                "step": "jupyter-book build",
                "cold s": cold["build"],
                "warm s": warm["build"],
                "gan changed s": changed["build"],
                "peak MiB (cold)": float("nan"),
            }
        )
        rows.append(
            {
                "preset": preset,
                "step": "TOTAL",
                "cold s": cold["total"],
                "warm s": warm["total"],
                "gan changed s": changed["total"],
                "peak MiB (cold)": max(
                    [*cold["peaks"].values(), cold["runs"].get("peak MiB", 0.0)],
                    default=float("nan"),
                ),
            }
        )
    device = "GPU" if torch.cuda.is_available() else f"CPU, {os.cpu_count()} cores"
    table(
        f"the book end to end ({device}): cold caches, then nothing changed, then "
        f"{', '.join(f'{k}={v}' for k, v in GAN_CHANGE.items())}",
        rows,
    )
    return rows


if __name__ == "__main__":
    run(tuple(sys.argv[1:]) or None)
