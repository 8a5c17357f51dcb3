"""Real-browser flows on the Playground and Fool-the-model pages: pick a photo, change the kernel (a preset, then one
weight typed into the table) and see the output follow; what a filter wants to see; attack the default image."""

import re

import pytest
import torch
from browser import choose as _choose
from playwright.sync_api import Page, expect

from cnn_explorer.featurevis import channel_scores, dataset_images, default_dataset, top_images, visualizable_layers
from cnn_explorer.images import SAMPLES, load_image, sample_bytes
from cnn_explorer.pixels import image_pixels
from cnn_explorer.playground import KERNELS, convolve, image_tensor
from cnn_explorer.robustness import attack
from cnn_explorer.zoo import load_model

pytestmark = pytest.mark.e2e

PHOTO = "astronaut"


def _output_caption(output: torch.Tensor) -> str:
    return f"{output.shape[-1]}×{output.shape[-2]} output, values {float(output.min()):.3g} … {float(output.max()):.3g}"


def test_change_the_kernel_and_see_the_output(page: Page, idle, save_screenshot) -> None:
    _choose(page, page.get_by_test_id("stSidebar"), "Sample", SAMPLES[PHOTO].title, idle)
    page.get_by_test_id("stSidebarNav").get_by_role("link", name="Playground").click()
    idle(page)
    expect(page.locator("h1")).to_have_text("Playground")
    main = page.get_by_test_id("stMain")
    picture = image_tensor(load_image(sample_bytes(PHOTO)), "grey", 256)
    expect(main).to_contain_text(_output_caption(convolve(picture, KERNELS["identity"].kernel(3))))

    _choose(page, main, "Kernel", "Sobel x", idle)
    sobel = KERNELS["sobel_x"].kernel(3)
    expect(main).to_contain_text(_output_caption(convolve(picture, sobel)))
    expect(main).to_contain_text(KERNELS["sobel_x"].summary)

    # One weight typed into the kernel table: the middle row's left weight, −2 → 3.
    grid = main.get_by_test_id("stDataFrame").first
    box = grid.bounding_box()
    header, row_height, columns = 35, 35, 3
    grid.click(position={"x": box["width"] / columns / 2, "y": header + 1.5 * row_height})
    page.keyboard.type("3")  # typing on a selected cell opens the grid's editor with what was typed
    expect(page.locator("#portal").locator("input, textarea").first).to_have_value("3")
    page.keyboard.press("Enter")
    idle(page)
    edited = sobel.clone()
    edited[1, 0] = 3
    expect(main).to_contain_text(_output_caption(convolve(picture, edited)))

    main.get_by_role("button", name="Next position").click()
    idle(page)
    assert "Traceback" not in page.inner_text("body")
    assert not page.get_by_test_id("stException").count()
    main.get_by_text("One step of the slide").scroll_into_view_if_needed()
    save_screenshot(page, "playground.png")


def test_fool_the_model(page: Page, idle, expected, save_screenshot) -> None:
    page.get_by_test_id("stSidebarNav").get_by_role("link", name="Fool the model").click()
    idle(page)
    expect(page.locator("h1")).to_have_text("Fooling the model")
    model = load_model(expected.default_model())
    pixels = image_pixels(model, load_image(sample_bytes(expected.first_sample(model.name))))
    result = attack(model, pixels, "fgsm", 4 / 255)
    _, name, probability = result.after.top[0]
    main = page.get_by_test_id("stMain")
    expect(main).to_contain_text(f"Adversarial: {name} ({probability:.1%})")
    expect(main).to_contain_text(f"Adversarial: Grad-CAM for {name}")
    main.get_by_role("button", name="Find the smallest ε").click()
    idle(page)
    expect(main.get_by_test_id("stAlertContentSuccess").or_(main.get_by_test_id("stAlertContentInfo"))).to_be_visible()
    assert not page.get_by_test_id("stException").count()
    save_screenshot(page, "robustness.png")


