"""The recipes that train the shipped default models, reproducibly (``python -m cnn_explorer train-defaults``).

Each recipe names an architecture, its data and its settings; training writes three files to ``assets/models``:
the weights (``NAME.pt``, a state_dict), the metadata the zoo loads (``NAME.json``) and the model card
(``NAME.md``). The held-out sets are fixed by seed, so the tests recompute the reported accuracy from the weights.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch
from torch.utils.data import Dataset

from cnn_explorer import data
from cnn_explorer.architectures import ARCHITECTURES
from cnn_explorer.preprocess import Preprocess
from cnn_explorer.training import EpochResult, TrainConfig, evaluate, train
from cnn_explorer.zoo import ASSETS_MODELS

__all__ = ["RECIPES", "Recipe", "heldout_dataset", "train_default"]

COMMAND = "python -m cnn_explorer train-defaults"


@dataclass(frozen=True)
class Recipe:
    """How one default model is trained.

    Attributes:
        name: Registry name of the model.
        architecture: A key of ``ARCHITECTURES``.
        architecture_args: Keyword arguments of the architecture.
        class_names: Output names.
        preprocess: The model's preprocessing; mean/std filled in from the training data when
            ``normalize_from_data``.
        normalize_from_data: Measure the per-channel mean/std on the training images.
        config: Training settings.
        data_description: For the model card.
        train_data: (epoch, transform) → that epoch's training set.
        heldout_data: transform → the held-out test set (never used for training or model selection).
    """

    name: str
    architecture: str
    architecture_args: dict
    class_names: tuple[str, ...]
    preprocess: Preprocess
    normalize_from_data: bool
    config: TrainConfig
    data_description: str
    train_data: Callable[[int, Callable], Dataset]
    heldout_data: Callable[[Callable], Dataset]


_SHAPES_PER_EPOCH = 8000
_SHAPES_HELDOUT = 2000
_SHAPES_HELDOUT_SEED = 1  # training uses seeds 1000 + epoch, so no held-out image is ever trained on
_SHAPES_TRAIN_SEED = 1000


def _digits_train(epoch: int, transform: Callable) -> Dataset:
    split = data.digits_split()
    return data.ImageListDataset(split.train_images, split.train_labels, transform)


def _digits_heldout(transform: Callable) -> Dataset:
    split = data.digits_split()
    return data.ImageListDataset(split.test_images, split.test_labels, transform)


RECIPES: dict[str, Recipe] = {
    "tinyvgg-shapes": Recipe(
        name="tinyvgg-shapes",
        architecture="TinyVGG",
        architecture_args={"num_classes": len(data.SHAPE_CLASSES), "in_channels": 3},
        class_names=data.SHAPE_CLASSES,
        preprocess=Preprocess(resize=64, crop=64, per_image_standardization=True),
        normalize_from_data=False,
        config=TrainConfig(epochs=60, batch_size=64, lr=3e-3, optimizer="adam", seed=0),
        data_description=(
            f"Built-in synthetic shapes ({len(data.SHAPE_CLASSES)} classes: {', '.join(data.SHAPE_CLASSES)}), "
            "64×64 RGB, random colour, size, position, rotation, plain or gradient background and pixel noise. "
            f"{_SHAPES_PER_EPOCH} freshly drawn images every epoch (seed {_SHAPES_TRAIN_SEED} + epoch); "
            f"held-out test set: {_SHAPES_HELDOUT} images drawn with seed {_SHAPES_HELDOUT_SEED}."
        ),
        train_data=lambda epoch, transform: data.SyntheticShapes(
            _SHAPES_PER_EPOCH, seed=_SHAPES_TRAIN_SEED + epoch, transform=transform
        ),
        heldout_data=lambda transform: data.SyntheticShapes(
            _SHAPES_HELDOUT, seed=_SHAPES_HELDOUT_SEED, transform=transform
        ),
    ),
    "lenet5-digits": Recipe(
        name="lenet5-digits",
        architecture="LeNet5",
        architecture_args={"num_classes": len(data.DIGIT_CLASSES), "in_channels": 1},
        class_names=data.DIGIT_CLASSES,
        preprocess=Preprocess(resize=32, crop=32, grayscale=True, invert_light_background=True),
        normalize_from_data=True,
        config=TrainConfig(epochs=40, batch_size=32, lr=2e-3, optimizer="adam", seed=0),
        data_description=(
            "scikit-learn's handwritten digits (`sklearn.datasets.load_digits`: 1797 real 8×8 scans, 10 classes), "
            "light ink on black, upscaled to 32×32. Stratified split: 80 % training, 20 % held-out test (seed 0)."
        ),
        train_data=_digits_train,
        heldout_data=_digits_heldout,
    ),
}


def heldout_dataset(name: str, preprocess: Preprocess) -> Dataset:
    """The held-out test set of a default model, preprocessed with ``preprocess``."""
    return RECIPES[name].heldout_data(_to_input(preprocess))


def _log(message: str) -> None:
    print(message, flush=True)


def train_default(name: str, out_dir: Path = ASSETS_MODELS, log: Callable[[str], None] = _log) -> float:
    """Train one default model from its recipe and write its weights, metadata and card.

    Returns:
        The held-out accuracy.
    """
    recipe = RECIPES[name]
    torch.manual_seed(recipe.config.seed)
    preprocess = recipe.preprocess
    if recipe.normalize_from_data:
        preprocess = _with_data_statistics(preprocess, recipe.train_data)
    transform = _to_input(preprocess)
    module = ARCHITECTURES[recipe.architecture](**recipe.architecture_args)

    def report(result: EpochResult) -> None:
        log(
            f"{name} epoch {result.epoch:2d}/{recipe.config.epochs}: loss {result.train_loss:.4f} "
            f"train {result.train_accuracy:.2%} ({result.seconds:.1f} s)"
        )

    history = train(module, lambda epoch: recipe.train_data(epoch, transform), recipe.config, on_epoch=report)
    heldout = recipe.heldout_data(transform)
    test_loss, test_accuracy = evaluate(module, heldout)
    heldout_size = len(heldout)
    log(f"{name}: held-out accuracy {test_accuracy:.2%} on {heldout_size} images")
    _write(recipe, module, preprocess, history, test_accuracy, test_loss, heldout_size, out_dir)
    return test_accuracy


def _to_input(preprocess: Preprocess) -> Callable:
    return lambda img: preprocess(img)[0]


def _with_data_statistics(preprocess: Preprocess, train_data: Callable[[int, Callable], Dataset]) -> Preprocess:
    """``preprocess`` with the per-channel mean and std of the training images (after scaling to [0, 1])."""
    dataset = train_data(0, _to_input(replace(preprocess, mean=None, std=None)))
    stack = torch.stack([dataset[i][0] for i in range(len(dataset))])
    mean = tuple(round(v, 4) for v in stack.mean(dim=(0, 2, 3)).tolist())
    std = tuple(round(v, 4) for v in stack.std(dim=(0, 2, 3)).tolist())
    return replace(preprocess, mean=mean, std=std)


def _write(
    recipe: Recipe,
    module: torch.nn.Module,
    preprocess: Preprocess,
    history: list[EpochResult],
    test_accuracy: float,
    test_loss: float,
    heldout_size: int,
    out_dir: Path,
) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    # Weights and card first, metadata last: the zoo lists a model once its .json exists.
    weights = out_dir / f"{recipe.name}.pt"
    tmp = weights.with_suffix(".pt.tmp")
    torch.save(module.state_dict(), tmp)
    os.replace(tmp, weights)
    params = sum(p.numel() for p in module.parameters())
    summary = (
        f"{recipe.architecture} · {params:,} parameters · {len(recipe.class_names)} classes · "
        f"{test_accuracy:.1%} held-out accuracy"
    )
    meta = {
        "name": recipe.name,
        "architecture": recipe.architecture,
        "architecture_args": recipe.architecture_args,
        "class_names": list(recipe.class_names),
        "preprocess": preprocess.to_dict(),
        "summary": summary,
        "parameters": params,
        "heldout": {"accuracy": test_accuracy, "loss": test_loss, "images": heldout_size},
        "training": asdict(recipe.config),
        "data": recipe.data_description,
        "history": [asdict(result) for result in history],
        "command": f"{COMMAND} --only {recipe.name}",
        "torch": torch.__version__,
    }
    steps = "\n".join(f"{i}. {step}" for i, step in enumerate(preprocess.steps(), 1))
    settings = ", ".join(f"{k} {v}" for k, v in asdict(recipe.config).items())
    card = (
        f"### {recipe.name}\n\n"
        f"- **Architecture:** {recipe.architecture} ({params:,} parameters)\n"
        f"- **Data:** {recipe.data_description}\n"
        f"- **Training:** cross-entropy, {settings}, cosine learning-rate decay, last epoch kept "
        f"(no model selection on the test set); {sum(r.seconds for r in history) / 60:.1f} min on a CPU\n"
        f"- **Held-out accuracy:** {test_accuracy:.2%} on {heldout_size} images\n"
        f"- **Reproduce:** `{COMMAND} --only {recipe.name}`\n\n"
        f"**Preprocessing**\n\n{steps}\n"
    )
    _atomic_write(out_dir / f"{recipe.name}.md", card.encode())
    _atomic_write(out_dir / f"{recipe.name}.json", json.dumps(meta, indent=2).encode())


def _atomic_write(path: Path, content: bytes) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_bytes(content)
    os.replace(tmp, path)


_SAMPLE_DIGITS = 5  # held-out digits shipped as samples


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
}


def _generated_entry(key: str, title: str, model: str, dataset: str) -> dict:
    return {
        "key": key,
        "title": f"{title} (held-out)",
        "file": f"{key}.png",
        "source": f"Held-out sample of the {dataset} dataset, written by `python -m cnn_explorer make-samples`",
        "licence": _DATASET_LICENCES[dataset],
        "models": [model],
    }
