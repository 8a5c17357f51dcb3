"""The playground's library: convolution, its size formula and one step of it, pooling, the translation demo,
activations, gradient flow and weight sharing.

References: ``F.conv2d`` and ``nn.Conv2d(padding_mode=…)``, ``F.max_pool2d`` / ``F.avg_pool2d``, the ``torch.nn``
activation modules, hand-computed small cases, and ``nn.Linear``'s own parameter count.
"""

import itertools
import math

import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from cnn_explorer.architectures import LeNet5, TinyVGG, describe_stack
from cnn_explorer.layers import capture_activations
from cnn_explorer.playground import (
    ACTIVATIONS,
    KERNEL_SIZES,
    KERNELS,
    PADDING_MODES,
    ConvSettings,
    activation_curve,
    conv_step,
    convolve,
    default_translation_layer,
    follow_position,
    gradient_flow,
    image_tensor,
    pad,
    pool,
    relative_change,
    size_formula,
    spatial_layers,
    translation_effect,
    weight_sharing,
)
from cnn_explorer.preprocess import Preprocess
from cnn_explorer.runspec import LayerSpec
from cnn_explorer.zoo import LoadedModel

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


def _wrap(module: nn.Module, input_size: tuple[int, int, int], name: str = "test") -> LoadedModel:
    channels, side, _ = input_size
    return LoadedModel(
        name=name,
        module=module.eval(),
        input_size=input_size,
        class_names=tuple(f"class {i}" for i in range(10)),
        preprocess=Preprocess(resize=side, crop=side, grayscale=channels == 1),
        summary=name,
        card=name,
    )


@pytest.fixture(scope="module")
def tinyvgg() -> LoadedModel:
    torch.manual_seed(0)
    return _wrap(TinyVGG(num_classes=10), (3, 64, 64), "tinyvgg")


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


# ── kernels ──────────────────────────────────────────────────────────────────────────────────────────────────────


def test_the_classic_kernels() -> None:
    assert KERNELS["sobel_x"].kernel(3).tolist() == [[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]]
    assert KERNELS["sharpen"].kernel(3).tolist() == [[0, -1, 0], [-1, 5, -1], [0, -1, 0]]
    assert KERNELS["emboss"].kernel(3).tolist() == [[-2, -1, 0], [-1, 1, 1], [0, 1, 2]]
    assert KERNELS["laplacian"].kernel(3).tolist() == [[0, 1, 0], [1, -4, 1], [0, 1, 0]]
    gaussian = torch.tensor([1, 4, 6, 4, 1], dtype=torch.float32)
    assert torch.equal(KERNELS["gaussian"].kernel(5), torch.outer(gaussian, gaussian) / 256)
    # Wikipedia's 5×5 unsharp masking: −1/256 · Gaussian-like table with −476 in the middle
    unsharp = -torch.outer(gaussian, gaussian)
    unsharp[2, 2] = 476
    assert torch.allclose(KERNELS["sharpen"].kernel(5), unsharp / 256)
    for size in KERNEL_SIZES:
        assert torch.equal(KERNELS["sobel_y"].kernel(size), KERNELS["sobel_x"].kernel(size).T)


@pytest.mark.parametrize("size", KERNEL_SIZES)
def test_kernel_sums_say_what_a_kernel_keeps(size: int) -> None:
    sums = {key: float(preset.kernel(size).sum()) for key, preset in KERNELS.items()}
    for key in ("identity", "box_blur", "gaussian", "sharpen", "emboss"):
        assert sums[key] == pytest.approx(1.0, abs=1e-6), key  # brightness kept
    for key in ("sobel_x", "sobel_y", "laplacian"):
        assert sums[key] == pytest.approx(0.0, abs=1e-6), key  # flat areas become zero


def test_an_unknown_kernel_size_is_refused() -> None:
    with pytest.raises(ValueError, match=r"Sobel x comes in 3×3, 5×5; got 7×7"):
        KERNELS["sobel_x"].kernel(7)


# ── convolution ──────────────────────────────────────────────────────────────────────────────────────────────────


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


# ── pooling and translation ──────────────────────────────────────────────────────────────────────────────────────


