"""A Triton Inference Server model repository for a bundle: serving many clients and streams from one GPU.

Models written (each ``<repo>/<model>/config.pbtxt`` + ``<repo>/<model>/1/<file>``):

- ``<name>_embedding``      ``onnxruntime_onnx``, ``model.onnx`` = the bundle's embedding.onnx
- ``<name>_embedding_trt``  ``tensorrt_plan``, ``model.plan`` = a plan built for the serving GPU (only when given;
  FP16 or FP32, the precision its sidecar records)
- ``<name>_embedding_int8`` ``onnxruntime_onnx``, ``model.onnx`` = the bundle's QDQ INT8 graph embedding.int8.onnx
  (only with ``int8_onnx``), on the CPU (``KIND_CPU``: ONNX Runtime's CPU provider runs the Q/DQ pairs in INT8 and is
  what the export measured parity on; on a GPU, serve the INT8 plan)
- ``<name>_embedding_trt_int8`` ``tensorrt_plan``, ``model.plan`` = an INT8 plan built from that graph
  (``python -m export.tensorrt_build --precision int8``; only when given as ``int8_plan_file``)
- ``<name>_siamese``        ``onnxruntime_onnx``, ``model.onnx`` = siamese.onnx (inputs image_a, image_b -> score)

Every config has ``max_batch_size`` (dims are then given without the batch dimension), ``dynamic_batching`` and
``instance_group``. Instance kinds: the TensorRT plan needs a GPU (``KIND_GPU``); the ONNX models use
``KIND_AUTO`` by default, which Triton places on the GPUs when the server has them and on the CPU otherwise, so
the same repository serves from a GPU box or a CPU-only one (``device="gpu"``/``"cpu"`` force one).
Tensor shapes are read from the ONNX files themselves, so a config never disagrees with its model.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from runtime.bundle.layout import (
    EMBEDDING_INT8_ONNX,
    EMBEDDING_ONNX,
    EMBEDDING_OUTPUT,
    HEAD_INPUTS,
    HEAD_ONNX,
    INPUT_NAME,
    SCORE_OUTPUT,
    SIAMESE_INPUTS,
    SIAMESE_ONNX,
)
from runtime.engines import check_input_shape, sidecar_name
from runtime.extras import explain_missing_extras
from runtime.fileio import folder_lock, replace_dir, staging_dir

PLATFORM_ONNX = "onnxruntime_onnx"
PLATFORM_PLAN = "tensorrt_plan"
VERSION = "1"
DEVICES = ("auto", "gpu", "cpu")
_ONNX_TYPES = {1: "TYPE_FP32", 10: "TYPE_FP16", 6: "TYPE_INT32", 7: "TYPE_INT64", 9: "TYPE_BOOL", 11: "TYPE_FP64"}


@dataclass(frozen=True)
class Tensor:
    """One input or output as Triton sees it: dims without the batch dimension, and a reshape when the model's
    own tensor has no dimension besides the batch (Triton needs at least one dim: ``[1]`` reshaped to ``[]``)."""

    name: str
    data_type: str
    dims: tuple[int, ...]
    reshape: tuple[int, ...] | None = None
    optional: bool = False


def model_names(model_name: str) -> dict[str, str]:
    return {
        "embedding": f"{model_name}_embedding",
        "embedding_trt": f"{model_name}_embedding_trt",
        "embedding_int8": f"{model_name}_embedding_int8",
        "embedding_trt_int8": f"{model_name}_embedding_trt_int8",
        "siamese": f"{model_name}_siamese",
        "runtime": f"{model_name}_runtime",
        "head": f"{model_name}_head",
        "pair": f"{model_name}_pair",
    }


def _tensor(value_info, where: Path) -> Tensor:
    t = value_info.type.tensor_type
    if t.elem_type not in _ONNX_TYPES:
        raise ValueError(f"{where}: tensor {value_info.name!r} has ONNX element type {t.elem_type}, not servable here")
    dims = [d.dim_value if d.HasField("dim_value") else -1 for d in t.shape.dim]
    if not dims or dims[0] != -1:
        raise ValueError(
            f"{where}: tensor {value_info.name!r} has shape {dims}; Triton's batching needs a dynamic first (batch) "
            "dimension: re-export the bundle"
        )
    rest = tuple(dims[1:])
    if not rest:
        return Tensor(value_info.name, _ONNX_TYPES[t.elem_type], (1,), reshape=())
    return Tensor(value_info.name, _ONNX_TYPES[t.elem_type], rest)


def onnx_io(path: Path) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
    """(inputs, outputs) of an ONNX file by name, without the batch dimension; weights are not loaded."""
    import onnx

    if not path.is_file():
        raise FileNotFoundError(f"{path}: missing")
    model = onnx.load(str(path), load_external_data=False)
    init = {i.name for i in model.graph.initializer}
    inputs = {v.name: _tensor(v, path) for v in model.graph.input if v.name not in init}
    outputs = {v.name: _tensor(v, path) for v in model.graph.output}
    return inputs, outputs


def _expect(tensors: dict[str, Tensor], names: Sequence[str], where: Path, kind: str) -> list[Tensor]:
    if sorted(tensors) != sorted(names):
        raise ValueError(f"{where}: {kind}s {sorted(tensors)}, expected {list(names)}")
    return [tensors[n] for n in names]


def _check_dims(t: Tensor, expected: tuple[int, ...], where: Path) -> None:
    if len(t.dims) != len(expected) or any(d not in (-1, e) for d, e in zip(t.dims, expected)):
        raise ValueError(f"{where}: {t.name!r} has dims {list(t.dims)} (without batch), expected {list(expected)}")


def embedding_io(src: Path, hwc: tuple[int, int, int], dim: int) -> tuple[Tensor, Tensor]:
    """(image input, embedding output) of an embedding graph, checked: the project's names, the bundle's shapes."""
    inputs, outputs = onnx_io(src)
    (image,) = _expect(inputs, [INPUT_NAME], src, "input")
    (embedding,) = _expect(outputs, [EMBEDDING_OUTPUT], src, "output")
    _check_dims(image, hwc, src)
    _check_dims(embedding, (dim,), src)
    return image, embedding


def _dims(values: Sequence[int]) -> str:
    return "[ " + ", ".join(str(int(v)) for v in values) + " ]" if len(values) else "[ ]"


def _tensor_block(tensors: Sequence[Tensor], fixed_dims: dict[str, tuple[int, ...]]) -> str:
    items = []
    for t in tensors:
        dims = fixed_dims.get(t.name, t.dims)
        lines = [f'    name: "{t.name}"', f"    data_type: {t.data_type}", f"    dims: {_dims(dims)}"]
        if t.reshape is not None:
            lines.append(f"    reshape: {{ shape: {_dims(t.reshape)} }}")
        if t.optional:
            lines.append("    optional: true")
        items.append("  {\n" + "\n".join(lines) + "\n  }")
    return "[\n" + ",\n".join(items) + "\n]"


def config_pbtxt(
    name: str,
    platform: str,
    max_batch_size: int,
    inputs: Sequence[Tensor],
    outputs: Sequence[Tensor],
    kind: str,
    instances: int,
    preferred_batch_sizes: Sequence[int],
    max_queue_delay_us: int,
    fixed_dims: dict[str, tuple[int, ...]] | None = None,
    comment: str = "",
    parameters: dict[str, str] | None = None,
) -> str:
    """A ``config.pbtxt`` in Triton's ModelConfig text format. ``platform`` names the model's platform
    (``onnxruntime_onnx``, ``tensorrt_plan``, ``ensemble``) or, as ``backend:<name>``, its backend (``backend:python``);
    ``parameters``: the config's string parameters (the model and its clients read them)."""
    fixed = fixed_dims or {}
    head = "".join(f"# {line}\n" for line in comment.splitlines())
    kind_line = f'backend: "{platform[8:]}"' if platform.startswith("backend:") else f'platform: "{platform}"'
    params = "".join(
        f"parameters {{ key: {json.dumps(k, ensure_ascii=False)} value: {{ string_value: {json.dumps(str(v), ensure_ascii=False)} }} }}\n"
        for k, v in (parameters or {}).items()
    )
    return (
        f"{head}"
        f'name: "{name}"\n'
        f"{kind_line}\n"
        f"max_batch_size: {int(max_batch_size)}\n"
        f"input {_tensor_block(inputs, fixed)}\n"
        f"output {_tensor_block(outputs, fixed)}\n"
        "dynamic_batching {\n"
        f"  preferred_batch_size: {_dims(preferred_batch_sizes)}\n"
        f"  max_queue_delay_microseconds: {int(max_queue_delay_us)}\n"
        "}\n"
        "instance_group [\n"
        "  {\n"
        f"    count: {int(instances)}\n"
        f"    kind: {kind}\n"
        "  }\n"
        "]\n"
        f"{params}"
    )


