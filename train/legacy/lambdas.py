"""Recognising the seeds' distance ``Lambda`` layers WITHOUT running or unmarshaling their bytecode.

A Lambda stores its function as base64 of ``marshal.dumps(code)``. Unmarshaling untrusted bytes is unsafe
and only works on the Python version that wrote them, so the bytes are only searched: marshal writes every
name a function uses (``K.sqrt`` -> ``sqrt``) as a length-prefixed string, which a byte search finds in the
format of every Python version. Which names appear decides the distance:

- ``abs`` and none of sqrt/square/sum/norm: |a - b| elementwise  -> ``AbsDifference``
- ``sqrt`` with ``square`` or ``sum`` (or ``norm``), no ``abs``:  -> ``EuclideanDistance``
- any name that changes the result (exp, mean, dot, concatenate, ...), or anything else: not recognised.
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Any

ABS = ("abs", "absolute")
SQRT = ("sqrt",)
SQUARE = ("square", "pow", "power")
SUM = ("sum", "reduce_sum")
NORM = ("norm",)
# names whose presence means the Lambda computes something other than the plain distance
DENY = (
    "exp",
    "log",
    "mean",
    "reduce_mean",
    "dot",
    "batch_dot",
    "matmul",
    "concatenate",
    "concat",
    "stack",
    "cos",
    "sin",
    "tanh",
    "sigmoid",
    "relu",
    "softmax",
    "l2_normalize",
    "normalize",
    "cosine_similarity",
    "multiply",
    "divide",
    "reshape",
    "transpose",
    "cast",
    "minimum",
    "clip",
    "sign",
    "negative",
    "where",
    "greater",
    "less",
    "expand_dims",
    "squeeze",
    "gather",
    "max",
    "min",
    "prod",
    "var",
    "std",
)
VOCABULARY = ABS + SQRT + SQUARE + SUM + NORM + DENY + ("maximum", "epsilon", "subtract")
_IDENT = re.compile(rb"[A-Za-z_][A-Za-z0-9_]{2,}")


def decode_code(code: Any) -> bytes | None:
    """The raw marshal bytes of a stored function (base64 text), or None if it is not base64."""
    if not isinstance(code, str):
        return None
    try:
        return base64.b64decode(code.encode("ascii"), validate=False)
    except (binascii.Error, ValueError, UnicodeEncodeError):
        return None


def _present(raw: bytes, name: str) -> bool:
    """``name`` stored as a marshal string: 1-byte length (Python >= 3.4 short strings) or 4-byte length."""
    b = name.encode("ascii")
    return bytes([len(b)]) + b in raw or len(b).to_bytes(4, "little") + b in raw


def names_in_code(raw: bytes) -> set[str]:
    """The vocabulary names a marshaled function refers to."""
    return {n for n in VOCABULARY if _present(raw, n)}


def visible_identifiers(raw: bytes, limit: int = 12) -> list[str]:
    """Identifier-like runs in the bytes, for messages only (approximate: marshal framing can glue them)."""
    seen: list[str] = []
    for m in _IDENT.findall(raw):
        s = m.decode("ascii")
        if s not in seen:
            seen.append(s)
    return seen[:limit]


def names_in_function_name(name: str) -> set[str]:
    """Vocabulary from a function stored by name (``euclidean_distance``, ``l1_dist``, ...)."""
    parts = set(re.split(r"[^a-z0-9]+", name.lower()))
    out = set()
    if parts & {"euclidean", "euclid", "l2"}:
        out |= {"sqrt", "sum"}
    if parts & {"abs", "absolute", "l1"}:
        out |= {"abs"}
    return out


def classify_names(names: set[str]) -> str | None:
    """'abs', 'euclidean' or None (see the module docstring)."""
    if names & set(DENY):
        return None
    has = {
        k: bool(names & set(v)) for k, v in {"abs": ABS, "sqrt": SQRT, "sq": SQUARE, "sum": SUM, "norm": NORM}.items()
    }
    if has["abs"] and not (has["sqrt"] or has["sq"] or has["sum"] or has["norm"]):
        return "abs"
    if not has["abs"] and ((has["sqrt"] and (has["sq"] or has["sum"])) or has["norm"]):
        return "euclidean"
    return None


def function_evidence(config: dict) -> tuple[set[str], str]:
    """(vocabulary names, how they were found) for a Lambda config in Keras 1/2 or Keras 3 format."""
    fn = config.get("function")
    if isinstance(fn, dict) and fn.get("class_name") == "__lambda__":  # Keras 3
        raw = decode_code(fn.get("config", {}).get("code"))
        return (names_in_code(raw), "bytecode") if raw is not None else (set(), "unreadable bytecode")
    if isinstance(fn, dict) and fn.get("class_name") == "function":  # Keras 3, a def stored by name
        name = str(fn.get("config", ""))
        return names_in_function_name(name), f"function name {name!r}"
    if isinstance(fn, (list, tuple)) and fn:  # Keras 2: [code, defaults, closure]
        raw = decode_code(fn[0])
        return (names_in_code(raw), "bytecode") if raw is not None else (set(), "unreadable bytecode")
    if isinstance(fn, str):
        if config.get("function_type") == "lambda":  # Keras 1/2 bytecode as a bare string
            raw = decode_code(fn)
            return (names_in_code(raw), "bytecode") if raw is not None else (set(), "unreadable bytecode")
        return names_in_function_name(fn), f"function name {fn!r}"
    return set(), "no function"


def _output_last_dim(config: dict) -> int | None:
    shape = config.get("output_shape")
    if isinstance(shape, dict) and shape.get("class_name") == "__tuple__":
        shape = shape.get("items")
    if isinstance(shape, (list, tuple)) and shape and all(isinstance(d, (int, type(None))) for d in shape):
        return shape[-1]
    return None


def two_inputs(layer: dict) -> bool:
    """Whether every call of the layer takes exactly two tensors (of one shape, where the config says)."""
    nodes = layer.get("inbound_nodes") or []
    if not nodes:
        return False
    for node in nodes:
        if isinstance(node, list):  # Keras 1/2: [[name, node, tensor, kwargs], ...]
            if len(node) != 2:
                return False
        elif isinstance(node, dict):  # Keras 3: {"args": [[tensor, tensor]], "kwargs": {}}
            args = node.get("args") or []
            tensors = args[0] if len(args) == 1 and isinstance(args[0], list) else args
            if len(tensors) != 2:
                return False
            shapes = [t.get("config", {}).get("shape") for t in tensors if isinstance(t, dict)]
            if len(shapes) == 2 and None not in shapes and shapes[0] != shapes[1]:
                return False
        else:
            return False
    return True


def classify_lambda(layer: dict) -> tuple[str | None, str]:
    """('abs' | 'euclidean' | None, explanation) for one Lambda layer entry of a functional config."""
    config = layer.get("config", {})
    if not two_inputs(layer):
        return None, "it is not called on two tensors"
    names, how = function_evidence(config)
    kind = classify_names(names)
    if kind is None:
        return None, f"its {how} uses {sorted(names) or 'no known names'}, which is not a plain distance"
    last = _output_last_dim(config)
    if kind == "euclidean" and last not in (None, 1):
        return None, f"its output_shape ends in {last}, a euclidean distance ends in 1"
    return kind, f"its {how} uses {sorted(names)}"
