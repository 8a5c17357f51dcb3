"""Saying so when an image is unlike anything a model was trained on (out-of-distribution detection).

A softmax is no guide here: tinyvgg-shapes gives a photo of a cat "star · 100 %". The detector is the Mahalanobis
score of Lee et al. 2018 (https://arxiv.org/abs/1807.03888): at a layer, a mean per class and one covariance shared
by the classes, shrunk towards a multiple of the identity (Ledoit & Wolf 2004) so that it inverts on a few thousand
images; an image's distance is the one to its nearest class mean. Like Lee et al.'s feature ensemble it reads two
layers: the penultimate features (the input of the final ``nn.Linear``) and the channel means and maxima of the first
pooling layer's output (colour, edges and texture: what tells a blurred digit or a photo from a drawn shape when the
last layer cannot). Each distance is standardized by its mean and spread on held-out in-distribution images and the
two are summed; the threshold is the ``1 - false_alarm_rate`` quantile of that sum on those images (2 %).

Measured on the shipped models (see their cards and ``python -m cnn_explorer calibrate-ood``): the penultimate layer
alone flagged none of the 360 digits on tinyvgg-shapes; the energy score of Liu et al. 2020
(https://arxiv.org/abs/2010.03759, :func:`energy_scores`) flagged none of the five sample photos, failing where the
softmax fails (the cat's logits are as confident as a drawn star's).

Wide features (TinyVGG's 1,690) keep the covariance's leading directions exactly and the rest as one mean variance
(probabilistic PCA, Tipping & Bishop 1999), which keeps the detector file small. A detector lives next to its
weights: ``assets/models/NAME.ood.pt`` for the built-ins, ``ood.pt`` in a run's folder; ImageNet models and the
user's own models have no calibration set here, so they get no score, only a sentence on what they learnt from.
"""

from __future__ import annotations

import hashlib
import math
import os
import sys
import traceback
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.data import Subset

from cnn_explorer.clutter import clutter
from cnn_explorer.layers import capture_layers

__all__ = [
    "CLUTTER_MARGIN",
    "DEFAULT_FALSE_ALARM_RATE",
    "FILE_SUFFIX",
    "Detector",
    "Part",
    "Verdict",
    "calibrate",
    "dataset_features",
    "detector_for",
    "energy_scores",
    "feature_layers",
    "features",
    "fit",
    "fit_run",
    "load",
    "save",
    "threshold_for",
    "trained_on",
    "verdict",
    "with_clutter_check",
]

# 2 %, not 5 %: on the shipped models it detects as much (tinyvgg-shapes: all 5 sample photos, 18 of 20 other photos,
# 359 of 360 digits) and flags 2.0 % of held-out shapes instead of 5.8 % (one of the ten shape samples at 5 %).
DEFAULT_FALSE_ALARM_RATE = 0.02
FILE_SUFFIX = ".ood.pt"  # next to NAME.pt in assets/models
RUN_FILE = "ood.pt"  # in a run's folder
CLUTTER_MARGIN = 4.0  # the clutter check's threshold, in multiples of the calibration images' 99th percentile
_CLUTTER_QUANTILE = 0.99
_RANK = 16  # leading covariance directions kept exactly (the file stays under 200 KB for TinyVGG)
_BATCH = 256
_RUN_FIT_IMAGES = 2000  # a run's detector is fitted on at most this many training images (seconds, not minutes)
_POOLS = (nn.MaxPool2d, nn.AvgPool2d)

# What each kind of training data is, in the words of a warning ("… was trained on 10 kinds of drawn shapes").
_TRAINED_ON = {
    "shapes": "10 kinds of drawn shapes",
    "digits": "small scans of handwritten digits",
    "digits_mixed": "handwritten, typed and drawn digits",
    "mnist": "handwritten digits (MNIST)",
    "fashion_mnist": "grey photos of clothing (Fashion-MNIST)",
    "cifar10": "small photos of 10 kinds of animals and vehicles (CIFAR-10)",
}
_IMAGENET = "ImageNet-1K: photos of 1,000 kinds of everyday objects, animals and scenes"


