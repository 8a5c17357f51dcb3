"""Tests for cnn_explorer.images: decoding, validation and the shipped samples.

Every input is generated here with Pillow (or written byte by byte for crafted headers); nothing is downloaded.
"""

from __future__ import annotations

import hashlib
import io
import resource
import struct
import time
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFile

from cnn_explorer import images
from cnn_explorer.images import (
    MAX_BYTES,
    MAX_PIXELS,
    SAMPLES,
    ImageError,
    Sample,
    image_digest,
    load_image,
    load_sample,
    sample_bytes,
)

NOT_AN_IMAGE = r"This file is not an image the app can read\. Upload a PNG, JPEG, WebP, BMP, GIF or TIFF file\."
DAMAGED = "The image file is damaged or incomplete"


# --- helpers -------------------------------------------------------------------------------------------------------


def _encode(image: Image.Image, image_format: str, **params: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, image_format, **params)
    return buffer.getvalue()


def _pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image, dtype=np.int16)


def _flat(image: Image.Image) -> list[tuple[int, ...]]:
    """The pixels of an RGB image in reading order, as tuples."""
    return [tuple(pixel) for pixel in np.asarray(image).reshape(-1, 3).tolist()]


def _rgb_pattern(width: int = 7, height: int = 5) -> Image.Image:
    """A small image in which every pixel has its own colour, so any shift or channel swap shows."""
    ys, xs = np.mgrid[0:height, 0:width]
    array = np.stack([xs * 30 + 5, ys * 50 + 3, (xs * 7 + ys * 11) % 256], axis=-1).astype(np.uint8)
    return Image.fromarray(array)


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def _grey_png(width: int, height: int, idat: bytes) -> bytes:
    """A PNG (8-bit greyscale) whose header claims ``width`` × ``height``, written byte by byte."""
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header) + _png_chunk(b"IDAT", idat) + _png_chunk(b"IEND", b"")


def _all_black_png(width: int, height: int) -> bytes:
    """A valid PNG of ``width`` × ``height`` black pixels: megapixels that compress to tens of kilobytes."""
    compressor = zlib.compressobj(9)
    row = bytes(width + 1)  # filter byte + pixels
    chunks = [compressor.compress(row) for _ in range(height)]
    chunks.append(compressor.flush())
    return _grey_png(width, height, b"".join(chunks))


def _image_allocations() -> int:
    # Pillow counts every image buffer it creates; an unchanged count means nothing was decoded.
    return Image.core.get_stats()["new_count"]


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kilobytes on Linux


# --- accepted formats ----------------------------------------------------------------------------------------------


def test_image_error_is_a_value_error() -> None:
    assert issubclass(ImageError, ValueError)


def test_limits() -> None:
    assert MAX_PIXELS == 40_000_000
    assert MAX_BYTES == 50 * 1024 * 1024


@pytest.mark.parametrize(
    ("image_format", "params"),
    [("PNG", {}), ("BMP", {}), ("TIFF", {}), ("TIFF", {"compression": "tiff_lzw"}), ("WEBP", {"lossless": True})],
)
def test_lossless_formats_round_trip_exactly(image_format: str, params: dict[str, object]) -> None:
    original = _rgb_pattern()
    loaded = load_image(_encode(original, image_format, **params))
    assert loaded.mode == "RGB"
    assert loaded.size == (7, 5)
    np.testing.assert_array_equal(_pixels(loaded), _pixels(original))


def test_gif_round_trips_exactly() -> None:
    # A GIF holds a 256-colour palette; an image with few colours survives it unchanged.
    colours = np.array([[255, 0, 0], [0, 128, 255], [10, 20, 30], [250, 250, 5]], dtype=np.uint8)
    original = Image.fromarray(colours[np.arange(35).reshape(5, 7) % 4])
    loaded = load_image(_encode(original, "GIF"))
    assert loaded.size == (7, 5)
    np.testing.assert_array_equal(_pixels(loaded), _pixels(original))


