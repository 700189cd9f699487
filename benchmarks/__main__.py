"""Run the benchmarks: `python -m benchmarks [name ...]`; names: machine stages data zoo gan
stack arms analysis book (`machine` first: the yardstick every other timing is read against)."""

from __future__ import annotations

import importlib
import sys

BENCHMARKS = ("machine", "stages", "data", "zoo", "gan", "stack", "arms", "analysis", "book")


def main(names: list[str]) -> None:
    for name in names or BENCHMARKS:
        importlib.import_module(f"benchmarks.bench_{name}").run()


if __name__ == "__main__":
    main(sys.argv[1:])
