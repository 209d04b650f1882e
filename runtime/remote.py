"""A verifier that calls a Triton Inference Server instead of running the network here.

    import runtime.remote
    v = runtime.remote.connect("127.0.0.1:8001", model="demo_runtime")     # gRPC; "http://host:8000" for HTTP
    print(v.verify("a.png", "b.png"))                                     # VerifyResult, as runtime.load's
    ref = v.embed("reference.png")                                        # Embedding (dim,), embed once
    for frame in frames:
        r = v.verify(ref, frame)                                          # only the frame goes to the server

``RemoteVerifier`` is a ``runtime.verifier.Verifier`` whose network runs on the server's ``<name>_runtime`` model
(``runtime.triton_model``, written by ``export.triton``): ``embed``, ``score``, ``verify``, ``decide`` and
``as_embedding`` take the same arguments and return the same types (``VerifyResult``, ``Embedding``). Images are
preprocessed here, by ``runtime.preprocess`` with the preprocessing the model's config carries; a pair of images is
one request (both embedded and scored on the server), and so is an embedding against images. What a number means
and the threshold come from the config's parameters, which the model checked against its bundle at load.

Calls: each request has a timeout (``timeout`` seconds); a request that could not reach the server (connection
refused or reset, the server unavailable) is retried ``retries`` times with a short backoff, which is safe because
every call is a pure function of its inputs (nothing on the server changes); errors that the server answered
(a bad input) and timeouts are not retried. Every failure is a ``RemoteError`` naming the server, the model, what
was asked and why. One ``RemoteVerifier`` may be shared by threads: each thread gets its own connection.

Needs ``tritonclient`` (``pip install 'siamese-edge[triton]'``); the core install does
not, and importing this module does not import it.
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import numpy as np

from runtime.extras import install_command
from runtime.images import to_batch
from runtime.preprocess import Preprocessing
from runtime.triton_model import parameters, spec_parameters
from runtime.verifier import Embedding, Verifier, VerifyResult

__all__ = ["RemoteError", "RemoteVerifier", "connect", "Embedding", "VerifyResult"]

PROTOCOLS = ("grpc", "http")
_INPUT = {"image": "image_", "embedding": "embedding_in_"}  # runtime.triton_model.INPUTS, by side
_RETRYABLE = (
    "unavailable",
    "connection refused",
    "connection reset",
    "failed to connect",
    "broken pipe",
    "socket closed",
    "connect failed",
    "not ready",
)


class RemoteError(RuntimeError):
    """A call to the server failed: the message names the server, the model, the call, and the reason."""


def _client_module(protocol: str):
    try:
        if protocol == "grpc":
            import tritonclient.grpc as mod
        else:
            import tritonclient.http as mod
    except ImportError as e:
        raise ImportError(
            f"runtime.remote over {protocol} needs tritonclient ({e}): {install_command('triton')}",
            name="tritonclient",
        ) from e
    return mod


def split_url(url: str, protocol: str | None) -> tuple[str, str]:
    """("grpc"|"http", "host:port") from "host:port" (gRPC unless ``protocol`` says), "grpc://..." or "http://..."."""
    if "://" in url:
        scheme, rest = url.split("://", 1)
        if scheme not in PROTOCOLS:
            raise ValueError(f"url {url!r}: expected grpc://host:port or http://host:port")
        if protocol is not None and protocol != scheme:
            raise ValueError(f"url {url!r} and protocol {protocol!r} disagree")
        return scheme, rest.rstrip("/")
    if protocol is not None and protocol not in PROTOCOLS:
        raise ValueError(f"protocol {protocol!r}: expected one of {PROTOCOLS}")
    return protocol or "grpc", url.rstrip("/")


class _Connection:
    """tritonclient calls with timeouts and bounded retries; a client per thread (tritonclient's HTTP client is
    not thread-safe)."""

    def __init__(self, url: str, model: str, protocol: str, timeout: float, retries: int, backoff: float):
        if not timeout > 0:
            raise ValueError(f"timeout {timeout!r}: expected seconds > 0")
        if not isinstance(retries, int) or retries < 0:
            raise ValueError(f"retries {retries!r}: expected an integer >= 0")
        self.url, self.model, self.protocol = url, model, protocol
        self.timeout, self.retries, self.backoff = float(timeout), retries, float(backoff)
        self.mod = _client_module(protocol)
        self._local = threading.local()
        self._clients: list[Any] = []
        self._lock = threading.Lock()

    def where(self) -> str:
        return f"{self.protocol}://{self.url} model {self.model!r}"

    def client(self) -> Any:
        c = getattr(self._local, "client", None)
        if c is None:
            if self.protocol == "grpc":
                c = self.mod.InferenceServerClient(self.url)
            else:
                c = self.mod.InferenceServerClient(
                    self.url, connection_timeout=self.timeout, network_timeout=self.timeout
                )
            self._local.client = c
            with self._lock:
                self._clients.append(c)
        return c

    def _drop_client(self) -> None:
        c = getattr(self._local, "client", None)
        self._local.client = None
        if c is not None:
            try:
                c.close()
            except Exception:  # noqa: BLE001 - a broken connection may fail to close; a new one is made
                pass

    def call(self, what: str, fn) -> Any:
        """``fn(client)`` with the retries; RemoteError when it fails."""
        attempt = 0
        while True:
            try:
                return fn(self.client())
            except Exception as e:  # noqa: BLE001 - tritonclient raises its own and the transport's errors
                reason = _reason(e)
                retry = _retryable(reason)
                if retry:
                    self._drop_client()  # a reset connection is not reused
                if not retry or attempt >= self.retries:
                    tried = f" after {attempt + 1} attempts" if attempt else ""
                    raise RemoteError(f"{self.where()}: {what} failed{tried}: {reason}") from None
                attempt += 1
                time.sleep(self.backoff * 2 ** (attempt - 1))

    def config(self) -> dict[str, Any]:
        def get(c):
            if self.protocol == "grpc":
                return c.get_model_config(self.model, as_json=True, client_timeout=self.timeout)["config"]
            return c.get_model_config(self.model)

        return self.call("reading the model's config", get)

    def infer(self, feeds: dict[str, np.ndarray], outputs: list[str], what: str) -> dict[str, np.ndarray]:
        mod = self.mod

        def run(c):
            inputs = []
            for name, x in feeds.items():
                x = np.ascontiguousarray(x, np.float32)
                i = mod.InferInput(name, list(x.shape), "FP32")
                i.set_data_from_numpy(x)
                inputs.append(i)
            wanted = [mod.InferRequestedOutput(n) for n in outputs]
            if self.protocol == "grpc":
                r = c.infer(self.model, inputs, outputs=wanted, client_timeout=self.timeout)
            else:
                r = c.infer(self.model, inputs, outputs=wanted, timeout=int(self.timeout * 1e6))
            got = {n: r.as_numpy(n) for n in outputs}
            missing = [n for n, v in got.items() if v is None]
            if missing:
                raise RemoteError(f"{self.where()}: {what}: the answer has no {', '.join(missing)}")
            return got

        return self.call(what, run)

    def close(self) -> None:
        with self._lock:
            clients, self._clients = self._clients, []
        for c in clients:
            try:
                c.close()
            except Exception:  # noqa: BLE001 - closing a dead connection
                pass


def _reason(e: BaseException) -> str:
    msg = e.message() if callable(getattr(e, "message", None)) else str(e)
    status = e.status() if callable(getattr(e, "status", None)) else None
    text = " ".join(str(msg or type(e).__name__).split())
    return f"{text} ({status})" if status and str(status) not in text else text


def _retryable(reason: str) -> bool:
    low = reason.lower()
    return any(k in low for k in _RETRYABLE) and "deadline" not in low and "timeout" not in low


class RemoteBackend:
    """The ``Backend`` protocol over the connection: what ``Verifier``'s methods call."""

    thread_safe = True

    def __init__(self, conn: _Connection, dim: int, max_batch: int):
        self.conn, self.dim, self.max_batch = conn, dim, max(1, int(max_batch))

    def _chunks(self, n: int):
        for start in range(0, n, self.max_batch):
            yield slice(start, min(n, start + self.max_batch))

    def embed(self, x: np.ndarray) -> np.ndarray:
        out = [
            self.conn.infer({"image_a": x[s]}, ["embedding_a"], f"embedding {s.stop - s.start} image(s)")["embedding_a"]
            for s in self._chunks(len(x))
        ]
        return np.concatenate(out).astype(np.float32, copy=False)

    def pairs(self, ka: str, xa: np.ndarray, kb: str, xb: np.ndarray) -> np.ndarray:
        """Scores of row i of side a against row i of side b; each side "image" or "embedding" rows."""
        out = []
        for s in self._chunks(len(xa)):
            got = self.conn.infer(
                {_INPUT[ka] + "a": xa[s], _INPUT[kb] + "b": xb[s]}, ["score"], f"scoring {s.stop - s.start} pair(s)"
            )
            out.append(np.asarray(got["score"], np.float32).reshape(-1))
        return np.concatenate(out) if out else np.zeros(0, np.float32)

    def score_embeddings(self, ea: np.ndarray, eb: np.ndarray) -> np.ndarray:
        return self.pairs("embedding", ea, "embedding", eb)

    def info(self) -> dict[str, Any]:
        return {"backend": "triton", "provider": self.conn.protocol, "device": "remote", "precision": "fp32"}

    def close(self) -> None:
        self.conn.close()


