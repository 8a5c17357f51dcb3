"""The drawing canvases and which one suits a model (cnn_explorer.drawing)."""

import io

import numpy as np
import pytest
from PIL import Image, ImageDraw

from cnn_explorer.data import SHAPE_CLASSES
from cnn_explorer.drawing import CANVAS_SIZE, CANVASES, canvas_for
from cnn_explorer.images import load_image
from cnn_explorer.zoo import load_model


def _drawing(ink: str, paper: str, brush: int) -> bytes:
    """A "7" drawn as two strokes on a canvas, as PNG bytes (the component's RGBA, opaque)."""
    image = Image.new("RGBA", (CANVAS_SIZE, CANVAS_SIZE), paper)
    pen = ImageDraw.Draw(image)
    pen.line([(60, 50), (165, 50), (100, 180)], fill=ink, width=brush, joint="curve")
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("model_name", "expected"),
    [("lenet5-digits", "digit"), ("tinyvgg-shapes", "shape"), ("resnet18", "neutral"), ("my-thing", "neutral")],
)
def test_each_built_in_model_gets_the_canvas_of_its_data(model_name: str, expected: str) -> None:
    assert canvas_for(model_name).key == expected


def test_the_shipped_models_class_names_say_the_same() -> None:
    for name, expected in (("lenet5-digits", "digit"), ("tinyvgg-shapes", "shape")):
        assert canvas_for("my-copy", load_model(name).class_names).key == expected


@pytest.mark.parametrize(
    ("class_names", "expected"),
    [
        ([str(d) for d in range(10)], "digit"),
        (
            [
                f"{d} - {word}"
                for d, word in enumerate(
                    ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
                )
            ],
            "digit",
        ),
        ([str(d) for d in range(9)], "neutral"),  # nine digits are not the ten digits
        ([str(d) for d in reversed(range(10))], "neutral"),  # labels in another order are not the digit classes
        (list(SHAPE_CLASSES), "shape"),
        (list(SHAPE_CLASSES[:3]), "shape"),
        (["circle", "cat"], "neutral"),
        (["cats", "dogs"], "neutral"),
        ([], "neutral"),
    ],
)
def test_a_model_of_any_name_gets_its_canvas_from_its_classes(class_names: list[str], expected: str) -> None:
    assert canvas_for("my-model", class_names).key == expected


def test_runs_trained_on_the_built_in_data_get_its_canvas(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    from cnn_explorer import runs
    from cnn_explorer.runspec import preset

    monkeypatch.setenv("CNN_EXPLORER_HOME", str(tmp_path))
    assert canvas_for(runs.create_run(preset("tinyvgg-shapes")).model_name).key == "shape"
    assert canvas_for(runs.create_run(preset("lenet5-digits")).model_name).key == "digit"
    assert canvas_for("run-999").key == "neutral"  # no such run


def test_presets_are_valid_colours_and_pens() -> None:
    assert list(CANVASES) == ["digit", "shape", "neutral"]
    for key, preset in CANVASES.items():
        assert preset.key == key
        for colour in (preset.ink, preset.paper):
            assert len(colour) == 7 and colour[0] == "#" and int(colour[1:], 16) >= 0
        assert preset.ink != preset.paper
        assert 1 <= preset.brush <= 40  # the sidebar's slider range
    assert (CANVASES["digit"].ink, CANVASES["digit"].paper) == ("#ffffff", "#000000")


def test_a_digit_canvas_drawing_reaches_lenet_as_light_ink_on_dark() -> None:
    """The digit canvas is what LeNet-5 learnt from: its drawing goes in as it is, bright strokes on a dark square;
    the same strokes dark on white are inverted into the same picture."""
    model = load_model("lenet5-digits")
    digit = CANVASES["digit"]
    image = load_image(_drawing(digit.ink, digit.paper, digit.brush))
    assert image.mode == "RGB" and image.size == (CANVAS_SIZE, CANVAS_SIZE)
    seen = model.preprocess.geometry(image)[0].numpy().astype(int)
    # Corner: paper. The ink is cropped and centred (fit_ink, as MNIST was made): the 7's top bar is bright.
    assert seen[0, 0] == 0 and seen.max() == 255 and (seen > 128).any(axis=1)[: seen.shape[0] // 3].any()
    inverted = model.preprocess.geometry(load_image(_drawing("#000000", "#ffffff", digit.brush)))[0].numpy()
    np.testing.assert_array_equal(inverted, seen)
