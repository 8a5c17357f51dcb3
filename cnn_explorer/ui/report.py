"""The report export on the Predict page: build, then download HTML and PDF."""

from __future__ import annotations

from dataclasses import dataclass

import streamlit as st
from PIL import Image

from cnn_explorer.attribution import (
    METHODS,
)
from cnn_explorer.model import LoadedModel
from cnn_explorer.report import DEFAULT_METHODS as REPORT_METHODS
from cnn_explorer.report import Report, ReportError, build_report, default_layers
from cnn_explorer.report import to_pdf as report_to_pdf
from cnn_explorer.ui.core import cached_cam_layers, cached_layer_table
from cnn_explorer.ui.long_task import ResultStore


@dataclass(frozen=True)
class _PreparedReport:
    """A built report and its PDF, or why there is no PDF."""

    report: Report
    pdf: bytes | None
    pdf_note: str | None


@st.cache_resource(show_spinner=False)
def _reports() -> ResultStore:
    """Finished reports shared by every session, keyed on (model, image digest, options). A report is megabytes of
    embedded PNGs: only a few are kept."""
    return ResultStore(max_entries=4)


def report_export(model: LoadedModel, image: Image.Image, digest: str, image_label: str) -> None:
    """The report's controls (which layers and methods, whether to run the trust checks) and, once built on a click,
    its HTML and PDF downloads. Built reports are shared by every session (keyed on model, image and options)."""
    table = cached_layer_table(model.name, model)
    drawable = [info.name for info in table if len(info.output_shape) == 3]
    _, default_layer = cached_cam_layers(model.name, model)
    offered = [key for key, spec in METHODS.items() if default_layer or not spec.uses_layer]
    layers_col, methods_col = st.columns(2)
    layers = layers_col.multiselect(
        "Feature maps of",
        drawable,
        default=[name for name in default_layers(table) if name in drawable],
        key=f"report_layers_{model.name}",
        help="The first, a middle and the last convolution are a good overview.",
    )
    methods = methods_col.multiselect(
        "Explanations",
        offered,
        default=[key for key in REPORT_METHODS if key in offered],
        format_func=lambda key: METHODS[key].name,
        key=f"report_methods_{model.name}",
        help="Each of the predicted class, with the method's default settings.",
    )
    trust = st.checkbox(
        "With the trust checks of each explanation",
        value=True,
        key="report_trust",
        help="Deletion/insertion, randomization, infidelity and sensitivity, as on the Explain page: seconds on the "
        "built-in models, up to a minute per method on ImageNet ones.",
    )
    key = ("report", model.name, digest, tuple(layers), tuple(methods), trust, image_label)
    store = _reports()
    prepared = store.get(key)
    if prepared is None:
        slot = st.empty()
        with slot.container():
            clicked = st.button("Build the report", key="report_build", icon=":material/description:", type="primary")
            st.caption("One HTML file with every image inside, and its PDF: it opens offline, with nothing to install.")
        if not clicked:
            return
        prepared = _build_report(model, image, layers, methods, trust, image_label)
        if prepared is None:
            return
        store.put(key, prepared)
        slot.empty()
    stem = prepared.report.file_stem
    html_col, pdf_col = st.columns(2)
    html_col.download_button(
        "Download HTML",
        prepared.report.html.encode("utf-8"),
        file_name=f"{stem}.html",
        mime="text/html",
        key="report_download_html",
        on_click="ignore",
        icon=":material/download:",
    )
    if prepared.pdf is not None:
        pdf_col.download_button(
            "Download PDF",
            prepared.pdf,
            file_name=f"{stem}.pdf",
            mime="application/pdf",
            key="report_download_pdf",
            on_click="ignore",
            icon=":material/picture_as_pdf:",
        )
    else:
        pdf_col.warning(prepared.pdf_note)


def _build_report(
    model: LoadedModel, image: Image.Image, layers: list[str], methods: list[str], trust: bool, image_label: str
) -> _PreparedReport | None:
    """Build the report and print its PDF, with progress; None (and the reason shown) when the options are refused."""
    bar = st.progress(0.0, text="Building the report …")
    try:
        with st.spinner("Building the report …"):
            report = build_report(
                model,
                image,
                layers=layers,
                methods=methods,
                trust=trust,
                image_label=image_label,
                progress=lambda fraction, what: bar.progress(fraction, text=what),
            )
            bar.progress(1.0, text="Printing the PDF …")
            try:
                pdf, note = report_to_pdf(report.html), None
            except ReportError as error:
                pdf, note = None, str(error)
    except (ValueError, KeyError) as error:  # UnknownLayer is a KeyError
        bar.empty()
        st.error(f"The report cannot be built: {error}")
        return None
    bar.empty()
    return _PreparedReport(report=report, pdf=pdf, pdf_note=note)
