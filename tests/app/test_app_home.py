"""AppTest for app.py and the home page: the sidebar's model and image pickers, uploads good and bad, ImageNet models.

Every expected class and probability is recomputed with the library (see ``Expected`` in conftest.py), so these
tests hold for whichever built-in model is the default and whatever it predicts.
"""

import io
import os
import struct
import zlib
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import pytest
import torch
import torchvision
from PIL import Image
from streamlit.runtime.pages_manager import PagesManager
from streamlit.testing.v1 import AppTest

from cnn_explorer.images import SAMPLES, ImageError, load_image, sample_bytes


def _titles(at: AppTest) -> str:
    return " | ".join(str(title.value) for title in at.title)


def _page_text(at: AppTest) -> str:
    """Every text element of the page and the sidebar, for checks such as 'no traceback reached the user'."""
    elements = [*at.title, *at.subheader, *at.markdown, *at.caption, *at.error, *at.warning, *at.info, *at.code]
    return "\n".join(str(element.value) for element in elements)


def _assert_clean(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]
    assert "Traceback" not in _page_text(at)


def _upload(at: AppTest, name: str, content: bytes) -> AppTest:
    at.sidebar.segmented_control(key="image_source").set_value("Upload").run()
    _assert_clean(at)
    at.sidebar.file_uploader(key="upload").upload(name, content, "image/png").run()
    return at


def _select_model(at: AppTest, name: str) -> AppTest:
    at.sidebar.selectbox(key="model_name").select(name).run()
    return at


