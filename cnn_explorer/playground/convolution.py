"""Convolution by hand: a kernel slid over an image as sliding windows, one step of the slide, the size formula.

:func:`convolve` slides a kernel over an image (grey or each colour channel on its own) with stride, padding and
dilation, as every CNN library does (cross-correlation: the kernel is not flipped); :func:`conv_step` is one position
of the slide, the window, the products and their sum; :func:`size_formula` is the output size with the numbers
filled in. Written with ``Tensor.unfold``, not ``F.conv2d``: the tests compare the two.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor

__all__ = [
    "PADDING_MODES",
    "ConvSettings",
    "ConvStep",
    "SizeFormula",
    "conv_step",
    "convolve",
    "follow_position",
    "image_tensor",
    "output_size",
    "pad",
    "size_formula",
]


#: How pixels outside the image are made up; values are ``F.pad`` modes.
PADDING_MODES: dict[str, str] = {"zeros": "constant", "reflect": "reflect", "replicate": "replicate"}


@dataclass(frozen=True)
class ConvSettings:
    """How the kernel slides.

    Attributes:
        stride: Pixels the window moves between neighbouring outputs.
        padding: Pixels added on every side of the image.
        padding_mode: A key of :data:`PADDING_MODES`: zeros, the mirror image without the edge pixel (reflect), or
            the edge pixel repeated (replicate).
        dilation: Spacing between the kernel's taps (1: neighbouring pixels).
    """

    stride: int = 1
    padding: int = 0
    padding_mode: str = "zeros"
    dilation: int = 1

    def __post_init__(self) -> None:
        for name, low in (("stride", 1), ("padding", 0), ("dilation", 1)):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < low:
                raise ValueError(f"{name.capitalize()} must be a whole number ≥ {low}; got {value!r}.")
        if self.padding_mode not in PADDING_MODES:
            raise ValueError(f"Padding mode must be one of {', '.join(PADDING_MODES)}; got {self.padding_mode!r}.")


def output_size(size: int, kernel: int, stride: int = 1, padding: int = 0, dilation: int = 1) -> int:
    """``⌊(n + 2p − d·(k − 1) − 1) / s⌋ + 1``: outputs along one axis (PyTorch's Conv2d and MaxPool2d formula)."""
    return (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1


@dataclass(frozen=True)
class SizeFormula:
    """The output size along one axis, with the numbers that produce it.

    Attributes:
        axis: ``"height"`` or ``"width"``.
        size: Input pixels ``n`` along the axis.
        kernel: Kernel side ``k``.
        stride: ``s``.
        padding: ``p``.
        dilation: ``d``.
        output: The result.
    """

    axis: str
    size: int
    kernel: int
    stride: int
    padding: int
    dilation: int
    output: int

    @property
    def latex(self) -> str:
        """The formula filled in, for ``st.latex``."""
        n, k, s, p, d = self.size, self.kernel, self.stride, self.padding, self.dilation
        return (
            rf"\text{{{self.axis}}} = \left\lfloor \frac{{{n} + 2 \cdot {p} - {d} \cdot ({k} - 1) - 1}}{{{s}}}"
            rf"\right\rfloor + 1 = \left\lfloor \frac{{{n + 2 * p - d * (k - 1) - 1}}}{{{s}}} \right\rfloor + 1"
            rf" = {self.output}"
        )


def size_formula(
    height: int, width: int, kernel: int, stride: int = 1, padding: int = 0, dilation: int = 1
) -> tuple[SizeFormula, SizeFormula]:
    """The output height and width of a convolution or pooling, each with its filled-in formula."""
    return tuple(
        SizeFormula(axis, n, kernel, stride, padding, dilation, output_size(n, kernel, stride, padding, dilation))
        for axis, n in (("height", height), ("width", width))
    )


def image_tensor(image: Image.Image, mode: str = "grey", max_side: int | None = None) -> Tensor:
    """A picture as ``[C, H, W]`` floats in ``[0, 1]``: one grey channel (ITU-R 601 luma) or three colour channels.

    Args:
        image: Any PIL image.
        mode: ``"grey"`` or ``"rgb"``.
        max_side: Shrink (never enlarge) so that the longer side is at most this many pixels.
    """
    if mode not in ("grey", "rgb"):
        raise ValueError(f"mode must be 'grey' or 'rgb'; got {mode!r}.")
    picture = image.convert("L" if mode == "grey" else "RGB")
    if max_side is not None and max(picture.size) > max_side:
        scale = max_side / max(picture.size)
        size = (max(1, round(picture.width * scale)), max(1, round(picture.height * scale)))
        picture = picture.resize(size, Image.Resampling.BILINEAR, reducing_gap=3.0)
    t = torch.frombuffer(bytearray(picture.tobytes()), dtype=torch.uint8)
    return t.view(picture.height, picture.width, -1).permute(2, 0, 1).to(torch.float32) / 255


def _maps(image: Tensor) -> Tensor:
    if image.dim() == 2:
        image = image[None]
    if image.dim() != 3 or min(image.shape) < 1:
        raise ValueError(f"Expected an image [H, W] or [C, H, W]; got shape {tuple(image.shape)}.")
    return image.to(torch.float32)


def _kernel(kernel: Tensor | Sequence[Sequence[float]]) -> Tensor:
    kernel = torch.as_tensor(kernel, dtype=torch.float32)
    if kernel.dim() != 2 or kernel.shape[0] != kernel.shape[1] or kernel.shape[0] < 1:
        raise ValueError(f"A kernel must be square, k×k; got shape {tuple(kernel.shape)}.")
    if not torch.isfinite(kernel).all():
        raise ValueError("Every kernel value must be a finite number.")
    return kernel


def pad(image: Tensor, padding: int, mode: str = "zeros") -> Tensor:
    """The image ``[C, H, W]`` with ``padding`` pixels added on every side (see :data:`PADDING_MODES`)."""
    maps = _maps(image)
    if mode not in PADDING_MODES:
        raise ValueError(f"Padding mode must be one of {', '.join(PADDING_MODES)}; got {mode!r}.")
    if padding == 0:
        return maps
    if mode == "reflect" and padding >= min(maps.shape[-2:]):
        raise ValueError(
            f"Reflect padding mirrors the image without its edge pixel, so it needs more than {padding} pixels on "
            f"each side; this image is {maps.shape[-2]}×{maps.shape[-1]}. Use less padding or another mode."
        )
    return F.pad(maps[None], (padding,) * 4, mode=PADDING_MODES[mode])[0]


def _check_fits(shape: Sequence[int], k: int, settings: ConvSettings) -> None:
    span = settings.dilation * (k - 1) + 1
    height, width = shape[-2] + 2 * settings.padding, shape[-1] + 2 * settings.padding
    if span > min(height, width):
        dilated = f" with dilation {settings.dilation} spans {span} pixels" if settings.dilation > 1 else ""
        raise ValueError(
            f"The {k}×{k} kernel{dilated} does not fit in the padded image, {height}×{width} "
            f"({shape[-2]}×{shape[-1]} plus {settings.padding} on each side): use a smaller kernel or dilation, "
            "or more padding."
        )


def _windows(padded: Tensor, k: int, stride: int, dilation: int) -> Tensor:
    """Every window the kernel covers, ``[C, H', W', k, k]`` (a view, no copy)."""
    span = dilation * (k - 1) + 1
    return padded.unfold(1, span, stride).unfold(2, span, stride)[..., ::dilation, ::dilation]


def convolve(image: Tensor, kernel: Tensor | Sequence[Sequence[float]], settings: ConvSettings | None = None) -> Tensor:
    """Slide ``kernel`` over each channel of ``image`` on its own: at every position, the sum of the window's
    pixels times the kernel's weights (no flip, as in a CNN).

    Args:
        image: ``[H, W]`` or ``[C, H, W]``.
        kernel: ``[k, k]``.
        settings: Stride, padding and dilation (default: stride 1, no padding).

    Returns:
        ``[C, H', W']`` with the sizes of :func:`size_formula`.

    Raises:
        ValueError: A kernel that is not square or not finite, or bigger than the padded image.
    """
    settings = settings or ConvSettings()
    maps, kernel = _maps(image), _kernel(kernel)
    k = kernel.shape[0]
    _check_fits(maps.shape, k, settings)
    padded = pad(maps, settings.padding, settings.padding_mode)
    return torch.einsum("chwij,ij->chw", _windows(padded, k, settings.stride, settings.dilation), kernel)


@dataclass(frozen=True)
class ConvStep:
    """One position of the sliding window: what the kernel sees, the products and the value written.

    Attributes:
        row: Output row.
        col: Output column.
        channel: The channel.
        window: The ``k × k`` input values under the kernel's taps (padding values included).
        kernel: The kernel.
        products: ``window × kernel``, element by element.
        value: Their sum: the output value at ``(row, col)``.
        top: Image row of the window's first tap; negative inside the top padding.
        left: Image column of the first tap.
        step: Pixels between taps (the dilation).
        in_padding: ``[k, k]``, True for taps that fall on padding rather than on the image.
    """

    row: int
    col: int
    channel: int
    window: Tensor
    kernel: Tensor
    products: Tensor
    value: float
    top: int
    left: int
    step: int
    in_padding: Tensor

    @property
    def box(self) -> tuple[int, int, int, int]:
        """``(top, left, bottom, right)`` of the window in image pixels, bottom and right exclusive."""
        span = self.step * (self.kernel.shape[0] - 1) + 1
        return self.top, self.left, self.top + span, self.left + span


def follow_position(
    index: int,
    before: tuple[int, int, int, int, int],
    after: tuple[int, int, int, int, int],
) -> int:
    """The output index, along one side, whose window covers the same place of the image after the settings changed.

    The window at output index ``i`` is centred on the input coordinate ``i·s − p + d(k − 1)/2``; that coordinate is
    carried over (scaled when the image's side changed) and the nearest index under the new settings whose window
    is centred there is returned, clamped to the new output.

    Args:
        index: The output index under ``before``.
        before: ``(input side, kernel, stride, padding, dilation)`` the index was chosen under.
        after: The same, now.
    """
    n0, k0, s0, p0, d0 = before
    n1, k1, s1, p1, d1 = after
    centre = index * s0 - p0 + d0 * (k0 - 1) / 2  # in input pixels of the old image
    centre = (centre + 0.5) * n1 / n0 - 0.5  # pixel centres line up when the side changed
    nearest = math.floor((centre + p1 - d1 * (k1 - 1) / 2) / s1 + 0.5)
    return min(max(nearest, 0), max(output_size(n1, k1, s1, p1, d1), 1) - 1)


def conv_step(
    image: Tensor,
    kernel: Tensor | Sequence[Sequence[float]],
    settings: ConvSettings | None = None,
    row: int = 0,
    col: int = 0,
    channel: int = 0,
) -> ConvStep:
    """The window, products and sum behind output ``(row, col)`` of :func:`convolve` on one channel.

    Raises:
        ValueError: As :func:`convolve`, or a position or channel outside the output.
    """
    settings = settings or ConvSettings()
    maps, kernel = _maps(image), _kernel(kernel)
    k = kernel.shape[0]
    _check_fits(maps.shape, k, settings)
    if not 0 <= channel < maps.shape[0]:
        raise ValueError(f"Channel {channel} is outside 0…{maps.shape[0] - 1}.")
    height, width = size_formula(*maps.shape[-2:], k, settings.stride, settings.padding, settings.dilation)
    rows, cols = height.output, width.output
    if not (0 <= row < rows and 0 <= col < cols):
        raise ValueError(f"Position ({row}, {col}) is outside the {rows}×{cols} output.")
    p, s, d = settings.padding, settings.stride, settings.dilation
    padded = pad(maps[channel : channel + 1], p, settings.padding_mode)[0]
    taps_r = row * s + d * torch.arange(k)
    taps_c = col * s + d * torch.arange(k)
    window = padded[taps_r][:, taps_c]
    outside_r = (taps_r < p) | (taps_r >= p + maps.shape[-2])
    outside_c = (taps_c < p) | (taps_c >= p + maps.shape[-1])
    products = window * kernel
    return ConvStep(
        row=row,
        col=col,
        channel=channel,
        window=window,
        kernel=kernel,
        products=products,
        value=float(products.sum()),
        top=row * s - p,
        left=col * s - p,
        step=d,
        in_padding=outside_r[:, None] | outside_c[None, :],
    )
