"""Progress bars for long work: tqdm, switched off by `progress=False` or `TQDM_DISABLE=1`.

Where `KERNELFUSION_STATUS` names a file (the book build sets it for each chapter), every bar,
shown or not, and every stage being built also say in that file what they are doing, so that
`make book` can show it live on the chapter's line; in the kernel's worker processes too. The
build tool reads the file (`build.book.read_status`); here it is only written.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from tqdm import tqdm

STATUS_ENV = "KERNELFUSION_STATUS"
SAY_EVERY = 0.5  # seconds between two status writes of one bar: a write is a file replace


def status(text: str, part: str = "") -> None:
    """Say what this process does now, in the status file (nothing when none is set). `part`
    names a second file beside it, for what outlives one bar (e.g. "runs": runs done of how
    many); the last writer of a file wins, which is what a live line wants."""
    say(os.environ.get(STATUS_ENV), text, part)


def say(path: str | None, text: str, part: str = "") -> None:
    """`status` into the status file at `path` (nothing when None)."""
    if not path:
        return
    target = Path(f"{path}.{part}" if part else path)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(text)
        os.replace(tmp, target)
    except OSError:  # a status line is a courtesy: never a reason to fail the work
        pass


class _Said:
    """A tqdm bar (shown or not) that also says where it is in the status file."""

    def __init__(self, bar: tqdm, iterable, desc: str, total, initial: int):
        self._bar, self._desc, self._n, self._said = bar, desc or "working", initial, 0.0
        if total is None and iterable is not None and hasattr(iterable, "__len__"):
            total = len(iterable)
        self._total = total
        self._say(force=True)

    def _say(self, force: bool = False) -> None:
        now = time.monotonic()
        done = self._total is not None and self._n >= self._total
        if force or done or now - self._said >= SAY_EVERY:
            of = f"/{self._total}" if self._total is not None else ""
            status(f"{self._desc} {self._n}{of}")
            self._said = now

    def __iter__(self):
        for item in self._bar:
            yield item
            self._n += 1
            self._say()

    def update(self, n: int = 1):
        self._n += n
        self._say()
        return self._bar.update(n)

    def __enter__(self):
        self._bar.__enter__()
        return self

    def __exit__(self, *exc):
        return self._bar.__exit__(*exc)

    def __getattr__(self, name):  # set_postfix, close, n, ...: the bar's own
        return getattr(self._bar, name)


def bar(iterable=None, *, progress: bool = True, **kwargs) -> tqdm:
    """A tqdm bar; `progress=False` hides it, as does TQDM_DISABLE=1 (set by the book build).
    With a status file set, it also says where it is there (see the module's docstring)."""
    if not progress:
        kwargs["disable"] = True
    shown = tqdm(iterable, **kwargs)
    if not os.environ.get(STATUS_ENV):
        return shown
    return _Said(shown, iterable, kwargs.get("desc"), kwargs.get("total"), kwargs.get("initial", 0))
