"""report.layout: in Chromium the trust table fits its column, and no section heading is left alone at a page's
foot."""

import concurrent.futures
import re

import pytest
from report_pages import Page as _Page

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"]


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
