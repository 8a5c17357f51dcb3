"""Fixtures of the report tests: the shapes model, its sample circle and one full report of it (with trust checks,
about ten seconds), built once for the whole run and read by several test modules."""

import pytest
from PIL import Image
from report_pages import MODEL
from report_pages import Page as _Page

from cnn_explorer import load_model
from cnn_explorer.images import default_sample, load_sample
from cnn_explorer.report import build_report
from cnn_explorer.zoo import LoadedModel


@pytest.fixture(scope="session")
def model() -> LoadedModel:
    return load_model(MODEL)


@pytest.fixture(scope="session")
def image() -> Image.Image:
    return load_sample(default_sample(MODEL))


@pytest.fixture(scope="session")
def report(model: LoadedModel, image: Image.Image):
    return build_report(model, image, image_label="circle.png")


@pytest.fixture(scope="session")
def page(report) -> _Page:
    return _Page(report.html)
