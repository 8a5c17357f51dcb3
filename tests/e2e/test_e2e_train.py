"""Real-browser flow on the Train page: start a short run, refresh the page mid-run, see it finish, then open the
trained model in the layer explorer and explain it."""

import re

import pytest
from playwright.sync_api import Locator, Page, expect

from cnn_explorer.runspec import PRESETS

pytestmark = pytest.mark.e2e


def _open_train(page: Page, idle) -> Locator:
    """The Train page; returns its main area."""
    page.get_by_test_id("stSidebarNav").get_by_role("link", name="Train").click()
    idle(page)
    expect(page.locator("h1")).to_have_text("Train")
    main = page.get_by_test_id("stMain")
    form = main.get_by_test_id("stExpander").filter(has_text="New run")
    if form.locator("details").get_attribute("open") is None:  # collapsed once the store holds a run
        form.get_by_text("New run").first.click()
        idle(page)
    return main


def _slide_down(page: Page, idle, label: str, steps: int, shown: str) -> None:
    """Move the slider ``label`` ``steps`` positions down with the keyboard; it then shows ``shown``."""
    slider = page.get_by_test_id("stMain").get_by_test_id("stSlider").filter(has_text=label)
    slider.get_by_role("slider").focus()
    for _ in range(steps):
        slider.get_by_role("slider").press("ArrowLeft")
    idle(page)
    expect(slider.get_by_test_id("stSliderThumbValue")).to_have_text(shown)


def _start(page: Page, idle) -> Locator:
    """Click "Start training"; returns the heading of the run it started."""
    main = page.get_by_test_id("stMain")
    main.get_by_role("button", name="Start training").click()
    idle(page)
    heading = main.locator("h4", has_text=re.compile(r"run \d+ · "))
    expect(heading).to_contain_text(re.compile(r"queued|running|done"))
    return heading


def _refresh(page: Page, idle, heading: Locator) -> None:
    """Reload the page mid-run: the run lives in the store, not in the browser session, so the page finds it."""
    page.reload()
    idle(page)
    expect(heading).to_contain_text(re.compile(r"running|done"), timeout=60_000)


def _see_it_finish(page: Page, idle, heading: Locator) -> None:
    """Wait for the run to end as done (a busy machine takes minutes): the page then shows its results."""
    expect(heading).to_contain_text("done", timeout=300_000)
    idle(page)
    expect(page.get_by_test_id("stMain")).to_contain_text("validation images right")


def test_train_refresh_finish_and_open_everywhere(page: Page, idle, save_screenshot) -> None:
    main = _open_train(page, idle)
    _slide_down(page, idle, "Epochs", PRESETS["tinyvgg-shapes"].settings.epochs - 3, "3")
    save_screenshot(page, "train-form.png")
    heading = _start(page, idle)
    _refresh(page, idle, heading)
    _see_it_finish(page, idle, heading)
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