def ensemble_pbtxt(
    names: dict[str, str], max_batch_size: int, image: Tensor, embedding: Tensor, score: Tensor,
    hwc: tuple[int, ...], dim: int,
) -> str:  # fmt: skip
    """``<name>_pair``: image_a, image_b -> score, Triton's ensemble of the embedding model on each image and then
    the head model (both ONNX Runtime models, so it serves where those do: Triton's GPU images)."""
    pair = [Tensor(n, image.data_type, hwc) for n in SIAMESE_INPUTS]
    a, b = SIAMESE_INPUTS

    def step(model: str, inputs: dict[str, str], outputs: dict[str, str]) -> str:
        maps = [f'      input_map {{ key: "{k}" value: "{v}" }}' for k, v in inputs.items()]
        maps += [f'      output_map {{ key: "{k}" value: "{v}" }}' for k, v in outputs.items()]
        return f'    {{\n      model_name: "{model}"\n      model_version: -1\n' + "\n".join(maps) + "\n    }"

    ea, eb = HEAD_INPUTS
    steps = [
        step(names["embedding"], {INPUT_NAME: a}, {embedding.name: ea}),
        step(names["embedding"], {INPUT_NAME: b}, {embedding.name: eb}),
        step(names["head"], {ea: ea, eb: eb}, {score.name: score.name}),
    ]
    return (
        "# written by siamese-edge export: the embedding of each image, then the head (embedding_a, embedding_b)\n"
        f'name: "{names["pair"]}"\n'
        'platform: "ensemble"\n'
        f"max_batch_size: {int(max_batch_size)}\n"
        f"input {_tensor_block(pair, {})}\n"
        f"output {_tensor_block([score], {})}\n"
        "ensemble_scheduling {\n  step [\n" + ",\n".join(steps) + "\n  ]\n}\n"
    )


