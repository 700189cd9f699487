"""The command line: `python -m kernelfusion book --preset P [--only NN] [--set key=value]`,
`python -m kernelfusion sweep ...` and `python -m kernelfusion cache [--prune] [--stage S]`."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from . import config, store, sweep
from .build import book, pdf
from .store import StorageError


def parse_override(text: str) -> tuple[str, object]:
    """`key=value` -> (key, value), the value read as JSON (numbers, true/false) else a string."""
    if "=" not in text:
        raise config.ConfigError(f"override {text!r} must look like key=value, e.g. seed=3")
    key, raw = text.split("=", 1)
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        value = raw
    return key.strip(), value


STOPPED = "stopped: every stage finished so far is kept; run the same command again to go on"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="kernelfusion", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("book", help="execute the chapters and build the book")
    run.add_argument("--preset", default="default", help=f"one of {', '.join(config.PRESETS)}")
    run.add_argument("--device", default=None, help="auto, cpu, cuda, cuda:N (default: config)")
    run.add_argument(
        "--only", default=None, help="run only these chapters, by number (e.g. 03, or 01,07)"
    )
    run.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="config override, e.g. --set data.image_size=48 (repeatable)",
    )
    run.add_argument(
        "--out",
        default=str(book.PROJECT / "book" / "_build"),
        help="build folder (executed notebooks and HTML)",
    )
    sweep = commands.add_parser("sweep", help="run the pipeline over a grid of overrides")
    sweep.add_argument("--preset", default="smoke", help=f"one of {', '.join(config.PRESETS)}")
    sweep.add_argument(
        "--grid",
        action="append",
        default=[],
        metavar="KEY=V1,V2",
        help="values to sweep, e.g. --grid seed=0,1,2 (repeatable)",
    )
    sweep.add_argument("--backend", default="local", choices=("local", "ray"))
    sweep.add_argument("--workers", type=int, default=2)
    sweep.add_argument("--address", default=None, help="a Ray cluster's address (ray backend)")
    printing = commands.add_parser("pdf", help="print the built book as one PDF (Chromium)")
    printing.add_argument(
        "--out",
        default=str(book.PROJECT / "book" / "_build"),
        help="build folder of the book (the PDF is written there as book.pdf)",
    )
    cache = commands.add_parser("cache", help="list the cached stages by size, or prune them")
    cache.add_argument("--root", default=None, help="runs folder (default: $KERNELFUSION_RUNS)")
    cache.add_argument(
        "--prune",
        action="store_true",
        help="delete stages no run uses, leftovers of interrupted builds and checkpoints",
    )
    cache.add_argument(
        "--stage",
        action="append",
        default=[],
        help="delete every cached artifact of this stage, e.g. --stage cyclegan (repeatable)",
    )
    args = parser.parse_args(argv)
    if args.command == "sweep":
        return _sweep(args)
    if args.command == "cache":
        return _cache(args)
    if args.command == "pdf":
        try:
            print(f"pdf written: {pdf.make_pdf(args.out)}")
        except book.BookError as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
        return 0

    try:
        overrides = dict(parse_override(item) for item in args.set)
        if args.device:
            overrides["device"] = args.device
        result = book.make_book(args.preset, overrides, Path(args.out), only=args.only)
    except (config.ConfigError, book.BookError, StorageError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # every worker has unwound: no half-made stage is kept
        print(f"\n{STOPPED}", file=sys.stderr)
        return 130
    print(f"book built: {result.index_html}")
    return 0


def _sweep(args) -> int:
    try:
        spec = {}
        for item in args.grid:
            key, raw = parse_override(item)
            values = raw.split(",") if isinstance(raw, str) else [raw]
            spec[key] = [parse_override(f"{key}={v}")[1] for v in values]
        results = sweep.sweep(
            args.preset, spec, backend=args.backend, workers=args.workers, address=args.address
        )
    except (config.ConfigError, StorageError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    table = sweep.summary(results)
    print(table.pivot_table(index="model", columns=list(spec), values="probe F1"))
    for result in results:
        print(f"{result['run']}: {result['metrics']}")
    return 0


def _cache(args) -> int:
    import pandas as pd

    if args.prune or args.stage:
        try:
            deleted = store.prune(args.root, stages=args.stage, unused=args.prune)
        except store.ArtifactError as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
        print(f"deleted {len(deleted)} folder(s)")
    rows = store.cached(args.root)
    if not rows:
        print("nothing cached")
        return 0
    table = pd.DataFrame(rows)
    table["MB"] = (table.pop("bytes") / 1e6).round(2)
    table["runs"] = table["runs"].map(lambda r: ", ".join(r) if r else "(unused)")
    print(table.to_string(index=False))
    totals = table.groupby("stage", sort=False)["MB"].agg(["count", "sum"])
    print(f"\nby stage (MB):\n{totals.to_string()}\ntotal {table['MB'].sum():.1f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
