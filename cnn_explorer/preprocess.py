"""Preprocessing: one described function per model, used identically for training and inference.

The steps are torchvision's ``ImageClassification`` (resize the shorter side, centre-crop, scale to [0, 1],
normalize), extended with the two steps our built-in models need (grey conversion with light-background
inversion, per-image standardization). Every parameter is data, so a model card can record it and the home page
can show each step.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torchvision.transforms.functional as TF
from PIL import Image
from torch import Tensor
from torchvision.transforms import InterpolationMode

__all__ = ["Preprocess"]


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
    """

    resize: int
    crop: int
    grayscale: bool = False
    invert_light_background: bool = False
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    per_image_standardization: bool = False

    @property
    def channels(self) -> int:
        return 1 if self.grayscale else 3

    def geometry(self, img: Image.Image) -> Tensor:
        """The image as the network sees it before scaling: uint8 ``[C, crop, crop]``."""
        img = img.convert("L" if self.grayscale else "RGB")
        if img.size != (self.crop, self.crop) or self.resize != self.crop:  # else both steps would copy it as it is
            img = TF.resize(img, [self.resize], interpolation=InterpolationMode.BILINEAR, antialias=True)
            img = TF.center_crop(img, [self.crop, self.crop])
        x = TF.pil_to_tensor(img)
        if self.invert_light_background and _border_mean(x) > 127:
            x = 255 - x
        return x

    def scale(self, x: Tensor) -> Tensor:
        """uint8 ``[C, H, W]`` → the float input tensor ``[C, H, W]``."""
        x = x.to(torch.float32) / 255
        if self.per_image_standardization:
            return (x - x.mean()) / max(x.std(correction=0).item(), 1 / math.sqrt(x.numel()))
        if self.mean is not None and self.std is not None:
            return TF.normalize(x, list(self.mean), list(self.std))
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
            return TF.normalize(x, list(self.mean), list(self.std))
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
        steps.append(f"resize the shorter side to {self.resize} px (bilinear, antialiased)")
        steps.append(f"centre-crop {self.crop}×{self.crop}")
        if self.invert_light_background:
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
