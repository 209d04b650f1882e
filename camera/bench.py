"""``python -m camera.bench --bundle DIR [--min-fps F] ...``: end-to-end camera speed on a 640x480, 30 fps clip.

For each bundle, the whole ``python -m camera`` path (decode, crop, preprocess, embed, score, smooth, event
lines) runs headless over the same test clip (``--clip``, made by ``python -m camera.clip``) twice:

* **file**: every frame, as fast as the machine goes: the frames per second this backend sustains end to end,
  with latency p50/p99 (read to decision);
* **live**: the clip paced at 30 fps through the newest-frame capture thread, as a camera delivers it: frames
  processed and dropped, and the latency a user sees.

The decisions are scored against the clip's truth (reference segments matched, other segments rejected).

With ``--streams N`` (N > 1) each bundle and backend also runs N copies of the clip, each as a stream of its own:

* **batched**: one ``python -m camera`` process with N ``--source``s, every frame of every stream (file mode):
  per-stream FPS, latency p50/p99, drops, and the batched calls' mean size; and the same paced at 30 fps
  (``--realtime``), where no stream may fall behind the clip's rate;
* **separate**: N ``python -m camera`` processes started together, one stream each;
* their throughputs (frames of all streams per second) and the ratio batched / separate, three ways:
  ``steady``, the one the target is judged on: frames decided while every stream of the run was being processed,
  per second of that window (from the events' decision times), so neither side counts time when another process
  was still starting up (loading a model costs CPU the running ones then lack) or when some streams had ended;
  ``loop``: from the first stream's start to the last frame (start-up of the later processes overlaps it); and
  ``wall``: from launching the processes to the last exit, start-up included;
* the CPU each side spent in its loops per frame (every thread: decoding, preprocessing, inference): what the
  ratio would be on cores no one else uses, and how far apart the two are however busy the machine is.

Both sides run the same clip, bundle, backend and inference threads (the backend's, or ``--threads``), on the CPUs
this process may use (the report gives them and the load average: on a shared machine the FPS vary from run to run,
the ratios less).

Writes ``camera_bench.txt`` (the table, also printed) and ``camera_bench.json`` into ``--out``, atomically.
Each bundle runs on every CPU backend present (``--backends``). Targets: ``--min-fps`` per bundle, compared with
the file-mode FPS of its fastest backend (issue 6); with ``--streams``, ``--min-stream-fps`` for the slowest batched
stream and ``--min-ratio`` for the steady ratio (issue 17), on the fastest backend; ``--check`` exits 1 when one is
missed.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from camera.score import score_events
from runtime.backends.base import backend_names, cpu_backends
from runtime.console import BOUNDARY_EXIT_CODES, run_cli
from runtime.extras import explain_missing_extras
from runtime.fileio import check_writable_dir, write_json_atomic, write_text_atomic
from runtime.machine import cpu_flags, cpu_name, usable_cpus

BENCH_SCHEMA = 1
REPORT_FILES = ("camera_bench.txt", "camera_bench.json")


def bench_clip_files(clip: str | Path) -> tuple[Path, Path, Path]:
    """(clip, reference image, truth json) of a clip ``python -m camera.clip`` wrote; ValueError naming what
    is missing and the command that makes it."""
    clip = Path(clip)
    ref, truth = clip.with_suffix(".reference.png"), clip.with_suffix(".truth.json")
    missing = [str(p) for p in (clip, ref, truth) if not p.is_file()]
    if missing:
        raise ValueError(
            f"--clip {clip}: {', '.join(missing)} not found; make the clip with: "
            f"python -m train.clipmaker --data digits --out clip-images, then python -m camera.clip --reference "
            f"clip-images/reference.png --positives clip-images/positive_*.png --negatives clip-images/negative_*.png "
            f"--out {clip}"
        )
    return clip, ref, truth


def run_camera(bundle: str, clip: Path, ref: Path, events: Path, live: bool, extra: list[str]) -> dict[str, Any]:
    from camera.cli import EXIT_OK, build_parser, run

    argv = ["--bundle", bundle, "--source", str(clip), "--reference", str(ref), "--center-crop", "--headless"]
    argv += ["--events", str(events), "--no-progress", *extra]
    if live:
        argv += ["--realtime"]
    code, summary = run(build_parser().parse_args(argv))
    if code != EXIT_OK:
        raise SystemExit(f"camera.bench: the camera run on {bundle} ended with exit code {code}")
    return summary


def _backend_args(backend: str, threads: int | None) -> list[str]:
    return ["--backend", backend, *(["--threads", str(threads)] if threads else [])]


def bench_bundle(
    bundle: str,
    backend: str,
    min_fps: float | None,
    clip: Path,
    ref: Path,
    truth: Path,
    out: Path,
    threads: int | None = None,
):
    name = Path(bundle).name
    row: dict[str, Any] = {"bundle": name, "bundle_dir": bundle, "min_fps": min_fps}
    for mode in ("file", "live"):
        events = out / f"camera_bench_{name}_{backend}_{mode}.jsonl"
        s = run_camera(bundle, clip, ref, events, mode == "live", _backend_args(backend, threads))
        row["backend"] = s["backend"]
        row[mode] = {
            k: s[k]
            for k in ("fps", "latency_ms_p50", "latency_ms_p99", "frames_read", "frames_processed", "frames_dropped")
        }
        scored = score_events(truth, events)
        row[mode].update({k: scored[k] for k in ("reference_matched", "others_rejected")})
    return row


def _camera_processes(argvs: list[list[str]]) -> tuple[float, list[dict[str, Any]]]:
    """Start ``python -m camera`` once per argv, all at once; (wall seconds to the last exit, their summaries)."""
    import camera

    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(
            [str(Path(camera.__file__).resolve().parents[1]), os.environ.get("PYTHONPATH", "")]
        ),
    }
    t0 = time.monotonic()
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "camera", *a], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
        )
        for a in argvs
    ]
    outs = [p.communicate() for p in procs]
    wall = time.monotonic() - t0
    for p, (_, err) in zip(procs, outs):
        if p.returncode != 0:
            raise SystemExit(
                f"camera.bench: python -m camera ended with exit code {p.returncode}: {err.strip()[-300:]}"
            )
    return wall, [json.loads(out.strip().splitlines()[-1]) for out, _ in outs]


def _loop_window(summaries: list[dict[str, Any]]) -> float:
    """Seconds from the earliest start of a processing loop to the latest end among the summaries."""
    return max(s["started"] + s["elapsed_s"] for s in summaries) - min(s["started"] for s in summaries)


def decision_times(events: Path) -> dict[int, list[float]]:
    """Per stream, the wall-clock times its frames were decided (captured + latency), from an events file."""
    out: dict[int, list[float]] = {}
    for line in events.read_text(encoding="utf-8").splitlines():
        e = json.loads(line)
        if e.get("event") == "frame":
            out.setdefault(int(e.get("stream", 0)), []).append(e["time"] + e["latency_ms"] / 1000.0)
    return out


def steady_fps(streams: list[list[float]]) -> tuple[float | None, float]:
    """(frames decided while every stream was running, per second; that window in seconds): the window runs from the
    last stream's first decision to the first stream's last. FPS None when the streams never all ran at once."""
    if not streams or not all(streams):
        return None, 0.0
    lo, hi = max(min(t) for t in streams), min(max(t) for t in streams)
    if hi <= lo:
        return None, 0.0
    return sum(sum(lo <= x <= hi for x in t) for t in streams) / (hi - lo), hi - lo


def _streams_view(summary: dict[str, Any]) -> list[dict[str, Any]]:
    keep = ("stream", "fps", "latency_ms_p50", "latency_ms_p99", "frames_read", "frames_processed", "frames_dropped")
    return [{k: p[k] for k in keep} for p in summary.get("streams", [summary])]


def bench_streams(
    bundle: str, backend: str, n: int, clip: Path, ref: Path, truth: Path, out: Path, threads: int | None = None
) -> dict[str, Any]:
    """N copies of the clip: one batched process (file mode, then paced) against N separate processes."""
    name = Path(bundle).name
    base = ["--bundle", bundle, "--reference", str(ref), "--center-crop", "--headless", "--no-progress", "--json"]
    base += _backend_args(backend, threads)
    sources = [a for _ in range(n) for a in ("--source", str(clip))]
    events = out / f"camera_bench_{name}_{backend}_{n}streams.jsonl"
    batched_wall, (batched,) = _camera_processes([[*base, *sources, "--events", str(events)]])
    _, (live,) = _camera_processes([[*base, *sources, "--realtime"]])
    sep_events = [out / f"camera_bench_{name}_{backend}_{n}streams_separate{i}.jsonl" for i in range(n)]
    separate_wall, separate = _camera_processes(
        [[*base, "--source", str(clip), "--events", str(e)] for e in sep_events]
    )
    frames = batched["frames_processed"]
    sep_frames = sum(s["frames_processed"] for s in separate)
    (steady_b, window_b), (steady_s, window_s) = (
        steady_fps(list(decision_times(events).values())),
        steady_fps([decision_times(e).get(0, []) for e in sep_events]),
    )
    steady = {"batched": steady_b, "separate": steady_s}
    loop = {"batched": frames / _loop_window([batched]), "separate": sep_frames / _loop_window(separate)}
    wall = {"batched": frames / batched_wall, "separate": sep_frames / separate_wall}
    cpu = {
        "batched": 1000.0 * batched["cpu_s"] / frames,
        "separate": 1000.0 * sum(s["cpu_s"] for s in separate) / sep_frames,
    }
    accuracy = [score_events(truth, events, stream=i)["accuracy"] for i in range(n)]
    live_view = _streams_view(live)
    cost = stage_costs(bundle, backend, ref, clip, n, threads)
    # no pipeline on these CPUs goes faster than decoding and preprocessing every frame, with nothing else running
    cpus = usable_cpus()
    stages_ms = cost["ms_per_frame"]["decode"] + cost["ms_per_frame"]["prepare"]
    cost["ceiling_fps"] = round(cpus * 1000.0 / stages_ms, 1)
    cost["ceiling_ratio"] = None if not steady_s else round(cost["ceiling_fps"] / steady_s, 2)
    return {
        "streams": n,
        "cost": cost,
        "batched": {
            "per_stream": _streams_view(batched),
            "min_fps": min(p["fps"] for p in batched["streams"]),
            "every_frame": all(p["frames_processed"] == p["frames_read"] for p in batched["streams"]),
            "batch": batched["batch"],
            "accuracy_per_stream": accuracy,
        },
        "live": {
            "per_stream": live_view,
            "min_fps": min(p["fps"] for p in live_view),
            "dropped": sum(p["frames_dropped"] for p in live_view),
        },
        "separate": {"per_process": _streams_view({"streams": separate})},
        "throughput_fps": {
            "steady": {k: None if v is None else round(v, 1) for k, v in steady.items()},
            "loop": {k: round(v, 1) for k, v in loop.items()},
            "wall": {k: round(v, 1) for k, v in wall.items()},
        },
        "steady_window_s": {"batched": round(window_b, 3), "separate": round(window_s, 3)},
        "cpu_ms_per_frame": {k: round(v, 3) for k, v in cpu.items()},
        "ratio": {
            "steady": None if None in steady.values() else round(steady["batched"] / steady["separate"], 2),
            "loop": round(loop["batched"] / loop["separate"], 2),
            "wall": round(wall["batched"] / wall["separate"], 2),
            "cpu": round(cpu["separate"] / cpu["batched"], 2),
        },
    }


def stage_costs(bundle: str, backend: str, ref: Path, clip: Path, n: int, threads: int | None) -> dict[str, Any]:
    """``camera.cost.cost_split`` on the backend and precision the camera runs chose: what batching can reach."""
    from camera.cost import cost_split
    from camera.matcher import Matcher
    from runtime.console import load_verifier

    verifier = load_verifier(bundle, backend, None, threads)
    return cost_split(Matcher.from_references(verifier, [ref]), clip, n)


def judge(results: list[dict[str, Any]]) -> None:
    """Each bundle's target is judged on its fastest backend (file mode): "on the best CPU backend"."""
    for r in results:
        best = max((o["file"]["fps"] for o in results if o["bundle_dir"] == r["bundle_dir"]), default=0.0)
        r["best"] = r["file"]["fps"] == best
        r["met"] = None if r["min_fps"] is None else bool(best >= r["min_fps"])
        m = r.get("multi")
        if m is not None:
            fps_ok = None if m["min_stream_fps"] is None else bool(m["batched"]["min_fps"] >= m["min_stream_fps"])
            ratio = m["ratio"]["steady"]
            ratio_ok = None if m["min_ratio"] is None else ratio is not None and ratio >= m["min_ratio"]
            m["met"] = {"stream_fps": fps_ok, "ratio": ratio_ok}


