"""The classic image-processing kernels (blur, sharpen, Sobel, Laplacian, emboss) in 3×3 and 5×5, as data.

:data:`KERNELS` is the registry the playground's kernel picker is built from; each preset's values are computed once
from its recipe (binomial rows, central differences), so the 3×3 and 5×5 forms agree.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = [
    "KERNELS",
    "KERNEL_SIZES",
    "KernelPreset",
]


KERNEL_SIZES = (3, 5)
_BINOMIAL = {3: (1.0, 2.0, 1.0), 5: (1.0, 4.0, 6.0, 4.0, 1.0)}  # rows of Pascal's triangle: a Gaussian's samples
_DERIVATIVE = {3: (-1.0, 0.0, 1.0), 5: (-1.0, -2.0, 0.0, 2.0, 1.0)}  # Sobel's central difference and its 5-tap form
_LAPLACIAN = {
    3: ((0, 1, 0), (1, -4, 1), (0, 1, 0)),
    5: ((0, 0, 1, 0, 0), (0, 1, 2, 1, 0), (1, 2, -16, 2, 1), (0, 1, 2, 1, 0), (0, 0, 1, 0, 0)),
}
Rows = tuple[tuple[float, ...], ...]


def _rows(t: Tensor) -> Rows:
    return tuple(tuple(float(v) for v in row) for row in t.tolist())


def _delta(k: int) -> Tensor:
    t = torch.zeros(k, k, dtype=torch.float64)
    t[k // 2, k // 2] = 1
    return t


def _gaussian(k: int) -> Tensor:
    row = torch.tensor(_BINOMIAL[k], dtype=torch.float64)
    return torch.outer(row, row) / row.sum() ** 2


def _sobel_x(k: int) -> Tensor:
    return torch.outer(
        torch.tensor(_BINOMIAL[k], dtype=torch.float64), torch.tensor(_DERIVATIVE[k], dtype=torch.float64)
    )


def _emboss(k: int) -> Tensor:
    offsets = torch.arange(k, dtype=torch.float64) - k // 2
    return offsets[:, None] + offsets[None, :] + _delta(k)


def _sharpen(k: int) -> Tensor:
    # 3×3: the classic image plus its negative Laplacian; 5×5: unsharp masking, 2·image − Gaussian blur
    return _delta(3) - torch.tensor(_LAPLACIAN[3], dtype=torch.float64) if k == 3 else 2 * _delta(k) - _gaussian(k)


@dataclass(frozen=True)
class KernelPreset:
    """One classic image-processing kernel, in every size of :data:`KERNEL_SIZES`.

    Attributes:
        key: Registry key (``"sobel_x"``).
        name: Display name.
        summary: One sentence for students: what it does to an image.
        sizes: ``(side, rows)`` pairs, one per size; rows are the kernel's values, top row first.
    """

    key: str
    name: str
    summary: str
    sizes: tuple[tuple[int, Rows], ...]

    def kernel(self, size: int = 3) -> Tensor:
        """The ``size × size`` kernel as a float32 tensor."""
        for side, rows in self.sizes:
            if side == size:
                return torch.tensor(rows, dtype=torch.float32)
        raise ValueError(f"{self.name} comes in {', '.join(f'{s}×{s}' for s, _ in self.sizes)}; got {size}×{size}.")


def _preset(key: str, name: str, summary: str, build: Callable[[int], Tensor]) -> KernelPreset:
    return KernelPreset(key, name, summary, tuple((k, _rows(build(k))) for k in KERNEL_SIZES))


#: The classic kernels (see https://en.wikipedia.org/wiki/Kernel_(image_processing)), keyed by name.
KERNELS: dict[str, KernelPreset] = {
    preset.key: preset
    for preset in (
        _preset("identity", "Identity", "A single 1 in the middle: every pixel is copied unchanged.", _delta),
        _preset(
            "box_blur",
            "Box blur",
            "Every weight equal: each pixel becomes the average of its neighbourhood, so details smear out.",
            lambda k: torch.full((k, k), 1.0 / k**2, dtype=torch.float64),
        ),
        _preset(
            "gaussian",
            "Gaussian blur",
            "Neighbours count less the further they are (binomial weights): a softer blur than the box.",
            _gaussian,
        ),
        _preset(
            "sharpen",
            "Sharpen",
            "The pixel minus a bit of its neighbours: differences between neighbours grow, so edges look crisper.",
            _sharpen,
        ),
        _preset(
            "sobel_x",
            "Sobel x",
            "Right column minus left column: large where brightness changes from left to right, i.e. at vertical "
            "edges (positive dark→bright, negative bright→dark).",
            _sobel_x,
        ),
        _preset(
            "sobel_y",
            "Sobel y",
            "Bottom row minus top row: large at horizontal edges.",
            lambda k: _sobel_x(k).T,
        ),
        _preset(
            "laplacian",
            "Laplacian",
            "Neighbours minus the centre: zero on flat areas and on smooth ramps, large on edges and spots in "
            "every direction.",
            lambda k: torch.tensor(_LAPLACIAN[k], dtype=torch.float64),
        ),
        _preset(
            "emboss",
            "Emboss",
            "Bottom-right minus top-left plus the pixel itself: edges along the diagonal look raised, like a relief.",
            _emboss,
        ),
    )
}
