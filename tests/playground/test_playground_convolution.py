"""playground.convolution: convolution, its size formula and one step of it.

References: ``F.conv2d`` and ``nn.Conv2d(padding_mode=…)``, and hand-computed small cases.
"""

import itertools
import math

import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from cnn_explorer.playground import (
    KERNEL_SIZES,
    KERNELS,
    PADDING_MODES,
    ConvSettings,
    conv_step,
    convolve,
    follow_position,
    image_tensor,
    pad,
    size_formula,
)

SETTINGS = [
    ConvSettings(),
    ConvSettings(stride=2),
    ConvSettings(padding=1),
    ConvSettings(padding=2, padding_mode="reflect"),
    ConvSettings(padding=1, padding_mode="replicate", stride=3),
    ConvSettings(padding=2, padding_mode="zeros", dilation=2),
    ConvSettings(padding=3, padding_mode="reflect", dilation=3, stride=2),
    ConvSettings(padding=1, padding_mode="replicate", dilation=2),
]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _reference_conv(image: torch.Tensor, kernel: torch.Tensor, s: ConvSettings) -> torch.Tensor:
    """Torch's own convolution, depthwise: F.conv2d for zero padding, nn.Conv2d's padding_mode otherwise."""
    channels, k = image.shape[0], kernel.shape[0]
    weight = kernel.expand(channels, 1, k, k)
    if s.padding_mode == "zeros":
        return F.conv2d(image[None], weight, stride=s.stride, padding=s.padding, dilation=s.dilation, groups=channels)[
            0
        ]
    conv = nn.Conv2d(
        channels,
        channels,
        k,
        stride=s.stride,
        padding=s.padding,
        dilation=s.dilation,
        groups=channels,
        bias=False,
        padding_mode=s.padding_mode,
    )
    with torch.no_grad():
        conv.weight.copy_(weight)
        return conv(image[None])[0]


@pytest.mark.parametrize("preset", list(KERNELS))
@pytest.mark.parametrize("size", KERNEL_SIZES)
@pytest.mark.parametrize("channels", [1, 3])
def test_convolution_equals_torch_for_every_preset_and_setting(preset: str, size: int, channels: int) -> None:
    image = torch.rand(channels, 19, 24, generator=torch.Generator().manual_seed(size + channels))
    kernel = KERNELS[preset].kernel(size)
    for settings in SETTINGS:
        ours = convolve(image, kernel, settings)
        expected = _reference_conv(image, kernel, settings)
        assert ours.shape == expected.shape, settings
        torch.testing.assert_close(ours, expected, atol=1e-5, rtol=1e-5, msg=str(settings))


def test_an_edited_kernel_equals_torch() -> None:
    generator = torch.Generator().manual_seed(5)
    image, kernel = torch.rand(3, 12, 9, generator=generator), torch.randn(5, 5, generator=generator)
    for settings in SETTINGS:
        torch.testing.assert_close(convolve(image, kernel, settings), _reference_conv(image, kernel, settings))


def test_a_grey_image_of_two_dimensions_is_one_channel() -> None:
    image = torch.rand(8, 8, generator=torch.Generator().manual_seed(0))
    assert convolve(image, KERNELS["box_blur"].kernel(3)).shape == (1, 6, 6)


def test_a_hand_computed_convolution() -> None:
    image = torch.tensor([[1.0, 2, 3], [4, 5, 6], [7, 8, 9]])
    sobel = KERNELS["sobel_x"].kernel(3)
    assert convolve(image, sobel).tolist() == [[[8.0]]]  # (3−1) + 2·(6−4) + (9−7)
    # zero padding 1, stride 2: four windows, e.g. top left [[0,0,0],[0,1,2],[0,4,5]] → 2·2 + 5 = 9
    assert convolve(image, sobel, ConvSettings(stride=2, padding=1)).tolist() == [[[9.0, -9.0], [21.0, -21.0]]]
    corner = torch.zeros(3, 3)
    corner[0, 0] = 1  # reads the top-left tap: at output (0, 0) that is the padding pixel above-left of pixel 1
    padded_corner = {"zeros": 0.0, "reflect": 5.0, "replicate": 1.0}
    for mode, value in padded_corner.items():
        assert convolve(image, corner, ConvSettings(padding=1, padding_mode=mode))[0, 0, 0] == value, mode


def test_padding_modes() -> None:
    row = torch.tensor([[[1.0, 2, 3, 4]]])
    assert pad(row, 2, "zeros")[0, 2].tolist() == [0, 0, 1, 2, 3, 4, 0, 0]
    assert pad(row.expand(1, 3, 4), 2, "reflect")[0, 2].tolist() == [3, 2, 1, 2, 3, 4, 3, 2]
    assert pad(row, 2, "replicate")[0, 2].tolist() == [1, 1, 1, 2, 3, 4, 4, 4]
    assert set(PADDING_MODES) == {"zeros", "reflect", "replicate"}


@pytest.mark.parametrize("settings", SETTINGS, ids=str)
@pytest.mark.parametrize("k", KERNEL_SIZES)
def test_the_formula_gives_the_output_size(settings: ConvSettings, k: int) -> None:
    image = torch.rand(1, 23, 30)
    height, width = size_formula(23, 30, k, settings.stride, settings.padding, settings.dilation)
    assert convolve(image, torch.ones(k, k), settings).shape[-2:] == (height.output, width.output)
    conv = nn.Conv2d(1, 1, k, stride=settings.stride, padding=settings.padding, dilation=settings.dilation)
    assert conv(image[None]).shape[-2:] == (height.output, width.output)
    n, s, p, d = 23, settings.stride, settings.padding, settings.dilation
    assert height.latex.endswith(f"= {height.output}")
    assert rf"\frac{{{n} + 2 \cdot {p} - {d} \cdot ({k} - 1) - 1}}{{{s}}}" in height.latex
    assert rf"\frac{{{n + 2 * p - d * (k - 1) - 1}}}{{{s}}}" in height.latex