def format_table(report: dict[str, Any]) -> str:
    head = (
        f"{'bundle':<12} {'backend':<22} {'mode':<5} {'FPS':>7} {'p50 ms':>8} {'p99 ms':>8} "
        f"{'read':>5} {'done':>5} {'drop':>5} {'ref ok':>7} {'other ok':>8}  target"
    )
    lines = [
        f"camera.bench: {report['clip']['frames']} frames 640x480 @ {report['clip']['fps']:g} fps, "
        f"{report['machine']['cpu']} ({report['machine']['cpus']} cpus, load average at the end "
        f"{report['machine']['load_avg'][0]:.1f}), inference threads: {report.get('threads') or 'the backend default'}",
        f"CPU flags: {' '.join(report['machine'].get('cpu_flags') or ['unknown'])}",
        head,
        "-" * len(head),
    ]

    def pct(v: float | None) -> str:
        return "-" if v is None else f"{100 * v:.1f}%"

    for r in report["results"]:
        for mode in ("file", "live"):
            m = r[mode]
            target = ""
            if mode == "file" and r["min_fps"] is not None and r["best"]:
                target = f">= {r['min_fps']:g} FPS (best backend): {'met' if r['met'] else 'MISSED'}"
            lines.append(
                f"{r['bundle']:<12} {r['backend']:<22} {mode:<5} {m['fps']:>7.1f} {m['latency_ms_p50']:>8.2f} "
                f"{m['latency_ms_p99']:>8.2f} {m['frames_read']:>5} {m['frames_processed']:>5} "
                f"{m['frames_dropped']:>5} {pct(m['reference_matched']):>7} {pct(m['others_rejected']):>8}  {target}"
            )
    for r in report["results"]:
        m = r.get("multi")
        if m is None:
            continue
        b, lv, met = m["batched"], m["live"], m.get("met", {})

        def verdict(key: str, target: float | None, best: bool = r["best"], met: dict = met) -> str:
            if target is None or not best:
                return ""
            return f" (target {target:g}: {'met' if met.get(key) else 'MISSED'})"

        lines.append(
            f"{r['bundle']} {r['backend']}, {m['streams']} streams batched: slowest stream {b['min_fps']:.1f} FPS"
            + verdict("stream_fps", m["min_stream_fps"])
            + f", every frame {'yes' if b['every_frame'] else 'NO'}, mean batch {b['batch']['mean_size']}, "
            f"p50 {max(x['latency_ms_p50'] for x in b['per_stream']):.1f} ms; paced at the clip's rate: slowest "
            f"{lv['min_fps']:.1f} FPS, {lv['dropped']} dropped"
        )
        t, q, c = m["throughput_fps"], m["ratio"], m["cpu_ms_per_frame"]

        def fps(v: float | None) -> str:
            return "-" if v is None else f"{v:.0f}"

        lines.append(
            f"{'':12} throughput while all streams ran: {fps(t['steady']['batched'])} FPS batched vs "
            f"{fps(t['steady']['separate'])} FPS in {m['streams']} processes: "
            + ("-" if q["steady"] is None else f"{q['steady']:.2f}x")
            + verdict("ratio", m["min_ratio"])
            + f"; loop {q['loop']:.2f}x, wall (start-up) {q['wall']:.2f}x; CPU per frame {c['batched']:.2f} vs "
            f"{c['separate']:.2f} ms, {q['cpu']:.2f}x"
        )
        k = m["cost"]
        ms = k["ms_per_frame"]
        call_n = ms[f"call_batch_{m['streams']}"]
        lines.append(
            f"{'':12} a frame's stages on one thread: decode {ms['decode']:.2f} ms, crop+preprocess "
            f"{ms['prepare']:.2f} ms, network call + decision {ms['call_batch_1']:.2f} ms at batch 1, "
            f"{call_n:.2f} ms at batch {m['streams']} (network {100 * k['network_share']:.0f}% "
            f"of a frame): batching can reach {k['ratio']['expected']:.2f}x, {k['ratio']['free_call']:.2f}x if the "
            "call cost nothing"
        )
        lines.append(
            f"{'':12} decoding and preprocessing alone on these {report['machine']['cpus_used_count']} CPUs: at "
            f"most {k['ceiling_fps']:.0f} FPS, "
            + ("-" if k["ceiling_ratio"] is None else f"{k['ceiling_ratio']:.2f}x")
            + f" the {m['streams']} processes (no pipeline can pass it)"
        )
    for b, why in report.get("absent", {}).items():
        lines.append(f"not run: {b}: {why}")
    lines.append("file: every frame as fast as possible; live: paced at the clip's rate, newest frame only")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m camera.bench",
        description="End-to-end FPS, latency p50/p99 and dropped frames of python -m camera on a 640x480, 30 fps clip.",
        epilog=f"""exit codes:
  0  measured (and, with --check, every target met)
  1  --check: a target was missed
  2  bad input: the clip's files, a bundle, arguments, an --out that cannot be written or that holds an input
{BOUNDARY_EXIT_CODES}""",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--bundle", action="append", required=True, metavar="DIR", help="a bundle (repeat for several)")
    p.add_argument(
        "--min-fps",
        action="append",
        type=float,
        metavar="F",
        help="target FPS for the bundle at the same position (repeat; bundles after the last have none)",
    )
    p.add_argument(
        "--clip",
        required=True,
        metavar="CLIP.mp4",
        help="a test clip from python -m camera.clip (its .reference.png and .truth.json beside it)",
    )
    p.add_argument(
        "--backends",
        nargs="+",
        default=list(cpu_backends()),
        choices=backend_names(),
        help="backends to run each bundle on; absent ones are listed (default: %(default)s)",
    )
    p.add_argument(
        "--streams",
        action="append",
        type=int,
        metavar="N",
        help="for the bundle at the same position (repeat): also run N copies of the clip as N streams, batched in "
        "one process against N processes (default: 1, none)",
    )
    p.add_argument(
        "--min-stream-fps",
        action="append",
        type=float,
        metavar="F",
        help="for the bundle at the same position (repeat): target FPS of its slowest batched stream",
    )
    p.add_argument(
        "--min-ratio",
        action="append",
        type=float,
        metavar="R",
        help="for the bundle at the same position (repeat): target throughput ratio, batched / separate, while every "
        "stream runs (steady)",
    )
    p.add_argument(
        "--threads",
        type=int,
        metavar="N",
        help="inference threads of every camera run, batched and separate alike (default: the backend's)",
    )
    p.add_argument("--out", default="runs/bench", help="where camera_bench.{txt,json} go (default: %(default)s)")
    p.add_argument(
        "--check", action="store_true", help="exit 1 when a target (--min-fps, --min-stream-fps, --min-ratio) is missed"
    )
    p.add_argument("--json", action="store_true", help="print the JSON report instead of the table")
    p.add_argument("--debug", action="store_true", help="print the traceback of an unexpected error")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run_cli(lambda: _main(args, argv), debug=args.debug, what="the report was not written")


