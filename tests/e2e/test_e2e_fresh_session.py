"""Real-browser flows from a fresh session, in the order a person clicks: Explain follows another sample, a refresh
keeps the sample, an ImageNet model without weights is readable in the sidebar and explained once, and Layers starts
on a unit that shows something."""

import re
from urllib.parse import parse_qs, urlparse

import pytest
from browser import choose as _choose
from playwright.sync_api import Page, expect

from cnn_explorer.images import SAMPLES, load_image, sample_bytes
from cnn_explorer.layers import capture_activations, list_layers
from cnn_explorer.zoo import load_model

pytestmark = pytest.mark.e2e


def test_explain_follows_another_sample_and_a_refresh_keeps_it(page: Page, idle, expected, save_screenshot) -> None:
    model_name = expected.default_model()
    first, first_probability = expected.default_top()
    sample, best = expected.sample_predicted_otherwise(model_name)
    _, probability = expected.top(load_model(model_name), sample_bytes(sample))
    main, sidebar = page.get_by_test_id("stMain"), page.get_by_test_id("stSidebar")

    page.get_by_test_id("stSidebarNav").get_by_role("link", name="Explain").click()
    idle(page)
    expect(page.locator("h1")).to_have_text(f"Why {first}?")
    target = main.get_by_role("combobox", name="Explain the class")
    expect(target).to_have_value(f"{first} · {first_probability:.1%}")

    _choose(page, sidebar, "Sample", SAMPLES[sample].title, idle)

    expect(page.locator("h1")).to_have_text(f"Why {best}?")
    expect(target).to_have_value(f"{best} · {probability:.1%}")
    expect(main).to_contain_text(f"{best} at ")  # the Grad-CAM map's caption: "square at conv_2_2 · …"
    expect(main).not_to_contain_text(f"{first} at ")
    save_screenshot(page, "fresh-explain-another-sample.png")

    query = parse_qs(urlparse(page.url).query)
    assert query == {"model": [model_name], "sample": [sample]}, page.url
    page.reload()  # F5
    idle(page)
    expect(page.locator("h1")).to_have_text(f"Why {best}?")
    expect(sidebar.get_by_role("combobox", name="Sample")).to_have_value(SAMPLES[sample].title)
    expect(target).to_have_value(f"{best} · {probability:.1%}")


def test_an_imagenet_model_without_weights_reads_whole_and_is_explained_once(page: Page, idle, save_screenshot) -> None:
    sidebar, main = page.get_by_test_id("stSidebar"), page.get_by_test_id("stMain")
    picker = sidebar.get_by_role("combobox", name="Model")
    picker.click()
    page.keyboard.type("mobilenet")
    page.get_by_role("option", name="mobilenet_v3_small (download)", exact=True).click()
    idle(page)

    expect(picker).to_have_value("mobilenet_v3_small (download)")
    assert picker.evaluate("element => element.scrollWidth <= element.clientWidth"), "the name is cut off"
    expect(sidebar).to_contain_text("ImageNet · not available here")
    alerts = page.get_by_test_id("stAlert")
    expect(alerts).to_have_count(1)
    expect(main.get_by_test_id("stAlert")).to_contain_text(
        "mobilenet_v3_small's weights are not on this computer and could not be downloaded"
    )
    assert "urlopen" not in page.inner_text("body")
    save_screenshot(page, "fresh-unavailable-model.png")


def test_layers_starts_on_an_informative_unit_of_max_pool_1(page: Page, idle, expected, save_screenshot) -> None:
    # The middle unit of max_pool_1 was a window of four zeros: "max = 0" teaches nothing.
    model_name = expected.default_model()
    model = load_model(model_name)
    names = [info.name for info in list_layers(model)]
    if "max_pool_1" not in names:
        pytest.fail(f"{model_name} has no max_pool_1 layer: pick a pooling layer of the default model here")
    x = model.preprocess(load_image(sample_bytes(expected.first_sample(model_name))))
    pooled = capture_activations(model, x, ["max_pool_1"])["max_pool_1"][0, 0]
    peak = pooled.max()
    row, col = (int(i) for i in (pooled == peak).nonzero()[0])
    main = page.get_by_test_id("stMain")

    page.get_by_test_id("stSidebarNav").get_by_role("link", name="Layers").click()
    idle(page)
    for _ in range(names.index("max_pool_1")):
        main.get_by_role("button", name="Next").click()
        idle(page)

    expect(main.locator("h3").first).to_have_text(re.compile(r"^max_pool_1 · "))
    expect(main.get_by_label(re.compile(r"^Row \(0…"))).to_have_value(str(row))
    expect(main.get_by_label(re.compile(r"^Column \(0…"))).to_have_value(str(col))
    expect(main).to_contain_text(f"max = {float(peak):.6g}, at row")
    assert float(peak) > 0
    main.get_by_text("The arithmetic of one value").scroll_into_view_if_needed()
    save_screenshot(page, "fresh-layers-max-pool-1.png")