@pytest.mark.parametrize(("window", "stride"), [(2, None), (2, 1), (3, 2), (3, 3), (4, 2), (1, 1)])
def test_pooling_equals_torch(window: int, stride: int | None) -> None:
    maps = torch.randn(2, 4, 13, 10, generator=torch.Generator().manual_seed(window))
    torch.testing.assert_close(pool(maps, "max", window, stride), F.max_pool2d(maps, window, stride))
    torch.testing.assert_close(pool(maps, "average", window, stride), F.avg_pool2d(maps, window, stride))
    torch.testing.assert_close(pool(maps[0], "max", window, stride), F.max_pool2d(maps, window, stride)[0])
    height, width = size_formula(13, 10, window, stride or window)
    assert pool(maps[0], "max", window, stride).shape[-2:] == (height.output, width.output)


def test_pooling_by_hand_and_its_errors() -> None:
    maps = torch.tensor([[[1.0, 5, 2, 0], [3, 4, 8, 1], [0, 0, 1, 1], [2, 6, 1, 3]]])
    assert pool(maps, "max").tolist() == [[[5.0, 8.0], [6.0, 3.0]]]
    assert pool(maps, "average").tolist() == [[[3.25, 2.75], [2.0, 1.5]]]
    with pytest.raises(ValueError, match=r"5×5 window does not fit in 4×4 maps"):
        pool(maps, "max", 5)
    with pytest.raises(ValueError, match="Pooling must be one of max, average"):
        pool(maps, "median")


def test_the_translation_demo_against_a_hand_computation(tinyvgg: LoadedModel) -> None:
    x = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(7))
    layer = default_translation_layer(tinyvgg)
    assert layer == "relu_1_2"  # what max_pool_1 reads
    effect = translation_effect(tinyvgg, x, layer, kind="max", window=2, max_shift=4)
    assert effect.shifts == (0, 1, 2, 3, 4)
    assert effect.maps_change[0] == 0 and effect.pooled_change[0] == 0
    reference = capture_activations(tinyvgg, x, [layer])[layer]
    pooled_reference = F.max_pool2d(reference, 2)
    for k in effect.shifts[1:]:
        shifted = torch.cat([x[..., :1].expand(-1, -1, -1, k), x[..., :-k]], dim=-1)  # left edge repeated
        maps = capture_activations(tinyvgg, shifted, [layer])[layer]
        expected = float((maps - reference).norm() / (reference.norm() + maps.norm()))
        assert effect.maps_change[k] == pytest.approx(expected, rel=1e-5)
        pooled = F.max_pool2d(maps, 2)
        expected_pooled = float((pooled - pooled_reference).norm() / (pooled_reference.norm() + pooled.norm()))
        assert effect.pooled_change[k] == pytest.approx(expected_pooled, rel=1e-5)
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in tinyvgg.module.modules())


@pytest.mark.parametrize(
    ("before", "after", "expected"),
    [
        ([1.0, 0.0], [1.0, 0.0], 0.0),  # unchanged
        ([1.0, 0.0], [0.0, 1.0], 1 / math.sqrt(2)),  # the same pattern somewhere else: √2 / (1 + 1)
        ([3.0, 4.0], [-3.0, -4.0], 1.0),  # the opposite: 10 / (5 + 5), the largest change there is
        ([3.0, 4.0], [6.0, 8.0], 1 / 3),  # twice as strong: 5 / (5 + 10)
        ([0.0, 0.0], [0.0, 2.0], 1.0),  # something from nothing
        ([0.0, 0.0], [0.0, 0.0], 0.0),  # nothing stays nothing
        ([[2.0, 0.0], [0.0, 0.0]], [[2.0, 1.0], [0.0, 0.0]], 1 / 4.2360679775),  # 1 / (2 + √5)
    ],
)
def test_relative_change_by_hand_stays_within_0_and_1(before: list, after: list, expected: float) -> None:
    assert relative_change(torch.tensor(before), torch.tensor(after)) == pytest.approx(expected, abs=1e-9)


def test_relative_change_never_exceeds_one_where_the_old_measure_read_over_100_percent() -> None:
    before, after = torch.tensor([1.0, 0.0, 0.0]), torch.tensor([0.0, 1.2, 0.5])
    assert float((after - before).norm() / before.norm()) == pytest.approx(math.sqrt(2.69))  # 164 %: unreadable
    assert relative_change(before, after) == pytest.approx(math.sqrt(2.69) / (1 + 1.3))  # 71 %
    with pytest.raises(ValueError, match="same shape"):
        relative_change(before, torch.zeros(2))


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


