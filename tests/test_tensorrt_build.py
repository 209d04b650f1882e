"""TensorRT engine building: every decision tested on the CPU; the real build + run only where TensorRT and a GPU are.

Nothing here stands in for TensorRT: without it the tests check the real "not installed" path, and the GPU
tests skip with the reason probe() gives.
"""

from __future__ import annotations

import fnmatch
import importlib.util
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from export.build_instructions import build_engine_markdown, int8_engine_markdown, trtexec_args, trtexec_plan_name
from export.tensorrt_build import (
    EXIT_INPUT,
    EXIT_UNAVAILABLE,
    STRATEGY_BUILDER_FLAG,
    STRATEGY_FP32,
    STRATEGY_INT8_FLAG,
    STRATEGY_INT8_STRONGLY_TYPED,
    STRATEGY_STRONGLY_TYPED,
    EngineBuildError,
    EngineUnavailable,
    build_engine,
    build_parser,
    build_plan,
    check_explicit_quantization,
    fp16_strategy,
    int8_strategy,
    main,
    plan_identity,
    register_engine,
    source_graphs,
)
from runtime.backends.tensorrt_backend import probe
from runtime.bundle.layout import EMBEDDING_FP16_ONNX, EMBEDDING_INT8_ONNX, EMBEDDING_ONNX, INPUT_NAME, MANIFEST_NAME
from runtime.engines import (
    ENGINE_GLOB,
    BatchProfile,
    PlanTarget,
    check_plan,
    engine_cache_key,
    engine_file_name,
    engine_sidecar,
    gpu_tag,
    parse_engine_file_name,
    select_plan,
    sidecar_name,
    trt_tag,
)

REPO = Path(__file__).resolve().parents[1]
HWC = (8, 8, 3)
DIM = 4
SHA = "ab" * 32
KEY_ARGS = dict(
    model_sha256=SHA,
    trt_version="10.3.0.30",
    compute_capability=(8, 7),
    precision="fp16",
    profile=BatchProfile(1, 8, 32),
    input_shape=(105, 105, 3),
)
HAS_TRT = importlib.util.find_spec("tensorrt") is not None


# ---------------------------------------------------------------------------------------------------------------
# a tiny real bundle: embedding.onnx (image NHWC -> embedding) and a manifest, no TensorFlow needed
# ---------------------------------------------------------------------------------------------------------------


def write_embedding_onnx(path: Path, hwc=HWC, dim=DIM, seed=0) -> Path:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    h, w, c = hwc
    weights = np.random.default_rng(seed).standard_normal((h * w * c, dim)).astype(np.float32) * 0.1
    graph = helper.make_graph(
        [
            helper.make_node("Flatten", [INPUT_NAME], ["flat"], axis=1),
            helper.make_node("MatMul", ["flat", "w"], ["embedding"]),
        ],
        "embedding",
        [helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, ["N", h, w, c])],
        [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["N", dim])],
        [numpy_helper.from_array(weights, "w")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def make_bundle(root: Path, name: str = "tiny", hwc=HWC) -> Path:
    from runtime.bundle.layout import SCHEMA_VERSION
    from runtime.bundle.manifest import Manifest, write_manifest
    from runtime.preprocess import Preprocessing

    bundle = root / name
    bundle.mkdir(parents=True)
    write_embedding_onnx(bundle / EMBEDDING_ONNX, hwc)
    pre = Preprocessing(height=hwc[0], width=hwc[1], color="rgb" if hwc[2] == 3 else "gray")
    fields = {
        "schema_version": SCHEMA_VERSION,
        "name": name,
        "preprocessing": pre.to_dict(),
        "embedding": {"file": EMBEDDING_ONNX, "dim": DIM, "l2_normalized": False},
        "head": {"kind": "euclidean", "file": None},
        "score": {"kind": "distance", "same_when": "low", "threshold": 0.5},
        "files": {},
    }
    write_manifest(bundle, Manifest.from_dict(fields))
    return bundle


@pytest.fixture
def bundle(tmp_path: Path) -> Path:
    return make_bundle(tmp_path)


# ---------------------------------------------------------------------------------------------------------------
# FP16 strategy per TensorRT version
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("version", ["10.0", "10.3", "10.3.0.30", "10.16.1"])
def test_tensorrt_10_uses_the_fp16_builder_flag_on_the_fp32_graph(version):
    assert fp16_strategy(version) == STRATEGY_BUILDER_FLAG == "builder-flag"
    assert build_plan(version, "fp16") == (STRATEGY_BUILDER_FLAG, EMBEDDING_ONNX)


@pytest.mark.parametrize("version", ["11.0", "11.0.0", "11.4.1", "12.1"])
def test_tensorrt_11_builds_the_fp16_graph_strongly_typed(version):
    assert fp16_strategy(version) == STRATEGY_STRONGLY_TYPED == "strongly-typed-fp16-onnx"
    assert build_plan(version, "fp16") == (STRATEGY_STRONGLY_TYPED, EMBEDDING_FP16_ONNX)


@pytest.mark.parametrize("version", ["10.3", "11.0"])
def test_fp32_builds_the_fp32_graph_on_every_version(version):
    assert build_plan(version, "fp32") == (STRATEGY_FP32, EMBEDDING_ONNX)


@pytest.mark.parametrize("version", ["8.6", "8.6.1.6", "9.3.0"])
def test_tensorrt_older_than_10_is_refused(version):
    with pytest.raises(ValueError, match=rf"TensorRT {re.escape(version)}: .*TensorRT 10 or newer"):
        fp16_strategy(version)


@pytest.mark.parametrize("bad", ["", "ten", "10.x", "10..3", "v10.3"])
def test_unparseable_tensorrt_version_is_refused(bad):
    with pytest.raises(ValueError, match="dotted integers"):
        fp16_strategy(bad)


def test_unknown_precision_is_refused():
    with pytest.raises(ValueError, match="precision 'bf16'"):
        build_plan("10.3", "bf16")


# ---------------------------------------------------------------------------------------------------------------
# batch profiles
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, expected",
    [("1:8:32", (1, 8, 32)), (" 1 : 8 : 32 ", (1, 8, 32)), ("4:4:4", (4, 4, 4)), ("8", (1, 8, 8)), ("1", (1, 1, 1))],
)
def test_profile_parse(text, expected):
    p = BatchProfile.parse(text)
    assert (p.min, p.opt, p.max) == expected
    assert BatchProfile.parse(str(p)) == p