@dataclass(frozen=True)
class Part:
    """The Mahalanobis distance at one layer.

    Attributes:
        layer: The module's dotted name.
        reads: ``"input"``: its input, flattened (the final linear layer's: the penultimate features);
            ``"output"``: each channel's mean and maximum of its output.
        means: One feature mean per class ``[K, D]``.
        basis: The shared covariance's leading eigenvectors ``[D, r]`` (all of them when ``r == D``).
        variances: The shrunk covariance's eigenvalues along ``basis`` ``[r]``.
        residual_variance: Its mean eigenvalue in the directions outside ``basis`` (unused when ``r == D``).
        center: The mean distance on the calibration images.
        scale: The standard deviation of those distances.
    """

    layer: str
    reads: str
    means: Tensor
    basis: Tensor
    variances: Tensor
    residual_variance: float
    center: float = 0.0
    scale: float = 1.0

    def distances(self, feats: Tensor) -> Tensor:
        """Distance of each feature row ``[N, D]`` to its nearest class mean under the shrunk covariance ``[N]``."""
        z = feats.to(torch.float64)[:, None, :] - self.means.to(torch.float64)[None]  # [N, K, D]
        basis = self.basis.to(torch.float64)
        along = z @ basis  # [N, K, r]
        squared = (along**2 / self.variances.to(torch.float64)).sum(-1)
        if basis.shape[1] < basis.shape[0]:
            rest = (z**2).sum(-1) - (along**2).sum(-1)
            squared = squared + rest.clamp_min(0) / self.residual_variance
        return squared.min(dim=1).values.sqrt()


@dataclass(frozen=True)
class Detector:
    """A fitted detector for one model's weights.

    Attributes:
        parts: The layers it reads (see :func:`feature_layers`).
        threshold: Scores above it are out of distribution.
        false_alarm_rate: The share of calibration images whose score is above ``threshold``.
        trained_on: The training data in a few words ("10 kinds of drawn shapes").
        calibration: The images the threshold was set on, in words.
        weights_digest: Digest of the model's parameters the detector was fitted to (a retrained model needs a new
            detector).
        clutter_threshold: Also flag an input whose :func:`~cnn_explorer.clutter.clutter` is above this (None: the
            check is off). Set by :func:`with_clutter_check` for models of drawn shapes, whose features alone let
            photos through.
    """

    parts: tuple[Part, ...]
    threshold: float
    false_alarm_rate: float
    trained_on: str
    calibration: str
    weights_digest: str
    clutter_threshold: float | None = None

    @property
    def layers(self) -> list[tuple[str, str]]:
        return [(part.layer, part.reads) for part in self.parts]

    def distances(self, feats: Sequence[Tensor]) -> Tensor:
        """Each part's distance ``[N, parts]`` for its features (as :func:`features` gives them)."""
        return torch.stack([part.distances(f) for part, f in zip(self.parts, feats, strict=True)], dim=1)

    def scores(self, feats: Sequence[Tensor]) -> Tensor:
        """The sum of the parts' standardized distances ``[N]``: the score compared with ``threshold``."""
        center = torch.tensor([part.center for part in self.parts], dtype=torch.float64)
        scale = torch.tensor([part.scale for part in self.parts], dtype=torch.float64)
        return ((self.distances(feats) - center) / scale).sum(dim=1)

    def clutters(self, x: Tensor) -> Tensor | None:
        """Each input's clutter ``[N]`` (of the preprocessed batch ``x``), or None when the check is off."""
        if self.clutter_threshold is None:
            return None
        return torch.tensor([clutter(image) for image in x], dtype=torch.float64)

    def flags(self, scores: Tensor, clutters: Tensor | None = None) -> Tensor:
        """Which inputs are out of distribution ``[N]``: a score above the threshold, or clutter above its own."""
        flagged = scores > self.threshold
        if self.clutter_threshold is not None and clutters is not None:
            flagged = flagged | (clutters > self.clutter_threshold)
        return flagged


@dataclass(frozen=True)
class Verdict:
    """Whether one input is like the model's training data.

    Attributes:
        score: The detector's score (standardized distances, summed); None when the model has no detector.
        threshold: The detector's threshold (None without one).
        out_of_distribution: True: unlike the training data; False: like it; None: not measured.
        message: One plain sentence naming the training data.
        clutter: The input's :func:`~cnn_explorer.clutter.clutter` when the detector checks it, else None.
    """

    score: float | None
    threshold: float | None
    out_of_distribution: bool | None
    message: str
    clutter: float | None = None


# ── features and scores ─────────────────────────────────────────────────────────────────────────────────────────


