"""The report: one self-contained HTML page about one model and one image, for a stakeholder to keep, and its PDF.

:func:`build_report` gathers what the pages show — the prediction, the input as the network sees it, chosen layers'
feature maps, explanations with their trust checks, the model card — computed by the same library calls the pages
make, into one HTML file: images embedded as PNG ``data:`` URIs, CSS inline, no script and nothing to fetch, laid
out for A4. :func:`to_pdf` prints that HTML with headless Chromium.

One module per concern; this ``__init__`` only re-exports them, so ``report.build_report`` and friends keep working:

- :mod:`~cnn_explorer.report.build`: :func:`build_report` and the :class:`Report` it returns.
- :mod:`~cnn_explorer.report.options`: the layers, methods and trust settings a report is asked for — defaults and
  checks.
- :mod:`~cnn_explorer.report.sections`: each section of the page as HTML.
- :mod:`~cnn_explorer.report.markup`: HTML helpers — escaping, inline PNG pictures, model-card Markdown.
- :mod:`~cnn_explorer.report.layout`: the A4 page — its skeleton, style sheet and picture sizes.
- :mod:`~cnn_explorer.report.pdf`: printing the page to PDF with headless Chromium.
"""

from cnn_explorer.report.build import Report, build_report
from cnn_explorer.report.options import DEFAULT_METHODS, default_layers
from cnn_explorer.report.pdf import CHROMIUM_NAMES, PDF_TIMEOUT_S, ReportError, find_chromium, to_pdf

__all__ = [
    "CHROMIUM_NAMES",
    "DEFAULT_METHODS",
    "PDF_TIMEOUT_S",
    "Report",
    "ReportError",
    "build_report",
    "default_layers",
    "find_chromium",
    "to_pdf",
]