def test_jpeg_round_trips_closely() -> None:
    ys, xs = np.mgrid[0:48, 0:64]
    smooth = np.stack([xs * 4, ys * 5, np.full_like(xs, 90)], axis=-1).astype(np.uint8)
    loaded = load_image(_encode(Image.fromarray(smooth), "JPEG", quality=95))
    assert loaded.mode == "RGB"
    assert loaded.size == (64, 48)
    assert np.abs(_pixels(loaded) - smooth.astype(np.int16)).max() <= 6


@pytest.mark.parametrize(("image_format", "params"), [("GIF", {}), ("PNG", {}), ("WEBP", {"lossless": True})])
def test_animation_gives_its_first_frame(image_format: str, params: dict[str, object]) -> None:
    red, blue = Image.new("RGB", (6, 4), (255, 0, 0)), Image.new("RGB", (6, 4), (0, 0, 255))
    data = _encode(red, image_format, save_all=True, append_images=[blue], duration=100, loop=0, **params)
    with Image.open(io.BytesIO(data)) as check:
        assert check.n_frames == 2  # really an animation, or the test proves nothing
    loaded = load_image(data)
    assert loaded.size == (6, 4)
    assert set(_flat(loaded)) == {(255, 0, 0)}


def test_mpo_jpeg_from_cameras_is_accepted() -> None:
    first, second = Image.new("RGB", (16, 8), (200, 40, 40)), Image.new("RGB", (16, 8), (40, 40, 200))
    data = _encode(first, "MPO", save_all=True, append_images=[second], quality=95)
    with Image.open(io.BytesIO(data)) as check:
        assert check.format == "MPO"
    pixel = np.array(load_image(data).getpixel((8, 4)))
    assert np.abs(pixel - [200, 40, 40]).max() <= 4


# --- pixel modes ---------------------------------------------------------------------------------------------------


def test_grey_l() -> None:
    loaded = load_image(_encode(Image.new("L", (3, 2), 77), "PNG"))
    assert set(_flat(loaded)) == {(77, 77, 77)}


@pytest.mark.parametrize("image_format", ["PNG", "TIFF", "BMP"])
def test_bilevel_1_becomes_black_and_white(image_format: str) -> None:
    bits = Image.new("1", (4, 1), 0)
    bits.putpixel((1, 0), 1)
    bits.putpixel((3, 0), 1)
    loaded = load_image(_encode(bits, image_format))
    assert _flat(loaded) == [(0, 0, 0), (255, 255, 255), (0, 0, 0), (255, 255, 255)]


@pytest.mark.parametrize("image_format", ["PNG", "TIFF", "WEBP"])
def test_rgba_is_composited_on_white(image_format: str) -> None:
    rgba = Image.new("RGBA", (3, 1))
    rgba.putdata([(10, 20, 30, 0), (10, 20, 30, 255), (255, 0, 0, 128)])
    params = {"lossless": True, "exact": True} if image_format == "WEBP" else {}
    loaded = load_image(_encode(rgba, image_format, **params))
    transparent, opaque, half = (np.array(p) for p in _flat(loaded))
    np.testing.assert_array_equal(transparent, [255, 255, 255])
    np.testing.assert_array_equal(opaque, [10, 20, 30])
    # 128/255 red over white: red stays 255, green and blue are white × (1 − 128/255) ≈ 127.
    assert np.abs(half - [255, 127, 127]).max() <= 1


@pytest.mark.parametrize("image_format", ["PNG", "TIFF"])
def test_grey_with_alpha_la(image_format: str) -> None:
    la = Image.new("LA", (3, 1))
    la.putdata([(200, 0), (60, 255), (0, 128)])
    loaded = load_image(_encode(la, image_format))
    transparent, opaque, half = (np.array(p) for p in _flat(loaded))
    np.testing.assert_array_equal(transparent, [255, 255, 255])
    np.testing.assert_array_equal(opaque, [60, 60, 60])
    assert np.abs(half - [127, 127, 127]).max() <= 1


def _palette_image() -> Image.Image:
    palette = Image.new("P", (3, 1))
    palette.putpalette([255, 0, 0, 0, 255, 0, 0, 0, 255] + [0, 0, 0] * 253)
    palette.putdata([0, 1, 2])
    return palette