def feature_layers(module: nn.Module) -> list[tuple[str, str]]:
    """The layers a detector reads, found from the structure: the first pooling layer's output (when there is
    one) and the input of the last ``nn.Linear`` (the penultimate features).

    Raises:
        ValueError: The network has no linear layer.
    """
    linears = [name for name, m in module.named_modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise ValueError(f"{type(module).__name__} has no linear layer: there are no penultimate features to score.")
    pools = [name for name, m in module.named_modules() if isinstance(m, _POOLS)]
    return [(pool, "output") for pool in pools[:1]] + [(linears[-1], "input")]


def features(model: Any, x: Tensor, layers: Sequence[tuple[str, str]] | None = None) -> list[Tensor]:
    """Each layer's features ``[N, D]`` for a batch ``x`` (default :func:`feature_layers`), recorded in one forward
    pass with the layer page's hooks under ``model.lock``."""
    layers = list(layers or feature_layers(model.module))
    outputs, inputs = capture_layers(model, x, list(dict.fromkeys(name for name, _ in layers)))
    feats = []
    for name, reads in layers:
        value = (inputs if reads == "input" else outputs)[name].to(torch.float64)
        if reads == "output" and value.dim() == 4:
            value = torch.cat([value.mean(dim=(2, 3)), value.amax(dim=(2, 3))], dim=1)
        feats.append(value.flatten(1))
    return feats


def energy_scores(logits: Tensor, temperature: float = 1.0) -> Tensor:
    """The energy score of Liu et al. 2020, ``-T·logsumexp(logits / T)``: higher is less like the training data."""
    return -temperature * torch.logsumexp(logits.to(torch.float64) / temperature, dim=-1)


# ── fitting ─────────────────────────────────────────────────────────────────────────────────────────────────────


def _batches(dataset: Any, size: int = _BATCH) -> Iterable[tuple[Tensor, Tensor]]:
    """``(x, labels)`` batches of a dataset of ``(x, label)`` items (``LabelledImages.batch`` where it has one)."""
    n = len(dataset)
    for start in range(0, n, size):
        indices = list(range(start, min(start + size, n)))
        if hasattr(dataset, "batch"):
            yield dataset.batch(indices)
        else:
            items = [dataset[i] for i in indices]
            yield torch.stack([x for x, _ in items]), torch.as_tensor([int(y) for _, y in items])


def dataset_features(
    model: Any, dataset: Any, layers: Sequence[tuple[str, str]] | None = None
) -> tuple[list[Tensor], Tensor]:
    """Each layer's features ``[N, D]`` and the labels ``[N]`` of every item of ``dataset``."""
    layers = list(layers or feature_layers(model.module))
    parts: list[list[Tensor]] = [[] for _ in layers]
    labels = []
    for x, y in _batches(dataset):
        for collected, f in zip(parts, features(model, x, layers), strict=True):
            collected.append(f)
        labels.append(y)
    return [torch.cat(collected) for collected in parts], torch.cat(labels)


def _weights_digest(module: nn.Module) -> str:
    digest = hashlib.sha256()
    for name, tensor in module.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


def _fit_part(layer: str, reads: str, feats: Tensor, labels: Tensor, classes: int, rank: int) -> Part:
    """Class means and the shrunk shared covariance of one layer's features."""
    from sklearn.covariance import ledoit_wolf_shrinkage  # at call time: fitting only

    means = torch.stack([feats[labels == c].mean(0) for c in range(classes)])
    centred = feats - means[labels]
    covariance = centred.T @ centred / len(centred)
    shrinkage = float(ledoit_wolf_shrinkage(centred.numpy(), assume_centered=True))
    mu = float(torch.trace(covariance)) / covariance.shape[0]
    eigenvalues, eigenvectors = torch.linalg.eigh(covariance)  # ascending
    shrunk = (1 - shrinkage) * eigenvalues.clamp_min(0) + shrinkage * mu
    r = min(rank, covariance.shape[0])
    return Part(
        layer=layer,
        reads=reads,
        means=means.to(torch.float32),
        basis=eigenvectors[:, -r:].flip(1).to(torch.float32).contiguous(),
        variances=shrunk[-r:].flip(0).to(torch.float32),
        residual_variance=float(shrunk[:-r].mean()) if r < covariance.shape[0] else 1.0,
    )


def fit(
    model: Any,
    train: Any,
    calibration: Any,
    *,
    trained_on: str,
    calibration_text: str,
    false_alarm_rate: float = DEFAULT_FALSE_ALARM_RATE,
    rank: int = _RANK,
) -> Detector:
    """Fit class means and the shrunk shared covariance of each layer on ``train``, then standardize the distances
    and set the threshold on ``calibration``.

    Args:
        model: A ``LoadedModel`` (or anything with ``module`` and ``lock``).
        train: ``(x [C, H, W], label)`` items the model was trained on (without augmentation).
        calibration: Held-out items like them: the threshold flags ``false_alarm_rate`` of these.
        trained_on: The training data in a few words, for the warning.
        calibration_text: The calibration images in words, for the card.
        false_alarm_rate: The share of calibration images flagged.
        rank: Leading covariance directions kept exactly; the rest share their mean variance.

    Raises:
        ValueError: A class without training images, or a rate outside (0, 1).
    """
    if not 0.0 < false_alarm_rate < 1.0:
        raise ValueError(f"The false-alarm rate must be between 0 and 1, got {false_alarm_rate}.")
    layers = feature_layers(model.module)
    feats, labels = dataset_features(model, train, layers)
    classes = int(model.module.get_submodule(layers[-1][0]).out_features)
    counts = torch.bincount(labels, minlength=classes)
    if (counts == 0).any():
        missing = [i for i in range(classes) if counts[i] == 0]
        raise ValueError(f"Classes {missing} have no training images: their means cannot be fitted.")
    parts = tuple(
        _fit_part(name, reads, f, labels, classes, rank) for (name, reads), f in zip(layers, feats, strict=True)
    )
    detector = Detector(
        parts=parts,
        threshold=math.inf,
        false_alarm_rate=false_alarm_rate,
        trained_on=trained_on,
        calibration=calibration_text,
        weights_digest=_weights_digest(model.module),
    )
    return calibrate(detector, dataset_features(model, calibration, layers)[0])


def calibrate(detector: Detector, feats: Sequence[Tensor]) -> Detector:
    """``detector`` with each distance standardized on the calibration images' features and the threshold that
    flags at most ``detector.false_alarm_rate`` of them."""
    distances = detector.distances(feats)
    parts = tuple(
        replace(part, center=float(d.mean()), scale=max(float(d.std()), 1e-12))
        for part, d in zip(detector.parts, distances.T, strict=True)
    )
    standardized = replace(detector, parts=parts)
    return replace(standardized, threshold=threshold_for(standardized.scores(feats), detector.false_alarm_rate))


def with_clutter_check(detector: Detector, calibration: Tensor) -> Detector:
    """``detector`` that also flags inputs more cluttered than :data:`CLUTTER_MARGIN` times the clutter of the 99th
    percentile of the preprocessed calibration inputs ``calibration`` ``[N, C, H, W]`` (see
    :mod:`cnn_explorer.clutter`).

    Drawn shapes in every style score about 0.04 at that percentile, photos 0.3–0.65: a margin of 4 leaves room for
    drawings less tidy than the calibration images. The percentile, not the maximum: one scribble in a few thousand
    is as cluttered as a photo.
    """
    values = torch.tensor([clutter(image) for image in calibration], dtype=torch.float64)
    return replace(detector, clutter_threshold=CLUTTER_MARGIN * float(torch.quantile(values, _CLUTTER_QUANTILE)))


def threshold_for(scores: Tensor, false_alarm_rate: float) -> float:
    """The smallest of ``scores`` with at most ``false_alarm_rate`` of them above it."""
    values = np.sort(scores.to(torch.float64).numpy())
    allowed = math.floor(false_alarm_rate * len(values))  # images that may lie above the threshold
    return float(values[len(values) - 1 - allowed])


# ── files ───────────────────────────────────────────────────────────────────────────────────────────────────────


def save(detector: Detector, path: Path) -> None:
    """Write ``detector`` atomically as plain tensors and strings (loadable with ``weights_only=True``)."""
    state = asdict(detector)
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def load(path: Path) -> Detector:
    """Read a detector written by :func:`save` (``torch.load(..., weights_only=True)``: no code runs)."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    parts = tuple(Part(**part) for part in state.pop("parts"))
    return Detector(parts=parts, **state)


# ── which detector a model has ──────────────────────────────────────────────────────────────────────────────────


def _source(model: Any) -> tuple[str, Path | None]:
    """The model's family in the zoo and where its detector would be (None: nowhere)."""
    from cnn_explorer import runs, zoo  # at call time: zoo builds on the modules this one uses
    from cnn_explorer.sources.builtin import ASSETS_MODELS

    name = model.name
    try:
        family = zoo.model_entry(name).family
    except KeyError:
        family = "unknown"
    if family == "built-in":
        return family, ASSETS_MODELS / f"{name}{FILE_SUFFIX}"
    if family == "trained run":
        run_id = name.removeprefix("run-")
        try:
            folder = runs.get_run(run_id).folder
        except (runs.RunNotFound, ValueError, OSError):
            return family, None
        return family, folder / RUN_FILE
    return family, None


def detector_for(model: Any) -> Detector | None:
    """The detector fitted to this model's weights, or None (ImageNet and own models, a run fitted before detectors
    existed, or weights that changed since the detector was fitted)."""
    _, path = _source(model)
    if path is None or not path.exists():
        return None
    try:
        detector = load(path)
    except Exception:  # a damaged file: no score rather than a broken page
        return None
    if detector.weights_digest != _weights_digest(model.module):
        return None
    return detector


def verdict(model: Any, x: Tensor, detector: Detector | None = None) -> Verdict:
    """Whether input ``x`` ``[1, C, H, W]`` is like ``model``'s training data, with a sentence that says so.

    Args:
        model: The ``LoadedModel``.
        x: The preprocessed input.
        detector: The model's detector (default :func:`detector_for`).
    """
    detector = detector or detector_for(model)
    if detector is None:
        family, _ = _source(model)
        if family == "ImageNet":
            return Verdict(
                None,
                None,
                None,
                f"{model.name} was trained on {_IMAGENET}; no out-of-distribution score is computed for it "
                "(there is no calibration set here).",
            )
        return Verdict(
            None,
            None,
            None,
            f"{model.name} has no out-of-distribution check here, so nothing tells whether this image is like the "
            "data it was trained on.",
        )
    score = float(detector.scores(features(model, x, detector.layers))[0])
    cluttered = detector.clutters(x[:1])
    amount = None if cluttered is None else float(cluttered[0])
    far = score > detector.threshold
    busy = amount is not None and amount > detector.clutter_threshold
    out = far or busy
    if busy and not far:
        message = (
            f"{model.name} was trained on {detector.trained_on}; this image looks unlike them, so its answer means "
            f"little here: it is not one ink on one paper ({amount:.0%} of its pixels fit neither, where a drawing "
            f"stays under {detector.clutter_threshold:.0%})."
        )
    elif out:
        message = (
            f"{model.name} was trained on {detector.trained_on}; this image looks unlike them, so its answer means "
            f"little here (score {score:.1f}, above the threshold {detector.threshold:.1f})."
        )
    else:
        message = (
            f"This image looks like the {detector.trained_on} {model.name} was trained on (score {score:.1f}, "
            f"threshold {detector.threshold:.1f})."
        )
    return Verdict(score, detector.threshold, out, message, amount)


def trained_on(kind: str, class_names: tuple[str, ...]) -> str:
    """A run's training data in the words of a warning, from its dataset kind (``DataSpec.kind``)."""
    if kind in _TRAINED_ON:
        return _TRAINED_ON[kind]
    shown = ", ".join(class_names[:4]) + (" …" if len(class_names) > 4 else "")
    return f"your own images of {len(class_names)} classes ({shown})"


def fit_run(run_id: str, model: Any, prepared: Any, kind: str, log: Callable[[str], None] | None = None) -> None:
    """Fit and save a finished run's detector: means and covariance on its training images (without augmentation;
    at most ``_RUN_FIT_IMAGES`` of them), threshold on its validation images. Best effort: a failure is logged and
    leaves the run without a score."""
    from cnn_explorer import data, runs  # at call time: runs and data are heavy and import this module's users

    try:
        train = prepared.train
        plain = data.LabelledImages(train.images, train.labels, train.classes, train.preprocess, cache=train.cache)
        if len(plain) > _RUN_FIT_IMAGES:  # evenly spread, so every class keeps its share
            plain = Subset(plain, np.linspace(0, len(plain) - 1, _RUN_FIT_IMAGES).round().astype(int).tolist())
        detector = fit(
            model,
            plain,
            prepared.val,
            trained_on=trained_on(kind, tuple(prepared.class_names)),
            calibration_text=f"the run's {len(prepared.val):,} validation images",
        )
        save(detector, runs.run_dir(run_id) / RUN_FILE)
        if log is not None:
            log(
                f"run {run_id}: out-of-distribution threshold {detector.threshold:.2f} "
                f"({detector.false_alarm_rate:.0%} of the validation images flagged)"
            )
    except Exception:  # the run is trained; a missing detector only leaves its images unscored
        traceback.print_exc(file=sys.stderr)
