"""``python -m camera``: verify a live stream, a video file or a folder of frames against references or a gallery.

Exit codes (for scripts and supervisors):
  0  the source ended (end of file) or the run was stopped (Ctrl-C, SIGTERM, --max-frames, q in the window);
     the summary was printed, the video and the events file are complete
  1  the stream was lost mid-run and did not come back within --reconnect-timeout, or capture failed
  2  bad input at start: a source that cannot be opened, a missing or tampered bundle, an unreadable
     reference image, a gallery of another bundle, bad arguments (one line on stderr naming it)
  3  the backend asked for cannot run here
"""

from __future__ import annotations

import argparse
import contextlib
import json
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from runtime import console
from runtime.backends.base import PRECISIONS, backend_names
from runtime.console import CliError, cli_warnings, load_verifier
from runtime.extras import explain_missing_extras

EXIT_OK, EXIT_LOST, EXIT_INPUT, EXIT_BACKEND = 0, 1, console.EXIT_INPUT, console.EXIT_BACKEND

EXAMPLES = """
sources (jetson-utils' grammar):
  0  or  v4l2:///dev/video0       a USB/V4L2 camera            csi://0           a Jetson CSI camera (GStreamer)
  rtsp://user:pw@cam/stream       a network stream (rtsp, rtmp, http(s), udp)
  clip.mp4  or  file://clip.mp4   a video file (--loop to repeat it, --realtime to pace it like a camera)
  frames/                         a folder of images, in natural order
  "videotestsrc ! videoconvert ! appsink"   a raw GStreamer pipeline (needs OpenCV built with GStreamer)

examples:
  python -m camera --bundle runs/demo/bundles/demo --source runs/demo/clip.mp4 --reference runs/demo/reference.png \\
      --center-crop --output runs/demo/clip.out.mp4 --events runs/demo/events.jsonl
  python -m camera --bundle bundles/omniglot --source 0 --reference a.png b.png --display
  python -m camera --bundle bundles/faces --source rtsp://10.0.0.7/live --gallery staff --roi 160,80,320,320 \\
      --every 2 --smooth 7 --events door.jsonl --reconnect-timeout -1

A live source is read by a capture thread that keeps only the newest frame: inference never falls behind the
camera, and the frames it skips are counted as dropped. A file or folder is processed frame by frame.

exit codes: 0 ended or stopped cleanly, 1 the stream was lost, 2 bad input at start, 3 backend unavailable
"""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m camera",
        description="Real-time verification on a camera, stream, video file or folder of frames: each frame is "
        "cropped, embedded and scored against reference images (or a gallery), and the decision is smoothed "
        "over the last frames. Writes an annotated video, JSON lines per frame and a summary.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--bundle", required=True, metavar="DIR", help="bundle folder written by python -m export.build")
    p.add_argument("--source", required=True, metavar="SRC", help="camera number, URI, video file or folder (below)")
    who = p.add_mutually_exclusive_group(required=True)
    who.add_argument("--reference", nargs="+", metavar="IMG", help="image(s) of the one identity to verify")
    who.add_argument("--gallery", metavar="FILE", help="a gallery saved with runtime.Gallery.save (identify mode)")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--roi", metavar="X,Y,W,H", help="verify only this region of each frame (pixels)")
    where.add_argument("--center-crop", action="store_true", help="verify the largest centered square")
    p.add_argument(
        "--threshold",
        type=float,
        help="decision threshold in the score's own units (default: the bundle's calibrated one, or the gallery's)",
    )
    p.add_argument("--every", type=int, default=1, metavar="N", help="process every Nth frame (default: %(default)s)")
    p.add_argument(
        "--smooth",
        type=int,
        default=5,
        metavar="K",
        help="majority vote over the last K processed frames (default: %(default)s; 1 = off)",
    )
    show = p.add_mutually_exclusive_group()
    show.add_argument("--headless", action="store_true", help="no window (the default)")
    show.add_argument("--display", action="store_true", help="show the annotated frames in a window (q/Esc quits)")
    p.add_argument("--output", metavar="VIDEO", help="write the annotated frames to a video (.mp4, .avi, .mkv)")
    p.add_argument("--events", metavar="FILE", help="JSON lines: one per processed frame, stream gaps, the summary")
    p.add_argument("--width", type=int, help="capture width for cameras (and csi://)")
    p.add_argument("--height", type=int, help="capture height for cameras (and csi://)")
    p.add_argument("--fps", type=float, help="capture rate for cameras; pace of --realtime and of --output")
    p.add_argument(
        "--loop",
        type=int,
        nargs="?",
        const=-1,
        default=0,
        metavar="N",
        help="files and folders: play N more times (no N: forever)",
    )
    p.add_argument("--realtime", action="store_true", help="pace a file like a live camera (and drop frames)")
    p.add_argument(
        "--reconnect-timeout",
        type=float,
        default=60.0,
        metavar="S",
        help="live sources: reopen a dropped stream for up to S seconds (default: %(default)s; "
        "0 = never, -1 = forever)",
    )
    p.add_argument("--max-frames", type=int, metavar="N", help="stop after N processed frames")
    p.add_argument("--backend", default="auto", choices=backend_names())
    p.add_argument("--precision", choices=PRECISIONS)
    p.add_argument("--threads", type=int, metavar="N", help="CPU threads for inference (default: the backend's)")
    p.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def _check_args(args: argparse.Namespace) -> None:
    for name in ("every", "smooth", "max_frames", "threads", "width", "height"):
        v = getattr(args, name)
        if v is not None and v < 1:
            raise CliError(EXIT_INPUT, f"--{name.replace('_', '-')} {v}: expected a positive integer")
    if args.fps is not None and args.fps <= 0:
        raise CliError(EXIT_INPUT, f"--fps {args.fps}: expected a positive number")
    for img in args.reference or []:
        if not Path(img).is_file():
            raise CliError(EXIT_INPUT, f"--reference {img}: no such file")


