"""Triton model repositories (and the DeepStream nvinfer config), checked with the servers' own schemas.

Every config.pbtxt is parsed with Triton's ModelConfig protobuf (``tritonclient.grpc.model_config_pb2``, the
schema the server itself reads), never compared as text.
"""

from __future__ import annotations

import configparser
import importlib.util
from pathlib import Path

import numpy as np
import pytest

from export.triton import (
    DEVICES,
    PLATFORM_ONNX,
    PLATFORM_PLAN,
    config_pbtxt,
    model_names,
    onnx_io,
    write_triton_repository,
)
from runtime.bundle.layout import (
    EMBEDDING_INT8_ONNX,
    EMBEDDING_ONNX,
    EMBEDDING_OUTPUT,
    INPUT_NAME,
    SCORE_OUTPUT,
    SIAMESE_INPUTS,
    SIAMESE_ONNX,
)
from runtime.engines import BatchProfile

mc = pytest.importorskip(
    "tritonclient.grpc.model_config_pb2",
    reason="tritonclient[grpc] (the dev extra) provides Triton's ModelConfig schema",
)
from google.protobuf import text_format  # noqa: E402  (after the importorskip that brings protobuf's schema)

HWC = (8, 8, 3)
DIM = 4
NAME = "tiny"


def write_repo(*args, **kwargs):
    """The ONNX/TensorRT models only: these bundles have no manifest (the runtime model's tests below make one)."""
    kwargs.setdefault("runtime_model", False)
    return write_triton_repository(*args, **kwargs)


# ---------------------------------------------------------------------------------------------------------------
# a tiny real bundle: embedding.onnx and siamese.onnx with the project's tensor names
# ---------------------------------------------------------------------------------------------------------------


def _save(graph, path: Path) -> None:
    import onnx
    from onnx import helper

    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def make_bundle(root: Path, hwc=HWC, dim=DIM, score_keepdims: bool = True) -> Path:
    from onnx import TensorProto, helper, numpy_helper

    bundle = root / NAME
    bundle.mkdir(parents=True)
    h, w, c = hwc
    weights = numpy_helper.from_array(
        np.random.default_rng(0).standard_normal((h * w * c, dim)).astype(np.float32), "w"
    )
    image = helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, ["N", h, w, c])
    emb = helper.make_tensor_value_info(EMBEDDING_OUTPUT, TensorProto.FLOAT, ["N", dim])
    nodes = [
        helper.make_node("Flatten", [INPUT_NAME], ["f"], axis=1),
        helper.make_node("MatMul", ["f", "w"], [EMBEDDING_OUTPUT]),
    ]
    _save(helper.make_graph(nodes, "embedding", [image], [emb], [weights]), bundle / EMBEDDING_ONNX)

    a, b = SIAMESE_INPUTS
    pair = [helper.make_tensor_value_info(n, TensorProto.FLOAT, ["N", h, w, c]) for n in (a, b)]
    score_shape = ["N", 1] if score_keepdims else ["N"]
    score = helper.make_tensor_value_info(SCORE_OUTPUT, TensorProto.FLOAT, score_shape)
    axes = numpy_helper.from_array(np.array([1], np.int64), "axes")
    nodes = [
        helper.make_node("Flatten", [a], ["fa"], axis=1),
        helper.make_node("Flatten", [b], ["fb"], axis=1),
        helper.make_node("MatMul", ["fa", "w"], ["ea"]),
        helper.make_node("MatMul", ["fb", "w"], ["eb"]),
        helper.make_node("Sub", ["ea", "eb"], ["d"]),
        helper.make_node("Abs", ["d"], ["ad"]),
        helper.make_node("ReduceSum", ["ad", "axes"], [SCORE_OUTPUT], keepdims=int(score_keepdims)),
    ]
    _save(helper.make_graph(nodes, "siamese", pair, [score], [weights, axes]), bundle / SIAMESE_ONNX)
    return bundle


@pytest.fixture
def bundle(tmp_path: Path) -> Path:
    return make_bundle(tmp_path / "bundles")


def parse_config(path: Path):
    return text_format.Parse(path.read_text(encoding="utf-8"), mc.ModelConfig())


def kind(name: str) -> int:
    return mc.ModelInstanceGroup.Kind.Value(name)


def assert_matches_onnx(cfg, onnx_path: Path) -> None:
    """The config's tensors are the ONNX file's, dims without the batch dimension."""
    inputs, outputs = onnx_io(onnx_path)
    assert {i.name: list(i.dims) for i in cfg.input} == {n: list(t.dims) for n, t in inputs.items()}
    assert {o.name: list(o.dims) for o in cfg.output} == {n: list(t.dims) for n, t in outputs.items()}


# ---------------------------------------------------------------------------------------------------------------
# the repository
# ---------------------------------------------------------------------------------------------------------------


