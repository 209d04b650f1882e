"""Static verification of the GPU modules (issue 19 item 4), inside ``make test``: mypy over the TensorRT backend,
the CUDA adapter and the plan builder against tensorrt-stubs (TensorRT 10.13's Python API, mended by
tools/typecheck.py) and cuda-bindings' embedded signatures, with under 5% of the TensorRT modules' expressions
typed Any; and the split between TensorRT 10's weak-typing names and the TensorRT 11 path, read from the source.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tools import typecheck as tc

ROOT = Path(__file__).resolve().parents[1]
TENSORRT_MODULES = ("export.tensorrt_build", "runtime.backends.tensorrt_backend")

# removed in TensorRT 11 (NVIDIA's "Removed Python APIs" for 10.x -> 11.x): weak typing and implicit quantization
TEN_ONLY = frozenset(
    {
        "FP16", "INT8", "BF16", "FP8", "INT4", "FP4", "OBEY_PRECISION_CONSTRAINTS", "PREFER_PRECISION_CONSTRAINTS",
        "DIRECT_IO", "int8_calibrator", "set_calibration_profile", "get_calibration_profile", "set_quantization_flag",
        "clear_quantization_flag", "quantization_flags", "IInt8Calibrator", "IInt8EntropyCalibrator",
        "IInt8EntropyCalibrator2", "IInt8MinMaxCalibrator", "IInt8LegacyCalibrator", "set_output_type",
        "platform_has_fast_fp16", "platform_has_fast_int8",
    }
)  # fmt: skip


# ---------------------------------------------------------------------------------------------------------------
# the stubs: mending and generation (pure)
# ---------------------------------------------------------------------------------------------------------------


def test_the_invalid_stub_lines_are_mended_stricter_not_looser():
    bad = (
        "class P:\n"
        "    def get_workspace_size(self, in: list[int], out: list[int]) -> int: ...\n"
        "    def add_scale_nd(self, input: int, mode: int, shift: int = None, power: int = None, channel_axis: int) -> int: ...\n"
    )  # fmt: skip
    text, mended = tc.mend_stub(bad)
    assert mended == [2, 3]
    ast.parse(text)
    assert "in_: list[int], out: list[int]" in text
    assert "shift: int, power: int, channel_axis: int" in text  # every argument required
    with pytest.raises(ValueError, match="cannot mend this stub line"):
        tc.mend_line("def f(x y): ...", "invalid syntax")


def test_trt_bool_no_longer_shadows_the_builtin_in_annotations():
    text = "from __future__ import annotations\nbool: DataType\n__all__ = ['bool']\ndef f(x: bool) -> list[bool]: ...\n"
    out = tc.mend_bool(text)
    assert "\nbool: DataType\n" in out and "__all__ = ['bool']" in out
    assert "def f(x: _builtins.bool) -> list[_builtins.bool]: ..." in out and "import builtins as _builtins" in out


def test_cuda_runtime_stub_lines_from_embedded_signatures():
    known = {"cudaMemcpyKind", "cudaError_t", "cudaStream_t", "cudaKernelNodeAttrValue"}
    assert tc.stub_params("dst, src, size_t count, kind: cudaMemcpyKind, stream", known) == (
        "dst: Any, src: Any, count: int, kind: cudaMemcpyKind, stream: Any"
    )
    assert tc.stub_params("hNode, cudaKernelNodeAttrValue value: Optional[cudaKernelNodeAttrValue]", known) == (
        "hNode: Any, value: cudaKernelNodeAttrValue | None"
    )
    doc = (
        "cudaStreamCreate()\n\nReturns\n-------\ncudaError_t\n    ok\npStream : :py:obj:`~.cudaStream_t`\n    s\n\nSee"
    )
    assert tc.stub_returns(doc, known) == "tuple[cudaError_t, cudaStream_t]"
    assert tc.stub_returns("f()\n\nReturns\n-------\ncudaError_t\n    x\nfree : int\n    y\n", known) == (
        "tuple[cudaError_t, int]"
    )


def test_any_report_parsing():
    table = (
        " Name   Anys   Exprs   Coverage\n---\n export.tensorrt_build   69   1420   95.14%\n"
        " runtime.backends.tensorrt_backend  5  1250  99.60%\n---\n Total  74  2670  97.23%\n"
    )
    got = tc.parse_any_report(table)
    assert got["export.tensorrt_build"] == pytest.approx(4.86) and got["Total"] == pytest.approx(2.77)


# ---------------------------------------------------------------------------------------------------------------
# mypy against the real API descriptions
# ---------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def stubs() -> dict[str, list[int]]:
    pytest.importorskip("mypy", reason="mypy is not installed (pip install -e '.[dev]')")
    try:
        return tc.prepare_stubs()
    except tc.StubsUnavailable as e:
        pytest.skip(f"the type check needs its stubs: {e}")


def test_the_gpu_modules_type_check_against_tensorrt_and_cuda_bindings(stubs, tmp_path):
    assert stubs["tensorrt_bindings/tensorrt.pyi"], "tensorrt-stubs 10.13 has five invalid lines; none were mended"
    result = tc.run_mypy(report=tmp_path / "any")
    assert result.status == 0, result.output
    assert result.output.startswith(f"Success: no issues found in {len(tc.MODULES)} source files"), result.output
    for module in TENSORRT_MODULES:
        assert result.any_percent[module] < tc.ANY_CEILING, (module, result.any_percent)
    print("Any expressions (%):", result.any_percent)


def test_mypy_reads_the_tensorrt_stubs_not_any(stubs, tmp_path):
    """A wrong TensorRT or cuda-bindings call is an error: the check is not vacuous."""
    bad = tmp_path / "bad.py"
    bad.write_text(
        "import tensorrt as trt\n"
        "from cuda.bindings import runtime as cudart\n\n"
        "def f(config: trt.IBuilderConfig) -> None:\n"
        "    config.set_flag(trt.BuilderFlag.FP17)\n"
        "    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE)\n"
        "    err, ptr = cudart.cudaMalloc('1024')\n"
        "    cudart.cudaMemcpyAsync(0, 0, 4, cudart.cudaMemcpyKind.cudaMemcpyHostToDevice)\n"
    )
    result = tc.run_mypy((str(bad),), report=tmp_path / "any")
    assert result.status == 1
    assert '"type[BuilderFlag]" has no attribute "FP17"' in result.output
    assert 'Missing positional argument "pool_size" in call to "set_memory_pool_limit"' in result.output
    assert 'Argument 1 to "cudaMalloc" has incompatible type "str"; expected "int"' in result.output
    assert 'Missing positional argument "stream" in call to "cudaMemcpyAsync"' in result.output


# ---------------------------------------------------------------------------------------------------------------
# TensorRT 10 names on the 10 path, TensorRT 11 names on the 11 path
# ---------------------------------------------------------------------------------------------------------------


def _major_branches(tree: ast.AST) -> tuple[set[int], set[int]]:
    """ids of nodes inside ``if <x> < STRONGLY_TYPED_MAJOR:`` bodies (the 10 path) and their else (the 11 path)."""
    ten: set[int] = set()
    eleven: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and isinstance(node.test, ast.Compare):
            test = node.test
            right = test.comparators[0] if len(test.comparators) == 1 else None
            if isinstance(test.ops[0], ast.Lt) and isinstance(right, ast.Name) and right.id == "STRONGLY_TYPED_MAJOR":
                ten |= {id(n) for stmt in node.body for n in ast.walk(stmt)}
                eleven |= {id(n) for stmt in node.orelse for n in ast.walk(stmt)}
    return ten, eleven


def _functions(tree: ast.AST) -> dict[int, str]:
    """id of each node -> the name of the innermost function it is in."""
    owner: dict[int, str] = {}
    for fn in ast.walk(tree):
        if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for n in ast.walk(fn):
                owner[id(n)] = fn.name  # inner functions are walked later and overwrite
    return owner


def split_violations(source: str, eleven_only: frozenset[str]) -> tuple[list[str], int]:
    """Uses of TensorRT 10-only names outside the 10 path, and of 11-only names outside the 11 path; and how many
    10-only uses there are (so the check is seen to look at something). The 10 path: the body of
    ``if major < STRONGLY_TYPED_MAJOR`` and functions named ``*_trt10``, each called only from that path."""
    tree = ast.parse(source)
    ten, eleven = _major_branches(tree)
    owner = _functions(tree)
    bad: list[str] = []
    uses = 0
    for node in ast.walk(tree):
        in_ten = id(node) in ten or owner.get(id(node), "").endswith("_trt10")
        in_eleven = id(node) in eleven or owner.get(id(node), "").endswith("_trt11")
        if isinstance(node, ast.Attribute) and node.attr in TEN_ONLY:
            uses += 1
            if not in_ten:
                bad.append(f"line {node.lineno}: {node.attr} (TensorRT 10 only) outside the major < 11 path")
        if isinstance(node, ast.Attribute) and node.attr in eleven_only and not in_eleven:
            bad.append(f"line {node.lineno}: {node.attr} (TensorRT 11 only) outside the major >= 11 path")
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            name = node.func.id
            if name.endswith("_trt10") and not in_ten:
                bad.append(f"line {node.lineno}: {name}() called outside the major < 11 path")
            if name.endswith("_trt11") and not in_eleven:
                bad.append(f"line {node.lineno}: {name}() called outside the major >= 11 path")
    return sorted(bad, key=lambda line: int(line.split(":")[0].split()[1])), uses


def _eleven_only(stubs_dir: Path, sources: list[str]) -> frozenset[str]:
    """``trt.<name>`` attributes the modules use that TensorRT 10.13's stubs do not declare anywhere."""
    declared = set()
    for pyi in (stubs_dir / "tensorrt_bindings").glob("*.pyi"):
        for node in ast.walk(ast.parse(pyi.read_text())):
            if isinstance(node, (ast.ClassDef, ast.FunctionDef)):
                declared.add(node.name)
            elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
                declared.add(node.target.id)
    used = set()
    for src in sources:
        for node in ast.walk(ast.parse(src)):
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "trt":
                used.add(node.attr)
    return frozenset(used - declared - {"__version__"})


