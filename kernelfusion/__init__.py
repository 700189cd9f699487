"""kernelfusion: generate a CNN for black cats by translating the kernels of two other CNNs."""

from . import config, machine, plots, store

__all__ = ["config", "machine", "plots", "store"]
__version__ = "0.1.0"