def test_repository_layout_and_configs(bundle, tmp_path):
    repo = write_repo(bundle, tmp_path / "repo", NAME, HWC, DIM, max_batch_size=16, instances=2)
    names = model_names(NAME)
    assert sorted(p.name for p in repo.iterdir()) == sorted([names["embedding"], names["siamese"]])
    assert not list(tmp_path.glob(".repo.partial-*"))

    emb = parse_config(repo / names["embedding"] / "config.pbtxt")
    assert emb.name == names["embedding"] and emb.platform == PLATFORM_ONNX
    assert emb.max_batch_size == 16
    (inp,) = emb.input
    assert (inp.name, list(inp.dims), inp.data_type) == (INPUT_NAME, list(HWC), mc.TYPE_FP32)
    (out,) = emb.output
    assert (out.name, list(out.dims), out.data_type) == (EMBEDDING_OUTPUT, [DIM], mc.TYPE_FP32)
    assert emb.HasField("dynamic_batching")
    assert list(emb.dynamic_batching.preferred_batch_size) == [16]
    assert emb.dynamic_batching.max_queue_delay_microseconds == 100
    (group,) = emb.instance_group
    assert group.count == 2 and group.kind == kind("KIND_AUTO")
    assert_matches_onnx(emb, bundle / EMBEDDING_ONNX)
    assert (repo / names["embedding"] / "1" / "model.onnx").read_bytes() == (bundle / EMBEDDING_ONNX).read_bytes()

    sia = parse_config(repo / names["siamese"] / "config.pbtxt")
    assert sia.platform == PLATFORM_ONNX and sia.max_batch_size == 16
    assert [i.name for i in sia.input] == list(SIAMESE_INPUTS)
    assert all(list(i.dims) == list(HWC) and i.data_type == mc.TYPE_FP32 for i in sia.input)
    (score,) = sia.output
    assert (score.name, list(score.dims), score.HasField("reshape")) == (SCORE_OUTPUT, [1], False)
    assert sia.instance_group[0].kind == kind("KIND_AUTO")
    assert_matches_onnx(sia, bundle / SIAMESE_ONNX)
    assert (repo / names["siamese"] / "1" / "model.onnx").read_bytes() == (bundle / SIAMESE_ONNX).read_bytes()


def test_copied_models_run_with_the_configs_shapes(bundle, tmp_path):
    import onnxruntime as ort

    repo = write_repo(bundle, tmp_path / "repo", NAME, HWC, DIM, max_batch_size=4)
    for model in model_names(NAME)["embedding"], model_names(NAME)["siamese"]:
        cfg = parse_config(repo / model / "config.pbtxt")
        sess = ort.InferenceSession(str(repo / model / "1" / "model.onnx"), providers=["CPUExecutionProvider"])
        feed = {i.name: np.zeros((cfg.max_batch_size, *i.dims), np.float32) for i in cfg.input}
        for o, value in zip(cfg.output, sess.run([o.name for o in cfg.output], feed)):
            assert value.shape == (cfg.max_batch_size, *o.dims)


def test_rank1_score_gets_a_reshape(tmp_path):
    bundle = make_bundle(tmp_path / "b", score_keepdims=False)
    repo = write_repo(bundle, tmp_path / "repo", NAME, HWC, DIM)
    (score,) = parse_config(repo / model_names(NAME)["siamese"] / "config.pbtxt").output
    assert list(score.dims) == [1] and score.HasField("reshape") and list(score.reshape.shape) == []


def test_device_choices(bundle, tmp_path):
    for device, expected in (("gpu", "KIND_GPU"), ("cpu", "KIND_CPU"), ("auto", "KIND_AUTO")):
        repo = write_repo(bundle, tmp_path / device, NAME, HWC, DIM, device=device)
        for model in repo.iterdir():
            assert parse_config(model / "config.pbtxt").instance_group[0].kind == kind(expected)
    with pytest.raises(ValueError, match="a TensorRT plan only runs on a GPU"):
        write_repo(bundle, tmp_path / "x", NAME, HWC, DIM, device="cpu", plan_file=tmp_path / "p.plan")
    with pytest.raises(ValueError, match="device 'tpu'"):
        write_repo(bundle, tmp_path / "x", NAME, HWC, DIM, device="tpu")


def test_preferred_batch_sizes(bundle, tmp_path):
    repo = write_repo(
        bundle,
        tmp_path / "repo",
        NAME,
        HWC,
        DIM,
        max_batch_size=32,
        preferred_batch_sizes=(32, 8),
        max_queue_delay_us=500,
    )
    cfg = parse_config(repo / model_names(NAME)["embedding"] / "config.pbtxt")
    assert list(cfg.dynamic_batching.preferred_batch_size) == [8, 32]
    assert cfg.dynamic_batching.max_queue_delay_microseconds == 500
    with pytest.raises(ValueError, match="preferred batch sizes"):
        write_repo(bundle, tmp_path / "r2", NAME, HWC, DIM, max_batch_size=8, preferred_batch_sizes=(16,))


def test_without_siamese(bundle, tmp_path):
    repo = write_repo(bundle, tmp_path / "repo", NAME, HWC, DIM, has_siamese=False)
    assert [p.name for p in repo.iterdir()] == [model_names(NAME)["embedding"]]


