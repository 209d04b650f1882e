"""Test clips with known answers: a reference image appears in some segments, other images in the rest.

This module is the clip format (``ClipTruth``) and its rendering from images given to it (``python -m camera.clip``);
picking the images from a dataset is the training side's (``python -m train.clipmaker``), since camera/ imports
only the runtime and train/ does not import camera/.

Each frame shows one real image (a digit, an Omniglot character, a photo) filling the centered square of a
640x480 frame, moved and scaled a little from frame to frame, with sensor noise, then video compression: what
a camera pointed at a printed card would give. The truth (which frames show the reference) is written beside
the clip, so a run of ``python -m camera`` over it can be scored. Used by the tests, ``make demo`` and
``python -m camera.bench``:

    python -m train.clipmaker --data digits --out runs/demo/clip-images       # the images, from a dataset
    python -m camera.clip --reference runs/demo/clip-images/reference.png \
        --positives runs/demo/clip-images/positive_*.png --negatives runs/demo/clip-images/negative_*.png \
        --out runs/demo/clip.mp4                                               # + clip.reference.png, clip.truth.json
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from runtime.fileio import atomic_path, write_json_atomic
from runtime.preprocess import normalize_image

DEFAULT_SIZE = (640, 480)


@dataclass(frozen=True)
class Segment:
    start: int  # first frame
    end: int  # one past the last frame
    reference: bool  # does the reference appear in it
    item: str  # which image is shown


@dataclass
class ClipTruth:
    path: str
    fps: float
    size: tuple[int, int]
    frames: int
    segments: list[Segment]
    reference_item: str

    def truth(self) -> np.ndarray:
        """Per frame: True where the reference is shown."""
        t = np.zeros(self.frames, dtype=bool)
        for s in self.segments:
            t[s.start : s.end] = s.reference
        return t

    def transitions(self) -> list[int]:
        """First frames of every segment after the first (where a smoothed verdict needs time to settle)."""
        return [s.start for s in self.segments[1:]]

    def save(self, path: str | Path) -> Path:
        d = asdict(self)
        return write_json_atomic(path, d)

    @classmethod
    def load(cls, path: str | Path) -> ClipTruth:
        d = json.loads(Path(path).read_text(encoding="utf-8"))
        d["segments"] = [Segment(**s) for s in d["segments"]]
        d["size"] = tuple(d["size"])
        return cls(**d)


def to_bgr(img: np.ndarray) -> np.ndarray:
    """An image (uint8 RGB or gray, as datasets give them; also bool, uint16, float) as the BGR frame OpenCV writes."""
    import cv2

    a = normalize_image(img)
    return cv2.cvtColor(a, cv2.COLOR_GRAY2BGR if a.ndim == 2 else cv2.COLOR_RGB2BGR)


def background_of(bgr: np.ndarray) -> tuple[int, int, int]:
    """The image's border colour (black for the digits, white for Omniglot) to fill the frame around it."""
    border = np.concatenate([bgr[0], bgr[-1], bgr[:, 0], bgr[:, -1]]).reshape(-1, 3)
    return tuple(int(v) for v in np.median(border, axis=0))


def render(
    image: np.ndarray,
    rng: np.random.Generator,
    size: tuple[int, int] = DEFAULT_SIZE,
    fill: float = 1.0,
    jitter: float = 0.01,
    noise: float = 3.0,
) -> np.ndarray:
    """One BGR frame: ``image`` scaled to ``fill`` of the centered square, shifted/scaled by up to ``jitter``.

    Nearest-neighbour scaling: a small image looks like a print of its pixels, as a camera would see it.
    """
    import cv2

    w, h = size
    src = to_bgr(image)
    side = min(w, h)
    ih, iw = src.shape[:2]
    scale = fill * side / max(ih, iw) * (1.0 + rng.uniform(-jitter, jitter))
    dx, dy = rng.uniform(-jitter, jitter, size=2) * side
    # pixel centres: dst + 0.5 = scale * (src + 0.5) + top-left corner
    tx = w / 2 + dx - scale * iw / 2 + 0.5 * scale - 0.5
    ty = h / 2 + dy - scale * ih / 2 + 0.5 * scale - 0.5
    m = np.array([[scale, 0.0, tx], [0.0, scale, ty]])
    bg = background_of(src)
    frame = cv2.warpAffine(src, m, (w, h), flags=cv2.INTER_NEAREST, borderMode=cv2.BORDER_CONSTANT, borderValue=bg)
    if noise > 0:
        frame = np.clip(frame + rng.normal(0.0, noise, frame.shape), 0, 255).astype(np.uint8)
    return frame


