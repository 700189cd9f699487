"""kernelfusion: generate a CNN for black cats by translating the kernels of two other CNNs."""

import atexit as _atexit
import gc as _gc
import importlib as _importlib
import os as _os

# At exit, Python's last garbage collection walks every object torch made at import: 0.6-0.8 s
# of each process's exit (every chapter's kernel, every worker) on the project's 2-core CPU,
# 0.2 s with them frozen (`gc.freeze`, run by the first exit handler: the others still run, the
# streams are still flushed, and the operating system frees the memory).
_atexit.register(_gc.freeze)

if _os.environ.get("KERNELFUSION_BOOK"):  # a chapter executed for the book (build.book)
    import warnings as _warnings

    def _book_warning(message, category, filename, lineno, line=None) -> str:
        """A warning as a reader of the book should see it: without the build machine's file
        paths (the package's, or the kernel's temporary cell files)."""
        return f"{category.__name__}: {message}\n"

    _warnings.formatwarning = _book_warning

__all__ = [
    "ablation",
    "alignment",
    "behaviour",
    "cnn",
    "comparison_figures",
    "config",
    "cyclegan",
    "data",
    "evaluate",
    "figures",
    "fusion",
    "gan_checks",
    "machine",
    "measures",
    "networks",
    "original",
    "original_protocol",
    "pipeline",
    "progress",
    "report",
    "stacked_gans",
    "stage_keys",
    "stats",
    "store",
    "sweep",
    "synthetic",
    "training",
    "verdicts",
    "zoo",
]
__version__ = "0.1.0"


def __getattr__(name: str):
    """The package's modules, each imported when first used (`kf.config`, as the chapters
    write): a process that needs one of them (a worker, the book's Sphinx plug-ins, umap's
    compiling) does not import torch and the rest with it (2.7 s on the project's CPU)."""
    if name in __all__:
        return _importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
