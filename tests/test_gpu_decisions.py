"""The decisions the GPU path depends on, tested on the CPU (issue 19): which layers TensorRT 10 pins to FP32,
the timing-cache fallback, the engine cache key, TensorRT version strings, batch chunking and padding, and the
graph an ONNX Runtime session runs for the providers it really got.

Nothing here stands in for TensorRT or a GPU: the pinning is checked on a real graph's node names (the names
tf2onnx 1.17 gives ``tf.math.l2_normalize``, the bundle tools/gpu_smoke.py builds on a GPU) and on the layer names onnx-tensorrt derives from them (its
``getNodeName`` and ``generateUniqueName`` rules, written out below); the ONNX Runtime test opens a real session
that asks for the CUDA provider this machine does not have.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from export.tensorrt_build import (
    STRATEGY_BUILDER_FLAG,
    STRATEGY_STRONGLY_TYPED,
    EngineBuildError,
    TimingCacheVerdict,
    default_timing_cache,
    fp32_pinned_layers,
    plan_fp32_pins,
    plan_identity,
    timing_cache_bytes,
    timing_cache_verdict,
)
from runtime import engines
from runtime.backends import cuda_memory
from runtime.backends import onnxruntime_backend as ortb
from runtime.backends import tensorrt_backend as trtb
from runtime.bundle.layout import EMBEDDING_FP16_ONNX, EMBEDDING_ONNX, FP32_NODES_KEY, INPUT_NAME
from runtime.bundle.manifest import load_manifest
from runtime.engines import BatchProfile, Chunk, engine_cache_key, plan_chunks
from tests.test_tensorrt_build import DIM, HWC, KEY_ARGS
from tools.gpu_smoke import l2_norm_graph, write_l2_bundle

# ---------------------------------------------------------------------------------------------------------------
# FP32 pinning on TensorRT 10
# ---------------------------------------------------------------------------------------------------------------


def onnx_tensorrt_layers(model) -> list[tuple[str, list[str]]]:
    """(layer name, output types) as onnx-tensorrt's TensorRT 10 parser names the layers of ``model``: a node's
    layers are registered under ``getNodeName(node)`` (the name, else ``node_of_<first output>``), made unique by
    ``generateUniqueName`` (``<name>_<global counter>``); a reduction with an axes input first turns its INT64 axes
    into a shape tensor (an INT64 helper layer), then reduces."""
    from onnx import TensorProto

    types = {v.name: v.type.tensor_type.elem_type for v in (*model.graph.value_info, *model.graph.output)}
    names: set[str] = set()
    counter = 0
    layers = []

    def unique(base: str) -> str:
        nonlocal counter
        candidate = base
        while candidate in names:
            candidate = f"{base}_{counter}"
            counter += 1
        names.add(candidate)
        return candidate

    for node in model.graph.node:
        base = node.name or f"node_of_{node.output[0]}"
        if node.op_type.startswith("Reduce") and len(node.input) > 1:
            layers.append((unique(base), ["INT64"]))
        dtype = {TensorProto.FLOAT: "FLOAT", TensorProto.INT64: "INT64"}[types[node.output[0]]]
        layers.append((unique(base), [dtype]))
    return layers


@pytest.fixture(params=[True, False], ids=["named-nodes", "unnamed-nodes"])
def fp16_bundle(request, tmp_path: Path):
    """The smoke check's bundle: tf2onnx's L2-norm graph (named or not) and its FP16 twin from export.fp16."""
    bundle = write_l2_bundle(tmp_path, named=request.param)
    return bundle, l2_norm_graph(request.param)


def test_the_l2_norm_layers_are_pinned_and_nothing_else(fp16_bundle):
    bundle, model = fp16_bundle
    nodes = fp32_pinned_layers(bundle)  # what the FP16 graph keeps in FP32, as export.fp16 lists it
    assert len(nodes) == 4
    layers = onnx_tensorrt_layers(model)
    plan = plan_fp32_pins(nodes, layers)
    assert plan.missing == [] and all(n == 1 for n in plan.matched.values())
    pinned = [layers[i][0] for i in plan.layers]
    square, total, floor, root = nodes
    expected_first = [n if model.graph.node[0].name else f"node_of_{n}" for n in nodes]
    assert pinned == [expected_first[0], expected_first[1] + "_0", expected_first[2], expected_first[3]]
    assert plan.skipped == (expected_first[1],)  # the reduction's INT64 axes helper stays INT64
    assert not any("Rsqrt__11" in p for p in pinned)  # tf2onnx's helper after the root stays FP16
    plan.check()


def test_a_prefix_match_would_have_caught_the_helpers(fp16_bundle):
    """What the old ``startswith(name + '_')`` rule pinned beyond the L2 norm, and the new rule does not."""
    bundle, model = fp16_bundle
    nodes = fp32_pinned_layers(bundle)
    layers = onnx_tensorrt_layers(model)
    old = [n for n, _ in layers if n in nodes or any(n.startswith(w + "_") for w in nodes)]
    new = {layers[i][0] for i in plan_fp32_pins(nodes, layers).layers}
    caught = set(old) - new
    if model.graph.node[0].name:  # named: the Reciprocal helper and the INT64 axes layer
        assert caught == {"l2_normalize/Rsqrt__11", "l2_normalize/Sum"}
    else:  # unnamed: the old rule found none of the node_of_ layers at all, so nothing was pinned
        assert old == [] and len(new) == 4


def test_pinning_that_finds_no_layer_is_an_error_naming_the_node():
    plan = plan_fp32_pins(["l2/sum_sq", "l2/sqrt"], [("l2/sum_sq", ["FLOAT"]), ("other", ["FLOAT"])])
    assert plan.missing == ["l2/sqrt"]
    with pytest.raises(EngineBuildError, match=r"1 of the 2 nodes .* in FP32 match no float layer.*: l2/sqrt"):
        plan.check()
    only_int = plan_fp32_pins(["shape"], [("shape", ["INT64"]), ("shape_3", ["INT32"])])
    assert only_int.layers == () and only_int.missing == ["shape"] and only_int.skipped == ("shape", "shape_3")
    assert plan_fp32_pins([], [("x", ["FLOAT"])]).layers == ()


# ---------------------------------------------------------------------------------------------------------------
# the engine cache key: the pins and the FP16 graph are part of a TensorRT 10 FP16 plan's identity
# ---------------------------------------------------------------------------------------------------------------


def test_cache_key_carries_pins_and_the_fp16_graph_and_is_unchanged_without_them():
    base = engine_cache_key(**KEY_ARGS)
    assert engine_cache_key(**KEY_ARGS, fp32_pins=(), fp16_graph_sha256=None) == base == "cd911645e92e"
    with_pins = engine_cache_key(**KEY_ARGS, fp32_pins=["a", "b"], fp16_graph_sha256="cd" * 32)
    assert with_pins != base
    assert engine_cache_key(**KEY_ARGS, fp32_pins=["a"], fp16_graph_sha256="cd" * 32) != with_pins
    assert engine_cache_key(**KEY_ARGS, fp32_pins=["a", "b"], fp16_graph_sha256="ef" * 32) != with_pins
    with pytest.raises(ValueError, match="FP16 graph sha256 'nope': expected a hex digest"):
        engine_cache_key(**KEY_ARGS, fp16_graph_sha256="nope")


def test_plan_identity_changes_with_the_fp32_islands(fp16_bundle):
    import onnx
    from onnx import helper

    bundle, _ = fp16_bundle
    profile, cc = BatchProfile(1, 4, 8), (8, 7)
    trt10 = plan_identity(bundle, "10.3.0.30", cc, "fp16", profile, (2, 2, 3))
    assert trt10.strategy == STRATEGY_BUILDER_FLAG and trt10.source == EMBEDDING_ONNX
    assert len(trt10.fp32_pins) == 4 and trt10.fp16_graph_sha256 is not None
    assert trt10.file_name == engines.engine_file_name("10.3.0.30", cc, "fp16", trt10.key)
    fp32 = plan_identity(bundle, "10.3.0.30", cc, "fp32", profile, (2, 2, 3))
    trt11 = plan_identity(bundle, "11.1.0", cc, "fp16", profile, (2, 2, 3))
    assert fp32.fp32_pins == () and fp32.fp16_graph_sha256 is None
    assert trt11.strategy == STRATEGY_STRONGLY_TYPED and trt11.fp32_pins == ()  # its source is the FP16 graph

    fp16 = onnx.load(str(bundle / EMBEDDING_FP16_ONNX))  # fewer FP32 islands: another plan
    helper.set_model_props(fp16, {FP32_NODES_KEY: ",".join(trt10.fp32_pins[:2])})
    onnx.save(fp16, str(bundle / EMBEDDING_FP16_ONNX))
    again = plan_identity(bundle, "10.3.0.30", cc, "fp16", profile, (2, 2, 3))
    assert again.fp32_pins == trt10.fp32_pins[:2] and again.key != trt10.key


def test_a_plan_whose_fp32_islands_changed_is_not_used(fp16_bundle):
    bundle, _ = fp16_bundle
    profile, cc, trt = BatchProfile(1, 4, 8), (8, 7), "10.3.0.30"
    ident = plan_identity(bundle, trt, cc, "fp16", profile, (2, 2, 3))
    plan = bundle / ident.file_name
    plan.write_bytes(b"plan bytes")
    side = engines.engine_sidecar(
        plan, ident.key, trt, cc, "fp16", ident.source, ident.source_sha256, (2, 2, 3), profile,
        fp32_pins=list(ident.fp32_pins), fp16_graph_sha256=ident.fp16_graph_sha256,
    )  # fmt: skip
    plan.with_name(engines.sidecar_name(plan.name)).write_text(json.dumps(side))
    machine = engines.PlanTarget(trt, cc)
    assert engines.check_plan(plan, machine, (2, 2, 3)).ok
    with open(bundle / EMBEDDING_FP16_ONNX, "ab") as f:
        f.write(b"\0")
    reasons = engines.check_plan(plan, machine, (2, 2, 3)).reasons
    assert len(reasons) == 1 and reasons[0].startswith(f"its FP32 islands came from another {EMBEDDING_FP16_ONNX}")


# ---------------------------------------------------------------------------------------------------------------
# the timing cache
# ---------------------------------------------------------------------------------------------------------------


def test_timing_cache_fallback_policy(tmp_path):
    path = tmp_path / "trt_timing.cache"
    assert timing_cache_verdict(path, had_bytes=False, created=False, accepted=False) == TimingCacheVerdict(False)
    assert timing_cache_verdict(path, True, True, True).reused is True
    refused = timing_cache_verdict(path, True, True, False)  # set_timing_cache returned False: another GPU
    assert refused.reused is False and f"timing cache {path} was refused by TensorRT" in refused.warning
    unreadable = timing_cache_verdict(path, True, False, False)
    assert unreadable.reused is False and "cannot be read by this TensorRT" in unreadable.warning


def test_no_timing_cache_from_tensorrt_is_nothing_to_save():
    assert timing_cache_bytes(None) is None


def test_default_timing_cache_is_one_per_tensorrt_release_and_gpu(tmp_path):
    bundle = tmp_path / "bundles" / "b"
    orin = default_timing_cache(bundle, "10.3.0.30", (8, 7))
    assert orin == (tmp_path / "bundles" / "trt_timing.trt10.3.0.30.sm87.cache").resolve()
    assert default_timing_cache(bundle, "10.3.0.30", (8, 6)) != orin
    assert default_timing_cache(bundle, "10.3.0.31", (8, 7)) != orin


# ---------------------------------------------------------------------------------------------------------------
# TensorRT versions
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, numbers, normal",
    [
        ("10.3.0.30", (10, 3, 0, 30), "10.3.0.30"),
        ("10.0.0b6", (10, 0, 0), "10.0.0b6"),  # TensorRT 10's early-access wheel
        ("10.14.1.48.post1", (10, 14, 1, 48), "10.14.1.48.post1"),
        (" 11.0.0EA ", (11, 0, 0), "11.0.0ea"),
        ("10.7.0+cuda12", (10, 7, 0), "10.7.0+cuda12"),
    ],
)
def test_versions_with_release_tags_parse(text, numbers, normal):
    assert engines.parse_trt_version(text) == numbers
    assert engines.normalize_trt_version(text) == normal
    assert engines.trt_tag(text) == f"trt{numbers[0]}.{numbers[1]}"


def test_an_unparseable_version_is_a_verdict_not_a_crash(tmp_path):
    ok, why, sel = trtb.plan_verdict(tmp_path, {"tensorrt": "10.x", "compute_capability": (8, 7), "reason": None}, HWC)
    assert not ok and sel is None and why.startswith("TensorRT version '10.x': expected dotted integers")


def test_library_version_numbers_and_releases():
    assert engines.trt_version_from_int(100300) == "10.3.0"
    assert engines.trt_version_from_int(110100) == "11.1.0"
    with pytest.raises(ValueError, match="TensorRT library version 903"):
        engines.trt_version_from_int(903)
    assert engines.same_release("10.3.0", "10.3.0.30") and engines.same_release("10.3.0.30", "10.3.0.30")
    assert not engines.same_release("10.3.0", "10.3.1") and not engines.same_release("10.3", "10.3.0")
    assert not engines.same_release("10.0.0b6", "10.0.0")


# ---------------------------------------------------------------------------------------------------------------
# batches: chunks, padding, empty batches (the TensorRT backend's embed is these plus the GPU copies)
# ---------------------------------------------------------------------------------------------------------------

W = np.random.default_rng(2).standard_normal((int(np.prod(HWC)), 5)).astype(np.float32)


def test_embed_in_chunks_pads_below_the_minimum_and_drops_the_padding():
    profile = BatchProfile(2, 4, 8)
    runs: list[tuple[Chunk, int]] = []
    staging = np.full(profile.max * W.shape[0], np.nan, np.float32)

    def run_chunk(ch: Chunk, rows: np.ndarray) -> np.ndarray:
        trtb.stage_chunk(staging, rows, ch.run)  # what the GPU run copies from
        batch = staging[: ch.run * W.shape[0]].reshape(ch.run, -1)
        assert not np.isnan(batch).any() and not batch[ch.size :].any()  # real rows, then zeros
        runs.append((ch, len(batch)))
        return batch @ W

    x = np.random.default_rng(3).random((20, *HWC), dtype=np.float32)
    for n in (0, 1, 3, 8, 20):
        runs.clear()
        out = trtb.embed_in_chunks(x[:n], W.shape[1], profile, run_chunk)
        assert out.shape == (n, 5) and out.dtype == np.float32
        np.testing.assert_allclose(out, x[:n].reshape(n, W.shape[0]) @ W, rtol=1e-5, atol=1e-5)
        assert [r for _, r in runs] == [c.run for c in plan_chunks(n, profile)]
        assert all(profile.min <= r <= profile.max for _, r in runs)


def test_run_profile_and_batch_checks():
    p = BatchProfile(2, 4, 8)
    assert trtb.run_profile(p, None) == p and trtb.run_profile(p, 16) == p
    assert trtb.run_profile(p, 3) == BatchProfile(2, 3, 3) and trtb.run_profile(p, 1) == BatchProfile(2, 2, 2)
    assert trtb.check_batch(np.zeros((0, *HWC)), HWC).shape == (0, *HWC)
    with pytest.raises(ValueError, match=re.escape("input shape (2, 8, 8), expected (N, 8, 8, 3)")):
        trtb.check_batch(np.zeros((2, 8, 8)), HWC)


def test_native_handle_passes_ints_and_converts_handles():
    assert cuda_memory.native_handle(1234) == 1234
    assert cuda_memory.native_handle(np.uint64(99)) == 99  # an address already read out


def test_native_handle_of_a_cuda_bindings_stream_without_int():
    """With cuda-python installed (up to the first call that needs a driver): the stream's handle comes from
    cuda.bindings.utils where it exists, and no DeprecationWarning from int(stream) is raised."""
    cudart = pytest.importorskip(
        "cuda.bindings.runtime", reason="cuda-python is not installed (a GPU extra installs it)"
    )
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        assert cuda_memory.native_handle(cudart.cudaStream_t()) == 0  # a null stream: the default stream's handle
    assert cuda_memory.import_cudart() is cudart


# ---------------------------------------------------------------------------------------------------------------
# ONNX Runtime: the graph for the providers and TensorRT a session really has
# ---------------------------------------------------------------------------------------------------------------


@pytest.fixture
def fp16_manifest(fp16_bundle):
    bundle, _ = fp16_bundle
    return bundle, load_manifest(bundle, verify=False)


def test_graph_choice_per_provider_and_tensorrt_major(fp16_manifest):
    bundle, m = fp16_manifest
    choose = ortb.choose_graph
    assert choose(m, [ortb.CUDA_EP], "fp16") == ortb.GraphChoice(EMBEDDING_FP16_ONNX, False, "fp16")
    assert choose(m, [ortb.TRT_EP, ortb.CUDA_EP], "fp16", 10) == ortb.GraphChoice(EMBEDDING_ONNX, True, "fp16")
    assert choose(m, [ortb.TRT_EP, ortb.CUDA_EP], "fp16", 11) == ortb.GraphChoice(EMBEDDING_FP16_ONNX, False, "fp16")
    assert choose(m, [ortb.TRT_EP], "fp32", 11) == ortb.GraphChoice(EMBEDDING_ONNX, False, "fp32")
    assert choose(m, [ortb.CPU_EP], "fp16") == ortb.GraphChoice(EMBEDDING_ONNX, False, "fp32")  # a fallback to CPU
    (bundle / EMBEDDING_FP16_ONNX).unlink()
    with pytest.raises(RuntimeError, match=r"embedding\.fp16\.onnx: missing \(TensorRT 11 builds FP16 only from it\)"):
        choose(m, [ortb.TRT_EP], "fp16", 11, bundle)
    assert choose(m, [ortb.TRT_EP], "fp16", 10, bundle).file == EMBEDDING_ONNX  # TensorRT 10 does not need it


def test_trt_fp16_flag_only_for_tensorrt_10():
    cfg = ortb.provider_config([ortb.TRT_EP], "fp16", cache_dir="/c", trt_major=11)
    assert cfg[0][1]["trt_fp16_enable"] is False
    assert ortb.provider_config([ortb.TRT_EP], "fp16", cache_dir="/c", trt_major=10)[0][1]["trt_fp16_enable"] is True


def test_which_tensorrt_the_provider_runs_and_its_cache_folder(tmp_path):
    assert ortb.expected_trt_major("1.26.0") == 10 and ortb.expected_trt_major("1.27.0") == 11
    assert ortb.expected_trt_major("1.31.1", "10.3.0") == 10  # the library found wins over the guess
    assert ortb.ort_trt_cache_dir(tmp_path, "1.31.1", "11.4.0.106") == tmp_path / "ort1.31.1-trt11.4.0.106"
    assert ortb.ort_trt_cache_dir(tmp_path, "1.23.2", None) == tmp_path / "ort1.23.2-trtunknown"
    maps = (
        "7f00-7f01 r-xp 00000000 08:01 1 /usr/lib/x86_64-linux-gnu/libc.so.6\n"
        "7f02-7f03 r-xp 00000000 08:01 2 /venv/lib/python3.11/site-packages/tensorrt_libs/libnvinfer.so.10\n"
        "7f04-7f05 r-xp 00000000 08:01 3 /usr/lib/aarch64-linux-gnu/libnvinfer_plugin.so.10.3.0\n"
    )
    assert ortb.loaded_trt_library(maps) == "/venv/lib/python3.11/site-packages/tensorrt_libs/libnvinfer.so.10"
    assert ortb.loaded_trt_library("7f00-7f01 r-xp 0 0 1 /usr/lib/libc.so.6\n") is None


def test_a_session_that_did_not_get_the_gpu_runs_and_reports_the_graph_for_what_it_got(fp16_bundle):
    """A real session: CUDA asked for fp16 on this machine, which has no CUDA provider. ONNX Runtime falls back to
    the CPU; the backend then runs the FP32 graph and says so, instead of the FP16 graph labelled fp16."""
    bundle, _ = fp16_bundle
    with pytest.warns(UserWarning, match="CUDAExecutionProvider"):
        backend = ortb.OnnxRuntimeBackend(bundle, providers=[ortb.CUDA_EP, ortb.CPU_EP], precision="fp16")
    info = backend.info()
    assert info["provider"] == ortb.CPU_EP and info["device"] == "cpu"
    assert info["precision"] == "fp32" and info["graph"] == EMBEDDING_ONNX
    assert info["asked"] == {"provider": ortb.CUDA_EP, "precision": "fp16"}
    x = np.random.default_rng(4).random((3, 2, 2, 3), dtype=np.float32)
    import onnxruntime as ort

    ref = ort.InferenceSession(str(bundle / EMBEDDING_ONNX), providers=[ortb.CPU_EP]).run(None, {INPUT_NAME: x})[0]
    np.testing.assert_array_equal(backend.embed(x), ref)
    assert backend.embed(x[:0]).shape == (0, DIM)


def test_onnxruntime_and_onnxruntime_gpu_side_by_side_is_named_with_the_fix():
    assert ortb.ort_conflict({"onnxruntime": "1.31.1"}) is None
    assert ortb.ort_conflict({"onnxruntime-gpu": "1.31.1"}) is None
    line = ortb.ort_conflict({"onnxruntime": "1.31.1", "onnxruntime-gpu": "1.30.0"})
    assert "\n" not in line and "onnxruntime 1.31.1 and onnxruntime-gpu 1.30.0 are both installed" in line
    assert line.endswith(
        "pip uninstall -y onnxruntime onnxruntime-gpu && pip install --no-deps 'onnxruntime-gpu==1.30.0'"
    )
    assert "onnxruntime" in ortb.ort_distributions()  # this machine: the core's CPU build


def test_without_tensorrt_there_is_no_default_timing_cache(tmp_path):
    from export.tensorrt_build import default_timing_cache_here

    if not trtb.probe()["reason"]:
        pytest.skip("TensorRT and a GPU are here: the default cache is a real path")
    assert default_timing_cache_here(tmp_path / "b") is None
