"""python -m camera as a hostile user drives it (issue 15's camera cases), each reproduced on real files: clips
written with OpenCV and then damaged (bytes overwritten in the middle, cut in half), images that are not images,
links to the inputs, a read-only folder, and the MJPEG test server rebooting.

Asserted: no output ever overwrites an input; a video that ends before its known length is a warning and exit 4,
a folder's unreadable images are counted and keep the other frames' numbers; the reconnect loop uses its whole
timeout; bad thresholds and ROIs are one line and exit 2 before any source is opened; FFmpeg's own lines stay out
of the output; an unexpected error is one line and exit 70; --help lists every exit code.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from mjpeg_server import MjpegServer
from quick_models import quick_digits_bundle
from test_camera import read_events

from camera.capture import Backoff
from camera.cli import EXIT_ENDED_EARLY, EXIT_INPUT, EXIT_LOST, EXIT_OK, main
from runtime.console import EXIT_INTERNAL

ROOT = Path(__file__).resolve().parents[1]
FRAMES, SIZE = 100, (160, 120)


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> Path:
    return quick_digits_bundle(tmp_path_factory)


def _write_clip(path: Path, fourcc: str) -> Path:
    rng = np.random.default_rng(7)
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), 30, SIZE)
    for i in range(FRAMES):
        frame = rng.integers(0, 60, (SIZE[1], SIZE[0], 3), dtype=np.uint8)
        cv2.putText(frame, str(i), (30, 80), cv2.FONT_HERSHEY_SIMPLEX, 2, (255, 255, 255), 4)
        w.write(frame)
    w.release()
    return path


@pytest.fixture(scope="module")
def media(tmp_path_factory) -> dict[str, Path]:
    """A 100-frame .mp4 and .avi, a reference image, the .mp4 with 4 kB in its middle overwritten, the .avi and
    the .mp4 cut in half."""
    d = tmp_path_factory.mktemp("media")
    mp4, avi = _write_clip(d / "clip.mp4", "mp4v"), _write_clip(d / "clip.avi", "MJPG")
    cap = cv2.VideoCapture(str(mp4))
    cv2.imwrite(str(d / "reference.png"), cap.read()[1])
    cap.release()
    data = bytearray(mp4.read_bytes())
    mid = len(data) // 2
    data[mid : mid + 4000] = np.random.default_rng(1).integers(0, 256, 4000, dtype=np.uint8).tobytes()
    (d / "damaged.mp4").write_bytes(bytes(data))
    (d / "cut.avi").write_bytes(avi.read_bytes()[: avi.stat().st_size // 2])
    (d / "cut.mp4").write_bytes(mp4.read_bytes()[: mp4.stat().st_size // 2])
    return {p.stem if p.suffix != ".avi" else p.stem + "_avi": p for p in d.iterdir()}


def base(bundle: Path, source: Path | str, reference: Path) -> list[str]:
    return ["--bundle", str(bundle), "--source", str(source), "--reference", str(reference), "--no-progress"]


def one_error_line(capsys) -> str:
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and err[0].startswith("error: "), err
    return err[0]


def read_only_folder(tmp_path: Path) -> Path:
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    return Path("/sys") if os.access(ro, os.W_OK) else ro  # root writes anywhere; sysfs is read-only for root too


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# -- 1. no output may be one of the inputs --


def test_an_output_that_is_an_input_is_refused_before_anything_is_written(bundle, media, tmp_path, capsys):
    clip, reference = media["clip"], media["reference"]
    folder = tmp_path / "frames"
    folder.mkdir()
    shutil.copy(reference, folder / "f0.png")
    listing = tmp_path / "cams.streams"
    listing.write_text(f"{clip}\n")
    (tmp_path / "ref-link.png").symlink_to(reference)
    os.link(clip, tmp_path / "clip-hardlink.mp4")
    manifest = bundle / "manifest.json"
    guarded = [clip, reference, folder / "f0.png", listing, manifest]
    before = {p: digest(p) for p in guarded}
    cases = [
        (base(bundle, clip, reference) + ["--output", str(clip)], "is --source"),
        (base(bundle, clip, reference) + ["--events", str(reference)], "is a --reference image"),
        (base(bundle, clip, reference) + ["--events", str(tmp_path / "ref-link.png")], "is a --reference image"),
        (base(bundle, clip, reference) + ["--output", str(tmp_path / "clip-hardlink.mp4")], "is --source"),
        (base(bundle, listing, reference) + ["--output", str(clip)], "is --source"),
        (base(bundle, listing, reference) + ["--events", str(listing)], "is a --source list"),
        (base(bundle, folder, reference) + ["--events", str(folder / "f0.png")], "is a frame of --source"),
        (base(bundle, clip, reference) + ["--events", str(manifest)], "is a file of --bundle"),
        (
            ["--bundle", str(bundle), "--source", str(clip), "--gallery", str(tmp_path / "staff")]
            + ["--events", str(tmp_path / "staff.json")],
            "is a file of --gallery",
        ),
        (
            base(bundle, clip, reference) + ["--output", str(tmp_path / "o.mp4"), "--events", str(tmp_path / "o.mp4")],
            "is also --output",
        ),
    ]
    for argv, expected in cases:
        assert main(argv) == EXIT_INPUT, argv
        line = one_error_line(capsys)
        assert expected in line, (argv, line)
    assert {p: digest(p) for p in guarded} == before, "no input was touched"
    assert not (tmp_path / "o.mp4").exists()


def test_a_read_only_output_folder_is_one_line_before_the_run(bundle, media, tmp_path, capsys):
    ro = read_only_folder(tmp_path)
    for option, name in (("--output", "out.mp4"), ("--events", "events.jsonl")):
        code = main(base(bundle, media["clip"], media["reference"]) + [option, str(ro / name)])
        assert code == EXIT_INPUT
        line = one_error_line(capsys)
        assert f"{option} {ro}: cannot write there" in line, line
    assert main(base(bundle, media["clip"], media["reference"]) + ["--output", str(tmp_path / "no/such/o.mp4")]) == 2
    assert "does not exist" in one_error_line(capsys)


# -- 2. a source that ends early or skips frames says so --


@pytest.mark.parametrize("name", ["damaged", "cut_avi"])
def test_a_video_that_ends_before_its_length_is_a_warning_and_exit_4(bundle, media, tmp_path, capsys, name):
    events_path = tmp_path / "events.jsonl"
    code = main(base(bundle, media[name], media["reference"]) + ["--center-crop", "--events", str(events_path)])
    err = capsys.readouterr().err
    assert code == EXIT_ENDED_EARLY, err
    events = read_events(events_path)
    summary = events[-1]
    read = summary["frames_read"]
    assert 0 < read < FRAMES and summary["frames_missing"] == FRAMES - read
    assert summary["stopped_by"] == "ended early"
    assert summary["short_passes"] == [{"read": read, "expected": FRAMES}]
    (warning,) = [e["warning"] for e in events if e["event"] == "warning"]
    assert f"ended after {read} of its {FRAMES} frames" in warning and str(media[name]) in warning
    assert f"warning: {warning}" in err.splitlines()
    assert f"{FRAMES - read} missing (a video ended early)" in err and "stopped by: ended early" in err


def test_a_whole_video_and_a_cut_mp4(bundle, media, capsys):
    assert main(base(bundle, media["clip"], media["reference"]) + ["--center-crop"]) == EXIT_OK
    assert "warning" not in capsys.readouterr().err
    assert main(base(bundle, media["cut"], media["reference"])) == EXIT_INPUT  # no index: it cannot be opened
    assert "cannot open file" in one_error_line(capsys)


def test_a_folder_with_unreadable_images_counts_them_and_keeps_the_frame_numbers(bundle, media, tmp_path, capsys):
    folder = tmp_path / "frames"
    folder.mkdir()
    cap = cv2.VideoCapture(str(media["clip"]))
    for i in range(40):
        cv2.imwrite(str(folder / f"f{i}.png"), cap.read()[1])
    cap.release()
    broken = [3, 10, 11, 25]
    for i in broken[:2]:  # overwritten in the middle
        p = folder / f"f{i}.png"
        data = bytearray(p.read_bytes())
        data[100:4000] = bytes(3900)
        p.write_bytes(bytes(data))
    (folder / "f11.png").write_text("not an image")
    (folder / "f25.png").write_bytes(b"")
    events_path = tmp_path / "events.jsonl"
    code = main(base(bundle, folder, media["reference"]) + ["--center-crop", "--events", str(events_path)])
    err = capsys.readouterr().err
    assert code == EXIT_OK, err
    events = read_events(events_path)
    numbers = [e["frame"] for e in events if e["event"] == "frame"]
    readable = [i for i in range(40) if i not in broken]
    if numbers != readable:  # a PNG damaged past its header may still decode: then it is simply a frame
        readable = [i for i in range(40) if i not in broken[2:]]
    assert numbers[-1] == 39 and numbers == readable, "a frame keeps its number in the folder"
    summary = events[-1]
    skipped = 40 - len(readable)
    assert summary["frames_skipped"] == summary["frames_unreadable"] == skipped
    assert summary["frames_missing"] == 0 and summary["stopped_by"] == "end of source"
    (warning,) = [e["warning"] for e in events if e["event"] == "warning"]
    assert f"{skipped} image(s) could not be read" in warning and "f11.png" in warning
    assert f"warning: {warning}" in err and f"{skipped} unreadable (skipped)" in err


# -- 3. the reconnect loop uses its whole timeout --


def test_backoff_waits_add_up_to_the_timeout():
    clock = [0.0]

    def elapsed() -> float:
        return clock[0]

    waits = []
    for w in Backoff(initial=0.5, timeout=3.0).waits(elapsed):
        waits.append(w)
        clock[0] += w
    assert waits == [0.5, 1.0, 1.5], "the last wait is cut to end at the timeout, and one more try is made there"
    forever = Backoff(initial=0.5, maximum=2.0, timeout=-1).waits(elapsed)
    assert [next(forever) for _ in range(4)] == [0.5, 1.0, 2.0, 2.0]


def test_a_stream_back_after_two_seconds_is_reconnected_within_a_three_second_timeout(bundle, media, tmp_path):
    cap = cv2.VideoCapture(str(media["clip"]))
    frames = [cap.read()[1] for _ in range(20)]
    cap.release()
    events_path = tmp_path / "events.jsonl"
    with MjpegServer(frames, fps=100, max_connections=2, outage_s=2.0) as server:
        t0 = time.monotonic()
        code = main(
            base(bundle, server.url, media["reference"])
            + ["--center-crop", "--events", str(events_path), "--reconnect-timeout", "3"]
        )
        elapsed = time.monotonic() - t0
    assert code == EXIT_LOST, "the second drop outlasts the timeout: it stays offline for good"
    events = read_events(events_path)
    assert [e["event"] for e in events if e["event"] != "frame"] == [
        "start",
        "gap",
        "reconnected",
        "gap",
        "lost",
        "summary",
    ]
    reconnected = next(e for e in events if e["event"] == "reconnected")
    assert 2.0 <= reconnected["gap_s"] <= 5.0, reconnected  # the try at the 3 s timeout (plus a slow open)
    lost = next(e for e in events if e["event"] == "lost")
    assert lost["gap_s"] >= 2.9, "the loop waited out its whole timeout before giving up"
    assert events[-1]["reconnects"] == 1 and server.refused >= 2 and elapsed < 30


# -- 4, 5. thresholds and ROIs --


@pytest.mark.parametrize("value", ["nan", "inf", "-inf"])
def test_a_non_finite_threshold_is_refused_before_any_source_is_opened(bundle, media, tmp_path, capsys, value):
    events_path = tmp_path / "events.jsonl"
    argv = base(bundle, media["clip"], media["reference"]) + ["--threshold", value, "--events", str(events_path)]
    assert main(argv) == EXIT_INPUT
    line = one_error_line(capsys)
    assert line.startswith(f"error: --threshold {float(value)}") and "finite" in line, line
    assert not events_path.exists(), "refused before anything was opened"


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_a_non_finite_threshold_in_the_manifest_is_refused_before_any_frame(bundle, media, tmp_path, capsys, value):
    """A bundle whose manifest.json says threshold NaN (every frame "no match", exit 0, before): one line naming the
    manifest, exit 2, no events written."""
    broken = Path(shutil.copytree(bundle, tmp_path / "broken"))
    manifest = json.loads((broken / "manifest.json").read_text())
    manifest["score"]["threshold"] = value
    (broken / "manifest.json").write_text(json.dumps(manifest))  # NaN and Infinity, as Python's json writes them
    events_path = tmp_path / "events.jsonl"
    assert main(base(broken, media["clip"], media["reference"]) + ["--events", str(events_path)]) == EXIT_INPUT
    line = one_error_line(capsys)
    assert "manifest.json: score threshold" in line and "expected a finite number" in line, line
    assert not events_path.exists()


def test_a_probability_threshold_outside_0_1_is_refused(bundle, media, tmp_path, capsys):
    """The digits bundle with its score declared a probability (as a sigmoid head's is): -1 and 1.5 cannot be one."""
    prob = tmp_path / "prob"
    shutil.copytree(bundle, prob)
    manifest = json.loads((prob / "manifest.json").read_text())
    manifest["score"].update({"kind": "probability", "threshold": 0.5})
    (prob / "manifest.json").write_text(json.dumps(manifest))
    for value in ("-1", "1.5"):
        assert main(base(prob, media["clip"], media["reference"]) + ["--threshold", value]) == EXIT_INPUT
        line = one_error_line(capsys)
        assert f"--threshold {float(value)}" in line and "[0, 1]" in line, line
    assert main(base(prob, media["clip"], media["reference"]) + ["--threshold", "0.7", "--max-frames", "3"]) == 0


@pytest.mark.parametrize(
    "roi, expected",
    [
        (["--roi", "-5,0,10,10"], "X and Y must be >= 0"),
        (["--roi=-5,0,10,10"], "X and Y must be >= 0"),
        (["--roi", "0,-1,10,10"], "X and Y must be >= 0"),
        (["--roi", "0,0,0,10"], "W and H > 0"),
        (["--roi", "-0.5,0,10,10"], "four integers"),
        (["--roi", "1.5,0,10,10"], "four integers"),
        (["--roi", "100,0,100,10"], "does not fit the 160x120 frame"),
    ],
)
def test_a_bad_roi_is_one_line_naming_it(bundle, media, capsys, roi, expected):
    assert main(base(bundle, media["clip"], media["reference"]) + roi) == EXIT_INPUT
    err = [line for line in capsys.readouterr().err.splitlines() if not line.startswith("camera: ")]
    assert len(err) == 1 and err[0].startswith("error: --roi") and expected in err[0], err


@pytest.mark.parametrize(
    "extra, expected",
    [
        (["--fps", "nan"], "--fps nan: expected a finite positive number"),
        (["--margin", "inf"], "--margin inf: expected a finite score difference"),
        (["--margin", "-0.1"], "--margin -0.1: expected a finite score difference"),
        (["--reconnect-timeout", "nan"], "--reconnect-timeout nan: expected seconds"),
    ],
)
def test_non_finite_numbers_are_refused(bundle, media, capsys, extra, expected):
    assert main(base(bundle, media["clip"], media["reference"]) + extra) == EXIT_INPUT
    assert expected in one_error_line(capsys)


# -- 7, 8. the command line's boundary --


def test_ffmpeg_lines_do_not_leak_and_every_stderr_line_is_the_projects(bundle, media):
    cmd = [sys.executable, "-m", "camera", *base(bundle, media["damaged"], media["reference"]), "--center-crop"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("OPENCV_FFMPEG_LOGLEVEL", None)
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == EXIT_ENDED_EARLY, proc.stderr
    ours = ("camera:", "warning:", "frames:", "speed:", "decisions:", "network:", "stopped by:")
    assert [line for line in proc.stderr.splitlines() if not line.startswith(ours)] == [], proc.stderr


def test_an_unexpected_error_is_one_line_and_exit_70(bundle, media, monkeypatch, capsys):
    def broken(*args, **kwargs):
        raise RuntimeError("a bug in the loop")

    monkeypatch.setattr("camera.pipeline.run_loop", broken)
    argv = base(bundle, media["clip"], media["reference"])
    assert main(argv) == EXIT_INTERNAL
    err = capsys.readouterr().err.splitlines()
    assert err[-1] == "error: unexpected RuntimeError: a bug in the loop (run again with --debug for the traceback)"
    assert main([*argv, "--debug"]) == EXIT_INTERNAL
    assert "Traceback (most recent call last)" in capsys.readouterr().err


def test_sigterm_while_the_bundle_loads_is_exit_130_and_the_handlers_are_restored(media, tmp_path, monkeypatch, capsys):
    """Before any source is opened, a signal ends the command at run_cli's boundary (130); once the sources open,
    the camera's own handler takes over (stop at the next frame, exit 0: test_camera's signal tests)."""
    import signal

    from camera import cli
    from runtime.console import EXIT_INTERRUPTED

    def terminated_while_loading(*args, **kwargs):
        # what a SIGTERM runs here; a real one sent to this process crashes the TensorFlow that other tests' bundle
        # fixture loads into it (test_camera sends real signals to a camera subprocess)
        signal.getsignal(signal.SIGTERM)(signal.SIGTERM, None)
        raise AssertionError("the SIGTERM handler did not interrupt the load")

    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    monkeypatch.setattr(cli, "load_verifier", terminated_while_loading)
    assert main(base(tmp_path, media["clip"], media["reference"])) == EXIT_INTERRUPTED
    assert capsys.readouterr().err.strip().splitlines()[-1].startswith("interrupted (SIGTERM)")
    assert {s: signal.getsignal(s) for s in before} == before


def test_bench_refuses_an_out_it_cannot_write_before_measuring(media, tmp_path, capsys):
    from camera.bench import main as bench

    clip = shutil.copy(media["clip"], tmp_path / "b.mp4")
    shutil.copy(media["reference"], tmp_path / "b.reference.png")
    (tmp_path / "b.truth.json").write_text("{}")
    ro = read_only_folder(tmp_path)
    assert bench(["--clip", str(clip), "--bundle", str(tmp_path / "none"), "--out", str(ro)]) == EXIT_INPUT
    assert f"--out {ro}: cannot write there" in one_error_line(capsys)


def test_help_lists_every_exit_code(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    codes = out[out.index("exit codes:") :]
    for code in ("0", "1", "2", "3", "4", "70", "130"):
        assert f"\n  {code} " in codes, code
    assert "--debug" in out
