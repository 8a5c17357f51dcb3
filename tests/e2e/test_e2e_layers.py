"""Real-browser flow on the Layers page: open it, step with Next, see the layer change, take a screenshot."""

import pytest
from playwright.sync_api import Page, expect

from cnn_explorer.layers import list_layers
from cnn_explorer.zoo import load_model

pytestmark = pytest.mark.e2e


def _open_layers(page: Page, idle) -> None:
    page.get_by_test_id("stSidebarNav").get_by_role("link", name="Layers").click()
    idle(page)
    expect(page.locator("h1")).to_have_text("Layers")


def test_next_steps_to_the_following_layers(page: Page, idle, expected, save_screenshot) -> None:
    names = [info.name for info in list_layers(load_model(expected.default_model()))]
    _open_layers(page, idle)
    heading = page.get_by_test_id("stMain").locator("h3").first
    expect(heading).to_contain_text(names[0])
    slider_value = page.get_by_test_id("stSliderThumbValue")
    expect(slider_value).to_have_text(f"1/{len(names)} · {names[0]}")

    for step in (1, 2):
        page.get_by_role("button", name="Next").click()
        idle(page)
        expect(heading).to_contain_text(f"{names[step]} · ")
        expect(slider_value).to_have_text(f"{step + 1}/{len(names)} · {names[step]}")

    main = page.get_by_test_id("stMain")
    expect(main.get_by_test_id("stMetric").filter(has_text="Recomputed")).to_be_visible()
    expect(main).to_contain_text("agree to 1e-05")
    page.get_by_text("Effective receptive field").click()
    idle(page)
    assert "Traceback" not in page.inner_text("body")
    assert not page.get_by_test_id("stException").count()
    save_screenshot(page, "layers.png")
