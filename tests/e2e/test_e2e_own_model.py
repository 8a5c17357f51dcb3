"""Real-browser flow of "Add your own model": upload a state_dict in the sidebar, see its prediction, remove it."""

import io
import re

import pytest
import torch
from playwright.sync_api import Page, expect

from cnn_explorer.images import SAMPLES, sample_bytes
from cnn_explorer.zoo import load_model

pytestmark = pytest.mark.e2e

CLASSES = ["circle", "square", "triangle", "star", "heart", "cross", "ring", "arrow", "moon", "bolt"]


def _uploader(page: Page, label: str):
    sidebar = page.get_by_test_id("stSidebar")
    return sidebar.get_by_test_id("stFileUploader").filter(has_text=label).locator("input[type='file']")


def _add(page: Page, idle, file_name: str, content: bytes, kind: str = "state_dict") -> None:
    sidebar = page.get_by_test_id("stSidebar")
    sidebar.get_by_text("Add your own model").click()
    idle(page)
    if kind != "state_dict":
        sidebar.get_by_role("radio", name=kind).click()
        idle(page)
    _uploader(page, "Model file").set_input_files(
        files=[{"name": file_name, "mimeType": "application/octet-stream", "buffer": content}]
    )
    idle(page)


def _sidebar_to_top(page: Page) -> None:
    page.get_by_test_id("stSidebarContent").evaluate("element => element.scrollTo(0, 0)")


def _add_shipped_weights(page: Page, idle, name: str) -> None:
    """Add the shipped TinyVGG's state_dict as ``name``, under :data:`CLASSES`, standardized as it was trained."""
    buffer = io.BytesIO()
    torch.save(load_model("tinyvgg-shapes").module.state_dict(), buffer)
    sidebar = page.get_by_test_id("stSidebar")
    _add(page, idle, "shapes.pt", buffer.getvalue())
    _uploader(page, "Class names").set_input_files(
        files=[{"name": "classes.txt", "mimeType": "text/plain", "buffer": "\n".join(CLASSES).encode()}]
    )
    idle(page)
    sidebar.get_by_text("Standardize each image").click()
    idle(page)
    sidebar.get_by_label("Name (optional)").fill(name)
    sidebar.get_by_label("Name (optional)").press("Enter")
    idle(page)
    sidebar.get_by_role("button", name="Add model").click()
    idle(page)


def _own_prediction(expected, image: bytes) -> tuple[str, float]:
    """What the added shipped weights predict for an image: the shipped model's class under our own name, with the
    shipped model's probability (the same weights and preprocessing)."""
    shipped = load_model("tinyvgg-shapes")
    shipped_class, probability = expected.top(shipped, image)
    return CLASSES[shipped.class_names.index(shipped_class)], probability


def test_upload_a_state_dict_pick_it_and_see_its_prediction(page: Page, idle, expected, save_screenshot) -> None:
    _add_shipped_weights(page, idle, "Shapes again")

    sidebar = page.get_by_test_id("stSidebar")
    expect(sidebar.get_by_test_id("stAlertContentSuccess")).to_contain_text("Added as my-shapes-again")
    model_box = sidebar.get_by_role("combobox", name="Model")
    expect(model_box).to_have_value("my-shapes-again")
    title = sidebar.get_by_role("combobox", name="Sample").input_value()
    (sample,) = [key for key, entry in SAMPLES.items() if entry.title == title]
    own_class, probability = _own_prediction(expected, sample_bytes(sample))
    expect(page.locator("h1").first).to_have_text(f"{own_class} · {probability:.1%}")
    expect(page.get_by_test_id("stMain")).to_contain_text("your TinyVGG (state_dict)")
    assert "Traceback" not in page.inner_text("body")
    _sidebar_to_top(page)
    save_screenshot(page, "own_model.png")

    # Removing it returns to the default model (and keeps the shared server's model list as the other tests expect).
    sidebar.get_by_role("button", name="Remove my-shapes-again").click()
    idle(page)
    expect(model_box).to_have_value("tinyvgg-shapes")
    expect(page.locator("h1").first).to_have_text(expected.default_title())


def test_a_torchscript_model_predicts_and_the_layers_page_says_why_not(page: Page, idle, save_screenshot) -> None:
    buffer = io.BytesIO()
    torch.jit.save(torch.jit.script(load_model("tinyvgg-shapes").module), buffer)
    sidebar = page.get_by_test_id("stSidebar")
    _add(page, idle, "shapes-scripted.pt", buffer.getvalue(), kind="TorchScript")
    sidebar.get_by_label("Input side", exact=True).fill("64")
    sidebar.get_by_label("Input side", exact=True).press("Enter")
    idle(page)
    sidebar.get_by_role("button", name="Add model").click()
    idle(page)
    expect(sidebar.get_by_role("combobox", name="Model")).to_have_value("my-shapes-scripted")
    expect(page.locator("h1").first).to_have_text(re.compile(r"^class \d · \d+\.\d%$"))

    page.get_by_test_id("stSidebarNav").get_by_role("link", name="Layers").click()
    idle(page)
    # The page run ends at the message (a busy machine can take a while to start it): no title, no layer view.
    expect(page.get_by_test_id("stMain").get_by_test_id("stAlertContentInfo")).to_contain_text(
        "accept no forward hooks", timeout=30_000
    )
    expect(page.locator("h1")).to_have_count(0)
    assert "Traceback" not in page.inner_text("body")
    _sidebar_to_top(page)
    save_screenshot(page, "own_model_torchscript_layers.png")
    sidebar.get_by_role("button", name="Remove my-shapes-scripted").click()
    idle(page)


def test_the_model_uploader_says_600_mb_not_1gb(page: Page, idle, save_screenshot) -> None:
    sidebar = page.get_by_test_id("stSidebar")
    sidebar.get_by_text("Add your own model").click()
    idle(page)
    model_file = sidebar.get_by_test_id("stFileUploader").filter(has_text="Model file")
    instructions = model_file.get_by_test_id("stFileUploaderDropzoneInstructions").locator("span")
    shown = instructions.evaluate(
        "e => [getComputedStyle(e).fontSize, getComputedStyle(e, '::after').content, getComputedStyle(e, '::after')"
        ".fontSize]"
    )
    assert shown == ["0px", '"600 MB per file"', "14px"]  # Streamlit's own "1GB per file" is hidden, ours is read
    class_names = sidebar.get_by_test_id("stFileUploader").filter(has_text="Class names")
    expect(class_names.get_by_test_id("stFileUploaderDropzoneInstructions")).to_contain_text("1MB per file")
    _sidebar_to_top(page)
    save_screenshot(page, "own_model_limit.png")
