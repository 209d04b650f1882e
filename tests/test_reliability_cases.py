"""Issue 15 (nothing lost, nothing silently wrong), case by case.

``CASES`` maps every case the issue lists (its 8 "data lost or silently wrong" cases, each bullet of "tracebacks,
wrong exit codes, half-written output", and each "unclear message" its paragraph names) to the tests that reproduce
it; ``test_every_case_names_tests_that_exist`` keeps the table honest. The tests of cases the other reliability files
did not cover are here, with the fault-injection tests: an export and a gallery save killed at many of their writes
(tests/faults.py), each time leaving the old version loadable and no staging file behind.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from faults import Faults, Killed, hidden_entries
from quick_models import quick_digits_bundle, quick_digits_model

from runtime.bundle.manifest import load_manifest

ROOT = Path(__file__).resolve().parents[1]


R = "tests/test_reliability_cases.py::"
CAM = "tests/test_camera_reliability.py::"
TRAIN = "tests/test_train_reliability.py::"
GAL = "tests/test_gallery.py::"
EXP = "tests/test_export_build.py::"
MAN = "tests/test_manifest.py::"

# (case, the words, the tests that reproduce it); "data N" are the numbered cases, "bullet N" the bullets of
# "tracebacks, wrong exit codes, half-written output" (bullet 1 split into the inputs it names), "message N" the
# unclear messages in the order the paragraph names them
CASES: list[tuple[str, str, tuple[str, ...]]] = [
    (
        "data 1",
        "a gallery save killed after the .npz rename, before the .json, leaves neither gallery loadable",
        (
            GAL + "test_a_save_killed_at_any_rename_leaves_the_old_or_the_new_gallery",
            R + "test_a_gallery_save_killed_at_any_write_loads_as_the_old_or_the_new",
        ),
    ),
    (
        "data 1",
        "two processes saving one gallery: a reader loads one writer's names on the other's embeddings; the .json's "
        "sha256 re-read from the path after the rename",
        (
            R + "test_two_processes_saving_one_gallery_never_mix_for_a_reader",
            GAL + "test_two_writers_and_a_reader_never_mix_galleries",
        ),
    ),
    (
        "data 2",
        "--resume on a finished run starts from scratch, overwrites model.keras and the card, appends history.csv",
        (
            TRAIN + "test_resume_on_a_finished_run_is_an_error_and_leaves_it",
            TRAIN + "test_force_replaces_a_finished_run_whole_never_appends",
            TRAIN + "test_an_interrupted_replacement_keeps_the_old_run_and_resumes_beside_it",
        ),
    ),
    (
        "data 3",
        "export.build --force deletes any folder; --name ../../x writes outside --out",
        (EXP + "test_force_replaces_only_a_bundle_and_a_name_is_not_a_path",),
    ),
    (
        "data 4",
        "camera --output equal to --source, --events equal to --reference overwrite the inputs",
        (CAM + "test_an_output_that_is_an_input_is_refused_before_anything_is_written",),
    ),
    (
        "data 5",
        "a corrupt video ends as success; a folder source skips corrupt frames silently and renumbers the rest",
        (
            CAM + "test_a_video_that_ends_before_its_length_is_a_warning_and_exit_4",
            CAM + "test_a_folder_with_unreadable_images_counts_them_and_keeps_the_frame_numbers",
        ),
    ),
    (
        "data 6",
        "graphs the manifest points to but does not list are loaded; embedding.file ../../../../etc/passwd accepted",
        (
            R + "test_an_embedding_graph_outside_the_bundle_or_unlisted_is_refused",
            MAN + "test_a_file_the_manifest_uses_must_be_listed",
            MAN + "test_entries_outside_the_bundle_are_refused",
        ),
    ),
    (
        "data 7",
        "NaN thresholds (manifest or --threshold nan) give no match on every frame, exit 0",
        (
            CAM + "test_a_non_finite_threshold_is_refused_before_any_source_is_opened",
            CAM + "test_a_non_finite_threshold_in_the_manifest_is_refused_before_any_frame",
            "tests/test_scoring.py::test_a_nan_threshold_in_a_manifest_is_refused_naming_it",
        ),
    ),
    (
        "data 8",
        "--lr -0.01 trains, exit 0; a CSV whose pairs are half missing trains and writes AUC 0 into the card",
        (
            TRAIN + "test_training_refuses_numbers_out_of_range",
            TRAIN + "test_a_pair_list_that_lost_most_of_its_pairs_is_refused",
            TRAIN + "test_pairs_whose_images_are_mostly_unreadable_are_refused",
        ),
    ),
    (
        "bullet 1",
        "a traceback, exit 1: an image over OpenCV's pixel limit (cv2.error escapes decode_image)",
        ("tests/test_preprocess.py::test_opencv_refusing_an_image_is_an_image_error_not_a_traceback",),
    ),
    (
        "bullet 1",
        "a traceback, exit 1: an embedding graph whose input shape or channels disagree with the manifest",
        ("tests/test_graph_io.py::test_a_graph_that_disagrees_with_its_manifest_is_refused_at_load",),
    ),
    (
        "bullet 1",
        "a traceback, exit 1: a camera --output on a read-only folder",
        (CAM + "test_a_read_only_output_folder_is_one_line_before_the_run",),
    ),
    (
        "bullet 1",
        "a traceback, exit 1: a tampered gallery .json (wrong types)",
        (GAL + "test_a_tampered_gallery_json_is_refused_naming_it",),
    ),
    (
        "bullet 1",
        "a traceback, exit 1: read-only --out for train, evaluate and bench (the last two after the whole run)",
        (
            TRAIN + "test_read_only_out_fails_before_training",
            TRAIN + "test_unwritable_out_fails_before_training",
            TRAIN + "test_evaluate_unwritable_out_or_json_fails_before_scoring",
            "tests/test_runtime_bench.py::test_a_missing_model_or_an_unwritable_out_fails_before_any_timing",
            CAM + "test_bench_refuses_an_out_it_cannot_write_before_measuring",
        ),
    ),
    (
        "bullet 1",
        "a traceback, exit 1: --batch-size 0, --lr nan",
        (TRAIN + "test_training_refuses_numbers_out_of_range",),
    ),
    (
        "bullet 2",
        "decompression bomb: a 1.1 MB 20000x20000 PNG costs 2.56 GB and 9.5 s, then is verified; no pixel cap",
        (
            R + "test_a_decompression_bomb_is_refused_by_verify_before_decoding",
            "tests/test_preprocess.py::test_the_pixel_cap_refuses_a_bomb_before_decoding",
        ),
    ),
    (
        "bullet 3",
        "SIGTERM during export.build leaves .NAME.partial-XXXX; Ctrl-C prints a traceback, once swallowed (exit 0)",
        (
            EXP + "test_sigterm_during_an_export_leaves_nothing_behind",
            EXP + "test_an_unexpected_error_is_one_line_and_its_own_exit_code",
            R + "test_an_export_killed_at_any_write_leaves_the_old_bundle_and_no_staging",
            R + "test_a_first_export_killed_leaves_nothing",
        ),
    ),
    (
        "bullet 4",
        "--epochs 0 leaves model.keras and history.csv without a model card",
        (
            TRAIN + "test_training_refuses_numbers_out_of_range",
            TRAIN + "test_a_crash_before_the_card_leaves_no_finished_run",
        ),
    ),
    (
        "bullet 5",
        "reconnect gives up early: --reconnect-timeout 3 with the stream back after 2.0 s exits 1 after 1.5 s",
        (
            CAM + "test_backoff_waits_add_up_to_the_timeout",
            CAM + "test_a_stream_back_after_two_seconds_is_reconnected_within_a_three_second_timeout",
        ),
    ),
    (
        "message 1",
        "a symlink loop given as an image is 'no such file'",
        ("tests/test_runtime_verify_cli.py::test_more_exit_codes_in_process",),
    ),
    (
        "message 2",
        "a directory given as an image is 'no such file'",
        (
            "tests/test_runtime_verify_cli.py::test_more_exit_codes_in_process",
            "tests/test_preprocess.py::test_read_image_errors_name_the_path",
        ),
    ),
    (
        "message 3",
        "a truncated .keras is 'expected a Keras model ... found b'PK...''",
        (TRAIN + "test_truncated_keras_archive_is_named_as_such",),
    ),
    (
        "message 4",
        "a manifest with files as a list gives Python's own message",
        (MAN + "test_malformed_manifests_say_what_is_wrong",),
    ),
    (
        "message 5",
        "the whole manifest a list gives Python's own message",
        (MAN + "test_a_manifest_that_is_not_an_object",),
    ),
    (
        "message 6",
        "--roi -5,0,10,10 hits argparse's 'expected one argument'",
        (CAM + "test_a_bad_roi_is_one_line_naming_it",),
    ),
    (
        "message 7",
        "NaN/inf embeddings are accepted by the verifier but refused by the gallery",
        (
            "tests/test_runtime_verifier.py::test_nan_embeddings_are_refused_by_the_verifier",
            GAL + "test_nan_embeddings_get_one_rule_in_the_verifier_and_the_gallery",
        ),
    ),
    (
        "message 8",
        "Gallery.load accepts NaN from its .npz",
        (GAL + "test_nan_embeddings_get_one_rule_in_the_verifier_and_the_gallery",),
    ),
    (
        "message 9",
        "duplicate names in a gallery .json silently drop an identity",
        (GAL + "test_a_tampered_gallery_json_is_refused_naming_it",),
    ),
    ("message 10", "--threshold -1 is accepted", (CAM + "test_a_probability_threshold_outside_0_1_is_refused",)),
    ("message 11", "--val-fraction 1.5 is accepted", (TRAIN + "test_training_refuses_numbers_out_of_range",)),
    ("message 12", "manifest scale: 0 is accepted", (MAN + "test_malformed_manifests_say_what_is_wrong",)),
    ("message 13", "--steps-per-epoch 0 fails inside Keras", (TRAIN + "test_training_refuses_numbers_out_of_range",)),
    (
        "message 14",
        "runtime.bench --model missing.keras exits 0",
        ("tests/test_runtime_bench.py::test_a_missing_model_or_an_unwritable_out_fails_before_any_timing",),
    ),
    (
        "message 15",
        "a truncated .h5 gives h5py's message without naming the file",
        (TRAIN + "test_truncated_h5_is_named",),
    ),
    ("message 16", "train.models --help is ignored", (TRAIN + "test_every_help_lists_the_exit_codes_and_debug",)),
    ("message 17", "export.build --help does not list its exit codes", (EXP + "test_help_explains",)),
    (
        "message 18",
        "FFmpeg's own lines leak into camera output",
        (CAM + "test_ffmpeg_lines_do_not_leak_and_every_stderr_line_is_the_projects",),
    ),
]

# what the "What to build" adds beyond the cases: evaluation output written whole
BUILD = [
    (
        "build 1",
        "evaluation output staged and published with one rename",
        (
            TRAIN + "test_an_evaluation_killed_at_any_write_leaves_the_earlier_one_whole",
            TRAIN + "test_evaluate_replaces_only_an_evaluations_folder_and_never_its_inputs",
        ),
    ),
]


def _test_names(path: Path) -> set[str]:
    import ast

    tree = ast.parse(path.read_text())
    return {n.name for n in tree.body if isinstance(n, ast.FunctionDef) and n.name.startswith("test_")}


def test_every_case_names_tests_that_exist():
    """The table cannot rot: each case has a test, each named test is a test function in its file."""
    missing = []
    for case, words, tests in CASES + BUILD:
        assert tests and words, case
        for ref in tests:
            file, _, name = ref.partition("::")
            if name not in _test_names(ROOT / file):
                missing.append(f"{case}: {ref}")
    assert missing == []
    cases = [c for c, *_ in CASES]
    assert len({c for c in cases if c.startswith("data ")}) == 8
    assert len({c for c in cases if c.startswith("bullet ")}) == 5
    assert len({c for c in cases if c.startswith("message ")}) == 18  # the ones the paragraph names (it counts 26)


@pytest.fixture(scope="module")
def digits_model(tmp_path_factory) -> Path:
    return quick_digits_model(tmp_path_factory)


@pytest.fixture(scope="module")
def old_bundle(tmp_path_factory) -> Path:
    """The session's digits bundle: the old version every killed export must leave (the tests export over copies)."""
    return quick_digits_bundle(tmp_path_factory)


