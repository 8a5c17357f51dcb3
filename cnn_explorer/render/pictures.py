"""Single pictures: a tensor or one map as an image, overlays and boxes, frames, a row of images, PNG bytes.

What a page shows one at a time (an input, one selected map, a receptive field's box); for many maps at once see
:mod:`cnn_explorer.render.grids`.
"""

from __future__ import annotations

from collections.abc import Sequence
from io import BytesIO

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw
from torch import Tensor

from cnn_explorer.render.colour import (
    DIVERGING_CMAPS,
    GAP_COLOUR,
    HIGHLIGHT_COLOUR,
    ColouredMap,
    _colour,
    _lookup,
    _normalise,
    _numpy,
)

__all__ = [
    "channel_maps",
    "for_display",
    "framed",
    "image_grid",
    "map_image",
    "overlay",
    "pixels_image",
    "to_png_bytes",
    "uint8_image",
    "value_table",
]


def for_display(img: Image.Image, min_side: int = 224) -> Image.Image:
    """Upscale a small image with nearest-neighbour so its pixels stay visible as squares."""
    factor = -(-min_side // max(1, min(img.size)))
    if factor <= 1:
        return img
    return img.resize((img.width * factor, img.height * factor), Image.Resampling.NEAREST)


def uint8_image(x: Tensor) -> Image.Image:
    """A uint8 ``[C, H, W]`` tensor (1 or 3 channels) → PIL image."""
    array = x.detach().cpu().numpy()
    return Image.fromarray(array[0] if array.shape[0] == 1 else np.transpose(array, (1, 2, 0)))


def channel_maps(x: Tensor, cmap: str = "RdBu_r", symmetric: bool = True) -> list[ColouredMap]:
    """Each channel of an input or activation ``[1, C, H, W]`` coloured on its own scale.

    Args:
        x: The tensor; the batch dimension must be 1.
        cmap: Matplotlib colour map.
        symmetric: Centre the scale on zero (for normalized inputs, where the sign matters).
    """
    maps = []
    for channel in x[0].detach().cpu().numpy():
        lo, hi = float(channel.min()), float(channel.max())
        if symmetric:
            lo, hi = -max(abs(lo), abs(hi)), max(abs(lo), abs(hi))
        maps.append(ColouredMap(image=_colour(channel, lo, hi, cmap), vmin=lo, vmax=hi, cmap=cmap))
    return maps


def map_image(map2d: Tensor | np.ndarray, vmin: float, vmax: float, cmap: str, min_side: int = 320) -> Image.Image:
    """One map coloured on ``[vmin, vmax]`` and enlarged with nearest neighbour to at least ``min_side`` pixels."""
    values = _numpy(map2d)
    if values.ndim != 2:
        raise ValueError(f"Expected one map [H, W], got shape {tuple(values.shape)}.")
    fill = 0.5 if cmap in DIVERGING_CMAPS else 0.0
    rgba = _lookup(_normalise(values[None], [(vmin, vmax)], fill), cmap)
    return for_display(Image.fromarray(rgba[0, ..., :3]), min_side)


def value_table(map2d: Tensor | np.ndarray, max_side: int = 16, decimals: int = 3) -> np.ndarray | None:
    """The values of a small map, rounded, for a table on the page; None when a side exceeds ``max_side``."""
    values = _numpy(map2d)
    if values.ndim != 2:
        raise ValueError(f"Expected one map [H, W], got shape {tuple(values.shape)}.")
    return np.round(values, decimals) if max(values.shape) <= max_side else None


def overlay(
    image: Image.Image,
    heat: Tensor | np.ndarray | None = None,
    alpha: float = 0.5,
    cmap: str = "jet",
    box: tuple[int, int, int, int] | None = None,
    box_colour: tuple[int, int, int] = HIGHLIGHT_COLOUR,
) -> Image.Image:
    """A heatmap blended over an image, and optionally a rectangle drawn on it.

    Args:
        image: The picture (converted to RGB).
        heat: ``[h, w]`` values, upsampled bilinearly to the image size and min–max normalized; None draws
            only the box.
        alpha: Weight of the heatmap colours (0 = image only, 1 = heatmap only).
        cmap: Colour map of the heatmap.
        box: ``(top, left, bottom, right)`` in image pixels, bottom and right exclusive (a receptive field or
            a patch); clipped to the image, since receptive fields reach into the padding.
        box_colour: Outline colour.
    """
    base = image.convert("RGB")
    if heat is not None:
        upsampled = _resize_bilinear(heat, base.height, base.width)
        rgba = _lookup(_normalise(upsampled[None], [(float(upsampled.min()), float(upsampled.max()))], 0.0), cmap)
        blended = (1 - alpha) * np.asarray(base, dtype=np.float64) + alpha * rgba[0, ..., :3]
        base = Image.fromarray(np.clip(np.rint(blended), 0, 255).astype(np.uint8))
    if box is not None:
        top, left, bottom, right = box
        top, left = max(top, 0), max(left, 0)
        bottom, right = min(bottom, base.height), min(right, base.width)
        if bottom > top and right > left:
            base = base.copy() if heat is None else base
            line = max(1, round(min(base.size) / 112))
            ImageDraw.Draw(base).rectangle((left, top, right - 1, bottom - 1), outline=box_colour, width=line)
    return base


def to_png_bytes(img: Image.Image, compress_level: int = 1) -> bytes:
    """The image encoded as PNG (lossless, so every value keeps its exact colour), for a download button.

    Args:
        img: The image.
        compress_level: zlib level 0–9. The default 1 is about 2–3× faster than PIL's 6 for files only ~10–30 %
            larger; it matters because a download button encodes its data on every rerun of the page.
    """
    buffer = BytesIO()
    img.save(buffer, format="PNG", compress_level=compress_level)
    return buffer.getvalue()


def pixels_image(pixels: Tensor | np.ndarray) -> Image.Image:
    """Pixels ``[C, H, W]`` (one or three channels) in ``[0, 1]`` → an image; values outside are clipped."""
    values = _numpy(pixels)
    if values.ndim != 3 or values.shape[0] not in (1, 3):
        raise ValueError(f"Expected pixels [1 or 3, H, W]; got shape {tuple(values.shape)}.")
    array = np.clip(np.rint(values * 255), 0, 255).astype(np.uint8)
    return Image.fromarray(array[0] if array.shape[0] == 1 else np.ascontiguousarray(array.transpose(1, 2, 0)))


def framed(img: Image.Image, width: int = 2, colour: tuple[int, int, int] = GAP_COLOUR) -> Image.Image:
    """The image inside a thin frame, so that one mostly white or mostly page-coloured still shows its edges."""
    canvas = Image.new("RGB", (img.width + 2 * width, img.height + 2 * width), colour)
    canvas.paste(img.convert("RGB"), (width, width))
    return canvas


def image_grid(images: Sequence[Image.Image], columns: int = 3, cell: int = 96, gap: int = 4) -> Image.Image:
    """Images side by side in rows of ``columns``, each fitted into a ``cell``-pixel square (nearest neighbour, so
    small images stay sharp), on the grid's grey."""
    if not images:
        raise ValueError("No images to lay out.")
    rows = -(-len(images) // columns)
    canvas = Image.new("RGB", (columns * (cell + gap) + gap, rows * (cell + gap) + gap), GAP_COLOUR)
    for index, image in enumerate(images):
        picture = image.convert("RGB")
        scale = cell / max(picture.size)
        size = (max(1, round(picture.width * scale)), max(1, round(picture.height * scale)))
        picture = picture.resize(size, Image.Resampling.NEAREST if scale >= 1 else Image.Resampling.BILINEAR)
        row, col = divmod(index, columns)
        left = gap + col * (cell + gap) + (cell - picture.width) // 2
        top = gap + row * (cell + gap) + (cell - picture.height) // 2
        canvas.paste(picture, (left, top))
    return canvas


def _resize_bilinear(heat: Tensor | np.ndarray, height: int, width: int) -> np.ndarray:
    tensor = heat.detach().float().cpu() if isinstance(heat, Tensor) else torch.as_tensor(np.asarray(heat)).float()
    if tensor.ndim != 2:
        raise ValueError(f"Expected a heatmap [h, w], got shape {tuple(tensor.shape)}.")
    if tuple(tensor.shape) != (height, width):
        tensor = F.interpolate(tensor[None, None], size=(height, width), mode="bilinear", align_corners=False)[0, 0]
    return tensor.numpy().astype(np.float64)
