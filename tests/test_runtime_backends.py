"""The runtime's backends beyond ONNX Runtime on the CPU: OpenVINO (fp32, bf16), TensorRT plans (matching, chunking,
the real "not installed" path), ONNX Runtime's GPU providers (ordering, options) and the engine-key move.

Bundles are real: export.build on the pretrained Omniglot model (euclidean head) and on a small pyimagesearch model
(learned head, head.onnx). Plan matching runs on real plan and sidecar files written here, never on a stand-in
TensorRT module; what needs a GPU is written for real, marked ``gpu``, and skips with the reason where none exists.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import quick_models

from runtime import engines
from runtime.backends import onnxruntime_backend as ortb
from runtime.backends import tensorrt_backend as trtb
from runtime.bundle.layout import EMBEDDING_FP16_ONNX, EMBEDDING_ONNX, REFERENCE_NPZ
from runtime.bundle.manifest import load_manifest
from runtime.engines import BatchProfile, Chunk, plan_chunks
from runtime.parity import FP16_TOLERANCES, FP32_TOLERANCES, compare

ROOT = Path(__file__).resolve().parents[1]
HAS_OPENVINO = importlib.util.find_spec("openvino") is not None
HAS_TRT = importlib.util.find_spec("tensorrt") is not None
needs_openvino = pytest.mark.skipif(
    not HAS_OPENVINO, reason="OpenVINO is not installed (pip install siamese-edge[openvino])"
)
gpu = pytest.mark.gpu


# ---------------------------------------------------------------------------------------------------------------
# real bundles (built once per module)
# ---------------------------------------------------------------------------------------------------------------


def _export(model: Path, out: Path, name: str) -> Path:
    from export.build import EXIT_OK, main

    assert main(["--model", str(model), "--out", str(out), "--name", name, "--force"]) == EXIT_OK
    return out / name


@pytest.fixture(scope="module")
def omniglot_bundle(tmp_path_factory) -> Path:
    """The pretrained Omniglot model (40x40x1, 128-d L2-normalised embedding, euclidean distance), exported once
    per session (shared with the gallery, bench and camera tests; tests that change a bundle copy it first)."""
    return quick_models.omniglot_bundle(tmp_path_factory)


@pytest.fixture(scope="module")
def learned_head_bundle(tmp_path_factory) -> Path:
    """A small pyimagesearch model (28x28x1, sigmoid head: head.onnx) saved to .keras and exported here."""
    import keras

    from train.models import create_model

    keras.utils.set_random_seed(3)
    folder = tmp_path_factory.mktemp("pis")
    model = folder / "pis.keras"
    create_model("pyimagesearch").model.save(model)
    return _export(model, folder / "bundles", "pis")


def _reference(bundle: Path) -> dict[str, np.ndarray]:
    with np.load(bundle / REFERENCE_NPZ) as d:
        return {k: d[k] for k in d.files}


def _parity(backend, bundle: Path, precision: str):
    ref = _reference(bundle)
    emb = backend.embed(ref["inputs"])
    scores = backend.score_embeddings(emb[ref["pair_a"]], emb[ref["pair_b"]])
    spec = load_manifest(bundle).score
    return compare(backend.name, precision, ref["embeddings"], emb, ref["scores"], scores, spec)


def _copy_bundle(bundle: Path, dest: Path) -> Path:
    return Path(shutil.copytree(bundle, dest / bundle.name))


# ---------------------------------------------------------------------------------------------------------------
# OpenVINO
# ---------------------------------------------------------------------------------------------------------------


@needs_openvino
@pytest.mark.parametrize("which", ["omniglot_bundle", "learned_head_bundle"])
def test_openvino_fp32_meets_the_fp32_tolerances(which, request):
    from runtime.backends.openvino_backend import OpenVINOBackend

    bundle = request.getfixturevalue(which)
    backend = OpenVINOBackend(bundle, precision="fp32", threads=2)
    result = _parity(backend, bundle, "fp32")
    assert result.passed, result.to_dict()
    assert result.metrics["embedding_rel"] <= FP32_TOLERANCES.embedding_rel
    assert result.metrics["score_max_abs"] <= FP32_TOLERANCES.score_abs
    info = backend.info()
    assert info["backend"] == "openvino" and info["precision"] == "fp32" and info["device"] == "cpu"
    assert set(backend.layer_precisions) == {"f32"}, backend.layer_precisions  # no layer quietly in bf16
    assert backend.embed(np.zeros((0, *load_manifest(bundle).preprocessing.input_shape), np.float32)).shape[0] == 0


@needs_openvino
def test_openvino_thread_count_is_applied(omniglot_bundle):
    import openvino.properties as props

    from runtime.backends.openvino_backend import OpenVINOBackend

    backend = OpenVINOBackend(omniglot_bundle, precision="fp32", threads=1)
    assert backend._compiled.get_property(props.inference_num_threads) == 1


@needs_openvino
def test_openvino_from_many_threads_gives_what_one_thread_gives(omniglot_bundle):
    from concurrent.futures import ThreadPoolExecutor

    from runtime.backends.openvino_backend import OpenVINOBackend

    backend = OpenVINOBackend(omniglot_bundle, precision="fp32", threads=1)
    x = _reference(omniglot_bundle)["inputs"]
    serial = [backend.embed(x[i:], batch_size=16) for i in range(5)]
    with ThreadPoolExecutor(4) as pool:
        outs = list(pool.map(lambda i: backend.embed(x[i % 5 :], batch_size=16), range(12)))
    for i, out in enumerate(outs):
        np.testing.assert_array_equal(out, serial[i % 5])


def _bf16_support() -> str | None:
    from runtime.backends.openvino_backend import bf16_support

    return bf16_support()


@needs_openvino
def test_openvino_bf16_meets_the_fp16_tolerances(omniglot_bundle):
    from runtime.backends.openvino_backend import OpenVINOBackend, cpu_capabilities

    if _bf16_support() != "native":
        pytest.skip(f"this CPU has no native bf16 (OpenVINO CPU capabilities: {', '.join(cpu_capabilities())})")
    backend = OpenVINOBackend(omniglot_bundle, precision="bf16", threads=2)
    assert "bf16" in backend.layer_precisions
    result = _parity(backend, omniglot_bundle, "bf16")
    assert result.passed, result.to_dict()
    assert result.metrics["min_cosine"] >= FP16_TOLERANCES.min_cosine and result.metrics["decision_flips"] == 0


@needs_openvino
def test_openvino_bf16_numerics_where_bf16_is_only_emulated(omniglot_bundle):
    """On AVX-512 without BF16 the CPU plugin emulates bf16: the backend refuses it by default (slower than f32),
    but the numbers are bf16 numbers, so their parity is checked here too."""
    from runtime.backends.openvino_backend import OpenVINOBackend, OpenVINOUnavailable, available

    support = _bf16_support()
    if support != "emulated":
        pytest.skip(f"bf16 is {support or 'not available'} here, not emulated")
    ok, why = available(omniglot_bundle, "bf16")
    assert not ok and "no native bf16" in why and "emulated" in why
    with pytest.raises(OpenVINOUnavailable, match="no native bf16"):
        OpenVINOBackend(omniglot_bundle, precision="bf16")
    backend = OpenVINOBackend(omniglot_bundle, precision="bf16", threads=2, allow_emulated_bf16=True)
    assert "bf16" in backend.layer_precisions and backend.info()["bf16"] == "emulated"
    result = _parity(backend, omniglot_bundle, "bf16")
    assert result.passed, result.to_dict()
    assert result.metrics["embedding_max_abs"] > 0  # bf16 really ran: not bit-equal to the FP32 reference


@needs_openvino
def test_openvino_available_and_precision_order():
    from runtime.backends import openvino_backend as ovb

    assert ovb.available()[0] and ovb.available(precision=None)[0]
    assert ovb.precisions() == (("bf16", "fp32") if ovb.bf16_support() == "native" else ("fp32",))
    assert ovb.available(precision="int4") == (
        False,
        "precision 'int4': the OpenVINO backend runs fp32 or bf16 or fp16 or int8",
    )
    with pytest.raises(ValueError, match="precision 'int4'"):
        ovb.OpenVINOBackend("nowhere", precision="int4")


def test_bf16_support_reads_openvinos_capabilities():
    from runtime.backends.openvino_backend import bf16_support, fp16_support

    assert bf16_support(["FP32", "BF16", "INT8"]) == "native"
    assert bf16_support([]) is None  # no OpenVINO, nothing reported
    assert fp16_support(["FP32", "FP16"]) == "native" and fp16_support(["FP32"]) is None


# ---------------------------------------------------------------------------------------------------------------
# TensorRT: chunking (pure)
# ---------------------------------------------------------------------------------------------------------------


def test_chunks_cover_the_batch_within_the_profile():
    p = BatchProfile(1, 8, 32)
    assert plan_chunks(0, p) == []
    assert plan_chunks(5, p) == [Chunk(0, 5, 5)]
    assert plan_chunks(32, p) == [Chunk(0, 32, 32)]
    assert plan_chunks(70, p) == [Chunk(0, 32, 32), Chunk(32, 64, 32), Chunk(64, 70, 6)]
    for n in (1, 31, 33, 64, 65, 100):
        chunks = plan_chunks(n, p)
        assert [c.start for c in chunks] == list(range(0, n, 32))
        assert sum(c.size for c in chunks) == n and chunks[-1].stop == n
        assert all(p.min <= c.run <= p.max and c.run == c.size for c in chunks)


def test_a_last_chunk_below_the_profile_minimum_is_padded():
    p = BatchProfile(4, 8, 8)
    assert plan_chunks(2, p) == [Chunk(0, 2, 4)]
    assert plan_chunks(10, p) == [Chunk(0, 8, 8), Chunk(8, 10, 4)]
    assert all(c.run >= 4 for c in plan_chunks(13, p))


@pytest.mark.parametrize("bad", [-1, 2.5, "3", True])
def test_chunking_rejects_bad_sizes(bad):
    with pytest.raises(ValueError, match="batch size"):
        plan_chunks(bad, BatchProfile(1, 1, 1))


# ---------------------------------------------------------------------------------------------------------------
# TensorRT: which plan may run here (real plan and sidecar files, no TensorRT)
# ---------------------------------------------------------------------------------------------------------------

DEFAULT_PROFILE = BatchProfile(1, 8, 32)
ORIN = {"tensorrt": "10.3.0.30", "gpu": "Orin", "compute_capability": (8, 7), "reason": None}


def write_plan(
    bundle: Path,
    trt_version: str = "10.3.0.30",
    cc=(8, 7),
    precision: str = "fp16",
    profile: BatchProfile = DEFAULT_PROFILE,
    gpu: str = "Orin",
    payload: bytes = b"plan bytes as TensorRT would write them",
) -> Path:
    """A plan file and its sidecar exactly as export.tensorrt_build names and describes them (same functions)."""
    from runtime.fileio import sha256_file

    hwc = load_manifest(bundle).preprocessing.input_shape
    source_sha = sha256_file(bundle / EMBEDDING_ONNX)
    key = engines.engine_cache_key(source_sha, trt_version, cc, precision, profile, hwc)
    plan = bundle / engines.engine_file_name(trt_version, cc, precision, key)
    plan.write_bytes(payload)
    side = engines.engine_sidecar(
        plan,
        key,
        trt_version,
        cc,
        precision,
        EMBEDDING_ONNX,
        source_sha,
        hwc,
        profile,
        gpu=gpu,
        strategy="builder-flag",
    )
    plan.with_name(engines.sidecar_name(plan.name)).write_text(json.dumps(side))
    return plan


@pytest.fixture
def plan_bundle(omniglot_bundle, tmp_path) -> Path:
    return _copy_bundle(omniglot_bundle, tmp_path)


def _verdict(bundle: Path, machine=ORIN, precision=None):
    hwc = load_manifest(bundle, verify=False).preprocessing.input_shape  # the plan check hashes what it needs
    return trtb.plan_verdict(bundle, machine, hwc, precision)


def test_a_plan_for_this_gpu_and_tensorrt_is_accepted(plan_bundle):
    plan = write_plan(plan_bundle)
    ok, why, sel = _verdict(plan_bundle)
    assert ok, why
    assert sel.plan.plan == plan and why == f"{plan.name} matches TensorRT 10.3.0.30 on Orin (sm87)"
    assert sel.plan.profile == BatchProfile(1, 8, 32) and sel.plan.precision == "fp16"


def test_a_plan_for_another_gpu_is_rejected_with_the_rebuild_command(plan_bundle):
    write_plan(plan_bundle)
    ok, why, _ = _verdict(plan_bundle, {**ORIN, "gpu": "RTX 3090", "compute_capability": (8, 6)})
    assert not ok
    assert "built for sm87 (Orin), this GPU is sm86 (RTX 3090)" in why
    assert why.endswith(
        f" ; rebuild with: python -m export.tensorrt_build --bundle {plan_bundle} --batch 1:8:32 --precision fp16"
    )


@pytest.mark.parametrize("here", ["10.3.0.31", "10.8.0.43", "11.0.0"])
def test_a_plan_for_another_tensorrt_version_is_rejected(plan_bundle, here):
    write_plan(plan_bundle)
    ok, why, _ = _verdict(plan_bundle, {**ORIN, "tensorrt": here})
    assert not ok
    assert f"built with TensorRT 10.3.0.30, this machine has TensorRT {here}" in why
    assert "; rebuild with: python -m export.tensorrt_build --bundle" in why


def test_a_hand_edited_sidecar_does_not_pass(plan_bundle):
    plan = write_plan(plan_bundle, trt_version="10.2.0.19")
    side_path = plan.with_name(engines.sidecar_name(plan.name))
    side = json.loads(side_path.read_text())
    side["tensorrt"] = "10.3.0.30"  # claims this machine's version; the key was computed for 10.2
    side_path.write_text(json.dumps(side))
    ok, why, _ = _verdict(plan_bundle)
    assert not ok and "does not recompute here" in why


def test_a_plan_built_from_another_graph_or_changed_since_is_rejected(plan_bundle, tmp_path):
    plan = write_plan(plan_bundle)
    plan.write_bytes(plan.read_bytes()[:-3])  # truncated after the build
    ok, why, _ = _verdict(plan_bundle)
    assert not ok and "sha256 is not the one its sidecar records" in why

    other = _copy_bundle(plan_bundle, tmp_path / "other")
    write_plan(other)
    (other / EMBEDDING_ONNX).write_bytes((other / EMBEDDING_FP16_ONNX).read_bytes())  # the graph changed
    ok, why, _ = _verdict(other)
    assert not ok and "built from another embedding.onnx" in why


def test_missing_plans_sidecars_and_old_tensorrt(plan_bundle):
    ok, why, _ = _verdict(plan_bundle)
    assert not ok and why.startswith("no TensorRT plan in the bundle")
    assert "; rebuild with: python -m export.tensorrt_build --bundle" in why
    (plan_bundle / "embedding.fp16.trtexec.plan").write_bytes(b"x")  # a trtexec plan has no sidecar: not ours
    assert engines.find_plans(plan_bundle) == []
    plan = write_plan(plan_bundle)
    plan.with_name(engines.sidecar_name(plan.name)).unlink()
    ok, why, _ = _verdict(plan_bundle)
    assert not ok and "sidecar" in why and "missing" in why
    ok, why, _ = _verdict(plan_bundle, {**ORIN, "tensorrt": "8.6.1"})
    assert not ok and "older than 10" in why


def test_the_best_matching_plan_is_chosen(plan_bundle):
    write_plan(plan_bundle, precision="fp32")
    small = write_plan(plan_bundle, profile=BatchProfile(1, 4, 8))
    big = write_plan(plan_bundle, profile=BatchProfile(1, 8, 64))
    write_plan(plan_bundle, cc=(7, 2), gpu="Xavier")  # never chosen, still reported
    ok, _, sel = _verdict(plan_bundle)
    assert ok and sel.plan.plan == big  # FP16 first, then the widest batch range
    assert len(sel.checked) == 4 and sum(c.ok for c in sel.checked) == 3
    ok, _, sel = _verdict(plan_bundle, precision="fp32")
    assert ok and sel.plan.precision == "fp32"
    big.unlink()
    assert _verdict(plan_bundle)[2].plan.plan == small


def test_a_sidecar_from_engine_sidecar_is_reusable_by_the_builder(plan_bundle):
    from export.tensorrt_build import reusable

    plan = write_plan(plan_bundle)
    key = engines.parse_engine_file_name(plan.name)["key"]
    assert reusable(plan, key)["file"] == plan.name


# ---------------------------------------------------------------------------------------------------------------
# TensorRT here: not installed (the real path, no stand-in module)
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.skipif(HAS_TRT, reason="TensorRT is installed here; this checks its absence")
def test_tensorrt_available_reports_it_missing(omniglot_bundle):
    ok, why = trtb.available(omniglot_bundle)
    assert not ok
    assert why.startswith("TensorRT is not installed (pip install 'siamese-edge[gpu]')") and "\n" not in why
    with pytest.raises(trtb.TensorRTUnavailable, match="TensorRT is not installed"):
        trtb.TensorRTBackend(omniglot_bundle)


def test_importing_the_backends_loads_no_gpu_library_and_no_tensorflow():
    code = (
        "import sys, runtime.engines, runtime.backends.tensorrt_backend, runtime.backends.openvino_backend, "
        "runtime.backends.onnxruntime_backend; "
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'tensorrt', 'cuda', 'openvino', 'tensorflow', "
        "'keras', 'train', 'export'}))"
    )
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[]"


# ---------------------------------------------------------------------------------------------------------------
# ONNX Runtime providers (pure) and the CPU path
# ---------------------------------------------------------------------------------------------------------------


def test_providers_are_ordered_tensorrt_cuda_cpu_with_their_options(tmp_path):
    cfg = ortb.provider_config(
        ["CPUExecutionProvider", "CUDAExecutionProvider", "TensorrtExecutionProvider"],
        "fp16",
        (105, 105, 3),
        (1, 8, 32),
        tmp_path / "cache",
        device_id=1,
    )
    assert [ortb._provider_name(e) for e in cfg] == list(ortb.PROVIDER_ORDER)
    trt_name, trt = cfg[0]
    assert trt == {
        "device_id": 1,
        "trt_fp16_enable": True,
        "trt_engine_cache_enable": True,
        "trt_engine_cache_path": str(tmp_path / "cache"),
        "trt_timing_cache_enable": True,
        "trt_timing_cache_path": str(tmp_path / "cache"),
        "trt_profile_min_shapes": "image:1x105x105x3",
        "trt_profile_opt_shapes": "image:8x105x105x3",
        "trt_profile_max_shapes": "image:32x105x105x3",
    }
    assert cfg[1] == ("CUDAExecutionProvider", {"device_id": 1})
    assert cfg[2] == "CPUExecutionProvider"
    fp32 = ortb.provider_config(["CUDAExecutionProvider", "CPUExecutionProvider"], "fp32")
    assert fp32[0] == ("CUDAExecutionProvider", {"device_id": 0, "use_tf32": 0})
    assert ortb.provider_config(None) == ["CPUExecutionProvider"]
    assert ortb.provider_config(["CPUExecutionProvider"], "fp32") == ["CPUExecutionProvider"]
    given = ortb.provider_config([("TensorrtExecutionProvider", {"trt_fp16_enable": False})], "fp16")
    assert given[0][1]["trt_fp16_enable"] is False  # the caller's options win
    with pytest.raises(ValueError, match="precision 'bf16'"):
        ortb.provider_config(["CUDAExecutionProvider"], "bf16")


def test_best_providers_and_gpu_detection():
    assert ortb.best_providers(["CPUExecutionProvider", "CUDAExecutionProvider", "TensorrtExecutionProvider"]) == list(
        ortb.PROVIDER_ORDER
    )
    assert ortb.best_providers(["AzureExecutionProvider"]) == ["CPUExecutionProvider"]
    assert ortb.uses_gpu(["CPUExecutionProvider", "CUDAExecutionProvider"])
    assert not ortb.uses_gpu(["CPUExecutionProvider"]) and not ortb.uses_gpu([])


def test_cache_folder(monkeypatch, tmp_path):
    monkeypatch.delenv("SIAMESE_EDGE_ORT_TRT_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert ortb.default_cache_dir() == tmp_path / "siamese-edge" / "ort-trt"
    monkeypatch.setenv("SIAMESE_EDGE_ORT_TRT_CACHE", str(tmp_path / "x"))
    assert ortb.default_cache_dir() == tmp_path / "x"


def test_which_graph_each_provider_runs(omniglot_bundle):
    m = load_manifest(omniglot_bundle)
    assert ortb.embedding_file_for(m, [("CUDAExecutionProvider", {})], "fp16") == EMBEDDING_FP16_ONNX
    assert (
        ortb.embedding_file_for(m, [("TensorrtExecutionProvider", {}), "CUDAExecutionProvider"], "fp16")
        == EMBEDDING_ONNX
    )
    assert ortb.embedding_file_for(m, ["CUDAExecutionProvider"], "fp32") == EMBEDDING_ONNX
    assert ortb.embedding_file_for(m, ["CPUExecutionProvider"], "fp16") == EMBEDDING_ONNX


def test_cpu_path_unchanged_and_the_cpu_head(learned_head_bundle):
    backend = ortb.OnnxRuntimeBackend(learned_head_bundle, providers=["CPUExecutionProvider"], threads=1)
    assert backend.info()["provider"] == "CPUExecutionProvider" and backend.info()["device"] == "cpu"
    result = _parity(backend, learned_head_bundle, "fp32")
    assert result.passed, result.to_dict()
    ref = _reference(learned_head_bundle)
    head = ortb.CpuHead(learned_head_bundle, load_manifest(learned_head_bundle))
    emb = ref["embeddings"]
    np.testing.assert_array_equal(
        head(emb[ref["pair_a"]], emb[ref["pair_b"]]),
        backend.score_embeddings(emb[ref["pair_a"]], emb[ref["pair_b"]]),
    )


# ---------------------------------------------------------------------------------------------------------------
# on a GPU (skipped here with the reason)
# ---------------------------------------------------------------------------------------------------------------


@pytest.fixture
def trt_ready():
    info = trtb.probe()
    if info["reason"]:
        pytest.skip(f"needs TensorRT and a CUDA GPU: {info['reason']}")
    return info


@gpu
@pytest.mark.parametrize("profile", ["1:4:8", "2:4:8"])
def test_tensorrt_backend_on_a_real_plan(trt_ready, omniglot_bundle, tmp_path, profile):
    from concurrent.futures import ThreadPoolExecutor

    from export.tensorrt_build import build_engine

    bundle = _copy_bundle(omniglot_bundle, tmp_path)
    hwc = load_manifest(bundle).preprocessing.input_shape
    side = build_engine(bundle, hwc, BatchProfile.parse(profile), "fp16", 0.5, tmp_path / "timing.cache")
    ok, why = trtb.available(bundle)
    assert ok and side["file"] in why
    backend = trtb.TensorRTBackend(bundle)
    assert str(backend.profile) == profile and backend.info()["plan"] == side["file"]
    result = _parity(backend, bundle, "fp16")  # 64 reference images: chunks of 8
    assert result.passed, result.to_dict()
    ref = _reference(bundle)["inputs"]
    one = backend.embed(ref[:1])  # with a profile minimum of 2: padded with zeros, the extra output dropped
    assert one.shape == (1, backend.dim)
    assert backend.embed(ref[:0]).shape == (0, backend.dim)  # as ONNX Runtime: an empty batch runs nothing
    np.testing.assert_allclose(one, backend.embed(ref[:8])[:1], atol=1e-3)
    with ThreadPoolExecutor(4) as pool:
        outs = list(pool.map(lambda _: backend.embed(ref[:20]), range(8)))
    for o in outs:
        np.testing.assert_array_equal(o, outs[0])
    backend.close()
    backend.close()  # idempotent


@gpu
def test_tensorrt_refuses_a_plan_from_another_machine_on_a_real_gpu(trt_ready, omniglot_bundle, tmp_path):
    bundle = _copy_bundle(omniglot_bundle, tmp_path)
    major, minor = trt_ready["compute_capability"]
    write_plan(bundle, trt_ready["tensorrt"], (major, minor + 1), gpu="another GPU")
    ok, why = trtb.available(bundle)
    assert not ok and "; rebuild with: python -m export.tensorrt_build" in why


@gpu
@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_onnxruntime_gpu_providers(omniglot_bundle, tmp_path, precision):
    import onnxruntime as ort

    gpu_eps = [p for p in ort.get_available_providers() if p in ortb.GPU_PROVIDERS]
    if not gpu_eps or trtb.cuda_device()[2]:
        pytest.skip(f"needs onnxruntime-gpu and a CUDA GPU (providers: {ort.get_available_providers()})")
    backend = ortb.OnnxRuntimeBackend(
        omniglot_bundle, providers=[*gpu_eps, "CPUExecutionProvider"], precision=precision, cache_dir=tmp_path
    )
    assert backend.info()["provider"] in ortb.GPU_PROVIDERS and backend.info()["device"] == "cuda:0"
    result = _parity(backend, omniglot_bundle, precision)
    assert result.passed, result.to_dict()
