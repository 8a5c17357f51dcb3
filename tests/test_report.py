"""The report: its numbers recomputed with the library called directly, a self-contained page (every image a PNG
``data:`` URI, nothing fetched, no script), every text from a model or a file name escaped, the trust scores equal to
``trust_report``'s, and the PDF printed by Chromium (or a ReportError saying how to install it)."""

import base64
import concurrent.futures
import functools
import io
import re
import time
from dataclasses import replace
from html.parser import HTMLParser
from pathlib import Path

import pytest
import torch
from PIL import Image
from torch import nn

from cnn_explorer import capture_activations, list_layers, load_model, render
from cnn_explorer.images import default_sample, load_sample
from cnn_explorer.layers import UnknownLayer
from cnn_explorer.preprocess import Preprocess
from cnn_explorer.report import ReportError, build_report, default_layers, find_chromium, to_pdf
from cnn_explorer.report import build as report_module
from cnn_explorer.trust import METRICS, trust_report
from cnn_explorer.zoo import LoadedModel

MODEL = "tinyvgg-shapes"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"]
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
HOSTILE_CLASS = "<script>alert('class')</script>"
HOSTILE_LABEL = '"><img src=x onerror=alert(1)>.png'

needs_chromium = pytest.mark.skipif(find_chromium() is None, reason="no Chromium on PATH to print the PDF")