@pytest.mark.parametrize("text", ["0:8:32", "8:4:32", "1:64:32", "1:8", "1:8:32:64", "a:b:c", "", "1:8:-1", "1.5:8:32"])
def test_profile_parse_errors_name_the_text_and_the_expected_form(text):
    with pytest.raises(ValueError) as e:
        BatchProfile.parse(text)
    assert repr(text) in str(e.value)
    assert "MIN:OPT:MAX" in str(e.value) and "1 <= MIN <= OPT <= MAX" in str(e.value)


def test_profile_constructor_validates_too():
    with pytest.raises(ValueError, match="MIN:OPT:MAX"):
        BatchProfile(2, 1, 3)


def test_profile_shapes_are_nhwc_with_the_batch_in_front():
    assert BatchProfile(1, 8, 32).shapes((105, 105, 3)) == {
        "min": (1, 105, 105, 3),
        "opt": (8, 105, 105, 3),
        "max": (32, 105, 105, 3),
    }


# ---------------------------------------------------------------------------------------------------------------
# the cache key and file names
# ---------------------------------------------------------------------------------------------------------------


def test_cache_key_is_short_stable_hex():
    key = engine_cache_key(**KEY_ARGS)
    assert re.fullmatch(r"[0-9a-f]{12}", key)
    assert engine_cache_key(**KEY_ARGS) == key
    # pinned: a change of this value invalidates every engine users have built (bump KEY_SCHEMA deliberately)
    assert key == engine_cache_key(**{**KEY_ARGS, "model_sha256": SHA.upper(), "compute_capability": [8, 7]})
    assert key == "cd911645e92e"


@pytest.mark.parametrize(
    "change",
    [
        {"model_sha256": "cd" * 32},
        {"trt_version": "10.3.0.31"},  # a patch release: plans do not move between releases
        {"trt_version": "11.0.0"},
        {"compute_capability": (8, 6)},
        {"compute_capability": (7, 2)},
        {"precision": "fp32"},
        {"precision": "int8"},
        {"profile": BatchProfile(1, 8, 16)},
        {"profile": BatchProfile(1, 4, 32)},
        {"profile": BatchProfile(2, 8, 32)},
        {"input_shape": (105, 105, 1)},
        {"input_shape": (104, 105, 3)},
    ],
)
def test_cache_key_changes_with_every_component(change):
    assert engine_cache_key(**{**KEY_ARGS, **change}) != engine_cache_key(**KEY_ARGS)


@pytest.mark.parametrize(
    "bad",
    [{"model_sha256": "not-hex"}, {"compute_capability": (8,)}, {"precision": "bf16"}, {"input_shape": (105, 105)}],
)
def test_cache_key_rejects_bad_components(bad):
    with pytest.raises(ValueError):
        engine_cache_key(**{**KEY_ARGS, **bad})


def test_engine_file_name_follows_the_design_and_carries_the_key():
    key = engine_cache_key(**KEY_ARGS)
    name = engine_file_name("10.3.0.30", (8, 7), "fp16", key)
    assert name == f"embedding.trt10.3.sm87.fp16.{key}.plan"
    assert fnmatch.fnmatch(name, ENGINE_GLOB)
    assert parse_engine_file_name(name) == {"trt": "10.3", "sm": "87", "precision": "fp16", "key": key}
    assert sidecar_name(name) == name + ".json"
    other = engine_cache_key(**{**KEY_ARGS, "profile": BatchProfile(1, 4, 8)})
    assert engine_file_name("10.3.0.30", (8, 7), "fp16", other) != name  # profiles never overwrite each other
    assert not fnmatch.fnmatch(trtexec_plan_name("fp16"), ENGINE_GLOB)  # a trtexec plan has no sidecar
    assert parse_engine_file_name("embedding.onnx") is None


