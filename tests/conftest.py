"""Shared fixtures. Importing the package first runs the torchvision guard before any test imports torchvision."""

import os

import cnn_explorer  # noqa: F401

# Tests never download: a model whose weights are not cached must fail fast, as offline.
os.environ.setdefault("CNN_EXPLORER_OFFLINE", "1")
