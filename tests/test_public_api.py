"""The public facade exposes the design's stable names, and the library never imports streamlit."""

import re
import subprocess
import sys
from pathlib import Path

import cnn_explorer


def test_facade_names_resolve_to_the_modules_that_define_them():
    from cnn_explorer import attribution, images, layers, zoo

    assert cnn_explorer.load_image is images.load_image
    assert issubclass(cnn_explorer.ImageError, ValueError)
    assert issubclass(cnn_explorer.ModelUnavailable, RuntimeError)
    assert cnn_explorer.load_model is zoo.load_model
    assert cnn_explorer.available_models is zoo.available_models
    assert cnn_explorer.list_layers is layers.list_layers
    assert cnn_explorer.capture_activations is layers.capture_activations
    assert cnn_explorer.explain is attribution.explain
    assert cnn_explorer.METHODS is attribution.METHODS
    assert set(cnn_explorer.__all__) <= set(dir(cnn_explorer))


def test_the_library_does_not_import_streamlit():
    """Every library module (the ui package aside) imports without pulling in streamlit, in a fresh process."""
    code = (
        "import importlib, pkgutil, sys, cnn_explorer\n"
        "names = [m.name for m in pkgutil.iter_modules(cnn_explorer.__path__, 'cnn_explorer.')"
        " if not m.name.startswith('cnn_explorer.ui') and m.name != 'cnn_explorer.__main__']\n"
        "for name in names: importlib.import_module(name)\n"
        "print(len(names), 'streamlit' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    count, imported = done.stdout.split()
    assert int(count) >= 20 and imported == "False"


def test_only_the_ui_package_mentions_streamlit():
    package = Path(cnn_explorer.__file__).parent
    offenders = [
        str(path.relative_to(package))
        for path in package.rglob("*.py")
        if path.parent.name != "ui" and re.search(r"^\s*(import|from) streamlit", path.read_text(), re.M)
    ]
    assert offenders == []
