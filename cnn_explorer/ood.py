"""Saying so when an image is unlike anything a model was trained on (out-of-distribution detection).

A softmax is no guide here: tinyvgg-shapes gives a photo of a cat "star · 100 %". The detector is the Mahalanobis
distance of Lee et al. 2018 (https://arxiv.org/abs/1807.03888) on the penultimate features, the input of the final
``nn.Linear``: a mean per class and one covariance shared by the classes, shrunk towards a multiple of the identity
(Ledoit & Wolf 2004) so that it inverts on a few thousand images. The score is the distance to the nearest class
mean; its threshold is the ``1 - false_alarm_rate`` quantile of the scores of held-out in-distribution images, so
that rate of images like the training data is flagged by mistake.

The energy score of Liu et al. 2020 (https://arxiv.org/abs/2010.03759, :func:`energy_scores`) was measured beside it
and fails where the softmax fails: the cat's logits are as confident as a drawn star's (see the model cards).

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
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.data import Subset

from cnn_explorer.layers import capture_inputs

__all__ = [
    "DEFAULT_FALSE_ALARM_RATE",
    "FILE_SUFFIX",
    "Detector",
    "Verdict",
    "detector_for",
    "energy_scores",
    "feature_layer",
    "features",
    "fit",
    "fit_run",
    "load",
    "mahalanobis_scores",
    "save",
    "threshold_for",
    "trained_on",
    "verdict",
]

DEFAULT_FALSE_ALARM_RATE = 0.05
FILE_SUFFIX = ".ood.pt"  # next to NAME.pt in assets/models
RUN_FILE = "ood.pt"  # in a run's folder
_RANK = 16  # leading covariance directions kept exactly (the file stays under 200 KB for TinyVGG)
_BATCH = 256
_RUN_FIT_IMAGES = 2000  # a run's detector is fitted on at most this many training images (seconds, not minutes)

# What each kind of training data is, in the words of a warning ("… was trained on 10 kinds of drawn shapes").
_TRAINED_ON = {
    "shapes": "10 kinds of drawn shapes",
    "digits": "small scans of handwritten digits",
    "mnist": "handwritten digits (MNIST)",
    "fashion_mnist": "grey photos of clothing (Fashion-MNIST)",
    "cifar10": "small photos of 10 kinds of animals and vehicles (CIFAR-10)",
}
_IMAGENET = "ImageNet-1K: photos of 1,000 kinds of everyday objects, animals and scenes"


@dataclass(frozen=True)
class Detector:
    """A fitted Mahalanobis detector for one model's weights.

    Attributes:
        layer: The final linear layer, whose input is the feature vector.
        means: One feature mean per class ``[K, D]``.
        basis: The shared covariance's leading eigenvectors ``[D, r]`` (all of them when ``r == D``).
        variances: The shrunk covariance's eigenvalues along ``basis`` ``[r]``.
        residual_variance: Its mean eigenvalue in the directions outside ``basis`` (unused when ``r == D``).
        threshold: Distances above it are out of distribution.
        false_alarm_rate: The share of calibration images whose distance is above ``threshold``.
        trained_on: The training data in a few words ("10 kinds of drawn shapes").
        calibration: The images the threshold was set on, in words.
        weights_digest: Digest of the model's parameters the detector was fitted to (a retrained model needs a new
            detector).
    """

    layer: str
    means: Tensor
    basis: Tensor
    variances: Tensor
    residual_variance: float
    threshold: float
    false_alarm_rate: float
    trained_on: str
    calibration: str
    weights_digest: str

    def scores(self, feats: Tensor) -> Tensor:
        """Mahalanobis distance of each feature row ``[N, D]`` to its nearest class mean ``[N]``."""
        return mahalanobis_scores(self, feats)


@dataclass(frozen=True)
class Verdict:
    """Whether one input is like the model's training data.

    Attributes:
        score: The Mahalanobis distance to the nearest class mean; None when the model has no detector.
        threshold: The detector's threshold (None without one).
        out_of_distribution: True: unlike the training data; False: like it; None: not measured.
        message: One plain sentence naming the training data.
    """

    score: float | None
    threshold: float | None
    out_of_distribution: bool | None
    message: str


# ── features and scores ─────────────────────────────────────────────────────────────────────────────────────────


def feature_layer(module: nn.Module) -> str:
    """The dotted name of the last ``nn.Linear`` of ``module`` (its input: the penultimate features).

    Raises:
        ValueError: The network has no linear layer.
    """
    names = [name for name, m in module.named_modules() if isinstance(m, nn.Linear)]
    if not names:
        raise ValueError(f"{type(module).__name__} has no linear layer: there are no penultimate features to score.")
    return names[-1]


def features(model: Any, x: Tensor, layer: str | None = None) -> Tensor:
    """The penultimate features ``[N, D]`` of a batch ``x``: the input of ``layer`` (default the last linear one),
    captured with the layer page's hooks under ``model.lock``."""
    name = layer or feature_layer(model.module)
    return capture_inputs(model, x, [name])[name].flatten(1).to(torch.float64)