@pytest.mark.parametrize("image_format", ["PNG", "GIF", "TIFF", "BMP"])
def test_palette_without_transparency(image_format: str) -> None:
    loaded = load_image(_encode(_palette_image(), image_format))
    assert _flat(loaded) == [(255, 0, 0), (0, 255, 0), (0, 0, 255)]


@pytest.mark.parametrize("image_format", ["PNG", "GIF"])
def test_palette_transparency_index_becomes_white(image_format: str) -> None:
    loaded = load_image(_encode(_palette_image(), image_format, transparency=1))
    assert _flat(loaded) == [(255, 0, 0), (255, 255, 255), (0, 0, 255)]


def test_palette_with_per_entry_alpha() -> None:
    # PNG tRNS for a palette image: one alpha per palette entry (the ``transparency`` info key holds bytes).
    data = _encode(_palette_image(), "PNG", transparency=bytes([255, 0, 128]))
    with Image.open(io.BytesIO(data)) as check:
        assert isinstance(check.info["transparency"], bytes)
    red, green, blue = (np.array(p) for p in _flat(load_image(data)))
    np.testing.assert_array_equal(red, [255, 0, 0])
    np.testing.assert_array_equal(green, [255, 255, 255])
    assert np.abs(blue - [127, 127, 255]).max() <= 1


def test_palette_with_alpha_pa() -> None:
    pa = Image.new("PA", (2, 1))
    pa.putpalette([255, 0, 0, 0, 0, 255] + [0, 0, 0] * 254)
    pa.putdata([(0, 255), (1, 0)])
    loaded = load_image(_encode(pa, "TIFF"))
    assert _flat(loaded) == [(255, 0, 0), (255, 255, 255)]


def test_rgb_with_transparent_colour() -> None:
    # PNG tRNS for a truecolour image: one colour is transparent.
    rgb = Image.new("RGB", (2, 1))
    rgb.putdata([(1, 2, 3), (40, 50, 60)])
    loaded = load_image(_encode(rgb, "PNG", transparency=(1, 2, 3)))
    assert _flat(loaded) == [(255, 255, 255), (40, 50, 60)]


@pytest.mark.parametrize(("mode", "image_format"), [("I;16", "PNG"), ("I;16", "TIFF"), ("I;16B", "TIFF")])
def test_16_bit_grey_is_scaled_not_clipped(mode: str, image_format: str) -> None:
    # Built from a big- or little-endian array: Pillow's convert("I;16B") clips values to 255.
    values = np.array([[0, 257, 32768, 65535]], dtype=">u2" if mode == "I;16B" else "<u2")
    grey16 = Image.fromarray(values)
    data = _encode(grey16, image_format)
    with Image.open(io.BytesIO(data)) as check:
        assert check.mode == mode
    loaded = load_image(data)
    assert [p[0] for p in _flat(loaded)] == [0, 1, 128, 255]
    assert all(r == g == b for r, g, b in _flat(loaded))


def test_16_bit_grey_with_transparent_level() -> None:
    grey16 = Image.fromarray(np.array([[1000, 65535]], dtype=np.uint16))
    loaded = load_image(_encode(grey16, "PNG", transparency=1000))
    assert _flat(loaded) == [(255, 255, 255), (255, 255, 255)]
    loaded = load_image(_encode(grey16, "PNG", transparency=7))
    assert _flat(loaded) == [(4, 4, 4), (255, 255, 255)]


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ([0, 100, 255], [0, 100, 255]),  # fits 8 bits: kept
        ([0, 32768, 65535], [0, 128, 255]),  # fits 16 bits: scaled by 65535
        ([-100, 0, 100], [0, 128, 255]),  # signed: stretched over its range
        ([0, 50_000, 100_000], [0, 128, 255]),  # beyond 16 bits: stretched over its range
    ],
)
def test_32_bit_integer_grey_i(values: list[int], expected: list[int]) -> None:
    grey32 = Image.fromarray(np.array([values], dtype=np.int32))
    assert grey32.mode == "I"
    loaded = load_image(_encode(grey32, "TIFF"))
    assert [p[0] for p in _flat(loaded)] == expected


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ([0.0, 0.5, 1.0], [0, 128, 255]),  # the usual 0–1 float range
        ([0.0, 100.0, 255.0], [0, 100, 255]),
        ([-1.0, 0.0, 1.0], [0, 128, 255]),  # stretched over its range
        ([float("nan"), 0.0, 1.0], [0, 0, 255]),  # NaN shows as 0
    ],
)
def test_float_grey_f(values: list[float], expected: list[int]) -> None:
    grey = Image.fromarray(np.array([values], dtype=np.float32))
    assert grey.mode == "F"
    loaded = load_image(_encode(grey, "TIFF"))
    assert [p[0] for p in _flat(loaded)] == expected


