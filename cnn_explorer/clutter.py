"""How far an image is from "one ink on one paper": the half of the shapes model's out-of-distribution check that does
not read the classifier.

A Mahalanobis distance in a classifier's features (:mod:`cnn_explorer.ood`) tells a photo from a drawn shape only as
well as the features do. A model trained on shapes drawn many ways — outlined, sketched, coloured in, in uneven light
— learns features under which a cat and a scribbled heart are neighbours: the sketched shapes model's detector flagged
2 of the 5 sample photos. What every drawn shape has and a photo has not is in the pixels: two regions, ink and paper,
each one colour under light that varies smoothly across the frame. :func:`clutter` fits that picture to an image and
returns the share of pixels it cannot explain. The fit:

1. a 3×3 median per channel (sensor noise and JPEG ringing are not clutter);
2. two regions by 2-means on the brightness (started at its 10th and 90th percentiles);
3. alternately, each region's colour as an affine function of position (least squares: a light gradient or a
   vignette's slope), and each pixel to the region whose fitted colour is nearer;
4. a pixel is clutter when even the nearer fit misses it by more than a quarter of the contrast between the two
   fitted colours.

Antialiased and blurred edges are a thin band, so drawn shapes score a few percent at most; a photo's texture, its
many objects and colours make a third to two thirds of its pixels clutter. The score is unchanged by an affine change
of brightness (the shapes model's per-image standardization), so it reads the model's input as it is.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["clutter"]

_LUMA = (0.299, 0.587, 0.114)
_KMEANS_STEPS = 10
_FIT_STEPS = 5
_MISS = 0.25  # a pixel is clutter when missed by more than this share of the contrast between the two regions


def _median3(x: Tensor) -> Tensor:
    """3×3 median of each channel of ``[C, H, W]``, the border replicated."""
    c, h, w = x.shape
    padded = F.pad(x[None], (1, 1, 1, 1), mode="replicate")[0]
    patches = padded.unfold(1, 3, 1).unfold(2, 3, 1)  # [C, H, W, 3, 3]
    return patches.reshape(c, h, w, 9).median(dim=-1).values


def _two_means(g: Tensor) -> Tensor:
    """Labels 0/1 of the darker and lighter of two brightness clusters."""
    centres = torch.quantile(g, torch.tensor([0.1, 0.9], dtype=g.dtype))
    labels = torch.zeros_like(g, dtype=torch.long)
    for _ in range(_KMEANS_STEPS):
        labels = ((g - centres[1]).abs() < (g - centres[0]).abs()).long()
        if labels.all() or not labels.any():
            break
        centres = torch.stack([g[labels == 0].mean(), g[labels == 1].mean()])
    return labels


def clutter(x: Tensor) -> float:
    """The share of the image's pixels, in ``[0, 1]``, that two flat-shaded regions (each one colour varying
    affinely across the frame) miss by more than a quarter of the contrast between them.

    Args:
        x: One image ``[C, H, W]`` or ``[1, C, H, W]``, one or three channels, on any affine brightness scale
            (0–255, 0–1, or standardized).

    Returns:
        0.0 for an image with a single colour or two flat regions; a few hundredths for a drawn, blurred or unevenly
        lit shape; about 0.3–0.65 for a photograph.
    """
    if x.dim() == 4:
        x = x[0]
    x = _median3(x.detach().to(torch.float64))
    c, h, w = x.shape
    pixels = x.reshape(c, -1).T  # [N, C]
    weights = torch.tensor(_LUMA, dtype=torch.float64) if c == 3 else torch.ones(c, dtype=torch.float64) / c
    labels = _two_means(pixels @ weights)
    if labels.all() or not labels.any():
        return 0.0
    yy, xx = torch.meshgrid(
        torch.linspace(0, 1, h, dtype=torch.float64), torch.linspace(0, 1, w, dtype=torch.float64), indexing="ij"
    )
    basis = torch.stack([torch.ones(h * w, dtype=torch.float64), xx.reshape(-1), yy.reshape(-1)], dim=1)  # [N, 3]
    for _ in range(_FIT_STEPS):
        fitted = []
        for region in (0, 1):
            inside = (labels == region).to(torch.float64)
            if float(inside.sum()) < 2 * basis.shape[1]:  # too few pixels for a slope: the region's mean colour
                mean = pixels[inside > 0].mean(0) if inside.any() else pixels.mean(0)
                fitted.append(mean.expand_as(pixels))
                continue
            weighted = basis * inside[:, None]  # least squares over the region's pixels (normal equations)
            coefficients = torch.linalg.solve(weighted.T @ basis, weighted.T @ pixels)
            fitted.append(basis @ coefficients)
        errors = torch.stack([((pixels - f) ** 2).sum(1) for f in fitted], dim=1)  # [N, 2]
        labels = errors.argmin(1)
    missed = errors.min(1).values.sqrt()
    contrast = ((fitted[0] - fitted[1]) ** 2).sum(1).sqrt().mean()
    if contrast <= 0:
        return 0.0
    return float((missed > _MISS * contrast).double().mean())