def test_tags():
    assert trt_tag("10.8.0.43") == "trt10.8"
    assert trt_tag("11") == "trt11.0"
    assert gpu_tag((8, 7)) == "sm87"
    assert gpu_tag((12, 0)) == "sm120"
    with pytest.raises(ValueError):
        engine_file_name("10.3", (8, 7), "fp16", "NOT HEX")


# ---------------------------------------------------------------------------------------------------------------
# BUILD_ENGINE.md
# ---------------------------------------------------------------------------------------------------------------


def _section_code(md: str, heading: str) -> str:
    """The first ```sh block after ``heading``, with line continuations joined."""
    part = md.split(heading, 1)[1]
    block = part.split("```sh\n", 1)[1].split("```", 1)[0]
    return block.replace("\\\n", " ")


def _onnx_input_hwc(path: Path) -> tuple[int, int, int]:
    from export.triton import onnx_io

    inputs, _ = onnx_io(path)
    return inputs[INPUT_NAME].dims


def test_build_engine_md_has_exact_trtexec_lines_for_both_versions_with_the_bundles_shapes(bundle):
    hwc = _onnx_input_hwc(bundle / EMBEDDING_ONNX)  # the real graph's shape, not a retyped one
    md = build_engine_markdown(bundle.name, hwc, BatchProfile(1, 8, 32), "fp16", 1.5, "TensorRT is not installed (x)")
    assert "No TensorRT engine was built when this bundle was exported: TensorRT is not installed (x)." in md
    h, w, c = hwc
    shapes = [
        f"--minShapes=image:1x{h}x{w}x{c}",
        f"--optShapes=image:8x{h}x{w}x{c}",
        f"--maxShapes=image:32x{h}x{w}x{c}",
    ]

    ten = _section_code(md, "### TensorRT 10.x").split()
    assert ten[:3] == ["trtexec", "--onnx=embedding.onnx", "--fp16"]
    assert "--stronglyTyped" not in ten
    eleven = _section_code(md, "### TensorRT 11.x").split()
    assert eleven[:3] == ["trtexec", "--onnx=embedding.fp16.onnx", "--stronglyTyped"]
    assert "--fp16" not in eleven  # removed in TensorRT 11
    for args in (ten, eleven):
        assert all(s in args for s in shapes)
        assert "--memPoolSize=workspace:1536M" in args
        assert "--timingCacheFile=../trt_timing.cache" in args
        assert "--saveEngine=embedding.fp16.trtexec.plan" in args
        assert "--skipInference" in args

    tool = _section_code(md, "## With this project")
    assert (
        f"python -m export.tensorrt_build --bundle {bundle.name} --batch 1:8:32 --precision fp16 --workspace 1.5"
        in tool
    )
    assert "python -m export.build --model MODEL_FILE" in md and "--engine" in md
    assert f"trtexec --loadEngine=embedding.fp16.trtexec.plan --shapes=image:8x{h}x{w}x{c}" in md


def test_build_engine_md_fp32_never_asks_for_fp16():
    md = build_engine_markdown("b", (28, 28, 1), BatchProfile.parse("1:4:8"), "fp32", 2, "no CUDA GPU found (y)")
    for heading in ("### TensorRT 10.x", "### TensorRT 11.x"):
        args = _section_code(md, heading).split()
        assert args[1:3] == ["--onnx=embedding.onnx", "--noTF32"]
        assert "--fp16" not in args
        assert "--maxShapes=image:8x28x28x1" in args
        assert "--memPoolSize=workspace:2048M" in args


def test_int8_trtexec_lines_build_the_qdq_graph_without_a_calibrator():
    ten = trtexec_args(10, (28, 28, 1), BatchProfile.parse("1:4:8"), "int8")
    eleven = trtexec_args(11, (28, 28, 1), BatchProfile.parse("1:4:8"), "int8")
    assert ten[:2] == ["--onnx=embedding.int8.onnx", "--int8"] and "--fp16" not in ten
    assert eleven[:2] == ["--onnx=embedding.int8.onnx", "--stronglyTyped"] and "--int8" not in eleven
    assert not any("calib" in a.lower() for a in ten + eleven)
    md = int8_engine_markdown("b", (28, 28, 1), BatchProfile.parse("1:4:8"), 2)
    assert "--precision int8" in md and "trtexec \\\n  --onnx=embedding.int8.onnx \\\n  --int8" in md


def test_trtexec_args_refuse_old_tensorrt():
    with pytest.raises(ValueError, match="TensorRT 10 or newer"):
        trtexec_args(8, (8, 8, 3), BatchProfile(1, 1, 1))


# ---------------------------------------------------------------------------------------------------------------
# without TensorRT (as on this machine): the real "missing" path, no stand-in module
# ---------------------------------------------------------------------------------------------------------------

needs_no_trt = pytest.mark.skipif(HAS_TRT, reason="TensorRT is installed here; these tests check its absence")


