"""The torchvision import guard, both ways: where torchvision's compiled ops cannot load, and where they can."""

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

# Runs in a fresh interpreter: the guard only acts before torchvision's first import.
_PRELUDE = textwrap.dedent(
    """
    import json, os, torch
    _real_load_library = torch.ops.load_library

    def is_torchvision(path):
        return os.path.basename(os.path.dirname(str(path))) == "torchvision"
    """
)


def _run(body: str) -> dict:
    script = _PRELUDE + textwrap.dedent(body)
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, cwd=Path(__file__).parents[1]
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_on_this_install_torchvision_imports_and_builds_models():
    result = _run(
        """
        from cnn_explorer._compat import _load_extension, declared_ops  # the package runs the guard
        import torchvision.models
        logits = torchvision.models.resnet18()(torch.zeros(1, 3, 64, 64))
        print(json.dumps({"declared": declared_ops(), "loads": _load_extension(), "shape": list(logits.shape)}))
        """
    )
    assert result["shape"] == [1, 1000]
    # Whatever this machine is, the guard declared exactly what the extension did not provide.
    assert result["declared"] == ([] if result["loads"] else ["nms", "qnms"])


def test_broken_extension_gets_only_the_missing_schemas():
    # Make torchvision's _C fail to load as it does when built for another torch, on any install.
    result = _run(
        """
        def failing_load_library(path):
            if is_torchvision(path):
                raise OSError("undefined symbol (simulated ABI mismatch)")
            return _real_load_library(path)
        torch.ops.load_library = failing_load_library
        from cnn_explorer._compat import declared_ops, ensure_torchvision_importable
        import torchvision, torchvision.models, torchvision.transforms.v2
        from torchvision.extension import _has_ops
        model = torchvision.models.mobilenet_v3_small()
        print(json.dumps({"declared": declared_ops(), "has_ops": _has_ops(), "again": ensure_torchvision_importable(),
                          "classes": model.classifier[-1].out_features}))
        """
    )
    assert result == {"declared": ["nms", "qnms"], "has_ops": False, "again": [], "classes": 1000}


def test_normal_install_declares_nothing():
    # A working extension defines the operators when loaded; the guard must then leave everything alone.
    result = _run(
        """
        fake = torch.library.Library("torchvision", "FRAGMENT")
        def working_load_library(path):
            if is_torchvision(path):
                if not getattr(working_load_library, "done", False):
                    fake.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
                    fake.define("qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
                    working_load_library.done = True
                return
            return _real_load_library(path)
        torch.ops.load_library = working_load_library
        # The guard module alone: the package would go on to import torchvision, which this fake can't satisfy.
        import importlib.util
        spec = importlib.util.spec_from_file_location("guard", os.path.join("cnn_explorer", "_compat.py"))
        _compat = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(_compat)
        print(json.dumps({"declared": _compat.declared_ops(), "again": _compat.ensure_torchvision_importable(),
                          "library": _compat._declared_library is not None}))
        """
    )
    assert result == {"declared": [], "again": [], "library": False}


def test_does_nothing_once_torchvision_is_imported():
    import torchvision  # noqa: F401 - imported after the package's guard

    from cnn_explorer._compat import ensure_torchvision_importable

    assert "torchvision" in sys.modules
    assert ensure_torchvision_importable() == []


@pytest.mark.parametrize("name", ["nms", "qnms"])
def test_declared_schemas_match_torchvision_fake_kernels(name):
    # torchvision registers fake kernels for exactly these operators at import; their signatures must agree.
    import inspect

    import torchvision._meta_registrations as meta

    from cnn_explorer._compat import _IMPORT_TIME_OPS

    fake = getattr(meta, f"meta_{name}")
    assert list(inspect.signature(fake).parameters) == ["dets", "scores", "iou_threshold"]
    assert _IMPORT_TIME_OPS[name].startswith(f"{name}(Tensor dets, Tensor scores, float iou_threshold)")
