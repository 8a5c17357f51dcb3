"""Real-browser flow on the Train page: start a short run, refresh the page mid-run, see it finish, then open the
trained model in the layer explorer and explain it."""

import re

import pytest
from playwright.sync_api import Page, expect

pytestmark = pytest.mark.e2e


def test_train_refresh_finish_and_open_everywhere(page: Page, idle, save_screenshot) -> None:
    page.get_by_test_id("stSidebarNav").get_by_role("link", name="Train").click()
    idle(page)
    expect(page.locator("h1")).to_have_text("Train")
    main = page.get_by_test_id("stMain")
    epochs = main.get_by_test_id("stSlider").filter(has_text="Epochs").get_by_role("slider")
    epochs.focus()
    for _ in range(5):  # the preset's 8 epochs → 3
        epochs.press("ArrowLeft")
    idle(page)
    expect(main.get_by_test_id("stSlider").filter(has_text="Epochs")).to_contain_text("3")
    save_screenshot(page, "train-form.png")
    main.get_by_role("button", name="Start training").click()
    idle(page)
    heading = main.locator("h4", has_text=re.compile(r"run \d+ · "))
    expect(heading).to_contain_text(re.compile(r"queued|running|done"))

    page.reload()  # a refresh mid-run: the run lives in the store, not in the browser session
    idle(page)
    expect(heading).to_contain_text(re.compile(r"running|done"), timeout=60_000)
    expect(heading).to_contain_text("done", timeout=300_000)
    idle(page)
    expect(main).to_contain_text("validation images right")
    save_screenshot(page, "train-done.png")

    main.get_by_role("button", name="Open in Layers").click()
    idle(page)
    expect(page.locator("h1")).to_have_text("Layers")
    expect(page.get_by_test_id("stSidebar")).to_contain_text("TinyVGG on shapes · CNN")  # the run is the model
    page.get_by_test_id("stSidebarNav").get_by_role("link", name="Explain").click()
    idle(page)
    expect(page.locator("h1")).to_contain_text("Why ")
    expect(main.get_by_test_id("stDownloadButton")).to_have_count(3)
    save_screenshot(page, "train-explain-run.png")