class _Page(HTMLParser):
    """Every start tag with its attributes, the text, and the text of each table row keyed by its method."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []
        self.styles: list[str] = []
        self._in_style = False
        self.feed(text)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        self._in_style = tag == "style"

    def handle_endtag(self, tag: str) -> None:
        self._in_style = False

    def handle_data(self, data: str) -> None:
        (self.styles if self._in_style else self.text).append(data)

    def all(self, tag: str) -> list[dict[str, str | None]]:
        return [attrs for name, attrs in self.tags if name == tag]

    @property
    def plain(self) -> str:
        return " ".join("".join(self.text).split())


@pytest.fixture(scope="module")
def model() -> LoadedModel:
    return load_model(MODEL)


@pytest.fixture(scope="module")
def image() -> Image.Image:
    return load_sample(default_sample(MODEL))


@pytest.fixture(scope="module")
def report(model: LoadedModel, image: Image.Image):
    return build_report(model, image, image_label="circle.png")


@pytest.fixture(scope="module")
def page(report) -> _Page:
    return _Page(report.html)


def _direct_top(model: LoadedModel, image: Image.Image) -> tuple[int, str, float]:
    with torch.no_grad():
        probabilities = torch.softmax(model.module(model.preprocess(image))[0], dim=0)
    best = int(probabilities.argmax())
    return best, model.class_names[best], float(probabilities[best])


def _tiny_model() -> LoadedModel:
    """A grey 8×8 network whose only convolution ends at 1×1: no feature map to draw, no layer for a CAM."""
    torch.manual_seed(0)
    module = nn.Sequential(nn.Conv2d(1, 2, 8), nn.Flatten(), nn.Linear(2, 2)).eval()
    return LoadedModel(
        name="tiny",
        module=module,
        input_size=(1, 8, 8),
        class_names=("left", "right"),
        preprocess=Preprocess(resize=8, crop=8, grayscale=True),
        summary="a tiny test network",
        card="### tiny\n\n- **Data:** none",
    )


# ── what it says ────────────────────────────────────────────────────────────────────────────────────────────────


def test_the_prediction_is_the_library_s(report, page: _Page, model: LoadedModel, image: Image.Image) -> None:
    _, name, probability = _direct_top(model, image)
    assert f"says the image “circle.png” is {name} with probability {probability:.1%}." in page.plain
    first_row = next(attrs for attrs in page.all("td") if attrs.get("data-value"))
    assert float(first_row["data-value"]) == pytest.approx(probability, rel=1e-6)
    assert report.title == f"CNN Explorer report: {MODEL} on circle.png"
    assert report.file_stem == f"cnn-explorer-report-{MODEL}-circle"


def test_the_input_and_the_model_card_are_shown(page: _Page, model: LoadedModel, image: Image.Image) -> None:
    x = model.preprocess(image)
    assert f"input tensor {list(x.shape)}" in page.plain
    for step in model.preprocess.steps():
        assert step in page.plain
    for coloured, name in zip(render.channel_maps(x), ("red", "green", "blue"), strict=True):
        assert f"{name}: {coloured.vmin:+.2f} … {coloured.vmax:+.2f}" in page.plain
    assert "Model card" in page.plain
    assert "Held-out accuracy:" in page.plain  # the card's Markdown, as HTML: the ** are gone
    assert "**" not in page.plain


def test_default_layers_are_the_first_a_middle_and_the_last_convolution(model: LoadedModel) -> None:
    assert default_layers(list_layers(model)) == ["conv_1_1", "conv_2_1", "conv_2_2"]
    assert default_layers(list_layers(load_model("lenet5-digits"))) == ["c1", "c3"]  # c5 is 1×1: no map
    assert default_layers(list_layers(_tiny_model())) == []


def test_feature_maps_are_the_captured_ones_on_their_layer_scale(
    page: _Page, model: LoadedModel, image: Image.Image
) -> None:
    layers = default_layers(list_layers(model))
    outputs = capture_activations(model, model.preprocess(image), layers)
    shown = [attrs["data-range"] for attrs in page.all("span") if attrs.get("data-range")]
    assert len(shown) == len(layers)
    for name, text in zip(layers, shown, strict=True):
        low, high = map(float, text.split())
        expected = render.feature_grid(outputs[name][0], "layer").ranges[0]
        assert (low, high) == pytest.approx(expected, rel=1e-9)
        assert f"All {outputs[name].shape[1]} feature maps" in page.plain
        assert f"{name} · Conv2d" in page.plain


def test_trust_scores_are_trust_report_s(page: _Page, model: LoadedModel, image: Image.Image) -> None:
    x = model.preprocess(image)
    target = _direct_top(model, image)[0]
    rows: dict[str, dict[str, float]] = {}
    method = None
    for tag, attrs in page.tags:
        if tag == "tr" and attrs.get("data-method"):
            method = attrs["data-method"]
            rows[method] = {}
        elif tag == "td" and attrs.get("data-metric"):
            rows[method][attrs["data-metric"]] = float(attrs["data-value"])
    assert list(rows) == ["gradcam", "saliency"]
    for method, shown in rows.items():
        expected = trust_report(model, x, method, target=target).values
        assert set(shown) == set(METRICS)
        for key, value in expected.items():
            assert shown[key] == pytest.approx(value, rel=1e-6, abs=1e-9), (method, key)
        assert f"{expected['deletion']:.3f}" in page.plain
        assert f"{expected['infidelity']:.3g}" in page.plain


def test_chosen_layers_and_methods_without_trust(model: LoadedModel, image: Image.Image) -> None:
    report = build_report(model, image, layers=["relu_1_1", "output"], methods=["integrated_gradients"], trust=False)
    page = _Page(report.html)
    assert "relu_1_1 · ReLU" in page.plain
    assert "The 10 values of output" in page.plain  # a vector is drawn as bars, not as a map
    assert "Integrated gradients" in page.plain
    assert "Grad-CAM" not in page.plain
    assert "Can these maps be trusted" not in page.plain
    assert not [attrs for attrs in page.all("td") if attrs.get("data-metric")]
    assert report.title == f"CNN Explorer report: {MODEL} on the image"


def test_a_cam_that_does_not_apply_gets_a_note(image: Image.Image) -> None:
    tiny = _tiny_model()
    page = _Page(build_report(tiny, image, methods=["gradcam", "saliency"]).html)
    assert "Not computed: tiny has no convolutional layer with a spatial output" in page.plain
    assert "No layer was chosen." in page.plain
    assert [attrs["data-method"] for attrs in page.all("tr") if attrs.get("data-method")] == ["saliency"]


def test_a_map_whose_checks_cannot_run_is_shown_with_the_reason(image: Image.Image) -> None:
    pooled = replace(  # no weights: nothing for the randomization check to randomize
        _tiny_model(), module=nn.Sequential(nn.AvgPool2d(4), nn.Flatten()).eval(), class_names=("a", "b", "c", "d")
    )
    assert default_layers(list_layers(pooled)) == ["0"]  # no convolution: the layers with maps
    page = _Page(build_report(pooled, image, methods=["saliency"]).html)
    assert "Saliency (vanilla gradient): the checks cannot run — " in page.plain
    assert "no convolutional or linear layers to randomize" in page.plain
    assert any(attrs["alt"] == "Saliency (vanilla gradient) over the image" for attrs in page.all("img"))
    assert "0 · AvgPool2d" in page.plain


def test_progress_runs_from_zero_to_one(model: LoadedModel, image: Image.Image) -> None:
    seen: list[tuple[float, str]] = []
    build_report(model, image, methods=["saliency"], trust=False, progress=lambda f, what: seen.append((f, what)))
    fractions = [fraction for fraction, _ in seen]
    assert fractions[0] == 0.0 and fractions[-1] == 1.0
    assert fractions == sorted(fractions)


def test_bad_options_are_refused_with_what_is_allowed(model: LoadedModel, image: Image.Image) -> None:
    with pytest.raises(UnknownLayer, match=r"'nope'.*conv_1_1"):
        build_report(model, image, layers=["nope"])
    with pytest.raises(ValueError, match="layer names"):
        build_report(model, image, layers="conv_1_1")
    with pytest.raises(ValueError, match=r"Unknown method 'nope'\. Methods: saliency"):
        build_report(model, image, methods=["nope"])
    with pytest.raises(ValueError, match="Unknown trust setting bogus"):
        build_report(model, image, trust_settings={"bogus": 1})


# ── a page that stands alone ────────────────────────────────────────────────────────────────────────────────────


def test_every_image_is_an_embedded_png(page: _Page) -> None:
    images = page.all("img")
    # network input ×2, image as given, 3 channels, 3 grids with colour bars, 2 explanations, 3 trust figures
    assert len(images) == 2 + 1 + 3 + 3 * 2 + 2 + 3
    for attrs in images:
        src = attrs["src"]
        assert src.startswith("data:image/png;base64,"), src[:40]
        data = base64.b64decode(src.removeprefix("data:image/png;base64,"), validate=True)
        assert data.startswith(PNG_SIGNATURE)
        with Image.open(io.BytesIO(data)) as png:
            png.verify()
        assert attrs["alt"]


def test_nothing_is_fetched_and_nothing_runs(page: _Page) -> None:
    tags = {tag for tag, _ in page.tags}
    assert not tags & {"script", "link", "iframe", "object", "embed", "base", "frame", "audio", "video", "source"}
    for tag, attrs in page.tags:
        for name, value in attrs.items():
            assert not name.startswith("on"), (tag, name)
            if name in ("src", "srcset", "poster", "data", "background"):
                assert value.startswith("data:image/png;base64,"), (tag, name, value[:40])
            elif value and ("://" in value or value.startswith("//")):
                # Citations are links a reader may follow; nothing is loaded from them.
                assert (tag, name) == ("a", "href"), (tag, name, value[:80])
    css = " ".join(page.styles)
    assert "url(" not in css and "@import" not in css and "http" not in css
    assert "@page { size: A4" in css


def test_text_from_the_model_and_the_file_name_is_escaped(model: LoadedModel, image: Image.Image) -> None:
    best = _direct_top(model, image)[0]
    names = list(model.class_names)
    names[best] = HOSTILE_CLASS
    hostile = replace(
        model,
        name="<b>bold</b>&co",
        class_names=tuple(names),
        summary="<style>body{display:none}</style>",
        card="### <script>card()</script>\n\n- **Data:** [click](javascript:alert(1)) <i>x</i>",
    )
    report = build_report(hostile, image, layers=[], methods=["saliency"], trust=False, image_label=HOSTILE_LABEL)
    page = _Page(report.html)
    assert "<script" not in report.html.lower()
    assert "&lt;script&gt;alert(&#x27;class&#x27;)&lt;/script&gt;" in report.html
    assert HOSTILE_CLASS in page.plain  # shown as text
    assert HOSTILE_LABEL in page.plain
    assert "<b>bold</b>&co" in page.plain
    assert [tag for tag, _ in page.tags].count("style") == 1  # the report's own
    assert not [attrs for tag, attrs in page.tags if tag == "img" and attrs.get("src") == "x"]
    assert not [attrs for attrs in page.all("a") if not attrs["href"].startswith("https://")]
    assert "<i>" not in report.html
    assert report.file_stem == "cnn-explorer-report-b-bold-b-co-img-src-x-onerror-alert-1"


# ── the PDF ─────────────────────────────────────────────────────────────────────────────────────────────────────


@needs_chromium
def test_the_pdf_is_printed_by_chromium(report) -> None:
    pdf = to_pdf(report.html)
    assert pdf.startswith(b"%PDF-")
    assert len(re.findall(rb"/Type\s*/Page\b(?!s)", pdf)) >= 1
    boxes = re.findall(rb"/MediaBox \[0 0 ([\d.]+) ([\d.]+)\]", pdf)
    assert boxes
    for width, height in boxes:  # A4 in points (210 × 297 mm), from the page's @page rule
        assert (float(width), float(height)) == pytest.approx((595.28, 841.89), abs=0.5)


def test_without_chromium_a_report_error_says_how_to_install_it(
    report, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # nothing on it
    assert find_chromium() is None
    with pytest.raises(ReportError, match=r"apt-get install chromium.*download the HTML report"):
        to_pdf(report.html)


def _fake_chromium(folder: Path, script: str) -> None:
    path = folder / "chromium"
    path.write_text(f"#!/bin/sh\n{script}\n")
    path.chmod(0o755)


def test_a_failing_chromium_is_reported_with_what_it_said(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_chromium(tmp_path, "echo 'cannot open display' >&2\nexit 3")
    monkeypatch.setenv("PATH", f"{tmp_path}:/bin:/usr/bin")
    assert find_chromium() == str(tmp_path / "chromium")
    with pytest.raises(ReportError, match=r"exit code 3.*cannot open display"):
        to_pdf("<html></html>")


def _running(pid: int) -> bool:
    """True while ``pid`` runs (a killed orphan may linger as a zombie until it is reaped: that counts as gone)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False


