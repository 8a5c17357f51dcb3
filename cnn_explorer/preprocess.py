"""Preprocessing: one described function per model, used identically for training and inference.

The steps are torchvision's ``ImageClassification`` (resize the shorter side, centre-crop, scale to [0, 1],
normalize), extended with the two steps our built-in models need (grey conversion with light-background
inversion, per-image standardization). Every parameter is data, so a model card can record it and the home page
can show each step.

The geometric steps are written here with PIL, as torchvision's functional transforms do them for a PIL image (the
same sizes, rounding and resampling; tests compare them pixel for pixel): importing any part of torchvision imports
all of it, models and ``torch._dynamo`` included, a second or more of the app's cold start for four small functions.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image
from torch import Tensor

__all__ = ["INK_MARGIN", "Preprocess"]

INK_MARGIN = 0.2
"""``fit_ink``'s margin around the ink, as a share of its longer side (MNIST: a 20-pixel digit in a 28-pixel frame)."""
_INK_LEVEL = 0.25  # a pixel is ink above this share of the way from the paper's grey to the darkest ink
_MIN_INK_CONTRAST = 32  # grey levels: below this range the image is taken as blank, and not cropped


@dataclass(frozen=True)
class Preprocess:
    """How a model turns a PIL image into its input tensor.

    Attributes:
        resize: Side the shorter image edge is resized to (antialiased bilinear, as torchvision).
        crop: Side of the centre crop taken after resizing; the network input is ``crop × crop``.
        grayscale: Convert to one grey channel instead of RGB.
        invert_light_background: For grey models trained on light ink on a dark background: invert the image
            when its border is mostly light, so dark-on-white drawings are read the same way.
        mean: Per-channel mean subtracted after scaling to [0, 1]; None skips normalization.
        std: Per-channel standard deviation divided by.
        per_image_standardization: Instead of fixed mean/std, subtract the image's own mean and divide by its
            own standard deviation (floored at 1/√N as TensorFlow's ``per_image_standardization``).
        fit_ink: For grey models of single glyphs (digits): after the inversion, crop to the ink's bounding box and
            centre it in a dark square with a margin of :data:`INK_MARGIN` of its longer side each way, as MNIST
            was made, so a digit drawn small or off-centre reaches the network like one that fills the frame. A
            blank image is left as it is.
    """

    resize: int
    crop: int
    grayscale: bool = False
    invert_light_background: bool = False
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    per_image_standardization: bool = False
    fit_ink: bool = False

    @property
    def channels(self) -> int:
        return 1 if self.grayscale else 3

    def geometry(self, img: Image.Image) -> Tensor:
        """The image as the network sees it before scaling: uint8 ``[C, crop, crop]``."""
        img = img.convert("L" if self.grayscale else "RGB")
        if self.fit_ink:
            return self._fit_ink(img)
        if img.size != (self.crop, self.crop) or self.resize != self.crop:  # else both steps would copy it as it is
            img = _center_crop(_resize_shorter_side(img, self.resize), self.crop)
        x = _pil_to_tensor(img)
        if self.invert_light_background and _border_mean(x) > 127:
            x = 255 - x
        return x

    def _fit_ink(self, img: Image.Image) -> Tensor:
        # numpy and PIL only: torch ops here would run in the forked processes that read training sets
        # (data.load_all), where torch's thread pool, inherited from the parent, can deadlock.
        pixels = np.asarray(img)
        if pixels.ndim == 2:
            pixels = pixels[:, :, None]
        border = np.concatenate([pixels[0], pixels[-1], pixels[:, 0], pixels[:, -1]])
        if self.invert_light_background and float(border.mean()) > 127:
            pixels = 255 - pixels
        grey = pixels.max(axis=2)
        low, high = int(grey.min()), int(grey.max())
        if high - low >= _MIN_INK_CONTRAST:
            ink = grey > low + (high - low) * _INK_LEVEL
            rows, cols = np.flatnonzero(ink.any(axis=1)), np.flatnonzero(ink.any(axis=0))
            top, bottom, left, right = int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1
            side = max(bottom - top, right - left)
            pad = max(1, round(side * INK_MARGIN))
            square = np.full((side + 2 * pad, side + 2 * pad, pixels.shape[2]), low, dtype=np.uint8)
            y0, x0 = pad + (side - (bottom - top)) // 2, pad + (side - (right - left)) // 2
            square[y0 : y0 + bottom - top, x0 : x0 + right - left] = pixels[top:bottom, left:right]
            pixels = square
        fitted = Image.fromarray(np.ascontiguousarray(pixels[:, :, 0] if self.grayscale else pixels))
        if fitted.size != (self.crop, self.crop):
            fitted = fitted.resize((self.crop, self.crop), Image.Resampling.BILINEAR)
        return _pil_to_tensor(fitted)

    def scale(self, x: Tensor) -> Tensor:
        """uint8 ``[C, H, W]`` → the float input tensor ``[C, H, W]``."""
        x = x.to(torch.float32) / 255
        if self.per_image_standardization:
            return (x - x.mean()) / max(x.std(correction=0).item(), 1 / math.sqrt(x.numel()))
        if self.mean is not None and self.std is not None:
            return _normalize(x, self.mean, self.std)
        return x

    def scale_batch(self, x: Tensor, statistics: Tensor | None = None) -> Tensor:
        """uint8 ``[B, C, H, W]`` → float inputs ``[B, C, H, W]``: :meth:`scale` of every image, in one pass.

        Args:
            x: The images.
            statistics: Their :meth:`statistics`, when known (they survive turns and mirroring, so a training set
                can measure them once); None measures them here. Used only with per-image standardization.
        """
        x = x.to(torch.float32).mul_(1 / 255)
        if self.per_image_standardization:
            stats = self.statistics(x) if statistics is None else statistics
            return (x - stats[:, :1, None, None]).div_(stats[:, 1:, None, None])
        if self.mean is not None and self.std is not None:
            return _normalize(x, self.mean, self.std)
        return x

    @staticmethod
    def statistics(x: Tensor) -> Tensor:
        """Per-image standardization's mean and divisor of each image of ``[B, C, H, W]`` (uint8, or already scaled
        to [0, 1]): ``[B, 2]``, the divisor being the standard deviation floored as :meth:`scale` floors it."""
        if x.dtype == torch.uint8:
            x = x.to(torch.float32).mul_(1 / 255)
        flat = x.reshape(len(x), -1)
        mean = flat.mean(dim=1, keepdim=True)
        std = (flat - mean).square_().mean(dim=1, keepdim=True).sqrt_()
        return torch.cat([mean, std.clamp_min(1 / math.sqrt(flat.shape[1]))], dim=1)

    def __call__(self, img: Image.Image) -> Tensor:
        """PIL image → input batch ``[1, C, crop, crop]``."""
        return self.scale(self.geometry(img)).unsqueeze(0)

    def steps(self) -> list[str]:
        """The steps in words, for model cards and the home page."""
        steps = ["convert to grey" if self.grayscale else "convert to RGB"]
        if self.fit_ink:
            if self.invert_light_background:
                steps.append("invert if the border is mostly light (the model reads light ink on dark)")
            steps.append(
                f"crop to the ink and centre it in a square with a margin of {INK_MARGIN:.0%} of its size each way"
            )
            steps.append(f"resize to {self.crop}×{self.crop} (bilinear, antialiased)")
        else:
            steps.append(f"resize the shorter side to {self.resize} px (bilinear, antialiased)")
            steps.append(f"centre-crop {self.crop}×{self.crop}")
        if self.invert_light_background and not self.fit_ink:
            steps.append("invert if the border is mostly light (the model reads light ink on dark)")
        steps.append("scale pixels to [0, 1]")
        if self.per_image_standardization:
            steps.append("standardize with the image's own mean and standard deviation")
        elif self.mean is not None and self.std is not None:
            mean = ", ".join(f"{m:.3f}" for m in self.mean)
            std = ", ".join(f"{s:.3f}" for s in self.std)
            steps.append(f"normalize per channel: subtract mean ({mean}), divide by std ({std})")
        return steps

    def to_dict(self) -> dict:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in self.__dict__.items()}

    @classmethod
    def from_dict(cls, data: dict) -> Preprocess:
        return cls(**{k: (tuple(v) if isinstance(v, list) else v) for k, v in data.items()})