def test_refuses_to_overwrite_unless_asked_and_keeps_other_models(bundle, tmp_path):
    repo = tmp_path / "repo"
    other = repo / "someone_elses_model"
    (other / "1").mkdir(parents=True)
    (other / "config.pbtxt").write_text('name: "someone_elses_model"\nbackend: "python"\n')
    write_repo(bundle, repo, NAME, HWC, DIM, max_batch_size=8)
    assert (other / "config.pbtxt").is_file()
    with pytest.raises(FileExistsError, match=f"{NAME}_embedding.*overwrite=True"):
        write_repo(bundle, repo, NAME, HWC, DIM, max_batch_size=4)
    emb = repo / model_names(NAME)["embedding"] / "config.pbtxt"
    assert parse_config(emb).max_batch_size == 8  # untouched
    write_repo(bundle, repo, NAME, HWC, DIM, max_batch_size=4, overwrite=True)
    assert parse_config(emb).max_batch_size == 4
    assert (other / "config.pbtxt").is_file()
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []  # no staging or old folders


def test_a_failed_write_leaves_nothing(bundle, tmp_path):
    with pytest.raises(ValueError, match=r"'embedding' has dims \[4\].*expected \[5\]"):
        write_repo(bundle, tmp_path / "repo", NAME, HWC, 5)
    with pytest.raises(ValueError, match=r"'image' has dims \[8, 8, 3\].*expected \[9, 8, 3\]"):
        write_repo(bundle, tmp_path / "repo", NAME, (9, 8, 3), DIM)
    with pytest.raises(FileNotFoundError, match="model.plan|missing"):
        write_repo(bundle, tmp_path / "repo", NAME, HWC, DIM, plan_file=tmp_path / "none.plan")
    (bundle / SIAMESE_ONNX).unlink()
    with pytest.raises(FileNotFoundError, match="has_siamese=False"):
        write_repo(bundle, tmp_path / "repo", NAME, HWC, DIM)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bundles"]


def test_plan_model_config_schema():
    """The tensorrt_plan config text (the file layout with a real plan is in the gpu test below)."""
    from export.triton import Tensor

    image = Tensor(INPUT_NAME, "TYPE_FP32", HWC)
    emb = Tensor(EMBEDDING_OUTPUT, "TYPE_FP32", (DIM,))
    text = config_pbtxt(f"{NAME}_embedding_trt", PLATFORM_PLAN, 32, [image], [emb], "KIND_GPU", 1, [8, 32], 100)
    cfg = text_format.Parse(text, mc.ModelConfig())
    assert cfg.platform == "tensorrt_plan" and cfg.max_batch_size == 32
    assert cfg.instance_group[0].kind == kind("KIND_GPU")
    assert list(cfg.dynamic_batching.preferred_batch_size) == [8, 32]
    assert [(i.name, list(i.dims)) for i in cfg.input] == [(INPUT_NAME, list(HWC))]


@pytest.mark.gpu
def test_repository_with_a_real_plan(bundle, tmp_path):
    from export.tensorrt_build import build_engine
    from runtime.backends.tensorrt_backend import probe

    info = probe()
    if info["reason"]:
        pytest.skip(f"needs TensorRT and a CUDA GPU: {info['reason']}")
    from export.tensorrt_build import build_plan
    from runtime.bundle.layout import EMBEDDING_FP16_ONNX

    precision = "fp16" if build_plan(info["tensorrt"], "fp16")[1] != EMBEDDING_FP16_ONNX else "fp32"
    side = build_engine(bundle, HWC, BatchProfile(1, 4, 8), precision, 0.25, tmp_path / "cache")
    plan = bundle / side["file"]
    repo = write_repo(bundle, tmp_path / "repo", NAME, HWC, DIM, max_batch_size=8, plan_file=plan)
    model = repo / model_names(NAME)["embedding_trt"]
    cfg = parse_config(model / "config.pbtxt")
    assert cfg.platform == PLATFORM_PLAN and cfg.instance_group[0].kind == kind("KIND_GPU")
    assert list(cfg.dynamic_batching.preferred_batch_size) == [4, 8]
    assert (model / "1" / "model.plan").read_bytes() == plan.read_bytes()
    with pytest.raises(ValueError, match="built for batch 1..8"):
        write_repo(bundle, tmp_path / "r2", NAME, HWC, DIM, max_batch_size=16, plan_file=plan)


# ---------------------------------------------------------------------------------------------------------------
# INT8: the QDQ graph on ONNX Runtime (CPU) and the INT8 plan, each by the user's choice
# ---------------------------------------------------------------------------------------------------------------


def add_int8_graph(bundle: Path) -> Path:
    """The bundle's real QDQ graph, from export.int8 (ONNX Runtime static quantization) of its embedding.onnx."""
    from export.int8 import quantize_int8

    x = np.random.default_rng(3).random((16, *HWC), dtype=np.float32)
    return quantize_int8(bundle / EMBEDDING_ONNX, bundle / EMBEDDING_INT8_ONNX, x, progress=False).path


