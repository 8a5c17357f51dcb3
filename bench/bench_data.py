"""Time ``draw_shape`` and write preview grids of the built-in datasets to look at.

Usage: ``python bench/bench_data.py [--draws N]``. Prints the median time per 64×64 shape image and writes
``/tmp/shapes_preview.png`` (one row per class) and ``/tmp/digits_preview.png``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

# Run as a script (`python bench/bench_data.py`), Python puts bench/ on the path, not the repository root.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.summary import record
from cnn_explorer.data import SHAPE_CLASSES, digit_images, draw_shape

SHAPES_PREVIEW = Path("/tmp/shapes_preview.png")
DIGITS_PREVIEW = Path("/tmp/digits_preview.png")
GAP = 2  # pixels between tiles


def time_draw_shape(draws: int, size: int = 64) -> float:
    """Median seconds per ``draw_shape`` call over ``draws`` calls, cycling through the classes."""
    rng = np.random.default_rng(0)
    for label in range(len(SHAPE_CLASSES)):  # warm caches before timing
        draw_shape(label, rng, size)
    times = []
    for i in range(draws):
        start = time.perf_counter()
        draw_shape(i % len(SHAPE_CLASSES), rng, size)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def tile(rows: Sequence[Sequence[Image.Image]], scale: int) -> Image.Image:
    """Lay equally sized images out in a grid on white, each enlarged ``scale`` times (nearest, to show pixels)."""
    width, height = rows[0][0].size
    tile_w, tile_h = width * scale, height * scale
    columns = max(len(row) for row in rows)
    grid = Image.new("RGB", (columns * (tile_w + GAP) + GAP, len(rows) * (tile_h + GAP) + GAP), "white")
    for r, row in enumerate(rows):
        for c, image in enumerate(row):
            enlarged = image.convert("RGB").resize((tile_w, tile_h), Image.Resampling.NEAREST)
            grid.paste(enlarged, (GAP + c * (tile_w + GAP), GAP + r * (tile_h + GAP)))
    return grid


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--draws", type=int, default=3000, help="draw_shape calls to time")
    args = parser.parse_args()

    per_image = time_draw_shape(args.draws)
    print(f"draw_shape 64×64: {per_image * 1e3:.3f} ms/image (median of {args.draws})")
    record("data", "drawing one synthetic 64×64 shape", f"{per_image * 1e3:.2f} ms")

    rng = np.random.default_rng(1)
    shape_rows = [[draw_shape(label, rng) for _ in range(8)] for label in range(len(SHAPE_CLASSES))]
    tile(shape_rows, scale=2).save(SHAPES_PREVIEW)
    print(f"wrote {SHAPES_PREVIEW} (rows: {', '.join(SHAPE_CLASSES)})")

    images, labels = digit_images()
    picks = np.random.default_rng(0).choice(len(images), size=40, replace=False)
    digit_rows = [[images[i] for i in picks[r * 10 : (r + 1) * 10]] for r in range(4)]
    tile(digit_rows, scale=8).save(DIGITS_PREVIEW)
    row_labels = [labels[picks[r * 10 : (r + 1) * 10]].tolist() for r in range(4)]
    print(f"wrote {DIGITS_PREVIEW} (labels by row: {row_labels})")


if __name__ == "__main__":
    main()
