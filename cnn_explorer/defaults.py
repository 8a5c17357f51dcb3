"""The shipped default models: trained by the training page's own code path, then shipped into ``assets/models``.

``python -m cnn_explorer train --preset tinyvgg16-varied-shapes --epochs 20 --ship`` trains the preset exactly as the
training page or its worker would (recorded in the run store), then :func:`ship` copies the last epoch's weights
into the named architecture of the zoo (:class:`~cnn_explorer.architectures.TinyVGG`, whose layer names follow CNN
Explainer, here 16 maps wide), measures the held-out accuracy (and, for the shapes, the accuracy on every independent
renderer of :mod:`cnn_explorer.renderers`) and writes three files: the weights (``NAME.pt``, a state_dict), the
metadata the zoo loads (``NAME.json``) and the model card (``NAME.md``). ``train-defaults`` does that for both.
The held-out sets are fixed by seed and never trained on, so the tests recompute the reported accuracy.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import nn
from torch.utils.data import Dataset, Subset

from cnn_explorer import data, digits, renderers, runs
from cnn_explorer.architectures import ARCHITECTURES
from cnn_explorer.preprocess import Preprocess
from cnn_explorer.runspec import RunSpec, preset
from cnn_explorer.sources.builtin import ASSETS_MODELS, load_builtin
from cnn_explorer.training import evaluate

__all__ = [
    "DEFAULTS",
    "Default",
    "ShipError",
    "calibrate_ood",
    "copy_by_position",
    "default_for_preset",
    "heldout_dataset",
    "ship",
]

_SHAPES_HELDOUT = 2000
_PER_SOURCE_IMAGES = 500
_SHAPES_HELDOUT_SEED = 1  # training draws from seed 1000 on (data._SHAPES_TRAIN_SEED_OFFSET): never these


@dataclass(frozen=True)
class Default:
    """A shipped default model: which preset trains it, for how long, and what it is shipped as.

    Attributes:
        name: Registry name of the model.
        epochs: Epochs of the training run (the preset's own count is tuned for a quick run on the page).
        architecture: The key of ``ARCHITECTURES`` the weights are shipped as; it must be the preset's stack layer
            for layer (same modules, same shapes, in the same order), only with its own layer names.
        heldout: transform → the held-out test set (never trained on, never used to choose a checkpoint).
        heldout_description: For the model card.
        validation_is_heldout: The preset's validation set is the held-out test set (the digits): the
            out-of-distribution threshold is then set on half of it and its false alarms counted on the other half.
        per_source: (module, preprocess) → its accuracy on each independent source of images, for the card; None
            where the model has no such sources.
        preset: The preset that trains it, when it is not ``name``.
        architecture_args: Constructor arguments of the architecture besides the classes and input channels.
        architecture_note: For the model card: how the architecture differs from the paper's, and why.
        renderers: Also measure the accuracy on every independent renderer of :mod:`cnn_explorer.renderers` (the
            shapes drawn by code the training never saw), for the card.
        clutter_check: Its out-of-distribution detector also flags images that are not one ink on one paper
            (:func:`cnn_explorer.ood.with_clutter_check`), for models of drawn shapes.
        false_alarm_rate: The share of calibration images its detector's features flag.
    """

    name: str
    epochs: int
    architecture: str
    heldout: Callable[[Callable], Dataset]
    heldout_description: str
    validation_is_heldout: bool = False
    per_source: Callable[[nn.Module, Preprocess], list[digits.SourceAccuracy]] | None = None
    renderers: bool = False
    preset: str = ""
    architecture_args: dict = field(default_factory=dict)
    architecture_note: str = ""
    clutter_check: bool = False
    false_alarm_rate: float = 0.02  # ood.DEFAULT_FALSE_ALARM_RATE

    @property
    def preset_name(self) -> str:
        """The preset that trains it (its own name unless ``preset`` says otherwise)."""
        return self.preset or self.name


_RENDERER_IMAGES = 2000  # per renderer, through its classes: ±0.5 point (500 left ±1, too coarse at the 95 % goal)
_RENDERER_SEED = 0


def _digits_heldout(transform: Callable) -> Dataset:
    split = data.digits_split()
    return data.ImageListDataset(split.test_images, split.test_labels, transform)


DEFAULTS: dict[str, Default] = {
    # CNN Explainer's TinyVGG, 16 maps wide, on shapes drawn many ways, sketched and photographed (preset
    # tinyvgg16-photographed-shapes). The 10-map TinyVGG on plain shapes (preset tinyvgg-shapes) got 22 % of pen
    # sketches right; without photographs 87 % of photographed cut-outs were (a shadow read as a straight edge). Its
    # features put photos among its scribbles, so its detector also checks clutter (README, "Shapes drawn by other
    # programs").
    "tinyvgg-shapes": Default(
        name="tinyvgg-shapes",
        epochs=45,
        architecture="TinyVGG",
        heldout=lambda transform: data.SyntheticShapes(_SHAPES_HELDOUT, seed=_SHAPES_HELDOUT_SEED, transform=transform),
        heldout_description=f"{_SHAPES_HELDOUT} shapes drawn with seed {_SHAPES_HELDOUT_SEED}",
        renderers=True,
        preset="tinyvgg16-photographed-shapes",
        architecture_args={"channels": 16},
        architecture_note=(
            "16 feature maps per convolution instead of CNN Explainer's 10: the 10-map network underfits shapes "
            "drawn many ways (84.7 % validation accuracy after 30 epochs against 86.7 % for 16 maps after 20)"
        ),
        clutter_check=True,
        false_alarm_rate=0.005,  # clutter catches photos and digits; 2 % flagged a sixth of canvas outlines (README)
    ),
    "lenet5-digits": Default(
        name="lenet5-digits",
        epochs=15,
        architecture="LeNet5",
        heldout=_digits_heldout,
        heldout_description="the 20 % of the digits held out by `digits_split()` (stratified, seed 0): 360 images",
        validation_is_heldout=True,
        per_source=lambda module, preprocess: digits.accuracy_per_source(module, preprocess, n=_PER_SOURCE_IMAGES),
    ),
}

COMMAND = "python -m cnn_explorer train --preset {name} --epochs {epochs} --ship"


def default_for_preset(preset_name: str) -> Default | None:
    """The default model a preset trains, if any."""
    return next((d for d in DEFAULTS.values() if d.preset_name == preset_name), None)


class ShipError(ValueError):
    """A run that cannot be shipped as a default model; the message says why."""


def heldout_dataset(name: str, preprocess: Preprocess) -> Dataset:
    """The held-out test set of a default model, preprocessed with ``preprocess``."""
    return DEFAULTS[name].heldout(_to_input(preprocess))


def _to_input(preprocess: Preprocess) -> Callable:
    return lambda img: preprocess(img)[0]


def _log(message: str) -> None:
    print(message, flush=True)


def ship(run_id: str | int, name: str, out_dir: Path = ASSETS_MODELS, log: Callable[[str], None] = _log) -> float:
    """Ship a finished run of a default's preset as that default model: its last epoch's weights in the default's
    architecture, their held-out accuracy, and the model card.

    The last epoch, not the best: for the digits the run's validation set is the held-out test set, and a
    checkpoint chosen on it would overstate the held-out accuracy.

    Returns:
        The held-out accuracy.

    Raises:
        ShipError: ``name`` is not a default, the run did not finish, or its network is not the default's
            architecture layer for layer.
    """
    if name not in DEFAULTS:
        raise ShipError(f"{name!r} is not a default model; defaults: {', '.join(DEFAULTS)}.")
    default = DEFAULTS[name]
    run = runs.get_run(run_id)
    if run.status != "done":
        raise ShipError(f"Run {run.id} is {run.status}: only a finished run can be shipped.")
    if run.spec.data != preset(default.preset_name).data:
        raise ShipError(
            f"Run {run.id} was not trained on the {default.preset_name} preset's data: it cannot be shipped as {name}."
        )
    info = runs.read_model_info(run.id)
    build = info["build"]
    module = ARCHITECTURES[default.architecture](
        num_classes=build["num_classes"], in_channels=build["in_channels"], **default.architecture_args
    )
    copy_by_position(runs.load_checkpoint(run.id, "last"), module)
    preprocess = Preprocess.from_dict(info["preprocess"])
    heldout = default.heldout(_to_input(preprocess))
    test_loss, test_accuracy = evaluate(module, heldout)
    log(f"{name}: held-out accuracy {test_accuracy:.2%} on {len(heldout)} images (run {run.id})")
    sources = default.per_source(module.eval(), preprocess) if default.per_source else []
    for source in sources:
        measured = "not available here" if source.accuracy is None else f"{source.accuracy:.2%}"
        log(f"{name}: {source.title}: {measured}{' (held out of training)' if source.held_out else ''}")
    independent = renderer_accuracies(module, preprocess) if default.renderers else {}
    for renderer, accuracy in independent.items():
        log(f"{name}: {accuracy:.2%} on {_RENDERER_IMAGES} shapes drawn by the {renderer} renderer")
    history = runs.read_metrics(run.id)
    _write(
        default,
        run.spec,
        module,
        tuple(info["class_names"]),
        preprocess,
        history,
        test_accuracy,
        test_loss,
        len(heldout),
        out_dir,
        sources,
        independent,
    )
    calibrate_ood(name, out_dir, log)
    return test_accuracy


def renderer_accuracies(module: nn.Module, preprocess: Preprocess) -> dict[str, float]:
    """A shapes model's accuracy on each independent renderer, as the model card reports it (fixed seed)."""
    module.eval()
    return renderers.accuracy_by_renderer(module, preprocess, n=_RENDERER_IMAGES, seed=_RENDERER_SEED)


def _renderer_lines(independent: dict[str, float]) -> str:
    if not independent:
        return ""
    rows = "\n".join(
        f"| {name} | {renderers.RENDERERS[name].description} | "
        f"{'held out: never trained on in any form' if renderers.RENDERERS[name].held_out else 'another program'} | "
        f"{accuracy:.1%} |"
        for name, accuracy in independent.items()
    )
    return (
        f"\n**Shapes drawn by independent renderers** (`cnn_explorer.renderers`: code that shares nothing with the "
        f"training generator; {_RENDERER_IMAGES} images each, seed {_RENDERER_SEED}; outline renderers draw no "
        f"circle and draw a ring as a circle's outline)\n\n"
        f"| renderer | what it draws | relation to training | accuracy |\n|---|---|---|---|\n{rows}\n"
    )


def copy_by_position(state: dict[str, torch.Tensor], module: nn.Module) -> None:
    """Load ``state`` into ``module`` entry by entry in order, whatever the names, reshaping a linear layer's weight
    into the conv that replaces it (LeNet-5's C5: a 5×5 conv over a 5×5 map is a linear layer over its 400 inputs).

    Raises:
        ShipError: The two have different numbers of entries or an entry of a different size.
    """
    target = module.state_dict()
    if len(state) != len(target):
        raise ShipError(f"The run's network has {len(state)} weight tensors, {type(module).__name__} {len(target)}.")
    copied = {}
    for (source_name, value), (name, slot) in zip(state.items(), target.items(), strict=True):
        if value.numel() != slot.numel() or (value.shape != slot.shape and value.dim() == slot.dim()):
            raise ShipError(
                f"The run's {source_name} has shape {tuple(value.shape)}; {type(module).__name__}'s {name} has "
                f"{tuple(slot.shape)}."
            )
        copied[name] = value.reshape(slot.shape)
    module.load_state_dict(copied)


def _write(
    default: Default,
    spec: RunSpec,
    module: nn.Module,
    class_names: tuple[str, ...],
    preprocess: Preprocess,
    history: list[dict],
    test_accuracy: float,
    test_loss: float,
    heldout_size: int,
    out_dir: Path,
    sources: Sequence[digits.SourceAccuracy] = (),
    independent: dict[str, float] | None = None,
) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    # Weights and card first, metadata last: the zoo lists a model once its .json exists.
    weights = out_dir / f"{default.name}.pt"
    tmp = weights.with_suffix(".pt.tmp")
    torch.save(module.state_dict(), tmp)
    os.replace(tmp, weights)
    params = sum(p.numel() for p in module.parameters())
    command = COMMAND.format(name=default.preset_name, epochs=default.epochs)
    summary = (
        f"{default.architecture} · {params:,} parameters · {len(class_names)} classes · "
        f"{test_accuracy:.1%} held-out accuracy"
    )
    settings = spec.settings
    data_kind = data.TRAINING_DATASETS[spec.data.kind]
    data_text = (
        f"{data_kind.title}, {spec.data.size}×{spec.data.size}: "
        + (
            f"{spec.data.count:,} images drawn once (seed {data._SHAPES_TRAIN_SEED_OFFSET + settings.seed}"
            + spec.data.shape_styles_text()
            + "), "
            + f"{max(1, round(spec.data.count * spec.data.val_split)):,} validation images. "
            if spec.data.kind == "shapes"
            else f"{data_kind.description} "
        )
        + f"Held-out test set: {default.heldout_description}."
    )
    augmentation = [k for k, v in asdict(settings.augmentation).items() if v]
    training = (
        settings.optimizer_text()
        + (f" with weight decay {settings.weight_decay:g}" if settings.weight_decay else "")
        + f", peak learning rate {settings.lr} ("
        + (f"warm-up over {settings.warmup:.0%} of the steps, then " if settings.warmup else "")
        + f"cosine decay), batch {settings.batch_size}, {settings.epochs} epochs, {settings.precision}, "
        f"augmentation: {', '.join(augmentation) or 'none'}, seed {settings.seed}; last epoch kept"
    )
    meta = {
        "name": default.name,
        "architecture": default.architecture,
        "architecture_args": {
            "num_classes": len(class_names),
            "in_channels": preprocess.channels,
            **default.architecture_args,
        },
        "class_names": list(class_names),
        "preprocess": preprocess.to_dict(),
        "summary": summary,
        "parameters": params,
        "heldout": {"accuracy": test_accuracy, "loss": test_loss, "images": heldout_size},
        **({"renderers": independent} if independent else {}),
        "run": spec.to_dict(),
        "data": data_text,
        "history": history,
        **({"sources": [asdict(source) for source in sources]} if sources else {}),
        "command": command,
        "torch": torch.__version__,
    }
    steps = "\n".join(f"{i}. {step}" for i, step in enumerate(preprocess.steps(), 1))
    minutes = sum(record["seconds"] for record in history) / 60
    card = (
        f"### {default.name}\n\n"
        f"- **Architecture:** {default.architecture} ({params:,} parameters)"
        + (f"; {default.architecture_note}" if default.architecture_note else "")
        + "\n"
        f"- **Data:** {data_text}\n"
        f"- **Training:** cross-entropy, {training}; {minutes:.1f} min on a CPU\n"
        f"- **Held-out accuracy:** {test_accuracy:.2%} on {heldout_size} images\n"
        f"- **Reproduce:** `{command}`\n"
        + _renderer_lines(independent or {})
        + "\n"
        + _sources_table(sources)
        + f"**Preprocessing**\n\n{steps}\n"
    )
    _atomic_write(out_dir / f"{default.name}.md", card.encode())
    _atomic_write(out_dir / f"{default.name}.json", json.dumps(meta, indent=2).encode())


# ── the out-of-distribution detector of a shipped model ─────────────────────────────────────────────────────────

OOD_COMMAND = "python -m cnn_explorer calibrate-ood {name}"
_OOD_HEADING = "**Out-of-distribution check**"
_OTHER_MODEL_DATA = {"tinyvgg-shapes": "lenet5-digits", "lenet5-digits": "tinyvgg-shapes"}
_OTHER_SHAPES = 500  # held-out shapes the digit model's detector is measured on
_OOD_RENDERER_IMAGES = 200  # per independent renderer, for a shapes detector's false alarms


def calibrate_ood(name: str, out_dir: Path = ASSETS_MODELS, log: Callable[[str], None] = _log) -> dict:
    """Fit the out-of-distribution detector of the shipped weights ``out_dir/NAME.pt`` on the preset's own training
    images, set its threshold on held-out images to the default's false-alarm rate, measure it (and the energy score
    beside it) on images from elsewhere, and write ``NAME.ood.pt``, the figures in ``NAME.json`` and a card table.

    Returns:
        The figures written to the card (see :func:`_measure_ood`).
    """
    from cnn_explorer import ood

    default = DEFAULTS[name]
    model = load_builtin(out_dir / f"{name}.json")
    spec = preset(default.preset_name)
    prepared = data.prepare(spec.data, spec.settings.seed)
    data.load_all([prepared.train, prepared.val], processes=os.cpu_count() or 1)
    heldout = heldout_dataset(name, model.preprocess)
    if default.validation_is_heldout:
        calibration = Subset(heldout, range(0, len(heldout), 2))
        measured = Subset(heldout, range(1, len(heldout), 2))
        calibration_text = f"the even-numbered half of the held-out test set ({len(calibration)} images)"
        measured_text = f"the other half ({len(measured)} images)"
    else:
        calibration, measured = prepared.val, heldout
        calibration_text = f"the preset's {len(prepared.val):,} validation images"
        measured_text = f"{default.heldout_description}, never used to fit or calibrate"
    detector = ood.fit(
        model,
        prepared.train,
        calibration,
        trained_on=ood.trained_on(spec.data.kind, tuple(model.class_names)),
        calibration_text=calibration_text,
        false_alarm_rate=default.false_alarm_rate,
    )
    if default.clutter_check:
        drawings = calibration
        if spec.data.photographed:
            # Before the camera: its noise and shadows are clutter too, and the threshold rose above every photo.
            drawn = data.prepare(replace(spec.data, photographed=False), spec.settings.seed)
            data.load_all([drawn.val], processes=os.cpu_count() or 1)
            drawings = drawn.val
        detector = ood.with_clutter_check(detector, torch.stack([drawings[i][0] for i in range(len(drawings))]))
    ood.save(detector, out_dir / f"{name}{ood.FILE_SUFFIX}")
    figures = _measure_ood(model, detector, calibration, measured, measured_text)
    log(f"{name}: out-of-distribution threshold {detector.threshold:.2f}; " + "; ".join(
        f"{row['source']}: {row['mahalanobis']}/{row['count']} flagged (energy {row['energy']})"
        for row in figures["rows"]
    ))  # fmt: skip
    meta_path = out_dir / f"{name}.json"
    meta = json.loads(meta_path.read_text())
    meta["ood"] = figures
    card_path = out_dir / f"{name}.md"
    card = card_path.read_text().split(f"\n{_OOD_HEADING}")[0].rstrip("\n") + "\n"
    _atomic_write(card_path, (card + "\n" + ood_card_section(figures) + "\n").encode())
    _atomic_write(meta_path, json.dumps(meta, indent=2).encode())
    return figures


def _measure_ood(model: Any, detector: Any, calibration: Dataset, measured: Dataset, measured_text: str) -> dict:
    """How often the detector (and, for comparison, the energy score at the same false-alarm rate) flags each kind
    of image."""
    from cnn_explorer import ood, ood_check

    def inputs(images: list) -> torch.Tensor:
        return torch.cat([model.preprocess(img) for img in images])

    def batches(dataset: Dataset) -> torch.Tensor:
        return torch.stack([dataset[i][0] for i in range(len(dataset))])

    def scores(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """The detector's flags, the penultimate layer's distance alone, the energy score, and the clutter (None
        when the detector does not check it)."""
        with torch.no_grad():
            logits = torch.cat([model.module(part) for part in x.split(256)])
        chunks = [ood.features(model, part, detector.layers) for part in x.split(256)]
        feats = [torch.cat(layer) for layer in zip(*chunks, strict=True)]
        clutters = detector.clutters(x)
        flags = detector.flags(detector.scores(feats), clutters)
        return flags, detector.distances(feats)[:, -1], ood.energy_scores(logits), clutters

    _, calibration_penultimate, calibration_energy, _ = scores(batches(calibration))
    energy_threshold = ood.threshold_for(calibration_energy, detector.false_alarm_rate)
    penultimate_threshold = ood.threshold_for(calibration_penultimate, detector.false_alarm_rate)
    other = _OTHER_MODEL_DATA[model.name]
    if other == "lenet5-digits":
        other_images = data.digits_split().test_images
        other_text = f"the digit model's {len(other_images)} held-out digits"
    else:
        shapes = data.SyntheticShapes(_OTHER_SHAPES, seed=_SHAPES_HELDOUT_SEED)
        other_images = [shapes[i][0] for i in range(len(shapes))]
        other_text = f"{len(other_images)} of the shapes model's held-out shapes"
    drawn = [img for img, _ in ood_check.drawn_shapes()]
    sources = [
        (f"held-out {detector.trained_on}: {measured_text}", batches(measured), True),
        ("the sample photos (" + ", ".join(ood_check.SAMPLE_PHOTOS) + ")", inputs(ood_check.sample_photos()), False),
        (
            f"{len(ood_check.OTHER_PHOTOS)} photos and scans of other kinds (scikit-image's bundled images)",
            inputs(ood_check.other_photos()),
            False,
        ),
        (other_text, inputs(other_images), False),
        (f"{len(drawn)} shapes drawn flat by another renderer (PIL ImageDraw)", inputs(drawn), _is_shapes(model)),
    ]
    if _is_shapes(model):
        sources += [
            (
                f"{_OOD_RENDERER_IMAGES} shapes by the independent renderer {name!r} ({renderer.description})",
                inputs(renderers.images(name, _OOD_RENDERER_IMAGES, _RENDERER_SEED)[0]),
                True,
            )
            for name, renderer in renderers.RENDERERS.items()
        ]
    rows = []
    for source, x, in_distribution in sources:
        flags, penultimate, energy, clutters = scores(x)
        rows.append(
            {
                "source": source,
                "count": len(x),
                "in_distribution": in_distribution,
                "mahalanobis": int(flags.sum()),
                "penultimate": int((penultimate > penultimate_threshold).sum()),
                "energy": int((energy > energy_threshold).sum()),
                **({} if clutters is None else {"clutter": int((clutters > detector.clutter_threshold).sum())}),
            }
        )
    return {
        "method": "Mahalanobis distances to the nearest class mean (Lee et al. 2018)",
        "layers": detector.layers,
        "threshold": detector.threshold,
        "false_alarm_rate": detector.false_alarm_rate,
        "calibration": detector.calibration,
        "trained_on": detector.trained_on,
        "energy_threshold": energy_threshold,
        "clutter_threshold": detector.clutter_threshold,
        "rows": rows,
        "command": OOD_COMMAND.format(name=model.name),
    }


def _is_shapes(model: Any) -> bool:
    return model.name == "tinyvgg-shapes"


def ood_card_section(figures: dict) -> str:
    """The model card's out-of-distribution section: the method, threshold and a table of flagged shares."""

    def share(flagged: int, count: int) -> str:
        return f"{flagged} of {count} ({flagged / count:.1%})"

    layers = " and ".join(
        f"the input of `{name}` (penultimate features)" if reads == "input" else f"`{name}` (channel means, maxima)"
        for name, reads in figures["layers"]
    )
    clutter = figures.get("clutter_threshold")
    clutter_text = (
        ""
        if clutter is None
        else f" An image is also flagged when more than {clutter:.0%} of its pixels are clutter: pixels that two "
        "flat-shaded regions, ink and paper each one colour under smoothly varying light, miss by more than a quarter "
        "of their contrast (`cnn_explorer.clutter`; the threshold is 4× the 99th percentile of the calibration "
        "images, as drawn: before any is photographed, whose camera noise and shadows are clutter too). It reads the "
        "pixels, not the network: this network's features alone put photos among its sketched shapes."
    )
    lines = [
        _OOD_HEADING,
        "",
        f"An image unlike the training data gets a warning instead of a bare answer. Score: "
        f"{figures['method']}, one covariance shared by the classes (Ledoit-Wolf shrinkage), at {layers}, each "
        f"standardized on held-out images and summed. Threshold {figures['threshold']:.2f}, set so that "
        f"{_percent(figures['false_alarm_rate'])} of {figures['calibration']} are flagged.{clutter_text} For "
        "comparison, at the same false-alarm rate on the same images: the penultimate layer's distance alone, and the "
        "energy score (Liu et al. 2020).",
        "",
    ]
    kept = "kept: both layers" + ("" if clutter is None else " or clutter")
    if clutter is None:
        lines += [f"| images | flagged ({kept}) | penultimate layer alone | energy score |", "|---|---|---|---|"]
    else:
        lines += [
            f"| images | flagged ({kept}) | clutter alone | penultimate layer alone | energy score |",
            "|---|---|---|---|---|",
        ]
    for row in figures["rows"]:
        kind = "false alarms" if row["in_distribution"] else "detected"
        cells = [share(row["mahalanobis"], row["count"])]
        if clutter is not None:
            cells.append(share(row["clutter"], row["count"]))
        cells += [share(row["penultimate"], row["count"]), share(row["energy"], row["count"])]
        lines.append(f"| {row['source']} ({kind}) | " + " | ".join(cells) + " |")
    lines += ["", f"Reproduce: `{figures['command']}` (fits on the preset's training images; minutes on two cores)."]
    return "\n".join(lines)


def _percent(rate: float) -> str:
    """A rate as the card writes it: "2%", "0.5%"."""
    return f"{rate:.1%}".replace(".0%", "%")


def _sources_table(sources: Sequence[digits.SourceAccuracy]) -> str:
    """The card's table of accuracy per independent source, the held-out source's row marked; "" for none."""
    if not sources:
        return ""
    rows = []
    for source in sources:
        measured = "not available on this machine" if source.accuracy is None else f"{source.accuracy:.1%}"
        if source.held_out:
            rows.append(f"| **{source.title}** (held out: no training run sees this source) | **{measured}** |")
        else:
            rows.append(f"| {source.title} | {measured} |")
    n = max(source.images for source in sources)
    return (
        f"**Accuracy per source** ({n} digits each, drawn with seed {digits.EVAL_SEED}, which no training run "
        "draws with; the number that says how the model does on digits it was not made from is the held-out "
        "source's)\n\n| Source | Accuracy |\n| --- | --- |\n" + "\n".join(rows) + "\n\n"
    )


def _atomic_write(path: Path, content: bytes) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_bytes(content)
    os.replace(tmp, path)


_SAMPLE_DIGITS = 5  # held-out digits shipped as samples
# Shapes drawn by the independent renderers (never the training generator), one image each, at twice the model's size.
_RENDERER_SAMPLES = (
    ("pen", "star", "a pen sketch"),
    ("pen", "arrow", "a pen sketch"),
    ("flat", "circle", "a flat fill"),
    ("outline", "triangle", "an outline"),
    ("photo", "heart", "a photographed paper cutout"),
    ("chalk", "star", "chalk on a blackboard"),
)
_RENDERER_SAMPLE_SEED = 2
_RENDERER_SAMPLE_SIZE = 128


def write_samples(samples_dir: Path) -> list[dict]:
    """Write held-out samples of the built-in datasets (one shape per class, a few digits) as PNG files and
    merge their entries into ``samples.json`` (generated entries first, so each model's own samples lead).

    Returns:
        The generated manifest entries.
    """
    samples_dir.mkdir(parents=True, exist_ok=True)
    entries = []
    shapes = data.SyntheticShapes(len(data.SHAPE_CLASSES), seed=_SHAPES_HELDOUT_SEED)
    for index in range(len(shapes)):
        img, label = shapes[index]
        name = data.SHAPE_CLASSES[label]
        img.save(samples_dir / f"shape-{name}.png")
        entries.append(_generated_entry(f"shape-{name}", f"Shape: {name}", "tinyvgg-shapes", "synthetic shapes"))
    split = data.digits_split()
    first_of_label = {}
    for img, label in zip(split.test_images, split.test_labels, strict=True):
        first_of_label.setdefault(int(label), img)
    for label, img in sorted(first_of_label.items())[:_SAMPLE_DIGITS]:
        key = f"digit-{label}"
        img.save(samples_dir / f"{key}.png")
        entries.append(_generated_entry(key, f"Handwritten {label}", "lenet5-digits", "scikit-learn digits"))
    for key, title, source, label, light_ink in _DRAWN_DIGIT_SAMPLES:
        if not digits.SOURCES[source].available():
            continue
        _drawn_digit(source, label, light_ink).save(samples_dir / f"{key}.png")
        entries.append(_generated_entry(key, title, "lenet5-digits", source))
    for number, (renderer, shape, what) in enumerate(_RENDERER_SAMPLES):
        rng = np.random.default_rng([_RENDERER_SAMPLE_SEED, number])
        img = renderers.render(renderer, renderers.CLASSES.index(shape), rng, _RENDERER_SAMPLE_SIZE)
        key = f"{renderer}-{shape}"
        img.save(samples_dir / f"{key}.png")
        entries.append(_renderer_entry(key, renderer, f"Shape: {shape}, {what}"))
    manifest = samples_dir / "samples.json"
    generated = {entry["key"] for entry in entries}
    kept = [e for e in json.loads(manifest.read_text()) if e["key"] not in generated] if manifest.exists() else []
    _atomic_write(manifest, (json.dumps(entries + kept, indent=2, ensure_ascii=False) + "\n").encode())
    return entries


# The shapes are ours; scikit-learn's digits are UCI's "Optical Recognition of Handwritten Digits" (Alpaydin &
# Kaynak 1998), which UCI licenses CC BY 4.0.
_DATASET_LICENCES = {
    "synthetic shapes": "CC0 (drawn by CNN Explorer)",
    "scikit-learn digits": "CC BY 4.0 (UCI Optical Recognition of Handwritten Digits, Alpaydin & Kaynak 1998)",
    "system_fonts": "CC0 (typed by CNN Explorer in a Liberation font; the fonts' SIL Open Font License does not "
    "extend to what they render)",
    "strokes": "CC0 (drawn by CNN Explorer's pen-stroke renderer)",
}


# Typed and drawn digits: (key, title, source, digit, light ink on dark paper), drawn with the seed no training run
# draws with; the typed ones in the held-out fonts, dark on light and off-centre, as the failing case.
_DRAWN_DIGIT_SAMPLES = (
    ("typed-digit-7", "Typed 7, off-centre", "system_fonts", 7, False),
    ("typed-digit-4", "Typed 4", "system_fonts", 4, False),
    ("drawn-digit-3", "Drawn 3, as on a canvas", "strokes", 3, True),
    ("drawn-digit-7", "Drawn 7, dark pen on white", "strokes", 7, False),
)


def _drawn_digit(source: str, label: int, light_ink: bool) -> Image.Image:
    """The first image of ``label`` in the source's evaluation draw with the wanted polarity."""
    images, labels = digits.source_images(source, 200, seed=digits.EVAL_SEED)
    for img, shown in zip(images, labels, strict=True):
        pixels = np.asarray(img)
        border = np.concatenate([pixels[0], pixels[-1], pixels[:, 0], pixels[:, -1]])
        if shown == label and (float(border.mean()) < 128) == light_ink:
            return img
    raise ValueError(f"No {label} with that polarity in the first 200 images of {source}.")


def _renderer_entry(key: str, renderer: str, title: str) -> dict:
    return {
        "key": key,
        "title": title,
        "file": f"{key}.png",
        "source": f"Drawn by CNN Explorer's independent {renderer} renderer (`cnn_explorer.renderers`, never trained "
        "on), written by `python -m cnn_explorer make-samples`",
        "licence": "CC0 (drawn by CNN Explorer's independent renderer)",
        "models": ["tinyvgg-shapes"],
    }


def _generated_entry(key: str, title: str, model: str, dataset: str) -> dict:
    return {
        "key": key,
        "title": f"{title} (held-out)" if dataset in ("synthetic shapes", "scikit-learn digits") else title,
        "file": f"{key}.png",
        "source": (
            f"Held-out sample of the {dataset} dataset"
            if dataset in ("synthetic shapes", "scikit-learn digits")
            else f"{digits.SOURCES[dataset].title[:1].upper()}{digits.SOURCES[dataset].title[1:]}, never trained on"
        )
        + ", written by `python -m cnn_explorer make-samples`",
        "licence": _DATASET_LICENCES[dataset],
        "models": [model],
    }
