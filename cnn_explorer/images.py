"""Decode and validate uploaded images, and the sample images that ship with the app.

Everything that turns user bytes into pixels goes through :func:`load_image`: it checks the real format from the
bytes (never the file name), refuses oversized images from their header before decoding them, applies the EXIF
orientation, keeps the first frame of an animation and converts every pixel mode to RGB. Anything it cannot
turn into a picture raises :class:`ImageError` with a message a user can act on.

This module never imports streamlit; ``ui.py`` wraps it with caching (keyed on :func:`image_digest`).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

__all__ = [
    "MAX_BYTES",
    "MAX_PIXELS",
    "SAMPLES",
    "ImageError",
    "Sample",
    "default_sample",
    "image_digest",
    "kin",
    "load_image",
    "load_sample",
    "sample_bytes",
    "samples_for",
]

MAX_PIXELS: int = 40_000_000
"""Largest image (width × height) that :func:`load_image` decodes; checked from the header, before decoding."""

MAX_BYTES: int = 50 * 1024 * 1024
"""Largest file, in bytes, that :func:`load_image` reads."""

# Pillow's format name → the name users know it by. MPO is how Pillow reports the JPEGs that many cameras and
# phones write (a JPEG with extra preview pictures appended); it decodes as an ordinary JPEG.
_ACCEPTED_FORMATS: dict[str, str] = {
    "PNG": "PNG",
    "JPEG": "JPEG",
    "MPO": "JPEG",
    "WEBP": "WebP",
    "BMP": "BMP",
    "GIF": "GIF",
    "TIFF": "TIFF",
}
_ACCEPTED_TEXT = "PNG, JPEG, WebP, BMP, GIF or TIFF"
_DAMAGED = "The image file is damaged or incomplete. Save or export it again and upload the new file."

# Modes whose values do not fit in 8 bits; Pillow's own conversion to L clips them, which turns most 16-bit
# images white, so they are rescaled here instead.
_HIGH_DEPTH_MODES = frozenset({"I;16", "I;16L", "I;16B", "I;16N", "I", "F"})

SAMPLES_DIR = Path(__file__).resolve().parent.parent / "assets" / "samples"


class ImageError(ValueError):
    """An upload that cannot be used as an image; the message tells the user what to do about it."""


@dataclass(frozen=True)
class Sample:
    """A sample image shipped with the app.

    Attributes:
        key: Identifier used by :func:`sample_bytes` and :func:`load_sample`.
        title: Short human-readable name.
        path: Absolute path of the image file.
        source: Where the picture comes from (author, original location).
        licence: The licence it is used under.
        models: Names of the models the sample suits; empty means any model.
    """

    key: str
    title: str
    path: Path
    source: str
    licence: str
    models: tuple[str, ...]


def image_digest(data: bytes) -> str:
    """Return the SHA-256 hex digest of ``data``, the cache key for anything computed from an upload."""
    return hashlib.sha256(data).hexdigest()


def load_image(source: bytes | str | os.PathLike | BinaryIO) -> Image.Image:
    """Decode an uploaded image into a fully loaded RGB picture.

    The format is detected from the bytes: a PNG named ``photo.jpg`` loads, a text file named ``x.png`` does not.
    The EXIF orientation is applied, an animation gives its first frame, transparent areas are composited on
    white and high-bit-depth grey images are rescaled (not clipped) to 0–255.

    Args:
        source: The encoded image: its bytes, a path to it, or a binary file object (read from the start, as
            Pillow does).

    Returns:
        A new RGB image, independent of any file.

    Raises:
        ImageError: The input is empty, missing, too large, not an image, in a format other than PNG, JPEG,
            WebP, BMP, GIF or TIFF, damaged, or bigger than :data:`MAX_PIXELS`.
        TypeError: ``source`` is none of the accepted kinds, or a file object opened in text mode.
    """
    data = _read_source(source)
    if not data:
        raise ImageError("The file is empty (0 bytes). Choose an image file and upload it again.")
    if len(data) > MAX_BYTES:
        raise ImageError(_too_many_bytes(len(data)))
    return _decode(data)


def sample_bytes(key: str) -> bytes:
    """Return the encoded bytes of the sample image ``key``.

    Raises:
        KeyError: No sample has that key; the message lists the known keys.
    """
    return _sample(key).path.read_bytes()


def load_sample(key: str) -> Image.Image:
    """Load the sample image ``key`` through :func:`load_image`.

    Raises:
        KeyError: No sample has that key; the message lists the known keys.
    """
    return load_image(sample_bytes(key))


def _read_source(source: bytes | str | os.PathLike | BinaryIO) -> bytes:
    if isinstance(source, bytes | bytearray | memoryview):
        return bytes(source)
    if isinstance(source, str | os.PathLike):
        return _read_path(Path(source))
    if hasattr(source, "read"):
        return _read_file_object(source)
    raise TypeError(f"load_image takes bytes, a path or a binary file object, not {type(source).__name__}.")


def _read_path(path: Path) -> bytes:
    if not path.exists():
        raise ImageError(f"No file at {path}. Check the path and try again.")
    if not path.is_file():
        raise ImageError(f"{path} is not a file. Choose an image file.")
    try:
        # Checked before reading so that a huge file is never pulled into memory.
        size = path.stat().st_size
        if size > MAX_BYTES:
            raise ImageError(_too_many_bytes(size))
        return path.read_bytes()
    except OSError as error:
        raise ImageError(f"Could not read {path}: {error.strerror or error}.") from error


def _read_file_object(file: BinaryIO) -> bytes:
    try:
        seekable = getattr(file, "seekable", None)
        if seekable is not None and seekable():
            file.seek(0)
        # One byte over the cap is enough to know the file is too large without reading all of it.
        data = file.read(MAX_BYTES + 1)
    except OSError as error:
        raise ImageError(f"Could not read the uploaded file: {error}.") from error
    if isinstance(data, str):
        raise TypeError("load_image needs a file opened in binary mode ('rb'), not text mode.")
    if len(data) > MAX_BYTES:
        raise ImageError(f"This file is larger than {_format_bytes(MAX_BYTES)}, the limit. Upload a smaller file.")
    return bytes(data)


def _decode(data: bytes) -> Image.Image:
    """Validate and decode encoded image bytes; the single place where Pillow's exceptions become ImageError."""
    # No warnings filter here (not thread-safe): our cap is below Pillow's bomb-warning threshold, so an image
    # big enough to warn is refused by _check_header, and one over twice that is refused by Pillow at open.
    try:
        with Image.open(io.BytesIO(data)) as image:
            _check_header(image)
            image.load()
            return _to_rgb(_oriented(image))
    except ImageError:
        raise
    except UnidentifiedImageError as error:
        raise ImageError(_unidentified_message(data)) from error
    except Image.DecompressionBombError as error:
        raise ImageError(_bomb_message(data)) from error
    except MemoryError as error:
        raise ImageError("There is not enough memory to decode this image. Upload a smaller image.") from error
    except Exception as error:  # a malformed file can raise almost anything from inside a decoder
        raise ImageError(_DAMAGED) from error