def placeholder_plan(bundle: Path, precision: str, profile=(1, 4, 8)) -> Path:
    """A plan file and the sidecar fields the repository reads (precision, profile), for the layout and configs
    only: its bytes are not an engine (the gpu test serves a real one)."""
    import json

    lo, opt, hi = profile
    plan = bundle / f"embedding.trt10.3.sm87.{precision}.0123456789ab.plan"
    plan.write_bytes(f"placeholder {precision} plan".encode())
    side = {"precision": precision, "profile": {"min": lo, "opt": opt, "max": hi}}
    plan.with_name(plan.name + ".json").write_text(json.dumps(side))
    return plan


def test_the_int8_onnx_model_serves_the_qdq_graph_on_the_cpu(bundle, tmp_path):
    import onnx
    import onnxruntime as ort

    add_int8_graph(bundle)
    names = model_names(NAME)
    for device in DEVICES:  # the device option places the FP32 models; the QDQ graph stays on the CPU provider
        repo = write_repo(bundle, tmp_path / device, NAME, HWC, DIM, max_batch_size=8, device=device, int8_onnx=True)
        assert sorted(p.name for p in repo.iterdir()) == sorted(
            [names["embedding"], names["embedding_int8"], names["siamese"]]
        )
        model = repo / names["embedding_int8"]
        cfg = parse_config(model / "config.pbtxt")
        assert cfg.name == names["embedding_int8"] and cfg.platform == PLATFORM_ONNX and cfg.max_batch_size == 8
        assert cfg.instance_group[0].kind == kind("KIND_CPU")
        assert [(i.name, list(i.dims), i.data_type) for i in cfg.input] == [(INPUT_NAME, list(HWC), mc.TYPE_FP32)]
        assert [(o.name, list(o.dims), o.data_type) for o in cfg.output] == [(EMBEDDING_OUTPUT, [DIM], mc.TYPE_FP32)]
        assert_matches_onnx(cfg, bundle / EMBEDDING_INT8_ONNX)
        assert "INT8: embedding.int8.onnx, the bundle's QDQ graph" in (model / "config.pbtxt").read_text()
    served = model / "1" / "model.onnx"
    assert served.read_bytes() == (bundle / EMBEDDING_INT8_ONNX).read_bytes()
    ops = {n.op_type for n in onnx.load(str(served)).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    sess = ort.InferenceSession(str(served), providers=["CPUExecutionProvider"])
    out = sess.run(None, {INPUT_NAME: np.zeros((cfg.max_batch_size, *HWC), np.float32)})[0]
    assert out.shape == (cfg.max_batch_size, DIM)


def test_int8_models_only_when_asked(bundle, tmp_path):
    add_int8_graph(bundle)
    repo = write_repo(bundle, tmp_path / "repo", NAME, HWC, DIM)
    assert not any("int8" in p.name for p in repo.iterdir())


def test_int8_onnx_without_the_graph_says_how_to_make_it(bundle, tmp_path):
    with pytest.raises(FileNotFoundError) as e:
        write_repo(bundle, tmp_path / "repo", NAME, HWC, DIM, int8_onnx=True)
    assert str(bundle / EMBEDDING_INT8_ONNX) in str(e.value)
    assert "python -m export.build --model MODEL_FILE --int8" in str(e.value)
    assert not (tmp_path / "repo").exists()


def test_the_int8_plan_is_its_own_model_beside_the_fp16_one(bundle, tmp_path):
    fp16 = placeholder_plan(bundle, "fp16")
    int8 = placeholder_plan(bundle, "int8", (1, 2, 8))
    names = model_names(NAME)
    repo = write_repo(bundle, tmp_path / "repo", NAME, HWC, DIM, max_batch_size=8, plan_file=fp16, int8_plan_file=int8)
    for model, plan in ((names["embedding_trt"], fp16), (names["embedding_trt_int8"], int8)):
        cfg = parse_config(repo / model / "config.pbtxt")
        assert cfg.platform == PLATFORM_PLAN and cfg.instance_group[0].kind == kind("KIND_GPU")
        assert [(i.name, list(i.dims)) for i in cfg.input] == [(INPUT_NAME, list(HWC))]
        assert (repo / model / "1" / "model.plan").read_bytes() == plan.read_bytes()
    assert list(parse_config(repo / names["embedding_trt"] / "config.pbtxt").dynamic_batching.preferred_batch_size) == [
        4,
        8,
    ]
    text = (repo / names["embedding_trt_int8"] / "config.pbtxt").read_text()
    assert "INT8: a TensorRT plan built from embedding.int8.onnx" in text

    only = write_repo(bundle, tmp_path / "only", NAME, HWC, DIM, max_batch_size=8, int8_plan_file=int8)
    assert names["embedding_trt_int8"] in {p.name for p in only.iterdir()}
    assert names["embedding_trt"] not in {p.name for p in only.iterdir()}
    preferred = parse_config(only / names["embedding_trt_int8"] / "config.pbtxt").dynamic_batching
    assert list(preferred.preferred_batch_size) == [2, 8]  # the INT8 plan's tuned size


def test_a_plan_is_served_only_as_the_model_of_its_precision(bundle, tmp_path):
    fp16, int8 = placeholder_plan(bundle, "fp16"), placeholder_plan(bundle, "int8")
    with pytest.raises(
        ValueError,
        match=r"an INT8 plan, not one for tiny_embedding_trt; pass it as int8_plan_file \(--int8-plan\), served as tiny_embedding_trt_int8",
    ):
        write_repo(bundle, tmp_path / "r", NAME, HWC, DIM, max_batch_size=8, plan_file=int8)
    with pytest.raises(
        ValueError,
        match=r"an FP16 plan, not one for tiny_embedding_trt_int8; pass it as plan_file \(--plan\), served as tiny_embedding_trt$",
    ):
        write_repo(bundle, tmp_path / "r", NAME, HWC, DIM, max_batch_size=8, int8_plan_file=fp16)
    with pytest.raises(ValueError, match="a TensorRT plan only runs on a GPU"):
        write_repo(bundle, tmp_path / "r", NAME, HWC, DIM, device="cpu", int8_plan_file=int8)
    with pytest.raises(ValueError, match=r"built for batch 1..8.*--batch 1:N:16"):
        write_repo(bundle, tmp_path / "r", NAME, HWC, DIM, max_batch_size=16, int8_plan_file=int8)
    with pytest.raises(FileNotFoundError, match="the TensorRT plan for tiny_embedding_trt_int8"):
        write_repo(bundle, tmp_path / "r", NAME, HWC, DIM, int8_plan_file=tmp_path / "none.plan")
    assert not (tmp_path / "r").exists()


def _with_manifest(bundle: Path) -> Path:
    from runtime.bundle.layout import SCHEMA_VERSION
    from runtime.bundle.manifest import Manifest, write_manifest
    from runtime.preprocess import Preprocessing

    fields = {
        "schema_version": SCHEMA_VERSION,
        "name": NAME,
        "preprocessing": Preprocessing(height=HWC[0], width=HWC[1], color="rgb").to_dict(),
        "embedding": {"dim": DIM},
        "head": {"kind": "euclidean"},
        "score": {"kind": "distance", "same_when": "low", "threshold": 0.5},
        "files": {},
    }
    write_manifest(bundle, Manifest.from_dict(fields))
    return bundle


def test_cli_writes_the_int8_model_by_choice(bundle, tmp_path, capsys):
    from export.triton import main

    add_int8_graph(bundle)
    _with_manifest(bundle)
    names = model_names(NAME)
    assert main(["--bundle", str(bundle), "--repo", str(tmp_path / "repo"), "--max-batch", "8", "--int8-onnx"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"triton:   {tmp_path / 'repo'}/") and names["embedding_int8"] in out
    cfg = parse_config(tmp_path / "repo" / names["embedding_int8"] / "config.pbtxt")
    assert cfg.max_batch_size == 8 and cfg.instance_group[0].kind == kind("KIND_CPU")
    assert main(["--bundle", str(bundle), "--repo", str(tmp_path / "repo"), "--int8-onnx"]) == 2  # no --force
    assert "pass --force" in capsys.readouterr().err
    (bundle / EMBEDDING_INT8_ONNX).unlink()
    _with_manifest(bundle)  # a bundle exported without --int8
    assert main(["--bundle", str(bundle), "--repo", str(tmp_path / "r2"), "--int8-onnx"]) == 2
    assert "--int8" in capsys.readouterr().err


@pytest.mark.gpu
def test_repository_with_a_real_int8_plan(bundle, tmp_path):
    from export.tensorrt_build import build_engine
    from runtime.backends.tensorrt_backend import probe

    info = probe()
    if info["reason"]:
        pytest.skip(f"needs TensorRT and a CUDA GPU: {info['reason']}")
    add_int8_graph(bundle)
    side = build_engine(bundle, HWC, BatchProfile(1, 4, 8), "int8", 0.25, tmp_path / "cache")
    plan = bundle / side["file"]
    repo = write_repo(bundle, tmp_path / "repo", NAME, HWC, DIM, max_batch_size=8, int8_plan_file=plan, int8_onnx=True)
    model = repo / model_names(NAME)["embedding_trt_int8"]
    cfg = parse_config(model / "config.pbtxt")
    assert cfg.platform == PLATFORM_PLAN and list(cfg.dynamic_batching.preferred_batch_size) == [4, 8]
    assert (model / "1" / "model.plan").read_bytes() == plan.read_bytes()


# ---------------------------------------------------------------------------------------------------------------
# DeepStream nvinfer (optional), parsed as the key-file it is
# ---------------------------------------------------------------------------------------------------------------


def _nvinfer(text: str) -> configparser.SectionProxy:
    cp = configparser.ConfigParser()
    cp.read_string(text)
    return cp["property"]


def test_nvinfer_config_maps_the_preprocessing():
    from export.deepstream import nvinfer_config_text
    from runtime.preprocess import Preprocessing

    pre = Preprocessing(height=105, width=105, color="rgb", mean=(0.485, 0.456, 0.406), std=(0.25,))
    prop = _nvinfer(nvinfer_config_text(pre, engine_file="embedding.trt10.3.sm87.fp16.abc.plan", batch_size=8))
    # y = net-scale-factor * (x - offset)  ==  (x * scale - mean) / std
    x = np.array([0.0, 17.0, 255.0])
    offsets = [float(v) for v in prop["offsets"].split(";")]
    for ch in range(3):
        ours = (x * pre.scale - pre.mean[ch]) / pre.std[0]
        theirs = float(prop["net-scale-factor"]) * (x - offsets[ch])
        np.testing.assert_allclose(theirs, ours, rtol=1e-5, atol=1e-6)
    assert prop["model-color-format"] == "0" and prop["network-input-order"] == "1"
    assert prop["network-mode"] == "2" and prop["network-type"] == "100" and prop["output-tensor-meta"] == "1"
    assert prop["output-blob-names"] == EMBEDDING_OUTPUT and prop["onnx-file"] == EMBEDDING_ONNX
    assert prop["model-engine-file"].endswith(".plan") and prop["batch-size"] == "8"
    assert prop["process-mode"] == "2"


def test_nvinfer_int8_points_at_the_qdq_graph_and_its_plan():
    from export.deepstream import nvinfer_config_text
    from runtime.preprocess import Preprocessing

    pre = Preprocessing(height=8, width=8)
    text = nvinfer_config_text(pre, engine_file="embedding.trt10.3.sm87.int8.abc.plan", precision="int8")
    prop = _nvinfer(text)
    assert prop["network-mode"] == "1" and prop["onnx-file"] == EMBEDDING_INT8_ONNX
    assert prop["model-engine-file"] == "embedding.trt10.3.sm87.int8.abc.plan"
    assert "# note: INT8 runs the plan python -m export.tensorrt_build --precision int8 builds from" in text
    assert _nvinfer(nvinfer_config_text(pre))["onnx-file"] == EMBEDDING_ONNX  # FP16: the FP32 graph, as before
    with pytest.raises(ValueError, match="precision 'bf16'"):
        nvinfer_config_text(pre, precision="bf16")


def test_nvinfer_config_refuses_per_channel_std():
    from export.deepstream import nvinfer_config_text
    from runtime.preprocess import Preprocessing

    with pytest.raises(ValueError, match="one net-scale-factor"):
        nvinfer_config_text(Preprocessing(height=8, width=8, std=(0.2, 0.3, 0.4)))


@pytest.mark.skipif(importlib.util.find_spec("export.bundle") is None, reason="export.bundle not present")
def test_nvinfer_config_written_from_a_manifest(bundle):
    from export.deepstream import write_nvinfer_config
    from runtime.bundle.layout import SCHEMA_VERSION
    from runtime.bundle.manifest import Manifest, write_manifest
    from runtime.preprocess import Preprocessing

    pre = Preprocessing(height=8, width=8, color="gray", resize="letterbox")
    fields = {
        "schema_version": SCHEMA_VERSION,
        "name": NAME,
        "preprocessing": pre.to_dict(),
        "embedding": {"dim": DIM},
        "head": {"kind": "euclidean"},
        "score": {"kind": "distance", "same_when": "low", "threshold": 0.5},
        "files": {},
    }
    write_manifest(bundle, Manifest.from_dict(fields))
    prop = _nvinfer(write_nvinfer_config(bundle).read_text())
    assert prop["model-color-format"] == "2" and prop["maintain-aspect-ratio"] == "1"
    assert abs(float(prop["net-scale-factor"]) - 1 / 255) < 1e-9 and prop["offsets"] == "0"


def test_a_fixed_batch_dimension_is_refused(tmp_path):
    import onnx

    bundle = make_bundle(tmp_path / "b")
    model = onnx.load(str(bundle / EMBEDDING_ONNX))
    model.graph.input[0].type.tensor_type.shape.dim[0].dim_value = 1
    onnx.save(model, str(bundle / EMBEDDING_ONNX))
    with pytest.raises(ValueError, match="dynamic first \\(batch\\) dimension"):
        write_repo(bundle, tmp_path / "repo", NAME, HWC, DIM)


# ---------------------------------------------------------------------------------------------------------------
# the runtime model: the bundle on Triton's Python backend (served for real in tests/test_triton_server.py)
# ---------------------------------------------------------------------------------------------------------------


def add_manifest(bundle: Path, threshold: float = 0.5) -> Path:
    """A manifest for make_bundle's graphs: hashes of every file, the bundle's score semantics."""
    from runtime.bundle.layout import SCHEMA_VERSION
    from runtime.bundle.manifest import Manifest, write_manifest
    from runtime.preprocess import Preprocessing

    fields = {
        "schema_version": SCHEMA_VERSION,
        "name": NAME,
        "preprocessing": Preprocessing(height=HWC[0], width=HWC[1]).to_dict(),
        "embedding": {"dim": DIM},
        "head": {"kind": "euclidean"},
        "score": {"kind": "distance", "same_when": "low", "threshold": threshold, "threshold_source": "test"},
        "files": {},
    }
    write_manifest(bundle, Manifest.from_dict(fields))
    return bundle


def test_runtime_model_config_and_files(bundle, tmp_path):
    from runtime.bundle.layout import MANIFEST_NAME
    from runtime.bundle.manifest import load_manifest
    from runtime.triton_model import BUNDLE_DIR, INPUTS, OUTPUTS, SHIM, parameters, spec_parameters

    add_manifest(bundle)
    repo = write_triton_repository(
        bundle, tmp_path / "repo", NAME, HWC, DIM, max_batch_size=16, preferred_batch_sizes=(8, 16),
        instances=1, runtime_instances=2, runtime_threads=1,
    )  # fmt: skip
    names = model_names(NAME)
    assert sorted(p.name for p in repo.iterdir()) == sorted([names["embedding"], names["siamese"], names["runtime"]])
    model = repo / names["runtime"]
    cfg = parse_config(model / "config.pbtxt")
    assert cfg.name == names["runtime"] and cfg.backend == "python" and not cfg.platform
    assert cfg.max_batch_size == 16 and list(cfg.dynamic_batching.preferred_batch_size) == [8, 16]
    assert (cfg.instance_group[0].count, cfg.instance_group[0].kind) == (2, kind("KIND_CPU"))
    assert [i.name for i in cfg.input] == list(INPUTS) and all(i.optional for i in cfg.input)
    dims = {i.name: list(i.dims) for i in [*cfg.input, *cfg.output]}
    assert dims["image_a"] == list(HWC) and dims["embedding_in_b"] == [DIM] and dims["score"] == [1]
    assert [o.name for o in cfg.output] == list(OUTPUTS)
    assert {o.name: o.data_type for o in cfg.output}["match"] == mc.TYPE_BOOL
    params = {k: v.string_value for k, v in cfg.parameters.items()}
    assert params == parameters({"parameters": {k: {"string_value": v} for k, v in params.items()}})
    spec = spec_parameters(params)
    assert (spec.kind, spec.same_when, spec.threshold, spec.threshold_source) == ("distance", "low", 0.5, "test")
    assert params["threads"] == "1" and params["embedding_dim"] == str(DIM) and params["bundle"] == BUNDLE_DIR
    manifest = load_manifest(bundle)
    assert params["model_id"] == manifest.embedding_sha256
    assert (model / "1" / "model.py").read_text() == SHIM
    copied = model / "1" / BUNDLE_DIR
    assert load_manifest(copied).files == manifest.files  # every listed file, hash-checked by load_manifest
    assert (copied / MANIFEST_NAME).read_bytes() == (bundle / MANIFEST_NAME).read_bytes()
    gpu = write_triton_repository(bundle, tmp_path / "gpu", NAME, HWC, DIM, runtime_device="gpu", has_siamese=False)
    assert parse_config(gpu / names["runtime"] / "config.pbtxt").instance_group[0].kind == kind("KIND_GPU")


def test_runtime_model_refuses_a_tampered_bundle(bundle, tmp_path):
    from runtime.bundle.layout import BundleError

    add_manifest(bundle)
    with open(bundle / SIAMESE_ONNX, "ab") as f:
        f.write(b"tampered")
    with pytest.raises(BundleError, match=SIAMESE_ONNX):
        write_triton_repository(bundle, tmp_path / "repo", NAME, HWC, DIM)
    assert not (tmp_path / "repo").exists()


def test_replacing_models_keeps_the_others_and_leaves_no_staging(bundle, tmp_path):
    add_manifest(bundle)
    repo = tmp_path / "repo"
    other = repo / "someone_elses_model"
    (other / "1").mkdir(parents=True)
    (other / "1" / "model.py").write_text("# theirs\n")
    before = (other / "1" / "model.py").stat().st_ino
    write_triton_repository(bundle, repo, NAME, HWC, DIM, max_batch_size=8)
    write_triton_repository(bundle, repo, NAME, HWC, DIM, max_batch_size=4, overwrite=True)
    assert (other / "1" / "model.py").read_text() == "# theirs\n"
    assert (other / "1" / "model.py").stat().st_ino == before  # linked into the new repository, not copied
    assert parse_config(repo / model_names(NAME)["runtime"] / "config.pbtxt").max_batch_size == 4
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_concurrent_writers_take_turns(bundle, tmp_path):
    """Two processes adding different models to one repository at once: both sets survive (the lock)."""
    import multiprocessing as mp

    add_manifest(bundle)
    repo = tmp_path / "repo"
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_write_named, args=(bundle, repo, f"m{i}")) for i in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0] * 4
    got = sorted(p.name for p in repo.iterdir())
    assert got == sorted(f"m{i}_{kind}" for i in range(4) for kind in ("embedding", "siamese", "runtime"))
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def _write_named(bundle: Path, repo: Path, name: str) -> None:
    write_triton_repository(bundle, repo, name, HWC, DIM)


