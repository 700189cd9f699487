"""kernelfusion: generate a CNN for black cats by translating the kernels of two other CNNs."""

from . import config, data, machine, plots, store, synthetic

__all__ = ["config", "data", "machine", "plots", "store", "synthetic"]
__version__ = "0.1.0"
