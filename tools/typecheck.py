"""Type-check the GPU modules against real API descriptions (``make typecheck``; also run by
tests/test_gpu_typecheck.py inside ``make test``).

No machine here can import TensorRT, so mypy reads TensorRT's Python API from the ``tensorrt-stubs`` package
(TensorRT 10.13 as stubs) and cuda-python's runtime API from cuda-bindings' own annotations:

- tensorrt-stubs is installed with ``pip --no-deps --target build/tensorrt-stubs`` (its wheel depends on
  ``tensorrt==10.13``, which would replace a TensorRT 11, and on CPU machines its ``tensorrt/__init__.pyi`` would
  make ``import tensorrt`` succeed as an empty namespace package), then copied to ``build/stubs`` with the few
  lines that are not valid Python mended (a parameter named ``in``; a parameter without a default after ones
  with defaults);
- cuda-bindings ships compiled Cython modules whose functions carry embedded signatures
  (``cudaMemcpyAsync(dst, src, size_t count, kind: cudaMemcpyKind, stream)``) and numpy-style ``Returns``
  sections (``cudaError_t``, ``devPtr : int``): ``build/stubs/cuda/bindings/runtime.pyi`` is written from them.

pycuda ships no annotations: its calls are typed ``Any`` (checked on a GPU by ``make gpu-smoke`` only).
"""

from __future__ import annotations

import argparse
import ast
import inspect
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BUILD = ROOT / "build"
STUBS = BUILD / "stubs"
TENSORRT_STUBS = "tensorrt-stubs==10.13.0.35.1"  # TensorRT 10.13's Python API
TENSORRT_STUBS_DIR = BUILD / "tensorrt-stubs"  # pip --target: never the environment's site-packages
MODULES = ("runtime/backends/tensorrt_backend.py", "runtime/backends/cuda_memory.py", "export/tensorrt_build.py")
ANY_CEILING = 5.0  # percent of expressions typed Any in each TensorRT module

MYPY_INI = """\
[mypy]
python_version = 3.10
mypy_path = {stubs}
follow_imports = silent
disallow_untyped_defs = True
disallow_incomplete_defs = True
check_untyped_defs = True
warn_unused_ignores = True
warn_redundant_casts = True
cache_dir = {cache}

# errors inside the third-party stubs (pybind11-stubgen's ``...`` and ``capsule`` types, self types) are theirs,
# as for any installed stub package; what they declare is still what the modules are checked against
[mypy-tensorrt.*,tensorrt_bindings.*,tensorrt_libs.*,cuda.*]
ignore_errors = True

[mypy-pycuda.*]
ignore_missing_imports = True

[mypy-onnxruntime.*]
ignore_missing_imports = True
"""


class StubsUnavailable(RuntimeError):
    """The stubs cannot be made here (no package index for tensorrt-stubs, no cuda-bindings): why, in one line."""


# ----------------------------------------------------------------------------------------------------------------
# tensorrt-stubs: installed into build/, mended into build/stubs
# ----------------------------------------------------------------------------------------------------------------

_DEFAULT = re.compile(r"\s*=\s*(None|True|False|-?\d+(\.\d+)?|'[^']*'|\.\.\.)")


def mend_line(line: str, message: str) -> str:
    """One stub line that does not parse, made valid: ``in`` (a keyword) as a parameter name becomes ``in_``; a
    parameter without a default after ones with defaults (pybind11 allows it) drops those defaults, so every
    argument is required, which is stricter, never looser. ValueError for any other error."""
    if re.search(r"\bin\s*:", line):
        return re.sub(r"\bin(\s*:)", r"in_\1", line)
    if "follows default argument" in message or "without a default follows" in message:
        return _DEFAULT.sub("", line)
    raise ValueError(f"cannot mend this stub line ({message}): {line.strip()}")


def mend_stub(text: str) -> tuple[str, list[int]]:
    """The stub text made parseable, and the (1-based) lines that were mended."""
    lines = text.splitlines()
    mended: list[int] = []
    while True:
        try:
            ast.parse("\n".join(lines))
            return "\n".join(lines) + "\n", mended
        except SyntaxError as e:
            n = e.lineno or 0
            if n < 1 or n in mended:
                raise ValueError(f"line {n}: {e.msg} (mended once already)") from None
            lines[n - 1] = mend_line(lines[n - 1], e.msg)
            mended.append(n)


_BUILTIN_BOOL = re.compile(r"(?<![\w.'\"])bool(?![\w'\"])")


def mend_bool(text: str) -> str:
    """The stubs declare TensorRT's ``trt.bool`` (a DataType) at module level, which shadows the builtin in every
    ``-> bool`` of the file (mypy: not valid as a type, so it would read Any): those annotations are made
    ``builtins.bool``, the module variable stays."""
    if not re.search(r"^bool\s*:", text, re.M):
        return text
    lines = [ln if re.match(r"bool\s*:", ln) else _BUILTIN_BOOL.sub("_builtins.bool", ln) for ln in text.splitlines()]
    at = next((i + 1 for i, ln in enumerate(lines) if ln.startswith("from __future__")), 0)
    return "\n".join([*lines[:at], "import builtins as _builtins", *lines[at:]]) + "\n"