# ------------------------------------------------------------------------------ fault injection: an export


def _kill_points(events: list[str]) -> list[int]:
    """The moments worth dying at, 1-based: the first write, each file landing in the staging folder (its rename),
    the first of the raw reference files, and the publishing swap itself."""
    picks = {1}
    picks |= {i for i, e in enumerate(events, 1) if e.startswith(("replace ", "exchange "))}
    picks.add(next(i for i, e in enumerate(events, 1) if "/reference/" in e))
    return sorted(picks)


def _export_over(model: Path, old: Path, out: Path, **faults) -> Faults:
    from export.build import ExportOptions, build_bundle

    if out.exists():
        shutil.rmtree(out)
    shutil.copytree(old, out / "b")
    with Faults(out, **faults) as f:
        build_bundle(model, ExportOptions(out=out, name="b", quiet=True, force=True, seed=1))
    return f


def test_an_export_killed_at_any_write_leaves_the_old_bundle_and_no_staging(digits_model, old_bundle, tmp_path):
    """build_bundle --force over an existing bundle, killed (KeyboardInterrupt, what SIGTERM becomes) or out of disk
    (OSError) at each moment it writes: the old bundle still loads, hashes and all, and nothing hidden is left."""
    out = tmp_path / "out"
    created = load_manifest(old_bundle).created
    events = _export_over(digits_model, old_bundle, out).events
    assert events[-1] == f"exchange {out / 'b'}", "the bundle is published by one swap, its last write"
    assert load_manifest(out / "b").created != created and hidden_entries(out) == []
    points = _kill_points(events)
    assert len(points) >= 12, events
    for k in points:
        # a full disk where a file is written (mkdir of a folder that exists swallows an OSError), else a kill
        exc = OSError if k % 2 and not events[k - 1].startswith("mkdir") else Killed
        with pytest.raises(exc, match="injected fault"):
            _export_over(digits_model, old_bundle, out, fail_at=k, exc=exc)
        assert load_manifest(out / "b").created == created, (k, events[k - 1])  # verifies every sha256 too
        assert hidden_entries(out) == [], (k, events[k - 1])
    import runtime

    assert runtime.load(out / "b", backend="onnxruntime").manifest.created == created


