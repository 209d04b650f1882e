"""python -m export.build end to end: bundles, parity for every architecture, legacy files, exit codes."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from export.build import EXIT_ENGINE, EXIT_INPUT, EXIT_OK, EXIT_PARITY, build_parser, main
from runtime.bundle.manifest import load_manifest
from runtime.bundle.reference import Reference
from runtime.console import EXIT_INTERNAL, EXIT_INTERRUPTED
from tests.legacy_files import vgg_file_weights, vgg_layer_names, write_keras215_weights
from tests.quick_models import train_quick_digits
from train.models import create_model

ROOT = Path(__file__).resolve().parents[1]

# small inputs keep the slow architectures quick; vgg16-siamese keeps bubbliiiing's 105x105x3
ARCH_KWARGS = {
    "vgg16-siamese": {},
    "koch": {"input_shape": (65, 65, 1)},
    "pyimagesearch": {},
    "keras-contrastive": {},
    "resnet-pairs": {"input_shape": (32, 32, 3)},
}


@pytest.fixture(scope="module")
def digits_model(tmp_path_factory) -> Path:
    return train_quick_digits(tmp_path_factory.mktemp("exp") / "demo")


def _parity(bundle: Path) -> dict:
    """parity.json's rows by (backend, precision): OpenVINO has a bf16 row too where the CPU has native bf16."""
    return {(r["backend"], r["precision"]): r for r in json.loads((bundle / "parity.json").read_text())["results"]}


def test_trained_model_exports_a_verified_bundle(digits_model, tmp_path, capsys):
    code = main(["--model", str(digits_model), "--out", str(tmp_path / "bundles")])
    out = capsys.readouterr().out
    assert code == EXIT_OK, out
    bundle = tmp_path / "bundles" / "demo"
    m = load_manifest(bundle)  # verifies every file's sha256
    assert {
        "embedding.onnx",
        "embedding.fp16.onnx",
        "head.onnx",
        "siamese.onnx",
        "reference.npz",
        "parity.json",
    } <= set(m.files)
    assert m.score.kind == "distance" and m.score.same_when == "low" and m.label_same == 0
    assert "calibrated" in m.score.threshold_source
    ref = Reference.load(bundle / "reference.npz")
    assert ref.source.startswith("model card data") and not ref.is_random
    assert set(np.unique(ref.same)) == {0, 1}  # labelled pairs from real digits
    parity = _parity(bundle)
    fp32 = parity[("onnxruntime-cpu", "fp32")]
    assert fp32["status"] == "PASSED"
    assert fp32["metrics"]["score_max_abs"] <= 1e-5 and fp32["metrics"]["embedding_rel"] <= 1e-4
    fp16 = parity[("fp16 emulated", "fp16")]
    assert fp16["note"] == "estimated on CPU"
    assert fp16["metrics"]["min_cosine"] >= 0.999 and fp16["metrics"]["decision_flips"] == 0
    assert 0 < fp16["metrics"]["embedding_max_abs"]  # the emulation really rounds
    if importlib.util.find_spec("openvino") is not None:  # OpenVINO is measured whenever it is installed
        assert parity[("openvino-cpu", "fp32")]["status"] == "PASSED"
        assert parity[("openvino-cpu", "fp32")]["metrics"]["score_max_abs"] <= 1e-5
    assert "PASSED" in out and "bundle:" in out
    assert (bundle / "BUILD_ENGINE.md").is_file()
    assert not [p for p in (tmp_path / "bundles").iterdir() if p.name.startswith(".")]


def test_the_export_api_is_what_the_command_line_runs(digits_model, tmp_path, capsys):
    """build_bundle(model, ExportOptions) -> ExportResult: the programmatic export, the CLI's options as fields."""
    from export.build import ExportOptions, ExportResult, build_bundle

    result = build_bundle(digits_model, ExportOptions(out=tmp_path, name="api", opencv=False, quiet=True))
    assert capsys.readouterr().out == ""  # quiet: a library call prints nothing
    assert isinstance(result, ExportResult) and result.passed and result.bundle == tmp_path / "api"
    assert set(result.files) == set(load_manifest(result.bundle).files)  # the manifest checks every hash
    assert {(r.backend, r.precision) for r in result.parity} >= {("onnxruntime-cpu", "fp32"), ("fp16 emulated", "fp16")}
    assert result.engine == "" and result.triton is None and result.reference.startswith("model card data")
    opened = result.open()  # the runtime's view of what was written
    assert opened.manifest.name == "api" and opened.parity().passed and len(opened.reference().scores) > 0
    with pytest.raises(FileExistsError):  # an existing bundle needs force
        build_bundle(digits_model, ExportOptions(out=tmp_path, name="api", quiet=True))
    args = build_parser().parse_args(["--model", "m.keras", "--name", "x", "--no-fp16", "--batch", "1:4:8"])
    opts = ExportOptions.from_args(args)
    assert (opts.name, opts.fp16, opts.batch, opts.out, opts.quiet) == ("x", False, "1:4:8", "bundles", False)
    with pytest.raises(FileNotFoundError, match="no such file"):
        build_bundle(tmp_path / "missing.keras", ExportOptions(out=tmp_path, quiet=True))


