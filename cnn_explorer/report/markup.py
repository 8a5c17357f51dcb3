"""The report's HTML helpers: text made inert, pictures and figures inlined as PNG ``data:`` URIs, and the Markdown
of model cards turned into HTML.

Every section (:mod:`cnn_explorer.report.sections`) writes through these, so a report holds no markup it did not
write itself and nothing it would have to fetch.
"""

from __future__ import annotations

import base64
import re
from html import escape
from io import BytesIO

from matplotlib.figure import Figure
from PIL import Image

from cnn_explorer import render

_PNG_LEVEL = 6  # a report is encoded once: smaller files are worth a slower encoder than render's default
_FIGURE_DPI = 150


def _text(value: object) -> str:
    """Any text from a model, a class list or a file name, made inert in HTML (tags, quotes, entities)."""
    return escape(str(value), quote=True)


def _img(image: Image.Image, alt: str, *, pixels: bool = False, css: str = "", density: float = 1) -> str:
    """An ``<img>`` with the image inline as a PNG ``data:`` URI, ``density`` image pixels to a CSS pixel."""
    png = render.to_png_bytes(image.convert("RGB"), compress_level=_PNG_LEVEL)
    classes = " ".join(c for c in ("pixels" if pixels else "", css) if c)
    cls = f' class="{classes}"' if classes else ""
    width, height = round(image.width / density), round(image.height / density)
    return (
        f'<img{cls} alt="{_text(alt)}" width="{width}" height="{height}" '
        f'src="data:image/png;base64,{base64.b64encode(png).decode("ascii")}">'
    )


def _figure_img(figure: Figure, alt: str, css: str = "") -> str:
    buffer = BytesIO()
    figure.savefig(buffer, format="png", dpi=_FIGURE_DPI)
    with Image.open(BytesIO(buffer.getvalue())) as png:
        return _img(png, alt, css=css)


_INLINE = (
    (re.compile(r"`([^`]+)`"), r"<code>\1</code>"),
    (re.compile(r"\*\*(.+?)\*\*"), r"<strong>\1</strong>"),
    (re.compile(r"(?<![\w*])\*(?!\s)(.+?)(?<!\s)\*(?![\w*])"), r"<em>\1</em>"),
    (re.compile(r"\[([^\]]+)\]\((https?://[^)\s]+)\)"), r'<a href="\2">\1</a>'),
)
_HEADING = re.compile(r"^(#{1,6})\s+(.*)$")
_BULLET = re.compile(r"^\s*[-*]\s+(.*)$")
_NUMBERED = re.compile(r"^\s*\d+\.\s+(.*)$")


def _inline(text: str) -> str:
    """One line of Markdown → HTML: escaped first, so only the markup added here is markup."""
    out = _text(text)
    for pattern, replacement in _INLINE:
        out = pattern.sub(replacement, out)
    return out


def _markdown(text: str) -> str:
    """The Markdown of model cards (headings, lists, paragraphs, bold, italics, code, links) → HTML."""
    blocks: list[str] = []
    paragraph: list[str] = []
    items: list[str] = []
    kind = ""

    def flush() -> None:
        nonlocal kind
        if paragraph:
            blocks.append(f"<p>{' '.join(paragraph)}</p>")
            paragraph.clear()
        if items:
            blocks.append(f"<{kind}>{''.join(f'<li>{item}</li>' for item in items)}</{kind}>")
            items.clear()
        kind = ""

    for line in text.splitlines():
        if heading := _HEADING.match(line):
            flush()
            level = min(len(heading.group(1)) + 1, 6)  # the report's own h1/h2 stay above the card's headings
            blocks.append(f"<h{level}>{_inline(heading.group(2))}</h{level}>")
        elif (bullet := _BULLET.match(line)) or (numbered := _NUMBERED.match(line)):
            wanted = "ul" if bullet else "ol"
            if kind != wanted:
                flush()
                kind = wanted
            items.append(_inline((bullet or numbered).group(1)))
        elif not line.strip():
            flush()
        else:
            if items:
                flush()
            paragraph.append(_inline(line.strip()))
    flush()
    return "\n".join(blocks)
