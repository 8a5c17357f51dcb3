"""The data package's exceptions: data that cannot be used as given, and a download that cannot be had here."""

from __future__ import annotations

__all__ = ["DatasetError", "DatasetUnavailable"]


class DatasetError(ValueError):
    """Data that cannot be used as given (a bad spec, an unusable folder or archive); the message says what to do."""


class DatasetUnavailable(RuntimeError):
    """A torchvision dataset that is neither on disk nor downloadable here; the message says where to put its files."""
