"""The newcomer's tour in one real browser: the default prediction, an upload, three layers and the arithmetic of one
value, Grad-CAM and saliency with their trust checks, a kernel changed, a short training run refreshed mid-run and
explained, an own model added, and the report exported.

Every step ends with a numbered screenshot in ``tests/e2e/artifacts/tour/`` (the ``tour`` fixture), written as the
tour goes, so a failing run keeps the steps it reached. What each step shows is recomputed with the library.
"""

import re
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect
from test_e2e_home import _choose_upload, _upload
from test_e2e_layers import _open_layers
from test_e2e_own_model import _add_shipped_weights, _own_prediction
from test_e2e_playground import _choose, _output_caption
from test_e2e_train import _open_train, _refresh, _see_it_finish, _slide_down, _start

from cnn_explorer import METHODS, render
from cnn_explorer.attribution import default_cam_layer
from cnn_explorer.images import SAMPLES, load_image, sample_bytes, samples_for
from cnn_explorer.layers import capture_layers, explain_unit, list_layers
from cnn_explorer.playground import KERNELS, convolve, image_tensor
from cnn_explorer.runs import get_run, read_results
from cnn_explorer.runspec import PRESETS
from cnn_explorer.trust import trust_report
from cnn_explorer.zoo import load_model

pytestmark = pytest.mark.e2e

# A short run that learns: LeNet-5 on the built-in digits passes 90 % in a few epochs, in seconds (TinyVGG on
# shapes needs minutes to beat chance).
PRESET = "lenet5-digits"
EPOCHS = 5
CHOSEN_METHODS = ("gradcam", "saliency")
UNIT = (20, 40)  # the row and column of the unit whose arithmetic is opened


