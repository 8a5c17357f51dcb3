"""Real-browser flows on the home page: the first prediction, an upload that changes it, and a bad upload."""

import re

import pytest
from playwright.sync_api import Locator, Page, expect

from cnn_explorer.images import ImageError, load_image

pytestmark = pytest.mark.e2e


def _image_input(page: Page) -> Locator:
    """The file input of the sidebar's image uploader (not those of "Add your own model")."""
    uploader = page.get_by_test_id("stSidebar").get_by_test_id("stFileUploader").filter(has_text="Upload an image")
    return uploader.get_by_test_id("stFileUploaderDropzoneInput")


def _choose_upload(page: Page, idle) -> None:
    page.get_by_test_id("stSidebar").get_by_role("radio", name="Upload", exact=True).click()
    idle(page)
    expect(_image_input(page)).to_be_attached()


def _upload(page: Page, idle, name: str, content: bytes) -> None:
    _image_input(page).set_input_files(files=[{"name": name, "mimeType": "image/png", "buffer": content}])
    idle(page)


def test_an_upload_replaces_the_default_prediction(page: Page, idle, expected, save_screenshot) -> None:
    default_class, default_probability = expected.default_top()
    title = page.locator("h1").first
    expect(title).to_have_text(f"{default_class} · {default_probability:.1%}")
    save_screenshot(page, "home.png")

    _choose_upload(page, idle)
    content, new_class = expected.image_predicted_otherwise(expected.default_model(), other_than=default_class)
    _upload(page, idle, "drawing.png", content)

    expect(title).to_have_text(re.compile(rf"^{re.escape(new_class)} · \d+\.\d%$"))
    expect(page.get_by_test_id("stMain")).to_contain_text("drawing.png")
    assert "Traceback" not in page.inner_text("body")
    save_screenshot(page, "home_upload.png")


def test_a_text_file_named_png_says_it_is_not_an_image(page: Page, idle, save_screenshot) -> None:
    content = b"These are my notes, not a picture.\n" * 20
    with pytest.raises(ImageError) as raised:
        load_image(content)
    message = str(raised.value)
    assert "not an image" in message

    _choose_upload(page, idle)
    _upload(page, idle, "notes.png", content)

    expect(page.get_by_test_id("stMain").get_by_test_id("stAlertContentError")).to_have_text(message)
    expect(page.get_by_test_id("stAlertContentError")).to_have_count(1)  # once, in the page, not also in the sidebar
    expect(page.locator("h1")).to_have_count(0)
    assert "Traceback" not in page.inner_text("body")
    save_screenshot(page, "home_bad_upload.png")
