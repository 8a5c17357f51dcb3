"""Explanation views: an attribution heatmap over the image on an explicit scale, or a note where there is none."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw, ImageFont
from torch import Tensor

from cnn_explorer.render.colour import _DIVERGING, ColouredMap, _lookup, _normalise, _numpy
from cnn_explorer.render.pictures import _resize_bilinear, for_display

__all__ = [
    "HEAT_CMAPS",
    "SIGNS",
    "blank_map",
    "heat_overlay",
]


#: How a signed heatmap is shown: only what speaks for the class, its size whatever the sign, or both signs.
SIGNS = {
    "positive": "Positive: only evidence for the class",
    "absolute": "Absolute: size, whatever the sign",
    "all": "All: red for, blue against",
}
HEAT_CMAPS = ("jet", "inferno", "viridis", "turbo")


def heat_overlay(
    picture: Image.Image,
    heatmap: Tensor | np.ndarray,
    sign: str = "positive",
    normalized: bool = True,
    cmap: str = "jet",
    alpha: float = 0.6,
    saturate_at: float = 99.0,
) -> ColouredMap:
    """An explanation heatmap over the image the network saw, on an explicit colour scale.

    Each pixel's colour is blended in proportion to its value's size (``alpha`` at the top of the scale, nothing at
    zero), so the image shows through where the map is empty — a uniform blend would tint the whole image. The
    scale tops out at a percentile of the absolute values (as captum's ``visualize_image_attr`` does), so a few
    extreme gradient pixels do not wash out the rest; smooth CAMs are hardly affected.

    Args:
        picture: The image at the input's geometry (any size; the map is resized bilinearly to it).
        heatmap: ``[H, W]`` values (an :class:`~cnn_explorer.attribution.Explanation` heatmap).
        sign: A key of :data:`SIGNS`. ``"all"`` keeps the sign and uses a diverging map (RdBu_r) centred on zero.
        normalized: Scale so the largest absolute value is 1; otherwise the scale is in the map's own units.
        cmap: Colour map for ``"positive"`` and ``"absolute"``.
        alpha: Opacity of the colours at the top of the scale.
        saturate_at: Percentile of the absolute values where the colour scale tops out (100: the largest value).

    Returns:
        The blended image with the value range its colours span (``vmin``, ``vmax``) and the colour map.
    """
    if sign not in SIGNS:
        raise ValueError(f"sign must be one of {', '.join(SIGNS)}; got {sign!r}.")
    values = _numpy(heatmap).astype(np.float64)
    if values.ndim != 2:
        raise ValueError(f"Expected a heatmap [H, W], got shape {tuple(values.shape)}.")
    if sign == "positive":
        values = np.clip(values, 0, None)
    elif sign == "absolute":
        values = np.abs(values)
    magnitudes = np.abs(values)
    peak = float(np.percentile(magnitudes, saturate_at)) or float(magnitudes.max())  # sparse maps: p99 may be 0
    scale = peak if peak > 0 else 1.0
    if normalized:
        values, peak = values / scale, (1.0 if peak > 0 else 0.0)
    base = picture.convert("RGB")
    resized = _resize_bilinear(values, base.height, base.width)
    top = peak if peak > 0 else 1.0
    if sign == "all":
        cmap, vmin, vmax = _DIVERGING, -top, top
        colours = _lookup(_normalise(resized[None], [(vmin, vmax)], 0.5), cmap)[0, ..., :3]
    else:
        vmin, vmax = 0.0, top
        colours = _lookup(_normalise(resized[None], [(vmin, vmax)], 0.0), cmap)[0, ..., :3]
    weight = alpha * np.clip(np.abs(resized) / top, 0, 1)[..., None]
    blended = (1 - weight) * np.asarray(base, dtype=np.float64) + weight * colours
    image = Image.fromarray(np.clip(np.rint(blended), 0, 255).astype(np.uint8))
    return ColouredMap(image=image, vmin=vmin, vmax=vmax, cmap=cmap)


def blank_map(picture: Image.Image, note: str, min_side: int = 320) -> Image.Image:
    """The image faded, with ``note`` written across it: what the page shows instead of an overlay when a map is
    constant (an overlay of nothing would be the bare image, and read as "the method found nothing here" no
    better than as "the method saw everything alike").

    Args:
        picture: The image at the input's geometry.
        note: The sentence to write (wrapped to the image's width).
        min_side: The picture is upscaled (nearest neighbour) to at least this side first, so the text is legible.
    """
    shown = for_display(picture.convert("RGB"), min_side)
    faded = Image.blend(shown, Image.new("RGB", shown.size, (255, 255, 255)), 0.7)
    draw = ImageDraw.Draw(faded)
    size = max(10, round(min(shown.size) / 18))
    font = ImageFont.load_default(size=size)
    margin = size
    lines = _wrapped(note, draw, font, shown.width - 2 * margin)
    spacing = size // 3
    height = len(lines) * size + (len(lines) - 1) * spacing
    top = max(margin, (shown.height - height) // 2)
    box = (margin // 2, top - margin // 2, shown.width - margin // 2, top + height + margin // 2)
    draw.rectangle(box, fill=(255, 255, 255), outline=(180, 83, 9), width=2)
    for i, line in enumerate(lines):
        draw.text((margin, top + i * (size + spacing)), line, fill=(31, 41, 55), font=font)
    return faded


def _wrapped(text: str, draw: ImageDraw.ImageDraw, font: ImageFont.FreeTypeFont, width: int) -> list[str]:
    """``text`` split at spaces into lines no wider than ``width`` pixels (a longer single word gets its own line)."""
    lines: list[str] = []
    for word in text.split():
        candidate = f"{lines[-1]} {word}" if lines else word
        if lines and draw.textlength(candidate, font=font) <= width:
            lines[-1] = candidate
        else:
            lines.append(word)
    return lines
