"""Training data: the built-in sets, a user's image folders, torchvision's downloads, and the checks on uploads.

One module per concern; this ``__init__`` only re-exports them, so ``data.prepare`` and friends keep working:

- :mod:`~cnn_explorer.data.shapes`: synthetic shapes (``SyntheticShapes``, ``draw_shape``), ten classes of filled
  shapes on random backgrounds, drawn on the fly and deterministic from ``(seed, index)``; they train
  ``tinyvgg-shapes``.
- :mod:`~cnn_explorer.data.digit_scans`: scikit-learn's 1797 handwritten 8×8 digits (``digit_images``,
  ``digits_split``); they train ``lenet5-digits``. Digits from other sources are in :mod:`cnn_explorer.digits`.
- :mod:`~cnn_explorer.data.sources`: a run's images before preprocessing, as picklable index → image callables.
- :mod:`~cnn_explorer.data.labelled`: ``LabelledImages`` (the pixel store, ``load_all``) and ``ImageListDataset``.
- :mod:`~cnn_explorer.data.augment`: crops, rotations, quarter turns, mirrors and colour jitter of a run's images.
- :mod:`~cnn_explorer.data.splits`: stratified, seeded train/validation splits.
- :mod:`~cnn_explorer.data.builtin`, :mod:`~cnn_explorer.data.folders`, :mod:`~cnn_explorer.data.torchvision_sets`:
  the loaders of the built-in kinds, of a folder of class folders, and of MNIST, Fashion-MNIST and CIFAR-10
  (torchvision's on-disk layouts and downloads).
- :mod:`~cnn_explorer.data.kinds`: the registry of training dataset kinds, :data:`TRAINING_DATASETS`.
- :mod:`~cnn_explorer.data.prepared`: a training run's data (``prepare``) split, augmented and preprocessed exactly
  as the trained model will preprocess a user's image; ``preview`` and ``imbalance`` describe it for the training
  page.
- :mod:`~cnn_explorer.data.archives`: uploaded archives (``extract_zip``), a zip of class folders, checked before
  and while it is extracted.
- :mod:`~cnn_explorer.data.errors`: ``DatasetError`` and ``DatasetUnavailable``.
"""

from cnn_explorer.data.archives import MAX_ZIP_BYTES, MAX_ZIP_FILES, ZipReport, extract_zip
from cnn_explorer.data.builtin import _SHAPES_TRAIN_SEED_OFFSET  # noqa: F401  (defaults.py names the seeds it avoids)
from cnn_explorer.data.digit_scans import DIGIT_CLASSES, DigitsSplit, digit_images, digits_split
from cnn_explorer.data.errors import DatasetError, DatasetUnavailable
from cnn_explorer.data.folders import IMAGE_EXTENSIONS
from cnn_explorer.data.kinds import TRAINING_DATASETS, DatasetKind
from cnn_explorer.data.labelled import ImageListDataset, LabelledImages, load_all
from cnn_explorer.data.prepared import Prepared, imbalance, prepare, preview
from cnn_explorer.data.shapes import SHAPE_CLASSES, SyntheticShapes, draw_shape
from cnn_explorer.data.torchvision_sets import datasets_home

__all__ = [
    "DIGIT_CLASSES",
    "IMAGE_EXTENSIONS",
    "MAX_ZIP_BYTES",
    "MAX_ZIP_FILES",
    "SHAPE_CLASSES",
    "TRAINING_DATASETS",
    "DatasetError",
    "DatasetKind",
    "DatasetUnavailable",
    "DigitsSplit",
    "ImageListDataset",
    "LabelledImages",
    "Prepared",
    "SyntheticShapes",
    "ZipReport",
    "datasets_home",
    "digit_images",
    "digits_split",
    "draw_shape",
    "extract_zip",
    "imbalance",
    "load_all",
    "prepare",
    "preview",
]
