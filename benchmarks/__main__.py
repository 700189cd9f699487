"""Run the benchmarks: `python -m benchmarks [name ...]`; names: machine stages data zoo gan
stack steps arms analysis book (`machine` first: the yardstick every other timing is read
against)."""

from __future__ import annotations

import importlib
import sys

BENCHMARKS = (
    "machine",
    "stages",
    "data",
    "zoo",
    "gan",
    "stack",
    "steps",
    "arms",
    "analysis",
    "book",
)


def main(words: list[str]) -> None:
    """Each name runs its benchmark; words after a name that are not names are its arguments
    (`python -m benchmarks stages /path/to/runs`, `python -m benchmarks stack cuda`)."""
    calls: list[tuple[str, list[str]]] = []
    for word in words:
        if word in BENCHMARKS:
            calls.append((word, []))
        elif calls:
            calls[-1][1].append(word)
        else:
            raise SystemExit(f"unknown benchmark {word!r}: choose from {', '.join(BENCHMARKS)}")
    for name, arguments in calls or [(name, []) for name in BENCHMARKS]:
        importlib.import_module(f"benchmarks.bench_{name}").run(*arguments)


if __name__ == "__main__":
    main(sys.argv[1:])
