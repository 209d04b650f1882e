"""``python -m train.clipmaker``: the images of a test clip with known answers, picked from a dataset.

Picks a reference image, the images its segments show and negatives from other classes (the same alphabet for
Omniglot), and writes them as PNG files into a folder. ``python -m camera.clip`` renders the clip from them (the
camera side owns the clip and its truth; train/ does not import camera/):

    python -m train.clipmaker --data digits --out runs/demo/clip-images
    python -m camera.clip --reference runs/demo/clip-images/reference.png \
        --positives runs/demo/clip-images/positive_*.png --negatives runs/demo/clip-images/negative_*.png \
        --out runs/demo/clip.mp4                                           # + clip.reference.png, clip.truth.json
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from runtime.console import one_line, run_cli
from runtime.extras import explain_missing_extras
from runtime.fileio import atomic_dir, check_replaceable
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


def write_clip_images(out: Path, reference, positives: list, negatives: list) -> dict[str, list[Path]]:
    """``reference.png``, ``positive_NN.png`` and ``negative_NN.png`` in ``out`` (published whole, one rename)."""
    import cv2

    from runtime.preprocess import normalize_image

    def png(path: Path, image: np.ndarray) -> Path:
        a = normalize_image(image)
        ok, buf = cv2.imencode(".png", a if a.ndim == 2 else cv2.cvtColor(a, cv2.COLOR_RGB2BGR))
        if not ok:
            raise RuntimeError(f"{path}: OpenCV could not encode the image")
        path.write_bytes(buf.tobytes())
        return out / path.name

    with atomic_dir(out) as tmp:
        files = {
            "reference": [png(tmp / "reference.png", reference[1])],
            "positives": [png(tmp / f"positive_{i:02d}.png", img) for i, (_, img) in enumerate(positives)],
            "negatives": [png(tmp / f"negative_{i:02d}.png", img) for i, (_, img) in enumerate(negatives)],
        }
    return files


@explain_missing_extras("train")
def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m train.clipmaker",
        description="Pick the images of a test clip from a dataset: a reference, what its segments show and "
        "negatives, written as PNG files into --out; python -m camera.clip then renders the clip (the command "
        "is printed).",
        epilog=exit_codes(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--data", default="digits", help="digits, omniglot, or a folder of class folders (train.data)")
    p.add_argument("--split", default="evaluation", help="Omniglot split (default: %(default)s)")
    p.add_argument("--out", required=True, metavar="DIR", help="the folder to write the images into (replaced)")
    p.add_argument(
        "--positives",
        choices=("same-image", "same-class"),
        default="same-image",
        help="what the reference segments show (default: %(default)s)",
    )
    p.add_argument("--negatives", type=bounded(int, 1), default=5, help="negative images (default: %(default)s)")
    p.add_argument("--seed", type=bounded(int, 0), default=0)
    add_debug(p)
    args = p.parse_args(argv)
    return run_cli(lambda: _run(args), debug=args.debug)


def _run(args: argparse.Namespace) -> int:
    from train.data import DatasetError, open_dataset  # scikit-learn for the digits: the [train] extra

    out = Path(args.out)
    try:
        check_replaceable(out, ("reference.png",), "folder of clip images")
    except FileExistsError as e:
        print(f"error: --out {one_line(e)}", file=sys.stderr)
        return 2
    try:
        ds = open_dataset(args.data, split=args.split)
    except DatasetError as e:
        print(f"error: {one_line(e)}", file=sys.stderr)
        return 2
    reference, pos, neg = sample_clip_images(ds, args.seed, args.positives, args.negatives)
    files = write_clip_images(out, reference, pos, neg)
    print(f"clip images: {out}/ (reference {reference[0]}, {len(pos)} positive(s), {len(neg)} negative(s))")
    print(
        f"next: python -m camera.clip --reference {files['reference'][0]} --positives {out}/positive_*.png "
        f"--negatives {out}/negative_*.png --out CLIP.mp4"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