def _png(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def _png_claiming(width: int, height: int) -> bytes:
    """A well-formed PNG header that claims ``width × height`` RGB pixels, followed by almost no pixel data."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", zlib.compress(b"\x00" * 64))
        + _png_chunk(b"IEND", b"")
    )


def _noise_png(seed: int = 0) -> bytes:
    return _png(np.random.default_rng(seed).integers(0, 256, (64, 64, 3), dtype=np.uint8))


def test_first_screen_shows_the_default_prediction(app: AppTest, expected) -> None:
    model_name = expected.default_model()
    assert app.sidebar.selectbox(key="model_name").value == model_name
    assert app.sidebar.selectbox(key="sample").value == expected.first_sample(model_name)
    assert app.sidebar.segmented_control(key="image_source").value == "Sample"
    assert _titles(app) == expected.default_title()
    _assert_clean(app)


def test_an_uploaded_image_shows_its_own_prediction(app: AppTest, expected) -> None:
    model_name = expected.default_model()
    default_class = expected.default_title().split(" · ")[0]
    content, predicted = expected.image_predicted_otherwise(model_name, other_than=default_class)

    _upload(app, "drawing.png", content)

    _assert_clean(app)
    assert not app.error
    assert _titles(app) == expected.title(model_name, content)
    assert predicted in _titles(app)
    assert any("drawing.png" in str(caption.value) for caption in app.caption)


@pytest.mark.parametrize(
    ("file_name", "content", "phrase"),
    [
        pytest.param("notes.png", b"These are my notes, not a picture.\n" * 20, "not an image", id="text-as-png"),
        pytest.param("cut.png", _noise_png()[:1500], "damaged", id="truncated-png"),
        pytest.param("huge.png", _png_claiming(20000, 20000), "20000×20000", id="huge-header"),
    ],
)
def test_a_bad_upload_shows_the_library_message(app: AppTest, file_name: str, content: bytes, phrase: str) -> None:
    with pytest.raises(ImageError) as raised:
        load_image(content)
    message = str(raised.value)
    assert phrase in message

    _upload(app, file_name, content)

    _assert_clean(app)
    assert any(message in str(error.value) for error in app.error), [e.value for e in app.error]
    assert not app.title, "no prediction is shown for an image that could not be read"


def test_switching_to_lenet_offers_digits_and_shows_their_prediction(app: AppTest, expected) -> None:
    if expected.default_model() == "lenet5-digits":
        # Through an ImageNet model first (not downloaded: the page says so), so the switch is a real change.
        _select_model(app, "resnet18")
        _assert_clean(app)
    previous = app.sidebar.selectbox(key="sample").value

    _select_model(app, "lenet5-digits")

    _assert_clean(app)
    sample = app.sidebar.selectbox(key="sample")
    offered = expected.sample_keys("lenet5-digits")
    digits = [key for key in offered if "lenet5-digits" in SAMPLES[key].models]
    assert sample.options == [SAMPLES[key].title for key in offered]
    assert digits, "samples.json offers no digit for lenet5-digits"
    assert not any("tinyvgg-shapes" in SAMPLES[key].models for key in offered)
    # A new model starts on a sample made for it: the cat (or a shape) gives way to the first digit.
    assert previous not in digits
    assert sample.value == digits[0]
    assert _titles(app) == expected.title("lenet5-digits", sample_bytes(sample.value))

    sample.select(digits[-1]).run()

    _assert_clean(app)
    assert _titles(app) == expected.title("lenet5-digits", sample_bytes(digits[-1]))


@pytest.mark.parametrize("page", ["pages/home.py", "pages/explain.py", "pages/layers.py", "pages/robustness.py"])
def test_an_imagenet_model_without_weights_says_how_to_get_them_once(app: AppTest, page: str) -> None:
    app.switch_page(page).run()
    _select_model(app, "resnet18")

    _assert_clean(app)
    notes = [str(w.value) for w in app.warning] + [str(i.value) for i in app.info] + [str(e.value) for e in app.error]
    weights = torchvision.models.get_model_weights("resnet18").DEFAULT
    folder = Path(os.environ["TORCH_HOME"]) / "hub" / "checkpoints"
    assert notes == [
        "resnet18's weights are not on this computer and could not be downloaded (the app is set to work offline). "
        "To use it: start the app online without CNN_EXPLORER_OFFLINE set, or put the file "
        f"{os.path.basename(urlparse(weights.url).path)} (from {weights.url}) in {folder}."
    ], "once, in the page, in words"
    assert "urlopen" not in _page_text(app)
    sidebar_note = "ImageNet · not available here: see the page for how to get it."
    assert next(str(c.value) for c in app.sidebar.caption) == sidebar_note
    assert not app.title


def test_an_imagenet_model_in_the_hub_cache_predicts_an_imagenet_class(app: AppTest, expected) -> None:
    weights = torchvision.models.get_model_weights("mobilenet_v3_small").DEFAULT
    checkpoint = Path(os.environ["TORCH_HOME"]) / "hub" / "checkpoints" / os.path.basename(urlparse(weights.url).path)
    checkpoint.parent.mkdir(parents=True)
    torch.manual_seed(0)
    state = torchvision.models.get_model("mobilenet_v3_small", weights=None).state_dict()
    # Freshly initialised features are ~1e-8, so every class would tie at 0.1 %: distinct output biases give the
    # untrained model one clear favourite, which the page and the library must agree on.
    state["classifier.3.bias"] = 3 * torch.randn(1000)
    torch.save(state, checkpoint)
    assert "mobilenet_v3_small (download)" in app.sidebar.selectbox(key="model_name").options
    app.run()  # as a browser reload would: the picker no longer says "(download)"
    assert "mobilenet_v3_small" in app.sidebar.selectbox(key="model_name").options

    _select_model(app, "mobilenet_v3_small")

    _assert_clean(app)
    assert not app.warning
    title = _titles(app)
    assert title.split(" · ")[0] in weights.meta["categories"]
    assert title == expected.title("mobilenet_v3_small", sample_bytes(expected.first_sample("mobilenet_v3_small")))


def test_a_first_visit_to_a_page_url_still_runs_app_py(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # No navigation_mode_as_served here: a fresh server is in Streamlit's pages-folder mode (pages/ beside app.py)
    # until app.py first calls st.navigation, so a first visitor who opens /home gets pages/home.py run alone.
    # The page must notice and rerun through app.py: sidebar drawn, prediction shown.
    monkeypatch.chdir(tmp_path)
    PagesManager.uses_pages_directory = None  # as a freshly started server
    at = AppTest.from_file(str(Path(__file__).resolve().parents[2] / "app.py"), default_timeout=120)
    at.switch_page("pages/home.py")
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert PagesManager.uses_pages_directory is False
    assert "model_name" in [widget.key for widget in at.sidebar.selectbox], "the sidebar was not drawn"
    assert at.title, "the home page did not render"


def _fresh_session(query: dict[str, str]) -> AppTest:
    """A new browser session on a URL with ``query`` (a refresh, or a shared link), after its first run."""
    at = AppTest.from_file(str(Path(__file__).resolve().parents[2] / "app.py"), default_timeout=120)
    for key, value in query.items():
        at.query_params[key] = value
    at.run()
    _assert_clean(at)
    return at


def test_the_url_keeps_the_model_and_sample_for_a_refresh(
    app: AppTest, expected, navigation_mode_as_served: None
) -> None:
    model_name = expected.default_model()
    assert app.query_params == {"model": model_name, "sample": expected.first_sample(model_name)}
    sample, _ = expected.sample_predicted_otherwise(model_name)
    app.sidebar.selectbox(key="sample").select(sample).run()
    assert app.query_params == {"model": model_name, "sample": sample}

    refreshed = _fresh_session({"model": model_name, "sample": sample})  # F5: a new session on the same URL

    assert refreshed.sidebar.selectbox(key="sample").value == sample
    assert _titles(refreshed) == expected.title(model_name, sample_bytes(sample))


def test_a_shared_link_opens_another_model_and_sample(expected, navigation_mode_as_served: None) -> None:
    digits = [key for key in expected.sample_keys("lenet5-digits") if "lenet5-digits" in SAMPLES[key].models]
    at = _fresh_session({"model": "lenet5-digits", "sample": digits[3]})
    assert at.sidebar.selectbox(key="model_name").value == "lenet5-digits"
    assert at.sidebar.selectbox(key="sample").value == digits[3]
    assert _titles(at) == expected.title("lenet5-digits", sample_bytes(digits[3]))
    shape = next(key for key in expected.sample_keys("lenet5-digits") if not SAMPLES[key].models)
    at = _fresh_session({"model": "lenet5-digits", "sample": shape})  # a general sample for the digit model: kept
    assert at.sidebar.selectbox(key="sample").value == shape


@pytest.mark.parametrize(
    "query",
    [
        {"model": "resnet1000", "sample": "shape-square"},
        {"model": "lenet5-digits", "sample": "no-such-sample"},
        {"model": "tinyvgg-shapes", "sample": "digit-3"},  # a digit is not offered with the shapes model
        {"sample": "<script>"},
    ],
)
def test_an_unknown_model_or_sample_in_the_url_falls_back_to_the_default(
    expected, navigation_mode_as_served: None, query: dict[str, str]
) -> None:
    at = _fresh_session(query)
    known = query.get("model") in ("lenet5-digits", "tinyvgg-shapes")
    model_name = query["model"] if known else expected.default_model()
    assert at.sidebar.selectbox(key="model_name").value == model_name
    assert at.sidebar.selectbox(key="sample").value == expected.first_sample(model_name)
    assert _titles(at) == expected.title(model_name, sample_bytes(expected.first_sample(model_name)))
    assert at.query_params == {"model": model_name, "sample": expected.first_sample(model_name)}


def test_model_names_are_short_enough_for_the_sidebar(app: AppTest) -> None:
    options = app.sidebar.selectbox(key="model_name").options
    assert "resnet18 (download)" in options and "tinyvgg-shapes" in options
    assert max(len(option) for option in options) <= 30, options