def test_translation_layers_and_errors(tinyvgg: LoadedModel) -> None:
    assert spatial_layers(tinyvgg)[:3] == ["conv_1_1", "relu_1_1", "conv_1_2"]
    torch.manual_seed(0)
    lenet = _wrap(LeNet5(), (1, 32, 32), "lenet")
    assert default_translation_layer(lenet) == "tanh1"
    with pytest.raises(ValueError, match="largest shift"):
        translation_effect(tinyvgg, torch.zeros(1, 3, 64, 64), "conv_1_1", max_shift=64)


# ── activations ──────────────────────────────────────────────────────────────────────────────────────────────────

_MODULES = {
    "relu": nn.ReLU(),
    "leaky_relu": nn.LeakyReLU(),
    "sigmoid": nn.Sigmoid(),
    "tanh": nn.Tanh(),
    "gelu": nn.GELU(),
}


@pytest.mark.parametrize("key", list(ACTIVATIONS))
def test_activations_and_their_derivatives(key: str) -> None:
    x = torch.linspace(-6, 6, 1201, dtype=torch.float64)
    x = x[x.abs() > 1e-9]  # ReLU's kink: autograd and the closed form may pick different one-sided slopes
    y, dy = activation_curve(key, x)
    torch.testing.assert_close(y, _MODULES[key](x))
    torch.testing.assert_close(dy, ACTIVATIONS[key].derivative(x))


def test_the_gelu_derivative_by_finite_differences() -> None:
    x = torch.linspace(-4, 4, 81, dtype=torch.float64)
    h = 1e-6
    numeric = (F.gelu(x + h) - F.gelu(x - h)) / (2 * h)
    torch.testing.assert_close(ACTIVATIONS["gelu"].derivative(x), numeric, atol=1e-8, rtol=1e-6)


def test_gradients_vanish_through_sigmoids_but_not_relus() -> None:
    sigmoid, relu = gradient_flow("sigmoid"), gradient_flow("relu")
    assert len(sigmoid.norms) == len(relu.norms) == 20
    assert sigmoid.norms[0] / sigmoid.norms[-1] < 1e-6  # the first layer gets nothing
    assert relu.norms[0] / relu.norms[-1] > 1e-2
    assert gradient_flow("sigmoid") == sigmoid  # seeded
    assert gradient_flow("sigmoid", seed=1) != sigmoid
    with pytest.raises(ValueError, match="Unknown activation 'swish'"):
        gradient_flow("swish")


# ── weight sharing ───────────────────────────────────────────────────────────────────────────────────────────────


def test_weight_sharing_by_hand(tinyvgg: LoadedModel) -> None:
    rows = weight_sharing(tinyvgg)
    assert [row.layer for row in rows] == ["conv_1_1", "conv_1_2", "conv_2_1", "conv_2_2"]
    first = rows[0]
    assert first.input_shape == (3, 64, 64) and first.output_shape == (10, 62, 62) and first.kernel == (3, 3)
    assert first.conv_params == 10 * 3 * 3 * 3 + 10
    assert first.dense_params == (3 * 64 * 64) * (10 * 62 * 62) + 10 * 62 * 62
    assert first.ratio == first.dense_params / first.conv_params


def test_the_dense_count_is_nn_linear_s() -> None:
    tiny = _wrap(nn.Sequential(nn.Conv2d(1, 2, 3), nn.Flatten(), nn.Linear(32, 10)), (1, 6, 6), "tiny")
    (row,) = weight_sharing(tiny)
    assert row.conv_params == sum(p.numel() for p in tiny.module[0].parameters())
    assert row.dense_params == sum(p.numel() for p in nn.Linear(36, 32).parameters())


def test_the_dense_count_agrees_with_the_stack_planner(tinyvgg: LoadedModel) -> None:
    """The training page's ``describe_stack`` counts the same dense layer for the same convolutions."""
    conv, relu = LayerSpec("conv", channels=10, kernel=3), LayerSpec("relu")
    pool_ = LayerSpec("pool", kernel=2, stride=None)
    stack = describe_stack([conv, relu, conv, relu, pool_, conv, relu, conv, relu, pool_], 3, 64, 10)
    planned = [row.dense_params for row in stack if row.dense_params is not None]
    assert planned == [row.dense_params for row in weight_sharing(tinyvgg)]
    assert [row.params for row in stack if row.kind == "Conv2d"] == [row.conv_params for row in weight_sharing(tinyvgg)]
