"""Progress bars for long work: tqdm, switched off by `progress=False` or `TQDM_DISABLE=1`."""

from __future__ import annotations

from tqdm import tqdm


def bar(iterable=None, *, progress: bool = True, **kwargs) -> tqdm:
    """A tqdm bar; `progress=False` hides it, as does TQDM_DISABLE=1 (set by the book build)."""
    if not progress:
        kwargs["disable"] = True
    return tqdm(iterable, **kwargs)
