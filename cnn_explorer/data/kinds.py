"""The training dataset kinds: :class:`DatasetKind` and the registry :data:`TRAINING_DATASETS` (``DataSpec.kind``).

Each kind is one entry: its title and description for the training page, how its images are stored, how a model
trained on it preprocesses a user's image, and its loader (from :mod:`~cnn_explorer.data.builtin`,
:mod:`~cnn_explorer.data.folders` or :mod:`~cnn_explorer.data.torchvision_sets`). Not to be confused with
the reference image sets that feature visualization ranks images from.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from cnn_explorer.data.builtin import _load_digits, _load_digits_mixed, _load_shapes
from cnn_explorer.data.folders import _load_folder
from cnn_explorer.data.shapes import SHAPE_CLASSES
from cnn_explorer.data.splits import _Split
from cnn_explorer.data.torchvision_sets import _load_cifar10, _load_mnist_like
from cnn_explorer.progress import ByteProgress
from cnn_explorer.runspec import DataSpec

__all__ = ["TRAINING_DATASETS", "DatasetKind"]


@dataclass(frozen=True)
class DatasetKind:
    """One kind of training data (``DataSpec.kind``), as the training page lists it.

    Attributes:
        key: The ``DataSpec.kind``.
        title: Name for pickers.
        description: What the images are, in one sentence.
        channels: Channels of the images as stored (1: grey, so ``DataSpec.grayscale=True`` suits it).
        size: Side of the stored images; None where it varies (folders) or is chosen (shapes).
        source: ``"built-in"``, ``"folder"`` (``DataSpec.path``, e.g. from :func:`extract_zip`) or ``"download"``
            (torchvision; read from ``DataSpec.path`` or :func:`datasets_home` when there).
        invert_light_background: The images are light ink on a dark background; the model's preprocessing inverts
            a user's dark-on-white drawing to match.
        per_image_standardization: Standardize each image by its own mean and spread (as the shipped shapes model);
            otherwise normalize with the mean and std measured on the training images.
        fit_ink: Single glyphs: the preprocessing crops to the ink and centres it (see ``Preprocess.fit_ink``).
        load: ``(spec, seed, progress) → _Split``.
    """

    key: str
    title: str
    description: str
    channels: int
    size: int | None
    source: str
    invert_light_background: bool = False
    per_image_standardization: bool = False
    fit_ink: bool = False
    load: Callable[[DataSpec, int, ByteProgress | None], _Split] = field(default=None, repr=False, compare=False)


TRAINING_DATASETS: dict[str, DatasetKind] = {
    kind.key: kind
    for kind in (
        DatasetKind(
            "shapes",
            "Synthetic shapes",
            f"{len(SHAPE_CLASSES)} kinds of filled shapes on random backgrounds, drawn from the run's seed (built in).",
            channels=3,
            size=None,
            source="built-in",
            per_image_standardization=True,
            load=_load_shapes,
        ),
        DatasetKind(
            "digits",
            "Handwritten digits (scikit-learn)",
            "1797 scans of handwritten digits, 8×8 grey, light ink on black (built in).",
            channels=1,
            size=8,
            source="built-in",
            invert_light_background=True,
            load=_load_digits,
        ),
        DatasetKind(
            "digits_mixed",
            "Digits: handwritten, typed and drawn",
            "scikit-learn's 1797 handwritten digits, augmented, with digits typed in fonts and drawn with a pen, "
            "every digit cropped to its ink and centred (built in).",
            channels=1,
            size=None,
            source="built-in",
            invert_light_background=True,
            fit_ink=True,
            load=_load_digits_mixed,
        ),
        DatasetKind(
            "folder",
            "Your images",
            "A folder (or uploaded zip) with one subfolder of images per class.",
            channels=3,
            size=None,
            source="folder",
            load=_load_folder,
        ),
        DatasetKind(
            "mnist",
            "MNIST",
            "60,000 handwritten digits, 28×28 grey, light ink on black (torchvision download, 12 MB).",
            channels=1,
            size=28,
            source="download",
            invert_light_background=True,
            load=_load_mnist_like("MNIST", "MNIST"),
        ),
        DatasetKind(
            "fashion_mnist",
            "Fashion-MNIST",
            "60,000 photos of clothing in 10 classes, 28×28 grey, light on black (torchvision download, 30 MB).",
            channels=1,
            size=28,
            source="download",
            invert_light_background=True,
            load=_load_mnist_like("FashionMNIST", "Fashion-MNIST"),
        ),
        DatasetKind(
            "cifar10",
            "CIFAR-10",
            "50,000 small photos of 10 kinds of animals and vehicles, 32×32 RGB (torchvision download, 163 MB).",
            channels=3,
            size=32,
            source="download",
            load=_load_cifar10,
        ),
    )
}
"""Every dataset kind, in the order the training page lists them."""
