"""Trained runs (family ``"trained run"``): every finished run of the run store with a best checkpoint, offered as
``run-<id>`` and rebuilt from the model description the run recorded.
"""

from __future__ import annotations

from cnn_explorer import diagnostics, runs
from cnn_explorer.architectures import build_model
from cnn_explorer.model import LoadedModel, ModelEntry, ModelUnavailable
from cnn_explorer.model_registry import register_source
from cnn_explorer.preprocess import Preprocess
from cnn_explorer.runspec import RunSpec
from cnn_explorer.sources.imagenet import transfer_base

__all__ = ["entries"]


@register_source(order=30)
def entries() -> dict[str, ModelEntry]:
    """Finished runs with a best checkpoint, read from the store now (not cached: runs finish, get renamed and
    deleted while the app runs)."""
    found = {}
    for run in runs.list_runs(runs.FINISHED):
        if not run.has_checkpoint:
            continue
        try:
            info = runs.read_model_info(run.id)
        except (runs.RunNotFound, ValueError, OSError):  # deleted meanwhile, or damaged: not offered
            continue
        found[run.model_name] = ModelEntry(
            name=run.model_name,
            family="trained run",
            summary=_run_summary(run, info),
            is_ready=lambda run=run: run.has_checkpoint,
            load=lambda progress, run_id=run.id: _load_run(run_id),
        )
    return found


def _run_summary(run: runs.Run, info: dict) -> str:
    accuracy = "" if run.best_val_accuracy is None else f" · val acc {run.best_val_accuracy:.1%}"
    return f"{run.name} · {info['architecture']} · {info['parameters']:,} params{accuracy}"


def _load_run(run_id: str) -> LoadedModel:
    run = runs.get_run(run_id)
    info = runs.read_model_info(run.id)
    model_spec = RunSpec.from_dict({"name": run.name, "model": info["model"]}).model
    try:
        # best.pt holds every weight: an ImageNet base is rebuilt without its own (no download)
        base = transfer_base(model_spec.base, pretrained=False) if model_spec.kind == "transfer" else None
        module = build_model(model_spec, **info["build"], base=base)
        module.load_state_dict(runs.load_checkpoint(run.id, "best"))
    except Exception as err:  # a damaged file raises anything from OSError to UnpicklingError
        raise ModelUnavailable(
            f"The best checkpoint of run {run.id} ({run.name}) at {run.folder / 'best.pt'} cannot be loaded "
            f"({err}). Train the run again."
        ) from err
    preprocess = Preprocess.from_dict(info["preprocess"])
    return LoadedModel(
        name=run.model_name,
        module=module.eval(),
        input_size=tuple(info["input_size"]),
        class_names=tuple(info["class_names"]),
        preprocess=preprocess,
        summary=_run_summary(run, info),
        card=_run_card(run, info, preprocess),
    )


def _run_card(run: runs.Run, info: dict, preprocess: Preprocess) -> str:
    spec, settings = run.spec, run.spec.settings
    results = runs.read_results(run.id)
    best = f"{run.best_val_accuracy:.2%}" if run.best_val_accuracy is not None else "—"
    epoch = f" (epoch {results['epoch']})" if results is not None else ""
    steps = "\n".join(f"{i}. {step}" for i, step in enumerate(preprocess.steps(), 1))
    diagnosed = diagnostics.run_diagnostics(run.id)
    found = "\n".join(f"- {d.sentence} *{d.advice}*" for d in diagnosed)
    message = run.message.replace(diagnostics.summary(diagnosed), "").strip()  # the run's message repeats them
    lines = [
        f"### {run.name} (`{run.model_name}`)\n",
        f"- **Architecture:** {info['architecture']} ({info['parameters']:,} parameters, "
        f"{info['trainable_parameters']:,} trained)",
        f"- **Data:** {info['data'].get('description') or spec.data.kind} Classes: {', '.join(info['class_names'])}.",
        f"- **Training:** {settings.optimizer_text()}, learning rate {settings.lr:g} (cosine), "
        f"batch {settings.batch_size}, {settings.epochs} epochs, weight decay {settings.weight_decay:g}, "
        f"dropout {settings.dropout:g}, patience {settings.patience or 'off'}, seed {settings.seed}",
        f"- **Validation accuracy of the kept checkpoint:** {best}{epoch}",
        f"- **Run:** {run.status}{f' — {message}' if message else ''}",
        *([f"\n**What went wrong in training**\n\n{found}\n"] if found else []),
        f"\n**Preprocessing**\n\n{steps}\n",
    ]
    return "\n".join(lines)
