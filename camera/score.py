"""``python -m camera.score --truth CLIP.truth.json --events EVENTS.jsonl``: how right a camera run was on a test clip.

Reads the truth ``train.clipmaker`` wrote and the events ``python -m camera --events`` wrote, and reports the
share of processed frames decided right: on the reference segments (matched) and on the others (rejected),
for the smoothed decision (``match``) and the single-frame one (``raw_match``). Exit 0, or 2 for a bad file.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from runtime.extras import explain_missing_extras


def score_events(truth_path: str | Path, events_path: str | Path) -> dict[str, float | int | None]:
    """Shares of processed frames decided right, per kind of segment and decision."""
    from camera.clip import ClipTruth

    try:
        truth = ClipTruth.load(truth_path).truth()
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ValueError(f"{truth_path}: not a clip truth file from train.clipmaker ({e})") from None
    try:
        events = [json.loads(line) for line in Path(events_path).read_text(encoding="utf-8").splitlines()]
        frames = [e for e in events if e.get("event") == "frame" and e["frame"] < len(truth)]
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
        raise ValueError(f"{events_path}: not an events file from python -m camera --events ({e})") from None
    out: dict[str, float | int | None] = {"frames": len(frames)}
    idx = np.array([e["frame"] for e in frames], dtype=np.int64)
    on = truth[idx] if len(idx) else np.zeros(0, bool)
    for key in ("match", "raw_match"):
        decided = np.array([bool(e[key]) for e in frames], dtype=bool)
        prefix = "" if key == "match" else "raw_"
        out[f"{prefix}reference_matched"] = round(float(decided[on].mean()), 4) if on.any() else None
        out[f"{prefix}others_rejected"] = round(float((~decided[~on]).mean()), 4) if (~on).any() else None
    return out


@explain_missing_extras()
def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m camera.score", description=__doc__.splitlines()[0].split(": ", 1)[1])
    p.add_argument("--truth", required=True, help="the clip's truth file (train.clipmaker writes CLIP.truth.json)")
    p.add_argument("--events", required=True, help="the events file of the camera run (python -m camera --events)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    args = p.parse_args(argv)
    try:
        s = score_events(args.truth, args.events)
    except ValueError as e:
        print(f"error: {' '.join(str(e).split())}", file=sys.stderr)
        return 2

    def pct(v: float | None) -> str:
        return "-" if v is None else f"{100 * v:.1f}%"

    if args.json:
        print(json.dumps(s))
    else:
        print(f"{s['frames']} frames scored against {args.truth}")
        print(
            f"reference segments matched: {pct(s['reference_matched'])} smoothed, {pct(s['raw_reference_matched'])} per frame"
        )
        print(
            f"other segments rejected:    {pct(s['others_rejected'])} smoothed, {pct(s['raw_others_rejected'])} per frame"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
