"""``python -m camera.score --truth CLIP.truth.json --events EVENTS.jsonl``: how right a camera run was on a test clip.

Reads the truth ``camera.clip`` wrote and the events ``python -m camera --events`` wrote, and reports the
share of processed frames decided right: on the reference segments (matched), on the others (rejected) and on
all of them (accuracy), for the smoothed decision (``match``) and the single-frame one (``raw_match``). A frame
without a detection (``--detect``) is not a match, and is counted (``no_detection``). With several streams,
``--stream N`` scores one of them (each stream of a run over copies of the clip is scored against the same truth).
Exit 0, or 2 for a bad file.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from runtime.console import BOUNDARY_EXIT_CODES, run_cli
from runtime.extras import explain_missing_extras


def score_events(
    truth_path: str | Path, events_path: str | Path, stream: int | None = None
) -> dict[str, float | int | None]:
    """Shares of processed frames decided right, per kind of segment and decision; ``stream``: which stream's
    frames (None: the run must have one stream)."""
    from camera.clip import ClipTruth

    try:
        truth = ClipTruth.load(truth_path).truth()
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ValueError(f"{truth_path}: not a clip truth file from camera.clip ({e})") from None
    try:
        events = [json.loads(line) for line in Path(events_path).read_text(encoding="utf-8").splitlines()]
        frames = [e for e in events if e.get("event") == "frame" and e["frame"] < len(truth)]
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
        raise ValueError(f"{events_path}: not an events file from python -m camera --events ({e})") from None
    streams = sorted({int(e.get("stream", 0)) for e in frames})
    if stream is None and len(streams) > 1:
        raise ValueError(f"{events_path}: frames of streams {streams}; pass --stream N to score one of them")
    if stream is not None:
        if stream not in streams:
            raise ValueError(f"{events_path}: --stream {stream}: no frames of it (streams {streams})")
        frames = [e for e in frames if int(e.get("stream", 0)) == stream]
    out: dict[str, float | int | None] = {"frames": len(frames)}
    out["no_detection"] = sum(e.get("outcome") == "no detection" for e in frames)
    idx = np.array([e["frame"] for e in frames], dtype=np.int64)
    on = truth[idx] if len(idx) else np.zeros(0, bool)
    for key in ("match", "raw_match"):
        decided = np.array([bool(e[key]) for e in frames], dtype=bool)
        prefix = "" if key == "match" else "raw_"
        out[f"{prefix}reference_matched"] = round(float(decided[on].mean()), 4) if on.any() else None
        out[f"{prefix}others_rejected"] = round(float((~decided[~on]).mean()), 4) if (~on).any() else None
        out[f"{prefix}accuracy"] = round(float((decided == on).mean()), 4) if len(on) else None
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m camera.score",
        description=__doc__.splitlines()[0].split(": ", 1)[1],
        epilog=f"exit codes:\n  0  scored\n  2  bad input: an unreadable truth or events file, arguments\n"
        f"{BOUNDARY_EXIT_CODES}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--truth", required=True, help="the clip's truth file (camera.clip writes CLIP.truth.json)")
    p.add_argument("--events", required=True, help="the events file of the camera run (python -m camera --events)")
    p.add_argument("--stream", type=int, metavar="N", help="score stream N of a run with several")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--debug", action="store_true", help="print the traceback of an unexpected error")
    args = p.parse_args(argv)
    return run_cli(explain_missing_extras()(lambda: _report(args)), debug=args.debug)


def _report(args: argparse.Namespace) -> int:
    try:
        s = score_events(args.truth, args.events, args.stream)
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
        print(f"all frames right:           {pct(s['accuracy'])} smoothed, {pct(s['raw_accuracy'])} per frame")
        if s["no_detection"]:
            print(f"frames without a detection: {s['no_detection']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