def test_a_hanging_chromium_is_stopped_at_the_timeout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    helper = tmp_path / "helper.pid"
    # Like Chromium, it starts a helper process: the helper must not outlive the timeout either.
    _fake_chromium(tmp_path, f"sleep 60 &\necho $! > {helper}\nwait")
    monkeypatch.setenv("PATH", f"{tmp_path}:/bin:/usr/bin")
    started = time.monotonic()
    with pytest.raises(ReportError, match="did not finish printing the PDF within 1 s"):
        to_pdf("<html></html>", timeout=1)
    assert time.monotonic() - started < 10
    pid = int(helper.read_text())
    deadline = time.monotonic() + 5
    while _running(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _running(pid)


# ── honest numbers and blank maps (issue 14) ─────────────────────────────────────────────────────────────────────


def test_the_rest_of_the_classes_is_never_a_signed_zero(model: LoadedModel, image: Image.Image, page: _Page) -> None:
    # The sample's top five hold all but a sliver of the probability: 1 - Σ came out below zero, "-0.0%".
    with torch.no_grad():
        probabilities = torch.softmax(model.module(model.preprocess(image))[0], dim=0).double()
    rest = float(probabilities.sort(descending=True).values[5:].sum())
    assert f"The other {len(model.class_names) - 5} classes share {render.percent(rest)}." in page.plain
    assert "-0.0%" not in page.plain and "share -" not in page.plain


def test_a_constant_map_is_written_on_and_not_scored(monkeypatch: pytest.MonkeyPatch, model: LoadedModel) -> None:
    """Score-CAM of the circle at conv_2_2, before its ReLU, is zero everywhere (issue 14)."""
    real = report_module.trust_report

    @functools.wraps(real)  # the report reads trust_report's settings from its signature
    def at_conv_2_2(model, x, method, **kwargs):
        return real(model, x, method, **({"layer": "conv_2_2"} if method == "scorecam" else {}), **kwargs)

    monkeypatch.setattr(report_module, "trust_report", at_conv_2_2)
    monkeypatch.setattr(
        report_module,
        "explain",
        lambda model, x, method, **kwargs: pytest.fail("every map comes from its trust report here"),
    )
    circle = load_sample("shape-circle")
    html = build_report(model, circle, layers=[], methods=["scorecam", "gradcam"], trust_settings=_FAST).html
    shown = _Page(html)
    note = "No region raises circle at conv_2_2 (the map is zero everywhere); try Grad-CAM or LayerCAM."
    assert f"no colour scale: {note}" in shown.plain
    assert f"Score-CAM: Not scored: {note}" in shown.plain
    rows = [attrs for attrs in shown.all("tr") if attrs.get("data-constant")]
    assert [attrs["data-method"] for attrs in rows] == ["scorecam"]
    assert "constant map: not scored" in shown.plain and "✓ changes" not in shown.plain.split("Grad-CAM")[0]


_FAST = {"steps": 4, "max_steps": 2, "sensitivity_samples": 1, "infidelity_samples": 4}


def _layout(html: str, width: int, media: str) -> dict[str, float]:
    """The trust table's width and its column's in Chromium, at a viewport ``width`` px wide.

    In a thread of its own: Playwright's sync API refuses a thread whose asyncio loop runs, and in a full test run the
    browser tests' session-wide Playwright keeps one running in this one.
    """
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(_measure_layout, html, width, media).result()


def _measure_layout(html: str, width: int, media: str) -> dict[str, float]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": width, "height": 900})
            page.emulate_media(media=media)
            page.set_content(html)
            return page.evaluate(
                """() => { const t = document.querySelector('table.trust');
                return { table: t.getBoundingClientRect().width, column: t.parentElement.clientWidth,
                         scroll: document.documentElement.scrollWidth, view: window.innerWidth }; }"""
            )
        finally:
            browser.close()


@pytest.mark.parametrize(("width", "media"), [(1280, "screen"), (680, "print")])
def test_the_trust_table_fits_its_column_in_chromium(report, width: int, media: str) -> None:
    """issue 14: the trust table was 811 px wide in a 718 px column."""
    found = _layout(report.html, width, media)
    assert found["table"] <= found["column"] + 0.5, found
    assert found["scroll"] <= found["view"], found  # nothing sticks out of the page


def test_every_heading_is_kept_with_what_follows_it(page: _Page, report) -> None:
    """A section heading at the foot of a PDF page (issue 14: "3 · Feature maps" ended page 1) cannot happen when
    each h2 opens a block that must not break inside (``.keep``) and holds content after the heading."""
    assert "break-after: avoid" in _h2_rule(report.html)
    # a keeping block that opens with the heading and has an element after it
    opening = r'<(?:div|section) class="(?:[^"]*\s)?(?:keep|card-section)(?:\s[^"]*)?">\s*<h2>(.*?)</h2>\s*<(?!/)'
    kept = set(re.findall(opening, report.html, re.S))
    headings = re.findall(r"<h2>(.*?)</h2>", report.html)
    assert headings and set(headings) <= kept, set(headings) - kept
    assert ".keep { break-inside: avoid; }" in report.html


def _h2_rule(html: str) -> str:
    return re.search(r"h2 \{[^}]*\}", html).group(0)


def test_a_photo_on_the_shapes_model_is_reported_as_unlike_its_training_data(page: _Page, model: LoadedModel) -> None:
    assert "looks unlike" not in page.plain  # the held-out circle is like the drawn shapes
    cat = build_report(model, load_sample("cat"), layers=[], methods=["saliency"], trust=False)
    plain = _Page(cat.html).plain
    assert "tinyvgg-shapes was trained on 10 kinds of drawn shapes; this image looks unlike them" in plain
    assert plain.index("looks unlike them") < plain.index("1 · ")  # next to the prediction, before the sections
