"""AppTest for the Layers page: stepping through every layer, the arithmetic of one value, colour scopes, picking a
channel on the grid, and ImageNet models (resnet18, vgg16, mobilenet_v3_small) from a test hub cache.

The arithmetic the page shows is checked against ``explain_unit`` called directly on activations captured with the
library alone, for the same model, image and unit as the page's widgets say.
"""

import json
import re

import pyarrow as pa
import pytest
from streamlit.proto.WidgetStates_pb2 import WidgetState
from streamlit.testing.v1 import AppTest

from cnn_explorer import layers, render
from cnn_explorer.images import load_image, sample_bytes
from cnn_explorer.layers import capture, capture_layers, describe, effective_field, explain_unit, list_layers
from cnn_explorer.zoo import load_model

PAGE = "pages/layers.py"


def _assert_clean(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]
    texts = [*at.markdown, *at.caption, *at.error, *at.warning, *at.info, *at.code]
    assert "Traceback" not in "\n".join(str(element.value) for element in texts)
    assert not at.error, [e.value for e in at.error]


def _open_layers(at: AppTest) -> AppTest:
    at.switch_page(PAGE).run()
    _assert_clean(at)
    assert [str(title.value) for title in at.title] == ["Layers"]
    return at


def _select_model(at: AppTest, name: str) -> AppTest:
    at.sidebar.selectbox(key="model_name").select(name).run()
    _assert_clean(at)
    return at


def _current_layer(at: AppTest) -> str:
    return at.select_slider(key="layer_step").value


def _metric(at: AppTest, label: str) -> str:
    values = [m.value for m in at.metric if m.label == label]
    assert len(values) == 1, f"expected one {label!r} metric, got {[m.label for m in at.metric]}"
    return values[0]


def _widget_value(at: AppTest, key: str) -> int | None:
    found = [widget for widget in at.number_input if widget.key == key]
    return int(found[0].value) if found else None


class Reference:
    """The page's model and image, captured once with the library alone (no Streamlit, no cache)."""

    def __init__(self, at: AppTest) -> None:
        self.model = load_model(at.sidebar.selectbox(key="model_name").value)
        self.x = self.model.preprocess(load_image(sample_bytes(at.sidebar.selectbox(key="sample").value)))
        self.outputs, self.inputs = capture_layers(self.model, self.x)
        self.layers = list_layers(self.model)

    def unit_shown(self, at: AppTest):
        """``explain_unit`` for the layer and unit that the page's widgets point at."""
        layer = _current_layer(at)
        index = [_widget_value(at, "layer_channel")]
        if self.outputs[layer].dim() == 4:
            index += [_widget_value(at, "unit_row"), _widget_value(at, "unit_col")]
        return explain_unit(self.model, self.outputs, self.x, layer, index, inputs=self.inputs)


def _assert_arithmetic_matches(at: AppTest, reference: Reference) -> None:
    unit = reference.unit_shown(at)
    assert abs(unit.result - unit.captured) <= 1e-5 * max(1.0, abs(unit.captured))
    assert _metric(at, "Recomputed") == f"{unit.result:.6g}"
    assert _metric(at, "Captured") == f"{unit.captured:.6g}"
    assert f"{unit.captured:.6g}" == f"{float(reference.outputs[unit.layer][(0, *unit.index)]):.6g}"


def _step_through_every_layer(at: AppTest, reference: Reference) -> list[str]:
    names = [info.name for info in reference.layers]
    assert len(at.select_slider(key="layer_step").options) == len(names)
    seen = []
    for position, name in enumerate(names):
        _assert_clean(at)
        assert _current_layer(at) == name
        assert any(str(header.value).startswith(f"{name} · ") for header in at.subheader)
        _assert_arithmetic_matches(at, reference)
        if reference.outputs[name].dim() == 4:
            assert len(_grid_tiles(at)) == reference.outputs[name].shape[1], "the grid: one tile per map"
            assert len(at.image) >= 1, "the selected map"
        seen.append(name)
        next_button = at.button(key="layer_step_next")
        if position == len(names) - 1:
            assert next_button.disabled
        else:
            next_button.click().run()
    return seen


