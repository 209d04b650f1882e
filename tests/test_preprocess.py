"""runtime.preprocess: validation, dict form, resize geometry, arithmetic, colour handling, dtypes, file errors."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from runtime.preprocess import (
    ImageReadError,
    Preprocessing,
    normalize_image,
    preprocess_batch,
    preprocess_image,
    read_image,
)

# scale=1 keeps the output in pixel units, which makes geometry checks exact
PIX = {"scale": 1.0}


# --- validation -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, fragment",
    [
        ({"color": "bgr"}, "'bgr'"),
        ({"resize": "crop"}, "'crop'"),
        ({"interpolation": "lanczos"}, "'lanczos'"),
        ({"std": (0.0,)}, "std (0.0,)"),
        ({"std": (0.5, 0.0, 0.5)}, "std (0.5, 0.0, 0.5)"),
        ({"mean": (0.1, 0.2)}, "mean (0.1, 0.2)"),
        ({"color": "gray", "mean": (0.1, 0.2, 0.3)}, "mean (0.1, 0.2, 0.3)"),
        ({"height": 0}, "0x8"),
        ({"width": -3}, "8x-3"),
        ({"letterbox_fill": 300}, "letterbox_fill 300"),
        ({"letterbox_fill": -1}, "letterbox_fill -1"),
    ],
)
def test_invalid_settings_are_refused_naming_the_value(kwargs: dict, fragment: str) -> None:
    args = {"height": 8, "width": 8, **kwargs}
    with pytest.raises(ValueError) as e:
        Preprocessing(**args)
    assert fragment in str(e.value)


def test_mean_and_std_accept_one_or_channel_count_values() -> None:
    p = Preprocessing(4, 4, color="rgb", mean=[0, 0.5, 1], std=[1])
    assert p.mean == (0.0, 0.5, 1.0) and p.std == (1.0,)
    assert p.channels == 3 and p.input_shape == (4, 4, 3)
    g = Preprocessing(4, 5, color="gray", mean=(0.5,))
    assert g.channels == 1 and g.input_shape == (4, 5, 1)


def test_dict_round_trip_through_json() -> None:
    p = Preprocessing(
        105,
        96,
        color="gray",
        resize="letterbox",
        interpolation="area",
        letterbox_fill=114,
        scale=1 / 127.5,
        mean=(1.0,),
        std=(0.5,),
    )
    d = json.loads(json.dumps(p.to_dict()))
    assert d["mean"] == [1.0] and d["resize"] == "letterbox"
    q = Preprocessing.from_dict(d)
    assert q == p
    assert q.to_dict() == p.to_dict()


def test_from_dict_refuses_unknown_keys_naming_them() -> None:
    d = Preprocessing(8, 8).to_dict()
    d["colour"] = "rgb"
    with pytest.raises(ValueError, match="colour"):
        Preprocessing.from_dict(d)


def test_from_dict_validates_values() -> None:
    d = Preprocessing(8, 8).to_dict()
    d["resize"] = "zoom"
    with pytest.raises(ValueError, match="'zoom'"):
        Preprocessing.from_dict(d)


# --- resize modes ---------------------------------------------------------------------------------------


def _three_bands(h: int, w: int, horizontal: bool = True) -> np.ndarray:
    """Gray image: outer quarters 10 and 30, central half 200 (along the long axis)."""
    img = np.full((h, w), 200, np.uint8)
    if horizontal:
        img[:, : w // 4] = 10
        img[:, w - w // 4 :] = 30
    else:
        img[: h // 4] = 10
        img[h - h // 4 :] = 30
    return img


@pytest.mark.parametrize("resize", ["stretch", "shorter-side+center-crop", "letterbox"])
@pytest.mark.parametrize("shape", [(100, 200), (200, 100), (37, 37), (3, 500)])
def test_every_resize_mode_gives_the_network_shape(resize: str, shape: tuple[int, int]) -> None:
    img = np.random.default_rng(0).integers(0, 256, (*shape, 3), dtype=np.uint8)
    for color, c in (("rgb", 3), ("gray", 1)):
        spec = Preprocessing(50, 40, color=color, resize=resize)
        out = preprocess_image(img, spec)
        assert out.shape == (50, 40, c)
        assert out.dtype == np.float32


def test_stretch_uses_the_whole_image() -> None:
    img = _three_bands(100, 200)  # W=200, H=100
    spec = Preprocessing(50, 50, color="gray", resize="stretch", interpolation="nearest", **PIX)
    out = preprocess_image(img, spec)[:, :, 0]
    # nearest downscale by (2, 4): column j samples source column 4j
    np.testing.assert_array_equal(out, img[::2, ::4].astype(np.float32))
    assert set(np.unique(out)) == {10.0, 30.0, 200.0}


def test_stretch_upscale_nearest_is_block_replication() -> None:
    img = np.array([[0, 255], [128, 64]], np.uint8)
    spec = Preprocessing(4, 6, color="gray", resize="stretch", interpolation="nearest", **PIX)
    out = preprocess_image(img, spec)[:, :, 0]
    np.testing.assert_array_equal(out, np.kron(img, np.ones((2, 3))).astype(np.float32))


@pytest.mark.parametrize("interpolation", ["nearest", "bilinear", "area", "bicubic"])
def test_center_crop_keeps_the_centre_of_a_wide_image(interpolation: str) -> None:
    img = _three_bands(100, 200)  # W=200, H=100: the crop is the central 100x100 square = all 200
    spec = Preprocessing(50, 50, color="gray", resize="shorter-side+center-crop", interpolation=interpolation, **PIX)
    out = preprocess_image(img, spec)
    assert out.shape == (50, 50, 1)
    if interpolation == "bicubic":  # the 4-tap kernel overshoots next to the cut, but no band value leaks in
        np.testing.assert_array_equal(out[:, 2:-2], np.full((50, 46, 1), 200.0, np.float32))
        assert out.min() >= 200.0
    else:
        np.testing.assert_array_equal(out, np.full((50, 50, 1), 200.0, np.float32))


def test_center_crop_keeps_the_centre_of_a_tall_image() -> None:
    img = _three_bands(200, 100, horizontal=False)
    spec = Preprocessing(50, 50, color="gray", resize="shorter-side+center-crop", **PIX)
    np.testing.assert_array_equal(preprocess_image(img, spec), np.full((50, 50, 1), 200.0, np.float32))


def test_center_crop_exact_columns_with_a_gradient() -> None:
    img = np.tile(np.arange(200, dtype=np.uint8), (100, 1))  # value = x coordinate
    spec = Preprocessing(50, 50, color="gray", resize="shorter-side+center-crop", interpolation="nearest", **PIX)
    out = preprocess_image(img, spec)[:, :, 0]
    # resized to 50x100 (source column 2j), then columns 25..74 are kept: source columns 50, 52, ..., 148
    expected = np.tile(np.arange(50, 150, 2, dtype=np.float32), (50, 1))
    np.testing.assert_array_equal(out, expected)
    assert out.mean() == pytest.approx(99.0)  # symmetric about the source centre (99.5, within a pixel)


def test_center_crop_of_matching_aspect_is_a_plain_resize() -> None:
    img = np.random.default_rng(1).integers(0, 256, (60, 80, 3), dtype=np.uint8)
    crop = Preprocessing(30, 40, resize="shorter-side+center-crop", **PIX)
    stretch = Preprocessing(30, 40, resize="stretch", **PIX)
    np.testing.assert_array_equal(preprocess_image(img, crop), preprocess_image(img, stretch))


def test_letterbox_pads_with_the_fill_and_centres_the_content() -> None:
    img = np.full((100, 200, 3), 255, np.uint8)  # W=200, H=100 -> 50 wide, 25 high inside 50x50
    spec = Preprocessing(50, 50, resize="letterbox", letterbox_fill=7, **PIX)
    out = preprocess_image(img, spec)
    content_rows = np.flatnonzero((out == 255).all(axis=(1, 2)))
    fill_rows = np.flatnonzero((out == 7).all(axis=(1, 2)))
    assert len(content_rows) == 25
    assert np.array_equal(content_rows, np.arange(content_rows[0], content_rows[0] + 25))  # one band
    assert len(fill_rows) == 25  # every other row is pure fill
    top, bottom = content_rows[0], 50 - 1 - content_rows[-1]
    assert top + bottom == 25 and abs(int(top) - int(bottom)) <= 1
    assert (top, bottom) == (12, 13)


def test_letterbox_tall_image_pads_left_and_right() -> None:
    img = np.full((200, 100), 90, np.uint8)
    spec = Preprocessing(50, 50, color="gray", resize="letterbox", letterbox_fill=3, **PIX)
    out = preprocess_image(img, spec)[:, :, 0]
    content_cols = np.flatnonzero((out == 90).all(axis=0))
    assert len(content_cols) == 25 and content_cols[0] == 12
    assert (out[:, :12] == 3).all() and (out[:, 37:] == 3).all()


def test_letterbox_fill_goes_through_the_same_scaling() -> None:
    img = np.zeros((10, 40), np.uint8)
    spec = Preprocessing(20, 20, color="gray", resize="letterbox", letterbox_fill=255, scale=1 / 255)
    out = preprocess_image(img, spec)
    assert out[0, 0, 0] == pytest.approx(1.0)
    assert out[10, 10, 0] == 0.0


def test_letterbox_of_matching_aspect_has_no_border() -> None:
    img = np.full((30, 40), 5, np.uint8)
    spec = Preprocessing(60, 80, color="gray", resize="letterbox", letterbox_fill=200, **PIX)
    assert (preprocess_image(img, spec) == 5).all()


# --- arithmetic -------------------------------------------------------------------------------------------


def test_default_scale_is_one_over_255() -> None:
    img = np.array([[0, 51, 255]], np.uint8)
    out = preprocess_image(img, Preprocessing(1, 3, color="gray"))
    np.testing.assert_allclose(out[0, :, 0], [0.0, 0.2, 1.0], rtol=0, atol=1e-7)


def test_scale_mean_std_single_value() -> None:
    img = np.full((2, 2), 51, np.uint8)
    spec = Preprocessing(2, 2, color="gray", scale=1 / 255, mean=(0.5,), std=(0.25,))
    np.testing.assert_allclose(preprocess_image(img, spec), np.full((2, 2, 1), (0.2 - 0.5) / 0.25), atol=1e-6)


def test_scale_mean_std_per_channel_imagenet() -> None:
    img = np.zeros((1, 1, 3), np.uint8)
    img[0, 0] = (255, 128, 0)  # RGB
    mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    spec = Preprocessing(1, 1, mean=mean, std=std)
    expected = [(1.0 - 0.485) / 0.229, (128 / 255 - 0.456) / 0.224, (0.0 - 0.406) / 0.225]
    np.testing.assert_allclose(preprocess_image(img, spec)[0, 0], expected, rtol=1e-6)


def test_resnet_style_minus_one_to_one() -> None:
    img = np.array([[0, 255]], np.uint8)
    spec = Preprocessing(1, 2, color="gray", scale=1 / 127.5, mean=(1.0,))
    np.testing.assert_allclose(preprocess_image(img, spec)[0, :, 0], [-1.0, 1.0], atol=1e-6)


def test_call_is_preprocess_image() -> None:
    img = np.random.default_rng(2).integers(0, 256, (9, 7, 3), dtype=np.uint8)
    spec = Preprocessing(5, 5, mean=(0.3,), std=(0.2,))
    np.testing.assert_array_equal(spec(img, bgr=True), preprocess_image(img, spec, bgr=True))


# --- colour -------------------------------------------------------------------------------------------------


def test_gray_spec_converts_rgb_with_standard_weights() -> None:
    img = np.zeros((1, 3, 3), np.uint8)
    img[0, 0] = (255, 0, 0)
    img[0, 1] = (0, 255, 0)
    img[0, 2] = (0, 0, 255)
    out = preprocess_image(img, Preprocessing(1, 3, color="gray", **PIX))
    assert out.shape == (1, 3, 1)
    # ITU-R BT.601: 0.299 R + 0.587 G + 0.114 B
    np.testing.assert_allclose(out[0, :, 0], [76, 150, 29], atol=1)


def test_rgb_spec_replicates_a_gray_image() -> None:
    img = np.arange(12, dtype=np.uint8).reshape(3, 4)
    out = preprocess_image(img, Preprocessing(3, 4, **PIX))
    assert out.shape == (3, 4, 3)
    for c in range(3):
        np.testing.assert_array_equal(out[:, :, c], img.astype(np.float32))


def test_hxwx1_equals_hxw() -> None:
    img = np.random.default_rng(3).integers(0, 256, (6, 6), dtype=np.uint8)
    spec = Preprocessing(4, 4, color="gray")
    np.testing.assert_array_equal(preprocess_image(img[:, :, None], spec), preprocess_image(img, spec))


def test_bgr_flag_swaps_channels() -> None:
    blue_bgr = np.zeros((2, 2, 3), np.uint8)
    blue_bgr[..., 0] = 255  # OpenCV order: B first
    spec = Preprocessing(2, 2, **PIX)
    np.testing.assert_array_equal(preprocess_image(blue_bgr, spec, bgr=True)[0, 0], [0, 0, 255])
    np.testing.assert_array_equal(preprocess_image(blue_bgr, spec, bgr=False)[0, 0], [255, 0, 0])


def test_bgr_flag_on_gray_uses_the_right_weights() -> None:
    red_bgr = np.zeros((1, 1, 3), np.uint8)
    red_bgr[..., 2] = 255
    gray = Preprocessing(1, 1, color="gray", **PIX)
    assert preprocess_image(red_bgr, gray, bgr=True)[0, 0, 0] == pytest.approx(76, abs=1)
    assert preprocess_image(red_bgr, gray, bgr=False)[0, 0, 0] == pytest.approx(29, abs=1)


# --- input dtypes and shapes ------------------------------------------------------------------------------------


def test_uint16_is_scaled_to_8_bits() -> None:
    img = np.array([[0, 257, 128 * 257, 65535, 65534]], np.uint16)
    np.testing.assert_array_equal(normalize_image(img), [[0, 1, 128, 255, 255]])
    out = preprocess_image(img, Preprocessing(1, 5, color="gray", **PIX))
    np.testing.assert_array_equal(out[0, :, 0], [0, 1, 128, 255, 255])


def test_bool_is_0_or_255() -> None:
    img = np.array([[True, False], [False, True]])
    out = preprocess_image(img, Preprocessing(2, 2, color="gray"))
    np.testing.assert_array_equal(out[:, :, 0], [[1.0, 0.0], [0.0, 1.0]])


def test_float_in_unit_range_is_rounded_to_uint8() -> None:
    img = np.array([[0.0, 0.5, 1.0, 0.2]], np.float64)
    np.testing.assert_array_equal(normalize_image(img), [[0, 128, 255, 51]])
    img32 = np.random.default_rng(4).integers(0, 256, (5, 5)).astype(np.float32) / 255
    spec = Preprocessing(5, 5, color="gray")
    np.testing.assert_allclose(preprocess_image(img32, spec), img32[:, :, None], atol=1e-6)


@pytest.mark.parametrize("bad", [1.5, -0.01, 255.0, np.nan, np.inf])
def test_float_outside_unit_range_is_refused(bad: float) -> None:
    img = np.zeros((3, 3), np.float32)
    img[1, 1] = bad
    with pytest.raises(ImageReadError, match=r"outside \[0, 1\]"):
        preprocess_image(img, Preprocessing(3, 3))
    with pytest.raises(ImageReadError, match="frame.png"):
        normalize_image(img, name="frame.png")


def test_unsupported_dtype_and_shape_are_refused() -> None:
    with pytest.raises(ImageReadError, match="int32"):
        normalize_image(np.zeros((3, 3), np.int32))
    with pytest.raises(ImageReadError, match=r"\(3, 3, 2\)"):
        normalize_image(np.zeros((3, 3, 2), np.uint8))
    with pytest.raises(ImageReadError, match="empty"):
        normalize_image(np.zeros((0, 3), np.uint8))


def test_rgba_drops_alpha() -> None:
    rng = np.random.default_rng(5)
    rgb = rng.integers(0, 256, (4, 4, 3), dtype=np.uint8)
    alpha = rng.integers(0, 256, (4, 4, 1), dtype=np.uint8)
    spec = Preprocessing(4, 4, **PIX)
    rgba = np.concatenate([rgb, alpha], axis=2)
    np.testing.assert_array_equal(preprocess_image(rgba, spec), rgb.astype(np.float32))
    bgra = np.concatenate([rgb[:, :, ::-1], alpha], axis=2)
    np.testing.assert_array_equal(preprocess_image(bgra, spec, bgr=True), rgb.astype(np.float32))


# --- files ----------------------------------------------------------------------------------------------------


def _rgb_image(seed: int = 0, shape: tuple[int, int] = (24, 32)) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (*shape, 3), dtype=np.uint8)


def test_read_image_returns_rgb(tmp_path: Path) -> None:
    rgb = _rgb_image()
    path = tmp_path / "im.png"
    assert cv2.imwrite(str(path), rgb[:, :, ::-1])  # OpenCV writes BGR
    np.testing.assert_array_equal(read_image(path), rgb)
    np.testing.assert_array_equal(read_image(str(path)), rgb)


def test_read_image_gray_png_stays_gray(tmp_path: Path) -> None:
    gray = _rgb_image()[:, :, 0]
    path = tmp_path / "g.png"
    Image.fromarray(gray, "L").save(path)
    out = read_image(path)
    assert out.shape == gray.shape
    np.testing.assert_array_equal(out, gray)


def test_read_image_16_bit_png(tmp_path: Path) -> None:
    img16 = (np.arange(20, dtype=np.uint16).reshape(4, 5) * 3000).astype(np.uint16)
    path = tmp_path / "d.png"
    assert cv2.imwrite(str(path), img16)
    np.testing.assert_array_equal(read_image(path), normalize_image(img16))


def _png_bytes(tmp_path: Path) -> bytes:
    path = tmp_path / "src.png"
    assert cv2.imwrite(str(path), _rgb_image(shape=(64, 64)))
    return path.read_bytes()


def _bad_file(kind: str, tmp_path: Path) -> Path:
    if kind == "missing":
        return tmp_path / "nope.png"
    if kind == "directory":
        d = tmp_path / "folder.png"
        d.mkdir()
        return d
    p = tmp_path / f"{kind}.png"
    if kind == "empty":
        p.write_bytes(b"")
    elif kind == "truncated":
        data = _png_bytes(tmp_path)
        p.write_bytes(data[: len(data) // 2])
    elif kind == "truncated-tail":
        data = _png_bytes(tmp_path)
        p.write_bytes(data[:-20])  # image data complete up to the last chunk
    elif kind == "text":
        p.write_text("this is not an image\n" * 10)
    return p


@pytest.mark.parametrize("kind", ["missing", "directory", "empty", "truncated", "truncated-tail", "text"])
def test_read_image_errors_name_the_path(kind: str, tmp_path: Path) -> None:
    path = _bad_file(kind, tmp_path)
    with pytest.raises(ImageReadError) as e:
        read_image(path)
    assert str(path) in str(e.value)
    assert isinstance(e.value, ValueError)


def test_one_bit_png_equals_eight_bit(tmp_path: Path) -> None:
    bits = np.random.default_rng(6).random((21, 19)) < 0.5
    p1, p8 = tmp_path / "one.png", tmp_path / "eight.png"
    Image.fromarray(bits).convert("1").save(p1)
    Image.fromarray(bits.astype(np.uint8) * 255, "L").save(p8)
    assert Image.open(p1).mode == "1"
    np.testing.assert_array_equal(np.unique(read_image(p1)), [0, 255])
    for spec in (Preprocessing(21, 19, color="gray"), Preprocessing(30, 30, resize="letterbox")):
        a = preprocess_batch([p1], spec)
        b = preprocess_batch([p8], spec)
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(preprocess_batch([p1], Preprocessing(21, 19, color="gray"))[0, :, :, 0], bits)


def test_preprocess_batch_mixes_paths_and_arrays(tmp_path: Path) -> None:
    rgb = [_rgb_image(seed) for seed in range(3)]
    paths = []
    for i, im in enumerate(rgb):
        p = tmp_path / f"{i}.png"
        assert cv2.imwrite(str(p), im[:, :, ::-1])
        paths.append(p)
    spec = Preprocessing(16, 16, resize="shorter-side+center-crop", mean=(0.5,), std=(0.5,))
    expected = np.stack([preprocess_image(im, spec) for im in rgb])
    batch = preprocess_batch([paths[0], rgb[1], str(paths[2])], spec)
    assert batch.shape == (3, 16, 16, 3) and batch.dtype == np.float32
    np.testing.assert_array_equal(batch, expected)
    # bgr applies to arrays only; files are always decoded to RGB
    batch_bgr = preprocess_batch([paths[0], rgb[1][:, :, ::-1], paths[2]], spec, bgr=True)
    np.testing.assert_array_equal(batch_bgr, expected)


def test_preprocess_batch_empty_and_errors(tmp_path: Path) -> None:
    spec = Preprocessing(8, 8)
    assert preprocess_batch([], spec).shape == (0, 8, 8, 3)
    missing = tmp_path / "gone.jpg"
    with pytest.raises(ImageReadError, match="gone.jpg"):
        preprocess_batch([_rgb_image(), missing], spec)


def _png_header(width: int, height: int) -> bytes:
    """A PNG signature and IHDR declaring width x height (what a decompression bomb looks like to a reader)."""
    import struct
    import zlib

    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    chunk = struct.pack(">I", len(ihdr)) + b"IHDR" + ihdr + struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    return b"\x89PNG\r\n\x1a\n" + chunk


def test_the_pixel_cap_refuses_a_bomb_before_decoding(tmp_path, monkeypatch) -> None:
    from runtime.preprocess import DEFAULT_MAX_PIXELS, MAX_PIXELS_ENV, ImageReadError, decode_image, read_image

    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(_png_header(20000, 20000))
    with pytest.raises(ImageReadError, match=r"bomb\.png: 20000x20000 = 400,000,000 pixels, over the 100,000,000"):
        read_image(bomb)
    assert DEFAULT_MAX_PIXELS == 100_000_000
    ok, png = cv2.imencode(".png", np.zeros((30, 40), np.uint8))
    assert decode_image(png.tobytes(), "small.png").shape == (30, 40)
    with pytest.raises(ImageReadError, match=r"small\.png: 40x30 = 1,200 pixels, over the 1,000-pixel cap"):
        decode_image(png.tobytes(), "small.png", pixel_cap=1000)
    monkeypatch.setenv(MAX_PIXELS_ENV, "1000")
    with pytest.raises(ImageReadError, match=MAX_PIXELS_ENV):
        decode_image(png.tobytes(), "small.png")
    monkeypatch.setenv(MAX_PIXELS_ENV, "lots")
    with pytest.raises(ValueError, match="SIAMESE_EDGE_MAX_PIXELS='lots': expected a positive number"):
        decode_image(png.tobytes(), "small.png")


def test_opencv_refusing_an_image_is_an_image_error_not_a_traceback(tmp_path) -> None:
    """Over OpenCV's own limit (OPENCV_IO_MAX_IMAGE_PIXELS) imdecode throws cv2.error: named, not escaped."""
    import subprocess
    import sys

    ok, png = cv2.imencode(".png", np.zeros((300, 400), np.uint8))
    (tmp_path / "big.png").write_bytes(png.tobytes())
    code = (
        "import sys\nfrom runtime.preprocess import ImageReadError, read_image\n"
        "try:\n    read_image(sys.argv[1])\nexcept ImageReadError as e:\n    print(e)\n"
    )
    env = {**__import__("os").environ, "OPENCV_IO_MAX_IMAGE_PIXELS": "1000"}
    root = Path(__file__).resolve().parents[1]
    r = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "big.png")],
        env=env,
        cwd=root,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr[-1000:]
    assert "big.png: OpenCV cannot decode it" in r.stdout
