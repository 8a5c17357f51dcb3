"""AppTest for the report export on the Predict page: built on a click, offered as HTML and PDF, its numbers the
library's (recomputed with ``Expected``), options that change what is built, and a machine without Chromium."""

import shutil

import pytest
from streamlit.testing.v1 import AppTest

from cnn_explorer import render
from cnn_explorer.report import find_chromium
from cnn_explorer.ui import report as ui_report


def _assert_clean(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]


def _labels(at: AppTest) -> list[str]:
    return [button.label for button in at.download_button]


@pytest.fixture
def app(app: AppTest) -> AppTest:
    """The Predict page with "Export a report" opened: its controls are drawn only then."""
    app.session_state["report_open"] = True
    return app.run()


def test_the_closed_export_draws_nothing(app: AppTest) -> None:
    app.session_state["report_open"] = False  # the person closes it again
    app.run()
    _assert_clean(app)
    assert not [b for b in app.button if b.key == "report_build"]
    assert not [m for m in app.multiselect if m.key.startswith("report_")]


def _built(at: AppTest) -> ui_report._PreparedReport:
    """The report the page built: the only one in the shared store (the fixture starts with empty caches)."""
    entries = list(ui_report._reports()._entries.values())
    assert len(entries) == 1
    return entries[0]


@pytest.mark.skipif(find_chromium() is None, reason="no Chromium on PATH to print the PDF")
def test_export_offers_html_and_pdf_of_the_prediction(app: AppTest, expected) -> None:
    assert app.button(key="report_build").label == "Build the report"
    assert _labels(app) == []
    app.button(key="report_build").click().run()
    _assert_clean(app)
    assert _labels(app) == ["Download HTML", "Download PDF"]
    prepared = _built(app)
    name, probability = expected.default_top()
    stated = f"<strong>{name}</strong>\nwith probability <strong>{render.percent(probability)}</strong>"
    assert stated in prepared.report.html
    assert prepared.pdf.startswith(b"%PDF-")
    assert "Can these maps be trusted?" in prepared.report.html

    app.run()  # a later run finds the report built: no button, the downloads at once
    _assert_clean(app)
    assert _labels(app) == ["Download HTML", "Download PDF"]
    assert not [b for b in app.button if b.key == "report_build"]


def test_other_options_build_another_report(app: AppTest, expected, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ui_report, "report_to_pdf", lambda html: b"%PDF-1.4 stand-in")  # printing is tested on its own
    name = expected.default_model()
    layers = app.multiselect(key=f"report_layers_{name}")
    defaults, first = list(layers.value), layers.options[0]
    layers.set_value([first])
    app.multiselect(key=f"report_methods_{name}").set_value(["integrated_gradients"])
    app.checkbox(key="report_trust").uncheck().run()
    _assert_clean(app)
    app.button(key="report_build").click().run()
    _assert_clean(app)
    assert _labels(app) == ["Download HTML", "Download PDF"]
    html = _built(app).report.html
    assert f"<h3>{first} · " in html
    assert not [layer for layer in defaults if layer != first and f"<h3>{layer} · " in html]
    assert "Integrated gradients" in html and "Grad-CAM" not in html
    assert "Can these maps be trusted?" not in html


def test_without_chromium_the_html_is_still_offered(app: AppTest, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shutil, "which", lambda name, *args, **kwargs: None)
    app.checkbox(key="report_trust").uncheck().run()
    app.button(key="report_build").click().run()
    assert not app.exception, [e.value for e in app.exception]
    assert _labels(app) == ["Download HTML"]
    assert any("apt-get install chromium" in str(w.value) for w in app.warning)
