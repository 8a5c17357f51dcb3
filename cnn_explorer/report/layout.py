"""The printed page: the HTML skeleton, its style sheet laid out for A4, and the sizes that keep a picture sharp
and within one page.

:func:`~cnn_explorer.report.build.build_report` pours the sections into :data:`_PAGE` with :data:`_CSS`; the
sections size their pictures with :func:`_fitting`.
"""

from __future__ import annotations

from PIL import Image

_PAGE_PX = 680  # A4's printable width with 15 mm margins, in CSS pixels (96 per inch)
_SHARP = 2  # pictures are drawn at twice the size they print at, so the PDF stays sharp
_PAGE_HEIGHT_PX = 780  # the tallest picture that fits on an A4 page under its heading and caption


def _fitting(image: Image.Image) -> float:
    """Image pixels per CSS pixel that print ``image`` sharp and within one page's width and height."""
    return max(_SHARP, image.width / _PAGE_PX, image.height / _PAGE_HEIGHT_PX)


_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>{css}</style>
</head>
<body>
{body}
</body>
</html>
"""

_CSS = """
@page { size: A4; margin: 15mm 15mm 16mm; }
* { box-sizing: border-box; }
html { -webkit-print-color-adjust: exact; print-color-adjust: exact; }
body { font-family: "Helvetica Neue", Arial, "Liberation Sans", "DejaVu Sans", sans-serif; font-size: 10pt;
  line-height: 1.45; color: #1f2937; max-width: 190mm; margin: 0 auto; padding: 10mm 0 16mm; background: #fff; }
@media print { body { max-width: none; padding: 0; } }
h1 { font-size: 19pt; line-height: 1.2; margin: 0 0 1.5mm; color: #111827; }
h2 { font-size: 14pt; color: #1e3a8a; border-bottom: 1.5px solid #2563eb; padding-bottom: 1mm;
  margin: 8mm 0 3mm; break-after: avoid; }
h3 { font-size: 11pt; margin: 4mm 0 1mm; break-after: avoid; }
h4, h5, h6 { font-size: 10.5pt; margin: 3mm 0 1mm; break-after: avoid; }
p, li, dd { orphans: 3; widows: 3; }
p { margin: 1.5mm 0; }
a { color: #1d4ed8; text-decoration: none; }
code { font-family: "DejaVu Sans Mono", Menlo, Consolas, monospace; font-size: 0.88em; background: #f3f4f6;
  padding: 0 0.25em; border-radius: 2px; }
.meta, .caption, figcaption { color: #4b5563; font-size: 8.5pt; }
.dim { color: #6b7280; }
.nowrap { white-space: nowrap; }
.verdict { font-size: 13pt; margin: 4mm 0 2mm; padding: 3mm 4mm; background: #eff6ff;
  border-left: 4px solid #2563eb; }
.note { background: #fffbeb; border-left: 4px solid #f59e0b; padding: 2mm 3mm; }
figure { margin: 0 0 3mm; break-inside: avoid; }
figcaption { margin-top: 1mm; }
img { display: block; max-width: 100%; height: auto; }
img.pixels { image-rendering: pixelated; }
img.scale { width: 60mm; flex: 0 0 60mm; }
.scaled { display: flex; gap: 6mm; align-items: center; }
.keep { break-inside: avoid; }
.row { display: flex; gap: 5mm; align-items: flex-start; }
.row > figure { flex: 1 1 0; min-width: 0; margin: 0; }
.row > .narrow { flex: 0 0 44mm; }
.row > .third { flex: 0 0 52mm; }
h3.first { margin-top: 0; }
.row > .grow { flex: 1 1 0; min-width: 0; }
.channels > figure { flex: 0 1 45mm; }
figure.layer { margin: 0 0 5mm; }
.cards { display: grid; grid-template-columns: repeat(3, 1fr); gap: 4mm; margin-bottom: 3mm; }
.cards img { width: 100%; }
.cards h3 { margin-top: 0; }
.pair { display: grid; grid-template-columns: 1fr 1fr; gap: 5mm; align-items: start; margin-top: 3mm; }
.pair img { width: 100%; }
table { border-collapse: collapse; width: 100%; font-size: 9pt; break-inside: avoid; margin: 1mm 0 2mm; }
th, td { text-align: left; padding: 1.2mm 1.8mm; border-bottom: 1px solid #e5e7eb; vertical-align: top; }
th { font-weight: 600; color: #374151; border-bottom: 1.5px solid #9ca3af; }
.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
.topk td { vertical-align: middle; }
.trust { table-layout: fixed; }
.trust th, .trust td { white-space: normal; overflow-wrap: break-word; }
.trust .worse { color: #b91c1c; }
.blank img { border: 1px solid #f59e0b; }
.barcell { width: 32%; }
.bar { height: 3.2mm; background: #cbd5e1; border-radius: 1px; }
.bar.best { background: #2563eb; }
dl { margin: 0; font-size: 8.5pt; }
dt { font-weight: 600; margin-top: 1.5mm; }
dd { margin: 0.3mm 0 0; color: #374151; }
.modelcard { font-size: 9.5pt; }
.modelcard ul, .modelcard ol { padding-left: 6mm; }
.card-section { break-inside: avoid; }
footer { margin-top: 8mm; padding-top: 2mm; border-top: 1px solid #e5e7eb; color: #6b7280; font-size: 8pt; }
"""