def _border_mean(x: Tensor) -> float:
    border = torch.cat([x[:, 0, :], x[:, -1, :], x[:, :, 0], x[:, :, -1]], dim=1)
    return border.to(torch.float32).mean().item()


# --- torchvision's functional transforms for a PIL image (transforms.functional: resize, center_crop, pil_to_tensor,
# normalize), step for step ---------------------------------------------------------------------------------------


def _resize_shorter_side(img: Image.Image, side: int) -> Image.Image:
    """``TF.resize(img, [side])``: the shorter edge to ``side``, the longer in proportion (rounded down), bilinear
    (PIL antialiases when it shrinks, as torchvision always does for a PIL image)."""
    w, h = img.size
    short, long = (w, h) if w <= h else (h, w)
    new_short, new_long = side, int(side * long / short)
    new_w, new_h = (new_short, new_long) if w <= h else (new_long, new_short)
    if (new_w, new_h) == (w, h):
        return img
    return img.resize((new_w, new_h), Image.Resampling.BILINEAR)


def _center_crop(img: Image.Image, side: int) -> Image.Image:
    """``TF.center_crop(img, [side, side])``: a smaller image is first padded with zeros, the odd pixel after."""
    w, h = img.size
    if side > w or side > h:
        left, top = max(0, (side - w) // 2), max(0, (side - h) // 2)
        padded = Image.new(img.mode, (w + max(0, side - w), h + max(0, side - h)), 0)
        padded.paste(img, (left, top))
        img, (w, h) = padded, padded.size
        if (w, h) == (side, side):
            return img
    top, left = round((h - side) / 2.0), round((w - side) / 2.0)
    return img.crop((left, top, left + side, top + side))


def _pil_to_tensor(img: Image.Image) -> Tensor:
    """``TF.pil_to_tensor``: uint8 ``[C, H, W]`` (a view of ``[H, W, C]``, as torchvision returns it)."""
    pixels = torch.as_tensor(np.array(img, copy=True))
    return pixels.view(img.size[1], img.size[0], len(img.getbands())).permute(2, 0, 1)


def _normalize(x: Tensor, mean: tuple[float, ...], std: tuple[float, ...]) -> Tensor:
    """``TF.normalize``: ``(x - mean) / std`` per channel, on a copy."""
    m = torch.as_tensor(mean, dtype=x.dtype, device=x.device).view(-1, 1, 1)
    s = torch.as_tensor(std, dtype=x.dtype, device=x.device).view(-1, 1, 1)
    if (s == 0).any():
        raise ValueError(f"std evaluated to zero after conversion to {x.dtype}, leading to division by zero.")
    return x.sub(m).div_(s)