@pytest.fixture
def server_home(server: str, tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Give this test the running server's ``CNN_EXPLORER_HOME``: the library then sees the runs the page trains and
    the models it adds (the server fixture keeps it in ``<basetemp>/e2e-server<n>/home``)."""
    (work,) = tmp_path_factory.getbasetemp().glob("e2e-server[0-9]*")
    monkeypatch.setenv("CNN_EXPLORER_HOME", str(work / "home"))


def _nav(page: Page, idle, name: str) -> None:
    page.get_by_test_id("stSidebarNav").get_by_role("link", name=name).click()
    idle(page)


def _photo_predicted_otherwise(expected, model_name: str, other_than: str) -> str:
    """The first sample offered for the model (those made for it first) that it classifies other than ``other_than``."""
    model = load_model(model_name)
    for key in samples_for(model_name):
        if expected.top(model, sample_bytes(key))[0] != other_than:
            return key
    raise AssertionError(f"{model_name} classifies every sample as {other_than!r}")


@pytest.mark.usefixtures("server_home")
@pytest.mark.timeout(900)  # about 90 s on a busy 2-core machine, a training run included
def test_a_newcomers_tour(page: Page, idle, expected, tour) -> None:
    model_name = expected.default_model()
    sidebar, main = page.get_by_test_id("stSidebar"), page.get_by_test_id("stMain")
    title = page.locator("h1").first

    # Open the app: the default model, its first sample and its prediction.
    expect(sidebar.get_by_role("combobox", name="Model")).to_have_value(model_name)
    first_sample = SAMPLES[expected.first_sample(model_name)]
    expect(sidebar.get_by_role("combobox", name="Sample")).to_have_value(first_sample.title)
    expect(title).to_have_text(expected.default_title())
    tour("default-prediction")

    # Upload a sample photo's bytes through the sidebar: the title becomes the library's prediction for it.
    default_class, _ = expected.default_top()
    photo = _photo_predicted_otherwise(expected, model_name, default_class)
    content, file_name = sample_bytes(photo), SAMPLES[photo].path.name
    _choose_upload(page, idle)
    _upload(page, idle, file_name, content)
    photo_class, photo_probability = expected.top(load_model(model_name), content)
    expect(title).to_have_text(f"{photo_class} · {photo_probability:.1%}")
    expect(main).to_contain_text(file_name)
    tour("upload")

    _layers(page, idle, tour, model_name, content)
    _explain(page, idle, tour, model_name, content, photo_class)
    _playground(page, idle, tour, content)
    run_id = _train(page, idle, tour)
    _explain_the_trained_model(page, idle, tour, expected, run_id)
    own_class, own_probability = _own_model(page, idle, tour, expected, content, file_name)
    _report(page, idle, tour, own_class, own_probability)

    # Leave the shared server's model list as the other tests expect it.
    sidebar.get_by_role("button", name="Remove my-tour-model").click()
    idle(page)
    expect(sidebar.get_by_role("combobox", name="Model")).to_have_value(model_name)


def _layers(page: Page, idle, tour, model_name: str, content: bytes) -> None:
    """Step through three layers with Next; the arithmetic of one value of the third is the library's."""
    model = load_model(model_name)
    names = [info.name for info in list_layers(model)]
    main = page.get_by_test_id("stMain")
    heading = main.locator("h3").first
    _open_layers(page, idle)
    for step in range(3):
        if step:
            main.get_by_role("button", name="Next").click()
            idle(page)
        expect(heading).to_have_text(re.compile(rf"^{re.escape(names[step])} · "))
        expect(page.get_by_test_id("stSliderThumbValue")).to_have_text(f"{step + 1}/{len(names)} · {names[step]}")
        tour(f"layer-{step + 1}-{names[step]}")

    for label, value in zip(("Row", "Column"), UNIT, strict=True):
        field = main.get_by_label(re.compile(rf"^{label} \(0…"))
        field.fill(str(value))
        field.press("Enter")
        idle(page)
    channel = int(main.get_by_label(re.compile(r"^Channel \(0…")).input_value())
    row, col = UNIT
    x = model.preprocess(load_image(content))
    outputs, inputs = capture_layers(model, x)
    unit = explain_unit(model, outputs, x, names[2], (channel, row, col), inputs=inputs)
    expect(main).to_contain_text(f"{unit.operation.capitalize()} of {names[2]} at {[channel, row, col]}")
    expect(main.get_by_test_id("stMetric").filter(has_text="Recomputed")).to_contain_text(f"{unit.result:.6g}")
    expect(main.get_by_test_id("stMetric").filter(has_text="Captured")).to_contain_text(f"{unit.captured:.6g}")
    expect(main).to_contain_text("agree to 1e-05")
    tour("arithmetic-of-one-value")


def _explain(page: Page, idle, tour, model_name: str, content: bytes, photo_class: str) -> None:
    """Grad-CAM and saliency side by side (integrated gradients taken out of the defaults), then their trust checks:
    each method the library flags as not explaining the model is flagged on the page."""
    _nav(page, idle, "Explain")
    main = page.get_by_test_id("stMain")
    expect(page.locator("h1")).to_have_text(f"Why {photo_class}?")
    picker = main.get_by_test_id("stMultiSelect").filter(has_text="Methods")
    for method in set(METHODS) - set(CHOSEN_METHODS):
        remove = picker.get_by_role("button", name=f"Remove {METHODS[method].name}", exact=True)
        if remove.count():
            remove.click()
            idle(page)
    expect(picker.locator("[data-tag]")).to_have_text([METHODS[m].name for m in CHOSEN_METHODS])
    for method in METHODS:
        expect(main.locator("h5", has_text=METHODS[method].name)).to_have_count(int(method in CHOSEN_METHODS))
    expect(main.get_by_test_id("stDownloadButton")).to_have_count(len(CHOSEN_METHODS))  # one PNG per map
    tour("explain-gradcam-and-saliency")

    names = ", ".join(METHODS[m].name for m in CHOSEN_METHODS)
    run_checks = main.get_by_role("button", name=f"Run the checks for {names}", exact=True)
    run_checks.click()
    idle(page)
    expect(run_checks).to_have_count(0)
    expect(main.get_by_test_id("stTable")).to_be_visible()
    expect(main.get_by_text("Deletion AUC", exact=True)).to_be_visible()
    model = load_model(model_name)
    x = model.preprocess(load_image(content))
    layer = main.get_by_role("combobox", name="CAM layer").input_value()
    for method in CHOSEN_METHODS:
        # every sentence the library has for the map (flagged, worse than random, constant), and no other
        sentences = trust_report(model, x, method, layer=layer).warnings(default_cam_layer(model))
        warning = main.get_by_test_id("stAlertContentWarning").filter(has_text=f"{METHODS[method].name}: ")
        expect(warning).to_have_text([f"{METHODS[method].name}: {sentence}" for sentence in sentences])
    tour("trust-checks")


def _playground(page: Page, idle, tour, content: bytes) -> None:
    """Change the kernel from the identity to Sobel x: the output caption follows the library's convolution."""
    _nav(page, idle, "Playground")
    main = page.get_by_test_id("stMain")
    expect(page.locator("h1")).to_have_text("Playground")
    picture = image_tensor(load_image(content), "grey", 256)
    before = _output_caption(convolve(picture, KERNELS["identity"].kernel(3)))
    after = _output_caption(convolve(picture, KERNELS["sobel_x"].kernel(3)))
    assert before != after
    expect(main).to_contain_text(before)
    _choose(page, main, "Kernel", KERNELS["sobel_x"].name, idle)
    expect(main).to_contain_text(after)
    expect(main).not_to_contain_text(before)
    tour("playground-sobel-x")


def _train(page: Page, idle, tour) -> str:
    """Start a short run, refresh the page while it trains, see it finish; returns its id."""
    main = _open_train(page, idle)
    _choose(page, main, "Start from a preset", PRESETS[PRESET].name, idle)
    _slide_down(page, idle, "Epochs", PRESETS[PRESET].settings.epochs - EPOCHS, str(EPOCHS))
    tour("train-form")
    heading = _start(page, idle)
    run_id = re.search(r"run (\d+) · ", heading.inner_text()).group(1)
    assert get_run(run_id).status in ("queued", "running"), "the run ended before the refresh"
    _refresh(page, idle, heading)
    tour("train-refreshed")
    _see_it_finish(page, idle, heading)
    results = read_results(run_id)
    expect(main).to_contain_text(
        f"Best checkpoint (epoch {results['epoch']}): {results['val_accuracy']:.1%} of "
        f"{len(results['labels']):,} validation images right."
    )
    tour("train-done")
    return run_id


def _explain_the_trained_model(page: Page, idle, tour, expected, run_id: str) -> None:
    """Pick the run's model in the sidebar's model box, upload a digit and explain it: the prediction is the
    checkpoint's."""
    sidebar = page.get_by_test_id("stSidebar")
    model_box = sidebar.get_by_role("combobox", name="Model")
    model_box.click()
    page.get_by_role("option", name=f"run-{run_id}", exact=True).click()
    idle(page)
    expect(model_box).to_have_value(f"run-{run_id}")
    digit = expected.first_sample(PRESET)
    _choose_upload(page, idle)
    _upload(page, idle, SAMPLES[digit].path.name, sample_bytes(digit))
    _nav(page, idle, "Explain")
    best, _ = expected.top(load_model(f"run-{run_id}"), sample_bytes(digit))
    expect(page.locator("h1")).to_have_text(f"Why {best}?")
    expect(page.get_by_test_id("stMain").get_by_test_id("stDownloadButton")).to_have_count(3)
    tour("trained-model-explained")


def _own_model(page: Page, idle, tour, expected, content: bytes, file_name: str) -> tuple[str, float]:
    """Add the shipped weights as an own model and upload the photo again: the Predict page shows the prediction,
    returned."""
    _add_shipped_weights(page, idle, "Tour model")
    sidebar = page.get_by_test_id("stSidebar")
    expect(sidebar.get_by_test_id("stAlertContentSuccess")).to_contain_text("Added as my-tour-model")
    expect(sidebar.get_by_role("combobox", name="Model")).to_have_value("my-tour-model")
    _upload(page, idle, file_name, content)
    _nav(page, idle, "Predict")
    own_class, probability = _own_prediction(expected, content)
    expect(page.locator("h1").first).to_have_text(f"{own_class} · {probability:.1%}")
    expect(page.get_by_test_id("stMain")).to_contain_text("your TinyVGG (state_dict)")
    tour("own-model")
    return own_class, probability


def _report(page: Page, idle, tour, own_class: str, probability: float) -> None:
    """Build the report on the Predict page and download it: the HTML states the prediction, the PDF is a PDF."""
    main = page.get_by_test_id("stMain")
    main.get_by_text("Export a report").click()
    idle(page)
    main.get_by_role("button", name="Build the report").click()
    idle(page)
    with page.expect_download() as html_download:
        main.get_by_role("button", name="Download HTML").click()
    assert html_download.value.suggested_filename.endswith(".html")
    html = Path(html_download.value.path()).read_text(encoding="utf-8")
    assert f"<strong>{own_class}</strong>\nwith probability <strong>{render.percent(probability)}</strong>" in html
    assert "my-tour-model" in html and "data:image/png;base64," in html  # the model, and images inside
    with page.expect_download() as pdf_download:
        main.get_by_role("button", name="Download PDF").click()
    assert pdf_download.value.suggested_filename.endswith(".pdf")
    assert Path(pdf_download.value.path()).read_bytes().startswith(b"%PDF-")
    tour("report")
