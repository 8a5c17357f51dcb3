"""render.playground: the playground's drawing helpers, exact pixels for the colour rules, sizes for the layouts."""

from __future__ import annotations

import numpy as np
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import to_rgb
from matplotlib.figure import Figure

from cnn_explorer import render
from cnn_explorer.playground import ACTIVATIONS, KERNELS, activation_curve


def test_a_kernel_that_keeps_brightness_is_drawn_as_a_picture() -> None:
    output = torch.tensor([[[0.25, 1.5]]])
    shown = render.conv_output_image(output, KERNELS["gaussian"].kernel(3))
    assert (shown.vmin, shown.vmax, shown.cmap) == (0.0, 1.0, "gray")
    assert np.asarray(shown.image).tolist() == [[64, 255]]


def test_an_edge_kernel_is_drawn_around_zero() -> None:
    grey = render.conv_output_image(torch.tensor([[[-2.0, 0.0, 1.0]]]), KERNELS["sobel_x"].kernel(3))
    assert (grey.vmin, grey.vmax, grey.cmap) == (-2.0, 2.0, "RdBu_r")
    middle = np.asarray(grey.image)[0, 1]
    assert abs(int(middle[0]) - int(middle[2])) < 16  # zero is the near-white middle of RdBu_r
    colour = render.conv_output_image(torch.tensor([[[-2.0]], [[0.0]], [[2.0]]]), KERNELS["laplacian"].kernel(3))
    assert colour.cmap == "rgb" and np.asarray(colour.image)[0, 0].tolist() == [0, 128, 255]


def test_the_perturbation_is_grey_at_zero_and_black_or_white_at_epsilon() -> None:
    delta = torch.tensor([[[-0.01, 0.0, 0.01]]])
    shown = render.perturbation_image(delta, 0.01)
    assert np.asarray(shown.image).tolist() == [[0, 128, 255]]
    assert (shown.vmin, shown.vmax) == (-0.01, 0.01)


def test_window_zoom_frames_the_taps() -> None:
    region = torch.full((1, 5, 5), 0.5)
    zoom = render.window_zoom(region, [(1, 1), (1, 3)], image_box=(1, 1, 5, 5), cell=10)
    assert zoom.size == (50, 50)
    pixels = np.asarray(zoom)
    assert pixels[11, 15].tolist() == list(render.HIGHLIGHT_COLOUR)  # the top edge of tap (1, 1)
    assert pixels[25, 10].tolist() == list(render.PADDING_EDGE_COLOUR)  # the image's left edge
    assert pixels[25, 25].tolist() == [128, 128, 128]  # a pixel that is no tap


def test_the_figures() -> None:
    x = torch.linspace(-1, 1, 5)
    assert isinstance(render.activation_figure(x, {"ReLU": (x.relu(), (x > 0).float())}), Figure)
    assert isinstance(render.gradient_flow_figure({"ReLU": [1.0, 0.5], "Sigmoid": [1e-9, 0.1]}), Figure)
    assert isinstance(render.params_figure(["conv"], [280], [472_389_160]), Figure)


def test_every_activation_curve_shows_where_they_coincide() -> None:
    # For x > 0, ReLU, LeakyReLU and (nearly) GELU are the same line: each must still show pixels of its own colour.
    x = torch.linspace(-5, 5, 401)
    figure = render.activation_figure(x, {spec.name: activation_curve(key, x) for key, spec in ACTIVATIONS.items()})
    FigureCanvasAgg(figure).draw()
    pixels = np.asarray(figure.canvas.buffer_rgba())[..., :3].astype(int)
    values = figure.axes[0]
    box = values.get_window_extent()
    (left, _), (right, _) = values.transData.transform([(1.0, 0.0), (5.0, 0.0)])
    top = pixels.shape[0] - int(box.y1)
    region = pixels[top : pixels.shape[0] - int(box.y0), int(left) : int(right)]  # f(x) for 1 ≤ x ≤ 5
    shown = {
        line.get_label(): int((np.abs(region - np.array(to_rgb(line.get_color())) * 255).sum(-1) < 30).sum())
        for line in values.get_lines()
        if line.get_label() in {spec.name for spec in ACTIVATIONS.values()}
    }
    assert set(shown) == {spec.name for spec in ACTIVATIONS.values()}
    assert all(count >= 50 for count in shown.values()), shown  # ReLU had 0: LeakyReLU and GELU hid it
