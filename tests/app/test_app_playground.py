"""AppTest for the Playground and Fool-the-model pages: every view renders for both built-in models, and what the
pages say is the library called directly for the same image and settings."""

import re

import pytest
import torch
from streamlit.testing.v1 import AppTest

from cnn_explorer.featurevis import channel_scores, dataset_images, maximize_activation, top_images
from cnn_explorer.images import load_image, sample_bytes
from cnn_explorer.pixels import image_pixels
from cnn_explorer.playground import (
    KERNELS,
    ConvSettings,
    conv_step,
    convolve,
    gradient_flow,
    image_tensor,
    translation_effect,
    weight_sharing,
)
from cnn_explorer.robustness import attack, smallest_flip
from cnn_explorer.zoo import load_model

PLAYGROUND, ROBUSTNESS = "pages/playground.py", "pages/robustness.py"
VIEWS = ["convolution", "pooling", "activations", "sharing", "filters"]


def _assert_clean(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]
    texts = [*at.markdown, *at.caption, *at.error, *at.warning, *at.info, *at.success]
    assert "Traceback" not in "\n".join(str(element.value) for element in texts)
    assert not at.error, [e.value for e in at.error]


def _open(at: AppTest, page: str, model: str = "tinyvgg-shapes") -> AppTest:
    if model != "tinyvgg-shapes":
        at.sidebar.selectbox(key="model_name").select(model).run()
    at.switch_page(page).run()
    _assert_clean(at)
    return at


def _view(at: AppTest, view: str) -> AppTest:
    at.segmented_control(key="playground_view").set_value(view).run()
    _assert_clean(at)
    return at


def _image(at: AppTest):
    return load_image(sample_bytes(at.sidebar.selectbox(key="sample").value))


def _captions(at: AppTest) -> list[str]:
    return [str(c.value) for c in at.caption]


def _step_input(at: AppTest, side: str):
    """The step's "Output row" or "Output column" input (its key names the image and settings it belongs to)."""
    (found,) = [n for n in at.number_input if str(n.label).startswith(f"Output {side} (")]
    return found


def _position(at: AppTest) -> tuple[int, int]:
    return _step_input(at, "row").value, _step_input(at, "column").value


def _output_caption(output: torch.Tensor) -> str:
    return f"{output.shape[-1]}×{output.shape[-2]} output, values {float(output.min()):.3g} … {float(output.max()):.3g}"


@pytest.mark.parametrize("model", ["tinyvgg-shapes", "lenet5-digits"])
def test_every_view_renders(app: AppTest, model: str) -> None:
    at = _open(app, PLAYGROUND, model)
    assert [str(t.value) for t in at.title] == ["Playground"]
    for view in VIEWS:
        _view(at, view)
        assert at.subheader[0].value  # the view's title
    at.switch_page(ROBUSTNESS).run()
    _assert_clean(at)
    assert [str(t.value) for t in at.title] == ["Fooling the model"]


def test_the_kernel_preset_changes_the_output_to_the_right_numbers(app: AppTest) -> None:
    at = _view(_open(app, PLAYGROUND), "convolution")
    picture = image_tensor(_image(at), "grey", 256)
    identity = convolve(picture, KERNELS["identity"].kernel(3))
    assert any(c.startswith(_output_caption(identity)) for c in _captions(at)), _captions(at)
    for preset in ("sobel_x", "gaussian", "laplacian"):
        at.selectbox(key="conv_preset").select(preset).run()
        _assert_clean(at)
        output = convolve(picture, KERNELS[preset].kernel(3))
        assert any(c.startswith(_output_caption(output)) for c in _captions(at)), (preset, _captions(at))
        assert any(c.startswith(KERNELS[preset].summary) for c in _captions(at))
    at.segmented_control(key="conv_size").set_value(5).run()
    output = convolve(picture, KERNELS["laplacian"].kernel(5))
    assert any(c.startswith(_output_caption(output)) for c in _captions(at))


