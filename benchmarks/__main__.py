"""Run every benchmark: `python -m benchmarks [name ...]` (names: data, zoo)."""

from __future__ import annotations

import importlib
import sys

BENCHMARKS = ("data", "zoo")


def main(names: list[str]) -> None:
    for name in names or BENCHMARKS:
        importlib.import_module(f"benchmarks.bench_{name}").run()


if __name__ == "__main__":
    main(sys.argv[1:])