def mahalanobis_scores(detector: Detector, feats: Tensor) -> Tensor:
    """Distance of each row of ``feats`` ``[N, D]`` to its nearest class mean under the shrunk shared covariance."""
    z = feats.to(torch.float64)[:, None, :] - detector.means.to(torch.float64)[None]  # [N, K, D]
    basis = detector.basis.to(torch.float64)
    along = z @ basis  # [N, K, r]
    squared = (along**2 / detector.variances.to(torch.float64)).sum(-1)
    if basis.shape[1] < basis.shape[0]:
        rest = (z**2).sum(-1) - (along**2).sum(-1)
        squared = squared + rest.clamp_min(0) / detector.residual_variance
    return squared.min(dim=1).values.sqrt()


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


def dataset_features(model: Any, dataset: Any, layer: str | None = None) -> tuple[Tensor, Tensor]:
    """Features ``[N, D]`` and labels ``[N]`` of every item of ``dataset``."""
    feats, labels = [], []
    for x, y in _batches(dataset):
        feats.append(features(model, x, layer))
        labels.append(y)
    return torch.cat(feats), torch.cat(labels)


def _ledoit_wolf(z: Tensor) -> tuple[Tensor, float]:
    """The sample covariance of centred rows ``z`` and the Ledoit-Wolf shrinkage intensity towards ``mu·I``."""
    from sklearn.covariance import ledoit_wolf_shrinkage  # at call time: fitting only

    n = z.shape[0]
    covariance = z.T @ z / n
    shrinkage = float(ledoit_wolf_shrinkage(z.numpy(), assume_centered=True))
    return covariance, shrinkage