@pytest.fixture
def forward_passes(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts every forward pass the layers package runs through ``_run`` (capture, effective receptive field),
    patched in each module that looks it up."""
    calls = [0]
    original = capture._run

    def counted(root, x) -> None:
        calls[0] += 1
        original(root, x)

    for module in (capture, effective_field):
        monkeypatch.setattr(module, "_run", counted)
    return calls


@pytest.mark.parametrize("model_name", ["default", "lenet5-digits"])
def test_next_steps_through_every_layer_with_the_right_arithmetic(
    app: AppTest, expected, model_name: str, forward_passes: list[int]
) -> None:
    model_name = expected.default_model() if model_name == "default" else model_name
    if app.sidebar.selectbox(key="model_name").value != model_name:
        _select_model(app, model_name)
    _open_layers(app)
    reference = Reference(app)
    before = forward_passes[0]

    seen = _step_through_every_layer(app, reference)

    assert len(seen) == len(list_layers(load_model(model_name)))
    assert forward_passes[0] == before, "stepping must read what the first run recorded, not run the network again"


def test_previous_goes_back_and_is_disabled_on_the_first_layer(app: AppTest) -> None:
    _open_layers(app)
    first = _current_layer(app)
    assert app.button(key="layer_step_previous").disabled

    app.button(key="layer_step_next").click().run()
    app.button(key="layer_step_next").click().run()
    _assert_clean(app)
    assert _current_layer(app) == Reference(app).layers[2].name

    app.button(key="layer_step_previous").click().run()
    app.button(key="layer_step_previous").click().run()
    _assert_clean(app)
    assert _current_layer(app) == first


def test_the_slider_jumps_to_any_layer_and_pickers_stay_in_range(app: AppTest) -> None:
    _open_layers(app)
    reference = Reference(app)
    app.number_input(key="layer_channel").set_value(5).run()  # LeNet's c1 has 6 maps, TinyVGG's first conv more
    maps = sorted(
        (name for name, t in reference.outputs.items() if t.dim() == 4), key=lambda n: reference.outputs[n].numel()
    )
    for name in (maps[-1], maps[0], reference.layers[-1].name):
        app.select_slider(key="layer_step").set_value(name).run()
        _assert_clean(app)
        assert _current_layer(app) == name
        channels = reference.outputs[name].shape[1]
        assert 0 <= _widget_value(app, "layer_channel") < channels
        _assert_arithmetic_matches(app, reference)


def _grid_chart(at: AppTest):
    """The chart of the feature-map grid (AppTest has no class for charts: an element of type vega_lite_chart)."""
    charts = [chart for chart in at.get("vega_lite_chart") if (chart.key or "").startswith("layer_grid_")]
    assert len(charts) == 1, "one grid of feature maps"
    return charts[0]


def _grid_tiles(at: AppTest) -> list[dict]:
    """The grid chart's tile table, as the browser receives it (Arrow)."""
    (dataset,) = _grid_chart(at).proto.datasets
    return pa.ipc.open_stream(dataset.data.data).read_all().to_pylist()


def _click_tile(at: AppTest, channel: int | None) -> AppTest:
    """Run the page as after a click on the tile of ``channel`` (None: a click beside the maps).

    AppTest cannot click a chart, so this sends the widget state the browser sends on a click: the chart's point
    selection ``{"selection": {"tile": [{"channel": …}]}}`` (empty beside the maps), with every other widget as it is.
    """
    points = [] if channel is None else [{"channel": channel}]
    states = at._tree.get_widget_states()
    selection = json.dumps({"selection": {render.GRID_SELECTION: points}})
    states.widgets.append(WidgetState(id=_grid_chart(at).proto.id, string_value=selection))
    at._run(states)
    _assert_clean(at)
    return at


def test_every_colour_scope_draws_the_grid_with_its_range(app: AppTest) -> None:
    _open_layers(app)
    grids = {}
    for scope in render.SCALES:
        app.segmented_control(key="layer_scope").set_value(scope).run()

        _assert_clean(app)
        assert app.segmented_control(key="layer_scope").value == scope
        assert render.SCALES[scope].description in [str(caption.value) for caption in app.caption]
        grids[scope] = _grid_chart(app).proto.spec  # holds the grid image as a data URL
    assert grids["map"] != grids["layer"], "per-map colours differ from one range over the layer"


def test_a_small_map_shows_its_values_and_the_pooling_window(app: AppTest) -> None:
    _open_layers(app)
    reference = Reference(app)
    pooled = next(info.name for info in reference.layers if "Pool" in info.kind and len(info.output_shape) == 3)
    app.select_slider(key="layer_step").set_value(pooled).run()
    app.number_input(key="layer_channel").set_value(1).run()

    _assert_clean(app)
    _assert_arithmetic_matches(app, reference)
    height, width = reference.outputs[pooled].shape[-2:]
    cells = [str(element.proto.body).count("<td") for element in app.html if "<table" in str(element.proto.body)]
    window = reference.unit_shown(app).patch.shape
    assert window[0] * window[1] in cells, "the pooling window's table"
    if max(height, width) <= 16:
        assert height * width in cells, "the values of the selected map"


def test_the_effective_receptive_field_is_drawn_on_request(app: AppTest, forward_passes: list[int]) -> None:
    _open_layers(app)
    before = forward_passes[0]
    app.toggle(key="layer_erf").set_value(True).run()

    _assert_clean(app)
    assert any("∂ unit / ∂ pixel" in str(caption.value) for caption in app.caption)
    assert forward_passes[0] == before + 1, "one backward pass, cached afterwards"
    app.run()
    assert forward_passes[0] == before + 1


def test_a_library_error_becomes_a_message(app: AppTest, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args, **kwargs):
        raise ValueError("The arithmetic of a Mystery layer is not shown.")

    monkeypatch.setattr(layers, "explain_unit", refuse)
    _open_layers(app)

    assert any("Mystery layer" in str(info.value) for info in app.info)
    _assert_clean(app)


def test_downloads_offer_the_grid_and_the_selected_map(app: AppTest) -> None:
    _open_layers(app)
    labels = [button.label for button in app.download_button]
    channel = _widget_value(app, "layer_channel")
    assert labels == ["Download the grid (PNG)", f"Download channel {channel} (PNG)"]


def test_clicking_a_map_picks_its_channel_and_the_input_follows(app: AppTest) -> None:
    _open_layers(app)
    reference = Reference(app)
    layer = _current_layer(app)
    assert _widget_value(app, "layer_channel") == 0

    _click_tile(app, 3)
    assert _widget_value(app, "layer_channel") == 3, "the number input shows the clicked channel"
    assert _current_layer(app) == layer
    assert any(
        str(caption.value).startswith(f"All {reference.outputs[layer].shape[1]} maps, channel 3 framed")
        for caption in app.caption
    )
    _assert_arithmetic_matches(app, reference)  # the unit below is in channel 3 now

    app.number_input(key="layer_channel").set_value(5).run()  # the keyboard path still works …
    assert _widget_value(app, "layer_channel") == 5
    _click_tile(app, 3)  # … and clicking the map picked before it counts again
    assert _widget_value(app, "layer_channel") == 3
    _click_tile(app, None)  # a click beside the maps keeps the channel
    assert _widget_value(app, "layer_channel") == 3
    _assert_arithmetic_matches(app, reference)


def test_the_grid_tiles_carry_the_captured_values_of_their_maps(app: AppTest) -> None:
    _open_layers(app)
    reference = Reference(app)
    app.button(key="layer_step_next").click().run()
    output = reference.outputs[_current_layer(app)][0].double()

    tiles = _grid_tiles(app)

    assert [tile["channel"] for tile in tiles] == list(range(output.shape[0]))
    for tile in tiles:
        values = output[tile["channel"]]
        assert (tile["min"], tile["max"]) == (float(values.min()), float(values.max()))
        assert tile["mean"] == pytest.approx(float(values.mean()), rel=1e-9)
    boxes = [(tile["top"], tile["left"], tile["bottom"], tile["right"]) for tile in tiles]
    assert len(set(boxes)) == len(boxes) and all(bottom > top and right > left for top, left, bottom, right in boxes)


# Layers that each ImageNet model's page is stepped to: every kind that the built-in models lack.
IMAGENET_STOPS = {
    "resnet18": (
        "conv1",
        "bn1",  # batch norm
        "maxpool",
        "layer1.0.conv1",  # the first layer inside a residual block
        "layer1.0.bn2",
        "layer1.0.relu#2",  # the ReLU after the residual add: its input is bn2 + the block's input
        "layer2.0.downsample.0",  # the 1×1 convolution of a shortcut
        "layer2.0.downsample.1",
        "avgpool",  # adaptive average pooling
        "fc",
    ),
    "vgg16": ("features.0", "features.4", "avgpool", "classifier.0", "classifier.2", "classifier.6"),  # … dropout
}


def _assert_explained(at: AppTest, info) -> None:
    assert f"{info.name} · {info.kind}" in [str(header.value) for header in at.subheader]
    text = "\n".join(str(markdown.value) for markdown in at.markdown)
    assert info.description in text
    if info.block:
        assert describe(info.block) in text


@pytest.mark.parametrize("model_name", IMAGENET_STOPS)
def test_an_imagenet_model_explains_every_kind_of_layer(cached_hub, app: AppTest, model_name: str) -> None:
    _open_layers(app)
    _select_model(app, model_name)
    reference = Reference(app)
    infos = {info.name: info for info in reference.layers}
    kinds = {infos[name].kind for name in IMAGENET_STOPS[model_name]}
    assert {"Conv2d", "AdaptiveAvgPool2d", "Linear"} <= kinds
    assert ({"BatchNorm2d"} if model_name == "resnet18" else {"Dropout", "MaxPool2d"}) <= kinds

    for name in IMAGENET_STOPS[model_name]:
        app.select_slider(key="layer_step").set_value(name).run()

        _assert_clean(app)
        assert _current_layer(app) == name
        _assert_explained(app, infos[name])
        _assert_arithmetic_matches(app, reference)
        output = reference.outputs[name]
        if output.dim() == 4:
            assert len(_grid_tiles(app)) == output.shape[1]
        else:  # a vector: bars or a profile in a figure, never a grid of squashed maps
            assert not [chart for chart in app.get("vega_lite_chart") if (chart.key or "").startswith("layer_grid_")]
            assert app.image
        if name == "layer1.0.relu#2":  # the residual add, seen in the arithmetic of the ReLU that follows it
            unit = reference.unit_shown(app)
            added = reference.outputs["layer1.0.bn2"] + reference.outputs["maxpool"]
            assert unit.before == pytest.approx(float(added[(0, *unit.index)]), rel=1e-5, abs=1e-6)
            assert any(f"**{unit.before:.6g}**" in str(markdown.value) for markdown in app.markdown)


def test_the_arithmetic_of_a_resnet_conv_unit_picked_on_the_grid(cached_hub, app: AppTest) -> None:
    _open_layers(app)
    _select_model(app, "resnet18")
    reference = Reference(app)
    app.select_slider(key="layer_step").set_value("layer1.0.conv1").run()
    _click_tile(app, 7)
    app.number_input(key="unit_row").set_value(10).run()
    app.number_input(key="unit_col").set_value(41).run()

    _assert_clean(app)
    unit = reference.unit_shown(app)
    assert unit.index == (7, 10, 41)
    _assert_arithmetic_matches(app, reference)
    assert any(
        str(markdown.value).startswith("**Weighted sum** of `layer1.0.conv1` at [7, 10, 41]")
        for markdown in app.markdown
    )
    tables = sum(str(element.proto.body).count("<table") for element in app.html)
    assert tables >= 3 * 4, "patch, kernel and products of the four input channels that contribute most"
    assert any(f"Σ over 64 channel(s) = {unit.total:.6g}" in str(markdown.value) for markdown in app.markdown)
    # Every input channel's sum, in its row: the table's cells read back against explain_unit's sums.
    sums = next(str(element.proto.body) for element in app.html if "Σ patch × kernel" in str(element.proto.body))
    headers = re.findall(r"<tr><th[^>]*>(\d+)</th>", sums)
    cells = [float(value) for value in re.findall(r"<td[^>]*>([-\d.]+)</td>", sums)]
    assert [int(h) for h in headers] == list(range(64))
    decimals = len(re.search(r"<td[^>]*>-?\d+\.(\d+)</td>", sums).group(1))
    assert cells == pytest.approx(unit.channel_sums.double().tolist(), abs=0.51 * 10**-decimals)


def test_mobilenet_from_the_hub_cache_renders_its_first_layers(cached_hub, app: AppTest) -> None:
    _open_layers(app)
    app.button(key="layer_step_next").click().run()  # a later layer first: switching the model starts over
    _select_model(app, "mobilenet_v3_small")
    reference = Reference(app)
    assert _current_layer(app) == reference.layers[0].name

    for _ in range(6):  # conv, batch norm, hardswish, the depthwise conv, …
        _assert_clean(app)
        _assert_arithmetic_matches(app, reference)
        app.button(key="layer_step_next").click().run()
    _assert_clean(app)
    last = reference.layers[-1].name
    app.select_slider(key="layer_step").set_value(last).run()
    _assert_clean(app)
    _assert_arithmetic_matches(app, reference)
    assert any("Softmax" in str(markdown.value) for markdown in app.markdown)


def _unit_index(at: AppTest, reference: Reference) -> tuple[int, ...]:
    layer = _current_layer(at)
    index = (_widget_value(at, "layer_channel"),)
    if reference.outputs[layer].dim() == 4:
        index += (_widget_value(at, "unit_row"), _widget_value(at, "unit_col"))
    return index


def _strongest(values) -> tuple[int, ...]:
    """Where a tensor is largest, found independently of the page: the first position holding its maximum, or the
    middle of a map that holds one value everywhere (a channel silent on this image)."""
    peak = values.max()
    if bool((values == peak).all()):
        return tuple(side // 2 for side in values.shape)
    return tuple(int(i) for i in (values == peak).nonzero()[0])


def test_every_kind_of_layer_starts_on_its_strongest_unit(app: AppTest, expected) -> None:
    # max_pool_1's middle unit was a window of four zeros: "max = 0" teaches nothing.
    _open_layers(app)
    reference = Reference(app)
    for info in reference.layers:
        app.select_slider(key="layer_step").set_value(info.name).run()
        _assert_clean(app)
        output = reference.outputs[info.name][0]
        index = _unit_index(app, reference)
        if output.dim() == 3:
            assert index[0] == 0, "the first channel, unless the person picks another"
            assert index[1:] == _strongest(output[0]), info.name
        else:
            assert index == _strongest(output), info.name
        unit = reference.unit_shown(app)
        assert unit.captured == pytest.approx(float(output[index[0]].max()))
        if unit.operation == "max":
            assert unit.result > 0 and unit.patch.abs().sum() > 0, "a window that holds the map's maximum"
    best, _ = expected.default_top()
    assert reference.model.class_names[index[0]] == best, "the logits start on the predicted class"


def test_a_chosen_unit_stays_for_its_image_and_the_default_follows_the_new_one(app: AppTest, expected) -> None:
    _open_layers(app)
    app.select_slider(key="layer_step").set_value("max_pool_1").run()
    app.number_input(key="unit_row").set_value(3).run()
    app.number_input(key="unit_col").set_value(4).run()
    app.number_input(key="layer_channel").set_value(2).run()  # another channel: the chosen unit stays
    _assert_clean(app)
    assert (_widget_value(app, "unit_row"), _widget_value(app, "unit_col")) == (3, 4)

    sample, _ = expected.sample_predicted_otherwise(expected.default_model())
    app.sidebar.selectbox(key="sample").select(sample).run()  # another image: its own strongest unit
    _assert_clean(app)
    reference = Reference(app)
    assert _current_layer(app) == "max_pool_1" and _widget_value(app, "layer_channel") == 2, "layer and channel stay"
    assert _unit_index(app, reference)[1:] == _strongest(reference.outputs["max_pool_1"][0, 2])
    _assert_arithmetic_matches(app, reference)

    app.number_input(key="layer_channel").set_value(5).run()  # not chosen any more: the unit follows the channel
    _assert_clean(app)
    assert _unit_index(app, reference)[1:] == _strongest(reference.outputs["max_pool_1"][0, 5])


def test_another_model_starts_on_its_first_layer_and_channel(app: AppTest) -> None:
    _open_layers(app)
    app.select_slider(key="layer_step").set_value("conv_1_2").run()
    app.number_input(key="layer_channel").set_value(5).run()
    _select_model(app, "lenet5-digits")
    reference = Reference(app)
    assert _current_layer(app) == reference.layers[0].name
    assert _widget_value(app, "layer_channel") == 0
    _assert_arithmetic_matches(app, reference)


def test_cached_figures_are_saved_as_st_pyplot_saves_them() -> None:
    """The colour bar and the histogram are cached PNGs shown with st.image: the same picture st.pyplot showed, only
    if they are saved with st.pyplot's own savefig settings (this fails when Streamlit changes them)."""
    import io

    from PIL import Image
    from streamlit.elements import pyplot as st_pyplot

    from cnn_explorer.ui.core import PYPLOT_SAVEFIG, figure_png

    assert PYPLOT_SAVEFIG == st_pyplot._DEFAULT_SAVEFIG_OPTIONS
    figure = render.colourbar_figure(-1.0, 2.0, "RdBu_r", "per layer range")
    expected = io.BytesIO()
    figure.savefig(expected, **st_pyplot._DEFAULT_SAVEFIG_OPTIONS)
    png = figure_png(figure)
    assert png == expected.getvalue()
    assert Image.open(io.BytesIO(png)).format == "PNG"


@pytest.mark.parametrize(("width", "layout"), [(320, 320), (None, "stretch"), (5000, 5000)])
def test_a_sized_png_is_what_streamlit_sends_and_streamlit_sends_it_untouched(width, layout) -> None:
    """A cached figure shrunk once by ``sized_png`` shows the very pixels Streamlit would send after shrinking it on
    every run, and Streamlit then passes its bytes on as they are."""
    import io

    import numpy as np
    from PIL import Image
    from streamlit.elements.lib import image_utils
    from streamlit.elements.lib.layout_utils import LayoutConfig

    from cnn_explorer.ui.core import figure_png, sized_png

    png = figure_png(render.colourbar_figure(-1.0, 2.0, "RdBu_r", "per layer range"))  # 200 dpi: wider than 320
    if layout == "stretch":  # wider than Streamlit's widest content
        buffer = io.BytesIO()
        Image.fromarray(np.random.default_rng(0).integers(0, 256, (300, 2000, 4), dtype=np.uint8)).save(buffer, "PNG")
        png = buffer.getvalue()
    config = LayoutConfig(width=layout)
    streamlit_sends = image_utils._ensure_image_size_and_format(png, config, "PNG")
    sized = sized_png(png, width)

    assert image_utils._ensure_image_size_and_format(sized, config, "PNG") == sized  # untouched
    pixels = (np.asarray(Image.open(io.BytesIO(data))) for data in (sized, streamlit_sends))
    assert np.array_equal(*pixels)
    assert (sized == png) == (width == 5000), "shrunk only when wider than shown"


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "L"])
@pytest.mark.parametrize("width", [320, None])
def test_a_shown_image_is_the_bytes_streamlit_sends_for_the_picture(mode, width) -> None:
    """``shown_image`` encodes a picture once as ``st.image(picture, width=…)`` does on every run: the same format
    (JPEG at quality 100 without alpha, else PNG), the same shrink, the same bytes, which Streamlit then sends as
    they are."""
    import numpy as np
    from PIL import Image
    from streamlit.elements.lib import image_utils
    from streamlit.elements.lib.layout_utils import LayoutConfig

    from cnn_explorer.ui.core import shown_image

    pixels = np.random.default_rng(1).integers(0, 256, (400, 1600, 4), dtype=np.uint8)
    picture = Image.fromarray(pixels).convert(mode)
    config = LayoutConfig(width=width or "stretch")
    image_format = image_utils._validate_image_format_string(picture, "auto")
    streamlit_sends = image_utils._ensure_image_size_and_format(
        image_utils._pil_to_bytes(picture, image_format), config, image_format
    )

    data, shown_format = shown_image(picture, width)

    assert shown_format == image_format == ("PNG" if mode == "RGBA" else "JPEG")
    assert data == streamlit_sends
    assert image_utils._ensure_image_size_and_format(data, config, shown_format) == data