def test_stride_padding_dilation_and_one_step(app: AppTest) -> None:
    at = _view(_open(app, PLAYGROUND), "convolution")
    at.selectbox(key="conv_preset").select("sobel_y")
    at.segmented_control(key="conv_mode").set_value("rgb")
    at.slider(key="conv_stride").set_value(2)
    at.slider(key="conv_padding").set_value(2)
    at.segmented_control(key="conv_padding_mode").set_value("reflect")
    at.slider(key="conv_dilation").set_value(2).run()
    _assert_clean(at)
    picture = image_tensor(_image(at), "rgb", 256)
    settings = ConvSettings(stride=2, padding=2, padding_mode="reflect", dilation=2)
    kernel = KERNELS["sobel_y"].kernel(3)
    output = convolve(picture, kernel, settings)
    assert any(c.startswith(_output_caption(output)) for c in _captions(at))
    n = picture.shape[-2]
    latex = [str(element.value).strip("$\n ") for element in at.get("latex")]  # st.latex wraps the body in $$
    assert any(rf"\frac{{{n} + 2 \cdot 2 - 2 \cdot (3 - 1) - 1}}{{2}}" in text for text in latex), latex
    assert any(text.endswith(f"= {output.shape[-2]}") for text in latex), (latex, output.shape)

    row, col = _position(at)
    at.segmented_control(key="conv_channel").set_value(2).run()
    step = conv_step(picture, kernel, settings, row, col, channel=2)
    assert any(f"Sum of the 9 products: **{step.value:.6g}**" in str(m.value) for m in at.markdown)
    at.button(key="conv_next").click().run()
    _assert_clean(at)
    rows, cols = output.shape[-2:]
    expected = divmod((row * cols + col + 1) % (rows * cols), cols)  # left to right, then the next row, then over
    assert _position(at) == expected


def test_a_kernel_that_does_not_fit_is_explained(app: AppTest) -> None:
    at = _view(_open(app, PLAYGROUND, "lenet5-digits"), "convolution")  # its default sample is an 8×8 digit
    assert image_tensor(_image(at), "grey", 256).shape == (1, 8, 8)
    at.segmented_control(key="conv_size").set_value(5)
    at.slider(key="conv_dilation").set_value(2).run()
    assert not at.exception
    assert [e.value for e in at.error] == [
        "The 5×5 kernel with dilation 2 spans 9 pixels does not fit in the padded image, 8×8 (8×8 plus 0 on each "
        "side): use a smaller kernel or dilation, or more padding."
    ]
    at.slider(key="conv_padding").set_value(1).run()
    _assert_clean(at)  # 10×10 once padded: it fits again


def test_pooling_and_the_translation_demo(app: AppTest) -> None:
    at = _view(_open(app, PLAYGROUND), "pooling")
    model, image = load_model("tinyvgg-shapes"), _image(at)
    at.segmented_control(key="pool_kind").set_value("average")
    at.slider(key="pool_window").set_value(3).run()
    at.segmented_control(key="pool_source").set_value("feature map").run()
    _assert_clean(at)
    assert any(c.startswith("average pooled, window 3, stride 3") for c in _captions(at))
    effect = translation_effect(model, model.preprocess(image), "relu_1_2", kind="average", window=3, stride=3)
    text = "\n".join(str(m.value) for m in at.markdown)
    assert f"changed by **{effect.maps_change[-1]:.1%}**, the pooled maps by **{effect.pooled_change[-1]:.1%}**" in text
    assert all(0 <= change <= 1 for change in effect.maps_change + effect.pooled_change)
    assert any(c.startswith("Change = ‖after − before‖ / (‖before‖ + ‖after‖)") for c in _captions(at))


