"""Real-browser flows on the Layers page: step with Next and see the layer change; pick resnet18 (weights from a test
hub cache) and click a map of the feature grid to pick its channel."""

import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from playwright.sync_api import Page, expect

from cnn_explorer import render
from cnn_explorer.images import SAMPLES, load_image, sample_bytes
from cnn_explorer.layers import capture_activations, list_layers
from cnn_explorer.ui.layer_cache import grid_cell
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


def test_the_downloads_give_the_grid_and_the_map_drawn_when_clicked(page: Page, idle, expected) -> None:
    """The PNGs are produced when the button is clicked (a deferred download: not sent, nor fetched back by the
    browser, on every step): the grid is the layer's maps as the library tiles them, the map its chosen channel."""
    model = load_model(expected.default_model())
    _open_layers(page, idle)
    title = page.get_by_test_id("stSidebar").get_by_role("combobox", name="Sample").input_value()
    (sample,) = [key for key, entry in SAMPLES.items() if entry.title == title]
    first = list_layers(model)[0].name
    maps = capture_activations(model, model.preprocess(load_image(sample_bytes(sample))), [first])[first][0]
    grid = render.feature_grid(maps, "layer", highlight=0, cell=grid_cell(maps.shape[0]), max_width=900)

    pictures = {}
    for label in ("Download the grid (PNG)", "Download channel 0 (PNG)"):
        with page.expect_download() as download:
            page.get_by_role("button", name=label).click()
        pictures[label] = Image.open(download.value.path())
        pictures[label].load()
    assert np.array_equal(np.asarray(pictures["Download the grid (PNG)"]), np.asarray(grid.image))
    chosen = render.map_image(maps[0], *grid.ranges[0], grid.cmap)
    assert np.array_equal(np.asarray(pictures["Download channel 0 (PNG)"]), np.asarray(chosen))
    assert "Traceback" not in page.inner_text("body")


def test_filters_and_statistics_appear_when_opened_and_follow_the_layer(page: Page, idle, save_screenshot) -> None:
    """The expander runs its content only when opened (on_change="rerun"): a click opens it with the kernels and
    the statistics of the current layer, and it stays open, with the next layer's, after Next."""
    _open_layers(page, idle)
    expander = page.get_by_test_id("stExpander").filter(has_text="Filters and statistics")
    expect(expander).not_to_contain_text("of the values are exactly zero")
    expander.get_by_text("Filters and statistics").click()
    idle(page)
    expect(expander).to_contain_text("of the values are exactly zero")
    expect(expander).to_contain_text("filters, 3 of 3 input channels each")  # the first conv's kernels
    expect(expander.get_by_test_id("stImage")).to_have_count(2)  # the kernels and the histogram
    page.get_by_role("button", name="Next").click()
    idle(page)
    expect(expander).to_contain_text("layer has no kernels")  # the ReLU after it
    expect(expander).to_contain_text("of the values are exactly zero")
    save_screenshot(page, "layers-filters-open.png")


def test_arrow_keys_and_play_step_through_the_layers(page: Page, idle, expected) -> None:
    names = [info.name for info in list_layers(load_model(expected.default_model()))]
    _open_layers(page, idle)
    slider_value = page.get_by_test_id("stSliderThumbValue").first
    expect(slider_value).to_have_text(f"1/{len(names)} · {names[0]}")

    page.locator("h1").click()  # the page has the focus, no input: the arrows are the stepper's
    for key, step in (("ArrowRight", 1), ("ArrowRight", 2), ("ArrowLeft", 1)):
        page.keyboard.press(key)
        idle(page)
        expect(slider_value).to_have_text(f"{step + 1}/{len(names)} · {names[step]}")
        expect(page.get_by_test_id("stMain").locator("h3").first).to_contain_text(f"{names[step]} · ")

    main = page.get_by_test_id("stMain")
    main.get_by_role("button", name="Play").click()
    expect(slider_value).to_have_text(f"4/{len(names)} · {names[3]}", timeout=60_000)  # one layer a second
    main.get_by_role("button", name="Pause").click()
    idle(page)
    paused = slider_value.inner_text()
    page.wait_for_timeout(2500)
    expect(slider_value).to_have_text(paused)
    expect(main.get_by_role("button", name="Play")).to_be_visible()
    assert not page.get_by_test_id("stException").count()