@pytest.mark.parametrize("arch", sorted(ARCH_KWARGS))
def test_every_architecture_exports_with_parity(arch, tmp_path):
    s = create_model(arch, **ARCH_KWARGS[arch])
    path = tmp_path / f"{arch}.keras"
    s.model.save(path)
    code = main(["--model", str(path), "--out", str(tmp_path / "b"), "--reference-images", "8", "--batch", "1:4:8"])
    assert code == EXIT_OK
    bundle = tmp_path / "b" / arch
    m = load_manifest(bundle)
    assert (m.head_file is None) == (s.config.head == "euclidean")
    parity = _parity(bundle)
    assert parity[("onnxruntime-cpu", "fp32")]["status"] == "PASSED", parity[("onnxruntime-cpu", "fp32")]
    assert parity[("fp16 emulated", "fp16")]["metrics"]["min_cosine"] >= 0.999
    assert Reference.load(bundle / "reference.npz").is_random  # no card, no calib images: said so


def test_bubbliiiing_weights_file_just_works(tmp_path):
    h5 = tmp_path / "Omniglot_vgg.h5"
    write_keras215_weights(h5, vgg_layer_names(), vgg_file_weights(seed=3))
    calib = tmp_path / "calib"
    for person in ("a", "b"):
        (calib / person).mkdir(parents=True)
        for i in range(3):
            img = np.random.default_rng([ord(person), i]).integers(0, 255, (120, 90, 3), dtype=np.uint8)
            cv2.imwrite(str(calib / person / f"{i}.png"), img)
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "export.build",
            "--model",
            str(h5),
            "--out",
            str(tmp_path / "b"),
            "--calib-images",
            str(calib),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=900,
    )
    assert out.returncode == EXIT_OK, out.stderr[-2000:]
    m = load_manifest(tmp_path / "b" / "omniglot_vgg")
    assert m.source.arch == "vgg16-siamese" and m.head_kind == "learned"
    assert m.reference.source.startswith("calib-images")
    assert "bundle:" in out.stdout


def test_exit_codes_and_messages(digits_model, tmp_path, capsys):
    assert main(["--model", str(tmp_path / "missing.keras")]) == EXIT_INPUT
    assert "missing.keras" in capsys.readouterr().err
    broken = tmp_path / "broken.keras"
    broken.write_bytes(digits_model.read_bytes()[:2000])
    assert main(["--model", str(broken), "--out", str(tmp_path / "b")]) == EXIT_INPUT
    assert "broken.keras" in capsys.readouterr().err
    assert not (tmp_path / "b" / "broken").exists()
    out = tmp_path / "bundles"
    assert main(["--model", str(digits_model), "--out", str(out)]) == EXIT_OK
    assert main(["--model", str(digits_model), "--out", str(out)]) == EXIT_INPUT
    assert "--force" in capsys.readouterr().err
    before = load_manifest(out / "demo").created
    assert main(["--model", str(digits_model), "--out", str(out), "--force", "--batch", "4:2:8"]) == EXIT_INPUT
    assert "MIN:OPT:MAX" in capsys.readouterr().err
    assert load_manifest(out / "demo").created == before  # the old bundle is untouched


def test_engine_without_tensorrt(digits_model, tmp_path, capsys):
    try:
        import tensorrt  # noqa: F401

        pytest.skip("TensorRT is installed here; this test covers machines without it")
    except ImportError:
        pass
    out = tmp_path / "b"
    assert main(["--model", str(digits_model), "--out", str(out), "--engine"]) == EXIT_OK
    printed = capsys.readouterr().out
    assert "engine:   not built: TensorRT is not installed" in printed
    assert "trtexec" in (out / "demo" / "BUILD_ENGINE.md").read_text()
    code = main(["--model", str(digits_model), "--out", str(tmp_path / "c"), "--engine", "--require-engine"])
    assert code == EXIT_ENGINE
    assert "nothing was written" in capsys.readouterr().err
    assert not (tmp_path / "c" / "demo").exists()


def test_triton_repository_is_written(digits_model, tmp_path):
    repo = tmp_path / "triton"
    assert main(["--model", str(digits_model), "--out", str(tmp_path / "b"), "--triton", str(repo)]) == EXIT_OK
    configs = sorted(p.parent.name for p in repo.rglob("config.pbtxt"))
    assert configs == ["demo_embedding", "demo_head", "demo_pair", "demo_runtime", "demo_siamese"]