def test_pooling_draws_the_shift_curves_once_per_setting(app: AppTest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Toggling max and average pooling draws each curve figure once; the layer table is walked once per model."""
    from cnn_explorer import render
    from cnn_explorer.playground import pooling

    figures, walks = [], [0]
    curves, walk = render.curves_figure, pooling.list_layers

    def drawn(shifts, series, *args, **kwargs):
        figures.append(tuple(series))
        return curves(shifts, series, *args, **kwargs)

    def walked(model):
        walks[0] += 1
        return walk(model)

    monkeypatch.setattr(render, "curves_figure", drawn)
    monkeypatch.setattr(pooling, "list_layers", walked)
    at = _view(_open(app, PLAYGROUND), "pooling")
    for kind in ("average", "max", "average", "max"):
        at.segmented_control(key="pool_kind").set_value(kind).run()
        _assert_clean(at)
        assert any(c.startswith(f"{kind} pooled, window 2, stride 2") for c in _captions(at))
    assert [labels[1] for labels in figures] == ["after max pooling 2/2", "after average pooling 2/2"]
    assert walks[0] <= 3  # the layers with maps, the demo's layer (and its own look at the maps): once each
    assert len(at.image) == 3, "the image, the pooled image and the curves"


def test_a_stride_change_keeps_the_step_window_on_the_same_pixel(app: AppTest) -> None:
    at = _view(_open(app, PLAYGROUND), "convolution")
    at.sidebar.selectbox(key="sample").select("cat").run()  # 256×170 at "≤ 256 px"
    assert image_tensor(_image(at), "grey", 256).shape == (1, 170, 256)
    _step_input(at, "row").set_value(60)
    _step_input(at, "column").set_value(100).run()  # the 3×3 window over rows 60…62, columns 100…102
    at.slider(key="conv_stride").set_value(4).run()
    _assert_clean(at)
    # Centred on row 61, column 101: at stride 4, output (15, 25) covers rows 60…62 and columns 100…102 again.
    # (The old page clamped 60 and 100 into the 42×64 output: (41, 63), the bottom-right corner.)
    assert _position(at) == (15, 25)
    at.slider(key="conv_stride").set_value(1).run()  # and back where it was
    assert _position(at) == (60, 100)
    at.slider(key="conv_padding").set_value(2).run()  # the same pixels now sit 2 further into the padded image
    assert _position(at) == (62, 102)  # 62 − 2 + 1
    _assert_clean(at)


def test_a_new_image_or_model_starts_the_playground_s_choices_on_their_defaults(app: AppTest) -> None:
    at = _view(_open(app, PLAYGROUND), "convolution")
    _step_input(at, "row").set_value(3)
    _step_input(at, "column").set_value(5).run()
    at.sidebar.selectbox(key="sample").select("cat").run()  # a new image: the window starts on its centre
    _assert_clean(at)
    rows, cols = convolve(image_tensor(_image(at), "grey", 256), KERNELS["identity"].kernel(3)).shape[-2:]
    assert _position(at) == (rows // 2, cols // 2)
    _step_input(at, "row").set_value(7).run()  # a choice for this image stays while the image does
    at.selectbox(key="conv_preset").select("sobel_x").run()
    assert _step_input(at, "row").value == 7

    _view(at, "filters")
    at.number_input(key="fv_channel_tinyvgg-shapes").set_value(7).run()
    at.sidebar.selectbox(key="model_name").select("lenet5-digits").run()  # a new model: its own layer and channel
    _assert_clean(at)
    assert at.selectbox(key="fv_layer_lenet5-digits").value == "c5"
    assert at.number_input(key="fv_channel_lenet5-digits").value == 0


def test_an_unavailable_model_leaves_the_model_free_sections_working(app: AppTest) -> None:
    at = _open(app, PLAYGROUND, "resnet18")  # offline, with no weights in the hub cache
    model_free = (
        "Convolution, pooling of the image and "
        "the activation curves need no model and work below. The feature maps, the shift demo, weight sharing and what "
        "a filter wants to see read a trained network's layers, so they wait for a model that is available."
    )
    assert [str(i.value) for i in at.main.info] == [model_free]
    # Why and how to get it, once (the sidebar only points to the page): the model's own message.
    warnings = [str(w.value) for w in at.main.warning]
    assert len(warnings) == 1 and warnings[0].startswith("resnet18's weights are not on this computer"), warnings
    assert [str(t.value) for t in at.title] == ["Playground"]
    picture = image_tensor(_image(at), "grey", 256)
    output = convolve(picture, KERNELS["identity"].kernel(3))
    assert any(c.startswith(_output_caption(output)) for c in _captions(at)), _captions(at)

    _view(at, "pooling")
    assert at.segmented_control(key="pool_source").options == ["image"]
    assert any(c.startswith("max pooled, window 2, stride 2") for c in _captions(at))
    assert "The shift demo needs an available model: choose one in the sidebar." in _captions(at)

    _view(at, "activations")
    assert any(str(m.value).startswith("**ReLU** $f(x) = ") for m in at.markdown)  # the curves and formulas
    assert "A real feature map needs an available model: choose one in the sidebar." in _captions(at)
    assert any("layer 1 gets" in str(m.value) for m in at.markdown)  # gradient flow needs no model

    for view in ("sharing", "filters"):
        _view(at, view)
        assert [str(i.value) for i in at.main.info] == [model_free]
        assert not at.dataframe and not [b for b in at.button if b.key == "fv_run"]


def test_activations_and_the_gradient_flow(app: AppTest) -> None:
    at = _view(_open(app, PLAYGROUND), "activations")
    at.slider(key="act_depth").set_value(12).run()
    _assert_clean(at)
    text = "\n".join(str(m.value) for m in at.markdown)
    for key, name in (("sigmoid", "Sigmoid"), ("relu", "ReLU")):
        flow = gradient_flow(key, depth=12)
        assert f"**{name}**: layer 1 gets {flow.norms[0]:.2g}, layer 12 gets {flow.norms[-1]:.2g}" in text
    at.selectbox(key="act_apply").select("tanh").run()
    _assert_clean(at)
    assert any(c.startswith("after tanh: ") for c in _captions(at))


def test_weight_sharing_table_is_the_library_s(app: AppTest) -> None:
    at = _view(_open(app, PLAYGROUND), "sharing")
    rows = weight_sharing(load_model("tinyvgg-shapes"))
    table = at.dataframe[0].value
    assert list(table["layer"]) == [row.layer for row in rows]
    assert list(table["conv parameters"]) == [row.conv_params for row in rows]
    assert list(table["dense parameters"]) == [row.dense_params for row in rows]


def test_the_filter_view_runs_on_request(app: AppTest) -> None:
    at = _view(_open(app, PLAYGROUND), "filters")
    assert at.selectbox(key="fv_layer_tinyvgg-shapes").value == "conv_2_2"
    at.number_input(key="fv_channel_tinyvgg-shapes").set_value(3)
    at.slider(key="fv_steps").set_value(20).run()
    assert not at.image or all("excite" not in c for c in _captions(at))  # nothing computed before the click
    at.button(key="fv_run").click().run()
    _assert_clean(at)
    model = load_model("tinyvgg-shapes")
    result = maximize_activation(model, "conv_2_2", 3, steps=20, tv_weight=0.5, blur_every=4, seed=0, size=64)
    expected = f"{result.start_activation:.4g} for the starting noise → **{result.final_activation:.4g}** after 20"
    assert any(expected in c for c in _captions(at)), _captions(at)
    scores = channel_scores(model, "conv_2_2", dataset_images("shapes", 300))
    top = top_images(scores, 3)
    assert any(c.endswith(", ".join(f"{s:.3g}" for s in top.scores)) for c in _captions(at))
    assert top.activating == 0  # conv_2_2 is before its ReLU: no shape's mean is above zero, and the page says so
    assert [w.value for w in at.warning] == [top.note]
    assert not [b for b in at.button if b.key == "fv_run"]  # both results are stored


def test_the_attack_page_shows_the_library_s_attack(app: AppTest) -> None:
    at = _open(app, ROBUSTNESS)
    model, image = load_model("tinyvgg-shapes"), _image(at)
    pixels = image_pixels(model, image)
    result = attack(model, pixels, "fgsm", 4 / 255)
    _, name, probability = result.after.top[0]
    assert any(c.startswith(f"Adversarial: **{name}** ({probability:.1%})") for c in _captions(at)), _captions(at)
    assert any(c.startswith(f"Original: Grad-CAM for **{result.before.top[0][1]}**") for c in _captions(at))
    assert any(c.startswith(f"Adversarial: Grad-CAM for **{name}**") for c in _captions(at))
    table = at.dataframe[0].value
    assert list(table["after"]) == [f"{n} · {p:.2%}" for _, n, p in result.after.top]

    at.segmented_control(key="attack_method").set_value("pgd").run()  # the steps slider is enabled for PGD only
    at.slider(key="attack_steps").set_value(3)
    at.slider(key="attack_epsilon").set_value(1.5).run()
    _assert_clean(at)
    pgd = attack(model, pixels, "pgd", 1.5 / 255, steps=3)
    assert any(f"PGD, ε = 1.50/255, 3 step(s) of {pgd.step_size * 255:.2f}/255" in c for c in _captions(at))

    at.button(key="flip_run").click().run()
    _assert_clean(at)
    search = smallest_flip(model, pixels, "pgd", max_epsilon=32 / 255, steps=3)
    message = str(at.success[0].value) if at.success else str(at.info[0].value)
    if search.epsilon is None:
        assert "does not change the prediction" in message
    else:
        assert f"at ε = {search.epsilon * 255:.2f}/255" in message
        assert f"at {search.below * 255:.2f}/255 it is still" in message
    assert len(at.dataframe[-1].value) == len(search.probes)


def test_the_attack_page_on_the_digit_model(app: AppTest) -> None:
    at = _open(app, ROBUSTNESS, "lenet5-digits")
    assert re.search(r"Original: \*\*\d\*\*", " ".join(_captions(at)))


def test_an_imagenet_model(cached_hub, app: AppTest) -> None:
    """resnet18 (seeded random weights from the test hub cache): every view, the attack and its Grad-CAMs."""
    at = _open(app, PLAYGROUND, "resnet18")
    for view in VIEWS:
        _view(at, view)
    assert at.select_slider(key="fv_side").value == 128  # feature visualization offers a smaller canvas
    at.switch_page(ROBUSTNESS).run()
    _assert_clean(at)
    assert any(c.startswith("Adversarial: Grad-CAM for **") for c in _captions(at))
