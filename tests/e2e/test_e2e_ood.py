"""Real browser: a photo on the shapes model gets a warning naming the drawn shapes, next to its prediction."""

import pytest
from playwright.sync_api import Page, expect

from cnn_explorer.images import SAMPLES

pytestmark = pytest.mark.e2e

WARNING = "tinyvgg-shapes was trained on 10 kinds of drawn shapes; this image looks unlike them"


def _choose_sample(page: Page, title: str, idle) -> None:
    idle(page)  # a rerun still under way would redraw the box and close its list
    page.get_by_test_id("stSidebar").get_by_test_id("stSelectbox").filter(has_text="Sample").click()
    page.keyboard.type(title)  # typed: a long list renders only the options in view
    page.get_by_role("option", name=title, exact=True).click()
    idle(page)


def test_the_cat_on_the_shapes_model_is_flagged_and_a_shape_is_not(page: Page, idle, save_screenshot) -> None:
    main = page.get_by_test_id("stMain")
    expect(page.locator("h1").first).to_be_visible()
    expect(main.get_by_test_id("stAlertContentWarning")).to_have_count(0)  # the default shape sample

    _choose_sample(page, SAMPLES["cat"].title, idle)
    warning = main.get_by_test_id("stAlertContentWarning")
    expect(warning).to_have_count(1)
    expect(warning).to_contain_text(WARNING)
    # Next to the prediction: between the title and the first picture.
    assert warning.bounding_box()["y"] < main.get_by_text("The image as given").bounding_box()["y"]
    save_screenshot(page, "home_ood_warning.png")

    page.get_by_test_id("stSidebarNav").get_by_role("link", name="Explain").click()
    idle(page)
    expect(main.get_by_test_id("stAlertContentWarning").filter(has_text=WARNING)).to_have_count(1)

    _choose_sample(page, SAMPLES["shape-star"].title, idle)
    expect(main.get_by_test_id("stAlertContentWarning").filter(has_text="drawn shapes")).to_have_count(0)
