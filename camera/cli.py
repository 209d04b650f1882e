"""``python -m camera``: verify live streams, video files or folders of frames against references or a gallery.

Exit codes (for scripts and supervisors):
  0  every stream ended as expected (end of file) or the run was stopped (Ctrl-C, SIGTERM, --max-frames, q in
     the window); the summary was printed, the videos and the events file are complete
  1  a stream was lost mid-run and did not come back within --reconnect-timeout, or its capture failed (the
     other streams ran on to their end; the summary names the stream)
  2  bad input at start: a source that cannot be opened, a missing or tampered bundle, an unreadable
     reference image, a gallery of another bundle, a bad --detect spec, bad arguments, an output that is one of
     the inputs or cannot be written (one line on stderr)
  3  the backend asked for cannot run here
  4  a video file ended before the length its header gives (corrupt or cut short): the frames that could be read
     were verified, a warning names the file (1 wins when a stream was also lost)
  70 an unexpected error (a bug; --debug prints the traceback)
  130 interrupted while loading (Ctrl-C, SIGTERM); from the opening of the sources on, a signal stops the run at
      the next frame and it exits 0
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import re
import signal
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from camera.crop import Roi
from camera.detect import Detector
from camera.hysteresis import DEFAULT_HOLD
from camera.matcher import Matcher
from camera.pipeline import DEFAULT_MAX_BATCH
from camera.sinks import EventLog, VideoSink, Window
from camera.sources import FrameSource, SourceSpec, quiet_ffmpeg
from runtime import console
from runtime.backends.base import PRECISIONS, backend_names
from runtime.console import BOUNDARY_EXIT_CODES, CliError, cli_warnings, load_verifier, run_cli
from runtime.extras import explain_missing_extras

EXIT_OK, EXIT_LOST, EXIT_INPUT, EXIT_BACKEND = 0, 1, console.EXIT_INPUT, console.EXIT_BACKEND
EXIT_ENDED_EARLY = 4  # a video file ended before its known length

EXAMPLES = """
sources (jetson-utils' grammar; give --source several times, or a .streams file listing one a line):
  0  or  v4l2:///dev/video0       a USB/V4L2 camera            csi://0           a Jetson CSI camera (GStreamer)
  rtsp://user:pw@cam/stream       a network stream (rtsp, rtmp, http(s), udp)
  clip.mp4  or  file://clip.mp4   a video file (--loop to repeat it, --realtime to pace it like a camera)
  frames/                         a folder of images, in natural order
  cams.streams                    a text file listing sources, one a line (# comments), as Ultralytics reads it
  "videotestsrc ! videoconvert ! appsink"   a raw GStreamer pipeline (needs OpenCV built with GStreamer)

detectors (--detect; without one, each frame's --roi, --center-crop or whole frame is verified):
  haar:frontalface_default        OpenCV's bundled Haar face cascade (OpenCV 4.x wheels and JetPack)
  ink:?min_area=400               the largest object on thresholded ink (documents, drawings, cards)
  onnx:det.onnx?score=0.5         an ONNX detector: input 1x3xHxW, outputs boxes (Nx4, x1 y1 x2 y2) and scores (N)
  (every option: python -c "import camera.detect as d; print(d.__doc__)")

examples:
  python -m camera --bundle runs/demo/bundles/demo --source runs/demo/clip.mp4 --reference runs/demo/reference.png \\
      --center-crop --output runs/demo/clip.out.mp4 --events runs/demo/events.jsonl
  python -m camera --bundle bundles/omniglot --source 0 --reference a.png b.png --display
  python -m camera --bundle bundles/faces --source rtsp://10.0.0.7/live --gallery staff --roi 160,80,320,320 \\
      --every 2 --hold 5 --events door.jsonl --reconnect-timeout -1
  python -m camera --bundle bundles/faces --source rtsp://door/live --source rtsp://gate/live --source 0 \\
      --gallery staff --detect haar:frontalface_default --output runs/cams.mp4 --events runs/cams.jsonl

Each stream is read by its own capture thread: a live one keeps only its newest frame (inference never falls
behind the camera; the frames it skips are counted as dropped), a file or folder is processed frame by frame.
Each step takes a frame of every stream and embeds all their crops in one batched call. With several streams,
--output out.mp4 writes out.stream0.mp4, out.stream1.mp4, ... (an existing folder: DIR/stream0.mp4, ...),
--display shows a mosaic, and every event line names its stream ("stream": 0, 1, ...).

exit codes:
  0  every stream ended as expected, or the run was stopped (Ctrl-C, SIGTERM, --max-frames, q)
  1  a stream was lost (it stayed down past --reconnect-timeout) or its capture failed
  2  bad input at start (one line: a source, the bundle, a reference, arguments, an output that is an input)
  3  the backend cannot run here
  4  a video file ended before its known length (corrupt or cut short); a warning names it
{boundary}
     (from the opening of the sources on, Ctrl-C or SIGTERM stops the run at the next frame, closes the
     outputs and exits 0)
"""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m camera",
        description="Real-time verification on cameras, streams, video files or folders of frames: each frame is "
        "cropped (or its detections are), embedded and scored against reference images (or a gallery), and each "
        "stream's decision is smoothed with hysteresis. Writes annotated videos, JSON lines per frame, a summary.",
        epilog=EXAMPLES.format(boundary=BOUNDARY_EXIT_CODES),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--bundle", required=True, metavar="DIR", help="bundle folder written by python -m export.build")
    p.add_argument(
        "--source",
        required=True,
        action="append",
        metavar="SRC",
        help="camera number, URI, video file, folder or .streams list (below); repeat for several streams",
    )
    who = p.add_mutually_exclusive_group(required=True)
    who.add_argument("--reference", nargs="+", metavar="IMG", help="image(s) of the one identity to verify")
    who.add_argument("--gallery", metavar="FILE", help="a gallery saved with runtime.Gallery.save (identify mode)")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--detect", metavar="SPEC", help="a detector in front of the verifier (below)")
    where.add_argument("--roi", metavar="X,Y,W,H", help="verify only this region of each frame (pixels)")
    where.add_argument("--center-crop", action="store_true", help="verify the largest centered square")
    p.add_argument(
        "--threshold",
        type=float,
        help="decision threshold in the score's own units (default: the bundle's calibrated one, or the gallery's)",
    )
    p.add_argument(
        "--every",
        type=int,
        default=1,
        metavar="N",
        help="process every Nth frame of each stream (default: %(default)s)",
    )
    p.add_argument(
        "--hold",
        "--smooth",
        dest="hold",
        type=int,
        default=DEFAULT_HOLD,
        metavar="K",
        help="hysteresis: a verdict changes after K frames in a row near the threshold agree, or at once on a "
        "frame clearly beyond it or a score that jumped across the band (default: %(default)s; 1 = every "
        "frame's own decision)",
    )
    p.add_argument(
        "--margin",
        type=float,
        metavar="M",
        help="hysteresis: how far from the threshold (in the score's units) a score is clear (default: 5%% of the "
        "threshold)",
    )
    p.add_argument(
        "--max-batch",
        type=int,
        default=DEFAULT_MAX_BATCH,
        metavar="N",
        help="at most N crops per network call (default: %(default)s)",
    )
    show = p.add_mutually_exclusive_group()
    show.add_argument("--headless", action="store_true", help="no window (the default)")
    show.add_argument("--display", action="store_true", help="show the annotated frames in a window (q/Esc quits)")
    p.add_argument(
        "--output",
        metavar="VIDEO",
        help="write the annotated frames to a video (.mp4, .avi, .mkv); several streams: VIDEO's name + .streamN, "
        "or DIR/streamN.mp4 for an existing folder",
    )
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
    p.add_argument("--max-frames", type=int, metavar="N", help="stop each stream after N processed frames")
    p.add_argument("--backend", default="auto", choices=backend_names())
    p.add_argument("--precision", choices=PRECISIONS)
    p.add_argument("--threads", type=int, metavar="N", help="CPU threads for inference (default: the backend's)")
    p.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument(
        "--debug", action="store_true", help="print the traceback of an unexpected error; keep FFmpeg's own log lines"
    )
    return p


NEGATIVE_VALUE = re.compile(r"^-(\d|\.\d|inf|nan)", re.IGNORECASE)  # "-5,0,10,10", "-inf": argparse sees options
VALUE_OPTIONS = ("--roi", "--threshold", "--margin")


def attach_values(argv: list[str], options: tuple[str, ...] = VALUE_OPTIONS) -> list[str]:
    """``--roi -5,0,10,10`` -> ``--roi=-5,0,10,10``: argparse stops at a value that starts with '-' and is not a
    plain number ("expected one argument"); attached, the value reaches the check that says what is wrong with it."""
    out: list[str] = []
    i = 0
    while i < len(argv):
        if argv[i] in options and i + 1 < len(argv) and NEGATIVE_VALUE.match(argv[i + 1]):
            out.append(f"{argv[i]}={argv[i + 1]}")
            i += 2
            continue
        out.append(argv[i])
        i += 1
    return out


def _check_args(args: argparse.Namespace) -> None:
    for name in ("every", "hold", "max_batch", "max_frames", "threads", "width", "height"):
        v = getattr(args, name)
        if v is not None and v < 1:
            raise CliError(EXIT_INPUT, f"--{name.replace('_', '-')} {v}: expected a positive integer")
    if args.margin is not None and not 0 <= args.margin < math.inf:
        raise CliError(EXIT_INPUT, f"--margin {args.margin}: expected a finite score difference >= 0")
    if args.fps is not None and not 0 < args.fps < math.inf:
        raise CliError(EXIT_INPUT, f"--fps {args.fps}: expected a finite positive number")
    if not math.isfinite(args.reconnect_timeout):  # NaN would retry forever, unlike -1, which says so
        raise CliError(
            EXIT_INPUT, f"--reconnect-timeout {args.reconnect_timeout}: expected seconds (0 = never, -1 = forever)"
        )
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
            signal.signal(s, h if h is not None else signal.SIG_DFL)  # None: a handler not set from Python


@dataclass
class Setup:
    """Everything checked and loaded before a source is opened: a bad argument never leaves a file behind."""

    specs: list[SourceSpec]
    roi: Roi | None
    detector: Detector | None
    verifier: Any
    matcher: Matcher


def prepare(args: argparse.Namespace) -> Setup:
    """Check the arguments (outputs against inputs included), load the network and embed the references."""
    from camera.detect import load_detector
    from camera.outputs import check_outputs, input_files
    from camera.sinks import SinkError, stream_outputs
    from camera.sources import SourceError, parse_source
    from camera.streams import expand_sources
    from runtime.gallery import GalleryError
    from runtime.preprocess import ImageReadError

    _check_args(args)
    try:
        roi = Roi.parse(args.roi) if args.roi else None
        specs = [parse_source(t, args.width, args.height, args.fps) for t in expand_sources(args.source)]
        outputs = [("--output", p) for p in stream_outputs(args.output, len(specs))] if args.output else []
        outputs += [("--events", Path(args.events))] if args.events else []
        check_outputs(outputs, input_files(args.source, specs, args.reference or (), args.gallery, args.bundle))
        detector = load_detector(args.detect, args.threads) if args.detect else None
    except (ValueError, SourceError, SinkError) as e:  # DetectorError is a ValueError
        raise CliError(EXIT_INPUT, str(e)) from None
    verifier = load_verifier(args.bundle, args.backend, args.precision, args.threads)
    if args.threshold is not None:
        try:  # the score's own rule: finite, and a probability in [0, 1]
            verifier.spec.with_given_threshold(args.threshold, "--threshold")
        except ValueError as e:
            raise CliError(EXIT_INPUT, f"--threshold {args.threshold}: {e}") from None
    try:
        if args.reference:
            matcher = Matcher.from_references(verifier, args.reference, args.threshold)
        else:
            matcher = Matcher.from_gallery(verifier, args.gallery, args.threshold)
    except (ImageReadError, GalleryError, ValueError) as e:
        raise CliError(EXIT_INPUT, str(e)) from None
    return Setup(specs, roi, detector, verifier, matcher)


def run(args: argparse.Namespace) -> tuple[int, dict[str, Any]]:
    """The whole run; (exit code, summary). A signal from the opening of the sources on stops it at the next frame."""
    setup = prepare(args)
    stop, why = threading.Event(), []
    with _stop_on_signals(stop, why):
        return _stream(args, setup, stop, why)


@dataclass
class Opened:
    sources: list[FrameSource]
    videos: list[VideoSink]
    events: EventLog | None
    window: Window | None


def _open(args: argparse.Namespace, specs: list[SourceSpec]) -> Opened:
    """The sources, then the sinks; on a failure everything opened so far is closed and it is exit 2."""
    from camera.sinks import EventLog, SinkError, VideoSink, Window, stream_outputs
    from camera.sources import SourceError, open_source

    opened = Opened([], [], None, None)
    try:
        for spec in specs:
            opened.sources.append(open_source(spec))
        if args.output:
            for path, source in zip(stream_outputs(args.output, len(specs)), opened.sources):
                opened.videos.append(VideoSink(path, args.fps or source.fps or 30.0))
        if args.events:
            opened.events = EventLog(args.events)
        if args.display:
            opened.window = Window(f"siamese-edge: {specs[0].uri}" + (f" +{len(specs) - 1}" if len(specs) > 1 else ""))
    except (SourceError, SinkError) as e:
        for source in opened.sources:
            source.close()
        if opened.events is not None:
            opened.events.close()
        raise CliError(EXIT_INPUT, str(e)) from None
    return opened


def _start_event(args: argparse.Namespace, setup: Setup, threaded: list[bool]) -> dict[str, Any]:
    info, matcher, specs = setup.verifier.info(), setup.matcher, setup.specs
    described = [
        {"stream": i, "source": spec.uri, "source_kind": spec.kind, "live": spec.live, "realtime": t}
        for i, (spec, t) in enumerate(zip(specs, threaded))
    ]
    return {
        "event": "start",
        **({k: v for k, v in described[0].items() if k != "stream"} if len(specs) == 1 else {}),
        "streams": described,
        "bundle": info["bundle"],
        "backend": info["variant"],
        "precision": info["precision"],
        "device": info["device"],
        "mode": matcher.mode,
        "references": [str(p) for p in args.reference] if args.reference else None,
        "gallery": args.gallery,
        "detector": args.detect,
        "score": setup.verifier.spec.describe(),
        "threshold": matcher.gallery.spec.threshold,
        "threshold_source": matcher.gallery.spec.threshold_source,
    }


def _progress_bar(args: argparse.Namespace, sources: list[FrameSource], threaded: list[bool]):
    if args.no_progress:
        return None
    from tqdm import tqdm

    total = None
    counts = [s.frame_count for s in sources]
    if not any(threaded) and args.loop == 0 and all(counts):
        per = [-(-c // args.every) for c in counts]
        total = sum(min(n, args.max_frames) if args.max_frames else n for n in per)
    return tqdm(total=total, unit="frame", desc="camera", disable=None, dynamic_ncols=True)


def _stream(args: argparse.Namespace, setup: Setup, stop: threading.Event, why: list[str]) -> tuple[int, dict]:
    """Open, run the loop, close everything, report; (exit code, summary)."""
    from camera.capture import Backoff
    from camera.pipeline import LoopOptions, Sinks, frame_preparer, run_loop
    from camera.stats import format_summary, source_warnings
    from camera.streams import make_reader

    specs, wake = setup.specs, threading.Event()
    opened = _open(args, specs)
    events, videos = opened.events, opened.videos

    def on_event(i: int):
        if events is None:
            return None
        return lambda e: events.write({**e, "stream": i})

    same_names = {k: getattr(args, k) for k in ("every", "hold", "margin", "max_frames", "max_batch")}
    info = setup.verifier.info()
    backend = f"{info['variant']} {info['precision']}"
    opts = LoopOptions(roi=setup.roi, center=args.center_crop, backend=backend, **same_names)
    prepare = frame_preparer(setup.matcher, opts, setup.detector)
    readers = [
        make_reader(
            source,
            loop=args.loop,
            realtime=args.realtime,
            pace_fps=args.fps,
            backoff=Backoff(timeout=args.reconnect_timeout),
            on_event=on_event(i),
            wake=wake,
            prepare=prepare,
        )
        for i, source in enumerate(opened.sources)
    ]
    threaded = [spec.live or args.realtime for spec in specs]
    what = specs[0].describe() if len(specs) == 1 else f"{len(specs)} streams"
    print(f"camera: {what} -> {info['bundle']} on {backend} ({setup.matcher.describe()})", file=sys.stderr)
    if events is not None:
        events.write(_start_event(args, setup, threaded))

    bar = _progress_bar(args, opened.sources, threaded)
    on_frame = (lambda _e: bar.update(1)) if bar else None
    sinks = Sinks(videos=videos, events=events, window=opened.window, on_frame=on_frame)
    summary: dict[str, Any] = {}
    error: str | None = None
    try:
        for reader in readers:
            reader.start()
        summary = run_loop(readers, setup.matcher, opts, sinks, stop, why, detector=setup.detector, wake=wake)
    except ValueError as e:  # an ROI that does not fit the frames
        error = str(e)
    finally:
        if bar is not None:
            bar.close()
        for reader in readers:
            reader.close()
        for video in videos:
            video.close()
        if opened.window is not None:
            opened.window.close()
    if error is not None:
        if events is not None:
            events.write({"event": "error", "error": error})
            events.close()
        raise CliError(EXIT_INPUT, error)
    failures = [r.failure for r in readers if r.failure]
    outputs = [str(v.path) for v in videos]
    summary.update(
        {
            "event": "summary",
            "source": specs[0].uri if len(specs) == 1 else [s.uri for s in specs],
            "backend": backend,
            "failure": "; ".join(failures) or None,
            "output": (outputs[0] if len(outputs) == 1 else outputs) if outputs else None,
        }
    )
    warnings = source_warnings(summary)
    if events is not None:
        for w in warnings:
            events.write({"event": "warning", "warning": w})
        events.write(summary)
        events.close()
    for w in warnings:
        print(f"warning: {w}", file=sys.stderr)
    print(format_summary(summary), file=sys.stderr)
    return _exit_code(failures, summary), summary


def _exit_code(failures: list[str], summary: dict[str, Any]) -> int:
    if failures:
        return EXIT_LOST
    return EXIT_ENDED_EARLY if summary.get("frames_missing") else EXIT_OK


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(attach_values(sys.argv[1:] if argv is None else list(argv)))
    if not args.debug:
        quiet_ffmpeg()

    @explain_missing_extras()
    def body() -> int:
        with cli_warnings():
            try:
                code, summary = run(args)
            except CliError as e:
                print(f"error: {e}", file=sys.stderr)
                return e.code
        if args.json:
            print(json.dumps(summary, default=str))
        return code

    return run_cli(body, debug=args.debug)


if __name__ == "__main__":
    sys.exit(main())
