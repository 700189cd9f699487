"""Where the time went: every sealed stage under a runs folder (default: the project's, or
`$KERNELFUSION_RUNS`), from the seconds its manifest recorded, per stage name: how many were
built, their total and mean wall seconds, their total CPU seconds (the work: the wall seconds
include waiting for a core when more processes than cores run, as in a sweep beside a
chapter's kernel) and the thread counts they were built with. Run it after
a cold `make book` to see which stages the book's time is spent in:
`python -m benchmarks stages [runs folder]`."""

from __future__ import annotations

import json
import sys
from collections import defaultdict
from pathlib import Path

from kernelfusion import store

from .common import table


def stage_seconds(root: Path) -> list[dict]:
    """One row per stage name, most seconds first. A per-model metrics stage is counted apart
    from the `metrics` stage, whose own seconds include the per-model stages it built."""
    groups: dict[str, list[dict]] = defaultdict(list)
    for manifest in sorted((root / store.STAGES).glob("*/*/manifest.json")):
        record = json.loads(manifest.read_text())
        name = record["stage"]
        groups["metrics (per model)" if name.startswith("metrics-") else name].append(record)
    rows = [
        {
            "stage": name,
            "built": len(records),
            "total s": sum(r.get("seconds", 0.0) for r in records),
            "mean s": sum(r.get("seconds", 0.0) for r in records) / len(records),
            # CPU seconds (all threads) of the process that made them; stages made before
            # manifests recorded it count 0
            "total CPU s": sum(r.get("cpu seconds", 0.0) for r in records),
            "threads": ",".join(sorted({str(r.get("threads", "?")) for r in records})),
        }
        for name, records in groups.items()
    ]
    return sorted(rows, key=lambda row: -row["total s"])


def run(root: str | None = None) -> list[dict]:
    folder = Path(root) if root else store.default_root()
    rows = stage_seconds(folder)
    if rows:
        table(f"stage seconds from the manifests under {folder}", rows)
    else:
        print(f"no sealed stage under {folder}\n")
    return rows


if __name__ == "__main__":
    run(sys.argv[1] if len(sys.argv) > 1 else None)