def test_cli_batch_profile_and_runtime_options(bundle, tmp_path, capsys):
    from export.triton import main

    add_manifest(bundle)
    repo = tmp_path / "repo"
    argv = ["--bundle", str(bundle), "--repo", str(repo), "--name", NAME, "--batch", "1:4:16"]
    assert main([*argv, "--runtime-instances", "3", "--runtime-threads", "1"]) == 0
    cfg = parse_config(repo / model_names(NAME)["runtime"] / "config.pbtxt")
    assert cfg.max_batch_size == 16 and list(cfg.dynamic_batching.preferred_batch_size) == [4, 16]
    assert cfg.instance_group[0].count == 3
    assert main([*argv, "--force", "--no-runtime-model", "--batch", "0:1:2"]) == 2
    assert "batch profile" in capsys.readouterr().err


def add_head(bundle: Path) -> Path:
    """A head.onnx for make_bundle's embeddings: (embedding_a, embedding_b) -> sum |a - b|, shape (N, 1)."""
    from onnx import TensorProto, helper, numpy_helper

    from runtime.bundle.layout import HEAD_INPUTS, HEAD_ONNX

    ea, eb = (helper.make_tensor_value_info(n, TensorProto.FLOAT, ["N", DIM]) for n in HEAD_INPUTS)
    score = helper.make_tensor_value_info(SCORE_OUTPUT, TensorProto.FLOAT, ["N", 1])
    axes = numpy_helper.from_array(np.array([1], np.int64), "axes")
    nodes = [
        helper.make_node("Sub", list(HEAD_INPUTS), ["d"]),
        helper.make_node("Abs", ["d"], ["ad"]),
        helper.make_node("ReduceSum", ["ad", "axes"], [SCORE_OUTPUT], keepdims=1),
    ]
    _save(helper.make_graph(nodes, "head", [ea, eb], [score], [axes]), bundle / HEAD_ONNX)
    return bundle