def _weights_digest(module: nn.Module) -> str:
    digest = hashlib.sha256()
    for name, tensor in module.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


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
    """Fit class means and the shrunk shared covariance on ``train``, then set the threshold on ``calibration``.

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
    layer = feature_layer(model.module)
    feats, labels = dataset_features(model, train, layer)
    classes = int(model.module.get_submodule(layer).out_features)
    counts = torch.bincount(labels, minlength=classes)
    if (counts == 0).any():
        missing = [i for i in range(classes) if counts[i] == 0]
        raise ValueError(f"Classes {missing} have no training images: their means cannot be fitted.")
    means = torch.stack([feats[labels == c].mean(0) for c in range(classes)])
    centred = feats - means[labels]
    covariance, shrinkage = _ledoit_wolf(centred)
    mu = float(torch.trace(covariance)) / covariance.shape[0]
    eigenvalues, eigenvectors = torch.linalg.eigh(covariance)  # ascending
    shrunk = (1 - shrinkage) * eigenvalues.clamp_min(0) + shrinkage * mu
    r = min(rank, covariance.shape[0])
    basis, variances = eigenvectors[:, -r:].flip(1), shrunk[-r:].flip(0)
    residual = float(shrunk[:-r].mean()) if r < covariance.shape[0] else 1.0
    detector = Detector(
        layer=layer,
        means=means.to(torch.float32),
        basis=basis.to(torch.float32).contiguous(),
        variances=variances.to(torch.float32),
        residual_variance=residual,
        threshold=math.inf,
        false_alarm_rate=false_alarm_rate,
        trained_on=trained_on,
        calibration=calibration_text,
        weights_digest=_weights_digest(model.module),
    )
    return calibrate(detector, mahalanobis_scores(detector, dataset_features(model, calibration, layer)[0]))


def calibrate(detector: Detector, scores: Tensor) -> Detector:
    """``detector`` with the threshold that flags at most ``detector.false_alarm_rate`` of ``scores`` (in-distribution
    images): the smallest score value with at most that share above it."""
    return _replace(detector, threshold=threshold_for(scores, detector.false_alarm_rate))


def threshold_for(scores: Tensor, false_alarm_rate: float) -> float:
    """The smallest of ``scores`` with at most ``false_alarm_rate`` of them above it."""
    values = np.sort(scores.to(torch.float64).numpy())
    allowed = math.floor(false_alarm_rate * len(values))  # images that may lie above the threshold
    return float(values[len(values) - 1 - allowed])


def _replace(detector: Detector, **changes: Any) -> Detector:
    from dataclasses import replace

    return replace(detector, **changes)


# ── files ───────────────────────────────────────────────────────────────────────────────────────────────────────


def save(detector: Detector, path: Path) -> None:
    """Write ``detector`` atomically as plain tensors and strings (loadable with ``weights_only=True``)."""
    state = asdict(detector)
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def load(path: Path) -> Detector:
    """Read a detector written by :func:`save` (``torch.load(..., weights_only=True)``: no code runs)."""
    return Detector(**torch.load(path, map_location="cpu", weights_only=True))


# ── which detector a model has ──────────────────────────────────────────────────────────────────────────────────


def _source(model: Any) -> tuple[str, Path | None, str]:
    """(family, detector path or None, what the model was trained on when it has no detector)."""
    from cnn_explorer import runs, zoo  # at call time: zoo builds on the modules this one uses

    name = model.name
    try:
        family = zoo.model_entry(name).family
    except KeyError:
        family = "unknown"
    if family == "built-in":
        return family, zoo.ASSETS_MODELS / f"{name}{FILE_SUFFIX}", "its training data"
    if family == "ImageNet":
        return family, None, _IMAGENET
    if family == "trained run":
        run_id = name.removeprefix("run-")
        try:
            folder = runs.get_run(run_id).folder
        except (runs.RunNotFound, ValueError, OSError):
            return family, None, "its training data"
        return family, folder / RUN_FILE, "its training data"
    return family, None, "data this app does not know"


def detector_for(model: Any) -> Detector | None:
    """The detector fitted to this model's weights, or None (ImageNet and own models, a run fitted before detectors
    existed, or weights that changed since the detector was fitted)."""
    _, path, _ = _source(model)
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
        family, _, data_text = _source(model)
        if family == "ImageNet":
            return Verdict(
                None,
                None,
                None,
                f"{model.name} was trained on {data_text}; no out-of-distribution score "
                "is computed for it (there is no calibration set here).",
            )
        return Verdict(
            None,
            None,
            None,
            f"{model.name} was trained on {data_text}; there is no out-of-distribution "
            "score for it here, so nothing tells whether this image is like its training data.",
        )
    score = float(mahalanobis_scores(detector, features(model, x, detector.layer))[0])
    out = score > detector.threshold
    if out:
        message = (
            f"{model.name} was trained on {detector.trained_on}; this image looks unlike them, so its answer means "
            f"little here (distance {score:.1f} to the nearest class, above the threshold {detector.threshold:.1f})."
        )
    else:
        message = (
            f"This image looks like the {detector.trained_on} {model.name} was trained on (distance {score:.1f}, "
            f"threshold {detector.threshold:.1f})."
        )
    return Verdict(score, detector.threshold, out, message)


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
            log(f"run {run_id}: out-of-distribution threshold {detector.threshold:.2f} (5 % of validation flagged)")
    except Exception:  # the run is trained; a missing detector only leaves its images unscored
        traceback.print_exc(file=sys.stderr)