@explain_missing_extras()
def _main(args: argparse.Namespace, argv: list[str] | None) -> int:
    from camera.clip import ClipTruth
    from camera.outputs import check_outputs, input_files
    from camera.sinks import SinkError
    from camera.sources import parse_source
    from runtime.console import EXIT_BACKEND, CliError

    for option in ("min_fps", "streams", "min_stream_fps", "min_ratio"):
        given = getattr(args, option) or []
        if len(given) > len(args.bundle):
            flag = "--" + option.replace("_", "-")
            build_parser().error(f"{len(given)} {flag} for {len(args.bundle)} --bundle: at most one per bundle")
    if args.threads is not None and args.threads < 1:
        build_parser().error(f"--threads {args.threads}: expected 1 or more")
    if any(n < 1 for n in args.streams or []):
        build_parser().error(f"--streams {min(args.streams)}: expected 1 or more")

    def at(option: str, i: int) -> Any:
        given = getattr(args, option) or []
        return given[i] if i < len(given) else None

    out = Path(args.out)
    try:
        clip, ref, truth = bench_clip_files(args.clip)
        check_writable_dir(out, "--out")
        inputs = input_files([], [parse_source(str(clip))], [str(ref), str(truth)])
        for bundle in args.bundle:
            inputs |= input_files([], [], bundle=bundle)
        check_outputs([("--out", out / name) for name in REPORT_FILES], inputs)
    except (ValueError, OSError, SinkError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    t = ClipTruth.load(truth)
    results: list[dict[str, Any]] = []
    absent: dict[str, str] = {}
    for i, bundle in enumerate(args.bundle):
        for b in args.backends:
            try:
                row = bench_bundle(bundle, b, at("min_fps", i), clip, ref, truth, out, args.threads)
                if (at("streams", i) or 1) > 1:
                    row["multi"] = {
                        **bench_streams(bundle, b, at("streams", i), clip, ref, truth, out, args.threads),
                        "min_stream_fps": at("min_stream_fps", i),
                        "min_ratio": at("min_ratio", i),
                    }
                results.append(row)
            except CliError as e:
                if e.code != EXIT_BACKEND:
                    print(f"error: {e}", file=sys.stderr)
                    return e.code
                absent[b] = str(e)
    judge(results)
    report = {
        "schema": BENCH_SCHEMA,
        "command": " ".join([Path(sys.executable).name, "-m", "camera.bench", *(argv or sys.argv[1:])]),
        "machine": {
            "cpu": cpu_name(),
            "cpus": os.cpu_count(),
            "cpus_used": sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
            "cpus_used_count": usable_cpus(),
            "cpu_flags": cpu_flags(),
            "load_avg": list(os.getloadavg()),
        },
        "threads": args.threads,
        "clip": {"path": str(clip), "frames": t.frames, "fps": t.fps, "size": list(t.size)},
        "results": results,
        "absent": absent,
    }
    table = format_table(report)
    write_text_atomic(out / REPORT_FILES[0], table + "\n")
    write_json_atomic(out / REPORT_FILES[1], report)
    print(json.dumps(report, indent=2) if args.json else table)
    missed = [r for r in results if r["met"] is False]
    missed += [r for r in results if r["best"] and False in r.get("multi", {}).get("met", {}).values()]
    if args.check and missed:
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