def _check_header(image: Image.Image) -> None:
    """Refuse an unsupported format or an oversized image while only its header has been read."""
    if image.format not in _ACCEPTED_FORMATS:
        raise ImageError(f"{image.format} images are not supported. Upload a {_ACCEPTED_TEXT} file.")
    width, height = image.size
    if width <= 0 or height <= 0:
        raise ImageError(f"This image has no pixels ({width}×{height}). Save or export it again and upload it.")
    if width * height > _pixel_limit():
        raise ImageError(_too_many_pixels(image.size))


def _pixel_limit() -> int:
    # Pillow's own limit is honoured when someone has set it lower than ours.
    pillow_limit = Image.MAX_IMAGE_PIXELS
    return MAX_PIXELS if pillow_limit is None else min(MAX_PIXELS, int(pillow_limit))


def _bomb_message(data: bytes) -> str:
    """Explain a refusal by Pillow's decompression-bomb check, with the size read from the header."""
    header = _read_header(data)
    if header is None:
        return (
            f"This image is larger than {_pixel_limit() / 1e6:.3g} megapixels, the limit. Resize it and upload again."
        )
    image_format, size = header
    if image_format not in _ACCEPTED_FORMATS:
        return f"{image_format} images are not supported. Upload a {_ACCEPTED_TEXT} file."
    return _too_many_pixels(size)


def _read_header(data: bytes) -> tuple[str, tuple[int, int]] | None:
    """Identify ``data`` and read its size without Pillow's decompression-bomb check, which Image.open applies.

    Only the header is parsed (as Image.open does), so this is safe on an image too large to decode.
    """
    Image.init()
    prefix = data[:16]
    for image_format in Image.ID:
        factory, accept = Image.OPEN[image_format]
        if accept is not None and not _accepts(accept, prefix):
            continue
        try:
            with factory(io.BytesIO(data), "") as image:
                return image.format or image_format, image.size
        except Exception:  # not this format; try the next, as Image.open does
            continue
    return None


def _unidentified_message(data: bytes) -> str:
    # A file that starts like one of the accepted formats but cannot be parsed is a damaged image, not a
    # non-image: telling the user to upload a PNG when they did would not help them.
    prefix = data[:16]
    Image.init()
    for image_format in _ACCEPTED_FORMATS:
        accept = Image.OPEN.get(image_format, (None, None))[1]
        if accept is not None and _accepts(accept, prefix):
            return _DAMAGED
    return f"This file is not an image the app can read. Upload a {_ACCEPTED_TEXT} file."


def _accepts(accept: Callable[[bytes], bool | str], prefix: bytes) -> bool:
    # Read a plugin's signature check as Image.open does: a string is a warning ("might be, but cannot read").
    result = accept(prefix)
    return bool(result) and not isinstance(result, str)


def _too_many_pixels(size: tuple[int, int]) -> str:
    width, height = size
    return (
        f"This image is {width}×{height} pixels ({width * height / 1e6:.1f} megapixels); "
        f"the limit is {_pixel_limit() / 1e6:.3g} megapixels. Resize it and upload again."
    )