def test_without_an_atomic_swap_a_failed_publish_puts_the_old_bundle_back(digits_model, old_bundle, tmp_path):
    """Where the file system cannot swap two folders, publishing is two renames (old aside, new in): dying at either
    leaves the old bundle in place."""
    import runtime.fileio

    mp = pytest.MonkeyPatch()
    mp.setattr(runtime.fileio, "exchange_dirs", lambda a, b: False)
    try:
        out = tmp_path / "out"
        events = _export_over(digits_model, old_bundle, out).events
        assert [e.split()[0] for e in events[-2:]] == ["replace", "replace"] and events[-1].endswith("/b"), events
        created = load_manifest(old_bundle).created
        for k in (len(events) - 1, len(events)):
            with pytest.raises(Killed):
                _export_over(digits_model, old_bundle, out, fail_at=k)
            assert load_manifest(out / "b").created == created and hidden_entries(out) == []
    finally:
        mp.undo()


def test_a_first_export_killed_leaves_nothing(digits_model, tmp_path):
    from export.build import ExportOptions, build_bundle

    out = tmp_path / "out"
    with Faults(out) as f:
        build_bundle(digits_model, ExportOptions(out=out, name="b", quiet=True))
    shutil.rmtree(out)
    for k in (2, len(f.events) // 2, len(f.events)):
        with pytest.raises(Killed), Faults(out, fail_at=k):
            build_bundle(digits_model, ExportOptions(out=out, name="b", quiet=True))
        assert not out.exists() or list(out.iterdir()) == [], k


# ------------------------------------------------------------------------------ fault injection: a gallery save


def test_a_gallery_save_killed_at_any_write_loads_as_the_old_or_the_new(old_bundle, tmp_path):
    """Every write of Gallery.save (the .npz's temp file, its rename, the .json's temp file, its rename) is a place
    to die: the gallery then loads whole, as the old save or the new one, and no temp file is left."""
    import warnings

    import runtime
    from runtime.gallery import Gallery

    verifier = runtime.load(old_bundle, backend="onnxruntime")
    dim = verifier.manifest.embedding_dim
    rng = np.random.default_rng(0)
    old = Gallery(verifier)
    old.enroll("alice", embeddings=rng.standard_normal((2, dim)).astype(np.float32))
    folder = tmp_path / "g"
    old.save(folder / "staff")
    pristine = {p.name: p.read_bytes() for p in folder.iterdir()}
    new = Gallery.load(folder / "staff", verifier)
    new.enroll("bob", embeddings=rng.standard_normal((1, dim)).astype(np.float32))
    with Faults(folder) as f:
        new.save(folder / "staff")
    assert len(f.events) >= 6, f.events
    for k in range(1, len(f.events) + 1):
        for p in folder.iterdir():
            p.unlink()
        for name, data in pristine.items():
            (folder / name).write_bytes(data)
        with pytest.raises(Killed), Faults(folder, fail_at=k):
            new.save(folder / "staff")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "a save was interrupted" when it died between its two renames
            loaded = Gallery.load(folder / "staff", verifier)
        assert loaded.identities in (["alice"], ["alice", "bob"]), (k, f.events[k - 1])
        np.testing.assert_array_equal(loaded.embeddings("alice"), old.embeddings("alice"))
        assert sorted(p.name for p in folder.iterdir()) == ["staff.json", "staff.npz"], (k, f.events[k - 1])


# ------------------------------------------------------------------------------ cases the other files did not cover


def _bundle_copy(old: Path, where: Path, edit) -> Path:
    import json

    b = Path(shutil.copytree(old, where))
    manifest = json.loads((b / "manifest.json").read_text())
    edit(b, manifest)
    (b / "manifest.json").write_text(json.dumps(manifest))
    return b


def test_an_embedding_graph_outside_the_bundle_or_unlisted_is_refused(old_bundle, tmp_path, capsys):
    """Data case 6: ``embedding.file: "../../../../etc/passwd"`` is a path escape, and an embedding graph taken out
    of ``files`` and then edited is unlisted: both refused by name, never loaded."""
    import runtime
    from runtime.bundle.layout import BundleError
    from runtime.verify import main as verify_main

    def escape(b, m):
        m["embedding"]["file"] = "../../../../etc/passwd"

    def unlist_and_edit(b, m):
        del m["files"]["embedding.onnx"]
        (b / "embedding.onnx").write_bytes((b / "embedding.onnx").read_bytes() + b"edited")

    outside = _bundle_copy(old_bundle, tmp_path / "outside", escape)
    unlisted = _bundle_copy(old_bundle, tmp_path / "unlisted", unlist_and_edit)
    with pytest.raises(BundleError, match=r"etc/passwd.*outside the bundle"):
        runtime.load(outside, backend="onnxruntime")
    with pytest.raises(BundleError, match=r"embedding\.onnx: the manifest uses it but does not list its sha256"):
        runtime.load(unlisted, backend="onnxruntime")
    png = tmp_path / "a.png"
    from tests.conftest import make_png

    png.write_bytes(make_png(0, 28))
    for bundle, fragment in ((outside, "outside the bundle"), (unlisted, "does not list its sha256")):
        assert verify_main(["--bundle", str(bundle), str(png), str(png)]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and fragment in err[0], err


def _real_png_bomb(path: Path, side: int = 20000) -> Path:
    """A real, valid 8-bit gray PNG of side x side zero pixels: 400 MB decoded from about 1.7 MB on disk."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    z = zlib.compressobj(1)
    row = bytes(side + 1)  # the filter byte and the row
    idat = b"".join(z.compress(row) for _ in range(side)) + z.flush()
    header = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b""))
    return path


def test_a_decompression_bomb_is_refused_by_verify_before_decoding(old_bundle, tmp_path, capsys):
    """The tracebacks case: a small PNG of 20000x20000 pixels cost gigabytes and seconds, then was verified; now
    runtime.verify refuses it from its header, in one line naming the cap, exit 2."""
    import resource
    import time

    from runtime.verify import main as verify_main
    from tests.conftest import make_png

    bomb = _real_png_bomb(tmp_path / "bomb.png")
    assert bomb.stat().st_size < 4_000_000
    ok = tmp_path / "ok.png"
    ok.write_bytes(make_png(0, 28))
    peak_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.perf_counter()
    assert verify_main(["--bundle", str(old_bundle), str(ok), str(bomb)]) == 2
    elapsed = time.perf_counter() - t0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "bomb.png: 20000x20000 = 400,000,000 pixels, over the 100,000,000" in err[0], err
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak_before) / 1024
    assert grown_mb < 300 and elapsed < 30, (grown_mb, elapsed)  # never decoded (400 MB, 2.5 GB in the issue)


WRITER = """
import sys
import numpy as np
import runtime
from runtime.gallery import Gallery

bundle, path, tag, saves = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
v = runtime.load(bundle, backend="onnxruntime")
g = Gallery(v)
for k in range(4):  # names and embeddings both say which writer made them
    e = np.full((1, v.manifest.embedding_dim), float(tag), np.float32)
    e[0, k] += 1.0
    g.enroll(f"w{tag}-{k}", embeddings=e)
print("ready", flush=True)
sys.stdin.readline()
for _ in range(saves):
    g.save(path)
"""


def test_two_processes_saving_one_gallery_never_mix_for_a_reader(old_bundle, tmp_path):
    """Data case 1 as the issue ran it, with processes: two writers save different galleries to one path while this
    process loads it; every load is one writer's gallery whole (its names with its embeddings), never a failure."""
    import subprocess
    import sys

    import runtime
    from runtime.gallery import Gallery

    path = tmp_path / "shared"
    writers = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(old_bundle), str(path), str(tag), "40"],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for tag in (1, 2)
    ]
    for w in writers:
        assert w.stdout.readline().strip() == "ready"
    v = runtime.load(old_bundle, backend="onnxruntime")
    for w in writers:
        w.stdin.write("go\n")
        w.stdin.flush()
    loads, mixed = 0, []
    while any(w.poll() is None for w in writers) or loads == 0:
        if not path.with_suffix(".json").exists():
            continue
        g = Gallery.load(path, v)
        loads += 1
        tag = g.identities[0].split("-")[0]
        values = {round(float(np.median(g.embeddings(n))), 3) for n in g.identities}
        if not all(n.startswith(tag + "-") for n in g.identities) or values != {float(tag[1:])}:
            mixed.append(g.identities)
    assert [w.wait(timeout=120) for w in writers] == [0, 0]
    assert loads > 0 and mixed == [], (loads, mixed[:3])
