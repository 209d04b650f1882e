"""Test clips with known answers: a reference image appears in some segments, other images in the rest.

Each frame shows one real image (a digit, an Omniglot character, a photo) filling the centered square of a
640x480 frame, moved and scaled a little from frame to frame, with sensor noise, then video compression: what
a camera pointed at a printed card would give. The truth (which frames show the reference) is written beside
the clip, so a run of ``python -m camera`` over it can be scored. Used by the tests, ``make demo`` and
``python -m camera.bench``:

    python -m camera.clipmaker --data digits --out runs/demo/clip.mp4     # + clip.reference.png, clip.truth.json
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from runtime.extras import explain_missing_extras
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
    """A dataset image (``train.data``: uint8 RGB or gray; also bool, uint16, float) as the BGR frame OpenCV writes."""
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


def sample_clip_images(
    ds, seed: int = 0, positives: str = "same-image", negatives: int = 5
) -> tuple[tuple[str, np.ndarray], list, list]:
    """Pick a reference, its positives and negatives from an ``ImageSet`` (``train.data``), seeded.

    positives: "same-image" (the reference itself is shown) or "same-class" (other images of its class).
    Negatives come from other classes of the same group when there are enough (Omniglot: the same alphabet).
    """
    rng = np.random.default_rng(seed)
    counts = ds.class_counts()
    eligible = np.flatnonzero(counts >= (2 if positives == "same-class" else 1))
    c = int(rng.choice(eligible))
    members = np.flatnonzero(ds.labels == c)
    ref_i = int(rng.choice(members))
    reference = (ds.items[ref_i], ds.read(ref_i))
    if positives == "same-image":
        pos = [reference]
    elif positives == "same-class":
        others = [int(i) for i in rng.permutation(members) if i != ref_i][:negatives]
        pos = [(ds.items[i], ds.read(i)) for i in others]
    else:
        raise ValueError(f"positives {positives!r}: expected 'same-image' or 'same-class'")
    group = ds.class_groups[c]
    same_group = np.flatnonzero((ds.class_groups[ds.labels] == group) & (ds.labels != c))
    pool = same_group if len(np.unique(ds.labels[same_group])) >= negatives else np.flatnonzero(ds.labels != c)
    neg: list[tuple[str, np.ndarray]] = []
    seen: set[int] = set()
    for i in rng.permutation(pool):
        if int(ds.labels[i]) not in seen:
            seen.add(int(ds.labels[i]))
            neg.append((ds.items[int(i)], ds.read(int(i))))
        if len(neg) == negatives:
            break
    return reference, pos, neg


def write_reference(path: str | Path, image: np.ndarray) -> Path:
    import cv2

    with atomic_path(path) as tmp:
        a = normalize_image(image)
        if not cv2.imwrite(str(tmp), a if a.ndim == 2 else cv2.cvtColor(a, cv2.COLOR_RGB2BGR)):
            raise RuntimeError(f"{path}: OpenCV could not write the reference image")
    return Path(path)


@explain_missing_extras("train")
def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m camera.clipmaker",
        description="Write a test clip (640x480 mp4) in which a reference image appears in known segments, "
        "the reference image, and the truth (clip.truth.json) to score a camera run against.",
    )
    p.add_argument("--data", default="digits", help="digits, omniglot, or a folder of class folders (train.data)")
    p.add_argument("--split", default="evaluation", help="Omniglot split (default: %(default)s)")
    p.add_argument("--out", required=True, metavar="CLIP.mp4")
    p.add_argument("--seconds", type=float, default=10.0, help="clip length (default: %(default)s)")
    p.add_argument("--segment-seconds", type=float, default=1.0, help="length of each segment (default: %(default)s)")
    p.add_argument("--fps", type=float, default=30.0)
    p.add_argument(
        "--positives",
        choices=("same-image", "same-class"),
        default="same-image",
        help="what the reference segments show (default: %(default)s)",
    )
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    from train.data import DatasetError, open_dataset

    out = Path(args.out)
    if out.suffix.lower() != ".mp4":
        print(f"error: --out {out}: expected a .mp4 file", file=sys.stderr)
        return 2
    try:
        ds = open_dataset(args.data, split=args.split)
    except DatasetError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    seg_frames = max(1, round(args.segment_seconds * args.fps))
    segments = max(2, round(args.seconds * args.fps / seg_frames))
    reference, pos, neg = sample_clip_images(ds, args.seed, args.positives)
    truth = make_clip(
        out, reference, pos, neg, segments=segments, segment_frames=seg_frames, fps=args.fps, seed=args.seed
    )
    ref_path = write_reference(out.with_suffix(".reference.png"), reference[1])
    truth_path = truth.save(out.with_suffix(".truth.json"))
    print(f"clip: {out} ({truth.frames} frames, {segments} segments; the reference is in {sum(truth.truth())})")
    print(f"reference: {ref_path}  ({reference[0]})")
    print(f"truth: {truth_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