def test_what_a_filter_wants_to_see(page: Page, idle, expected, save_screenshot) -> None:
    page.get_by_test_id("stSidebarNav").get_by_role("link", name="Playground").click()
    idle(page)
    main = page.get_by_test_id("stMain")
    main.get_by_role("radio", name="What a filter wants to see", exact=True).click()
    idle(page)
    model = load_model(expected.default_model())
    layer = visualizable_layers(model)[-2]  # the last conv (the last layer is the classifier)
    main.get_by_role("button", name=f"Visualize channel 0 of {layer}").click()
    idle(page)
    expect(main).to_contain_text("What excites channel 0 most")
    expect(main).to_contain_text("after 120 steps")
    # The favourites are a plain forward pass: the page shows the library's scores, strongest first.
    top = top_images(channel_scores(model, layer, dataset_images(default_dataset(model), 300)), 0, 9)
    expect(main).to_contain_text(", ".join(f"{score:.3g}" for score in top.scores))
    assert not page.get_by_test_id("stException").count()
    save_screenshot(page, "featurevis.png")


def _value(main, label: str) -> int:
    return int(main.get_by_role("spinbutton", name=re.compile(f"^{re.escape(label)}")).input_value())


def test_a_stride_change_keeps_the_window_on_the_cat(page: Page, idle, save_screenshot) -> None:
    _choose(page, page.get_by_test_id("stSidebar"), "Sample", SAMPLES["cat"].title, idle)
    page.get_by_test_id("stSidebarNav").get_by_role("link", name="Playground").click()
    idle(page)
    main = page.get_by_test_id("stMain")
    for label, value in (("Output row", "60"), ("Output column", "100")):  # the 3×3 window on rows 60…62, cols 100…102
        field = main.get_by_role("spinbutton", name=re.compile(f"^{label}"))
        field.fill(value)
        field.press("Enter")
        idle(page)
    expect(main).to_contain_text("One step of the slide, output (60, 100)")
    stride = main.get_by_test_id("stSlider").filter(has_text="Stride").get_by_role("slider")
    stride.focus()
    for _ in range(3):  # 1 → 4
        page.keyboard.press("ArrowRight")
    idle(page)
    expect(stride).to_have_value("4")
    # Output (15, 25) at stride 4 covers rows 60…62 and columns 100…102 again; the page used to jump to (41, 63).
    expect(main).to_contain_text("One step of the slide, output (15, 25)")
    assert (_value(main, "Output row"), _value(main, "Output column")) == (15, 25)
    assert not page.get_by_test_id("stException").count()
    main.get_by_text("One step of the slide").scroll_into_view_if_needed()
    save_screenshot(page, "playground_stride.png")


def test_an_unavailable_model_still_shows_convolution_and_pooling(page: Page, idle, save_screenshot) -> None:
    sidebar = page.get_by_test_id("stSidebar")
    _choose(page, sidebar, "Model", "alexnet (download)", idle)  # offline; no test caches it (Layers caches resnet18)
    page.get_by_test_id("stSidebarNav").get_by_role("link", name="Playground").click()
    idle(page)
    main = page.get_by_test_id("stMain")
    expect(page.locator("h1")).to_have_text("Playground")
    expect(main.get_by_test_id("stAlertContentInfo")).to_have_count(1)
    expect(main.get_by_test_id("stAlertContentInfo")).to_contain_text("need no model and work below")
    expect(main.get_by_test_id("stAlertContentWarning")).to_have_count(1)  # why and how to get it, once
    expect(main.get_by_test_id("stAlertContentWarning")).to_contain_text("alexnet's weights are not on this computer")
    assert "urlopen" not in main.inner_text()
    title = sidebar.get_by_role("combobox", name="Sample").input_value()
    (sample,) = [key for key, entry in SAMPLES.items() if entry.title == title]
    picture = image_tensor(load_image(sample_bytes(sample)), "grey", 256)
    expect(main).to_contain_text(_output_caption(convolve(picture, KERNELS["identity"].kernel(3))))
    main.get_by_role("radio", name="Pooling", exact=True).click()
    idle(page)
    expect(main).to_contain_text("max pooled, window 2, stride 2")
    expect(main).to_contain_text("The shift demo needs an available model")
    assert not page.get_by_test_id("stException").count()
    save_screenshot(page, "playground_no_model.png")
