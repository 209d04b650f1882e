"""camera.detect on generated frames with known boxes: the spec grammar, the ink detector, an ONNX detector built
here with onnx.helper, and OpenCV's Haar cascades on a real face (matplotlib's sample portrait)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from camera.crop import Roi
from camera.detect import DetectorError, InkDetector, load_detector, nms, parse_detector_spec


def noisy_frame(background: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    base = np.full((480, 640, 3), background, np.float64)
    return np.clip(base + rng.normal(0, 3, base.shape), 0, 255).astype(np.uint8)


def test_spec_grammar_and_its_errors(tmp_path):
    s = parse_detector_spec("onnx:models/det.onnx?score=0.4&iou=0.6")
    assert (s.kind, s.argument, s.options) == ("onnx", "models/det.onnx", {"score": "0.4", "iou": "0.6"})
    assert parse_detector_spec("ink:").options == {}
    for text, expected in [
        ("yolo:x.onnx", "expected haar:CASCADE, ink: or onnx:FILE.onnx"),
        ("ink:?min_area", "expected name=value"),
        ("ink:?min_area=-3", "min_area=-3: expected a number >= 0"),
        ("ink:?size=3", "unknown option 'size' for ink"),
        ("ink:?polarity=blue", "polarity=blue: expected one of auto, dark, light"),
        (f"onnx:{tmp_path / 'none.onnx'}", "is not an .onnx file"),
    ]:
        with pytest.raises(DetectorError, match=expected):
            load_detector(text)


@pytest.mark.parametrize("background, ink", [(235, 20), (15, 230)])  # dark ink on paper, a light digit on black
def test_ink_finds_a_drawn_blob_within_a_few_pixels(background, ink):
    frame = noisy_frame(background)
    cv2.ellipse(frame, (300, 260), (70, 45), 0, 0, 360, (ink, ink, ink), cv2.FILLED)  # box 230..370 x 215..305
    cv2.circle(frame, (80, 60), 6, (ink, ink, ink), cv2.FILLED)  # a smaller blob: not the largest
    exact = InkDetector(parse_detector_spec("ink:?pad=0&square=0"))
    (d,) = exact.detect(frame)
    assert np.allclose([d.box.x, d.box.y, d.box.w, d.box.h], [230, 215, 141, 91], atol=4), d.box
    (sq,) = load_detector("ink:?pad=0.1").detect(frame)  # the default: a square with 10% around it
    assert abs(sq.box.w - sq.box.h) <= 1 and abs(sq.box.w - 141 * 1.2) <= 5
    assert abs(sq.box.x + sq.box.w / 2 - 300) <= 3 and abs(sq.box.y + sq.box.h / 2 - 260) <= 3


def test_ink_finds_nothing_on_a_blank_frame_or_below_min_area():
    assert load_detector("ink:").detect(noisy_frame(128)) == []
    frame = noisy_frame(235)
    cv2.circle(frame, (300, 200), 5, (0, 0, 0), cv2.FILLED)  # ~80 px
    assert load_detector("ink:?min_area=200").detect(frame) == []
    assert len(load_detector("ink:?min_area=20").detect(frame)) == 1


def tiny_detector(path, boxes: list[list[float]], scores: list[float], size=(320, 240)) -> None:
    """An ONNX graph with the documented format (image 1x3xHxW -> boxes Nx4, scores N) that outputs fixed boxes."""
    import onnx
    from onnx import TensorProto, helper

    w, h = size
    image = helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, h, w])
    out_boxes = helper.make_tensor_value_info("boxes", TensorProto.FLOAT, [len(boxes), 4])
    out_scores = helper.make_tensor_value_info("scores", TensorProto.FLOAT, [len(scores)])
    b = helper.make_tensor("b", TensorProto.FLOAT, [len(boxes), 4], np.asarray(boxes, np.float32).ravel().tolist())
    s = helper.make_tensor("s", TensorProto.FLOAT, [len(scores)], scores)
    zero = helper.make_tensor("zero", TensorProto.FLOAT, [], [0.0])
    nodes = [  # the scores depend on the image (times 0), so the input is used as a real detector's is
        helper.make_node("ReduceMax", ["image"], ["peak"], keepdims=0),
        helper.make_node("Mul", ["peak", "zero"], ["nothing"]),
        helper.make_node("Add", ["s", "nothing"], ["scores"]),
        helper.make_node("Identity", ["b"], ["boxes"]),
    ]
    graph = helper.make_graph(nodes, "fixed-boxes", [image], [out_boxes, out_scores], initializer=[b, s, zero])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def test_an_onnx_detector_boxes_come_back_in_frame_pixels(tmp_path):
    path = tmp_path / "det.onnx"
    # in the 320x240 input: a confident box, a weaker one overlapping it (suppressed), one under the score floor
    tiny_detector(path, [[10, 20, 110, 140], [12, 22, 108, 138], [200, 100, 300, 200]], [0.9, 0.8, 0.3])
    det = load_detector(f"onnx:{path}?score=0.5")
    found = det.detect(noisy_frame(100))
    assert [d.box for d in found] == [Roi(20, 40, 200, 240)], "x2 in width, x2 in height (640x480 from 320x240)"
    assert found[0].score == pytest.approx(0.9)
    assert [d.box for d in load_detector(f"onnx:{path}?score=0.2&iou=0.95").detect(noisy_frame(100))] == [
        Roi(20, 40, 200, 240),
        Roi(24, 44, 192, 232),
        Roi(400, 200, 200, 200),
    ]


def test_nms_keeps_the_best_of_overlapping_boxes():
    boxes = np.array([[0, 0, 10, 10], [1, 1, 10, 10], [20, 20, 30, 30]], np.float64)
    assert nms(boxes, np.array([0.5, 0.9, 0.7]), 0.5) == [1, 2]


# The portrait of Grace Hopper that matplotlib ships (mpl-data/sample_data, public domain) and her face in it,
# boxed by hand: the real face the Haar test looks for, with no download
PORTRAIT = "grace_hopper.jpg"
PORTRAIT_FACE = Roi(160, 110, 215, 215)


def iou(a: Roi, b: Roi) -> float:
    x0, y0 = max(a.x, b.x), max(a.y, b.y)
    x1, y1 = min(a.x + a.w, b.x + b.w), min(a.y + a.h, b.y + b.h)
    inter = max(0, x1 - x0) * max(0, y1 - y0)
    return inter / (a.w * a.h + b.w * b.h - inter)


def portrait_frame(x: int, y: int, scale: float) -> tuple[np.ndarray, Roi]:
    """A 640x480 frame of noise with the portrait, scaled, pasted at (x, y); and where her face now is."""
    import matplotlib.cbook

    portrait = cv2.imread(str(matplotlib.cbook.get_sample_data(PORTRAIT, asfileobj=False)))
    portrait = cv2.resize(portrait, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    frame = noisy_frame(90)
    h, w = portrait.shape[:2]
    frame[y : y + h, x : x + w] = portrait
    f = PORTRAIT_FACE
    return frame, Roi(x + round(f.x * scale), y + round(f.y * scale), round(f.w * scale), round(f.h * scale))


@pytest.mark.parametrize("x, y, scale", [(20, 10, 0.75), (270, 40, 0.7), (150, 120, 0.55)])
def test_haar_finds_a_real_face_where_it_was_put(x, y, scale):
    """OpenCV's bundled frontal-face cascade on a real face at three places and sizes: one box, on the face."""
    det = load_detector("haar:frontalface_default")
    frame, face = portrait_frame(x, y, scale)
    found = det.detect(frame)
    assert len(found) == 1, found
    assert iou(found[0].box, face) >= 0.6, (found[0].box, face)


def test_haar_finds_no_face_on_a_blank_frame_and_names_the_cascades_it_has():
    det = load_detector("haar:frontalface_default?neighbors=4")
    assert det.detect(noisy_frame(128)) == []
    with pytest.raises(DetectorError, match="no cascade 'nosuchthing'; OpenCV ships .*frontalface_default"):
        load_detector("haar:nosuchthing")
