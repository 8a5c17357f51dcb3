"""Real-browser flow on the Explain page: the default maps side by side, Grad-CAM's walkthrough opened."""

import pytest
from playwright.sync_api import Page, expect

from cnn_explorer import METHODS

pytestmark = pytest.mark.e2e


def test_maps_side_by_side_and_the_gradcam_walkthrough(page: Page, idle, expected, save_screenshot) -> None:
    best, _ = expected.default_top()
    page.get_by_test_id("stSidebarNav").get_by_role("link", name="Explain").click()
    idle(page)
    expect(page.locator("h1")).to_have_text(f"Why {best}?")
    main = page.get_by_test_id("stMain")
    for method in ("gradcam", "saliency", "integrated_gradients"):
        expect(main.locator("h5", has_text=METHODS[method].name).first).to_be_visible()
    expect(main.get_by_test_id("stDownloadButton")).to_have_count(3)  # one PNG per map
    save_screenshot(page, "explain.png")

    main.get_by_text("How Grad-CAM computed its map").click()
    idle(page)
    expect(main.get_by_test_id("stAlertContentSuccess")).to_contain_text("the same map")
    main.get_by_text("How Grad-CAM computed its map").scroll_into_view_if_needed()
    save_screenshot(page, "explain-gradcam-steps.png")


def test_the_trust_checks_run_from_the_page(page: Page, idle, save_screenshot) -> None:
    page.get_by_test_id("stSidebarNav").get_by_role("link", name="Explain").click()
    idle(page)
    main = page.get_by_test_id("stMain")
    main.get_by_role("button", name="Run the checks").click()
    idle(page)
    expect(main.get_by_test_id("stTable")).to_be_visible()
    expect(main.get_by_text("Deletion AUC", exact=True)).to_be_visible()
    main.get_by_test_id("stTable").scroll_into_view_if_needed()
    save_screenshot(page, "explain-trust.png")