@pytest.fixture
def server_hub(server: str, hub_cache: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The test hub cache, seen by the running server.

    The server fixture starts ``streamlit run`` with ``TORCH_HOME`` set to an empty folder of its own
    (``<basetemp>/e2e-server<n>/torch``); the zoo looks there whenever a model is chosen, so linking the cache's ``hub``
    folder into it makes the ImageNet models load offline, without a server of their own.
    """
    (torch_home,) = tmp_path_factory.getbasetemp().glob("e2e-server[0-9]*/torch")
    hub = torch_home / "hub"
    if not hub.exists():
        hub.symlink_to(hub_cache / "hub", target_is_directory=True)
    yield hub
    hub.unlink()  # the server's later visitors are offline again: the ImageNet models need a download


def _tooltip_value(page: Page, name: str) -> float:
    """A number of the chart tooltip (vega-tooltip writes minus signs as U+2212)."""
    row = page.locator("#vg-tooltip-element tr").filter(has=page.locator("td.key", has_text=re.compile(f"^{name}$")))
    return float(row.locator("td.value").inner_text().replace("\u2212", "-"))


def test_clicking_a_map_of_resnet18_picks_its_channel(
    server_hub, cached_hub, page: Page, idle, save_screenshot
) -> None:
    sidebar = page.get_by_test_id("stSidebar")
    model_box = sidebar.get_by_role("combobox", name="Model")
    model_box.click()
    page.get_by_role("option", name="resnet18", exact=True).click()  # in the hub cache: no "(download)"
    idle(page)
    expect(model_box).to_have_value("resnet18")
    _open_layers(page, idle)
    heading = page.get_by_test_id("stMain").locator("h3").first
    expect(heading).to_have_text("conv1 · Conv2d")
    channel_input = page.get_by_label(re.compile(r"^Channel \(0…63\)"))
    expect(channel_input).to_have_value("0")

    # The values the tooltips should show, recomputed with the library for the sample the sidebar chose.
    title = sidebar.get_by_role("combobox", name="Sample").input_value()
    (sample,) = [key for key, entry in SAMPLES.items() if entry.title == title]
    model = load_model("resnet18")
    conv1 = capture_activations(model, model.preprocess(load_image(sample_bytes(sample))), ["conv1"])["conv1"][0]

    tiles = page.locator(f"[class*='st-key-layer_grid_'] g.{render.GRID_TILES_VIEW}_marks path")
    expect(tiles).to_have_count(64)
    tiles.nth(10).hover()
    expect(page.locator("#vg-tooltip-element")).to_be_visible()
    assert _tooltip_value(page, "channel") == 10
    for name, value in (("min", conv1[10].min()), ("max", conv1[10].max()), ("mean", conv1[10].mean())):
        assert _tooltip_value(page, name) == pytest.approx(float(value), rel=1e-3, abs=1e-6), name

    tiles.nth(10).click()
    idle(page)

    expect(channel_input).to_have_value("10")
    main = page.get_by_test_id("stMain")
    expect(main.get_by_text("All 64 maps, channel 10 framed")).to_be_visible()
    expect(main.get_by_text(re.compile(r"^Channel 10: "))).to_be_visible()
    expect(main).to_contain_text("Weighted sum of conv1 at [10, ")
    expect(main).to_contain_text("agree to 1e-05")
    assert "Traceback" not in page.inner_text("body")
    assert not page.get_by_test_id("stException").count()
    page.mouse.move(0, 0)  # no tooltip or hover outline over the picture
    save_screenshot(page, "layers_resnet18_click.png")
