"""End to end: wall time and peak kernel memory of every chapter, per preset, from cold caches
(`paper` only where a GPU is present). Targets on 2 CPU cores: smoke <= 2 min, default <= 5 min
including the Jupyter Book build; paper <= 10 min on one H100."""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path

import torch

from kernelfusion import book

from .common import table


def run(presets: tuple[str, ...] | None = None) -> list[dict]:
    presets = presets or (
        ("smoke", "default", "paper") if torch.cuda.is_available() else ("smoke", "default")
    )
    rows = []
    for preset in presets:
        with tempfile.TemporaryDirectory() as tmp:
            os.environ["KERNELFUSION_RUNS"] = str(Path(tmp) / "runs")
            started = time.perf_counter()
            result = book.make_book(preset, {}, Path(tmp) / "book", log=lambda *a, **k: None)
            total = time.perf_counter() - started
            timings = json.loads((Path(tmp) / "book" / "timings.json").read_text())
        for chapter, seconds in result.chapter_seconds.items():
            rows.append(
                {
                    "preset": preset,
                    "step": chapter,
                    "seconds": seconds,
                    "peak MiB (max so far)": timings["kernel peak MiB (max so far)"][chapter],
                }
            )
        rows.append(
            {
                "preset": preset,
                "step": "jupyter-book build",
                "seconds": result.build_seconds,
                "peak MiB (max so far)": "",
            }
        )
        rows.append(
            {"preset": preset, "step": "TOTAL", "seconds": total, "peak MiB (max so far)": ""}
        )
    table(
        f"the book end to end, cold caches ({'GPU' if torch.cuda.is_available() else 'CPU'})", rows
    )
    return rows


if __name__ == "__main__":
    run()
