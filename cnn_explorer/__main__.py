"""Command line: ``python -m cnn_explorer COMMAND`` (the same library calls as the pages)."""

from __future__ import annotations

import argparse
import sys

from cnn_explorer import defaults
from cnn_explorer.images import SAMPLES_DIR


def _train_defaults(args: argparse.Namespace) -> int:
    names = args.only or list(defaults.RECIPES)
    for name in names:
        defaults.train_default(name)
    return 0


def _make_samples(args: argparse.Namespace) -> int:
    entries = defaults.write_samples(SAMPLES_DIR)
    print(f"wrote {len(entries)} samples to {SAMPLES_DIR}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cnn_explorer", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    train = commands.add_parser("train-defaults", help="retrain the shipped default models (seeded)")
    train.add_argument("--only", action="append", choices=list(defaults.RECIPES), help="train just this model")
    train.set_defaults(run=_train_defaults)
    samples = commands.add_parser("make-samples", help="write held-out samples of the built-in datasets to assets/")
    samples.set_defaults(run=_make_samples)
    args = parser.parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
