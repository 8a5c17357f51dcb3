"""Command line: ``python -m cnn_explorer COMMAND`` (the same library calls as the pages)."""

from __future__ import annotations

import argparse
import sys

from cnn_explorer import defaults


def _train_defaults(args: argparse.Namespace) -> int:
    names = args.only or list(defaults.RECIPES)
    for name in names:
        defaults.train_default(name)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cnn_explorer", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    train = commands.add_parser("train-defaults", help="retrain the shipped default models (seeded)")
    train.add_argument("--only", action="append", choices=list(defaults.RECIPES), help="train just this model")
    train.set_defaults(run=_train_defaults)
    args = parser.parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