def test_filters_and_statistics_are_drawn_only_when_opened(app: AppTest, monkeypatch: pytest.MonkeyPatch) -> None:
    """The closed "Filters and statistics" expander drew a Matplotlib histogram for every new layer, 183 ms of a
    277 ms step; it now runs its content only when opened, and shows the same kernels and statistics then."""
    import cnn_explorer.ui

    drawn: list[str] = []
    original = cnn_explorer.ui.filters_and_statistics
    monkeypatch.setattr(
        cnn_explorer.ui, "filters_and_statistics", lambda *a, **k: drawn.append(a[1]) or original(*a, **k)
    )
    _open_layers(app)
    app.button(key="layer_step_next").click().run()
    (closed,) = [e for e in app.expander if e.label == "Filters and statistics"]
    assert drawn == [] and not closed.caption and not closed.image

    app.session_state["layer_filters"] = True  # the person opens it
    app.run()
    _assert_clean(app)
    (opened,) = [e for e in app.expander if e.label == "Filters and statistics"]
    assert drawn == [_current_layer(app)] == ["relu_1_1"]
    kernels, statistics = (c.value for c in opened.caption)
    assert kernels == "A ReLU layer has no kernels." and "of the values are exactly zero" in statistics
    assert len(opened.image) == 1  # the histogram


