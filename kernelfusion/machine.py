"""What this run executes on: versions, device and seeding, for the setup chapter and manifests."""

from __future__ import annotations

import os
import platform
import random

import numpy as np
import torch

from .config import Config, resolve_device
from .store import package_versions


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, NumPy and torch, ask torch for deterministic kernels, return a generator."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.backends.cudnn.benchmark = False
    return torch.Generator().manual_seed(seed)


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
    facts.update({f"{name} version": version for name, version in package_versions().items()})
    return facts
