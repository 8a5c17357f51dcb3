"""AppTest for the sidebar's Draw source: the canvas preset for the model, the pen, and the drawing as the image.

A component cannot render in AppTest, so the canvas's one call (``ui.draw.canvas_png``) is replaced by a fake that
records what the sidebar asked for and returns the PNG a person "drew"; everything after it is the app's own code.
"""

import io

import numpy as np
import pytest
from PIL import Image, ImageDraw
from streamlit.testing.v1 import AppTest

from cnn_explorer.drawing import CANVAS_SIZE, CANVASES
from cnn_explorer.images import ImageError, image_digest, load_image
from cnn_explorer.ui import draw


class _Canvas:
    """Stands in for the component: what it was last asked to show, and the drawing it returns."""

    def __init__(self) -> None:
        self.drawing: bytes | None = None
        self.calls: list[dict] = []

    def __call__(self, *, ink: str, paper: str, brush: int) -> bytes | None:
        self.calls.append({"ink": ink, "paper": paper, "brush": brush})
        return self.drawing


@pytest.fixture
def canvas(monkeypatch: pytest.MonkeyPatch) -> _Canvas:
    fake = _Canvas()
    monkeypatch.setattr(draw, "canvas_png", fake)
    return fake


def _png(paint, paper: str) -> bytes:
    image = Image.new("RGBA", (CANVAS_SIZE, CANVAS_SIZE), paper)
    paint(ImageDraw.Draw(image))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def _disk() -> bytes:
    return _png(lambda pen: pen.ellipse((50, 50, 174, 174), fill="#1e2a78"), "#ffffff")


def _seven() -> bytes:
    return _png(lambda pen: pen.line([(60, 45), (165, 45), (100, 185)], fill="#ffffff", width=18), "#000000")


def _clean(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]


def _choose_draw(at: AppTest) -> AppTest:
    at.sidebar.segmented_control(key="image_source").set_value("Draw").run()
    _clean(at)
    return at


def _titles(at: AppTest) -> str:
    return " | ".join(str(title.value) for title in at.title)


def test_an_empty_canvas_is_no_image_yet_and_says_to_draw(app: AppTest, canvas: _Canvas) -> None:
    _choose_draw(app)

    assert not app.title and not app.error
    assert [str(info.value) for info in app.info] == [
        "Choose a sample, upload an image (PNG, JPEG, WebP, BMP, GIF or TIFF), take a photo or draw one in the sidebar."
    ]
    assert app.session_state["selection"].image is None
    assert not app.sidebar.get("download_button")  # nothing to download yet


def test_the_shapes_model_presets_the_shape_canvas_and_follows_the_drawing(
    app: AppTest, canvas: _Canvas, expected
) -> None:
    assert app.sidebar.selectbox(key="model_name").value == "tinyvgg-shapes"
    _choose_draw(app)
    shape = CANVASES["shape"]
    assert app.sidebar.selectbox(key="draw_kind").value == "shape"
    assert canvas.calls[-1] == {"ink": shape.ink, "paper": shape.paper, "brush": shape.brush}
    assert app.sidebar.color_picker(key="draw_ink").value == shape.ink
    assert any(shape.hint in str(caption.value) for caption in app.sidebar.caption)

    canvas.drawing = _disk()  # a stroke ended: the component reruns the app with the new drawing
    app.run()

    _clean(app)
    assert _titles(app) == expected.title("tinyvgg-shapes", canvas.drawing)
    chosen = app.session_state["selection"]
    assert chosen.image_digest == image_digest(canvas.drawing)
    assert chosen.image_label == "drawing"
    np.testing.assert_array_equal(np.asarray(chosen.image), np.asarray(load_image(canvas.drawing)))
    assert len(app.sidebar.get("download_button")) == 1  # the drawing can be saved
    assert any("this drawing is" in str(caption.value) for caption in app.caption)

    canvas.drawing = _png(lambda pen: pen.rectangle((40, 40, 184, 184), fill="#1e2a78"), "#ffffff")  # another
    app.run()
    assert _titles(app) == expected.title("tinyvgg-shapes", canvas.drawing)


def test_the_digit_model_presets_white_on_black_and_a_7_is_predicted_as_the_library_does(
    app: AppTest, canvas: _Canvas, expected
) -> None:
    _choose_draw(app)
    app.sidebar.selectbox(key="model_name").select("lenet5-digits").run()
    _clean(app)
    digit = CANVASES["digit"]
    assert app.sidebar.selectbox(key="draw_kind").value == "digit"
    assert canvas.calls[-1] == {"ink": "#ffffff", "paper": "#000000", "brush": digit.brush}

    canvas.drawing = _seven()
    app.run()

    _clean(app)
    assert _titles(app) == expected.title("lenet5-digits", canvas.drawing)


def test_the_pen_is_the_persons_and_the_canvas_choice_lasts_until_the_model_changes(
    app: AppTest, canvas: _Canvas
) -> None:
    _choose_draw(app)
    app.sidebar.selectbox(key="draw_kind").select("neutral").run()
    neutral = CANVASES["neutral"]
    assert canvas.calls[-1] == {"ink": neutral.ink, "paper": neutral.paper, "brush": neutral.brush}

    app.sidebar.color_picker(key="draw_ink").pick("#c0392b").run()
    app.sidebar.slider(key="draw_brush").set_value(30).run()

    _clean(app)
    assert app.sidebar.selectbox(key="draw_kind").value == "neutral"  # the person's canvas stays
    assert canvas.calls[-1] == {"ink": "#c0392b", "paper": neutral.paper, "brush": 30}

    app.sidebar.selectbox(key="model_name").select("lenet5-digits").run()  # a new model suggests its canvas again
    assert app.sidebar.selectbox(key="draw_kind").value == "digit"
    assert canvas.calls[-1]["ink"] == CANVASES["digit"].ink


def test_a_drawing_goes_through_the_validator(app: AppTest, canvas: _Canvas) -> None:
    canvas.drawing = b"\x89PNG\r\n\x1a\n" + b"cut short"
    with pytest.raises(ImageError) as raised:
        load_image(canvas.drawing)

    _choose_draw(app)

    assert [str(error.value) for error in app.error] == [str(raised.value)]
    assert not app.title


@pytest.mark.parametrize("page", ["pages/layers.py", "pages/explain.py", "pages/robustness.py"])
def test_every_page_works_on_the_drawing(app: AppTest, canvas: _Canvas, page: str) -> None:
    canvas.drawing = _disk()
    _choose_draw(app)
    app.switch_page(page).run()

    _clean(app)
    assert not app.error and not app.info
    assert app.session_state["selection"].image_digest == image_digest(canvas.drawing)