@needs_no_trt
def test_probe_reports_that_tensorrt_is_missing():
    info = probe()
    assert info["tensorrt"] is None
    assert info["reason"].startswith("TensorRT is not installed (pip install 'siamese-edge[gpu]')")
    assert "\n" not in info["reason"]
    assert set(info) == {"tensorrt", "cuda_api", "gpu", "compute_capability", "reason"}  # cuda_api: issue 19 item 3


@needs_no_trt
def test_build_engine_raises_engine_unavailable_with_one_clear_line(bundle, tmp_path):
    cache = tmp_path / "trt_timing.cache"
    with pytest.raises(EngineUnavailable) as e:
        build_engine(bundle, HWC, BatchProfile(1, 8, 32), "fp16", 2.0, cache)
    msg = str(e.value)
    assert "\n" not in msg
    assert "TensorRT is not installed (pip install 'siamese-edge[gpu]')" in msg
    assert not list(bundle.glob("*.plan")) and not cache.exists()  # nothing half-made


def test_build_engine_checks_its_arguments_before_looking_for_tensorrt(bundle):
    with pytest.raises(ValueError, match="precision"):
        build_engine(bundle, HWC, BatchProfile(1, 8, 32), "bf16")
    with pytest.raises(ValueError, match="workspace"):
        build_engine(bundle, HWC, BatchProfile(1, 8, 32), "fp16", 0)
    with pytest.raises(ValueError, match="input shape"):
        build_engine(bundle, (8, 8), BatchProfile(1, 8, 32))


def test_importing_the_builder_loads_no_gpu_library():
    code = "import sys, export.tensorrt_build, export.triton; print(sorted(m for m in sys.modules if m.split('.')[0] in ('tensorrt', 'cuda')))"
    r = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[]"