def test_a_layer_channel_or_scale_seen_before_is_not_drawn_again(app: AppTest, monkeypatch: pytest.MonkeyPatch) -> None:
    """The grid, its chart and the chosen map are cached by what they show: going back draws and encodes nothing,
    and what the page shows is the same. Each run also draws the next layer as it would be shown (the page prepares
    it), so the draws are counted per layer."""
    drawn: list[tuple[float, int, str]] = []
    original = render.feature_grid

    def counted(maps, scope="layer", *args, **kwargs):
        drawn.append((float(maps.sum()), kwargs.get("highlight"), scope))
        return original(maps, scope, *args, **kwargs)

    monkeypatch.setattr(render, "feature_grid", counted)
    from cnn_explorer.ui.layer_cache import cached_maps_pictures, wait_for_prepared_layers

    cached_maps_pictures.clear()
    _open_layers(app)
    reference = Reference(app)
    names = [info.name for info in reference.layers]

    def drawn_for(layer: int) -> list[tuple[int, str]]:
        total = float(reference.outputs[names[layer]][0].sum())
        return [(channel, scope) for value, channel, scope in drawn if value == pytest.approx(total, rel=1e-6)]

    first = (_grid_chart(app).proto.spec, _grid_tiles(app))
    scales = list(render.SCALES)
    app.number_input(key="layer_channel").set_value(1).run()
    app.segmented_control(key="layer_scope").set_value(scales[0]).run()
    assert drawn_for(0) == [(0, "layer"), (1, "layer"), (1, scales[0])]

    app.segmented_control(key="layer_scope").set_value("layer").run()
    app.number_input(key="layer_channel").set_value(0).run()
    app.button(key="layer_step_next").click().run()
    app.button(key="layer_step_previous").click().run()
    wait_for_prepared_layers()  # the next layer is drawn in a thread once a run has ended

    _assert_clean(app)
    assert drawn_for(0) == [(0, "layer"), (1, "layer"), (1, scales[0])], "nothing of the first layer drawn again"
    assert drawn_for(1) == [(0, "layer"), (1, "layer"), (1, scales[0])], "the second, each once, before it was shown"
    assert drawn_for(2) == [(0, "layer")], "the third, prepared while the second was shown"
    assert (_grid_chart(app).proto.spec, _grid_tiles(app)) == first


