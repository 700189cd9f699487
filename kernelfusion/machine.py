"""What this run executes on: versions, device and seeding, for the setup chapter and manifests;
and how a copy of the book was built: its stages' recorded times (`stage_times`)."""

from __future__ import annotations

import hashlib
import json
import os
import platform
import random
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from .config import Config, resolve_device
from .store import default_root, package_versions


def derive_seed(seed: int, *names: object) -> int:
    """The seed of one random choice of a run: a hash of the run's `cfg.seed` and the choice's
    names, e.g. `derive_seed(cfg.seed, "zoo model", "cat", 3)`. Distinct names never share a
    generator (as `seed + 11` and `seed + 13` did across seeds) and the value fits every
    library's seed type (NumPy's RandomState needs < 2**32)."""
    text = "/".join(str(part) for part in (seed, *names))
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big") % (2**31 - 1)


def generator(seed: int, *names: object) -> torch.Generator:
    """A torch generator seeded with `derive_seed(seed, *names)`."""
    return torch.Generator().manual_seed(derive_seed(seed, *names))


def init_seed(cfg: Config) -> int:
    """The seed of the shared initialisation of the source CNNs (and the oracle and the random
    CNN): it varies with `cfg.seed`, so repeating the pipeline repeats the initialisation too;
    `cnn.init_seed` picks another family of them."""
    return derive_seed(cfg.seed, "shared initialisation", cfg.cnn.init_seed)


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, NumPy and torch, ask torch for deterministic kernels, return a generator."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.backends.cudnn.benchmark = False
    return torch.Generator().manual_seed(seed)


def commit() -> str:
    """The project's git commit (short), with `+changes` when the work tree differs from it;
    `unknown` outside a git checkout."""
    import subprocess
    from pathlib import Path

    def git(*args: str) -> str:
        checkout = Path(__file__).resolve().parent.parent
        command = ["git", *args]
        return subprocess.run(
            command, cwd=checkout, capture_output=True, text=True, check=True, timeout=10
        ).stdout.strip()

    try:
        head, dirty = git("rev-parse", "--short", "HEAD"), git("status", "--porcelain", "-uno")
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return head + ("+changes" if dirty else "")


def report(cfg: Config) -> dict[str, str]:
    """A flat table of the facts a reader needs to reproduce this run's numbers."""
    device = resolve_device(cfg.device)
    facts = {
        "preset": cfg.preset,
        "run": cfg.run_name,
        "seed": str(cfg.seed),
        "device asked": cfg.device,
        "device used": device,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu cores": str(os.cpu_count()),
        "torch threads": str(torch.get_num_threads()),
    }
    if device.startswith("cuda"):
        facts["gpu"] = torch.cuda.get_device_name(torch.device(device))
    facts["commit"] = commit()
    facts["built"] = time.strftime("%Y-%m-%d %H:%M %Z")
    facts.update({f"{name} version": version for name, version in package_versions().items()})
    return facts


def stage_times(preset: str, root: str | Path | None = None) -> pd.DataFrame:
    """How this copy of `preset`'s book was built: per stage name, the stages its runs (the run
    folders `<preset>-<hash>` under the runs folder `root`) link to, and the wall and CPU
    seconds their manifests recorded when they were made (in this build or an earlier one),
    most seconds first. Per-model metrics stages are counted as one row."""
    root = Path(root) if root is not None else default_root()
    made: dict[Path, dict] = {}
    for link in sorted(root.glob(f"{preset}-*/*")):
        if link.is_symlink() and link.resolve() not in made:
            manifest = link.resolve() / "manifest.json"
            if manifest.is_file():
                made[link.resolve()] = json.loads(manifest.read_text())
    rows: dict[str, dict] = {}
    for record in made.values():
        name = "metrics (per model)" if record["stage"].startswith("metrics-") else record["stage"]
        row = rows.setdefault(name, {"stage": name, "made": 0, "seconds": 0.0, "CPU seconds": 0.0})
        row["made"] += 1
        row["seconds"] += record.get("seconds", 0.0)
        row["CPU seconds"] += record.get("cpu seconds", 0.0)
    columns = ["stage", "made", "seconds", "CPU seconds"]
    frame = pd.DataFrame(list(rows.values()), columns=columns)
    return frame.sort_values("seconds", ascending=False).set_index("stage")