@contextlib.contextmanager
def _stop_on_signals(stop: threading.Event, why: list[str]):
    """SIGINT and SIGTERM end the loop at the next frame, so the sinks close properly."""

    def handler(signum, _frame):
        why.append(signal.Signals(signum).name)
        stop.set()

    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


def run(args: argparse.Namespace) -> tuple[int, dict[str, Any]]:
    from camera.capture import Backoff, LatestFrameReader, SequentialReader
    from camera.crop import Roi
    from camera.matcher import Matcher
    from camera.pipeline import LoopOptions, Sinks, run_loop
    from camera.sinks import EventLog, SinkError, VideoSink, Window
    from camera.sources import SourceError, open_source, parse_source
    from camera.stats import format_summary
    from runtime.gallery import GalleryError
    from runtime.preprocess import ImageReadError

    _check_args(args)
    try:
        roi = Roi.parse(args.roi) if args.roi else None
        spec = parse_source(args.source, args.width, args.height, args.fps)
    except (ValueError, SourceError) as e:
        raise CliError(EXIT_INPUT, str(e)) from None
    verifier = load_verifier(args.bundle, args.backend, args.precision, args.threads)
    try:
        if args.reference:
            matcher = Matcher.from_references(verifier, args.reference, args.threshold)
        else:
            matcher = Matcher.from_gallery(verifier, args.gallery, args.threshold)
    except (ImageReadError, GalleryError, ValueError) as e:
        raise CliError(EXIT_INPUT, str(e)) from None
    info = verifier.info()
    backend = f"{info['variant']} {info['precision']}"

    stop, why = threading.Event(), []
    events = video = window = reader = None
    try:
        source = open_source(spec)
        if args.output:
            video = VideoSink(args.output, args.fps or source.fps or 30.0)
        if args.events:
            events = EventLog(args.events)
        if args.display:
            window = Window(f"siamese-edge: {spec.uri}")
    except (SourceError, SinkError) as e:
        if events is not None:
            events.close()
        raise CliError(EXIT_INPUT, str(e)) from None

    threaded = spec.live or args.realtime
    if threaded:
        timeout = args.reconnect_timeout
        reader = LatestFrameReader(
            source,
            loop=args.loop,
            pace_fps=None if spec.live else (args.fps or source.fps or 30.0),
            backoff=Backoff(timeout=timeout),
            on_event=events.write if events is not None else None,
        )
    else:
        reader = SequentialReader(source, loop=args.loop)

    start = {
        "event": "start",
        "source": spec.uri,
        "source_kind": spec.kind,
        "live": spec.live,
        "realtime": bool(threaded),
        "bundle": info["bundle"],
        "backend": info["variant"],
        "precision": info["precision"],
        "device": info["device"],
        "mode": matcher.mode,
        "references": [str(p) for p in args.reference] if args.reference else None,
        "gallery": args.gallery,
        "score": verifier.spec.describe(),
        "threshold": matcher.gallery.spec.threshold,
        "threshold_source": matcher.gallery.spec.threshold_source,
    }
    print(f"camera: {spec.describe()} -> {info['bundle']} on {backend} ({matcher.describe()})", file=sys.stderr)
    if events is not None:
        events.write(start)

    bar = None
    if not args.no_progress:
        from tqdm import tqdm

        total = None
        if not threaded and args.loop == 0 and source.frame_count:
            total = -(-source.frame_count // args.every)
            if args.max_frames:
                total = min(total, args.max_frames)
        bar = tqdm(total=total, unit="frame", desc="camera", disable=None, dynamic_ncols=True)
    opts = LoopOptions(
        roi=roi,
        center=args.center_crop,
        every=args.every,
        smooth=args.smooth,
        backend=backend,
        max_frames=args.max_frames,
    )
    sinks = Sinks(video=video, events=events, window=window, on_frame=(lambda _e: bar.update(1)) if bar else None)
    summary: dict[str, Any] = {}
    error: str | None = None
    try:
        with _stop_on_signals(stop, why):
            reader.start()
            summary = run_loop(reader, matcher, opts, sinks, stop, why)
    except ValueError as e:  # an ROI that does not fit the frames
        error = str(e)
    finally:
        if bar is not None:
            bar.close()
        reader.close()
        if video is not None:
            video.close()
        if window is not None:
            window.close()
    if error is not None:
        if events is not None:
            events.write({"event": "error", "error": error})
            events.close()
        raise CliError(EXIT_INPUT, error)
    failure = reader.failure
    summary.update(
        {
            "event": "summary",
            "source": spec.uri,
            "backend": backend,
            "stopped_by": why[0] if why else ("stream lost" if failure else "end of source"),
            "failure": failure,
            "output": str(args.output) if args.output else None,
        }
    )
    if events is not None:
        events.write(summary)
        events.close()
    print(format_summary(summary), file=sys.stderr)
    return (EXIT_LOST if failure else EXIT_OK), summary


@explain_missing_extras()
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    with cli_warnings():
        try:
            code, summary = run(args)
        except CliError as e:
            print(f"error: {e}", file=sys.stderr)
            return e.code
    if args.json:
        print(json.dumps(summary, default=str))
    return code


if __name__ == "__main__":
    sys.exit(main())