def test_a_vector_layer_seen_before_is_not_drawn_again(app: AppTest, monkeypatch: pytest.MonkeyPatch) -> None:
    drawn: list[str] = []
    original = render.vector_figure

    def counted(values, labels=None, title="", *args, **kwargs):
        drawn.append(title)
        return original(values, labels, title, *args, **kwargs)

    monkeypatch.setattr(render, "vector_figure", counted)
    _open_layers(app)
    while not app.button(key="layer_step_next").disabled:
        app.button(key="layer_step_next").click().run()
    last = _current_layer(app)
    app.button(key="layer_step_previous").click().run()
    app.button(key="layer_step_next").click().run()

    _assert_clean(app)
    assert drawn and drawn[-1] == last and len(drawn) == len(set(drawn)), "each vector layer drawn once"
    assert app.image, "the bars are shown"


def test_the_next_layer_is_drawn_before_next_is_clicked(app: AppTest, monkeypatch: pytest.MonkeyPatch) -> None:
    from cnn_explorer.ui.layer_cache import cached_maps_pictures, wait_for_prepared_layers

    drawn = []  # the sums of the maps drawn into a grid: which layer each grid was drawn for
    feature_grid = render.feature_grid
    monkeypatch.setattr(
        render,
        "feature_grid",
        lambda output, *a, **k: drawn.append(float(output.sum())) or feature_grid(output, *a, **k),
    )
    cached_maps_pictures.clear()
    _open_layers(app)
    wait_for_prepared_layers()  # drawn in a thread once the run has ended, while the browser draws this layer
    reference = Reference(app)
    names = [info.name for info in reference.layers]
    sums = {name: float(reference.outputs[name][0].sum()) for name in names[:3]}
    assert drawn == pytest.approx([sums[names[0]], sums[names[1]]], rel=1e-6), "this layer, then the next"

    drawn.clear()
    app.button(key="layer_step_next").click().run()
    wait_for_prepared_layers()
    _assert_clean(app)
    assert _current_layer(app) == names[1]
    assert drawn == pytest.approx([sums[names[2]]], rel=1e-6), "the shown layer came from the cache"