def _too_many_bytes(size: int) -> str:
    return f"This file is {_format_bytes(size)}; the limit is {_format_bytes(MAX_BYTES)}. Upload a smaller file."


def _format_bytes(size: int) -> str:
    for unit, scale in (("MB", 1024 * 1024), ("KB", 1024)):
        if size >= scale:
            return f"{size / scale:.1f}".removesuffix(".0") + f" {unit}"
    return f"{size} bytes"


def _oriented(image: Image.Image) -> Image.Image:
    try:
        return ImageOps.exif_transpose(image)
    except Exception:  # a broken EXIF block should not cost the user their picture; show it as stored
        return image


def _to_rgb(image: Image.Image) -> Image.Image:
    """Convert any Pillow mode to RGB, compositing transparency on white."""
    if image.mode in _HIGH_DEPTH_MODES:
        return _high_depth_to_rgb(image)
    if image.has_transparency_data:
        rgba = image.convert("RGBA")
        background = Image.new("RGB", rgba.size, (255, 255, 255))
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    return image.convert("RGB")


def _high_depth_to_rgb(image: Image.Image) -> Image.Image:
    """Scale a 16/32-bit integer or float grey image to 8 bits by its bit depth or value range."""
    values = np.asarray(image)
    grey = _scale_to_255(values, image.mode)
    transparent = image.info.get("transparency")
    if isinstance(transparent, int | float) and not isinstance(transparent, bool):
        grey[values == transparent] = 255  # a PNG tRNS grey level: that colour is transparent, shown on white
    return Image.fromarray(grey).convert("RGB")


def _scale_to_255(values: np.ndarray, mode: str) -> np.ndarray:
    """Map grey values to uint8.

    16-bit modes scale by their bit depth (65535 → 255). Mode ``I`` (32-bit) and ``F`` (float) carry no bit depth,
    so their values decide: the smallest usual range that holds them (0–1 for floats, then 0–255, then 0–65535) is
    mapped onto 0–255, and anything else is stretched from its minimum to its maximum.
    """
    values = np.nan_to_num(values.astype(np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    if mode.startswith("I;16"):
        low, high = 0.0, 65535.0
    else:
        low, high = float(values.min()), float(values.max())
        ranges = ((0.0, 1.0), (0.0, 255.0), (0.0, 65535.0)) if mode == "F" else ((0.0, 255.0), (0.0, 65535.0))
        for range_low, range_high in ranges:
            if range_low <= low and high <= range_high:
                low, high = range_low, range_high
                break
    if high <= low:
        return np.zeros(values.shape, dtype=np.uint8)
    return np.clip(np.rint((values - low) * 255.0 / (high - low)), 0, 255).astype(np.uint8)


def _read_samples(folder: Path) -> dict[str, Sample]:
    entries = json.loads((folder / "samples.json").read_text(encoding="utf-8"))
    return {
        entry["key"]: Sample(
            key=entry["key"],
            title=entry["title"],
            path=folder / entry["file"],
            source=entry["source"],
            licence=entry["licence"],
            models=tuple(entry.get("models", ())),
        )
        for entry in entries
    }


def _sample(key: str) -> Sample:
    try:
        return SAMPLES[key]
    except KeyError:
        raise KeyError(f"No sample named {key!r}. Known samples: {', '.join(sorted(SAMPLES))}.") from None


SAMPLES: dict[str, Sample] = _read_samples(SAMPLES_DIR)
"""The shipped sample images by key, read once from ``assets/samples/samples.json``."""


def samples_for(model_name: str, *, made_for_it: bool = False) -> list[str]:
    """The sample keys offered with a model, in manifest order: general samples and those made for it.

    Args:
        model_name: A registry name.
        made_for_it: Only the samples made for this model (a digit for the digit model).
    """
    names = kin(model_name)
    return [
        key for key, sample in SAMPLES.items() if names & set(sample.models) or (not sample.models and not made_for_it)
    ]


# A run trained on a built-in model's kind of data is offered that model's samples: a shapes run starts on a shape,
# not on a photo it would call "star · 100 %".
_KIN_BY_DATA = {
    "shapes": "tinyvgg-shapes",
    "digits": "lenet5-digits",
    "digits_mixed": "lenet5-digits",
    "mnist": "lenet5-digits",
}


def kin(model_name: str) -> set[str]:
    """``model_name`` and, for a trained run, the built-in model trained on the same kind of data (its samples and
    its drawing canvas suit the run too)."""
    if not model_name.startswith("run-"):
        return {model_name}
    from cnn_explorer import runs  # at call time: the run store is not needed to read images

    try:
        kind = runs.get_run(model_name.removeprefix("run-")).spec.data.kind
    except (runs.RunNotFound, ValueError, OSError):
        return {model_name}
    return {model_name, _KIN_BY_DATA[kind]} if kind in _KIN_BY_DATA else {model_name}


def default_sample(model_name: str) -> str:
    """The sample a model starts on: the first made for it, else the first offered."""
    return (samples_for(model_name, made_for_it=True) or samples_for(model_name))[0]
