"""Helpers the browser tests share (a plain module beside conftest.py: pytest puts this folder on the path)."""

from playwright.sync_api import Page


def choose(page: Page, container, label: str, option: str, idle) -> None:
    """Pick ``option`` in the selectbox labelled ``label`` inside ``container``, the way a person does."""
    idle(page)  # a rerun still under way would redraw the box and close its list
    container.get_by_test_id("stSelectbox").filter(has_text=label).click()
    # Typed, the list holds the option whatever its length: a long list renders only the options in view.
    page.keyboard.type(option)
    page.get_by_role("option", name=option, exact=True).click()
    idle(page)