@pytest.mark.parametrize(
    ("mode", "image_format"), [("CMYK", "TIFF"), ("CMYK", "JPEG"), ("YCbCr", "TIFF"), ("LAB", "TIFF")]
)
def test_colour_spaces_match_pillows_conversion(mode: str, image_format: str) -> None:
    data = _encode(_rgb_pattern().convert(mode), image_format, **({"quality": 95} if image_format == "JPEG" else {}))
    with Image.open(io.BytesIO(data)) as reference:
        assert reference.mode == mode
        expected = reference.convert("RGB")
    np.testing.assert_array_equal(_pixels(load_image(data)), _pixels(expected))


def test_cmyk_gives_the_expected_colours() -> None:
    cmyk = Image.new("CMYK", (3, 1))
    cmyk.putdata([(0, 0, 0, 0), (0, 0, 0, 255), (255, 0, 0, 0)])
    assert _flat(load_image(_encode(cmyk, "TIFF"))) == [(255, 255, 255), (0, 0, 0), (0, 255, 255)]


@pytest.mark.parametrize("mode", ["HSV", "RGBa", "RGBX", "I;16L", "I;16N"])
def test_modes_no_accepted_format_stores_convert(mode: str) -> None:
    # These modes do not survive a round trip through the accepted formats, so the conversion is checked alone.
    source = Image.new("RGB", (2, 1), (200, 100, 50))
    image = source.convert("HSV") if mode == "HSV" else Image.new(mode, (2, 1))
    converted = images._to_rgb(image)
    assert converted.mode == "RGB"
    assert converted.size == (2, 1)
    if mode == "HSV":
        assert np.abs(np.array(converted.getpixel((0, 0))) - [200, 100, 50]).max() <= 2


# --- orientation, identity of the result ---------------------------------------------------------------------------


def _marked_landscape() -> Image.Image:
    """A 6×4 white image whose top-left pixel is red and bottom-right pixel blue."""
    image = Image.new("RGB", (6, 4), (255, 255, 255))
    image.putpixel((0, 0), (255, 0, 0))
    image.putpixel((5, 3), (0, 0, 255))
    return image


def test_exif_orientation_6_rotates_clockwise() -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: the stored picture must be turned 90° clockwise to be upright
    loaded = load_image(_encode(_marked_landscape(), "PNG", exif=exif))
    assert loaded.size == (4, 6)
    # Turning clockwise takes the top-left corner to the top-right and the bottom-right to the bottom-left.
    assert loaded.getpixel((3, 0)) == (255, 0, 0)
    assert loaded.getpixel((0, 5)) == (0, 0, 255)
    assert loaded.getpixel((0, 0)) == (255, 255, 255)


def test_exif_orientation_in_jpeg() -> None:
    exif = Image.Exif()
    exif[0x0112] = 6
    stored = Image.new("RGB", (64, 32), (255, 255, 255))
    stored.paste((255, 0, 0), (0, 0, 16, 16))  # a red block in the top-left corner
    loaded = load_image(_encode(stored, "JPEG", exif=exif, quality=95))
    assert loaded.size == (32, 64)
    red_corner, white_corner = np.array(loaded.getpixel((28, 4))), np.array(loaded.getpixel((4, 4)))
    assert np.abs(red_corner - [255, 0, 0]).max() <= 12
    assert np.abs(white_corner - [255, 255, 255]).max() <= 12


def test_result_is_a_plain_loaded_rgb_image(tmp_path: Path) -> None:
    path = tmp_path / "pattern.png"
    path.write_bytes(_encode(_rgb_pattern(), "PNG"))
    with path.open("rb") as file:
        loaded = load_image(file)
    assert type(loaded) is Image.Image  # not an ImageFile that could still read from the file
    assert loaded.mode == "RGB"
    path.unlink()
    np.testing.assert_array_equal(_pixels(loaded), _pixels(_rgb_pattern()))


