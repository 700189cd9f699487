"""kernelfusion: generate a CNN for black cats by translating the kernels of two other CNNs."""

from . import (
    analysis,
    cnn,
    config,
    cyclegan,
    data,
    fusion,
    machine,
    pipeline,
    plots,
    store,
    sweep,
    synthetic,
    training,
    zoo,
)

__all__ = [
    "analysis",
    "cnn",
    "config",
    "cyclegan",
    "data",
    "fusion",
    "machine",
    "pipeline",
    "plots",
    "store",
    "sweep",
    "synthetic",
    "training",
    "zoo",
]
__version__ = "0.1.0"
