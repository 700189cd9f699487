"""The command line: `python -m kernelfusion book --preset P [--only NN] [--set key=value]`."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from . import book, config


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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="kernelfusion", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("book", help="execute the chapters and build the book")
    run.add_argument("--preset", default="default", help=f"one of {', '.join(config.PRESETS)}")
    run.add_argument("--device", default=None, help="auto, cpu, cuda, cuda:N (default: config)")
    run.add_argument("--only", default=None, help="run one chapter, by its number (e.g. 03)")
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
    args = parser.parse_args(argv)

    try:
        overrides = dict(parse_override(item) for item in args.set)
        if args.device:
            overrides["device"] = args.device
        result = book.make_book(args.preset, overrides, Path(args.out), only=args.only)
    except (config.ConfigError, book.BookError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"book built: {result.index_html}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