# --- sources -------------------------------------------------------------------------------------------------------


def test_every_kind_of_source(tmp_path: Path) -> None:
    data = _encode(_rgb_pattern(), "PNG")
    path = tmp_path / "pattern.png"
    path.write_bytes(data)
    with path.open("rb") as file:
        from_file = load_image(file)
    consumed = io.BytesIO(data)
    consumed.read()  # already read once, as a file uploader's buffer may be
    sources = [data, bytearray(data), str(path), path, from_file, load_image(consumed)]
    expected = _pixels(_rgb_pattern())
    for source in sources:
        loaded = source if isinstance(source, Image.Image) else load_image(source)
        np.testing.assert_array_equal(_pixels(loaded), expected)


def test_real_format_wins_over_the_file_name(tmp_path: Path) -> None:
    disguised_png = tmp_path / "photo.jpg"
    disguised_png.write_bytes(_encode(_rgb_pattern(), "PNG"))
    np.testing.assert_array_equal(_pixels(load_image(disguised_png)), _pixels(_rgb_pattern()))

    text = tmp_path / "picture.png"
    text.write_text("just some notes, not a picture\n")
    with pytest.raises(ImageError, match=NOT_AN_IMAGE):
        load_image(text)


def test_wrong_source_type_is_a_type_error(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match="bytes, a path or a binary file object"):
        load_image(12345)  # type: ignore[arg-type]
    path = tmp_path / "pattern.png"
    path.write_bytes(_encode(_rgb_pattern(), "PNG"))
    with path.open("r", encoding="latin-1") as text_file, pytest.raises(TypeError, match="binary mode"):
        load_image(text_file)  # type: ignore[arg-type]


# --- refusals ------------------------------------------------------------------------------------------------------


def test_empty_input(tmp_path: Path) -> None:
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    for source in (b"", empty, io.BytesIO()):
        with pytest.raises(ImageError, match=r"The file is empty \(0 bytes\)"):
            load_image(source)


