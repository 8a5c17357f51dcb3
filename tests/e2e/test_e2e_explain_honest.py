"""Real-browser checks of what Explain says when it has little to say (issue 14): a blank map is written on, not
shown as the bare image, and every chosen method stays visible in the Methods box."""

import pytest
from browser import choose as _choose
from playwright.sync_api import Page, expect

from cnn_explorer import METHODS, explain, load_image, load_model
from cnn_explorer.images import SAMPLES, sample_bytes

pytestmark = pytest.mark.e2e


def _add_method(page: Page, main, key: str, idle) -> None:
    idle(page)
    main.get_by_test_id("stMultiSelect").locator("input").click()
    page.keyboard.type(METHODS[key].name)
    page.get_by_role("option", name=METHODS[key].name, exact=True).click()
    idle(page)


def _open_explain(page: Page, idle):
    page.get_by_test_id("stSidebarNav").get_by_role("link", name="Explain").click()
    idle(page)
    return page.get_by_test_id("stMain")


def test_every_chosen_method_is_visible_in_the_methods_box(page: Page, idle, save_screenshot) -> None:
    main = _open_explain(page, idle)
    for key in METHODS:
        if key not in ("gradcam", "saliency", "integrated_gradients"):
            _add_method(page, main, key, idle)
    box = main.get_by_test_id("stMultiSelect").bounding_box()
    for spec in METHODS.values():
        chip = main.get_by_test_id("stMultiSelect").locator(f"[data-tag][aria-label='{spec.name}']")
        expect(chip).to_be_visible()
        found = chip.bounding_box()
        # inside the box, not scrolled out of it to the left (before: only the last three showed)
        assert box["x"] <= found["x"] and found["x"] + found["width"] <= box["x"] + box["width"], (spec.name, found)
    main.get_by_test_id("stMultiSelect").scroll_into_view_if_needed()
    save_screenshot(page, "explain-methods-box.png")


def test_a_blank_score_cam_is_written_on_and_not_scored(page: Page, idle, save_screenshot) -> None:
    model = load_model("tinyvgg-shapes")
    circle = model.preprocess(load_image(sample_bytes("shape-circle")))
    assert explain(model, circle, "scorecam", layer="conv_2_2").is_constant  # the case
    _choose(page, page.get_by_test_id("stSidebar"), "Sample", SAMPLES["shape-circle"].title, idle)
    main = _open_explain(page, idle)
    _add_method(page, main, "scorecam", idle)
    _choose(page, main, "CAM layer", "conv_2_2", idle)
    note = "No region raises circle at conv_2_2 (the map is zero everywhere); try relu_2_2 or Grad-CAM or LayerCAM."
    caption = main.get_by_test_id("stCaptionContainer").filter(has_text="no colour scale")
    expect(caption).to_have_count(1)
    expect(caption).to_contain_text(note)
    score_cam = main.get_by_test_id("stColumn").filter(has=page.locator("h5", has_text="Score-CAM"))
    expect(score_cam.get_by_test_id("stImage")).to_be_visible()
    score_cam.scroll_into_view_if_needed()
    save_screenshot(page, "explain-blank-map.png")

    main.get_by_role("button", name="Run the checks").click()
    idle(page)
    table = main.get_by_test_id("stTable")
    expect(table).to_contain_text("constant map: not scored")
    expect(main.get_by_test_id("stAlertContentWarning").filter(has_text="Score-CAM: Not scored")).to_contain_text(note)