def test_one_step_of_the_slide_is_the_output_value() -> None:
    image = torch.rand(3, 11, 13, generator=torch.Generator().manual_seed(3))
    kernel = torch.randn(3, 3, generator=torch.Generator().manual_seed(4))
    for settings in SETTINGS:
        out = convolve(image, kernel, settings)
        for channel, row, col in itertools.product(range(3), range(out.shape[1]), range(out.shape[2])):
            step = conv_step(image, kernel, settings, row, col, channel)
            assert step.value == pytest.approx(float(out[channel, row, col]), abs=1e-5)
            torch.testing.assert_close(step.products, step.window * kernel)


def test_a_step_shows_its_window_in_image_coordinates() -> None:
    image = torch.arange(36, dtype=torch.float32).view(1, 6, 6)
    settings = ConvSettings(stride=2, padding=1, dilation=2)
    step = conv_step(image, torch.ones(3, 3), settings, row=0, col=1)
    assert (step.top, step.left) == (-1, 1)  # rows −1, 1, 3 and columns 1, 3, 5
    assert step.box == (-1, 1, 4, 6)
    assert step.in_padding.tolist() == [[True] * 3, [False] * 3, [False] * 3]
    assert step.window.tolist() == [[0, 0, 0], [7, 9, 11], [19, 21, 23]]
    assert step.value == 90.0


def test_convolution_errors_say_what_to_change() -> None:
    image = torch.rand(1, 4, 4)
    with pytest.raises(ValueError, match=r"5×5 kernel does not fit in the padded image, 4×4"):
        convolve(image, torch.ones(5, 5))
    with pytest.raises(ValueError, match=r"dilation 3 spans 7 pixels"):
        convolve(image, torch.ones(3, 3), ConvSettings(padding=1, dilation=3))
    with pytest.raises(ValueError, match="Reflect padding"):
        convolve(image, torch.ones(3, 3), ConvSettings(padding=4, padding_mode="reflect"))
    with pytest.raises(ValueError, match="square"):
        convolve(image, torch.ones(3, 2))
    with pytest.raises(ValueError, match="finite"):
        convolve(image, torch.tensor([[math.nan]]))
    with pytest.raises(ValueError, match=r"Stride must be a whole number ≥ 1"):
        ConvSettings(stride=0)
    with pytest.raises(ValueError, match="Padding mode must be one of zeros, reflect, replicate"):
        ConvSettings(padding_mode="circular")
    with pytest.raises(ValueError, match=r"outside the 2×2 output"):
        conv_step(image, torch.ones(3, 3), row=2, col=0)
    with pytest.raises(ValueError, match="Expected an image"):
        convolve(torch.rand(1, 1, 4, 4), torch.ones(3, 3))


def test_image_tensor_is_the_picture_in_zero_to_one() -> None:
    picture = Image.new("RGB", (40, 20), (255, 128, 0))
    grey = image_tensor(picture, "grey")
    assert grey.shape == (1, 20, 40)
    assert float(grey[0, 0, 0]) == pytest.approx(picture.convert("L").getpixel((0, 0)) / 255)
    rgb = image_tensor(picture, "rgb", max_side=10)
    assert rgb.shape == (3, 5, 10)
    torch.testing.assert_close(rgb[:, 0, 0], torch.tensor([1.0, 128 / 255, 0.0]))
    assert image_tensor(picture, "rgb", max_side=100).shape == (3, 20, 40)  # never enlarged


@pytest.mark.parametrize(
    ("index", "before", "after", "expected"),
    [
        # (side, kernel, stride, padding, dilation). Index 100 at stride 1 covers pixels 100…102, centred on 101.
        (100, (256, 3, 1, 0, 1), (256, 3, 2, 0, 1), 50),  # 50·2 + 1 = 101
        (100, (256, 3, 1, 0, 1), (256, 3, 4, 0, 1), 25),  # 25·4 + 1 = 101 (the old page clamped to 63, the corner)
        (25, (256, 3, 4, 0, 1), (256, 3, 1, 0, 1), 100),  # and back
        (100, (256, 3, 1, 0, 1), (256, 3, 1, 2, 1), 102),  # 102 − 2 + 1 = 101
        (100, (256, 3, 1, 0, 1), (256, 3, 1, 0, 2), 99),  # dilated taps 99, 101, 103: centred on 101
        (100, (256, 3, 1, 0, 1), (256, 5, 1, 0, 1), 99),  # 5×5 over 99…103
        (100, (256, 3, 1, 0, 1), (128, 3, 1, 0, 1), 49),  # pixel 101 of 256 is 50.25 of 128; 49 + 1 = 50
        (3, (256, 3, 2, 0, 1), (256, 3, 4, 0, 1), 2),  # centre 7, halfway between 5 (index 1) and 9: half rounds up
        (0, (256, 3, 1, 4, 1), (256, 3, 1, 0, 1), 0),  # a window on the padding stays at the edge
        (126, (256, 3, 2, 0, 1), (256, 3, 4, 0, 1), 63),  # centre 253: the last window (63·4 + 1 = 253)
    ],
)
def test_the_step_window_follows_the_same_pixel(index: int, before: tuple, after: tuple, expected: int) -> None:
    assert follow_position(index, before, after) == expected