def _plan_sidecar(plan_file: Path) -> dict:
    """The plan's sidecar (export.tensorrt_build's), or {} for a plan without one (trtexec's)."""
    side = plan_file.with_name(sidecar_name(plan_file.name))
    try:
        data = json.loads(side.read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError, UnicodeDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


def check_plan_file(plan_file: Path, model: str, int8: bool, device: str, max_batch_size: int) -> dict | None:
    """The batch profile of a plan served as ``model`` (None when it has no sidecar saying), after the checks: a
    GPU may serve it, it exists, its sidecar's precision is the model's (INT8 plans only as the INT8 model, and
    only those), and it takes every batch Triton may send (1..max_batch_size)."""
    if device == "cpu":
        raise ValueError("device 'cpu': a TensorRT plan only runs on a GPU; drop the plan or use 'auto'/'gpu'")
    if not plan_file.is_file():
        raise FileNotFoundError(f"{plan_file}: missing (the TensorRT plan for {model})")
    side = _plan_sidecar(plan_file)
    precision = side.get("precision")
    if precision is not None and (precision == "int8") != int8:
        where, other = (
            ("plan_file (--plan)", model.removesuffix("_int8"))
            if int8
            else ("int8_plan_file (--int8-plan)", model + "_int8")
        )
        raise ValueError(
            f"{plan_file}: an {str(precision).upper()} plan, not one for {model}; pass it as {where}, served as {other}"
        )
    profile = side.get("profile")
    if profile and (profile["min"] > 1 or int(max_batch_size) > profile["max"]):
        raise ValueError(
            f"{plan_file}: built for batch {profile['min']}..{profile['max']}, but Triton sends any "
            f"batch from 1 to max_batch_size {max_batch_size}; rebuild it with --batch 1:N:{max_batch_size}"
        )
    return profile


def _preferred(max_batch_size: int, preferred: Sequence[int] | None, profile: dict | None) -> list[int]:
    """The batch sizes the dynamic batcher aims for: given, else the plan's tuned size and the maximum."""
    if preferred is None:
        preferred = [profile["opt"], max_batch_size] if profile else [max_batch_size]
    out = sorted({int(b) for b in preferred})
    if not out or out[0] < 1 or out[-1] > max_batch_size:
        raise ValueError(f"preferred batch sizes {list(preferred)}: expected values in 1..{max_batch_size}")
    return out


def _link_or_copy(src: str, dst: str) -> None:
    try:
        os.link(src, dst)  # the other models' files are shared with the repository being replaced, not copied
    except OSError:
        shutil.copy2(src, dst)


def _install(staged: Path, repo_dir: Path, names: list[str], overwrite: bool) -> None:
    """Publish the staged models as ``repo_dir`` in one rename, under a lock on its parent folder (two writers of
    the same repository take turns, and each keeps the other's models). A new repository is the staged folder
    renamed; an existing one gets its other models linked into the staged folder, which then swaps places with it
    in one step (``runtime.fileio.replace_dir``: an atomic exchange where the file system can, else two renames
    with the old folder put back on failure: never mixed)."""
    with folder_lock(repo_dir.parent):
        if not repo_dir.exists():
            replace_dir(staged, repo_dir)  # a plain rename here, after replace_dir's check for a lost interrupt
            return
        if not repo_dir.is_dir() or repo_dir.is_symlink():
            raise FileExistsError(f"{repo_dir}: exists and is not a folder")
        taken = [n for n in names if (repo_dir / n).exists()]
        if taken and not overwrite:
            raise FileExistsError(
                f"{repo_dir}: already has model(s) {', '.join(taken)}; pass --force (overwrite=True) to replace them"
            )
        for entry in repo_dir.iterdir():
            if entry.name in names:
                continue
            if entry.is_dir() and not entry.is_symlink():
                shutil.copytree(entry, staged / entry.name, symlinks=True, copy_function=_link_or_copy)
            else:
                _link_or_copy(str(entry), str(staged / entry.name))
        replace_dir(staged, repo_dir)  # one atomic swap where the file system can, else two renames with put-back


def write_triton_repository(
    bundle_dir: Path,
    repo_dir: Path,
    model_name: str,
    input_shape,
    embedding_dim: int,
    max_batch_size: int = 32,
    instances: int = 1,
    plan_file: Path | None = None,
    has_siamese: bool = True,
    overwrite: bool = False,
    preferred_batch_sizes: Sequence[int] | None = None,
    max_queue_delay_us: int = 100,
    device: str = "auto",
    int8_onnx: bool = False,
    int8_plan_file: Path | None = None,
    head_model: bool = True,
    runtime_model: bool = True,
    runtime_instances: int | None = None,
    runtime_device: str = "cpu",
    runtime_threads: int | None = None,
) -> Path:
    """Write (or add to) a Triton model repository at ``repo_dir`` for the bundle; returns ``repo_dir``.

    ``head_model``: with the bundle's head.onnx, also ``<name>_head`` (embedding_a, embedding_b -> score) and
    ``<name>_pair``, an ensemble of the embedding model on each image then the head (Triton's GPU images).
    ``runtime_model``: also ``<name>_runtime``, the bundle on Triton's Python backend through the project's runtime
    (``runtime.triton_model``: embed, score pairs and one against many, the bundle's hashes checked at model load);
    the one model a server without the ONNX Runtime and TensorRT backends (nvidia-pytriton's) serves.
    ``runtime_instances`` (default ``instances``) on ``runtime_device`` ("cpu": ``KIND_CPU``, "gpu": ``KIND_GPU``,
    where the runtime takes its GPU providers), ``runtime_threads``: intra-op threads per instance.

    ``plan_file``: an FP16/FP32 plan served as ``<name>_embedding_trt``; ``int8_onnx``: the bundle's QDQ INT8 graph
    as ``<name>_embedding_int8`` (ONNX Runtime, CPU); ``int8_plan_file``: an INT8 plan as
    ``<name>_embedding_trt_int8``. The FP32 ONNX embedding is always there, so clients pick a precision by model name.

    Staged beside ``repo_dir`` and moved into place when complete. Models of the same names already there are
    replaced only with ``overwrite``; other models in the repository are left alone.
    """
    bundle_dir, repo_dir = Path(bundle_dir), Path(repo_dir)
    hwc = check_input_shape(input_shape)
    if not model_name or "/" in model_name or model_name.startswith("."):
        raise ValueError(f"model name {model_name!r}: expected a plain name (no '/', not hidden)")
    if int(max_batch_size) < 1 or int(instances) < 1 or int(embedding_dim) < 1 or int(max_queue_delay_us) < 0:
        raise ValueError(
            f"max_batch_size {max_batch_size}, instances {instances}, embedding_dim {embedding_dim}, "
            f"max_queue_delay_us {max_queue_delay_us}: expected positive integers (delay >= 0)"
        )
    if device not in DEVICES:
        raise ValueError(f"device {device!r}: expected one of {DEVICES}")
    onnx_kind = {"auto": "KIND_AUTO", "gpu": "KIND_GPU", "cpu": "KIND_CPU"}[device]
    if runtime_device not in ("cpu", "gpu"):
        raise ValueError(f"runtime_device {runtime_device!r}: expected 'cpu' or 'gpu'")
    if runtime_model:
        if runtime_threads is not None and int(runtime_threads) < 1:
            raise ValueError(f"runtime_threads {runtime_threads}: expected a positive integer")
        from runtime.bundle.manifest import load_manifest

        manifest = load_manifest(bundle_dir)  # a tampered bundle is refused here already, naming the file
        if tuple(manifest.preprocessing.input_shape) != hwc or manifest.embedding_dim != int(embedding_dim):
            raise ValueError(
                f"{bundle_dir}: the manifest says input {list(manifest.preprocessing.input_shape)}, embedding "
                f"{manifest.embedding_dim}; asked for {list(hwc)}, {embedding_dim}"
            )
    names = model_names(model_name)

    emb_src = bundle_dir / EMBEDDING_ONNX
    image, embedding = embedding_io(emb_src, hwc, int(embedding_dim))
    fixed = {INPUT_NAME: hwc, EMBEDDING_OUTPUT: (int(embedding_dim),)}
    plans = {"embedding_trt": plan_file, "embedding_trt_int8": int8_plan_file}
    profiles = [
        check_plan_file(Path(f), names[key], key.endswith("int8"), device, int(max_batch_size))
        for key, f in plans.items()
        if f is not None
    ]
    plan_profile = next((p for p in profiles if p), None)  # the batcher aims at the (first) plan's tuned size
    preferred = _preferred(int(max_batch_size), preferred_batch_sizes, plan_profile)
    comment = f"written by siamese-edge export from bundle {bundle_dir.name}"

    models: dict[str, tuple[str, str, Path, list[Tensor], list[Tensor], str]] = {
        names["embedding"]: (PLATFORM_ONNX, "model.onnx", emb_src, [image], [embedding], onnx_kind),
    }
    if int8_onnx:
        int8_src = bundle_dir / EMBEDDING_INT8_ONNX
        if not int8_src.is_file():
            raise FileNotFoundError(
                f"{int8_src}: missing (the QDQ INT8 graph for {names['embedding_int8']}); make it with "
                "python -m export.build --model MODEL_FILE --int8 [--calib-images DIR]"
            )
        int8_image, int8_embedding = embedding_io(int8_src, hwc, int(embedding_dim))
        models[names["embedding_int8"]] = (
            PLATFORM_ONNX, "model.onnx", int8_src, [int8_image], [int8_embedding], "KIND_CPU",
        )  # fmt: skip
    for key, f in plans.items():
        if f is not None:
            models[names[key]] = (PLATFORM_PLAN, "model.plan", Path(f), [image], [embedding], "KIND_GPU")
    sia_src = bundle_dir / SIAMESE_ONNX
    if has_siamese and sia_src.is_file():
        sia_in, sia_out = onnx_io(sia_src)
        pair = _expect(sia_in, list(SIAMESE_INPUTS), sia_src, "input")
        (score,) = _expect(sia_out, [SCORE_OUTPUT], sia_src, "output")
        for t in pair:
            _check_dims(t, hwc, sia_src)
        fixed.update({n: hwc for n in SIAMESE_INPUTS})
        models[names["siamese"]] = (PLATFORM_ONNX, "model.onnx", sia_src, pair, [score], onnx_kind)
    elif has_siamese:
        raise FileNotFoundError(f"{sia_src}: missing (pass has_siamese=False to leave the siamese model out)")
    head_src = bundle_dir / HEAD_ONNX
    pair_config = None
    if head_model and head_src.is_file():
        head_in, head_out = onnx_io(head_src)
        head_ins = _expect(head_in, list(HEAD_INPUTS), head_src, "input")
        (head_score,) = _expect(head_out, [SCORE_OUTPUT], head_src, "output")
        for t in head_ins:
            _check_dims(t, (int(embedding_dim),), head_src)
        fixed.update({n: (int(embedding_dim),) for n in HEAD_INPUTS})
        models[names["head"]] = (PLATFORM_ONNX, "model.onnx", head_src, head_ins, [head_score], onnx_kind)
        pair_config = ensemble_pbtxt(names, max_batch_size, image, embedding, head_score, hwc, int(embedding_dim))

    notes = {
        names["embedding_int8"]: f"INT8: {EMBEDDING_INT8_ONNX}, the bundle's QDQ graph, on ONNX Runtime's CPU provider",
        names["embedding_trt_int8"]: f"INT8: a TensorRT plan built from {EMBEDDING_INT8_ONNX} (explicit quantization)",
    }
    with staging_dir(repo_dir) as staged:  # beside repo_dir, never inside it, where a polling Triton would see it
        if runtime_model:
            name = names["runtime"]
            n = int(runtime_instances if runtime_instances is not None else instances)
            kind = "KIND_GPU" if runtime_device == "gpu" else "KIND_CPU"
            _write_runtime_model(
                staged / name, bundle_dir, manifest, name, max_batch_size, n, kind, preferred, max_queue_delay_us,
                runtime_threads, comment,
            )  # fmt: skip
            models_written = [name]
        else:
            models_written = []
        for name, (platform, file_name, src, ins, outs, kind) in models.items():
            (staged / name / VERSION).mkdir(parents=True)
            shutil.copy2(src, staged / name / VERSION / file_name)
            text = config_pbtxt(
                name,
                platform,
                max_batch_size,
                ins,
                outs,
                kind,
                instances,
                preferred,
                max_queue_delay_us,
                fixed,
                comment + (f"\n{notes[name]}" if name in notes else ""),
            )
            (staged / name / "config.pbtxt").write_text(text, encoding="utf-8")
        if pair_config is not None:
            (staged / names["pair"] / VERSION).mkdir(parents=True)  # an ensemble has a version folder, no file
            (staged / names["pair"] / "config.pbtxt").write_text(pair_config, encoding="utf-8")
            models_written.append(names["pair"])
        _install(staged, repo_dir, [*models_written, *models], overwrite)
    return repo_dir


def runtime_model_parameters(manifest, bundle: str, threads: int | None) -> dict[str, str]:
    """The ``<name>_runtime`` config's parameters: where its bundle is and how the model loads it, and what a
    client needs without the bundle (runtime.remote): the score semantics and threshold, the preprocessing, the
    embedding size and which network made the embeddings."""
    spec = manifest.score
    return {
        "bundle": bundle,
        "bundle_name": manifest.name,
        "backend": "onnxruntime",
        "precision": "fp32",
        "threads": "" if threads is None else str(int(threads)),
        "score_kind": spec.kind,
        "same_when": spec.same_when,
        "threshold": repr(float(spec.threshold)),
        "threshold_source": spec.threshold_source,
        "score_meaning": spec.describe(),
        "embedding_dim": str(int(manifest.embedding_dim)),
        "model_id": manifest.embedding_sha256 or f"bundle:{manifest.name}",
        "preprocessing": json.dumps(manifest.preprocessing.to_dict(), sort_keys=True),
    }


def _write_runtime_model(
    target: Path,
    bundle_dir: Path,
    manifest,
    name: str,
    max_batch_size: int,
    instances: int,
    kind: str,
    preferred: Sequence[int],
    max_queue_delay_us: int,
    threads: int | None,
    comment: str,
) -> None:
    """``<name>_runtime``: ``1/model.py`` (the shim into runtime.triton_model), ``1/bundle/`` (the manifest and
    every file it lists, byte for byte), ``config.pbtxt`` (Python backend, optional inputs, the parameters)."""
    from runtime.bundle.layout import MANIFEST_NAME
    from runtime.triton_model import BUNDLE_DIR, SHIM

    version = target / VERSION
    bundle = version / BUNDLE_DIR
    bundle.mkdir(parents=True)
    for rel in [MANIFEST_NAME, *manifest.files]:
        (bundle / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(bundle_dir / rel, bundle / rel)
    (version / "model.py").write_text(SHIM, encoding="utf-8")
    hwc = tuple(manifest.preprocessing.input_shape)
    dim = (int(manifest.embedding_dim),)
    ins = [
        Tensor("image_a", "TYPE_FP32", hwc, optional=True),
        Tensor("embedding_in_a", "TYPE_FP32", dim, optional=True),
        Tensor("image_b", "TYPE_FP32", hwc, optional=True),
        Tensor("embedding_in_b", "TYPE_FP32", dim, optional=True),
    ]
    outs = [
        Tensor("embedding_a", "TYPE_FP32", dim),
        Tensor("embedding_b", "TYPE_FP32", dim),
        Tensor("score", "TYPE_FP32", (1,)),
        Tensor("match", "TYPE_BOOL", (1,)),
    ]
    note = "\nthe bundle through siamese-edge's runtime (runtime.triton_model) on the Python backend"
    text = config_pbtxt(
        name, "backend:python", max_batch_size, ins, outs, kind, instances, preferred, max_queue_delay_us,
        comment=comment + note, parameters=runtime_model_parameters(manifest, BUNDLE_DIR, threads),
    )  # fmt: skip
    (target / "config.pbtxt").write_text(text, encoding="utf-8")


# ----------------------------------------------------------------------------------------------------------------
# command line: a repository for a bundle already exported (export.build --triton writes one at export)
# ----------------------------------------------------------------------------------------------------------------

EXAMPLES = """
examples:
  python -m export.triton --bundle bundles/omniglot_vgg --repo triton_repo
  python -m export.triton --bundle runs/demo/bundles/demo --repo triton_repo --batch 1:8:32 --runtime-instances 2
  python -m runtime.serve --repo triton_repo                        # serve it (the nvidia-pytriton wheel's server)
  python -m export.triton --bundle bundles/omniglot_vgg --repo triton_repo --int8-onnx          # + the QDQ graph, CPU
  python -m export.triton --bundle bundles/omniglot_vgg --repo triton_repo --force \\
      --plan bundles/omniglot_vgg/embedding.trt10.3.sm87.fp16.<key>.plan \\
      --int8-plan bundles/omniglot_vgg/embedding.trt10.3.sm87.int8.<key>.plan

exit codes: 0 written; 2 bad input (a missing file, a plan that does not fit, models already there without --force)
"""


def build_parser():
    import argparse

    p = argparse.ArgumentParser(
        prog="python -m export.triton",
        description="Write (or add to) a Triton Inference Server model repository for an exported bundle: the FP32 "
        "ONNX embedding and siamese models, and by choice the INT8 QDQ graph (ONNX Runtime, CPU) and TensorRT plans "
        "(FP16/FP32 and INT8, built on the serving GPU by python -m export.tensorrt_build).",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--bundle", required=True, metavar="DIR", help="bundle folder written by python -m export.build")
    p.add_argument("--repo", required=True, metavar="DIR", help="the model repository (created, or added to)")
    p.add_argument("--name", help="model name prefix (default: the bundle's name)")
    p.add_argument("--max-batch", type=int, help="max_batch_size (default: --batch's MAX, else 32)")
    p.add_argument(
        "--batch",
        metavar="MIN:OPT:MAX",
        help="the export's batch profile (export.build --batch): max_batch_size MAX, preferred batch sizes OPT and MAX",
    )
    p.add_argument("--instances", type=int, default=1, help="instances per model (default: %(default)s)")
    p.add_argument("--device", choices=DEVICES, default="auto", help="where the ONNX models run (default: auto)")
    p.add_argument("--plan", metavar="FILE", help="an FP16/FP32 TensorRT plan: <name>_embedding_trt")
    p.add_argument(
        "--int8-onnx", action="store_true", help=f"serve {EMBEDDING_INT8_ONNX} (QDQ) as <name>_embedding_int8, on CPU"
    )
    p.add_argument("--int8-plan", metavar="FILE", help="an INT8 TensorRT plan: <name>_embedding_trt_int8")
    p.add_argument("--force", action="store_true", help="replace models of the same names already in the repository")
    g = p.add_argument_group("the runtime model (<name>_runtime: the bundle on Triton's Python backend)")
    g.add_argument(
        "--no-runtime-model", action="store_true", help="leave it out (GPU images serving ONNX/TensorRT only)"
    )
    g.add_argument("--runtime-instances", type=int, metavar="N", help="instances (default: --instances)")
    g.add_argument(
        "--runtime-device", choices=("cpu", "gpu"), default="cpu", help="KIND_CPU or KIND_GPU (default: cpu)"
    )
    g.add_argument("--runtime-threads", type=int, metavar="N", help="ONNX Runtime intra-op threads per instance")
    return p


@explain_missing_extras("export")  # reading the ONNX files needs the onnx package
def main(argv: list[str] | None = None) -> int:
    import sys

    from runtime.bundle.layout import BundleError
    from runtime.bundle.manifest import load_manifest
    from runtime.engines import BatchProfile

    args = build_parser().parse_args(argv)
    bundle = Path(args.bundle)
    try:
        profile = BatchProfile.parse(args.batch) if args.batch else None
        max_batch = args.max_batch or (profile.max if profile else 32)
        preferred = sorted({profile.opt, profile.max} & set(range(1, max_batch + 1))) if profile else None
        manifest = load_manifest(bundle)
        repo = write_triton_repository(
            bundle,
            Path(args.repo),
            args.name or manifest.name,
            manifest.preprocessing.input_shape,
            manifest.embedding_dim,
            max_batch_size=max_batch,
            preferred_batch_sizes=preferred or None,
            instances=args.instances,
            plan_file=Path(args.plan) if args.plan else None,
            has_siamese=(bundle / SIAMESE_ONNX).is_file(),
            overwrite=args.force,
            device=args.device,
            int8_onnx=args.int8_onnx,
            int8_plan_file=Path(args.int8_plan) if args.int8_plan else None,
            runtime_model=not args.no_runtime_model,
            runtime_instances=args.runtime_instances,
            runtime_device=args.runtime_device,
            runtime_threads=args.runtime_threads,
        )
    except (BundleError, ValueError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    models = sorted(p.name for p in repo.iterdir() if (p / "config.pbtxt").is_file())
    print(f"triton:   {repo}/ ({', '.join(models)})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