def test_cli_help():
    r = subprocess.run(
        [sys.executable, "-m", "export.tensorrt_build", "--help"], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert r.returncode == 0
    for flag in ("--bundle", "--batch", "--precision", "--workspace", "--timing-cache", "--force", "--probe"):
        assert flag in r.stdout


@needs_no_trt
def test_cli_without_tensorrt_exits_3_with_a_clear_message(bundle):
    r = subprocess.run(
        [sys.executable, "-m", "export.tensorrt_build", "--bundle", str(bundle), "--batch", "1:2:4"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == EXIT_UNAVAILABLE == 3
    lines = r.stderr.strip().splitlines()
    assert lines == [lines[-1]] and lines[0].startswith("error: cannot build a TensorRT engine here: TensorRT is not")
    assert "Traceback" not in r.stderr
    manifest = json.loads((bundle / MANIFEST_NAME).read_text())
    assert "engines" not in manifest  # nothing recorded


def test_cli_input_errors_exit_2(tmp_path, bundle, capsys):
    assert main(["--bundle", str(tmp_path / "nope")]) == EXIT_INPUT
    assert "not a bundle folder" in capsys.readouterr().err
    assert main(["--bundle", str(bundle), "--batch", "8:1:4"]) == EXIT_INPUT
    assert "MIN:OPT:MAX" in capsys.readouterr().err
    assert main([]) == EXIT_INPUT
    assert "--bundle DIR is required" in capsys.readouterr().err


@needs_no_trt
def test_cli_probe_prints_json_and_exits_3(capsys):
    assert main(["--probe"]) == EXIT_UNAVAILABLE
    info = json.loads(capsys.readouterr().out)
    assert info["tensorrt"] is None and "TensorRT is not installed" in info["reason"]


# ---------------------------------------------------------------------------------------------------------------
# with TensorRT and a GPU: a real build, reuse, a run against ONNX Runtime (skipped here, with the reason)
# ---------------------------------------------------------------------------------------------------------------


def _gpu_skip_reason() -> str | None:
    info = probe()
    return info["reason"]


gpu = pytest.mark.gpu


@pytest.fixture
def gpu_ready():
    reason = _gpu_skip_reason()
    if reason:
        pytest.skip(f"needs TensorRT and a CUDA GPU: {reason}")


def _run_plan(plan: bytes, x: np.ndarray, dim: int) -> np.ndarray:
    """Deserialize the plain plan and run one batch through it with cuda-python buffers."""
    import tensorrt as trt

    from runtime.backends.cuda_memory import import_cudart

    cudart = import_cudart()

    def ok(ret):
        err, *rest = ret if isinstance(ret, tuple) else (ret,)
        assert err == cudart.cudaError_t.cudaSuccess, err
        return rest[0] if rest else None

    engine = trt.Runtime(trt.Logger(trt.Logger.WARNING)).deserialize_cuda_engine(plan)
    assert engine is not None
    context = engine.create_execution_context()
    context.set_input_shape(INPUT_NAME, x.shape)
    out = np.empty((x.shape[0], dim), np.float32)
    d_in, d_out = ok(cudart.cudaMalloc(x.nbytes)), ok(cudart.cudaMalloc(out.nbytes))
    stream = ok(cudart.cudaStreamCreate())
    try:
        h2d, d2h = cudart.cudaMemcpyKind.cudaMemcpyHostToDevice, cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost
        ok(cudart.cudaMemcpy(d_in, x.ctypes.data, x.nbytes, h2d))
        context.set_tensor_address(INPUT_NAME, int(d_in))
        context.set_tensor_address("embedding", int(d_out))
        assert context.execute_async_v3(int(stream))
        ok(cudart.cudaStreamSynchronize(stream))
        ok(cudart.cudaMemcpy(out.ctypes.data, d_out, out.nbytes, d2h))
    finally:
        cudart.cudaFree(d_in)
        cudart.cudaFree(d_out)
        cudart.cudaStreamDestroy(stream)
    return out


@gpu
def test_real_build_reuse_and_run(gpu_ready, bundle, tmp_path):
    import onnxruntime as ort

    info = probe()
    if build_plan(info["tensorrt"], "fp16")[1] == EMBEDDING_FP16_ONNX:
        pytest.skip("TensorRT 11 builds from embedding.fp16.onnx, which only export.build writes (test_export_build)")
    cache = tmp_path / "trt_timing.cache"
    profile = BatchProfile(1, 2, 4)
    side = build_engine(bundle, HWC, profile, "fp16", 0.25, cache)
    plan_path = bundle / side["file"]
    assert side["reused"] is False and plan_path.is_file() and cache.is_file()
    assert fnmatch.fnmatch(side["file"], ENGINE_GLOB)
    assert json.loads((bundle / sidecar_name(side["file"])).read_text())["key"] == side["key"]
    assert side["strategy"] == STRATEGY_BUILDER_FLAG and side["profile"]["max"] == 4

    again = build_engine(bundle, HWC, profile, "fp16", 0.25, cache)
    assert again["reused"] is True and again["key"] == side["key"]
    rebuilt = build_engine(bundle, HWC, profile, "fp16", 0.25, cache, force=True)
    assert rebuilt["reused"] is False and rebuilt["timing_cache_reused"] is True

    x = np.random.default_rng(1).random((3, *HWC), dtype=np.float32)
    got = _run_plan(plan_path.read_bytes(), x, DIM)
    ref = ort.InferenceSession(str(bundle / EMBEDDING_ONNX), providers=["CPUExecutionProvider"]).run(
        None, {INPUT_NAME: x}
    )[0]
    cos = np.sum(got * ref, 1) / (np.linalg.norm(got, axis=1) * np.linalg.norm(ref, axis=1))
    assert cos.min() >= 0.999


@gpu
def test_cli_builds_and_records_the_plan_in_the_manifest(gpu_ready, bundle):
    from runtime.bundle.manifest import load_manifest

    info = probe()
    if build_plan(info["tensorrt"], "fp16")[1] == EMBEDDING_FP16_ONNX:
        pytest.skip("TensorRT 11 builds from embedding.fp16.onnx, which only export.build writes (test_export_build)")
    assert main(["--bundle", str(bundle), "--batch", "1:2:4", "--workspace", "0.25"]) == 0
    manifest = load_manifest(bundle)  # verifies the sha256 of the plan and sidecar too
    (engine,) = manifest.engines
    assert engine["file"] in manifest.files and sidecar_name(engine["file"]) in manifest.files


def test_fp32_pinned_layers_come_from_the_fp16_graph(tmp_path):
    """TensorRT 10 builds from the FP32 graph with the FP16 flag; it pins what the FP16 graph kept in FP32."""
    import onnx
    from onnx import TensorProto, helper

    from export.tensorrt_build import fp32_pinned_layers
    from runtime.bundle.layout import FP32_NODES_KEY

    assert fp32_pinned_layers(tmp_path) == []  # no FP16 graph: nothing to pin
    x = helper.make_tensor_value_info("image", TensorProto.FLOAT, ["batch", 4])
    y = helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["batch", 4])
    model = helper.make_model(
        helper.make_graph([helper.make_node("Relu", ["image"], ["embedding"], name="r")], "g", [x], [y]),
        opset_imports=[helper.make_opsetid("", 17)],
    )
    helper.set_model_props(model, {FP32_NODES_KEY: "l2/sum_sq,l2/sqrt"})
    onnx.save(model, str(tmp_path / "embedding.fp16.onnx"))
    assert fp32_pinned_layers(tmp_path) == ["l2/sum_sq", "l2/sqrt"]


# ---------------------------------------------------------------------------------------------------------------
# INT8: explicit quantization from the bundle's QDQ graph (strategy, source, key, errors), all on the CPU
# ---------------------------------------------------------------------------------------------------------------


def add_int8_graph(bundle: Path) -> Path:
    """The bundle's real QDQ graph (export.int8, ONNX Runtime static quantization), recorded in its manifest."""
    from export.int8 import quantize_int8
    from runtime.bundle import Bundle

    x = np.random.default_rng(2).random((16, *HWC), dtype=np.float32)
    quantize_int8(bundle / EMBEDDING_ONNX, bundle / EMBEDDING_INT8_ONNX, x, progress=False)
    Bundle.open(bundle).add_graph("int8", EMBEDDING_INT8_ONNX)
    return bundle / EMBEDDING_INT8_ONNX


@pytest.fixture
def int8_bundle(bundle: Path) -> Path:
    add_int8_graph(bundle)
    return bundle


@pytest.mark.parametrize("version", ["10.0", "10.3", "10.3.0.30", "10.16.1"])
def test_tensorrt_10_builds_int8_from_the_qdq_graph_with_the_int8_flag(version):
    assert int8_strategy(version) == STRATEGY_INT8_FLAG == "int8-flag-qdq-onnx"
    assert build_plan(version, "int8") == (STRATEGY_INT8_FLAG, EMBEDDING_INT8_ONNX)


@pytest.mark.parametrize("version", ["11.0", "11.1.0", "12.1"])
def test_tensorrt_11_builds_the_qdq_graph_strongly_typed(version):
    assert int8_strategy(version) == STRATEGY_INT8_STRONGLY_TYPED == "strongly-typed-int8-qdq-onnx"
    assert build_plan(version, "int8") == (STRATEGY_INT8_STRONGLY_TYPED, EMBEDDING_INT8_ONNX)


def test_int8_refuses_tensorrt_older_than_10():
    with pytest.raises(ValueError, match="TensorRT 8.6: .*TensorRT 10 or newer"):
        build_plan("8.6", "int8")


def test_every_tensorrt_version_builds_int8_and_fp32_from_one_graph_fp16_from_two():
    assert source_graphs("int8") == {EMBEDDING_INT8_ONNX}
    assert source_graphs("fp32") == {EMBEDDING_ONNX}
    assert source_graphs("fp16") == {EMBEDDING_ONNX, EMBEDDING_FP16_ONNX}


def test_the_parsed_network_must_be_explicitly_quantized(tmp_path):
    src = tmp_path / EMBEDDING_INT8_ONNX
    layers = ["SHUFFLE", "CONSTANT", "DEQUANTIZE", "QUANTIZE", "DEQUANTIZE", "MATRIX_MULTIPLY", "QUANTIZE"]
    assert check_explicit_quantization(src, layers) == 4
    for missing in (["SHUFFLE", "MATRIX_MULTIPLY"], ["DEQUANTIZE", "MATRIX_MULTIPLY"]):
        with pytest.raises(EngineBuildError) as e:
            check_explicit_quantization(src, missing)
        assert str(src) in str(e.value) and "QDQ graph" in str(e.value)
        assert "python -m export.build --model MODEL_FILE --int8" in str(e.value)


def test_int8_plan_identity_reads_the_qdq_graph_and_keys_on_its_sha256(int8_bundle):
    from runtime.fileio import sha256_file

    int8 = int8_bundle / EMBEDDING_INT8_ONNX
    profile = BatchProfile(1, 4, 8)
    ident = plan_identity(int8_bundle, "10.3.0.30", (8, 7), "int8", profile, HWC)
    assert (ident.strategy, ident.source) == (STRATEGY_INT8_FLAG, EMBEDDING_INT8_ONNX)
    assert ident.source_sha256 == sha256_file(int8)
    assert ident.fp32_pins == () and ident.fp16_graph_sha256 is None  # INT8 pins nothing (int8_strategy says why)
    assert ident.key == engine_cache_key(sha256_file(int8), "10.3.0.30", (8, 7), "int8", profile, HWC)
    assert ident.file_name == f"embedding.trt10.3.sm87.int8.{ident.key}.plan"
    assert fnmatch.fnmatch(ident.file_name, ENGINE_GLOB)
    assert parse_engine_file_name(ident.file_name)["precision"] == "int8"
    eleven = plan_identity(int8_bundle, "11.1.0", (8, 7), "int8", profile, HWC)
    assert (eleven.strategy, eleven.source) == (STRATEGY_INT8_STRONGLY_TYPED, EMBEDDING_INT8_ONNX)
    keys = {plan_identity(int8_bundle, "10.3.0.30", (8, 7), p, profile, HWC).key for p in ("fp16", "fp32")}
    assert ident.key not in keys  # never the FP32 or FP16 plan's name

    # a recalibrated INT8 graph (other scales): another key, so the old plan is rebuilt, never reused
    from export.int8 import quantize_int8

    x = np.random.default_rng(9).random((16, *HWC), dtype=np.float32) * 3
    quantize_int8(int8_bundle / EMBEDDING_ONNX, int8, x, progress=False)
    assert plan_identity(int8_bundle, "10.3.0.30", (8, 7), "int8", profile, HWC).key != ident.key


def test_int8_pins_nothing_even_where_the_fp16_graph_lists_fp32_islands(int8_bundle):
    import onnx
    from onnx import helper

    from export.fp16 import to_fp16
    from runtime.bundle.layout import FP32_NODES_KEY

    fp16 = to_fp16(onnx.load(str(int8_bundle / EMBEDDING_ONNX)))
    helper.set_model_props(fp16, {FP32_NODES_KEY: "l2/sum_sq"})
    onnx.save(fp16, str(int8_bundle / EMBEDDING_FP16_ONNX))
    profile = BatchProfile(1, 4, 8)
    assert plan_identity(int8_bundle, "10.3.0.30", (8, 7), "fp16", profile, HWC).fp32_pins == ("l2/sum_sq",)
    ident = plan_identity(int8_bundle, "10.3.0.30", (8, 7), "int8", profile, HWC)
    assert ident.fp32_pins == () and ident.fp16_graph_sha256 is None


def test_a_bundle_without_an_int8_graph_is_told_how_to_make_one(bundle):
    with pytest.raises(FileNotFoundError) as e:
        plan_identity(bundle, "11.1.0", (8, 7), "int8", BatchProfile(1, 4, 8), HWC)
    msg = str(e.value)
    assert str(bundle / EMBEDDING_INT8_ONNX) in msg and "QDQ INT8 graph" in msg
    assert "python -m export.build --model MODEL_FILE --int8" in msg
    # before TensorRT or a GPU is looked for: the same words on any machine
    with pytest.raises(FileNotFoundError, match=re.escape(msg)):
        build_engine(bundle, HWC, BatchProfile(1, 4, 8), "int8")


def test_cli_int8_without_the_graph_exits_2_naming_the_file_and_the_fix(bundle, capsys):
    assert main(["--bundle", str(bundle), "--precision", "int8", "--batch", "1:2:4"]) == EXIT_INPUT
    err = capsys.readouterr().err
    assert err.startswith(f"error: {bundle / EMBEDDING_INT8_ONNX}: missing; a TensorRT INT8 plan is built from")
    assert "python -m export.build --model MODEL_FILE --int8" in err and "Traceback" not in err


@needs_no_trt
def test_cli_int8_with_the_graph_gets_as_far_as_tensorrt(int8_bundle, capsys):
    assert main(["--bundle", str(int8_bundle), "--precision", "int8", "--batch", "1:2:4"]) == EXIT_UNAVAILABLE
    assert "cannot build a TensorRT engine here: TensorRT is not installed" in capsys.readouterr().err


def test_cli_help_lists_int8():
    text = build_parser().format_help()
    assert "int8" in text and "--precision {fp16,fp32,int8}" in text


# ---------------------------------------------------------------------------------------------------------------
# the runtime finds int8 plans like fp16 ones (runtime.engines, pure over names, sidecars and hashes)
# ---------------------------------------------------------------------------------------------------------------

ORIN = PlanTarget("10.3.0.30", (8, 7), "Orin")
PROFILE_148 = BatchProfile(1, 4, 8)
ORIN_INFO = {"tensorrt": "10.3.0.30", "cuda_api": "cuda-python 12.6", "gpu": "Orin", "compute_capability": (8, 7),
             "reason": None}  # fmt: skip


def place_plan(bundle: Path, precision: str, target: PlanTarget = ORIN, profile: BatchProfile = PROFILE_148) -> Path:
    """A plan file named, keyed and described as build_engine writes it, for selection only: its bytes are not an
    engine (nothing here deserializes it; the GPU tests build real ones)."""
    ident = plan_identity(bundle, target.trt_version, target.compute_capability, precision, profile, HWC)
    plan = bundle / ident.file_name
    plan.write_bytes(f"placeholder {precision} plan bytes".encode())
    side = engine_sidecar(
        plan, ident.key, target.trt_version, target.compute_capability, precision, ident.source,
        ident.source_sha256, HWC, profile, gpu=target.gpu_name, strategy=ident.strategy,
    )  # fmt: skip
    plan.with_name(sidecar_name(plan.name)).write_text(json.dumps(side))
    return plan


def test_an_int8_plan_is_selected_when_int8_is_asked(int8_bundle):
    int8 = place_plan(int8_bundle, "int8")
    fp16 = place_plan(int8_bundle, "fp16")
    assert check_plan(int8, ORIN, HWC, "int8").ok
    chosen = select_plan(int8_bundle, ORIN, HWC, "int8").plan
    assert chosen is not None and chosen.plan == int8 and chosen.precision == "int8"
    assert select_plan(int8_bundle, ORIN, HWC, "fp16").plan.plan == fp16
    assert select_plan(int8_bundle, ORIN, HWC).plan.plan == fp16  # unasked: FP16, never INT8


def test_an_int8_plan_is_never_taken_unasked(int8_bundle):
    int8 = place_plan(int8_bundle, "int8")
    selection = select_plan(int8_bundle, ORIN, HWC)
    assert selection.plan is None
    assert "an INT8 plan, run only when asked for (precision='int8')" in selection.why_not()
    assert not check_plan(int8, ORIN, HWC, "fp16").ok


def test_an_int8_plan_from_another_qdq_graph_is_refused(int8_bundle):
    from export.int8 import quantize_int8

    int8 = place_plan(int8_bundle, "int8")
    x = np.random.default_rng(11).random((16, *HWC), dtype=np.float32) * 5  # recalibrated: other scales
    quantize_int8(int8_bundle / EMBEDDING_ONNX, int8_bundle / EMBEDDING_INT8_ONNX, x, progress=False)
    check = check_plan(int8, ORIN, HWC, "int8")
    assert not check.ok and f"built from another {EMBEDDING_INT8_ONNX}" in check.summary()
    assert select_plan(int8_bundle, ORIN, HWC, "int8").plan is None


def test_an_int8_plan_for_another_gpu_or_tensorrt_is_refused(int8_bundle):
    place_plan(int8_bundle, "int8", PlanTarget("10.3.0.30", (8, 6), "RTX 3090"))
    place_plan(int8_bundle, "int8", PlanTarget("11.1.0", (8, 7), "Orin"))
    selection = select_plan(int8_bundle, ORIN, HWC, "int8")
    assert selection.plan is None
    assert "built for sm86 (RTX 3090), this GPU is sm87" in selection.why_not()
    assert "built with TensorRT 11.1.0, this machine has TensorRT 10.3.0.30" in selection.why_not()


def test_the_backend_verdict_for_int8(int8_bundle):
    from runtime.backends.tensorrt_backend import plan_verdict

    ok, why, _ = plan_verdict(int8_bundle, ORIN_INFO, HWC, "int8")
    assert not ok and why.startswith("no TensorRT plan in the bundle")
    assert why.endswith(f"rebuild with: python -m export.tensorrt_build --bundle {int8_bundle} --batch 1:8:32 "
                        "--precision int8")  # fmt: skip
    plan = place_plan(int8_bundle, "int8")
    ok, why, selection = plan_verdict(int8_bundle, ORIN_INFO, HWC, "int8")
    assert ok and why == f"{plan.name} matches TensorRT 10.3.0.30 on Orin (sm87)" and selection.plan.plan == plan
    ok, why, _ = plan_verdict(int8_bundle, ORIN_INFO, HWC)  # unasked: the int8 plan is not taken, rebuild FP16
    assert not ok and "run only when asked for (precision='int8')" in why
    assert why.endswith("--batch 1:4:8 --precision fp16")


def test_rebuild_precision():
    from runtime.backends.tensorrt_backend import rebuild_precision

    assert rebuild_precision("int8", ["fp16"]) == "int8"
    assert rebuild_precision(None, ["int8", "fp32"]) == "fp32"
    assert rebuild_precision(None, ["int8", None]) == "fp16"


def test_the_registry_runs_tensorrt_at_int8():
    from runtime.backends.base import entry

    assert entry("tensorrt").precisions == ("fp16", "fp32", "int8")
    assert entry("tensorrt").preferred() == (None,)  # the backend picks: FP16 before FP32, INT8 only when asked


@needs_no_trt
def test_runtime_load_tensorrt_int8_says_why_not_here(int8_bundle):
    import runtime
    from runtime.select import BackendUnavailable

    with pytest.raises(BackendUnavailable, match="backend='tensorrt' cannot run this bundle here: tensorrt") as e:
        runtime.load(int8_bundle, backend="tensorrt", precision="int8")
    assert "TensorRT is not installed" in str(e.value)


@gpu
def test_real_int8_build_reuse_and_run_within_the_int8_gate(gpu_ready, int8_bundle, tmp_path):
    from runtime.backends.onnxruntime_backend import CPU_PROVIDER, OnnxRuntimeBackend
    from runtime.backends.tensorrt_backend import TensorRTBackend
    from runtime.bundle.manifest import load_manifest
    from runtime.parity import compare, tolerances_for

    cache = tmp_path / "trt_timing.cache"
    profile = BatchProfile(1, 2, 4)
    side = build_engine(int8_bundle, HWC, profile, "int8", 0.25, cache)
    assert side["reused"] is False and side["precision"] == "int8" and side["source_onnx"] == EMBEDDING_INT8_ONNX
    assert side["strategy"] == build_plan(probe()["tensorrt"], "int8")[0] and side["qdq_layers"] >= 2
    assert build_engine(int8_bundle, HWC, profile, "int8", 0.25, cache)["reused"] is True
    register_engine(int8_bundle, side)

    x = np.random.default_rng(1).random((6, *HWC), dtype=np.float32)  # 6 images: chunks of the 1..4 profile
    a, b = np.arange(3), np.arange(3, 6)
    backend = TensorRTBackend(int8_bundle, precision="int8")
    try:
        assert backend.info()["precision"] == "int8" and backend.info()["plan"] == side["file"]
        got = backend.embed(x)
        got_scores = backend.score_embeddings(got[a], got[b])
    finally:
        backend.close()
    fp32 = OnnxRuntimeBackend(int8_bundle, providers=[CPU_PROVIDER], precision="fp32")  # the FP32 graph on the CPU
    ref = fp32.embed(x)
    spec = load_manifest(int8_bundle).score
    result = compare("tensorrt", "int8", ref, got, fp32.score_embeddings(ref[a], ref[b]), got_scores, spec)
    assert result.passed and result.checks[0].asked == tolerances_for("int8").min_cosine, result.to_dict()