@pytest.mark.parametrize("data", [b"hello, world\n", b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n", bytes(range(256)) * 4])
def test_not_an_image(data: bytes) -> None:
    with pytest.raises(ImageError, match=NOT_AN_IMAGE):
        load_image(data)


@pytest.mark.parametrize("image_format", ["PNG", "JPEG", "WEBP", "GIF", "TIFF", "BMP"])
@pytest.mark.parametrize("keep", [0.5, 0.9])
def test_truncated_file_is_damaged(image_format: str, keep: float) -> None:
    noisy = Image.effect_noise((64, 48), 60).convert("RGB")
    data = _encode(noisy, image_format)
    with pytest.raises(ImageError, match=DAMAGED):
        load_image(data[: int(len(data) * keep)])
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False


@pytest.mark.parametrize("data", [b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff\xe0\x00\x10JFIF", b"GIF89a\x01"])
def test_header_only_is_damaged(data: bytes) -> None:
    with pytest.raises(ImageError, match=DAMAGED):
        load_image(data)


def test_zero_sized_image_is_refused() -> None:
    with pytest.raises(ImageError, match=DAMAGED):
        load_image(_grey_png(0, 10, zlib.compress(b"")))


@pytest.mark.parametrize(
    ("image_format", "name", "params"),
    [
        ("ICO", "ICO", {}),
        ("PPM", "PPM", {}),
        ("EPS", "EPS", {}),
        ("PCX", "PCX", {}),
        ("TGA", "TGA", {}),
        ("QOI", "QOI", {}),
        ("ICNS", "ICNS", {}),
    ],
)
def test_other_pillow_formats_are_unsupported(image_format: str, name: str, params: dict[str, object]) -> None:
    size = (32, 32) if image_format == "ICNS" else (16, 16)
    try:
        data = _encode(Image.new("RGB", size, (9, 9, 9)), image_format, **params)
    except (OSError, KeyError) as error:  # an encoder missing from this Pillow build
        pytest.skip(f"Pillow cannot write {image_format} here: {error}")
    with pytest.raises(ImageError, match=rf"^{name} images are not supported\. Upload a PNG, JPEG, WebP, BMP, GIF"):
        load_image(data)


def test_over_the_byte_cap(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    data = _encode(Image.effect_noise((64, 64), 60).convert("RGB"), "PNG")
    assert len(data) > 2048
    monkeypatch.setattr(images, "MAX_BYTES", 2048)
    path = tmp_path / "big.png"
    path.write_bytes(data)
    for source in (data, path):
        with pytest.raises(
            ImageError, match=r"^This file is \d+(\.\d)? KB; the limit is 2 KB\. Upload a smaller file\."
        ):
            load_image(source)
    with path.open("rb") as file, pytest.raises(ImageError, match=r"larger than 2 KB, the limit"):
        load_image(file)
    load_image(_encode(Image.new("RGB", (4, 4)), "PNG"))  # a small file still loads


def test_byte_cap_message_in_megabytes() -> None:
    assert images._too_many_bytes(63 * 1024 * 1024 + 200_000) == (
        "This file is 63.2 MB; the limit is 50 MB. Upload a smaller file."
    )


def test_pixel_bomb_header_is_refused_without_decoding() -> None:
    # 20000 × 20000 claimed by a 70-byte file: Pillow's own bomb check fires while opening; the message still
    # gives the size from the header.
    bomb = _grey_png(20_000, 20_000, zlib.compress(b""))
    assert len(bomb) < 100
    allocations, peak, start = _image_allocations(), _peak_rss_mb(), time.perf_counter()
    with pytest.raises(
        ImageError,
        match=r"^This image is 20000×20000 pixels \(400\.0 megapixels\); the limit is 40 megapixels\. Resize it",
    ):
        load_image(bomb)
    assert time.perf_counter() - start < 1.0
    assert _image_allocations() == allocations
    assert _peak_rss_mb() - peak < 50


def test_valid_image_over_the_pixel_cap_is_refused_before_decoding() -> None:
    # A real, decodable 7000 × 6000 black PNG (42 MP: over our cap, under Pillow's own warning limit) of ~40 KB.
    bomb = _all_black_png(7000, 6000)
    assert len(bomb) < 100_000
    allocations, start = _image_allocations(), time.perf_counter()
    with pytest.raises(ImageError, match=r"^This image is 7000×6000 pixels \(42\.0 megapixels\); the limit is 40 "):
        load_image(bomb)
    assert time.perf_counter() - start < 1.0
    assert _image_allocations() == allocations


@pytest.mark.parametrize(
    ("side", "message"), [(7000, r"This image is 7000×7000 pixels"), (30_000, r"This image is larger than 40")]
)
def test_gif_frame_larger_than_its_screen_is_refused(side: int, message: str) -> None:
    # The logical screen says 10 × 10, the first frame's descriptor claims far more; the frame size counts.
    data = bytearray(_encode(Image.new("P", (10, 10)), "GIF"))
    descriptor = data.index(b"\x2c")  # image separator, then left, top, width, height as little-endian shorts
    data[descriptor + 5 : descriptor + 9] = struct.pack("<HH", side, side)
    start = time.perf_counter()
    with pytest.raises(ImageError, match=rf"^{message}.*megapixels"):
        load_image(bytes(data))
    assert time.perf_counter() - start < 1.0


def test_pillows_bomb_warning_is_an_error_only_inside_load_image(monkeypatch: pytest.MonkeyPatch) -> None:
    # With our cap raised above Pillow's, Pillow's DecompressionBombWarning (not error) is what stops the image.
    monkeypatch.setattr(images, "MAX_PIXELS", 10**12)
    filters_before = list(warnings.filters)
    claimed = _grey_png(10_000, 10_000, zlib.compress(b""))  # 100 MP: between Pillow's limit and twice it
    assert Image.MAX_IMAGE_PIXELS is not None
    assert Image.MAX_IMAGE_PIXELS < 100_000_000 < 2 * Image.MAX_IMAGE_PIXELS
    allocations = _image_allocations()
    with pytest.raises(
        ImageError, match=r"^This image is 10000×10000 pixels \(100\.0 megapixels\); the limit is 89\.5"
    ):
        load_image(claimed)
    assert _image_allocations() == allocations
    assert warnings.filters == filters_before
    with pytest.warns(Image.DecompressionBombWarning), Image.open(io.BytesIO(claimed)):
        pass  # outside load_image, Pillow still only warns


def test_missing_path(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "cat.png"
    with pytest.raises(ImageError, match=r"^No file at .*cat\.png"):
        load_image(missing)
    with pytest.raises(ImageError, match=r"^No file at "):
        load_image(str(missing))
    with pytest.raises(ImageError, match="is not a file"):
        load_image(tmp_path)


@pytest.mark.filterwarnings("ignore::UserWarning")  # Pillow warns about the broken TIFF tags it skips
@pytest.mark.parametrize("image_format", ["PNG", "JPEG", "WEBP", "GIF", "TIFF", "BMP"])
def test_corrupted_bytes_raise_only_image_error(image_format: str) -> None:
    # Whatever a malformed file does inside a decoder, the caller sees an image or an ImageError, nothing else.
    data = bytearray(_encode(_rgb_pattern(24, 16), image_format))
    rng = np.random.default_rng(sum(image_format.encode()))
    for _ in range(40):
        mutated = data.copy()
        for position in rng.integers(0, len(data), size=int(rng.integers(1, 6))):
            mutated[position] = int(rng.integers(0, 256))
        try:
            loaded = load_image(bytes(mutated))
        except ImageError:
            continue
        assert loaded.mode == "RGB"


# --- digest and samples --------------------------------------------------------------------------------------------


def test_image_digest() -> None:
    assert image_digest(b"abc") == hashlib.sha256(b"abc").hexdigest()
    assert image_digest(b"abc") != image_digest(b"abd")
    assert len(image_digest(b"")) == 64


def test_samples_exist() -> None:
    assert len(SAMPLES) >= 4
    assert all(isinstance(sample, Sample) for sample in SAMPLES.values())


@pytest.mark.parametrize("key", sorted(SAMPLES))
def test_every_sample_loads(key: str) -> None:
    sample = SAMPLES[key]
    assert sample.key == key
    assert sample.path.is_file()
    assert sample.path.parent == Path(images.__file__).resolve().parent.parent / "assets" / "samples"
    assert sample.title
    assert sample.source
    assert isinstance(sample.models, tuple)
    assert sample_bytes(key) == sample.path.read_bytes()
    loaded = load_sample(key)
    assert loaded.mode == "RGB"
    assert min(loaded.size) > 0


@pytest.mark.parametrize("key", sorted(SAMPLES))
def test_every_sample_is_free_to_ship(key: str) -> None:
    # Photos must be public domain or CC0; dataset samples carry their dataset's open licence.
    licence = SAMPLES[key].licence.lower()
    if key.startswith("digit-"):
        assert licence.startswith("cc by 4.0") and "uci" in licence
    else:
        assert "public domain" in licence or "cc0" in licence


def test_generated_samples_suit_their_model() -> None:
    from cnn_explorer.data import DIGIT_CLASSES, SHAPE_CLASSES

    shapes = {key.removeprefix("shape-") for key in SAMPLES if key.startswith("shape-")}
    assert shapes == set(SHAPE_CLASSES)
    assert all(SAMPLES[f"shape-{name}"].models == ("tinyvgg-shapes",) for name in shapes)
    digits = [key for key in SAMPLES if key.startswith("digit-")]
    assert digits and all(SAMPLES[key].models == ("lenet5-digits",) for key in digits)
    assert {key.removeprefix("digit-") for key in digits} <= set(DIGIT_CLASSES)


def test_sample_is_frozen() -> None:
    sample = next(iter(SAMPLES.values()))
    with pytest.raises(AttributeError):
        sample.title = "changed"  # type: ignore[misc]


def test_unknown_sample_lists_the_known_ones() -> None:
    with pytest.raises(KeyError, match="No sample named 'dragon'") as raised:
        sample_bytes("dragon")
    assert all(key in str(raised.value) for key in SAMPLES)
    with pytest.raises(KeyError, match="Known samples"):
        load_sample("dragon")
