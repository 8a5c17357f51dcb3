"""Command line: ``python -m cnn_explorer COMMAND`` (the same library calls as the pages)."""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys

from cnn_explorer import defaults, jobs
from cnn_explorer.images import SAMPLES_DIR
from cnn_explorer.runspec import PRESETS, preset

# Exit codes of ``train``: the run finished, failed, or was stopped (Ctrl-C, as a shell's 128 + SIGINT).
_EXIT = {"done": 0, "failed": 1, "stopped": 130}


def _train_defaults(args: argparse.Namespace) -> int:
    for name in args.only or list(defaults.DEFAULTS):
        default = defaults.DEFAULTS[name]
        code = _train(argparse.Namespace(preset=default.preset_name, epochs=default.epochs, json=False, ship=True))
        if code:
            return code
    return 0


def _make_samples(args: argparse.Namespace) -> int:
    entries = defaults.write_samples(SAMPLES_DIR)
    print(f"wrote {len(entries)} samples to {SAMPLES_DIR}")
    return 0


def _calibrate_ood(args: argparse.Namespace) -> int:
    for name in args.names or list(defaults.DEFAULTS):
        defaults.calibrate_ood(name, log=_print)
    return 0


def _train(args: argparse.Namespace) -> int:
    default = defaults.default_for_preset(args.preset)
    if args.ship and default is None:
        presets = ", ".join(d.preset_name for d in defaults.DEFAULTS.values())
        print(f"--ship: {args.preset} is not a default model's preset ({presets})", file=sys.stderr)
        return 2
    changes = {"epochs": args.epochs} if args.epochs is not None else {}
    spec = preset(args.preset, **changes)
    interrupted = []

    def on_interrupt(signum: int, frame: object) -> None:
        if interrupted:  # a second Ctrl-C: leave at once
            raise KeyboardInterrupt
        interrupted.append(True)
        print("stopping after this batch (Ctrl-C again to quit at once)", file=sys.stderr, flush=True)

    previous = signal.signal(signal.SIGINT, on_interrupt)
    try:
        outcome = jobs.train_foreground(spec, log=_print, should_stop=lambda: bool(interrupted))
    finally:
        signal.signal(signal.SIGINT, previous)
    metrics = outcome.metrics()
    if args.ship and outcome.status == "done":
        metrics["heldout_accuracy"] = defaults.ship(outcome.run_id, default.name, log=_print)
    if args.json:
        print(json.dumps(metrics), flush=True)
    elif metrics["val_accuracy"] is not None:
        print(f"{metrics['model']}: validation accuracy {metrics['val_accuracy']:.2%} (epoch {metrics['best_epoch']})")
    return _EXIT[outcome.status]


def _print(line: str) -> None:
    print(line, flush=True)


def _worker(args: argparse.Namespace) -> int:
    code = jobs.work(args.run_id)
    # Everything is on disk (checkpoints fsynced, the index committed); skip the interpreter's teardown, which
    # takes seconds with torch loaded and would keep a stopped run's process alive past the stop deadline.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cnn_explorer", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    train = commands.add_parser(
        "train-defaults", help="retrain the shipped default models (train --preset NAME --epochs N --ship for each)"
    )
    train.add_argument("--only", action="append", choices=list(defaults.DEFAULTS), help="train just this model")
    train.set_defaults(run=_train_defaults)
    samples = commands.add_parser("make-samples", help="write held-out samples of the built-in datasets to assets/")
    samples.set_defaults(run=_make_samples)
    calibrate = commands.add_parser(
        "calibrate-ood",
        help="fit the shipped models' out-of-distribution detectors on their training data (NAME.ood.pt, card table)",
    )
    calibrate.add_argument("names", nargs="*", choices=list(defaults.DEFAULTS), help="default: both")
    calibrate.set_defaults(run=_calibrate_ood)
    run = commands.add_parser("train", help="train a preset in the foreground, recorded in the run store")
    run.add_argument("--preset", required=True, choices=list(PRESETS), help="what to train")
    run.add_argument("--epochs", type=int, help="override the preset's epochs")
    run.add_argument("--json", action="store_true", help="print the final metrics as JSON on the last line")
    run.add_argument(
        "--ship",
        action="store_true",
        help="then ship the trained model into assets/models as the default of that name (held-out accuracy, card)",
    )
    run.set_defaults(run=_train)
    worker = commands.add_parser("worker", help="train one queued run (started by the app, not by hand)")
    worker.add_argument("run_id")
    worker.set_defaults(run=_worker)
    args = parser.parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