class RemoteVerifier(Verifier):
    """``Verifier``'s calls on a server's ``<name>_runtime`` model; make it with ``connect``."""

    def __init__(self, conn: _Connection):
        config = conn.config()
        params = parameters(config)
        needed = ("score_kind", "same_when", "threshold", "preprocessing", "embedding_dim", "model_id")
        if any(k not in params for k in needed):
            raise RemoteError(
                f"{conn.where()}: not a siamese-edge runtime model (its config has no {', '.join(k for k in needed if k not in params)} "
                "parameters); serve the repository's <name>_runtime model (python -m export.triton writes it)"
            )
        self.conn = conn
        self.spec = spec_parameters(params)
        self.preprocessing = Preprocessing.from_dict(json.loads(params["preprocessing"]))
        self.dim = int(params["embedding_dim"])
        self.model_id = params["model_id"]
        self._name = params.get("bundle_name") or conn.model
        self.max_batch = int(config.get("max_batch_size") or 1)
        self.backend = RemoteBackend(conn, self.dim, self.max_batch)
        self.bundle_dir = None
        self.manifest = None
        self.selection = None
        self.threads = None
        self._lock = None
        self._info = {
            **self.backend.info(),
            "variant": f"triton-{conn.protocol}",
            "server": conn.url,
            "model": conn.model,
            "bundle": self._name,
            "embedding_dim": self.dim,
            "max_batch_size": self.max_batch,
            "score": self.spec.describe(),
            "reason": f"remote: {conn.where()}",
        }

    @property
    def name(self) -> str:
        return self._name

    def score(self, a: Any, b: Any, rgb: bool = False) -> float | np.ndarray:
        """As ``Verifier.score``, in one request: images are embedded and scored on the server together."""
        ka, xa, single_a = self._side(a, rgb)
        kb, xb, single_b = self._side(b, rgb)
        if len(xa) != len(xb):
            if len(xa) == 1 or len(xb) == 1:  # one against many: the one as an embedding, repeated
                if len(xa) == 1:
                    ka, xa = "embedding", self._one_embedding(ka, xa, len(xb))
                else:
                    kb, xb = "embedding", self._one_embedding(kb, xb, len(xa))
            else:
                raise ValueError(f"cannot pair {len(xa)} with {len(xb)}: give equal counts, or one against many")
        s = self.backend.pairs(ka, xa, kb, xb) if len(xa) else np.zeros(0, np.float32)
        return float(s[0]) if single_a and single_b else s

    def _side(self, x: Any, rgb: bool) -> tuple[str, np.ndarray, bool]:
        if self._holds_embedding(x):
            e, single = self._embeddings(x, rgb)  # a mixed list: its images are embedded first
            return "embedding", np.asarray(e, np.float32), single
        batch = to_batch(x, self.preprocessing, rgb=rgb)
        return "image", batch.x, batch.single

    def _one_embedding(self, kind: str, x: np.ndarray, n: int) -> np.ndarray:
        e = np.asarray(self.embed_preprocessed(x), np.float32) if kind == "image" else x
        return np.ascontiguousarray(np.broadcast_to(e[:1], (n, self.dim)))

    def check_parity(self, note: str = "") -> Any:
        raise NotImplementedError(
            "a remote verifier has no bundle here to check: run python -m runtime.verify --bundle DIR --parity "
            "on the bundle the server serves (its model checked the bundle's hashes at load)"
        )

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> RemoteVerifier:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"RemoteVerifier(bundle={self.name!r}, server={self.conn.where()!r})"


def connect(
    url: str,
    model: str,
    protocol: str | None = None,
    timeout: float = 10.0,
    retries: int = 2,
    backoff: float = 0.1,
) -> RemoteVerifier:
    """A ``RemoteVerifier`` on ``model`` (a ``<name>_runtime`` model) of the server at ``url``: "host:port" (gRPC,
    port 8001 by Triton's default), "grpc://host:port" or "http://host:port" (8000). ``timeout``: seconds per
    request; ``retries``: extra attempts for requests that could not reach the server, ``backoff`` seconds apart
    (doubling). Raises RemoteError when the server or the model cannot be reached or is not a runtime model."""
    proto, where = split_url(url, protocol)
    return RemoteVerifier(_Connection(where, model, proto, timeout, retries, backoff))