def install_tensorrt_stubs(target: Path = TENSORRT_STUBS_DIR) -> Path:
    """``pip install --no-deps --target`` the pinned tensorrt-stubs (once); StubsUnavailable when pip cannot."""
    if (target / "tensorrt" / "__init__.pyi").is_file():
        return target
    cmd = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(target), TENSORRT_STUBS]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or ["pip failed"])[-1]
        raise StubsUnavailable(f"{TENSORRT_STUBS} cannot be installed here ({tail})")
    return target


def copy_tensorrt_stubs(src: Path, dst: Path = STUBS) -> dict[str, list[int]]:
    """Copy the ``tensorrt`` and ``tensorrt_bindings`` stubs from ``src`` to ``dst``, mended; the lines mended per
    file."""
    report: dict[str, list[int]] = {}
    for package in ("tensorrt", "tensorrt_bindings"):
        for pyi in sorted((src / package).glob("*.pyi")):
            text, mended = mend_stub(pyi.read_text())
            text = mend_bool(text)
            out = dst / package / pyi.name
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(text)
            report[f"{package}/{pyi.name}"] = mended
    (dst / "tensorrt_libs").mkdir(parents=True, exist_ok=True)  # imported by the stubs: the wheel's library folder
    (dst / "tensorrt_libs" / "__init__.pyi").write_text("")
    return report


# ----------------------------------------------------------------------------------------------------------------
# cuda-bindings: a stub of cuda.bindings.runtime from its embedded signatures
# ----------------------------------------------------------------------------------------------------------------

_C_TYPES = {"size_t": "int", "int": "int", "unsigned int": "int", "float": "float", "bool": "bool"}
_OBJ = re.compile(r":py:obj:`~?\.?(\w+)`")


def stub_annotation(ann: str, known: set[str]) -> str:
    """A Python annotation of the bindings as the stub writes it: a class of the module, ``Optional[<class>]``,
    a builtin; anything else (types of other modules, unions of those) is Any."""
    ann = ann.strip()
    m = re.fullmatch(r"Optional\[(\w+)\]", ann)
    if m:
        inner = stub_annotation(m.group(1), known)
        return "Any" if inner == "Any" else f"{inner} | None"
    return ann if ann in known or ann in ("int", "float", "bool", "bytes", "str") else "Any"


def stub_params(signature: str, known: set[str] = frozenset()) -> str:  # type: ignore[assignment]
    """``dst, src, size_t count, kind: cudaMemcpyKind`` -> ``dst: Any, src: Any, count: int, kind: cudaMemcpyKind``
    (Cython's embedded signature: C types before the name, Python annotations after it, untyped means any)."""
    out = []
    for raw in _split_params(signature):
        default = ""
        if "=" in raw:
            raw, _ = raw.split("=", 1)
            raw, default = raw.strip(), " = ..."
        if ":" in raw:
            head, ann = raw.split(":", 1)
            name, ann = head.split()[-1], stub_annotation(ann, known)
        else:
            *ctype, name = raw.split()
            ann = _C_TYPES.get(" ".join(ctype), "Any") if ctype else "Any"
        out.append(f"{name}: {ann}{default}")
    return ", ".join(out)


def _split_params(signature: str) -> list[str]:
    """Split at the commas outside brackets."""
    parts, depth, cur = [], 0, ""
    for ch in signature:
        depth += ch in "[(" and 1 or 0
        depth -= ch in "])" and 1 or 0
        if ch == "," and depth == 0:
            parts.append(cur.strip())
            cur = ""
        else:
            cur += ch
    if cur.strip():
        parts.append(cur.strip())
    return parts


def stub_returns(doc: str, known: set[str]) -> str:
    """The return type from a numpy-style ``Returns`` section: ``tuple[cudaError_t, <each value's type>]``."""
    section = doc.split("Returns\n-------\n", 1)
    if len(section) < 2:
        return "Any"
    types = []
    for line in section[1].split("\n\n", 1)[0].splitlines():
        if not line or line[0].isspace():
            continue
        kind = line.split(" : ", 1)[1].strip() if " : " in line else line.strip()
        m = _OBJ.fullmatch(kind)
        name = m.group(1) if m else kind
        types.append(name if name in known or name in ("int", "float", "bool", "bytes", "str") else "Any")
    return f"tuple[{', '.join(types)}]" if types else "Any"


