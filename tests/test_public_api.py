"""The public facade exposes the design's stable names, and the library never imports streamlit."""

import subprocess
import sys

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
    code = (
        "import sys, cnn_explorer, cnn_explorer.render, cnn_explorer.defaults, cnn_explorer.training,"
        " cnn_explorer.attribution;"
        "print('streamlit' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"