def test_head_model_and_the_pair_ensemble(bundle, tmp_path):
    from runtime.bundle.layout import HEAD_INPUTS, HEAD_ONNX

    add_head(bundle)
    repo = write_repo(bundle, tmp_path / "repo", NAME, HWC, DIM, max_batch_size=8)
    names = model_names(NAME)
    assert {names["head"], names["pair"]} <= {p.name for p in repo.iterdir()}
    head = parse_config(repo / names["head"] / "config.pbtxt")
    assert head.platform == PLATFORM_ONNX and [i.name for i in head.input] == list(HEAD_INPUTS)
    assert_matches_onnx(head, bundle / HEAD_ONNX)
    pair = parse_config(repo / names["pair"] / "config.pbtxt")
    assert pair.platform == "ensemble" and pair.max_batch_size == 8
    assert [(i.name, list(i.dims)) for i in pair.input] == [(n, list(HWC)) for n in SIAMESE_INPUTS]
    assert [(o.name, list(o.dims)) for o in pair.output] == [(SCORE_OUTPUT, [1])]
    assert not pair.HasField("dynamic_batching") and not pair.instance_group  # the steps batch, not the ensemble
    steps = [(s.model_name, dict(s.input_map), dict(s.output_map)) for s in pair.ensemble_scheduling.step]
    emb = parse_config(repo / names["embedding"] / "config.pbtxt")
    produced = set(SIAMESE_INPUTS)
    for model, inputs, outputs in steps:  # each step reads what the ensemble's inputs or an earlier step give
        cfg = parse_config(repo / model / "config.pbtxt")
        assert set(inputs) == {i.name for i in cfg.input} and set(inputs.values()) <= produced
        assert set(outputs) <= {o.name for o in cfg.output}
        produced |= set(outputs.values())
    assert [s[0] for s in steps] == [emb.name, emb.name, head.name] and SCORE_OUTPUT in produced
    repo2 = write_repo(bundle, tmp_path / "no-head", NAME, HWC, DIM, head_model=False)
    assert names["pair"] not in {p.name for p in repo2.iterdir()}


def test_serve_plans_only_what_the_server_can_run(bundle, tmp_path):
    from runtime.serve import ServerBinary, TritonServer

    add_head(add_manifest(bundle))
    repo = write_triton_repository(bundle, tmp_path / "repo", NAME, HWC, DIM)
    names = model_names(NAME)
    backends = tmp_path / "backends"
    (backends / "python").mkdir(parents=True)
    server = TritonServer.__new__(TritonServer)  # the plan only: no binary needed
    server.repo, server.models, server.skipped = repo, None, {}
    server.server = ServerBinary(tmp_path / "tritonserver", "test", backends)
    assert server.plan() == [names["runtime"]]
    assert "no onnxruntime backend" in server.skipped[names["embedding"]]
    assert "an ensemble of" in server.skipped[names["pair"]]
    (backends / "onnxruntime").mkdir()
    server.skipped = {}
    assert sorted(server.plan()) == sorted(names[k] for k in ("embedding", "siamese", "head", "pair", "runtime"))