def make_clip(
    path: str | Path,
    reference: tuple[str, np.ndarray],
    positives: list[tuple[str, np.ndarray]],
    negatives: list[tuple[str, np.ndarray]],
    *,
    segments: int = 10,
    segment_frames: int = 30,
    fps: float = 30.0,
    size: tuple[int, int] = DEFAULT_SIZE,
    seed: int = 0,
) -> ClipTruth:
    """Write a clip alternating reference segments (from ``positives``) and others (from ``negatives``).

    Segments alternate, starting with a negative; each shows one image for ``segment_frames`` frames.
    """
    import cv2

    if not positives or not negatives:
        raise ValueError("a test clip needs at least one positive and one negative image")
    rng = np.random.default_rng(seed)
    path = Path(path)
    plan: list[Segment] = []
    pos_i = neg_i = 0
    for k in range(segments):
        is_ref = k % 2 == 1
        pool, i = (positives, pos_i) if is_ref else (negatives, neg_i)
        name = pool[i % len(pool)][0]
        plan.append(Segment(k * segment_frames, (k + 1) * segment_frames, is_ref, name))
        if is_ref:
            pos_i += 1
        else:
            neg_i += 1
    images = dict(positives + negatives)
    fourcc = cv2.VideoWriter_fourcc(*"mp4v")
    with atomic_path(path) as tmp:
        writer = cv2.VideoWriter(str(tmp), fourcc, fps, size)
        if not writer.isOpened():
            raise RuntimeError(f"{path}: OpenCV cannot write mp4v video here")
        try:
            for seg in plan:
                for _ in range(seg.start, seg.end):
                    writer.write(render(images[seg.item], rng, size))
        finally:
            writer.release()
    return ClipTruth(str(path), fps, size, segments * segment_frames, plan, reference[0])


def write_reference(path: str | Path, image: np.ndarray) -> Path:
    import cv2

    with atomic_path(path) as tmp:
        a = normalize_image(image)
        if not cv2.imwrite(str(tmp), a if a.ndim == 2 else cv2.cvtColor(a, cv2.COLOR_RGB2BGR)):
            raise RuntimeError(f"{path}: OpenCV could not write the reference image")
    return Path(path)


def main(argv: list[str] | None = None) -> int:
    """``python -m camera.clip``: render a test clip from image files (see the module docstring)."""
    import argparse

    from runtime.console import BOUNDARY_EXIT_CODES, run_cli

    p = argparse.ArgumentParser(
        prog="python -m camera.clip",
        description="Render a 640x480 test clip in which the reference appears in known segments (showing the "
        "--positives) between segments of --negatives; writes CLIP.mp4, CLIP.reference.png and CLIP.truth.json.",
        epilog=f"exit codes:\n  0  written\n  2  bad input (an image that cannot be read, arguments)\n{BOUNDARY_EXIT_CODES}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--reference", required=True, metavar="IMAGE", help="the reference image")
    p.add_argument("--positives", nargs="+", required=True, metavar="IMAGE", help="what the reference segments show")
    p.add_argument("--negatives", nargs="+", required=True, metavar="IMAGE", help="what the other segments show")
    p.add_argument("--out", required=True, metavar="CLIP.mp4")
    p.add_argument("--seconds", type=float, default=10.0, help="clip length (default: %(default)s)")
    p.add_argument("--segment-seconds", type=float, default=1.0, help="length of a segment (default: %(default)s)")
    p.add_argument("--fps", type=float, default=30.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--debug", action="store_true", help="print the traceback of an unexpected error")
    args = p.parse_args(argv)
    return run_cli(lambda: _render(args), debug=args.debug)


def _render(args) -> int:
    import math
    import sys

    from runtime.preprocess import ImageReadError, read_image

    out = Path(args.out)
    for name in ("seconds", "segment_seconds", "fps"):
        value = getattr(args, name)
        if not (math.isfinite(value) and value > 0):
            print(f"error: --{name.replace('_', '-')} {value}: expected a finite number > 0", file=sys.stderr)
            return 2
    if out.suffix.lower() != ".mp4":
        print(f"error: --out {out}: expected a .mp4 file", file=sys.stderr)
        return 2
    from camera.outputs import check_outputs
    from camera.sinks import SinkError

    outputs = [out, out.with_suffix(".reference.png"), out.with_suffix(".truth.json")]
    inputs = {Path(f).resolve(): "an input image" for f in (args.reference, *args.positives, *args.negatives)}
    out.parent.mkdir(parents=True, exist_ok=True)
    try:  # camera.outputs' rule: no output may be an input (after links), each folder writable
        check_outputs([("--out", o) for o in outputs], inputs)
    except SinkError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    try:
        reference = (str(args.reference), read_image(args.reference))
        positives = [(str(f), read_image(f)) for f in args.positives]
        negatives = [(str(f), read_image(f)) for f in args.negatives]
    except ImageReadError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    seg_frames = max(1, round(args.segment_seconds * args.fps))
    segments = max(2, round(args.seconds * args.fps / seg_frames))
    truth = make_clip(
        out, reference, positives, negatives, segments=segments, segment_frames=seg_frames, fps=args.fps, seed=args.seed
    )
    ref_path = write_reference(outputs[1], reference[1])
    truth_path = truth.save(outputs[2])
    print(f"clip: {out} ({truth.frames} frames, {segments} segments; the reference is in {int(sum(truth.truth()))})")
    print(f"reference: {ref_path}")
    print(f"truth: {truth_path}")
    return 0


if __name__ == "__main__":
    import sys

    sys.exit(main())
