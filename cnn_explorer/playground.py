"""The playground's building blocks on their own: convolution, pooling, activations, weight sharing.

Everything here is small enough to compute by hand, and the page shows the hand computation next to the result:

- :func:`convolve` slides a kernel over an image (grey or each colour channel on its own) with stride, padding and
  dilation, as every CNN library does (cross-correlation: the kernel is not flipped); :func:`conv_step` is one
  position of the slide, the window, the products and their sum; :func:`size_formula` is the output size with the
  numbers filled in. The kernels of :data:`KERNELS` are the classic image-processing ones.
- :func:`pool` is max or average pooling, and :func:`translation_effect` measures how much a layer's maps and their
  pooled version change when the image moves by a few pixels.
- :data:`ACTIVATIONS` holds the nonlinearities with their closed-form derivatives; :func:`activation_curve` gets the
  derivative from autograd. :func:`gradient_flow` shows why deep sigmoid stacks stopped learning.
- :func:`weight_sharing` compares each conv layer's parameter count with a dense layer of the same input and output.

Convolution and pooling are written as sliding windows (``Tensor.unfold``), not as calls of ``F.conv2d`` or
``F.max_pool2d``: the tests compare them with those.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor, nn

from cnn_explorer.layers import capture_activations, list_layers
from cnn_explorer.zoo import LoadedModel

__all__ = [
    "ACTIVATIONS",
    "KERNELS",
    "KERNEL_SIZES",
    "PADDING_MODES",
    "POOLS",
    "ActivationSpec",
    "ConvSettings",
    "ConvStep",
    "GradientFlow",
    "KernelPreset",
    "SharingRow",
    "SizeFormula",
    "TranslationEffect",
    "activation_curve",
    "conv_step",
    "convolve",
    "default_translation_layer",
    "follow_position",
    "gradient_flow",
    "image_tensor",
    "output_size",
    "pad",
    "pool",
    "relative_change",
    "size_formula",
    "spatial_layers",
    "translation_effect",
    "weight_sharing",
]

# ── kernels ─────────────────────────────────────────────────────────────────────────────────────────────────────

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

# ── convolution ─────────────────────────────────────────────────────────────────────────────────────────────────

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


# ── pooling and translation ─────────────────────────────────────────────────────────────────────────────────────

#: Pooling kinds: name → how a window becomes one value.
POOLS: dict[str, Callable[[Tensor], Tensor]] = {
    "max": lambda windows: windows.amax(dim=(-2, -1)),
    "average": lambda windows: windows.mean(dim=(-2, -1)),
}


def pool(maps: Tensor, kind: str = "max", window: int = 2, stride: int | None = None) -> Tensor:
    """Max or average pooling of ``[C, H, W]`` (or ``[N, C, H, W]``) maps: each ``window × window`` block, moved by
    ``stride`` (default: the window, so blocks do not overlap), becomes its largest value or its mean.

    Raises:
        ValueError: Unknown kind, a window or stride below 1, or a window bigger than the maps.
    """
    if kind not in POOLS:
        raise ValueError(f"Pooling must be one of {', '.join(POOLS)}; got {kind!r}.")
    stride = window if stride is None else stride
    if window < 1 or stride < 1:
        raise ValueError(f"Window and stride must be at least 1; got window {window}, stride {stride}.")
    batched = maps if maps.dim() == 4 else _maps(maps)[None]
    if window > min(batched.shape[-2:]):
        raise ValueError(
            f"A {window}×{window} window does not fit in {batched.shape[-2]}×{batched.shape[-1]} maps: use a "
            "smaller window."
        )
    windows = batched.unfold(-2, window, stride).unfold(-2, window, stride)
    pooled = POOLS[kind](windows)
    return pooled if maps.dim() == 4 else pooled[0]


def spatial_layers(model: LoadedModel) -> list[str]:
    """The layers whose output is a stack of maps ``[C, h, w]`` with h, w > 1, in execution order."""
    return [info.name for info in list_layers(model) if len(info.output_shape) == 3 and min(info.output_shape[1:]) > 1]


def default_translation_layer(model: LoadedModel) -> str:
    """The layer that feeds the first pooling layer (what that pooling makes shift-tolerant), else the first layer
    with maps."""
    layers = list_layers(model)
    spatial = set(spatial_layers(model))
    for before, info in itertools.pairwise(layers):
        if "Pool" in info.kind and before.name in spatial:
            return before.name
    if not spatial:
        raise ValueError(f"{model.name} has no layer with spatial maps.")
    return next(info.name for info in layers if info.name in spatial)


def _shift(x: Tensor, pixels: int) -> Tensor:
    """``x`` moved ``pixels`` to the right; the columns that come in repeat the left edge."""
    if pixels == 0:
        return x
    return F.pad(x, (pixels, 0, 0, 0), mode="replicate")[..., : x.shape[-1]]


@dataclass(frozen=True)
class TranslationEffect:
    """How much a layer's maps change when the image moves, before and after pooling.

    Attributes:
        layer: The layer.
        shifts: Pixels the image moved to the right, ``0, 1, …``.
        maps_change: :func:`relative_change` of the layer's maps, unshifted → shifted, one per shift (in 0 … 1).
        pooled_change: The same for the pooled maps.
        kind: The pooling used.
        window: Its window.
        stride: Its stride.
    """

    layer: str
    shifts: tuple[int, ...]
    maps_change: tuple[float, ...]
    pooled_change: tuple[float, ...]
    kind: str
    window: int
    stride: int


def translation_effect(
    model: LoadedModel,
    x: Tensor,
    layer: str,
    *,
    kind: str = "max",
    window: int = 2,
    stride: int | None = None,
    max_shift: int = 8,
) -> TranslationEffect:
    """Shift the input 0…``max_shift`` pixels to the right and compare each shifted image's maps at ``layer`` with
    the unshifted ones, as they are and after pooling (:func:`relative_change`, over all channels).

    A convolution moves its maps along with the image (equivariance), so they differ position by position; pooling
    keeps only the strongest (or mean) value per block, which barely changes while the pattern stays inside its
    block: that is the translation tolerance pooling buys.

    Args:
        model: The model (its lock is held during the forward pass).
        x: One preprocessed input ``[1, C, H, W]``.
        layer: A layer with maps (see :func:`spatial_layers`).
        kind: A key of :data:`POOLS`.
        window: Pooling window.
        stride: Pooling stride (default: the window).
        max_shift: Largest shift, in input pixels.
    """
    if x.dim() != 4 or x.shape[0] != 1:
        raise ValueError(f"translation_effect takes one input [1, C, H, W]; got shape {tuple(x.shape)}.")
    if not 1 <= max_shift < x.shape[-1]:
        raise ValueError(f"The largest shift must be between 1 and {x.shape[-1] - 1} pixels; got {max_shift}.")
    stride = window if stride is None else stride
    shifts = tuple(range(max_shift + 1))
    batch = torch.cat([_shift(x, k) for k in shifts])
    maps = capture_activations(model, batch, [layer])[layer]
    if maps.dim() != 4:
        raise ValueError(f"{layer} outputs shape {tuple(maps.shape[1:])}, not maps [C, h, w]: pick a conv layer.")
    pooled = pool(maps, kind, window, stride)
    return TranslationEffect(
        layer=layer,
        shifts=shifts,
        maps_change=_relative_change(maps),
        pooled_change=_relative_change(pooled),
        kind=kind,
        window=window,
        stride=stride,
    )


def relative_change(before: Tensor, after: Tensor) -> float:
    """How much ``after`` differs from ``before``, from 0 (identical) to 1: ``‖after − before‖ / (‖before‖ +
    ‖after‖)``, norms over all values.

    Divided by the sum of both sizes, not by ``‖before‖`` alone, so it never exceeds 1 (triangle inequality) and
    reads as a share: 1 only when one is a negative multiple of the other (or exactly one is all zeros), and
    1/√2 ≈ 71 % for two equally strong patterns in entirely different places. Two all-zero maps have changed by 0.
    """
    if before.shape != after.shape:
        raise ValueError(f"Compare maps of the same shape; got {tuple(before.shape)} and {tuple(after.shape)}.")
    before, after = before.double(), after.double()
    scale = float(before.norm() + after.norm())
    return float((after - before).norm()) / scale if scale > 0 else 0.0


def _relative_change(batch: Tensor) -> tuple[float, ...]:
    return tuple(relative_change(batch[0], item) for item in batch)


# ── activations ─────────────────────────────────────────────────────────────────────────────────────────────────

_LEAKY_SLOPE = 0.01  # torch.nn.LeakyReLU's default


def _gelu_derivative(x: Tensor) -> Tensor:
    cdf = 0.5 * (1 + torch.erf(x / math.sqrt(2)))
    pdf = torch.exp(-0.5 * x**2) / math.sqrt(2 * math.pi)
    return cdf + x * pdf


@dataclass(frozen=True)
class ActivationSpec:
    """One nonlinearity.

    Attributes:
        key: Registry key.
        name: Display name.
        formula: ``f(x)`` in LaTeX.
        derivative_formula: ``f'(x)`` in LaTeX.
        function: ``f``, elementwise.
        derivative: ``f'`` in closed form (the tests check it against autograd).
        init_gain: The gain ``torch.nn.init`` recommends for it (``calculate_gain``): the weight scale that keeps
            signals the same size from layer to layer.
        note: One or two sentences for students.
    """

    key: str
    name: str
    formula: str
    derivative_formula: str
    function: Callable[[Tensor], Tensor]
    derivative: Callable[[Tensor], Tensor]
    init_gain: float
    note: str


#: The nonlinearities of the playground, keyed by name.
ACTIVATIONS: dict[str, ActivationSpec] = {
    spec.key: spec
    for spec in (
        ActivationSpec(
            "relu",
            "ReLU",
            r"\max(0, x)",
            r"1 \text{ if } x > 0 \text{ else } 0",
            torch.relu,
            lambda x: (x > 0).to(x.dtype),
            nn.init.calculate_gain("relu"),
            "Negative values become zero, positive ones pass unchanged. Its slope is exactly 1 wherever it is "
            "active, so gradients pass through many layers without shrinking.",
        ),
        ActivationSpec(
            "leaky_relu",
            "LeakyReLU",
            rf"x \text{{ if }} x > 0 \text{{ else }} {_LEAKY_SLOPE}\,x",
            rf"1 \text{{ if }} x > 0 \text{{ else }} {_LEAKY_SLOPE}",
            lambda x: F.leaky_relu(x, _LEAKY_SLOPE),
            lambda x: torch.where(x > 0, torch.ones_like(x), torch.full_like(x, _LEAKY_SLOPE)),
            nn.init.calculate_gain("leaky_relu", _LEAKY_SLOPE),
            f"ReLU with a small slope ({_LEAKY_SLOPE}) for negative inputs, so a unit that is switched off still "
            "gets a little gradient and can come back to life.",
        ),
        ActivationSpec(
            "sigmoid",
            "Sigmoid",
            r"\frac{1}{1 + e^{-x}}",
            r"\sigma(x)\,(1 - \sigma(x))",
            torch.sigmoid,
            lambda x: torch.sigmoid(x) * (1 - torch.sigmoid(x)),
            nn.init.calculate_gain("sigmoid"),
            "Squashes everything into (0, 1). Its slope is at most 0.25 and almost zero for large inputs, so every "
            "layer multiplies the gradient by a small number: after ten layers hardly anything is left.",
        ),
        ActivationSpec(
            "tanh",
            "tanh",
            r"\tanh(x)",
            r"1 - \tanh^2(x)",
            torch.tanh,
            lambda x: 1 - torch.tanh(x) ** 2,
            nn.init.calculate_gain("tanh"),
            "Squashes into (−1, 1), centred on zero (LeNet-5 uses it). Slope 1 at zero, but it saturates like the "
            "sigmoid for large inputs.",
        ),
        ActivationSpec(
            "gelu",
            "GELU",
            r"x\,\Phi(x)",
            r"\Phi(x) + x\,\varphi(x)",
            F.gelu,
            _gelu_derivative,
            nn.init.calculate_gain("relu"),  # torch has no gain for GELU; it behaves like ReLU for large inputs
            "x times the probability that a standard normal variable is below x: a smooth ReLU, used in "
            "transformers and ConvNeXt. Slightly negative for small negative inputs.",
        ),
    )
}


def _activation(key: str) -> ActivationSpec:
    if key not in ACTIVATIONS:
        raise ValueError(f"Unknown activation {key!r}. Activations: {', '.join(ACTIVATIONS)}.")
    return ACTIVATIONS[key]


def activation_curve(key: str, x: Tensor) -> tuple[Tensor, Tensor]:
    """``(f(x), f'(x))`` for the activation ``key``, the derivative computed by autograd."""
    spec = _activation(key)
    with torch.enable_grad():
        inputs = x.detach().clone().requires_grad_(True)
        y = spec.function(inputs)
        (dy,) = torch.autograd.grad(y.sum(), inputs)
    return y.detach(), dy


@dataclass(frozen=True)
class GradientFlow:
    """The gradient reaching each layer of a deep stack.

    Attributes:
        activation: Key of the activation between the layers.
        norms: ``‖∂L/∂W_l‖`` for layers ``l = 1 … depth`` (1 is nearest the input).
        depth: Hidden layers.
        width: Units per layer.
    """

    activation: str
    norms: tuple[float, ...]
    depth: int
    width: int


def gradient_flow(activation: str, depth: int = 20, width: int = 64, batch: int = 128, seed: int = 0) -> GradientFlow:
    """Backpropagate one batch through a seeded deep stack of dense layers and measure each layer's gradient.

    The stack is ``depth`` linear layers of ``width`` units, each followed by the activation, then a linear layer
    to 10 classes and cross-entropy against random labels. Weights use Glorot's normal initialization with the
    activation's recommended gain (:attr:`ActivationSpec.init_gain`), so every activation starts as fairly as it
    can; biases start at zero. The same seed gives the same inputs, labels and weight draws for every activation.

    Raises:
        ValueError: Unknown activation, or a size below 1.
    """
    spec = _activation(activation)
    if min(depth, width, batch) < 1:
        raise ValueError(f"Depth, width and batch must be at least 1; got {depth}, {width}, {batch}.")
    generator = torch.Generator().manual_seed(seed)
    inputs = torch.randn(batch, width, generator=generator)
    labels = torch.randint(0, 10, (batch,), generator=generator)
    weights = []
    for _ in range(depth):
        std = spec.init_gain * math.sqrt(2.0 / (width + width))
        weights.append((torch.randn(width, width, generator=generator) * std).requires_grad_(True))
    head = torch.randn(10, width, generator=generator) * math.sqrt(2.0 / (width + 10))
    with torch.enable_grad():
        h = inputs
        for w in weights:
            h = spec.function(h @ w.T)
        loss = F.cross_entropy(h @ head.T, labels)
        grads = torch.autograd.grad(loss, weights)
    return GradientFlow(activation, tuple(float(g.norm()) for g in grads), depth, width)


# ── weight sharing ──────────────────────────────────────────────────────────────────────────────────────────────


@dataclass(frozen=True)
class SharingRow:
    """One conv layer next to the dense layer that would map the same input to the same output.

    Attributes:
        layer: The conv layer's name.
        input_shape: ``(C, H, W)`` it reads.
        output_shape: ``(C', H', W')`` it writes.
        kernel: ``(kh, kw)``.
        conv_params: Its weights and biases: ``C' × C/groups × kh × kw + C'``.
        dense_params: A dense layer's: ``(C·H·W) × (C'·H'·W') + C'·H'·W'``.
    """

    layer: str
    input_shape: tuple[int, ...]
    output_shape: tuple[int, ...]
    kernel: tuple[int, int]
    conv_params: int
    dense_params: int

    @property
    def ratio(self) -> float:
        """How many times more parameters the dense layer needs."""
        return self.dense_params / max(self.conv_params, 1)


def weight_sharing(model: LoadedModel) -> list[SharingRow]:
    """Every conv layer's parameter count beside a dense layer's with the same input and output sizes.

    A conv layer reuses one small kernel per output channel at every position; a dense layer has its own weight for
    every (input value, output value) pair.
    """
    rows = []
    for info in list_layers(model):
        module = model.module.get_submodule(info.path)
        if not isinstance(module, nn.Conv2d) or info.call != 1:
            continue
        inputs, outputs = math.prod(info.input_shape), math.prod(info.output_shape)
        rows.append(
            SharingRow(
                layer=info.name,
                input_shape=tuple(info.input_shape),
                output_shape=tuple(info.output_shape),
                kernel=tuple(module.kernel_size),
                conv_params=sum(p.numel() for p in module.parameters()),
                dense_params=inputs * outputs + outputs,
            )
        )
    return rows
