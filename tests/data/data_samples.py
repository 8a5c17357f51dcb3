"""Helpers shared by the data package's tests: pixels as floats, luma weights, item lists, class-folder datasets of
random PNGs, and the shipped models' preprocessing."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from cnn_explorer.data import SHAPE_CLASSES
from cnn_explorer.preprocess import Preprocess
from cnn_explorer.sources.builtin import ASSETS_MODELS

LUMA = np.array([0.299, 0.587, 0.114])
LABELS = range(len(SHAPE_CLASSES))


def pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image, dtype=np.float64)


def items(dataset: torch.utils.data.Dataset, n: int | None = None) -> list[tuple[torch.Tensor, int]]:
    return [dataset[i] for i in range(len(dataset) if n is None else n)]


def same_items(a: list, b: list) -> bool:
    return all(torch.equal(x, y) and k == m for (x, k), (y, m) in zip(a, b, strict=True))


def png(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "PNG")
    return buffer.getvalue()


def folder_dataset(root: Path, sizes: dict[str, int], side: int = 12, seed: int = 0) -> dict[bytes, str]:
    """Class folders of random PNGs; returns each image's pixels (as bytes) → its class."""
    rng, written = np.random.default_rng(seed), {}
    for name, n in sizes.items():
        (root / name).mkdir(parents=True)
        for i in range(n):
            pixels = rng.integers(0, 256, (side, side, 3), dtype=np.uint8)
            (root / name / f"{i:03d}.png").write_bytes(png(pixels))
            written[pixels.tobytes()] = name
    return written


def shipped_preprocess(name: str) -> Preprocess:
    return Preprocess.from_dict(json.loads((ASSETS_MODELS / f"{name}.json").read_text())["preprocess"])