def cuda_runtime_stub() -> str:
    """``cuda/bindings/runtime.pyi`` from the installed cuda-bindings: functions from their embedded signatures and
    Returns sections, enums with their members, other classes with their attributes (typed Any: the bindings do
    not annotate them)."""
    try:
        from cuda.bindings import runtime
    except ImportError as e:
        raise StubsUnavailable(f"cuda-bindings is not installed ({e})") from None
    names = [n for n in dir(runtime) if not n.startswith("_")]
    classes = {n for n in names if inspect.isclass(getattr(runtime, n))}
    lines = [
        "# generated by tools/typecheck.py from cuda.bindings.runtime's embedded signatures",
        "from typing import Any, ClassVar",
        "",
    ]
    for n in sorted(classes):
        cls = getattr(runtime, n)
        members = getattr(cls, "__members__", None)
        lines.append(f"class {n}:")
        if isinstance(members, dict) and members:
            lines += ["    name: str", "    value: int", "    def __int__(self) -> int: ..."]
            lines += [f"    {m}: ClassVar[{n}]" for m in members if m.isidentifier()]
        else:
            attrs = [a for a in dir(cls) if not a.startswith("_") and not callable(getattr(cls, a, None))]
            lines += [f"    {a}: Any" for a in attrs]
            lines += [
                "    def __init__(self, *args: Any, **kwargs: Any) -> None: ...",
                "    def __int__(self) -> int: ...",
            ]
            lines += [f"    def {a}(self, *args: Any, **kwargs: Any) -> Any: ..." for a in dir(cls)
                      if not a.startswith("_") and callable(getattr(cls, a, None))]  # fmt: skip
        lines.append("")
    for n in names:
        obj = getattr(runtime, n)
        if n in classes:
            continue
        doc = getattr(obj, "__doc__", None) or ""
        if callable(obj) and doc.startswith(f"{n}("):
            sig = doc.split("\n", 1)[0][len(n) + 1 :].rsplit(")", 1)[0]
            lines.append(f"def {n}({stub_params(sig, classes)}) -> {stub_returns(doc, classes)}: ...")
        elif isinstance(obj, (int, float, str)):
            lines.append(f"{n}: {type(obj).__name__}")
        else:
            lines.append(f"{n}: Any")
    return "\n".join(lines) + "\n"


def write_cuda_stubs(dst: Path = STUBS) -> Path:
    """``cuda/bindings/runtime.pyi`` and the package stubs around it (``utils.get_cuda_native_handle``)."""
    pkg = dst / "cuda" / "bindings"
    pkg.mkdir(parents=True, exist_ok=True)
    (dst / "cuda" / "__init__.pyi").write_text("")
    (pkg / "__init__.pyi").write_text("__version__: str\n")
    (pkg / "runtime.pyi").write_text(cuda_runtime_stub())
    (pkg / "utils.pyi").write_text("from typing import Any\n\ndef get_cuda_native_handle(obj: Any) -> int: ...\n")
    return pkg / "runtime.pyi"


def prepare_stubs(dst: Path = STUBS) -> dict[str, list[int]]:
    """Fresh ``build/stubs``: TensorRT's (mended) and cuda-bindings' runtime; StubsUnavailable says what is missing."""
    if dst.exists():
        shutil.rmtree(dst)
    report = copy_tensorrt_stubs(install_tensorrt_stubs(), dst)
    write_cuda_stubs(dst)
    return report


# ----------------------------------------------------------------------------------------------------------------
# mypy
# ----------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TypeCheck:
    """mypy's exit status and output, and the share of expressions typed Any per module (percent)."""

    status: int
    output: str
    any_percent: dict[str, float]


def parse_any_report(text: str) -> dict[str, float]:
    """``mypy --any-exprs-report``'s any-exprs.txt: module -> percent of expressions that are Any."""
    out: dict[str, float] = {}
    for line in text.splitlines():
        cells = line.split()
        if len(cells) == 4 and cells[3].endswith("%") and cells[0] != "Name":
            out[cells[0]] = 100.0 - float(cells[3].rstrip("%"))
    return out


def run_mypy(modules: tuple[str, ...] = MODULES, report: Path = BUILD / "mypy-any") -> TypeCheck:
    """mypy over ``modules`` with build/stubs first on its path, and the Any report in ``report``."""
    from mypy import api

    ini = BUILD / "mypy.ini"
    ini.parent.mkdir(parents=True, exist_ok=True)
    ini.write_text(MYPY_INI.format(stubs=STUBS, cache=BUILD / "mypy-cache"))
    stdout, stderr, status = api.run(
        ["--config-file", str(ini), "--any-exprs-report", str(report), *(str(ROOT / m) for m in modules)]
    )
    table = report / "any-exprs.txt"
    percent = parse_any_report(table.read_text()) if table.is_file() else {}
    return TypeCheck(status, (stdout + stderr).strip(), percent)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tools.typecheck", description=__doc__.split("\n\n")[0])
    p.add_argument("--report", type=Path, default=BUILD / "mypy-any", help="the Any report folder (%(default)s)")
    args = p.parse_args(argv)
    try:
        mended = prepare_stubs()
    except StubsUnavailable as e:
        print(f"typecheck skipped: {e}", file=sys.stderr)
        return 0
    print("tensorrt-stubs lines mended: " + ", ".join(f"{f}:{ln}" for f, lines in mended.items() for ln in lines))
    result = run_mypy(report=args.report)
    print(result.output)
    for module, share in sorted(result.any_percent.items()):
        print(f"Any expressions: {share:5.2f}%  {module}")
    return result.status


if __name__ == "__main__":
    sys.exit(main())
