"""``python -m runtime.serve --repo DIR``: a Triton Inference Server on a model repository, until Ctrl-C/SIGTERM.

The server: the ``tritonserver`` binary of the ``nvidia-pytriton`` wheel when it is installed (it carries Triton's
Python backend, and no ONNX Runtime or TensorRT backends), else any ``tritonserver`` on PATH (NVIDIA's Triton
images, which have them), else a clear error naming both; ``--binary`` names one.

Which models start: those whose backend this server has (``<name>_runtime``, the Python-backend model
``export.triton`` writes, everywhere; the ONNX and TensorRT models where the server has those backends), or the
``--model`` names given; each is reported READY or with the reason it failed to load (a tampered bundle names the
file). Models are loaded explicitly (``--model-control-mode explicit``): a client may reload one after its bundle
is replaced (``tritonclient``'s ``load_model``), or ``--poll SECS`` has the server reload changed models itself.

How the Python backend's model finds the project's runtime: Triton's Python backend runs each model instance in a
``triton_python_backend_stub`` process, an embedded CPython that ignores ``PYTHONPATH``, takes its standard library
from the ``libpython`` it loads and its ``site-packages`` from the first ``python3`` on ``PATH`` (a virtual
environment's ``pyvenv.cfg`` included). So the server is started with: the wheel's stub for this interpreter's
Python version in a backend folder of its own (a temporary folder of links, the wheel is never written to); this
interpreter's ``libpython`` first on ``LD_LIBRARY_PATH`` (where it has one), then the wheel's libraries; this
interpreter's folder first on ``PATH``; and ``SIAMESE_EDGE_PYTHONPATH`` set to the folder this ``runtime``
package is imported from, which the model's ``model.py`` puts first on ``sys.path``. The model then runs in the
same environment, with the same ``runtime``, numpy and onnxruntime, as this command.

Stopping: the server runs in a process group of its own; Ctrl-C or SIGTERM (``runtime.console.run_cli``) stops it
with SIGTERM and, after ``--stop-timeout``, SIGKILL, the whole group (its Python stubs too), so nothing is orphaned;
and on Linux the server gets SIGTERM when the process that started it dies, even by SIGKILL (``PR_SET_PDEATHSIG``;
it is tied to the starting thread, so start it from a thread that lives as long as the server).
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runtime.console import BOUNDARY_EXIT_CODES, EXIT_BACKEND, EXIT_INPUT, CliError, run_cli

WHEEL = "nvidia-pytriton"
WHEEL_BINARY = "pytriton/tritonserver/bin/tritonserver"
PLATFORM_BACKENDS = {"onnxruntime_onnx": "onnxruntime", "tensorrt_plan": "tensorrt", "pytorch_libtorch": "pytorch"}
BUILTIN = {"ensemble"}  # platforms the server itself runs


class ServerError(RuntimeError):
    """The server cannot be found, started or made ready; the message says why (and its log's last lines)."""


class RepositoryError(ServerError):
    """The ``--repo`` given cannot be served (missing, empty, or without the models asked for): bad input."""


@dataclass(frozen=True)
class ServerBinary:
    """A ``tritonserver`` and what comes with it: ``root`` (its distribution folder: bin/, backends/), the
    libraries folder to put on LD_LIBRARY_PATH, the per-Python-version stubs folder (the wheel's), and where it
    was found."""

    path: Path
    source: str
    backends: Path | None = None
    libs: Path | None = None
    stubs: Path | None = None

    def backend_names(self) -> set[str]:
        """The backends this server has (folder names under its backends directory)."""
        if self.backends is None or not self.backends.is_dir():
            return set()
        return {p.name for p in self.backends.iterdir() if p.is_dir() and not p.name.startswith("_")}


def _wheel_root() -> Path | None:
    """The installed pytriton package folder, found without importing it (its __init__ pulls in its own stack)."""
    try:
        spec = importlib.util.find_spec("pytriton")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def find_server(binary: str | os.PathLike | None = None) -> ServerBinary:
    """The ``tritonserver`` to run: ``binary`` when given, else the nvidia-pytriton wheel's, else the first on PATH;
    ServerError naming every place looked at when there is none."""
    if binary is not None:
        path = Path(binary)
        if not (path.is_file() and os.access(path, os.X_OK)):
            raise ServerError(f"--binary {path}: not an executable file")
        return _described(path.resolve(), f"{path}")
    pkg = _wheel_root()
    if pkg is not None:
        path = pkg / "tritonserver" / "bin" / "tritonserver"
        if path.is_file():
            dist = pkg / "tritonserver"
            return ServerBinary(
                path, f"the {WHEEL} wheel ({path})", dist / "backends", pkg.parent / "nvidia_pytriton.libs",
                dist / "python_backend_stubs",
            )  # fmt: skip
    found = shutil.which("tritonserver")
    if found:
        return _described(Path(found).resolve(), f"PATH ({found})")
    raise ServerError(
        f"no Triton Inference Server here: neither the {WHEEL} wheel's {WHEEL_BINARY} (pip install {WHEEL}; "
        "it is in siamese-edge's [dev] extra, Linux x86_64 with glibc 2.35+) nor a tritonserver on PATH "
        "(NVIDIA's Triton images: nvcr.io/nvidia/tritonserver); or pass --binary"
    )


def _described(path: Path, source: str) -> ServerBinary:
    """A tritonserver outside the wheel: its backends where Triton's images keep them (``<root>/backends``)."""
    root = path.parent.parent
    backends = root / "backends" if (root / "backends").is_dir() else None
    return ServerBinary(path, source, backends)


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port free on ``host`` now (the OS's choice)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def runtime_root() -> Path:
    """The folder the ``runtime`` package is imported from (a checkout or site-packages)."""
    return Path(__file__).resolve().parent.parent


def _libpython_dir() -> Path | None:
    """This interpreter's shared libpython's folder, when it has one (pyenv and python.org builds with
    --enable-shared; Debian's python3 is linked statically and the stub takes the system libpython3.X)."""
    if not sysconfig.get_config_var("Py_ENABLE_SHARED"):
        return None
    libdir, soname = sysconfig.get_config_var("LIBDIR"), sysconfig.get_config_var("INSTSONAME")
    if libdir and soname and (Path(libdir) / soname).exists():
        return Path(libdir)
    return None


def model_backend(config_text: str) -> str | None:
    """The backend a config.pbtxt needs ("python", "onnxruntime", ...; None for one the server itself runs)."""
    m = re.search(r'^\s*backend:\s*"([^"]+)"', config_text, re.M)
    if m:
        return m.group(1)
    m = re.search(r'^\s*platform:\s*"([^"]+)"', config_text, re.M)
    if m is None or m.group(1) in BUILTIN:
        return None
    return PLATFORM_BACKENDS.get(m.group(1), m.group(1))


def ensemble_steps(config_text: str) -> list[str]:
    """The models an ensemble's config.pbtxt runs (none for any other model)."""
    if not re.search(r'^\s*platform:\s*"ensemble"', config_text, re.M):
        return []
    return re.findall(r'model_name:\s*"([^"]+)"', config_text)


def repository_models(repo: Path) -> dict[str, str | None]:
    """{model: the backend it needs} for every model folder of a repository (one with a config.pbtxt)."""
    if not repo.is_dir():
        raise RepositoryError(
            f"--repo {repo}: no such folder (write one: python -m export.triton --bundle DIR --repo {repo})"
        )
    out = {}
    for d in sorted(repo.iterdir()):
        cfg = d / "config.pbtxt"
        if d.is_dir() and not d.name.startswith(".") and cfg.is_file():
            out[d.name] = model_backend(cfg.read_text(encoding="utf-8", errors="replace"))
    if not out:
        raise RepositoryError(f"--repo {repo}: no models (no <model>/config.pbtxt)")
    return out


@dataclass
class TritonServer:
    """One ``tritonserver`` process on a repository. ``start`` then ``wait_ready``, or as a context manager.

    Ports 0 are chosen free. ``models``: the ones to load (default: every model whose backend this server has);
    ``poll``: seconds between repository polls (the server reloads changed models itself) instead of explicit
    loading. The server's output goes to ``log_path`` (default: a file in its work folder; ``log_tail`` reads it).
    """

    repo: Path
    host: str = "127.0.0.1"
    http_port: int = 0
    grpc_port: int = 0
    metrics_port: int = 0
    models: list[str] | None = None
    poll: int | None = None
    binary: str | os.PathLike | None = None
    log_path: Path | None = None
    extra_args: list[str] = field(default_factory=list)
    process: subprocess.Popen | None = field(default=None, init=False)
    skipped: dict[str, str] = field(default_factory=dict, init=False)
    started: float = field(default=0.0, init=False)
    ready_s: float | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        self.repo = Path(self.repo).resolve()
        self.server = find_server(self.binary)
        self._work: tempfile.TemporaryDirectory | None = None

    @property
    def http_url(self) -> str:
        return f"{self.host}:{self.http_port}"

    @property
    def grpc_url(self) -> str:
        return f"{self.host}:{self.grpc_port}"

    @property
    def metrics_url(self) -> str:
        return f"http://{self.host}:{self.metrics_port}/metrics"

    def _backend_dir(self, work: Path) -> Path | None:
        """A backends folder for the wheel's server: its backends linked, and its Python stub for this Python."""
        s = self.server
        if s.backends is None or s.stubs is None:
            return None  # Triton's images: their own backends folder, their own stub
        version = f"{sys.version_info[0]}.{sys.version_info[1]}"
        stub = s.stubs / version / "triton_python_backend_stub"
        if not stub.is_file():
            have = sorted(p.name for p in s.stubs.iterdir()) if s.stubs.is_dir() else []
            raise ServerError(
                f"{s.path}: its Python backend has stubs for Python {', '.join(have) or 'none'}, not {version} "
                f"(this interpreter, {sys.executable}): serve from one of those"
            )
        out = work / "backends"
        for b in s.backends.iterdir():
            if b.is_dir():
                (out / b.name).mkdir(parents=True)
                for f in b.iterdir():
                    if f.is_file():
                        (out / b.name / f.name).symlink_to(f)
        (out / "python" / "triton_python_backend_stub").symlink_to(stub)
        return out

    def environment(self) -> dict[str, str]:
        """The server's environment: see the module docstring (how the Python backend finds the runtime)."""
        env = dict(os.environ)
        libs = [str(p) for p in (_libpython_dir(), self.server.libs) if p is not None]
        if env.get("LD_LIBRARY_PATH"):
            libs.append(env["LD_LIBRARY_PATH"])
        if libs:
            env["LD_LIBRARY_PATH"] = os.pathsep.join(libs)
        env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
        from runtime.triton_model import PYTHONPATH_ENV

        env[PYTHONPATH_ENV] = str(runtime_root())
        return env

    def plan(self) -> list[str]:
        """The models to load; the others (a backend this server lacks) go to ``skipped`` with the reason."""
        found = repository_models(self.repo)
        have = self.server.backend_names()
        if self.models:
            missing = [m for m in self.models if m not in found]
            if missing:
                raise RepositoryError(
                    f"--repo {self.repo}: no model(s) {', '.join(missing)} (it has {', '.join(found)})"
                )
            return list(self.models)
        load = []
        for name, backend in found.items():
            if backend is None or self.server.backends is None or backend in have:
                load.append(name)
            else:
                self.skipped[name] = f"this server has no {backend} backend (it has {', '.join(sorted(have))})"
        for name in list(load):  # an ensemble runs only where its steps do
            steps = ensemble_steps((self.repo / name / "config.pbtxt").read_text(encoding="utf-8", errors="replace"))
            missing = sorted({m for m in steps if m in self.skipped or m not in found})
            if missing:
                load.remove(name)
                self.skipped[name] = f"an ensemble of {', '.join(missing)}, which this server cannot run"
        if not load:
            raise RepositoryError(
                f"--repo {self.repo}: no model this server can run ({'; '.join(self.skipped.values())})"
            )
        return load

    def command(self, work: Path) -> list[str]:
        for attr in ("http_port", "grpc_port", "metrics_port"):
            if not getattr(self, attr):
                setattr(self, attr, free_port(self.host))
        cmd = [
            str(self.server.path),
            f"--model-repository={self.repo}",
            f"--http-address={self.host}",
            f"--http-port={self.http_port}",
            f"--grpc-address={self.host}",
            f"--grpc-port={self.grpc_port}",
            f"--metrics-address={self.host}",
            f"--metrics-port={self.metrics_port}",
            "--allow-gpu-metrics=false",
            "--exit-on-error=false",  # a model that fails to load is reported; the others serve
            "--strict-readiness=false",
            "--exit-timeout-secs=10",
        ]
        backends = self._backend_dir(work)
        if backends is not None:
            cmd.append(f"--backend-directory={backends}")
        if self.server.stubs is not None:
            cmd.append(f"--cache-directory={self.server.path.parent.parent / 'caches'}")
        models = self.plan()
        if self.poll:
            cmd += ["--model-control-mode=poll", f"--repository-poll-secs={int(self.poll)}"]
        else:
            cmd += ["--model-control-mode=explicit", *(f"--load-model={m}" for m in models)]
        self.loading = models
        return [*cmd, *self.extra_args]

    def start(self) -> TritonServer:
        if self.process is not None:
            raise ServerError("already started")
        self._work = tempfile.TemporaryDirectory(prefix="siamese-edge-triton-")
        work = Path(self._work.name)
        cmd = self.command(work)
        log = self.log_path or work / "tritonserver.log"
        self.log_path = Path(log)
        self.started = time.monotonic()
        with open(self.log_path, "ab") as out:
            self.process = subprocess.Popen(
                cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, env=self.environment(),
                start_new_session=True,  # its own process group: stop() ends it and its Python stubs together
                preexec_fn=_die_with_parent,
            )  # fmt: skip
        return self

    def _get(self, path: str, timeout: float = 2.0) -> tuple[int, bytes]:
        try:
            with urllib.request.urlopen(f"http://{self.http_url}{path}", timeout=timeout) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()

    def _post(self, path: str, timeout: float = 5.0) -> Any:
        import json

        req = urllib.request.Request(f"http://{self.http_url}{path}", data=b"{}", method="POST")
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return json.loads(r.read() or b"null")

    def wait_ready(self, timeout: float = 120.0) -> float:
        """Seconds from start until the server is ready and every model it loads is READY or has failed;
        ServerError (with the log's last lines) when it exits or the timeout passes first."""
        deadline = self.started + timeout
        while True:
            self._check_alive()
            try:
                code, _ = self._get("/v2/health/ready", timeout=1.0)
                if code == 200 and all(s in ("READY", "UNAVAILABLE") for s in self.model_states().values()):
                    self.ready_s = time.monotonic() - self.started
                    return self.ready_s
            except (OSError, ValueError):
                pass
            if time.monotonic() > deadline:
                raise ServerError(f"tritonserver not ready after {timeout:.0f} s{self._tail()}")
            time.sleep(0.1)

    def model_states(self) -> dict[str, str]:
        """{model: state} for the models being loaded (READY, LOADING, UNAVAILABLE, ...)."""
        index = {m["name"]: m for m in self._post("/v2/repository/index") or [] if "name" in m}
        return {m: index.get(m, {}).get("state", "LOADING" if self.poll else "UNAVAILABLE") for m in self.loading}

    def model_reasons(self) -> dict[str, str]:
        """{model: why it is not ready} from the repository index (Triton's own message: the model's error)."""
        out = {}
        for m in self._post("/v2/repository/index") or []:
            if m.get("name") in self.loading and m.get("state") != "READY":
                reason = (m.get("reason") or m.get("state", "")).split("\n\nAt:")[0]  # not the Python stub's traceback
                out[m["name"]] = " ".join(reason.split())
        return out

    def _check_alive(self) -> None:
        if self.process is None:
            raise ServerError("not started")
        rc = self.process.poll()
        if rc is not None:
            raise ServerError(f"tritonserver exited with code {rc}{self._tail()}")

    def log_tail(self, lines: int = 12) -> str:
        try:
            text = Path(self.log_path).read_text(encoding="utf-8", errors="replace") if self.log_path else ""
        except OSError:
            return ""
        keep = [ln for ln in text.splitlines() if ln.strip()]
        return "\n".join(keep[-lines:])

    def _tail(self) -> str:
        tail = self.log_tail()
        return f"; its log ({self.log_path}) ends:\n{tail}" if tail else ""

    def stop(self, timeout: float = 15.0) -> int | None:
        """SIGTERM to the server's process group, SIGKILL after ``timeout``; its exit code (None if never started)."""
        p = self.process
        if p is None:
            return None
        try:
            if p.poll() is None:
                _signal_group(p.pid, signal.SIGTERM)
                try:
                    p.wait(timeout)
                except subprocess.TimeoutExpired:
                    _signal_group(p.pid, signal.SIGKILL)
                    p.wait(5)
            _signal_group(p.pid, signal.SIGKILL)  # any stub left in its group
            return p.returncode
        finally:
            if self._work is not None:
                self._work.cleanup()
                self._work = None

    def kill(self) -> None:
        """SIGKILL the server process alone (its stubs then exit on their own): a crash, for tests."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)

    def __enter__(self) -> TritonServer:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def _die_with_parent() -> None:
    """In the server's process, before exec: SIGTERM it when this process dies (Linux ``PR_SET_PDEATHSIG``), so a
    killed ``runtime.serve`` or test run does not leave a server behind. Elsewhere a no-op."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG = 1
    except (OSError, AttributeError):
        pass


def _signal_group(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


# ----------------------------------------------------------------------------------------------------------------
# command line
# ----------------------------------------------------------------------------------------------------------------

EXAMPLES = f"""
examples:
  python -m export.triton --bundle runs/demo/bundles/demo --repo triton_repo
  python -m runtime.serve --repo triton_repo                      # free ports, printed
  python -m runtime.serve --repo triton_repo --http-port 8000 --grpc-port 8001 --metrics-port 8002 --host 0.0.0.0
  python -m runtime.serve --repo triton_repo --poll 5              # reload a model when its folder changes

exit codes (serving ends with Ctrl-C or SIGTERM: 130, the server stopped with its Python stubs)
  2  bad input (no repository, no model this server can run, a model that failed to load)
  3  no server here, or it failed to start or to become ready
{BOUNDARY_EXIT_CODES}
"""


def build_parser():
    import argparse

    p = argparse.ArgumentParser(
        prog="python -m runtime.serve",
        description="Serve a Triton model repository (python -m export.triton, export.build --triton) with a real "
        f"Triton Inference Server: the {WHEEL} wheel's tritonserver (Python backend: the <name>_runtime models), or "
        "any tritonserver on PATH. Waits until ready, prints the ports and a client example, serves until Ctrl-C.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--repo", required=True, metavar="DIR", help="the model repository")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s)")
    p.add_argument("--http-port", type=int, default=0, help="HTTP port (default: a free one)")
    p.add_argument("--grpc-port", type=int, default=0, help="gRPC port (default: a free one)")
    p.add_argument("--metrics-port", type=int, default=0, help="Prometheus metrics port (default: a free one)")
    p.add_argument("--model", action="append", metavar="NAME", help="load this model (repeatable; default: all it can)")
    p.add_argument("--poll", type=int, metavar="SECS", help="poll the repository and reload changed models")
    p.add_argument("--binary", metavar="FILE", help="the tritonserver to run (default: the wheel's, else PATH's)")
    p.add_argument("--ready-timeout", type=float, default=120.0, help="seconds to wait for ready (default: 120)")
    p.add_argument("--stop-timeout", type=float, default=15.0, help="seconds from SIGTERM to SIGKILL (default: 15)")
    p.add_argument("--log", metavar="FILE", help="write the server's log here (default: a temporary file)")
    p.add_argument("--debug", action="store_true", help="tracebacks for unexpected errors")
    return p


def client_example(server: TritonServer, model: str) -> str:
    return (
        'python -c "import runtime.remote as r; '
        f"v = r.connect('{server.grpc_url}', model='{model}'); print(v.verify('a.png', 'b.png'))\""
    )


def serve(args) -> int:
    server = TritonServer(
        Path(args.repo),
        host=args.host,
        http_port=args.http_port,
        grpc_port=args.grpc_port,
        metrics_port=args.metrics_port,
        models=args.model,
        poll=args.poll,
        binary=args.binary,
        log_path=Path(args.log) if args.log else None,
    )
    try:
        server.start()
        print(f"triton:   starting {server.server.source} on {args.repo}", flush=True)
        for name, why in server.skipped.items():
            print(f"skipped:  {name}: {why}")
        ready = server.wait_ready(args.ready_timeout)
        states = server.model_states()
        reasons = server.model_reasons()
        for name in server.loading:
            line = states[name] if states[name] == "READY" else f"{states[name]}: {reasons.get(name, '')}"
            print(f"model:    {name} {line}")
        up = [m for m, s in states.items() if s == "READY"]
        if not up:
            raise CliError(EXIT_INPUT, f"no model loaded ({'; '.join(f'{m}: {r}' for m, r in reasons.items())})")
        print(f"ready:    in {ready:.2f} s")
        print(f"http:     http://{server.http_url}   grpc: {server.grpc_url}   metrics: {server.metrics_url}")
        runtime_models = [m for m in up if m.endswith("_runtime")]
        print(f"client:   {client_example(server, (runtime_models or up)[0])}")
        print("serving until Ctrl-C or SIGTERM", flush=True)
        while server.process.poll() is None:
            time.sleep(0.5)
        raise CliError(EXIT_BACKEND, f"tritonserver exited with code {server.process.returncode}{server._tail()}")
    finally:  # Ctrl-C and SIGTERM (run_cli raises it here) included: the server's whole process group is stopped
        code = server.stop(args.stop_timeout)
        if code is not None:
            print(f"stopped:  tritonserver exited with code {code}", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)

    def body() -> int:
        try:
            return serve(args)
        except ServerError as e:
            code = EXIT_INPUT if isinstance(e, RepositoryError) else EXIT_BACKEND
            print(f"error: {e}", file=sys.stderr)
            return code
        except CliError as e:
            print(f"error: {e}", file=sys.stderr)
            return e.code

    return run_cli(body, debug=args.debug, what="the server was stopped")


if __name__ == "__main__":
    raise SystemExit(main())
