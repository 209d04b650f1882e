"""``python -m train.clipmaker``: a test clip with known answers from a dataset (digits, Omniglot, class folders).

Picks a reference image, the images its segments show and negatives from other classes (the same alphabet for
Omniglot), then renders the clip with ``camera.clip`` and writes it with its reference image and truth, so a
``python -m camera`` run over it can be scored (``camera.score``) and timed (``camera.bench --clip``):

    python -m train.clipmaker --data digits --out runs/demo/clip.mp4      # + clip.reference.png, clip.truth.json
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from camera.clip import make_clip, write_reference
from runtime.console import one_line, run_cli
from runtime.extras import explain_missing_extras
from train.arguments import add_debug, bounded, exit_codes


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


@explain_missing_extras("train")
def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m train.clipmaker",
        description="Write a test clip (640x480 mp4) in which a reference image appears in known segments, "
        "the reference image, and the truth (clip.truth.json) to score a camera run against.",
        epilog=exit_codes(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--data", default="digits", help="digits, omniglot, or a folder of class folders (train.data)")
    p.add_argument("--split", default="evaluation", help="Omniglot split (default: %(default)s)")
    p.add_argument("--out", required=True, metavar="CLIP.mp4")
    p.add_argument(
        "--seconds", type=bounded(float, 0, low_open=True), default=10.0, help="clip length (default: %(default)s)"
    )
    p.add_argument(
        "--segment-seconds",
        type=bounded(float, 0, low_open=True),
        default=1.0,
        help="length of each segment (default: %(default)s)",
    )
    p.add_argument("--fps", type=bounded(float, 0, low_open=True), default=30.0)
    p.add_argument(
        "--positives",
        choices=("same-image", "same-class"),
        default="same-image",
        help="what the reference segments show (default: %(default)s)",
    )
    p.add_argument("--seed", type=bounded(int, 0), default=0)
    add_debug(p)
    args = p.parse_args(argv)
    return run_cli(lambda: _run(args), debug=args.debug)


def _run(args: argparse.Namespace) -> int:
    from train.data import DatasetError, open_dataset  # scikit-learn for the digits: the [train] extra

    out = Path(args.out)
    if out.suffix.lower() != ".mp4":
        print(f"error: --out {out}: expected a .mp4 file", file=sys.stderr)
        return 2
    try:
        ds = open_dataset(args.data, split=args.split)
    except DatasetError as e:
        print(f"error: {one_line(e)}", file=sys.stderr)
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