def test_tensorrt_10_names_only_on_the_10_path_and_11_names_only_on_the_11_path(stubs):
    sources = {m: (ROOT / m).read_text() for m in tc.MODULES}
    eleven_only = _eleven_only(tc.STUBS, list(sources.values()))
    total = 0
    for module, source in sources.items():
        bad, uses = split_violations(source, eleven_only)
        assert bad == [], (module, bad)
        total += uses
    assert total >= 3  # BuilderFlag.FP16, OBEY_PRECISION_CONSTRAINTS, set_output_type: the rule saw them


def test_the_split_check_catches_a_flag_on_the_wrong_path():
    source = (
        "def build(trt, config, major):\n"
        "    if major < STRONGLY_TYPED_MAJOR:\n"
        "        config.set_flag(trt.BuilderFlag.FP16)\n"
        "        _pins_trt10(config)\n"
        "    else:\n"
        "        config.set_flag(trt.BuilderFlag.NEW_IN_11)\n"
        "    config.set_flag(trt.BuilderFlag.INT8)\n"
        "    _pins_trt10(config)\n"
        "def _pins_trt10(config):\n"
        "    config.set_flag(trt.BuilderFlag.OBEY_PRECISION_CONSTRAINTS)\n"
        "def other(trt, config):\n"
        "    config.set_flag(trt.BuilderFlag.NEW_IN_11)\n"
    )
    bad, uses = split_violations(source, frozenset({"NEW_IN_11"}))
    assert uses == 3
    assert bad == [
        "line 7: INT8 (TensorRT 10 only) outside the major < 11 path",
        "line 8: _pins_trt10() called outside the major < 11 path",
        "line 12: NEW_IN_11 (TensorRT 11 only) outside the major >= 11 path",
    ]
