"""The model as a function of pixels in ``[0, 1]``: what feature visualization and adversarial attacks optimize.

A model's input is normalized (ImageNet mean and std, or each image's own mean and std for TinyVGG). Changing
pixels, not normalized values, keeps an attack's ε and a visualization's colours in units a person can see: ε = 4/255
is four grey levels. :func:`normalize` is the model's :meth:`~cnn_explorer.preprocess.Preprocess.scale` written with
differentiable tensor operations, for a batch.
"""

from __future__ import annotations

import math

import torch
from PIL import Image
from torch import Tensor

from cnn_explorer.model import LoadedModel

__all__ = ["image_pixels", "normalize", "pixel_logits"]


def image_pixels(model: LoadedModel, image: Image.Image) -> Tensor:
    """The image as the model sees it before normalization: ``[1, C, H, W]`` floats in ``[0, 1]`` (resized,
    cropped, grey and inverted as the model's preprocessing does)."""
    return model.preprocess.geometry(image).to(torch.float32)[None] / 255


def normalize(model: LoadedModel, pixels: Tensor) -> Tensor:
    """Pixels ``[N, C, H, W]`` in ``[0, 1]`` → the model's input, differentiably; equal to ``model.preprocess`` on
    the image whose pixels they are."""
    preprocess = model.preprocess
    if pixels.dim() != 4 or pixels.shape[1] != preprocess.channels:
        raise ValueError(
            f"{model.name} reads pixels [N, {preprocess.channels}, H, W]; got shape {tuple(pixels.shape)}."
        )
    if preprocess.per_image_standardization:
        count = math.prod(pixels.shape[1:])
        mean = pixels.mean(dim=(1, 2, 3), keepdim=True)
        std = pixels.std(dim=(1, 2, 3), correction=0, keepdim=True).clamp_min(1 / math.sqrt(count))
        return (pixels - mean) / std
    if preprocess.mean is not None and preprocess.std is not None:
        mean = torch.tensor(preprocess.mean, dtype=pixels.dtype).view(1, -1, 1, 1)
        std = torch.tensor(preprocess.std, dtype=pixels.dtype).view(1, -1, 1, 1)
        return (pixels - mean) / std
    return pixels


def pixel_logits(model: LoadedModel, pixels: Tensor) -> Tensor:
    """The model's logits ``[N, classes]`` for pixels ``[N, C, H, W]`` (gradients flow back to the pixels)."""
    return model.module(normalize(model, pixels))