def test_help_explains():
    out = subprocess.run([sys.executable, "-m", "export.build", "--help"], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0
    for flag in ("--model", "--engine", "--triton", "--calib-images", "--fp16", "--debug", "examples:"):
        assert flag in out.stdout
    codes = out.stdout[out.stdout.index("exit codes:") : out.stdout.index("examples:")]
    for code in (EXIT_OK, EXIT_PARITY, EXIT_INPUT, EXIT_ENGINE, EXIT_INTERNAL, EXIT_INTERRUPTED):
        assert f"\n  {code} " in codes, code  # every code the command can exit with is listed


def test_simplify_keeps_parity(digits_model, tmp_path):
    assert main(["--model", str(digits_model), "--out", str(tmp_path), "--simplify"]) == EXIT_OK
    bundle = tmp_path / "demo"
    assert load_manifest(bundle).onnx.simplified is True
    assert _parity(bundle)[("onnxruntime-cpu", "fp32")]["status"] == "PASSED"


def test_force_replaces_only_a_bundle_and_a_name_is_not_a_path(digits_model, tmp_path, capsys):
    """--force never deletes a folder the project did not write, and --name cannot leave --out."""
    precious = tmp_path / "out" / "precious"
    precious.mkdir(parents=True)
    (precious / "thesis.txt").write_text("years of work")
    assert (
        main(["--model", str(digits_model), "--out", str(tmp_path / "out"), "--name", "precious", "--force"])
        == EXIT_INPUT
    )
    err = capsys.readouterr().err
    assert "precious: exists and is not a bundle" in err and "manifest.json" in err
    assert (precious / "thesis.txt").read_text() == "years of work"
    for name in ("../../x", "a/b", "..", ".hidden"):
        assert main(["--model", str(digits_model), "--out", str(tmp_path / "out"), "--name", name]) == EXIT_INPUT
        assert f"--name {name!r}: expected a plain name" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"] and sorted(
        p.name for p in (tmp_path / "out").iterdir()
    ) == ["precious"]


@pytest.mark.parametrize("how", ["SIGTERM", "SIGINT"])
def test_sigterm_during_an_export_leaves_nothing_behind(digits_model, tmp_path, how):
    """SIGTERM or Ctrl-C (SIGINT) while the bundle is being staged, inside TensorFlow's conversion: exit 130, one
    line, no traceback, no hidden staging folder, no bundle (Ctrl-C was once swallowed there and exited 0)."""
    import signal
    import time

    out = tmp_path / "out"
    proc = subprocess.Popen(
        [sys.executable, "-m", "export.build", "--model", str(digits_model), "--out", str(out), "--name", "t"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not any(out.glob(".t.partial-*")) and proc.poll() is None:
        time.sleep(0.05)
    assert any(out.glob(".t.partial-*")), "the export never started staging"
    proc.send_signal(getattr(signal, how))
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err[-2000:]
    assert f"interrupted ({'SIGTERM' if how == 'SIGTERM' else 'Ctrl-C'})" in err and "Traceback" not in err
    assert list(out.iterdir()) == []  # neither the bundle nor its staging folder


def test_an_interrupt_a_library_turns_into_another_error_or_swallows_still_exits_130(capsys):
    """tf2onnx's tracing once turned the SIGTERM raised inside it into "SystemError: bad argument to internal
    function", and the export reported exit 2 for it; the boundary remembers the signal, so the exit is 130."""
    import signal

    from runtime.console import run_cli

    def deliver(signum: int) -> None:  # what the interpreter does on a signal: call the handler run_cli installed
        signal.getsignal(signum)(signum, None)

    def turned_into_an_error() -> int:
        try:
            deliver(signal.SIGTERM)
        except BaseException as e:  # a library that wraps whatever it meets
            raise SystemError("bad argument to internal function") from e
        return 0

    def reported_and_returned(code: int):
        def body() -> int:
            try:
                deliver(signal.SIGINT)
            except BaseException:
                print("error: a layer cannot be traced", file=sys.stderr)  # the command's own error line
            return code

        return body

    assert run_cli(turned_into_an_error) == EXIT_INTERRUPTED
    assert capsys.readouterr().err == "interrupted (SIGTERM); nothing half-written was left\n"
    assert run_cli(reported_and_returned(2)) == EXIT_INTERRUPTED
    assert capsys.readouterr().err.endswith("interrupted (Ctrl-C); nothing half-written was left\n")
    assert run_cli(reported_and_returned(0)) == EXIT_INTERRUPTED  # swallowed: the command finished, says so
    assert "the command finished" in capsys.readouterr().err
    assert run_cli(lambda: 0) == 0  # a run without a signal is untouched by an earlier one


def test_an_unexpected_error_is_one_line_and_its_own_exit_code(capsys):
    """A bug is not 'parity failed' (1): one line naming the error, exit 70; --debug adds the traceback."""
    from runtime.console import run_cli

    def broken() -> int:
        raise TypeError("a bug")

    def interrupted() -> int:
        raise KeyboardInterrupt

    assert run_cli(broken) == EXIT_INTERNAL
    err = capsys.readouterr().err
    assert err == "error: unexpected TypeError: a bug (run again with --debug for the traceback)\n"
    assert run_cli(broken, debug=True) == EXIT_INTERNAL
    assert "Traceback" in capsys.readouterr().err
    assert run_cli(interrupted, what="x was not exported") == EXIT_INTERRUPTED
    assert capsys.readouterr().err == "interrupted (Ctrl-C): x was not exported; nothing half-written was left\n"
    assert "70" in build_parser().format_help() and "130" in build_parser().format_help()
