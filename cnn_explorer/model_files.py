"""A model file the user brings, read and checked completely before the app keeps it: a ``state_dict`` for one of our
architectures or a torchvision one, or a TorchScript archive.

A ``state_dict`` is read with ``torch.load(..., weights_only=True)`` (a pickle that would import and run code is
refused without running it) and must fit the architecture key by key and shape by shape; a TorchScript archive goes
through ``torch.jit.load`` and becomes a :class:`TorchScriptModel`. Either network must then turn one input of its
size into one score per class. :func:`check` does all of it and says what is wrong and what to do in a
:class:`ModelFileError`; :mod:`cnn_explorer.user_models` keeps the files that pass.

**TorchScript models are opaque.** A TorchScript archive is compiled code: its submodules are ``ScriptModule`` s,
which accept no forward hooks, cannot be resolved with ``get_submodule`` and whose in-place flags are compiled
constants. :class:`TorchScriptModel` therefore presents the archive as one function from image to scores, and it
declares so in its :data:`TORCHSCRIPT` capabilities: only the views that need nothing but the input, the output and
the gradient between them apply.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import torch
from torch import Tensor, nn

from cnn_explorer.architectures import ARCHITECTURES
from cnn_explorer.hub import weights_preprocess
from cnn_explorer.model import Capabilities
from cnn_explorer.preprocess import Preprocess
from cnn_explorer.torchvision_catalog import CLASSIFIERS, models

__all__ = [
    "ARCHITECTURE_NAMES",
    "MAX_BYTES",
    "MAX_CLASSES",
    "TORCHSCRIPT",
    "CheckedModel",
    "ModelFileError",
    "TorchScriptModel",
    "build_architecture",
    "check",
    "checked_size",
    "copy_file",
    "parse_class_names",
]

MAX_BYTES = 600 * 2**20
"""Largest model file accepted (VGG-16's ImageNet state_dict, 528 MB, fits)."""
MAX_CLASSES = 100_000
_SHOWN = 8  # keys listed one by one in a mismatch message; the rest are counted
_CHECKPOINT_KEYS = ("state_dict", "model_state_dict", "model")  # where training scripts nest the weights


class ModelFileError(ValueError):
    """A model file that cannot be added; the message says what is wrong and what to do."""


# ── what a TorchScript model supports ───────────────────────────────────────────────────────────────────────────

_NO_HOOKS = (
    "A TorchScript archive is compiled code: its layers are ScriptModules, which accept no forward hooks, so the app "
    "cannot record or change what a layer computes."
)
_STATE_DICT_TIP = "Add the same network as a state_dict (torch.save(model.state_dict(), path)) to use it."
TORCHSCRIPT = Capabilities(hooks=False, kind="TorchScript model", why_not_hooks=_NO_HOOKS, instead=_STATE_DICT_TIP)
"""What a TorchScript model allows: its input, its output and the gradient between them, none of its layers."""


class TorchScriptModel(nn.Module):
    """A TorchScript archive as one opaque function from image to class scores.

    The scripted module is kept out of ``_modules`` on purpose: every tool of the app walks ``modules()`` to hook
    layers, disable in-place ReLUs or re-initialize weights, and on ScriptModules each of these raises or, worse,
    silently does nothing. Hidden, the network has no layers to offer, so layer views find none, CAMs are not
    offered and the randomization check says there is nothing to randomize; gradients with respect to the input
    still flow through it.

    Args:
        scripted: The loaded archive (``torch.jit.load``).
    """

    def __init__(self, scripted: torch.jit.ScriptModule):
        super().__init__()
        self.__dict__["scripted"] = scripted  # bypasses nn.Module.__setattr__, which would register it

    def forward(self, x: Tensor) -> Tensor:
        return self.scripted(x)

    def train(self, mode: bool = True) -> TorchScriptModel:
        self.scripted.train(mode)
        return super().train(mode)

    def extra_repr(self) -> str:
        return f"TorchScript {self.scripted.original_name}, {_parameter_count(self.scripted):,} parameters"


def _parameter_count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


# ── architectures a state_dict can be loaded into ───────────────────────────────────────────────────────────────


def _ours_args(name: str, state: Mapping[str, Tensor], input_size: tuple[int, int, int] | None) -> dict[str, Any]:
    """Constructor arguments of our architectures, read from the weights where they show (channels, sizes)."""
    args: dict[str, Any] = {}
    first = state.get({"TinyVGG": "conv_1_1.weight", "LeNet5": "c1.weight"}[name])
    if first is not None and first.dim() == 4:
        args["in_channels"] = int(first.shape[1])
    elif input_size is not None:
        args["in_channels"] = input_size[0]
    if name == "TinyVGG":
        if first is not None and first.dim() == 4:
            args["channels"] = int(first.shape[0])
        output = state.get("output.weight")
        if input_size is not None:
            args["input_size"] = input_size[1]
        elif output is not None and output.dim() == 2 and "channels" in args:
            # The linear layer reads channels × side × side values; invert TinyVGG's 64 → 62 → 60 → 30 → 28 → 26 → 13.
            side = math.isqrt(int(output.shape[1]) // args["channels"])
            args["input_size"] = 4 * side + 12
    return args


def _ours_input_size(name: str, args: dict[str, Any]) -> tuple[int, int, int]:
    side = args.get("input_size", 64) if name == "TinyVGG" else 32  # LeNet-5's C5 is 1×1 on 32×32 input only
    return (args.get("in_channels", 3 if name == "TinyVGG" else 1), side, side)


ARCHITECTURE_NAMES: tuple[str, ...] = (*ARCHITECTURES, *CLASSIFIERS)
"""Architectures a state_dict can be added for: ours first, then torchvision's classification models."""


def build_architecture(architecture: str, num_classes: int, args: dict[str, Any]) -> nn.Module:
    """Our architecture or torchvision's, with ``num_classes`` outputs and no weights."""
    if architecture in ARCHITECTURES:
        return ARCHITECTURES[architecture](num_classes=num_classes, **args)
    return models().get_model(architecture, weights=None, num_classes=num_classes, **args)


def _torchvision_defaults(architecture: str) -> tuple[Preprocess, tuple[str, ...]]:
    """The preprocessing of torchvision's default weights for this architecture (ImageNet's resize, crop, mean and
    std) and their class names."""
    weights = models().get_model_weights(architecture).DEFAULT
    preprocess = weights_preprocess(weights)
    return preprocess, tuple(weights.meta["categories"])


def parse_class_names(data: bytes | str) -> list[str]:
    """Class names from a file: a JSON list of names, or one name per line (blank lines skipped).

    Raises:
        ModelFileError: Not UTF-8 text, a JSON list of something else than strings, no names, or a name twice.
    """
    try:
        text = data.decode("utf-8-sig") if isinstance(data, bytes | bytearray) else data
    except UnicodeDecodeError:
        raise ModelFileError(
            "The class-names file is not UTF-8 text: give one name per line, or a JSON list."
        ) from None
    if text.lstrip().startswith("["):
        try:
            names = json.loads(text)
        except json.JSONDecodeError as err:
            raise ModelFileError(f"The class-names file starts like JSON but is not valid JSON ({err}).") from None
        if not all(isinstance(n, str) for n in names):
            raise ModelFileError("The class-names JSON must be a list of strings, one per class, in output order.")
    else:
        names = [line.strip() for line in text.splitlines() if line.strip()]
    names = [n.strip() for n in names]
    if not names:
        raise ModelFileError("The class-names file holds no names: give one per line, in output order.")
    return names


# ── the checks ──────────────────────────────────────────────────────────────────────────────────────────────────


def checked_size(input_size: Sequence[int] | None, *, required: bool) -> tuple[int, int, int] | None:
    if input_size is None:
        if required:
            raise ModelFileError(
                "A TorchScript model needs its input size (channels, height, width), e.g. 3, 224, 224."
            )
        return None
    size = tuple(int(v) for v in input_size)
    if len(size) != 3 or size[0] not in (1, 3) or size[1] < 1 or size[1] != size[2] or size[1] > 1024:
        raise ModelFileError(
            f"The input size must be (channels, height, width) with 1 (grey) or 3 (RGB) channels and a square side "
            f"of 1 to 1024 pixels (the app centre-crops a square); got {input_size}."
        )
    return size  # type: ignore[return-value]


def copy_file(source: bytes | BinaryIO | str | os.PathLike, path: Path) -> tuple[str, int]:
    """Write the file to ``path``, refusing it once it passes :data:`MAX_BYTES`; returns (SHA-256, bytes)."""
    digest, length = hashlib.sha256(), 0
    reader = open(source, "rb") if isinstance(source, str | os.PathLike) else None  # noqa: SIM115
    stream = reader or source
    try:
        with open(path, "wb") as out:
            if isinstance(stream, bytes | bytearray | memoryview):
                chunks: Any = [bytes(stream)]
            else:
                chunks = iter(lambda: stream.read(1 << 20), b"")
            for chunk in chunks:
                length += len(chunk)
                if length > MAX_BYTES:
                    raise ModelFileError(
                        f"The file is larger than {MAX_BYTES // 2**20} MB, the most the app keeps for one model."
                    )
                digest.update(chunk)
                out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
    finally:
        if reader is not None:
            reader.close()
    if length == 0:
        raise ModelFileError("The file is empty.")
    return digest.hexdigest(), length


def _is_torchscript(path: Path) -> bool:
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        return any(n.endswith("/constants.pkl") or "/code/" in n for n in archive.namelist())


_GLOBAL = re.compile(r"GLOBAL ([\w.]+)")


def _read_state_dict(path: Path) -> dict[str, Tensor]:
    if _is_torchscript(path):
        raise ModelFileError("This is a TorchScript archive, not a state_dict: add it as TorchScript.")
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # weights_only refuses with UnpicklingError; damaged files raise anything
        refused = _GLOBAL.search(str(err))
        if refused:  # the unpickler stopped at the first object that is not a tensor: nothing of it was run
            raise ModelFileError(
                f"Refused: loading this file would import and run Python code ({refused.group(1)}), so none of it "
                "was run. It is probably a whole model saved with torch.save(model), or a checkpoint holding other "
                "Python objects. Only plain tensors are accepted: save the weights with torch.save(model.state_dict(), "
                "path), or export the model with torch.jit.save(torch.jit.script(model), path) and add it as "
                "TorchScript."
            ) from None
        raise ModelFileError(
            "This is not a PyTorch file, or it is damaged (truncated or changed in transit). Save the weights with "
            "torch.save(model.state_dict(), path) and upload that file."
        ) from None
    state = _unwrapped(loaded)
    if state is None:
        raise ModelFileError(
            f"The file holds a {type(loaded).__name__}, not a state_dict (a dictionary of parameter names to "
            "tensors). Save it with torch.save(model.state_dict(), path)."
        )
    return state


def _unwrapped(loaded: Any) -> dict[str, Tensor] | None:
    """The state_dict in what was loaded: the dict itself, or under a training checkpoint's usual key; a
    ``module.`` prefix (``nn.DataParallel``) is dropped."""
    if not isinstance(loaded, Mapping):
        return None
    if not all(isinstance(v, Tensor) for v in loaded.values()):
        nested = [loaded[k] for k in _CHECKPOINT_KEYS if isinstance(loaded.get(k), Mapping)]
        return _unwrapped(nested[0]) if nested else None
    state = {str(k): v for k, v in loaded.items()}
    if state and all(k.startswith("module.") for k in state):
        state = {k.removeprefix("module."): v for k, v in state.items()}
    return state


def _listed(what: str, items: Sequence[str]) -> str:
    shown = ", ".join(items[:_SHOWN])
    more = f" and {len(items) - _SHOWN} more" if len(items) > _SHOWN else ""
    return f"{len(items)} {what}: {shown}{more}."


def _fitted(
    architecture: str, num_classes: int, state: dict[str, Tensor], size: tuple[int, int, int] | None
) -> tuple[nn.Module, dict[str, Any]]:
    """The architecture with the weights loaded; a :class:`ModelFileError` listing every key and shape that does not
    fit otherwise."""
    args = _ours_args(architecture, state, size) if architecture in ARCHITECTURES else {}
    try:
        module = build_architecture(architecture, num_classes, args)
    except (ValueError, RuntimeError, TypeError) as err:
        raise ModelFileError(f"{architecture} cannot be built with {num_classes} classes and {args} ({err}).") from None
    expected = module.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    shapes = [
        f"{k} is {list(state[k].shape)} in the file, {list(v.shape)} in {architecture}"
        for k, v in expected.items()
        if k in state and state[k].shape != v.shape
    ]
    if missing or unexpected or shapes:
        problems = []
        if missing:
            problems.append(_listed(f"missing key{'s' * (len(missing) > 1)}", missing))
        if unexpected:
            problems.append(_listed(f"unexpected key{'s' * (len(unexpected) > 1)}", unexpected))
        if shapes:
            problems.append(_listed(f"shape mismatch{'es' * (len(shapes) > 1)}", shapes))
        raise ModelFileError(
            f"The weights do not fit {architecture} with {num_classes} classes: {' '.join(problems)} Choose the "
            "architecture the file was saved from and its number of classes."
        )
    module.load_state_dict(state)
    return module, args


def _scripted(path: Path) -> TorchScriptModel:
    if not zipfile.is_zipfile(path):
        raise ModelFileError(
            "This is not a TorchScript archive (those are zip files written by torch.jit.save), or it is damaged."
        )
    if not _is_torchscript(path):
        raise ModelFileError("This looks like a state_dict, not a TorchScript archive: add it as a state_dict.")
    try:
        return TorchScriptModel(torch.jit.load(str(path), map_location="cpu"))
    except Exception as err:  # the C++ reader raises RuntimeError for anything it cannot read
        raise ModelFileError(
            f"This TorchScript archive cannot be loaded ({str(err).splitlines()[0]}). Save it again with "
            f"torch.jit.save(torch.jit.script(model), path), with torch {torch.__version__} or older."
        ) from None


def _default_size(architecture: str, args: dict[str, Any]) -> tuple[int, int, int]:
    if architecture in ARCHITECTURES:
        return _ours_input_size(architecture, args)
    crop = _torchvision_defaults(architecture)[0].crop
    return (3, crop, crop)


def _check_forward(module: nn.Module, size: tuple[int, int, int], num_classes: int | None) -> int:
    """Run the network once on a zero image: it must give one score per class. Returns the number of outputs."""
    module.eval()
    try:
        with torch.no_grad():
            out = module(torch.zeros(1, *size))
    except Exception as err:  # a network fails on a wrong size in many ways
        first = str(err).strip().splitlines()[-1] if str(err).strip() else type(err).__name__
        raise ModelFileError(
            f"The network fails on a {'×'.join(map(str, size))} input ({first}). Give the input size it was trained on."
        ) from None
    if not isinstance(out, Tensor) or out.dim() != 2 or out.shape[0] != 1:
        shape = list(out.shape) if isinstance(out, Tensor) else type(out).__name__
        raise ModelFileError(
            f"The network must return one row of class scores [1, classes] for one image; it returned {shape}."
        )
    if num_classes is not None and out.shape[1] != num_classes:
        raise ModelFileError(
            f"The network gives {out.shape[1]} scores, not {num_classes}: check the number of classes."
        )
    if not torch.isfinite(out).all():
        raise ModelFileError("The network gives NaN or infinite scores on a plain input: its weights are broken.")
    return int(out.shape[1])


def _class_names(names: Sequence[str] | None, outputs: int, architecture: str) -> tuple[str, ...]:
    if names is None:
        if architecture in CLASSIFIERS:
            categories = _torchvision_defaults(architecture)[1]
            if len(categories) == outputs:
                return categories
        return tuple(f"class {i}" for i in range(outputs))
    names = tuple(str(n).strip() for n in names)
    if len(names) != outputs:
        raise ModelFileError(
            f"{len(names)} class names for {outputs} outputs: give exactly one name per class, in output order."
        )
    if any(not n for n in names):
        raise ModelFileError("A class name is empty: give each class a name.")
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ModelFileError(f"Class names must differ; repeated: {', '.join(repeated[:_SHOWN])}.")
    return names


def _preprocess(
    architecture: str,
    size: tuple[int, int, int],
    mean: Sequence[float] | None,
    std: Sequence[float] | None,
    standardize: bool,
) -> Preprocess:
    channels, side = size[0], size[1]
    if standardize:
        if mean is not None or std is not None:
            raise ModelFileError("Standardize each image, or give a mean and std: not both.")
        return Preprocess(resize=side, crop=side, grayscale=channels == 1, per_image_standardization=True)
    resize = side
    if architecture in CLASSIFIERS:
        default, _ = _torchvision_defaults(architecture)
        resize = round(side * default.resize / default.crop)  # torchvision's ratio (256 for 224)
        if mean is None and std is None and channels == 3:
            mean, std = default.mean, default.std
    if (mean is None) != (std is None):
        raise ModelFileError("Give both the mean and the standard deviation, or neither.")
    if mean is not None and std is not None:
        mean, std = tuple(float(m) for m in mean), tuple(float(s) for s in std)
        if len(mean) != channels or len(std) != channels:
            raise ModelFileError(
                f"Give one mean and one standard deviation per input channel ({channels}); got {len(mean)} and "
                f"{len(std)}."
            )
        if not all(math.isfinite(v) for v in (*mean, *std)) or min(std) <= 0:
            raise ModelFileError("The mean must be finite and every standard deviation above 0.")
    return Preprocess(resize=resize, crop=side, grayscale=channels == 1, mean=mean, std=std)


@dataclass(frozen=True)
class CheckedModel:
    """What :func:`check` found out about a file that works.

    Attributes:
        architecture: The architecture's name (for TorchScript, the scripted class's name).
        architecture_args: Constructor arguments (state_dict of our architectures).
        input_size: ``(C, H, W)``.
        class_names: One name per output.
        preprocess: How an image becomes the input.
        parameters: Number of parameters.
    """

    architecture: str
    architecture_args: dict[str, Any]
    input_size: tuple[int, int, int]
    class_names: tuple[str, ...]
    preprocess: Preprocess
    parameters: int


def check(
    path: Path,
    kind: str,
    architecture: str | None,
    num_classes: int | None,
    names: Sequence[str] | None,
    size: tuple[int, int, int] | None,
    mean: Sequence[float] | None,
    std: Sequence[float] | None,
    standardize: bool,
) -> CheckedModel:
    """Read the file at ``path`` as ``kind`` and check that it works (see :func:`cnn_explorer.user_models.add_model`
    for the arguments); a state_dict file is rewritten with only its tensors, without whatever wrapped them.

    Raises:
        ModelFileError: What keeps the file from working, and what to do.
    """
    if kind == "torchscript":
        module, args = _scripted(path), {}
        architecture = module.scripted.original_name
    else:
        state = _read_state_dict(path)
        module, args = _fitted(architecture, num_classes, state, size)
        torch.save(module.state_dict(), path)  # only the tensors, without whatever wrapped them
    size = size or _default_size(architecture, args)
    outputs = _check_forward(module, size, num_classes)
    return CheckedModel(
        architecture=architecture,
        architecture_args=args,
        input_size=size,
        class_names=_class_names(names, outputs, architecture),
        preprocess=_preprocess(architecture, size, mean, std, standardize),
        parameters=_parameter_count(module.scripted if kind == "torchscript" else module),
    )
