"""report.markup: a page that stands alone — every image an embedded PNG, nothing fetched, no script — and every
text from a model or a file name escaped."""

import base64
import io
from dataclasses import replace

from PIL import Image
from report_pages import Page as _Page
from report_pages import direct_top as _direct_top

from cnn_explorer.report import build_report
from cnn_explorer.zoo import LoadedModel

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
HOSTILE_CLASS = "<script>alert('class')</script>"
HOSTILE_LABEL = '"><img src=x onerror=alert(1)>.png'


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
